"""One SQL over catalog and lake: DuckDB with the catalog attached read-only and the lake as views.

``connect(wh)`` returns a DuckDB connection in which

- every table and view of the catalog (SQLite file or PostgreSQL) is visible under its own name
  (``structures``, ``predictions``, ``v_leaderboard``, ...), read through DuckDB's sqlite and
  postgres scanners, attached ``READ_ONLY``: nothing typed here can change the catalog;
- every kind of lake file is a view over the Parquet files the catalog records (``lake_positions``,
  ``lake_reference_forces``, ``lake_predicted_forces``, ``lake_md_series``, ``lake_atom_grades``,
  ``lake_training``), on a local or an S3 lake. Only files with a catalog row are read: a running
  ingest's files, or orphans, never show;
- per-atom views join the two (:data:`VIEWS`): ``atoms``, ``reference_forces``,
  ``predicted_forces``, ``atom_errors`` (predicted minus reference force, eV/Å, per model, dataset
  and atom, paired as the leaderboard pairs them: through ``prediction_errors``) and
  ``md_values`` (MD series rows with their run and series name).

Units are the catalog's: eV, Å, eV/Å, GPa. The scanners and httpfs ship as Python packages
(``duckdb-extension-*``), loaded from their files: no download at run time.
"""

from __future__ import annotations

import os
import re
from importlib import import_module
from importlib.resources import files
from urllib.parse import urlsplit

import duckdb
import pandas as pd
from ase.data import chemical_symbols
from sqlalchemy import inspect

from warehouse import Warehouse
from warehouse.errors import WarehouseError

CATALOG = "catalog"

# The lake's file kinds and the columns of an empty one (a view needs a schema with no files).
LAKE_KINDS: dict[str, str] = {
    "positions": "structure_id BIGINT, atom_index INTEGER, atomic_number SMALLINT,"
                 " x DOUBLE, y DOUBLE, z DOUBLE",
    "reference_forces": "reference_id BIGINT, structure_id BIGINT, atom_index INTEGER,"
                        " fx DOUBLE, fy DOUBLE, fz DOUBLE",
    "predicted_forces": "prediction_id BIGINT, structure_id BIGINT, atom_index INTEGER,"
                        " fx DOUBLE, fy DOUBLE, fz DOUBLE",
    "md_series": "md_series_id BIGINT",
    "atom_grades": "structure_id BIGINT, atom_index INTEGER, grade DOUBLE",
    "training": "generation BIGINT",
}
# The positions files hold columns ``Z`` (atomic number) and ``z`` (coordinate), which SQL's
# case-insensitive names cannot tell apart: DuckDB reads the second as ``z_1``.
LAKE_SELECT = {"positions": 'structure_id, atom_index, "Z" AS atomic_number, x, y, z_1 AS z'}

VIEWS: dict[str, str] = {
    "atoms": """
        SELECT p.structure_id, p.atom_index, e.symbol AS element, p.atomic_number, p.x, p.y, p.z
        FROM lake_positions p JOIN elements e ON e.atomic_number = p.atomic_number""",
    "reference_forces": """
        SELECT f.reference_id, r.structure_id, l.name AS level_of_theory, f.atom_index,
               f.fx, f.fy, f.fz
        FROM lake_reference_forces f
        JOIN "references" r ON r.id = f.reference_id
        JOIN levels_of_theory l ON l.id = r.level_of_theory_id""",
    "predicted_forces": """
        SELECT f.prediction_id, m.name AS model, f.structure_id, f.atom_index, f.fx, f.fy, f.fz
        FROM lake_predicted_forces f
        JOIN predictions p ON p.id = f.prediction_id
        JOIN models m ON m.id = p.model_id""",
    # One row per (model, dataset, atom) that the leaderboard's force metrics count: an ok
    # prediction paired with the dataset's reference through prediction_errors.
    "atom_errors": """
        WITH pairs AS MATERIALIZED (
            SELECT pe.prediction_id, pe.reference_id, m.name AS model, d.name AS dataset
            FROM prediction_errors pe
            JOIN predictions p ON p.id = pe.prediction_id
            JOIN "references" r ON r.id = pe.reference_id
            JOIN models m ON m.id = p.model_id
            JOIN dataset_members dm ON dm.structure_id = p.structure_id
            JOIN datasets d ON d.id = dm.dataset_id AND d.level_of_theory_id = r.level_of_theory_id
            WHERE p.status = 'ok'
        )
        SELECT pairs.model, pairs.dataset, pf.structure_id, pf.atom_index, e.symbol AS element,
               pf.fx - rf.fx AS dfx, pf.fy - rf.fy AS dfy, pf.fz - rf.fz AS dfz
        FROM lake_predicted_forces pf
        JOIN pairs ON pairs.prediction_id = pf.prediction_id
        -- (structure_id, atom_index) is a key on both sides: joined on it, the planner cannot
        -- pair atoms by atom_index alone (that blew up to ~N_atoms^2 / 125 rows in a test)
        JOIN lake_reference_forces rf ON rf.structure_id = pf.structure_id
                                     AND rf.atom_index = pf.atom_index
                                     AND rf.reference_id = pairs.reference_id
        JOIN lake_positions pos ON pos.structure_id = pf.structure_id
                               AND pos.atom_index = pf.atom_index
        JOIN elements e ON e.atomic_number = pos.atomic_number""",
    "md_values": """
        SELECT s.md_run_id, r.system, m.name AS model, s.name AS series, v.*
        FROM lake_md_series v
        JOIN md_series s ON s.id = v.md_series_id
        JOIN md_runs r ON r.id = s.md_run_id
        LEFT JOIN models m ON m.id = r.model_id""",
}


ATOM_ERRORS = re.compile(r"\batom_errors\b", re.IGNORECASE)


class SQLError(WarehouseError):
    """A query that DuckDB refused (syntax, unknown name, type): its message, unchanged."""


def connect(wh: Warehouse) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the catalog and the lake of ``wh`` behind one SQL."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    _load(con, "sqlite_scanner" if wh.dialect == "sqlite" else "postgres_scanner")
    con.execute(f"ATTACH {_quote(_catalog_dsn(wh))} AS {CATALOG} "
                f"(TYPE {'sqlite' if wh.dialect == 'sqlite' else 'postgres'}, READ_ONLY)")
    schema = "main" if wh.dialect == "sqlite" else "public"
    names = inspect(wh.engine).get_table_names() + inspect(wh.engine).get_view_names()
    for name in names:
        if name != "alembic_version":
            con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM {CATALOG}.{schema}."{name}"')
    con.execute("CREATE TABLE elements (atomic_number SMALLINT, symbol VARCHAR)")
    con.executemany("INSERT INTO elements VALUES (?, ?)", list(enumerate(chemical_symbols)))
    if wh.lake.root_uri.startswith("s3://"):
        _load(con, "httpfs")
        _s3_secret(con)
    _lake_views(con, wh)
    for name, body in VIEWS.items():
        con.execute(f'CREATE VIEW "{name}" AS {body}')
    return con


def run_sql(wh: Warehouse, query: str) -> pd.DataFrame:
    """The result of ``query`` (DuckDB's SQL) over catalog and lake, as a DataFrame.

    A query on ``atom_errors`` runs with DuckDB's join-order optimizer off. The catalog scanners
    give it no cardinalities, and it then hashed the 75M predicted atoms instead of the small
    sides (2.8x raw DuckDB's time on the same files; 1.3x with the view's written order, whose
    right-hand sides are the small ones: see ``benchmarks/sql_lake.py``). Tables joined to it in
    such a query are hashed as written: put the larger one on the left.
    """
    con = connect(wh)
    if ATOM_ERRORS.search(query):
        con.execute("SET disabled_optimizers = 'join_order'")
    try:
        return con.execute(query).df()
    except duckdb.Error as exc:
        raise SQLError(f"SQL error: {str(exc).splitlines()[0]}") from exc
    finally:
        con.close()


def _lake_views(con: duckdb.DuckDBPyConnection, wh: Warehouse) -> None:
    rows = con.execute("SELECT kind, path FROM lake_files ORDER BY id").fetchall()
    by_kind: dict[str, list[str]] = {}
    for kind, path in rows:
        by_kind.setdefault(kind, []).append(_file_uri(wh, path))
    for kind, empty in {**LAKE_KINDS, **{k: "" for k in by_kind if k not in LAKE_KINDS}}.items():
        paths = by_kind.get(kind)
        if paths:
            listing = "[" + ", ".join(_quote(p) for p in paths) + "]"
            body = (f"SELECT {LAKE_SELECT.get(kind, '*')} FROM read_parquet({listing},"
                    " union_by_name = true, hive_partitioning = false)")
        else:
            cols = ", ".join(f"NULL::{c.split()[1]} AS {c.split()[0]}" for c in empty.split(","))
            body = f"SELECT {cols} WHERE false"
        con.execute(f'CREATE VIEW "lake_{kind}" AS {body}')


def _file_uri(wh: Warehouse, rel: str) -> str:
    full = wh.lake.full(rel)
    return f"s3://{full}" if wh.lake.root_uri.startswith("s3://") else full


def _catalog_dsn(wh: Warehouse) -> str:
    url = wh.engine.url
    if wh.dialect == "sqlite":
        if not url.database or url.database == ":memory:":
            raise WarehouseError("warehouse sql needs a catalog file or server, not an in-memory"
                                 " SQLite database")
        return url.database
    parts = {"host": url.host, "port": url.port, "dbname": url.database,
             "user": url.username, "password": url.password}
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


def _s3_secret(con: duckdb.DuckDBPyConnection) -> None:
    """Endpoint and credentials from the standard AWS environment variables, as pyarrow uses."""
    opts = {"KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID"),
            "SECRET": os.environ.get("AWS_SECRET_ACCESS_KEY"),
            "SESSION_TOKEN": os.environ.get("AWS_SESSION_TOKEN"),
            "REGION": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        split = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        opts |= {"ENDPOINT": split.netloc, "USE_SSL": split.scheme == "https",
                 "URL_STYLE": "path"}
    body = ", ".join(f"{k} {_quote(v) if isinstance(v, str) else str(v).lower()}"
                     for k, v in opts.items() if v is not None)
    con.execute(f"CREATE SECRET lake (TYPE s3{', ' + body if body else ''})")


def _load(con: duckdb.DuckDBPyConnection, extension: str) -> None:
    """Load a DuckDB extension from its ``duckdb-extension-<name>`` package's file."""
    package = f"duckdb_extension_{extension}"
    try:
        root = files(import_module(package))
    except ImportError:
        raise WarehouseError(
            f"warehouse sql needs the Python package {package.replace('_', '-')}"
            " (pip install -e . installs it)"
        ) from None
    found = list(root.joinpath("extensions").iterdir()) if root.joinpath("extensions").is_dir() else []
    paths = [p / f"{extension}.duckdb_extension" for p in found
             if (p / f"{extension}.duckdb_extension").is_file()]
    if not paths:
        raise WarehouseError(f"package {package} holds no {extension}.duckdb_extension file")
    con.execute(f"LOAD {_quote(str(paths[0]))}")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
