"""Two engines, one suite.

SQLite by default. With ``WAREHOUSE_TEST_URL`` set to a PostgreSQL server URL, every test gets a
fresh database on that server, cloned from a template migrated once per session. With ``CI`` set,
an unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from warehouse import Warehouse, open_warehouse
from warehouse.settings import normalise_url

TEST_URL = normalise_url(os.environ.get("WAREHOUSE_TEST_URL", "")) or None
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WAREHOUSE_SHARED", REPO.parent / "shared")) / "data"


def engine_name() -> str:
    return "postgresql" if TEST_URL else "sqlite"


def pytest_report_header(config: pytest.Config) -> str:
    where = make_url(TEST_URL).render_as_string(hide_password=True) if TEST_URL else "temporary files"
    shared = SHARED_DATA if SHARED_DATA.is_dir() else f"{SHARED_DATA} (absent: real-data tests skip)"
    return f"warehouse test engine: {engine_name()} ({where}); shared data: {shared}"


class _Postgres:
    """Creates per-test databases from a migrated template on the server of TEST_URL."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT")
        self.template = f"wh_tmpl_{uuid.uuid4().hex[:10]}"
        self.created: list[str] = []

    def start(self) -> None:
        with self.admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{self.template}"'))
        from warehouse import migrate
        from warehouse.db import make_engine

        eng = make_engine(self.url.set(database=self.template).render_as_string(hide_password=False))
        migrate.upgrade(eng)
        eng.dispose()

    def new_url(self) -> str:
        name = f"wh_t_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        self.created.append(name)
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        with self.admin.connect() as c:
            c.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"
            ), {"d": name})
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))

    def stop(self) -> None:
        for name in [*self.created, self.template]:
            self.drop(name)
        self.admin.dispose()


@pytest.fixture(scope="session")
def _pg() -> Iterator[_Postgres | None]:
    if not TEST_URL:
        yield None
        return
    pg = _Postgres(TEST_URL)
    try:
        pg.start()
    except Exception as exc:
        if os.environ.get("CI"):
            raise RuntimeError(f"PostgreSQL at {TEST_URL} is unreachable: {exc}") from exc
        pytest.skip(f"PostgreSQL at {TEST_URL} is unreachable: {exc}")
    yield pg
    pg.stop()


@pytest.fixture
def db_url(tmp_path: Path, _pg: _Postgres | None) -> str:
    """A fresh, empty-or-migrated catalog URL for one test."""
    if _pg is None:
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return _pg.new_url()


@pytest.fixture
def lake_path(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def wh(db_url: str, lake_path: Path) -> Iterator[Warehouse]:
    """An open warehouse on the engine under test, with its own lake folder."""
    w = open_warehouse(db_url, str(lake_path))
    yield w
    w.close()


@pytest.fixture
def cli(db_url: str, lake_path: Path):
    """Run the ``warehouse`` CLI against the test warehouse: ``cli("leaderboard", "-f", "json")``."""
    from typer.testing import CliRunner

    from cli.app import app

    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(app, ["--url", db_url, "--lake", str(lake_path), *map(str, args)],
                             input=input)

    return run


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real third-party files of ../shared/data; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA
