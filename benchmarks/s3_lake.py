#!/usr/bin/env python
"""Benchmark: `warehouse ingest structures` into an S3 lake against a local lake, same run.

The S3 side is a local S3-compatible server (moto, ``pip install 'moto[server]'``) on 127.0.0.1,
reached through the standard AWS variables, so the figure is the warehouse's own overhead of
object-store writes (one upload per file, no rename) plus a loopback HTTP server's, not a
network's. The file: rattled fcc Cu cells with EMT labels (``--frames`` x 108 atoms). Each run is
a fresh catalog (SQLite) and lake; runs alternate; medians reported.

    python benchmarks/s3_lake.py [--frames 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path


def make_file(path: Path, frames: int) -> int:
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    rng = np.random.default_rng(0)
    out = []
    for _ in range(frames):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        atoms.calc = EMT()
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
        out.append(atoms)
    write(path, out, format="extxyz")
    return sum(len(a) for a in out)


def ingest(xyz: Path, lake: str, work: Path) -> float:
    url = f"sqlite:///{work / f'cat-{uuid.uuid4().hex[:8]}.sqlite'}"
    warehouse = Path(sys.executable).with_name("warehouse")
    t0 = time.perf_counter()
    subprocess.run([str(warehouse), "--url", url, "--lake", lake, "ingest", "structures", str(xyz),
                    "--dataset", "cu", "--level-of-theory", "EMT"], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from moto.server import ThreadedMotoServer
    from pyarrow import fs

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    s3 = fs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        xyz = work / "cu.xyz"
        n_atoms = make_file(xyz, args.frames)
        times: dict[str, list[float]] = {"local": [], "s3": []}
        for i in range(args.repeat):
            times["local"].append(ingest(xyz, str(work / f"lake-{i}"), work))
            bucket = f"bench-{i}-{uuid.uuid4().hex[:6]}"
            s3.create_dir(bucket)
            times["s3"].append(ingest(xyz, f"s3://{bucket}/lake", work))
    server.stop()
    local, remote = statistics.median(times["local"]), statistics.median(times["s3"])
    print(f"| lake | median s ({args.repeat} runs) | atoms/s |\n|---|---:|---:|")
    print(f"| local folder | {local:.2f} | {n_atoms / local:,.0f} |")
    print(f"| S3 (moto on 127.0.0.1) | {remote:.2f} | {n_atoms / remote:,.0f} |")
    print(f"\n{args.frames} frames, {n_atoms:,} atoms; S3/local time {remote / local:.2f}x")


if __name__ == "__main__":
    main()
