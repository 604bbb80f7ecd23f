"""`warehouse demo` runs anywhere: no server, no ../shared, from the data bundled in the package."""

from __future__ import annotations

import json

from ingest.demo import run_demo
from queries.leaderboard import leaderboard


def test_demo_builds_a_real_leaderboard(cli) -> None:
    res = cli("demo")
    assert res.exit_code == 0, res.output
    assert "mlearn-Cu-test" in res.stdout and "mlearn-Ni-test" in res.stdout
    assert "another zero" in res.stdout and "per-element" in res.stdout
    first = res.stdout[: res.stdout.index("another zero")]
    assert "energy_mae (meV/atom)" in first and "force_rmse (meV/Å)" in first  # units, issue 16
    assert "-0.0000" not in res.stdout  # a shift that rounds to zero prints without a sign
    res = cli("leaderboard", "--model", "emt", "--format", "json")
    rows = {r["dataset"]: r for r in json.loads(res.stdout)}
    assert rows["mlearn-Cu-test"]["n_structures"] == 31
    assert rows["mlearn-Cu-test"]["n_atoms"] == 3178
    assert rows["mlearn-Ni-test"]["n_atoms"] == 3158
    for row in rows.values():
        assert row["n_failed"] == 0 and row["n_missing"] == 0
        # EMT is a real, if crude, Cu/Ni potential: forces within a few hundred meV/Å of DFT
        assert 10 < row["force_rmse"] < 1000
        assert row["stress_rmse"] is not None


def test_demo_twice_adds_nothing(wh) -> None:
    run_demo(wh)
    before = leaderboard(wh)
    summaries = run_demo(wh)
    assert all(s.nothing_new for s in summaries)
    after = leaderboard(wh)
    assert before.equals(after)


def test_info_lists_engine_revision_counts_datasets_and_models(cli) -> None:
    cli("demo")
    res = cli("info")
    assert res.exit_code == 0, res.output
    from warehouse.migrate import head_revision

    assert f"revision: {head_revision()}" in res.stdout
    assert "structures" in res.stdout and "62" in res.stdout
    assert "mlearn-Cu-test" in res.stdout and "emt" in res.stdout
