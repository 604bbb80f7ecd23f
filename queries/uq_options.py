"""The enums and defaults of :mod:`queries.uq` that the CLI needs to build its options.

They live apart so that defining the ``warehouse uq`` and ``warehouse plot uq`` options does not
import :mod:`queries.uq` (numpy, pandas, scipy.stats); :mod:`queries.uq` re-exports them.
"""

from __future__ import annotations

from enum import StrEnum

DEFAULT_N_BOOT = 200


class Quantity(StrEnum):
    ENERGY = "energy"
    FORCE = "force"


class Level(StrEnum):
    STRUCTURE = "structure"
    ATOM = "atom"


class By(StrEnum):
    DATASET = "dataset"
    SUBSET = "subset"
    ELEMENT = "element"
    N_ELEMENTS = "n_elements"


class Show(StrEnum):
    SUMMARY = "summary"
    CALIBRATION = "calibration"
    THRESHOLD = "threshold"
