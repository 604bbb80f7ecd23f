"""Ingest benchmark: the incumbent (``ase.db``) against ``warehouse ingest structures``.

Generates a realistic labelled set once (ASE's EMT on fcc and bcc metal and alloy supercells of
32-250 atoms, rattled and strained: about 1.3M atoms, with energy, forces and stress), writes it as
extended XYZ, then times, each in its own process (peak RSS from the kernel's rusage, and the
sampled peak of the process plus its children, i.e. the warehouse's reader process):

* ase.db writing the same structures with their results into SQLite, and into PostgreSQL
  (one transaction each, its best case; reading the file is not counted for the incumbent);
* the issue's floor (``_floor``): the ``extxyz`` C parser, Parquet of the per-atom arrays and one
  COPY (SQLite: one executemany) of a row per structure into a table with no keys to check, with
  no validation, hashing, de-duplication, provenance or atomicity: the least any tool that stores
  these results must do, timed end to end like the warehouse, ``--repeat`` times;
* ``warehouse ingest structures`` into SQLite and into PostgreSQL, end to end from the file
  (process start, parsing, hashing, catalog rows, Parquet lake, commit), into a warehouse whose
  schema was created beforehand (``warehouse db upgrade``: once per warehouse, not per ingest),
  ``--repeat`` times (default 3, a fresh warehouse each, alternating with the floor), reporting
  the median.

The speed target (issue 3) is 300k atoms/s, stated where the issue's floor ran at 320k: 0.94x
of the floor, a ratio that carries over between machines, unlike the absolute figure (this
shared machine's speed changes 2-3x between sessions). The floor here is as lean as we could
write it (no pandas import, no dictionary encoding of floats, species mapped once per batch): a
naive version of it (pa.table on numpy arrays, pq.write_table's defaults) takes ~0.5 s longer.

Run:  nice python benchmarks/ingest.py            (about 1.3M atoms; generation ~7 min the first time)
      python benchmarks/ingest.py --atoms 100000  (a quick look)
      nice python benchmarks/ingest.py --stream-copies 6   (7.8M atoms into both: peak memory)
      nice python benchmarks/ingest.py --predictions --atoms 300000   (predictions vs structures)
      nice python benchmarks/ingest.py --predictions --small 30000    (30,000 cells of 4-8 atoms)
      python benchmarks/ingest.py --skip-incumbent --repeat 5 --baseline-venv ../base/.venv
          (also an older build, installed into its own venv from a worktree: both builds'
          ratios to the same floor, alternated in one run)

``--predictions`` (issue 15) times, in one run and into one warehouse per engine, ``ingest
structures`` of the set, then ``ingest predictions`` of files about the same structures: matched by
hash (positions as stored), all through the tolerance path (every position moved by 4e-6 Å, as
programs that write fewer decimals move them), and a file of rattled copies that are not in the
warehouse (refused as a whole; timed until the refusal). Each is reported in atoms/s and as a
ratio to the structures' atoms/s (the tolerance and absent cases also to the hash path's), with
the share of each ingest's wall time that its kept-sums step takes.
PostgreSQL: --pg postgresql://postgres@127.0.0.1:5432/postgres (a server where databases can be
created; the incumbent needs ASE's PostgreSQL backend: ``pip install mlip-warehouse[bench]``).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# This file is benchmarks/ingest.py: keep its folder off sys.path so `ingest` is the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
ELEMENTS = ("Cu", "Ni", "Al", "Ag", "Au", "Pd", "Pt")  # EMT's metals
# (lattice, repeats): fcc cubic cells have 4 atoms, bcc 2: 32..250 atoms
SHAPES = [("fcc", r) for r in [(2, 2, 2), (3, 2, 2), (3, 3, 2), (3, 3, 3), (4, 3, 3), (4, 4, 3)]] + \
         [("bcc", r) for r in [(2, 2, 4), (3, 3, 3), (4, 4, 3), (4, 4, 4), (5, 4, 4), (5, 5, 4), (5, 5, 5)]]


def generate(path: Path, target_atoms: int, seed: int = 0, copies: int = 6) -> int:
    """Write EMT-labelled supercells to ``path`` (extended XYZ); returns the number of atoms.

    Each EMT calculation labels ``copies`` structures: the cell and rigid translations of its
    atoms, which are distinct structures to the warehouse (and to ase.db) with the same exact
    EMT energy, forces and stress (EMT is translation invariant). This keeps generation to a few
    minutes on a shared machine.
    """
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    rng = np.random.default_rng(seed)
    frames, total = [], 0
    calc = EMT()
    while total < target_atoms:
        lattice, reps = SHAPES[rng.integers(len(SHAPES))]
        host = ELEMENTS[rng.integers(len(ELEMENTS))]
        a = bulk(host, lattice, a=3.6 if lattice == "fcc" else 2.9, cubic=True).repeat(reps)
        n_alloy = rng.integers(0, 3)  # pure metals, binaries and ternaries
        for el in rng.choice(ELEMENTS, n_alloy, replace=False):
            a.symbols[rng.random(len(a)) < 0.3] = el
        strain = np.eye(3) + 0.02 * rng.standard_normal((3, 3))
        a.set_cell(a.cell.array @ ((strain + strain.T) / 2), scale_atoms=True)
        a.positions += 0.05 * rng.standard_normal(a.positions.shape)
        a.calc = calc
        results = {"energy": a.get_potential_energy(), "forces": a.get_forces(),
                   "stress": a.get_stress()}
        for k in range(copies):
            b = a.copy()
            if k:
                b.positions += rng.random(3) @ b.cell.array
            b.calc = SinglePointCalculator(b, **results)
            b.info["config_type"] = f"{lattice}-{len(set(b.get_chemical_symbols()))}"
            frames.append(b)
            total += len(b)
    write(path, frames, format="extxyz")
    return total


def replicate(src: Path, dst: Path, copies: int) -> None:
    """``copies`` copies of ``src``, each with its cells stretched by another 1e-4 Å: distinct
    structures (another cell is another identity) with the same atoms lines, for a big file."""
    with open(dst, "w") as out:
        for k in range(copies):
            with open(src) as fh:
                for line in fh:
                    if line.startswith("Lattice="):
                        first, rest = line[len('Lattice="'):].split(" ", 1)
                        line = f'Lattice="{float(first) + 1e-4 * k!r} {rest}'
                    out.write(line)


# 4-8-atom cells for --small: (lattice, repeats) of cubic fcc (4 atoms) and bcc (2 atoms) cells
SMALL_SHAPES = [("fcc", (1, 1, 1)), ("bcc", (2, 1, 1)), ("bcc", (3, 1, 1)), ("bcc", (2, 2, 1))]


def generate_small(path: Path, n_cells: int, seed: int = 0, copies: int = 6) -> int:
    """:func:`generate` for ``n_cells`` cells of 4-8 atoms (many small structures: per-structure
    costs dominate); returns the number of atoms."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    rng = np.random.default_rng(seed)
    frames, total = [], 0
    calc = EMT()
    while len(frames) < n_cells:
        lattice, reps = SMALL_SHAPES[rng.integers(len(SMALL_SHAPES))]
        host = ELEMENTS[rng.integers(len(ELEMENTS))]
        a = bulk(host, lattice, a=3.6 if lattice == "fcc" else 2.9, cubic=True).repeat(reps)
        a.symbols[rng.random(len(a)) < 0.3] = ELEMENTS[rng.integers(len(ELEMENTS))]
        a.positions += 0.05 * rng.standard_normal(a.positions.shape)
        a.calc = calc
        results = {"energy": a.get_potential_energy(), "forces": a.get_forces(),
                   "stress": a.get_stress()}
        for k in range(min(copies, n_cells - len(frames))):
            b = a.copy()
            if k:
                b.positions += rng.random(3) @ b.cell.array
            b.calc = SinglePointCalculator(b, **results)
            frames.append(b)
            total += len(b)
    write(path, frames, format="extxyz")
    return total


# The prediction files of --predictions: (name, what moves the positions). "hash" keeps them, so
# every frame matches its stored structure by hash; "tolerance" moves every coordinate by 4e-6 Å
# (4 steps of the identity's 1e-6 Å rounding, |d| = 6.9e-6 Å < MATCH_TOL), so no frame matches
# by hash and every one is matched within the tolerance; "absent" rattles the atoms by 0.01 Å:
# structures with the formula and cell of stored ones, but not in the warehouse.
PREDICTION_FILES = ("hash", "tolerance", "absent")


def write_prediction_files(data: Path, seed: int = 1) -> dict[str, Path]:
    """A model's predictions on the structures of ``data`` (the labels perturbed: another
    model's energies, forces and stresses), once per entry of PREDICTION_FILES."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import iread, write

    out = {kind: data.with_name(f"{data.stem}-pred-{kind}.xyz") for kind in PREDICTION_FILES}
    if all(p.exists() for p in out.values()):
        return out
    rng = np.random.default_rng(seed)
    frames = {kind: [] for kind in PREDICTION_FILES}
    for a in iread(str(data), ":"):
        n = len(a)
        res = {"energy": a.get_potential_energy() + 0.01 * n * rng.standard_normal(),
               "forces": a.get_forces() + 0.05 * rng.standard_normal((n, 3)),
               "stress": a.get_stress() + 1e-4 * rng.standard_normal(6)}
        for kind in PREDICTION_FILES:
            b = a.copy()
            if kind == "tolerance":
                b.positions += 4e-6
            elif kind == "absent":
                b.positions += 0.01 * rng.standard_normal((n, 3))
            b.calc = SinglePointCalculator(b, **res)
            frames[kind].append(b)
    for kind, path in out.items():
        write(path.with_suffix(".tmp.xyz"), frames[kind], format="extxyz")
        path.with_suffix(".tmp.xyz").rename(path)
    return out


def predictions_main(args: argparse.Namespace, data: Path, n_atoms: int, n_frames: int) -> None:
    """--predictions: structures, then predictions by hash, by tolerance and absent, same run."""
    files = write_prediction_files(data)
    exe = str(Path(sys.executable).with_name("warehouse"))
    print(f"\n{n_frames} structures, {n_atoms} atoms ({data.name})\n")
    print("| engine | ingest | seconds (median) | atoms/s | vs structures | vs by hash |"
          " CPU-s (median) | atoms/CPU-s | vs structures | vs by hash |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    results: dict[str, dict] = {}
    for engine, pg in [("SQLite", None)] + ([("PostgreSQL", args.pg)] if args.pg else []):
        tries: dict[str, list[dict]] = {k: [] for k in ("structures", *PREDICTION_FILES)}
        for _ in range(args.repeat):
            lake = args.workdir / f"lake-pred-{engine}"
            url = _fresh_warehouse(args.workdir, pg, "pred", lake)
            base = [exe, "--url", url, "--lake", str(lake), "ingest"]
            r = _timed([*base, "structures", str(data), "--dataset", "bench",
                        "--level-of-theory", "EMT"])
            tries["structures"].append({**r, "kept_sums_s": _kept_sums_step(url)})
            for kind in PREDICTION_FILES:  # a model each, so that each file is all new work
                r = _timed([*base, "predictions", str(files[kind]), "--model", f"m-{kind}"],
                           expect_failure=kind == "absent")
                if kind != "absent":
                    r["kept_sums_s"] = _kept_sums_step(url)
                tries[kind].append(r)
                if kind == "absent" and "not in the warehouse" not in (r["detail"] or ""):
                    raise RuntimeError(f"the absent file was not refused as expected: {r}")
        # medians of wall and of CPU time, each over the repeats (this machine is shared: wall
        # time varies with the load of others, the process's own CPU time much less)
        med = {k: {t: sorted(r[t] for r in v)[len(v) // 2] for t in ("wall_s", "cpu_s")}
               for k, v in tries.items()}
        results[engine] = {"runs": tries, "median": med}
        for kind, m in med.items():
            cells = []
            for t in ("wall_s", "cpu_s"):
                rate = n_atoms / m[t]
                vs_s = med["structures"][t] / m[t]
                vs_h = "" if kind in ("structures", "hash") else f"{med['hash'][t] / m[t]:.2f}x"
                cells += [f"{m[t]:.2f}", f"{rate:,.0f}", f"{vs_s:.2f}x", vs_h]
            print(f"| {engine} | {kind} | {' | '.join(cells)} |", flush=True)
    for engine, r in results.items():
        for kind, runs in r["runs"].items():
            walls = ", ".join(f"{x['wall_s']:.2f}" for x in runs)
            cpus = ", ".join(f"{x['cpu_s']:.2f}" for x in runs)
            print(f"\n{engine} {kind}: {len(runs)} runs, wall s {walls}; CPU s {cpus}")
            if "kept_sums_s" in runs[0]:
                shares = ", ".join(f"{100 * x['kept_sums_s'] / x['wall_s']:.1f} %" for x in runs)
                print(f"{engine} {kind}: the kept-sums step of each run (re-run in a rolled-back"
                      f" transaction) as a share of its wall time: {shares}")
    if args.json:
        args.json.write_text(json.dumps({"n_atoms": n_atoms, "n_structures": n_frames,
                                         "runs": results}, indent=2))


_CREATED_DATABASES: list[tuple[str, str]] = []


def _pg_database(base: str, name: str) -> str:
    """A new, empty database on the server ``base``, named ``name`` plus this process's id, so
    that two runs of this benchmark at once do not drop each other's databases; every database
    made here is dropped when the benchmark exits."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from warehouse.settings import normalise_url

    name = f"{name}_{os.getpid()}"
    url = make_url(normalise_url(base))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    if not _CREATED_DATABASES:
        atexit.register(_drop_databases)
    if (base, name) not in _CREATED_DATABASES:
        _CREATED_DATABASES.append((base, name))
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_databases() -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from warehouse.settings import normalise_url

    for base, name in _CREATED_DATABASES:
        admin = create_engine(make_url(normalise_url(base)), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _fresh_warehouse(workdir: Path, pg: str | None, name: str, lake: Path,
                     python: str = sys.executable) -> str:
    """The URL of an empty warehouse at the current schema: a new database ``bench_<name>_<pid>`` on
    the PostgreSQL server ``pg``, or ``<name>.sqlite`` in ``workdir``; ``lake`` emptied."""
    if pg:
        url = _pg_database(pg, f"bench_{name}")
    else:
        for suffix in ("", "-wal", "-shm"):
            (workdir / f"{name}.sqlite{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{workdir / f'{name}.sqlite'}"
    subprocess.run(["rm", "-rf", str(lake)], check=True)
    _create_schema(url, lake, python)
    return url


def _create_schema(url: str, lake: Path, python: str = sys.executable) -> None:
    """An empty warehouse at the schema of the build that ``python`` imports (`warehouse db
    upgrade`, once per warehouse: ~0.4 s, not part of an ingest; ase.db's own CREATE TABLEs are
    cheaper and are timed)."""
    code = "import sys; from warehouse import open_warehouse; open_warehouse(*sys.argv[1:]).close()"
    # -P: not the current folder first on sys.path, which may hold another build's packages
    subprocess.run([python, "-P", "-c", code, url, str(lake)], check=True)


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants now (MB, from /proc; children found
    through each thread's ``children`` file, so sampling costs a few reads, not a /proc scan)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            continue
    return total / 1024


class _TreeSampler:
    """Peak of the summed RSS of a process and its children (the warehouse's reader process),
    sampled every 50 ms; an over-estimate where they share pages (forked, copy-on-write)."""

    def __init__(self, pid: int) -> None:
        import threading

        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _tree_rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def _timed(cmd: list[str], env: dict | None = None, *, expect_failure: bool = False) -> dict:
    """Run ``cmd``: its wall seconds, peak RSS (MB, from the kernel's rusage of the child), the
    sampled peak of the summed RSS of the child and its own children, and, when it prints one,
    its own JSON report on its last line (the incumbent's timed loop)."""
    os.sync()  # the previous run's dirty pages are written back now, not during this one
    time.sleep(2)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True,
                                env={**os.environ, **(env or {})})
        sampler = _TreeSampler(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        tree_mb = sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if (proc.returncode != 0) != expect_failure:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{stdout}\n{stderr}")
    cpu_s = usage.ru_utime + usage.ru_stime  # the process and its reader process
    if expect_failure:  # the refusal's message is the detail
        return {"seconds": seconds, "wall_s": seconds, "cpu_s": cpu_s,
                "peak_rss_mb": usage.ru_maxrss / 1024,
                "peak_tree_rss_mb": max(tree_mb, usage.ru_maxrss / 1024),
                "detail": stderr.strip().splitlines()[-1] if stderr.strip() else stdout}
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    report = json.loads(last) if last.startswith("{") else {}
    return {"seconds": report.get("seconds", seconds), "wall_s": seconds, "cpu_s": cpu_s,
            "peak_rss_mb": usage.ru_maxrss / 1024,
            # the sampling can miss the main process's own peak, which the kernel counted
            "peak_tree_rss_mb": max(tree_mb, usage.ru_maxrss / 1024),
            "detail": None if report else last}


def _kept_sums_step(url: str) -> float:
    """Seconds of the writer's kept-sums step (``warehouse.keptsums.add_run``) for the latest
    successful ingest of ``url``: the same statements over the same rows, re-run in a transaction that is
    rolled back (the kept rows then exist, so its upserts update instead of insert)."""
    from sqlalchemy import text

    from warehouse.db import make_engine
    from warehouse.keptsums import add_run

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            run = conn.execute(text("SELECT max(id) FROM ingest_runs WHERE status = 'ok'")).scalar()
            # what the writer told add_run: did the run touch structures stored before it?
            older = conn.execute(text(
                "SELECT EXISTS (SELECT 1 FROM dataset_members d JOIN structures s"
                " ON s.id = d.structure_id WHERE d.ingest_run_id = :r AND s.ingest_run_id != :r)"
                " OR EXISTS (SELECT 1 FROM \"references\" f JOIN structures s"
                " ON s.id = f.structure_id WHERE f.ingest_run_id = :r AND s.ingest_run_id != :r)"),
                {"r": run}).scalar()
            t0 = time.perf_counter()
            add_run(conn, run, older_structures=bool(older))
            seconds = time.perf_counter() - t0
            conn.rollback()
        return seconds
    finally:
        engine.dispose()


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _incumbent(path: str, url: str) -> None:
    """Child process: ase.db writes every frame of ``path`` into ``url`` in one transaction."""
    import ase.db
    from ase.io import read

    frames = read(path, ":")
    url = url.replace("postgresql+psycopg://", "postgresql://")  # ase.db's backend: psycopg2
    t0 = time.perf_counter()
    db = ase.db.connect(url, type="postgresql" if url.startswith("postgres") else "db",
                        append=False)
    with db:
        for a in frames:
            db.write(a)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak_rss_mb": _peak_rss_mb()}))


FLOOR_TABLE = "floor_structures"


def _floor(path: str, url: str, lake: str) -> None:
    """Child process: the issue's reference floor for one ingest, timed end to end like the
    warehouse (process start included): the ``extxyz`` C parser, the per-atom arrays written
    as zstd Parquet in 100k-atom files, and one row per structure (atoms, energy, stress, cell)
    sent with COPY (PostgreSQL) or one executemany (SQLite) into a table without keys to check.
    No validation, hashing, de-duplication, provenance or atomicity: what the warehouse adds
    over this is what the ratio measures."""
    import numpy as np
    import pyarrow.parquet as pq
    from ase.data import atomic_numbers
    from extxyz import cextxyz as cx

    from warehouse.lake import numpy_table

    Path(lake).mkdir(parents=True, exist_ok=True)
    rows: list[tuple] = []
    batch: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    n_batch = n_files = 0

    def flush() -> None:
        nonlocal batch, n_batch, n_files
        if not batch:
            return
        pos = np.concatenate([b[0] for b in batch])
        frc = np.concatenate([b[1] for b in batch])
        species = np.concatenate([b[2] for b in batch])
        symbols, inverse = np.unique(species, return_inverse=True)  # one look-up per batch
        num = np.array([atomic_numbers[x] for x in symbols], dtype=np.int8)[inverse]
        # from the numpy buffers: pa.table on numpy arrays would import pandas (~0.3 s)
        table = numpy_table({"z": num, **{f"x{i}": pos[:, i] for i in range(3)},
                             **{f"f{i}": frc[:, i] for i in range(3)}})
        # as the lake writes them: no dictionary encoding of float columns (3x the write time)
        pq.write_table(table, f"{lake}/part-{n_files}.parquet", compression="zstd",
                       use_dictionary=["z"])
        n_files += 1
        batch, n_batch = [], 0

    fp = cx.cfopen(path, "r")
    try:
        while True:
            try:
                natoms, info, arrays = cx.read_frame_dicts(fp, use_cleri=False)
            except EOFError:
                break
            s = info["stress"]
            rows.append((len(rows) + 1, natoms, float(info["energy"]),
                         float(s[0, 0]), float(s[1, 1]), float(s[2, 2]),
                         float(s[1, 2]), float(s[0, 2]), float(s[0, 1]),
                         json.dumps(info["Lattice"].tolist())))
            batch.append((arrays["pos"], arrays["forces"], arrays["species"]))
            n_batch += natoms
            if n_batch >= 100_000:
                flush()
    finally:
        cx.cfclose(fp)
    flush()
    cols = "id, n_atoms, energy, sxx, syy, szz, syz, sxz, sxy, cell"
    if url.startswith("postgres"):
        import psycopg

        with (psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn,
              conn.cursor() as cur, cur.copy(f"COPY {FLOOR_TABLE} ({cols}) FROM STDIN") as cp):
            for row in rows:
                cp.write_row(row)
    else:
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        with conn:
            conn.executemany(f"INSERT INTO {FLOOR_TABLE} ({cols}) VALUES ({', '.join('?' * 10)})", rows)
        conn.close()


def _floor_target(workdir: Path, pg: str | None) -> str:
    """An empty ``floor_structures`` table in a fresh SQLite file or PostgreSQL database."""
    ddl = (f"CREATE TABLE {FLOOR_TABLE} (id BIGINT PRIMARY KEY, n_atoms INTEGER, energy DOUBLE PRECISION,"
           " sxx DOUBLE PRECISION, syy DOUBLE PRECISION, szz DOUBLE PRECISION, syz DOUBLE PRECISION,"
           " sxz DOUBLE PRECISION, sxy DOUBLE PRECISION, cell TEXT)")
    if pg:
        import psycopg

        url = _pg_database(pg, "bench_floor").replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as conn:
            conn.execute(ddl)
        return url
    import sqlite3

    db = workdir / "floor.sqlite"
    db.unlink(missing_ok=True)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(ddl)
    return f"sqlite:///{db}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atoms", type=int, default=1_300_000, help="Atoms to generate (default 1.3M).")
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "warehouse-bench")
    ap.add_argument("--pg", default=os.environ.get("WAREHOUSE_BENCH_PG", DEFAULT_PG),
                    help="PostgreSQL server URL ('' to skip PostgreSQL).")
    ap.add_argument("--skip-incumbent", action="store_true", help="Time only the warehouse.")
    ap.add_argument("--repeat", type=int, default=3, metavar="K",
                    help="Time each warehouse ingest K times (a fresh warehouse each) and report"
                         " the median (default 3: this machine is shared and noisy).")
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    ap.add_argument("--stream-copies", type=int, default=0, metavar="K",
                    help="Instead: ingest K stretched copies of the set into SQLite (bounded memory check).")
    ap.add_argument("--predictions", action="store_true",
                    help="Instead: structures vs predictions by hash, by tolerance and absent (issue 15).")
    ap.add_argument("--small", type=int, default=0, metavar="N",
                    help="With --predictions: N cells of 4-8 atoms instead of --atoms of 32-250.")
    ap.add_argument("--baseline-venv", type=Path, metavar="DIR",
                    help="Also time the build installed in this virtual environment (e.g. a git"
                         " worktree of an older commit, `pip install -e .` into DIR), alternated"
                         " with the floor and this build, and report both builds' ratios to the"
                         " same floor.")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, path, url, lake = args.child
        if kind == "floor":
            _floor(path, url, lake)
        else:
            _incumbent(path, url)
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / (f"emt-small-{args.small}.xyz" if args.small else f"emt-{args.atoms}.xyz")
    if not data.exists():
        t0 = time.perf_counter()
        n = (generate_small(data.with_suffix(".tmp.xyz"), args.small) if args.small
             else generate(data.with_suffix(".tmp.xyz"), args.atoms))
        data.with_suffix(".tmp.xyz").rename(data)
        print(f"generated {n} atoms in {time.perf_counter() - t0:.0f} s: {data}", file=sys.stderr)
    from ase.io import iread

    n_atoms = n_frames = 0
    for a in iread(str(data), ":"):
        n_atoms += len(a)
        n_frames += 1
    print(f"{data}: {n_frames} structures, {n_atoms} atoms, {data.stat().st_size / 1e6:.0f} MB",
          file=sys.stderr)

    if args.predictions:
        predictions_main(args, data, n_atoms, n_frames)
        return
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]

    def warehouse(path: Path, url: str, lake: Path, bin_dir: Path = Path(sys.executable).parent) -> list[str]:
        """``warehouse ingest structures`` exactly as a user runs it (the console script)."""
        return [str(bin_dir / "warehouse"), "--url", url, "--lake", str(lake),
                "ingest", "structures", str(path), "--dataset", "bench", "--level-of-theory", "EMT"]
    if args.stream_copies:
        big = args.workdir / f"emt-{args.atoms}x{args.stream_copies}.xyz"
        if not big.exists():
            replicate(data, big, args.stream_copies)
        n = n_atoms * args.stream_copies
        print("| run | seconds | atoms/s | peak RSS (MB) | peak RSS with reader process (MB) |")
        print("|---|---:|---:|---:|---:|")
        for engine, pg in [("SQLite", None)] + ([("PostgreSQL", args.pg)] if args.pg else []):
            lake = args.workdir / "lake-big"
            url = _fresh_warehouse(args.workdir, pg, "big", lake)
            r = _timed(warehouse(big, url, lake))
            print(f"| warehouse -> {engine}, {n:,} atoms ({big.stat().st_size / 1e9:.1f} GB) |"
                  f" {r['wall_s']:.1f} | {n / r['wall_s']:,.0f} | {r['peak_rss_mb']:.0f} |"
                  f" {r['peak_tree_rss_mb']:.0f} |", flush=True)
            print(f"  {r['detail']}", file=sys.stderr)
        return
    runs: dict[str, dict] = {}
    engines = [("SQLite", None)] + ([("PostgreSQL", args.pg)] if args.pg else [])
    for engine, pg in engines:
        if not args.skip_incumbent:
            if pg:
                url = _pg_database(pg, "bench_asedb")
            else:
                (args.workdir / "asedb.db").unlink(missing_ok=True)
                url = str(args.workdir / "asedb.db")
            runs[f"ase.db -> {engine}"] = _timed([*me, "incumbent", str(data), url, "-"])
        lake = args.workdir / f"lake-{engine}"
        floor_lake = args.workdir / f"lake-floor-{engine}"
        tries: dict[str, list[dict]] = {"floor": [], "warehouse": []}
        if args.baseline_venv:
            tries["baseline"] = []
        for _ in range(args.repeat):  # alternated, so that drift in the machine's load hits all
            subprocess.run(["rm", "-rf", str(floor_lake)], check=True)
            url = _floor_target(args.workdir, pg)
            tries["floor"].append(_timed([*me, "floor", str(data), url, str(floor_lake)]))
            if args.baseline_venv:
                bin_dir = args.baseline_venv / "bin"
                url = _fresh_warehouse(args.workdir, pg, "baseline", lake, str(bin_dir / "python"))
                tries["baseline"].append(_timed(warehouse(data, url, lake, bin_dir)))
            url = _fresh_warehouse(args.workdir, pg, "warehouse", lake)
            tries["warehouse"].append(_timed(warehouse(data, url, lake)))
        for kind, rs in tries.items():
            rs.sort(key=lambda r: r["wall_s"])
            runs[f"{kind} -> {engine}"] = {**rs[len(rs) // 2], "all_wall_s": [r["wall_s"] for r in rs]}
            print(f"  {kind} -> {engine}: {json.dumps(runs[f'{kind} -> {engine}'])}", file=sys.stderr)
        runs[f"warehouse -> {engine}"]["kept_sums_s"] = _kept_sums_step(url)

    print(f"\n{n_frames} structures, {n_atoms} atoms (EMT-labelled fcc/bcc supercells, 32-250 atoms)\n")
    print("| run | seconds | atoms/s | peak RSS (MB) | with children (MB) | vs incumbent | vs floor |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in runs.items():
        # the incumbent reports its own write loop (reading the file is not counted for it);
        # the floor and the warehouse are timed end to end, process start included
        r["atoms_per_s"] = n_atoms / (r["seconds"] if name.startswith("ase.db") else r["wall_s"])
    for name, r in runs.items():
        engine = name.split("-> ")[1]
        ratios = ["", ""]
        if name.startswith(("warehouse", "baseline")):
            for i, base in enumerate((f"ase.db -> {engine}", f"floor -> {engine}")):
                if base in runs:
                    ratios[i] = f"{r['atoms_per_s'] / runs[base]['atoms_per_s']:.2f}x"
        secs = r["seconds"] if name.startswith("ase.db") else r["wall_s"]
        print(f"| {name} | {secs:.2f} | {r['atoms_per_s']:,.0f} | {r['peak_rss_mb']:.0f} |"
              f" {r['peak_tree_rss_mb']:.0f} | {ratios[0]} | {ratios[1]} |")
    for name, r in runs.items():
        if r.get("all_wall_s"):
            walls = ", ".join(f"{w:.2f}" for w in r["all_wall_s"])
            print(f"\n{name}: median of {len(r['all_wall_s'])} runs (s: {walls})")
        if r.get("detail"):
            print(f"{name}: {r['detail']}")
        if r.get("kept_sums_s") is not None:
            print(f"{name}: the leaderboard's kept-sums step of that ingest (warehouse.keptsums."
                  f"add_run, re-run in a rolled-back transaction of the last warehouse):"
                  f" {r['kept_sums_s']:.3f} s = {100 * r['kept_sums_s'] / r['wall_s']:.1f} % of"
                  f" the median ingest's wall time")
    if args.json:
        args.json.write_text(json.dumps({"n_atoms": n_atoms, "n_structures": n_frames, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
