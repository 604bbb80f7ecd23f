"""Many writers at once, nothing lost: real `warehouse` processes run side by side.

Every test starts the venv's console script as a user's jobs would (a cluster's jobs all end
with an ingest), on the engine under test, and checks the exact counts afterwards plus
`warehouse check`. Files are small (ASE-free fcc cells), so that the tests stay quick.
"""

from __future__ import annotations

import random
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from ingest_helpers import write_fcc_xyz
from warehouse import open_warehouse

WAREHOUSE = Path(sys.executable).with_name("warehouse")
N = 40  # structures per file: 40 x 32 atoms

pytestmark = pytest.mark.skipif(not WAREHOUSE.exists(), reason="the warehouse console script is not installed")


def _cmd(url: str, lake: Path, *args: object) -> list[str]:
    return [str(WAREHOUSE), "--url", url, "--lake", str(lake), *map(str, args)]


def _run_all(cmds: list[list[str]], timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """Start every command at once; wait for all."""
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    out = []
    for p, c in zip(procs, cmds, strict=True):
        o, e = p.communicate(timeout=timeout)
        out.append(subprocess.CompletedProcess(c, p.returncode, o, e))
    return out


def _assert_all_ok(results: list[subprocess.CompletedProcess]) -> None:
    for r in results:
        assert r.returncode == 0, f"{r.args[5:]} -> {r.returncode}\n{r.stderr[-3000:]}"
        assert "Traceback" not in r.stderr, r.stderr


def _files(tmp_path: Path, n: int, *, seed0: int = 100) -> list[Path]:
    paths = []
    for i in range(n):
        path = tmp_path / f"part{i}.xyz"
        write_fcc_xyz(path, N, reps=2, seed=seed0 + i)
        paths.append(path)
    return paths


def _predictions_of(path: Path, out: Path, shift: float) -> Path:
    """The structures of ``path`` with energies shifted by ``shift`` eV: a model's predictions."""
    def bump(match: re.Match) -> str:
        return f"energy={float(match.group(1)) + shift:.8f}"

    out.write_text(re.sub(r"energy=(-?[0-9.]+)", bump, path.read_text()))
    return out


def _counts(url: str, lake: Path) -> dict[str, int]:
    with open_warehouse(url, str(lake)) as wh:
        return wh.counts()


def _check_clean(url: str, lake: Path) -> None:
    res = subprocess.run(_cmd(url, lake, "check"), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_eight_ingests_at_once_into_a_new_dataset_land_every_structure_once(
    db_url, lake_path, tmp_path
) -> None:
    """4 distinct files + the first one 4 more times, all into a dataset and level that do not
    exist yet: every process exits 0 and each structure is stored once."""
    files = _files(tmp_path, 4)
    jobs = [*files, *[files[0]] * 4]
    results = _run_all([_cmd(db_url, lake_path, "ingest", "structures", f, "--dataset", "conc",
                             "--level-of-theory", "EMT-new") for f in jobs])
    _assert_all_ok(results)
    counts = _counts(db_url, lake_path)
    assert counts["structures"] == 4 * N
    assert counts["dataset_members"] == 4 * N
    assert counts["references"] == 4 * N
    assert counts["datasets"] == 1 and counts["levels_of_theory"] == 1
    assert sum(f"already present {N} structures" in r.stdout + r.stderr
               for r in results) >= 4  # the repeats found the rows of the first
    _check_clean(db_url, lake_path)


def test_concurrent_files_that_share_structures_land_each_once(db_url, lake_path, tmp_path) -> None:
    """Overlapping files at once into an existing dataset: on PostgreSQL the later writer of a
    shared structure collides with the earlier one, is undone and retried (the retry finds it
    present); on SQLite they take turns. Either way: all exit 0, every structure once."""
    whole = tmp_path / "whole.xyz"
    write_fcc_xyz(whole, 4 * N, reps=2, seed=900)
    lines = whole.read_text().splitlines(keepends=True)
    per = 2 + 32  # lines per frame: count, comment, 32 atoms
    parts = []
    for i, (a, b) in enumerate([(0, 2 * N), (N, 3 * N), (2 * N, 4 * N), (0, 4 * N)]):
        path = tmp_path / f"overlap{i}.xyz"
        path.write_text("".join(lines[a * per:b * per]))
        parts.append(path)
    seed = tmp_path / "seed.xyz"
    write_fcc_xyz(seed, 1, reps=2, seed=901)
    _assert_all_ok(_run_all([_cmd(db_url, lake_path, "ingest", "structures", seed, "-d", "o")]))
    _assert_all_ok(_run_all([_cmd(db_url, lake_path, "ingest", "structures", p, "-d", "o")
                             for p in parts]))
    counts = _counts(db_url, lake_path)
    assert counts["structures"] == counts["dataset_members"] == counts["references"] == 4 * N + 1
    _check_clean(db_url, lake_path)


def test_four_prediction_ingests_for_the_same_new_model(db_url, lake_path, tmp_path) -> None:
    files = _files(tmp_path, 2, seed0=300)
    for f in files:
        res = subprocess.run(_cmd(db_url, lake_path, "ingest", "structures", f, "-d", "p"),
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
    preds = [_predictions_of(f, tmp_path / f"pred{i}.xyz", 0.01) for i, f in enumerate(files)]
    jobs = [preds[0], preds[1], preds[0], preds[1]]
    _assert_all_ok(_run_all([_cmd(db_url, lake_path, "ingest", "predictions", p, "--model",
                                  "brand-new") for p in jobs]))
    counts = _counts(db_url, lake_path)
    assert counts["models"] == 1
    assert counts["predictions"] == 2 * N
    _check_clean(db_url, lake_path)


@pytest.fixture
def fresh_url(tmp_path, _pg) -> str:
    """A catalog that does not exist yet (SQLite) or an empty database (PostgreSQL)."""
    if _pg is None:
        return f"sqlite:///{tmp_path / 'new' / 'catalog.sqlite'}"
    name = f"wh_t_{uuid.uuid4().hex[:12]}"
    with _pg.admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    _pg.created.append(name)
    return _pg.url.set(database=name).render_as_string(hide_password=False)


def test_four_first_uses_at_once_on_a_fresh_catalog(fresh_url, tmp_path) -> None:
    lake = tmp_path / "new-lake"
    files = _files(tmp_path, 4, seed0=500)
    _assert_all_ok(_run_all([_cmd(fresh_url, lake, "ingest", "structures", f, "-d", "first")
                             for f in files]))
    assert _counts(fresh_url, lake)["structures"] == 4 * N
    _check_clean(fresh_url, lake)


def _open_and_write(path: str, start: float) -> str:
    """One process's first connection to a SQLite catalog, then one write; '' when it worked."""
    from warehouse.db import BEGIN_IMMEDIATE, make_engine

    while time.time() < start:
        pass
    engine = make_engine(f"sqlite:///{path}").execution_options(**{BEGIN_IMMEDIATE: True})
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
    except Exception as exc:  # the failure is the test's finding, not the worker's
        return str(exc).splitlines()[0]
    finally:
        engine.dispose()
    return ""


def test_eight_processes_opening_one_fresh_sqlite_file_all_wait_their_turn(tmp_path) -> None:
    """Switching a new file to WAL takes its write lock; SQLite can refuse that at once, busy
    timeout or not, while another process switches the same file. CI once lost a first use to
    it ("database is locked" in PRAGMA journal_mode); each round here failed 1 time in 13."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    failures = []
    for i in range(15):
        path = str(tmp_path / f"round{i}.sqlite")
        start = time.time() + 0.2
        with ctx.Pool(8) as pool:
            failures += [f for f in pool.starmap(_open_and_write, [(path, start)] * 8) if f]
        if not failures:
            with sqlite3.connect(path) as conn:
                assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 8
    assert failures == []


def test_two_upgrades_at_once_on_a_fresh_catalog(fresh_url, tmp_path) -> None:
    results = _run_all([_cmd(fresh_url, tmp_path / "lake", "db", "upgrade")] * 2)
    _assert_all_ok(results)
    assert all("catalog at revision" in r.stdout for r in results)


def test_repair_in_a_loop_during_an_ingest_removes_nothing_it_commits(
    db_url, lake_path, tmp_path, wh
) -> None:
    """`check --repair` over and over while an ingest writes its lake files: the ingest's
    files are left alone (its run is live), it commits, and nothing is missing after."""
    from warehouse.check import check_lake

    path = tmp_path / "big.xyz"
    write_fcc_xyz(path, 1200, reps=4, seed=7)  # 1,200 x 256 atoms: two batches, several files
    proc = subprocess.Popen(_cmd(db_url, lake_path, "ingest", "structures", path, "-d", "big"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    repairs = in_flight = 0
    while proc.poll() is None:
        report = check_lake(wh, repair=True, verify=False)
        assert not report.missing, report.lines()
        repairs += 1
        in_flight += bool(report.in_flight)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert repairs >= 2
    assert wh.counts()["structures"] == 1200
    report = check_lake(wh)
    assert not report.problems and not report.orphans, report.lines()


def test_kill_9_at_random_points_leaves_no_partial_state(db_url, lake_path, tmp_path, wh) -> None:
    """20 ingests killed at random moments: after each, the catalog holds the file whole or not
    at all; a repair removes the leftovers; the retry lands exactly."""
    files = _files(tmp_path, 3, seed0=700)
    rng = random.Random(1)
    for i in range(20):
        path = files[i % len(files)]
        before = wh.counts()["structures"]
        proc = subprocess.Popen(_cmd(db_url, lake_path, "ingest", "structures", path, "-d", "k"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.0, 2.5))
        proc.kill()
        proc.wait(timeout=60)
        counts = wh.counts()
        assert counts["structures"] - before in (0, N), (i, before, counts)  # whole or nothing
        assert counts["structures"] == counts["dataset_members"] == counts["references"], counts
    res = subprocess.run(_cmd(db_url, lake_path, "check", "--repair"), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    _check_clean(db_url, lake_path)
    _assert_all_ok(_run_all([_cmd(db_url, lake_path, "ingest", "structures", f, "-d", "k")
                             for f in files]))
    counts = wh.counts()
    assert counts["structures"] == counts["dataset_members"] == counts["references"] == 3 * N
    with wh.session() as s:
        running = s.execute(text("SELECT count(*) FROM ingest_runs WHERE status = 'running'")).scalar()
    assert running == 0  # the killed runs were marked failed by the repair
    _check_clean(db_url, lake_path)


class _PgError(Exception):
    def __init__(self, state: str, text: str) -> None:
        super().__init__(text)
        self.sqlstate = state


def test_collisions_are_retried_then_reported_in_one_line(monkeypatch) -> None:
    from ingest.writers import conflicts
    from warehouse.errors import ConflictError

    monkeypatch.setattr(conflicts.time, "sleep", lambda s: None)
    calls = []

    def flaky(n: int) -> str:
        calls.append(n)
        if n < 2:
            raise RuntimeError("wrapped") from _PgError("40P01", "deadlock detected")
        return "landed"

    assert conflicts.with_retries(flaky, what="f.xyz") == "landed" and calls == [0, 1, 2]

    def always(n: int) -> None:
        raise _PgError("23505", 'duplicate key value violates unique constraint "uq_structures_hash"')

    with pytest.raises(ConflictError) as err:
        conflicts.with_retries(always, what="f.xyz")
    message = str(err.value)
    assert "\n" not in message and message.startswith("f.xyz: gave up after")
    assert "uq_structures_hash" in message

    def bad_input(n: int) -> None:
        raise ValueError("not a collision")

    with pytest.raises(ValueError):  # anything else is not retried
        conflicts.with_retries(bad_input, what="f.xyz")
