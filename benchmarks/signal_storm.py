"""Signals at random moments to real `warehouse` processes, on a loaded machine (issue 15, item 6).

A cluster's scheduler sends SIGTERM when a job runs out of time, and users press Ctrl-C: at any
moment of a command, including its imports, the reader's fork, the first use of a catalog, the
commit and the interpreter's teardown. This starts the console script N times, sends SIGINT or
SIGTERM (alternately) after a random delay, and sorts what came back:

- ``ok``: the command finished first (exit 0);
- ``interrupted``: exit 130 / 143 and stderr is exactly the interrupt's message;
- ``startup``: killed the default way (-2, -15, or Python's own ``KeyboardInterrupt``) within
  the first ``--startup-ms``: the interpreter was still starting, before any of our code (see
  docs/CONCURRENCY.md, "Signals");
- ``bad``: anything else (a traceback, "Exception ignored", a wrong status, a silent death later
  on); each one's stderr is written to the work folder.

Afterwards every catalog is checked with `warehouse check` (nothing half-written: an interrupt
leaves no lake file behind and no catalog at a revision between two). ``--load K`` runs K busy
loops meanwhile: the windows between steps widen, which is where this found its bugs.

Run:  python benchmarks/signal_storm.py --runs 200 --load 2                (ingest, fresh catalogs)
      python benchmarks/signal_storm.py --runs 100 --command upgrade
      python benchmarks/signal_storm.py --runs 150 --command read     (leaderboard, check, runs)
      python benchmarks/signal_storm.py --runs 200 --pg postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import collections
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# This file is benchmarks/signal_storm.py: keep its folder off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ingest_helpers import write_fcc_xyz  # noqa: E402 - after the path is set

WAREHOUSE = Path(sys.executable).with_name("warehouse")
MESSAGE = "Interrupted: nothing from this command was kept."
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
COMMANDS = {
    "ingest": [["ingest", "structures", "{xyz}", "-d", "storm"]],
    "upgrade": [["db", "upgrade"]],
    "read": [["leaderboard", "--by", "element"], ["check"], ["runs"]],
}


class Catalogs:
    """A fresh catalog per run: a SQLite file, or a PostgreSQL database dropped at the end."""

    def __init__(self, workdir: Path, server: str | None) -> None:
        self.workdir, self.server, self.made = workdir, server, []

    def new(self, i: int) -> tuple[str, Path]:
        lake = self.workdir / f"lake-{i}"
        if self.server is None:
            url = f"sqlite:///{self.workdir / f'catalog-{i}.sqlite'}"
        else:
            import psycopg

            name = f"wh_storm_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(self.server, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = self.server.rsplit("/", 1)[0] + f"/{name}"
        self.made.append((url, lake))
        return url, lake

    def drop_all(self) -> None:
        if self.server is None:
            return
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as conn:
            for url, _ in self.made:
                conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def classify(code: int, err: str, delay: float, startup_s: float) -> str:
    if code == 0 and "Traceback" not in err and "Exception ignored" not in err:
        return "ok"
    if code in EXIT.values() and err.strip() == MESSAGE:
        return "interrupted"
    default_death = code in (-signal.SIGINT, -signal.SIGTERM) or (
        err.rstrip().endswith("KeyboardInterrupt") and "cli/" not in err and "ingest/" not in err)
    if default_death and delay < startup_s:
        return "startup"
    return "bad"


def check(url: str, lake: Path) -> str:
    """`warehouse check` on one catalog: "" when clean (or never created), else its output."""
    done = subprocess.run([str(WAREHOUSE), "--url", url, "--lake", str(lake), "check"],
                          capture_output=True, text=True, timeout=300)
    return "" if done.returncode == 0 else (done.stdout + done.stderr).strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--command", choices=list(COMMANDS), default="ingest",
                    help="ingest and upgrade: a fresh catalog per run; the read-only commands"
                         " (leaderboard --by element, check, runs, in turn): one catalog")
    ap.add_argument("--structures", type=int, default=600, help="fcc cells of 32 atoms in the file")
    ap.add_argument("--window", type=float, default=None,
                    help="latest signal, s (default: 1.2x one undisturbed run)")
    ap.add_argument("--load", type=int, default=2, help="busy loops running meanwhile")
    ap.add_argument("--startup-ms", type=float, default=50.0)
    ap.add_argument("--pg", default=None, help="a PostgreSQL server URL (default: SQLite files)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        xyz = workdir / "cells.xyz"
        write_fcc_xyz(xyz, args.structures, reps=2, seed=3)
        catalogs = Catalogs(workdir, args.pg)

        def command(url: str, lake: Path, i: int = 0) -> list[str]:
            tails = COMMANDS[args.command]
            tail = [str(xyz) if word == "{xyz}" else word for word in tails[i % len(tails)]]
            return [str(WAREHOUSE), "--url", url, "--lake", str(lake), *tail]

        first = catalogs.new(-1)
        if args.command == "read":  # what they read: the cells, and a model equal to them
            subprocess.run([str(WAREHOUSE), "--url", first[0], "--lake", str(first[1]), "ingest",
                            "structures", str(xyz), "-d", "storm"], check=True, capture_output=True)
            subprocess.run([str(WAREHOUSE), "--url", first[0], "--lake", str(first[1]), "ingest",
                            "predictions", str(xyz), "-m", "same", "--force"], check=True, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run(command(*first), check=True, capture_output=True)
        undisturbed = time.perf_counter() - t0
        window = args.window or 1.2 * undisturbed
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
        outcomes: collections.Counter[str] = collections.Counter()
        bad = []
        try:
            for i in range(args.runs):
                sig = (signal.SIGINT, signal.SIGTERM)[i % 2]
                url, lake = first if args.command == "read" else catalogs.new(i)
                proc = subprocess.Popen(command(url, lake, i), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                delay = rng.uniform(0.0, window)
                time.sleep(delay)
                proc.send_signal(sig)
                _, err = proc.communicate(timeout=600)
                kind = classify(proc.returncode, err, delay, args.startup_ms / 1000)
                outcomes[kind] += 1
                if kind == "bad":
                    (workdir.parent / f"storm-bad-{i}.txt").write_text(
                        f"{sig.name} at {delay:.3f} s -> {proc.returncode}\n{err}")
                    bad.append((i, sig.name, round(delay, 3), proc.returncode))
        finally:
            for b in busy:
                b.kill()
        unclean = [(url, out) for url, lake in catalogs.made if (out := check(url, lake))]
        catalogs.drop_all()

    words = " / ".join(" ".join(w for w in tail if w != "{xyz}") for tail in COMMANDS[args.command])
    print(f"{args.runs} x `warehouse {words}` on {'PostgreSQL' if args.pg else 'SQLite'},"
          f" signals at 0-{window:.2f} s (one undisturbed run: {undisturbed:.2f} s),"
          f" {args.load} busy loops")
    for kind in ("ok", "interrupted", "startup", "bad"):
        print(f"  {kind:12s} {outcomes[kind]}")
    print(f"  catalogs not clean after: {len(unclean)} of {len(catalogs.made)}")
    for i, name, delay, code in bad[:10]:
        print(f"  bad run {i}: {name} at {delay} s -> exit {code} (stderr in {tempfile.gettempdir()}/storm-bad-{i}.txt)")
    for url, out in unclean[:5]:
        print(f"  {url}: {out.splitlines()[-1]}")
    sys.exit(1 if bad or unclean else 0)


if __name__ == "__main__":
    main()
