"""The options of the comparison rule, shared by every command that compares models or uses
energy errors (leaderboard, pareto, uq, plot): ``--energy-offset`` and ``--common``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class Offset(StrEnum):
    NONE = "none"
    PER_ELEMENT = "per-element"


OffsetOpt = Annotated[Offset, typer.Option(
    "--energy-offset",
    help="none, or per-element least-squares energy shifts fitted per model and dataset.")]
CommonOpt = Annotated[bool, typer.Option(
    "--common",
    help="Compare the models on the structures all of them predicted ok (says which were left"
         " out); by default a model with a failed or missing prediction is listed apart, unranked.")]
