"""A model name bound to its parameters (DESIGN.md, "Comparability and identity").

A model's binding is its calculator identity (``CalculatorSpec.identity``: "nep", "emt",
"pkg.mod:factory model=medium") and its parameter files by sha256. The first run that knows a
part records it; a later run under the same name must agree on every part both know, else it is
refused naming both hashes. A run that knows nothing of its parameters (``ingest predictions``
without ``--parameters``) may add to an unbound model only: under a bound name it must say which
parameters made its numbers. A model that holds results but no binding (from such ingests) is
bound only by a declaration (``warehouse model add NAME --file F --calculator SPEC``), since
nothing proves its earlier results came from the new run's parameters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from warehouse import models as m
from warehouse.errors import IngestError, WarehouseError
from warehouse.hashing import sha256_file
from warehouse.names import check_name


class BindingConflict(WarehouseError):
    """A run's parameters or calculator differ from those its model name is bound to."""


@dataclass(frozen=True, slots=True)
class Binding:
    calculator: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()  # (file name, sha256), in the order given

    @classmethod
    def of_files(cls, files: Sequence[str | Path], calculator: str | None = None) -> Binding:
        for f in files:
            if not Path(f).is_file():
                raise IngestError("no such parameter file", path=str(f))
        return cls(calculator, tuple((Path(f).name, sha256_file(f)) for f in files))

    @classmethod
    def of_model(cls, model: m.Model) -> Binding:
        params = tuple((p.get("file", ""), p["sha256"]) for p in model.parameters or ())
        if not params and model.parameters_sha256:  # migrated: the digest without the file list
            params = (("", model.parameters_sha256),)
        return cls(model.calculator, params)

    @property
    def sha256(self) -> str | None:
        """One digest of the parameter files: a single file's own sha256 (what ``sha256sum``
        prints), else the sha256 of their sorted sha256s, one a line."""
        shas = sorted(sha for _, sha in self.parameters)
        if len(shas) <= 1:
            return shas[0] if shas else None
        return hashlib.sha256("\n".join(shas).encode()).hexdigest()

    @property
    def empty(self) -> bool:
        return self.calculator is None and not self.parameters

    def describe(self) -> str:
        parts = []
        if self.calculator:
            parts.append(f"calculator {self.calculator!r}")
        if self.parameters:
            names = ", ".join(n for n, _ in self.parameters[:3] if n)
            more = f" and {len(self.parameters) - 3} more" if len(self.parameters) > 3 else ""
            parts.append(f"parameters {names + more + ' ' if names else ''}sha256 {self.sha256}")
        return "; ".join(parts) or "nothing (unbound)"

    def columns(self) -> dict[str, object]:
        """The ``models`` columns this binding sets (only its known parts)."""
        out: dict[str, object] = {}
        if self.calculator is not None:
            out["calculator"] = self.calculator
        if self.parameters:
            out["parameters"] = [{"file": n, "sha256": s} for n, s in self.parameters]
            out["parameters_sha256"] = self.sha256
            if len(self.parameters) == 1:
                out["file_sha256"] = self.parameters[0][1]
        return out


def versioned_name(name: str, version: str | None) -> str:
    """The stored name of ``name`` at ``version`` (``unep-v1@2``): a new version of a model is a
    new model, compared beside the old one."""
    check_name(name, what="model")
    if version is None:
        return name
    check_name(version, what="version")
    return check_name(f"{name}@{version}", what="model")


def _has_results(s: Session, model_id: int) -> int:
    return int(s.scalar(select(func.count()).select_from(m.Prediction)
                        .where(m.Prediction.model_id == model_id)) or 0)


def conflict_message(name: str, have: Binding, new: Binding, what: str) -> str | None:
    """Why ``new`` may not be stored under ``name`` bound to ``have``; None if it may."""
    fix = (f"store it under a new name (--model {name}-2) or as a new version"
           f" (--version 2 stores it as {name + '@2'!r})")
    if have.parameters and new.parameters and have.sha256 != new.sha256:
        return (f"model {name!r} is bound to parameters sha256 {have.sha256}"
                f" ({_files(have)}); {what} uses sha256 {new.sha256} ({_files(new)}): {fix}")
    if have.calculator and new.calculator and have.calculator != new.calculator:
        return (f"model {name!r} is bound to calculator {have.calculator!r} ({_sha(have)});"
                f" {what} uses {new.calculator!r}: {fix}")
    if not have.empty and new.empty:
        return (f"model {name!r} is bound to {have.describe()}; {what} does not say which"
                " parameters made its numbers: pass --parameters FILE (checked against the"
                f" binding), or {fix}")
    return None


def _files(b: Binding) -> str:
    names = [n for n, _ in b.parameters if n]
    return ", ".join(names[:3]) + (" ..." if len(names) > 3 else "") if names else "files unknown"


def _sha(b: Binding) -> str:
    return f"parameters sha256 {b.sha256}" if b.sha256 else "no parameter files"


def bind(s: Session, model: m.Model, new: Binding, *, what: str, declared: bool = False) -> list[str]:
    """Check ``new`` against ``model``'s binding and complete the binding; notes for the summary.

    ``what`` names the run in messages ("this evaluate", "this predictions file"). ``declared``:
    the user states the binding (``warehouse model add --file``), which may bind a model that
    already holds results.
    """
    have = Binding.of_model(model)
    if (problem := conflict_message(model.name, have, new, what)) is not None:
        raise BindingConflict(problem)
    if new.empty:
        return [] if not have.empty else [
            f"model {model.name!r} is not bound to parameter files; pass --parameters FILE to"
            " bind it"]
    if have.empty and not declared and (n := _has_results(s, model.id)):
        raise BindingConflict(
            f"model {model.name!r} holds {n} predictions stored without a parameter binding;"
            f" nothing shows they came from {new.describe()}. If they did, declare it first:"
            f" `warehouse model add {model.name} --file FILE [--calculator SPEC]`; else use a"
            " new model name")
    changed = {k: v for k, v in new.columns().items()
               if getattr(model, k) in (None, []) or (k == "file_sha256" and not have.parameters)}
    for k, v in changed.items():
        setattr(model, k, v)
    return [f"model {model.name!r} bound to {Binding.of_model(model).describe()}"] if changed else []


def bound_model(ld, name: str, binding: Binding, *, what: str, **attrs: object) -> int:
    """The id of model ``name`` (created with ``attrs`` if new), its binding checked against
    ``binding`` and completed, in the ingest's transaction (``ld`` is its Loader)."""
    model_id = ld.model(name, **attrs)
    # the row locked: two runs binding one new name at once must not both think it unbound
    model = ld.s.get(m.Model, model_id, with_for_update=True, populate_existing=True)
    ld.summary.notes.extend(bind(ld.s, model, binding, what=what))
    return model_id


def precheck(wh, name: str, binding: Binding, *, what: str) -> None:
    """:func:`bind`'s refusal, read-only and before the run's work (a refused evaluate must not
    first spend minutes in the calculator); the ingest's transaction checks again."""
    with wh.session() as s:
        model = s.scalar(select(m.Model).where(m.Model.name == name))
        if model is not None:
            bind(s, model, binding, what=what)
        s.rollback()
