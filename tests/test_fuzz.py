"""Fuzzing every reader with mutants of real and small files (deterministic seed).

Most mutants go through the pure parse functions in one child process (no database; a crash by
signal is then reported with the mutant that caused it); a sample goes through the real
``warehouse`` command line, one process each, on the engine under test (CI runs both engines).
Recorded figures: benchmarks/RESULTS.md ("Hostile input").
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 17
PER_SEED = 50  # 20 small seeds alone give 1,000 mutants (1,750 or so with ../shared/data)


def _shared() -> Path | None:
    p = HERE.parent.parent / "shared" / "data"
    return p if p.is_dir() else None


def test_every_reader_refuses_mutants_cleanly(tmp_path: Path) -> None:
    """Zero tracebacks, zero deaths by signal, zero multi-line errors or numpy RuntimeWarnings;
    each mutant read within 10 s and 500 MB."""
    out = tmp_path / "fuzz.jsonl"
    cmd = [sys.executable, str(HERE / "fuzz_inputs.py"), "--seed", str(SEED), "--per-seed",
           str(PER_SEED), "--out", str(out), "--workdir", str(tmp_path / "work")]
    if (shared := _shared()) is not None:
        cmd += ["--shared", str(shared)]
    (tmp_path / "work").mkdir()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:], lines[-1:])
    done = [r for r in lines if "outcome" in r]
    assert len(done) == sum("start" in r for r in lines) + sum(".gz" in r["seed"] for r in done)
    assert len(done) >= 1000
    bad = [r for r in done if r["outcome"] not in ("refused", "accepted")]
    assert not bad, "\n".join(f"{r['seed']} #{r['i']} {r['mutations']}: {r.get('message')}\n"
                              f"{r.get('traceback', '')}" for r in bad[:5])
    warned = [r for r in done if r["warnings"]]
    assert not warned, [(r["seed"], r["i"], r["warnings"]) for r in warned[:5]]
    assert max(r["seconds"] for r in done) <= 10.0
    assert max(r.get("peak_growth_mb", 0.0) for r in done) <= 500.0
    refused = [r for r in done if r["outcome"] == "refused"]
    assert all("\n" not in r["message"] for r in refused)
    # the fuzzing bites: most mutants are refused, some (harmless changes) accepted
    assert len(refused) > len(done) / 2 and len(refused) < len(done)


# --- a sample through the real command line -------------------------------------------------

def _cli_mutants(tmp_path: Path) -> list[tuple[list[str], Path]]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("fuzz_inputs", HERE / "fuzz_inputs.py")
    fz = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_inputs"] = fz  # its dataclasses look their module up
    spec.loader.exec_module(fz)  # type: ignore[union-attr]
    seeds = {s.name: s for s in fz.seeds(None)}
    plan = [("small.xyz", ["ingest", "structures", "{p}", "-d", "fz"], 10),
            ("pred.xyz", ["ingest", "predictions", "{p}", "-m", "fz-model"], 4),
            ("grades.xyz", ["ingest", "grades", "{p}", "-m", "fz-model", "--kind", "gamma"], 3),
            ("timings.csv", ["ingest", "timings", "{p}"], 3),
            ("props.csv", ["ingest", "properties", "{p}"], 2),
            ("thermo.out", ["ingest", "md", "{p}", "--model", "fz-model", "--system", "Cu"], 2)]
    out = []
    for name, args, n in plan:
        seed = seeds[name]
        for i in range(n):
            rng = random.Random(f"cli/{SEED}/{name}/{i}")
            data, _ = fz.mutate(rng, seed.data)
            path = fz._write(tmp_path / f"{name}-{i}", seed, data)
            out.append(([a.replace("{p}", str(path)) for a in args], path))
    return out


def test_a_sample_of_mutants_through_the_command_line(db_url, lake_path, wh, tmp_path) -> None:
    """Exit 0 or 1 (never a signal), one ``Error:`` line and no traceback, and a refused file
    leaves the catalog and the lake as they were."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    for args, path in _cli_mutants(tmp_path):
        before = _snapshot(wh)
        proc = subprocess.run(
            [sys.executable, "-c", "from cli.app import main; main()", "--url", db_url,
             "--lake", str(lake_path), *args], capture_output=True, text=True, timeout=120, env=env)
        text = proc.stdout + proc.stderr
        assert proc.returncode in (0, 1), (args, proc.returncode, text[-1500:])
        assert "Traceback" not in text and "RuntimeWarning" not in text, (args, text[-1500:])
        if proc.returncode == 1:
            errors = [line for line in text.splitlines() if line.strip()]
            assert len(errors) == 1 and errors[0].startswith("Error: "), (args, text)
            assert _snapshot(wh) == before, (args, text)


def _snapshot(wh) -> tuple[dict, set]:
    """Row counts (but for ingest_runs, which records failed attempts on purpose) and lake files."""
    counts = wh.counts()
    counts.pop("ingest_runs", None)
    return counts, set(wh.lake.walk())
