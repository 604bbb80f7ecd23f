"""`warehouse sql`: catalog and lake behind one DuckDB SQL, read-only, agreeing with the leaderboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest.demo import run_demo
from queries.leaderboard import leaderboard
from queries.sql import SQLError, run_sql

DOC = Path(__file__).resolve().parents[1] / "docs" / "SQL.md"

PER_MODEL = """
SELECT model, dataset, count(*) AS n_atoms,
       1000 * sqrt(avg((dfx * dfx + dfy * dfy + dfz * dfz) / 3)) AS force_rmse,
       1000 * avg((abs(dfx) + abs(dfy) + abs(dfz)) / 3) AS force_mae
FROM atom_errors GROUP BY model, dataset ORDER BY model, dataset
"""


def duckdb_blocks() -> dict[str, str]:
    blocks = re.findall(r"```sql duckdb\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return {re.match(r"-- name: (\w+)", b).group(1): b for b in blocks}


@pytest.fixture
def demo(wh):
    run_demo(wh)
    return wh


def test_atom_errors_agree_with_the_leaderboards_force_metrics(demo) -> None:
    board = leaderboard(demo).set_index(["model", "dataset"])
    atoms = run_sql(demo, PER_MODEL).set_index(["model", "dataset"])
    assert list(atoms.index) == list(board.index)
    for key, row in atoms.iterrows():
        assert row.n_atoms == board.loc[key, "n_atoms"]
        assert row.force_rmse == pytest.approx(board.loc[key, "force_rmse"], rel=1e-9)
        assert row.force_mae == pytest.approx(board.loc[key, "force_mae"], rel=1e-9)


def test_per_element_atom_errors_agree_with_the_stored_per_element_sums(demo) -> None:
    stored = run_sql(demo, """
        SELECT m.name AS model, e.element, sum(e.force_sq_sum) AS sq, sum(e.force_n) AS n
        FROM prediction_element_errors e JOIN predictions p ON p.id = e.prediction_id
        JOIN models m ON m.id = p.model_id GROUP BY ALL ORDER BY ALL""")
    atoms = run_sql(demo, """
        SELECT model, element, sum(dfx * dfx + dfy * dfy + dfz * dfz) AS sq, 3 * count(*) AS n
        FROM atom_errors GROUP BY ALL ORDER BY ALL""")
    assert stored[["model", "element", "n"]].values.tolist() == atoms[["model", "element", "n"]].values.tolist()
    np.testing.assert_allclose(atoms.sq, stored.sq, rtol=1e-9)


def test_documented_per_atom_queries_run(demo) -> None:
    blocks = duckdb_blocks()
    assert {"atom_force_errors_per_element", "worst_atoms", "errors_against_coordination"} <= set(blocks)
    results = {name: run_sql(demo, q) for name, q in blocks.items()}
    per_element = results["atom_force_errors_per_element"]
    assert set(per_element.element) == {"Cu", "Ni"} and per_element.n_atoms.sum() == 3178 + 3158
    worst = results["worst_atoms"]
    assert len(worst) == 10 and worst.error_norm.is_monotonic_decreasing
    coordination = results["errors_against_coordination"]
    # fcc Cu and Ni: most atoms of these cells have 12 neighbours within 3 Å
    assert coordination.loc[coordination.n_atoms.idxmax(), "n_neighbours"] == 12


def test_catalog_is_read_only_and_names_are_listed(demo) -> None:
    names = set(run_sql(demo, "SHOW TABLES").name)
    assert {"structures", "predictions", "v_leaderboard", "atoms", "atom_errors", "predicted_forces",
            "reference_forces", "md_values", "lake_positions"} <= names
    schema = "main" if demo.dialect == "sqlite" else "public"
    with pytest.raises(SQLError, match="read-only|read only|READ_ONLY"):
        run_sql(demo, f"DELETE FROM catalog.{schema}.structures")
    assert int(run_sql(demo, "SELECT count(*) AS n FROM structures").n[0]) == 62


def test_files_without_a_catalog_row_are_not_read(demo) -> None:
    before = int(run_sql(demo, "SELECT count(*) AS n FROM lake_positions").n[0])
    stray = Path(demo.lake.full("positions/run=999/part-999-stray.parquet"))
    stray.parent.mkdir(parents=True)
    pq.write_table(pa.table({"structure_id": [1], "atom_index": [0], "Z": pa.array([29], pa.int16()),
                             "x": [0.0], "y": [0.0], "z": [0.0]}), stray)
    assert int(run_sql(demo, "SELECT count(*) AS n FROM lake_positions").n[0]) == before == 3178 + 3158


def test_an_empty_warehouse_has_every_view(wh) -> None:
    assert run_sql(wh, "SELECT * FROM atom_errors").empty
    assert run_sql(wh, "SELECT * FROM atoms").columns.tolist() == [
        "structure_id", "atom_index", "element", "atomic_number", "x", "y", "z"]


def test_cli_sql_formats_and_errors(cli) -> None:
    assert cli("demo").exit_code == 0
    res = cli("sql", "SELECT count(*) AS n FROM structures", "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == [{"n": 62}]
    res = cli("sql", "SELECT element, count(*) AS n FROM atoms GROUP BY 1 ORDER BY 1", "-f", "csv")
    assert res.stdout.split()[1:] == ["Cu,3178", "Ni,3158"]
    res = cli("sql", "SELECT nonsense FROM atoms")
    assert res.exit_code == 1 and "SQL error" in res.output and "Traceback" not in res.output
