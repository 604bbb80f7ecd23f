"""Every ``warehouse`` command imports cli.app first: it must stay free of heavy libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("pandas", "scipy", "matplotlib")

PROBE = """
import sys
from cli.app import main

sys.argv = ["warehouse", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print("heavy:" + ",".join(sorted({m.split(".")[0] for m in sys.modules} & {%s})))
""" % ", ".join(map(repr, HEAVY))


def _heavy_after(*args: str) -> set[str]:
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                         check=True)
    line = res.stdout.strip().splitlines()[-1]
    assert line.startswith("heavy:"), res.stdout
    return set(filter(None, line.removeprefix("heavy:").split(",")))


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = f"import sys, cli.app; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [
    ("--help",), ("ingest", "structures", "--help"), ("uq", "--help"), ("plot", "uq", "--help"),
    ("pareto", "--help"), ("leaderboard", "--help"),
], ids=" ".join)
def test_help_loads_no_heavy_library(args: tuple[str, ...]) -> None:
    assert _heavy_after(*args) == set()


def test_env_names_match_the_settings() -> None:
    from cli.context import LAKE_ENV, URL_ENV
    from warehouse import settings

    assert (URL_ENV, LAKE_ENV) == (settings.URL_ENV, settings.LAKE_ENV)


def test_uq_options_are_the_enums_of_queries_uq() -> None:
    from queries import uq, uq_options

    for name in ("DEFAULT_N_BOOT", "By", "Level", "Quantity", "Show"):
        assert getattr(uq, name) is getattr(uq_options, name)


def test_an_ingest_imports_only_its_own_engines_dialect(tmp_path) -> None:
    """On SQLite, an ingest into an existing catalog imports neither PostgreSQL's dialect nor
    alembic (~20 ms and ~0.1 s of every ingest's start)."""
    from ingest_helpers import write_fcc_xyz

    from warehouse import open_warehouse

    url, lake = f"sqlite:///{tmp_path / 'c.sqlite'}", str(tmp_path / "lake")
    open_warehouse(url, lake).close()  # the schema exists, as after `warehouse db upgrade`
    write_fcc_xyz(tmp_path / "a.xyz", 3, reps=2)
    probe = PROBE.replace('print("heavy:"', 'print("loaded:" + ",".join(sorted(m for m in'
                          ' ("sqlalchemy.dialects.postgresql", "alembic") if m in sys.modules)))'
                          '\nprint("heavy:"')
    res = subprocess.run([sys.executable, "-c", probe, "--url", url, "--lake", lake, "ingest",
                          "structures", str(tmp_path / "a.xyz"), "-d", "d"],
                         capture_output=True, text=True, check=True)
    assert "added 1 levels of theory" in res.stdout, res.stdout + res.stderr
    assert "loaded:\n" in res.stdout + "\n", res.stdout
