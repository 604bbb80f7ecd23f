"""Every command has help: a one-line summary and an Example line (as sqlite-utils does)."""

from __future__ import annotations

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from cli.app import app


def _commands(group, prefix=()):
    for name, cmd in sorted(group.commands.items()):
        path = (*prefix, name)
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, path)
        else:
            yield path, cmd


ALL = list(_commands(get_command(app)))


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) for p, _ in ALL])
def test_command_has_summary_and_example(path, cmd) -> None:
    doc = (cmd.help or "").strip()
    assert doc, f"`warehouse {' '.join(path)}` has no help"
    assert "Example:" in doc, f"`warehouse {' '.join(path)}` help lacks an 'Example:' line"
    res = CliRunner().invoke(app, [*path, "--help"])
    assert res.exit_code == 0, res.output
