"""The command line built for one top-level command (cli.app.build) is that part of the full one."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.main import get_command

from cli.app import COMMANDS, build, command_name


def _shape(cmd) -> object:
    """What a user can type and see: options, arguments, help, and the subcommands' shapes."""
    params = [(p.name, tuple(p.opts), p.required, getattr(p, "help", None)) for p in cmd.params]
    subs = getattr(cmd, "commands", None)
    return (cmd.help, params,
            None if subs is None else {n: _shape(c) for n, c in sorted(subs.items())})


FULL = get_command(build())


def test_the_full_command_line_has_every_command() -> None:
    assert sorted(FULL.commands) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_one_command_is_built_as_in_the_full_command_line(name: str) -> None:
    part = get_command(build(name))
    assert list(part.commands) == [name]
    assert _shape(part.commands[name]) == _shape(FULL.commands[name])
    assert [p.opts for p in part.params] == [p.opts for p in FULL.params]  # --url, --lake


@pytest.mark.parametrize("args,name", [
    (["ingest", "structures", "a.xyz"], "ingest"),
    (["--url", "sqlite:///x.db", "--lake=/tmp/l", "leaderboard"], "leaderboard"),
    (["--url=sqlite:///x.db", "db", "upgrade"], "db"),
    ([], None), (["--help"], None), (["--url", "u", "--help"], None), (["ingst"], None),
    (["--url"], None),
])
def test_command_name(args: list[str], name: str | None) -> None:
    assert command_name(args) == name


def test_an_unknown_command_gets_the_full_error() -> None:
    res = subprocess.run([sys.executable, "-c", "from cli.app import main; main()", "ingst"],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert "No such command" in res.stderr and "ingst" in res.stderr


def test_one_command_imports_only_its_modules() -> None:
    code = ("import sys\nfrom cli.app import main\nsys.argv = ['warehouse', 'ingest', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('cli.')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(eval(res.stdout.strip().splitlines()[-1]))
    assert {"cli.ingest", "cli.timings", "cli.grades", "cli.md"} <= loaded
    assert not loaded & {"cli.plot", "cli.leaderboard", "cli.pareto", "cli.uq", "cli.ensemble"}
