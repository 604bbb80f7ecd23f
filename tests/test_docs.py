"""Every documented command line runs, literally, on the real shared data (both engines).

The convention (also stated in README.md, "Documented commands are tested"):

* A command line is a line starting with ``warehouse `` inside a fenced code block whose info
  string is ``bash``, ``sh``, ``shell``, ``console`` or empty, in README.md or docs/*.md. Usage
  grammar (``[--option]``, ``a|b``) goes in a ```` ```text ```` block and is not run. A new
  documented command is picked up by this test without any change here.
* The lines of one document run in order, in one fresh warehouse, in a scratch folder (so
  ``--out fig.png`` lands there). A ``# ...`` comment ends the command.
* File names in the examples are placeholders for real files of ../shared/data: see
  :data:`PLACEHOLDERS` (a token is replaced when it equals a key).
* A line that cannot run here says why in its comment: ``# docs-test: skip <reason>``; one that
  needs PostgreSQL says ``# docs-test: postgresql`` and runs on that engine only.
* A document whose commands need stored data no command can produce from ../shared/data (the
  UNEP-v1 variants exist only as fixture predictions) gets it from :data:`SETUP`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_FENCES = {"", "bash", "sh", "shell", "console"}
SKIP = "docs-test: skip"
POSTGRESQL_ONLY = "docs-test: postgresql"

# placeholder token -> file under ../shared/data
PLACEHOLDERS = {
    "train.xyz": "gpumd/nep_train_PbTe/train.xyz",
    "nep_train/": "gpumd/nep_train_PbTe",
    "nep:nep.txt": "nep:{shared}/gpumd/nep_train_PbTe/nep.txt",
    "log.Cu": "gpumd_tutorials/PdCuNiP_melting/Cu/log.Cu",
    "thermo.out": "gpumd_tutorials/PdCuNiP_melting/Cu/thermo.out",
    "log.lammps": "lammps/mliap_ace_Ta/log.03Mar24.mliap.pytorch.ace.NN.g++.1",
    "props.json": "gpumd_wizard/unep_v1_dft_ref/eos/data.json",
}


def _setup_uq(wh, shared: Path) -> None:
    from unep_fixtures import ingest_unep

    ingest_unep(wh, shared, models=("unep-v1", "unep-v1-4-4-30", "unep-v1-6-6-80", "eam-zhou"),
                sets=("eos",))


SETUP: dict[str, Callable] = {"UQ.md": _setup_uq}


def command_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every documented command line of ``path``."""
    out, fence = [], None
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip().lower()
            continue
        if fence in RUN_FENCES and stripped.startswith("warehouse "):
            out.append((n, stripped))
    return out


def _args(text: str, shared: Path) -> list[str]:
    args = shlex.split(text, comments=True)[1:]
    mapped = []
    for a in args:
        target = PLACEHOLDERS.get(a)
        if target is None:
            mapped.append(a)
        elif "{shared}" in target:
            mapped.append(target.format(shared=shared))
        else:
            mapped.append(str(shared / target))
    return mapped


def test_the_convention_finds_commands() -> None:
    found = {p.name: command_lines(p) for p in DOCS}
    assert len(found["README.md"]) >= 15
    for lines in found.values():
        for n, text in lines:
            assert not re.search(r"\s\.\.\.(\s|$)|\[--", text.split("#")[0]), (
                f"line {n}: usage grammar in a runnable block ({text}); put it in a ```text block")


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_documented_commands_run(doc: Path, shared_data: Path, cli, wh, db_url: str,
                                 tmp_path: Path, monkeypatch) -> None:
    lines = command_lines(doc)
    if not lines:
        pytest.skip(f"{doc.name} documents no command line")
    monkeypatch.chdir(tmp_path)
    if doc.name in SETUP:
        SETUP[doc.name](wh, shared_data)
    postgresql = db_url.startswith("postgresql")
    ran = other_engine = 0
    for n, text in lines:
        comment = text.partition("#")[2]
        if SKIP in comment:
            assert comment.split(SKIP, 1)[1].strip(), f"{doc.name}:{n}: a skip needs its reason"
            continue
        if POSTGRESQL_ONLY in comment and not postgresql:
            other_engine += 1
            continue
        res = cli(*_args(text, shared_data))
        assert res.exit_code == 0, f"{doc.name}:{n}: `{text}` exited {res.exit_code}:\n{res.output}"
        assert "Traceback" not in res.output, f"{doc.name}:{n}: {res.output}"
        ran += 1
    if not ran and other_engine:
        pytest.skip(f"{doc.name}: its command lines need PostgreSQL")
    assert ran, f"{doc.name}: every command line is skipped"
