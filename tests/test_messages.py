"""Messages a new user meets first (issue 16, defect 9, and `warehouse --version`)."""

from __future__ import annotations

from pathlib import Path

import pytest

FOLDER_COMMANDS = {
    "structures": ["ingest", "structures", "{dir}", "-d", "x", "-l", "PBE"],
    "predictions": ["ingest", "predictions", "{dir}", "-m", "x"],
    "timings": ["ingest", "timings", "{dir}", "-m", "x"],
    "md": ["ingest", "md", "{dir}", "-s", "x"],
}


@pytest.mark.parametrize("name", list(FOLDER_COMMANDS))
def test_a_folder_is_named_a_folder(shared_data: Path, cli, name: str) -> None:
    folder = shared_data / "lammps"  # a real folder of real files, none of them at this path
    args = [a.replace("{dir}", str(folder)) for a in FOLDER_COMMANDS[name]]
    res = cli(*args)
    assert res.exit_code == 1, res.output
    assert "folder" in res.output and "no such file" not in res.output
    assert "Traceback" not in res.output


def test_a_missing_file_is_still_no_such_file(tmp_path: Path, cli) -> None:
    res = cli("ingest", "structures", str(tmp_path / "none.xyz"), "-d", "x", "-l", "PBE")
    assert res.exit_code == 1 and "no such file" in res.output


@pytest.mark.parametrize("command", [["leaderboard"], ["pareto"]], ids=["leaderboard", "pareto"])
def test_an_empty_warehouse_says_it_is_empty(cli, command: list[str]) -> None:
    res = cli(*command)
    assert res.exit_code == 1
    assert "empty" in res.output and "excluded" not in res.output


def test_version(cli) -> None:
    from warehouse import __version__

    res = cli("--version")
    assert res.exit_code == 0 and __version__ in res.stdout
