"""The reader process of `warehouse ingest structures` and the loader's background work.

The extended XYZ reader runs in a forked child process (ingest.prefetch.ReadAhead) while the
loader writes; lake files are written by a worker thread and, on PostgreSQL, rows are sent by a
background COPY. These tests hold each piece to what the plain, one-thread path does: the same
items in the same order, the same errors naming the same file and frame, nothing left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from sqlalchemy import select, text

from conftest import engine_name
from ingest_helpers import snapshot, write_fcc_xyz
from warehouse import models as m
from warehouse.errors import IngestError

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux only")


# -- ReadAhead ------------------------------------------------------------------------------------

@linux_only
@pytest.mark.parametrize("mode", ["process", "thread", "inline"])
def test_read_ahead_keeps_order_and_re_raises_the_producers_error(mode: str) -> None:
    from ingest.prefetch import ReadAhead

    def produce(_idle):
        for k in range(50):
            yield np.full(1000, k)  # arrays cross the process boundary intact
        raise IngestError("bad value", path="some.xyz", where="frame 50")

    got = []
    with ReadAhead(produce, mode=mode) as ra:
        assert ra.mode == mode
        with pytest.raises(IngestError) as info:
            for item in ra:
                got.append(int(item[0]))
    assert got == list(range(50))
    # the error keeps its message, file and place across the pipe
    assert str(info.value) == "some.xyz, frame 50: bad value"
    assert (info.value.path, info.value.where) == ("some.xyz", "frame 50")


@linux_only
def test_no_fork_while_another_thread_runs() -> None:
    """A thread could hold a lock the forked child would wait on: then the reader is a thread."""
    import threading

    from ingest.prefetch import ReadAhead

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with ReadAhead(lambda _idle: iter(range(3)), mode="process") as ra:
            assert ra.mode == "thread"
            assert list(ra) == [0, 1, 2]
    finally:
        stop.set()
        other.join()
    with ReadAhead(lambda _idle: iter(range(3)), mode="process") as ra:
        assert ra.mode == "process"


@linux_only
def test_closing_early_ends_the_reader_process() -> None:
    from ingest.prefetch import ReadAhead

    def endless(_idle):
        k = 0
        while True:
            yield k
            k += 1

    ra = ReadAhead(endless, mode="process")
    assert [next(ra) for _ in range(5)] == [0, 1, 2, 3, 4]
    child = ra._child
    ra.close()
    assert not child.is_alive()


@linux_only
def test_the_producer_sees_when_the_consumer_waits() -> None:
    from ingest.prefetch import ReadAhead

    def produce(idle):
        yield "first"
        deadline = time.monotonic() + 20
        while not idle() and time.monotonic() < deadline:
            time.sleep(0.001)
        yield idle()  # the consumer is in next() now

    with ReadAhead(produce, mode="process") as ra:
        assert next(ra) == "first"
        assert next(ra) is True


@linux_only
def test_a_reader_process_that_dies_is_reported_not_waited_for() -> None:
    from ingest.prefetch import ReadAhead, ReaderDied

    def crash(_idle):
        os.kill(os.getpid(), signal.SIGKILL)  # as a crash in C code would end it
        yield 1

    with ReadAhead(crash, mode="process") as ra:
        with pytest.raises(ReaderDied, match="killed by signal 9"):
            next(ra)


SIGNAL_DURING_FORK = """
import os, signal
from ingest.interrupts import install
from ingest.prefetch import ReadAhead, ReaderDied
install()  # the parent's handler: it raises
# a SIGTERM that reaches the child before its own handlers are set, as the parent's close()
# (or a terminal's Ctrl-C, to the whole process group) can
os.register_at_fork(after_in_child=lambda: os.kill(os.getpid(), signal.SIGTERM))
with ReadAhead(lambda idle: iter(range(3)), mode="process") as ra:
    try:
        print(list(ra))
    except ReaderDied as exc:
        print(exc)
"""


@linux_only
def test_a_signal_to_the_reader_before_its_handlers_are_set_ends_it_quietly() -> None:
    """Not the parent's handler in the child (it raised inside fork's after-fork hooks and
    printed "Exception ignored in: <function _after_fork ...>" with a traceback): the signal
    waits until the child's own handlers are set, then SIGTERM ends it."""
    done = subprocess.run([sys.executable, "-c", SIGNAL_DURING_FORK], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.strip() == "the reader process ended without a result (killed by signal 15)"


# -- the extended XYZ reader ----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["process", "thread", "inline"])
def test_binary_data_is_refused_before_the_parser_sees_it(tmp_path, monkeypatch, mode) -> None:
    """The byte check runs first in the reader: its error, never the parser's (which could crash
    on binary data), whichever is asked for first."""
    if mode == "process" and not sys.platform.startswith("linux"):
        pytest.skip("the reader process is Linux's")
    from ingest import extxyz
    from ingest.extxyz import ExtxyzReader

    def parser_must_not_run(*_args, **_kwargs):
        raise AssertionError("the parser ran on a file the byte check refuses")
        yield

    monkeypatch.setattr(extxyz, "_parse", parser_must_not_run)  # the forked child has it too
    path = tmp_path / "garbage.xyz"
    write_fcc_xyz(path, 3, reps=2)
    with open(path, "ab") as fh:
        fh.write(b"2\nLattice=\"1 0 0 0 1 0 0 0 1\"\n\x00\x01\x02 garbage\n")
    for first in ("sha256", "batches"):
        with ExtxyzReader(path, mode=mode) as reader, \
                pytest.raises(IngestError, match="NUL byte") as info:
            reader.sha256() if first == "sha256" else next(reader)
        assert str(path) in str(info.value) and "line " in str(info.value)


@linux_only
def test_the_reader_processes_give_what_the_inline_reader_gives(tmp_path) -> None:
    """Same batches (arrays, labels, hashes, descriptions) whichever side computed what."""
    from ingest.extxyz import ExtxyzReader

    path = tmp_path / "set.xyz"
    write_fcc_xyz(path, 40, reps=3, seed=5)
    results = {}
    for mode in ("process", "thread", "inline"):
        with ExtxyzReader(path, batch_atoms=1000, mode=mode) as reader:
            sha = reader.sha256()
            batches = list(reader)
        results[mode] = (sha, batches)
    sha, want = results["inline"]
    for mode in ("process", "thread"):
        got_sha, got = results[mode]
        assert got_sha == sha
        assert len(got) == len(want) > 3
        for g, w in zip(got, want, strict=True):
            for name in ("counts", "numbers", "positions", "cells", "pbcs", "forces", "has_forces"):
                np.testing.assert_array_equal(getattr(g, name), getattr(w, name))
            assert (g.index, g.energy, g.config_type) == (w.index, w.energy, w.config_type)
            assert g.identity() == w.identity()
            assert g.description() == w.description()


def test_ingest_is_the_same_in_every_read_ahead_mode(tmp_path, monkeypatch, db_url) -> None:
    """Catalog rows and lake contents do not depend on where the reading ran."""
    import pyarrow.parquet as pq

    from ingest import prefetch
    from ingest.api import ingest_structures
    from warehouse import open_warehouse

    path = tmp_path / "set.xyz"
    write_fcc_xyz(path, 30, reps=3, seed=9)
    seen = []
    for k, mode in enumerate(("process", "thread", "inline")):
        monkeypatch.setattr(prefetch, "MODE", mode)
        lake = tmp_path / f"lake-{mode}"
        url = db_url if k == 0 else f"sqlite:///{tmp_path / f'{mode}.sqlite'}"
        with open_warehouse(url, str(lake)) as wh:
            summary = ingest_structures(wh, path, dataset="d", level_of_theory="EMT")
            assert summary.added["structures"] == 30
            with wh.session() as s:
                rows = s.execute(select(m.Structure.hash, m.Structure.formula, m.Structure.cell,
                                        m.Structure.volume).order_by(m.Structure.id)).all()
                refs = s.execute(select(m.Reference.energy, m.Reference.stress_xy)
                                 .order_by(m.Reference.id)).all()
            files = sorted(lake.rglob("*.parquet"))
            tables = {f.parent.parent.name: pq.read_table(f) for f in files}
        seen.append((rows, refs, {k: t.drop_columns([c for c in t.column_names if c.endswith("id")])
                                  for k, t in tables.items()}))
    assert seen[0][0] == seen[1][0] == seen[2][0]
    assert seen[0][1] == seen[1][1] == seen[2][1]
    for name in seen[0][2]:
        assert seen[0][2][name].equals(seen[1][2][name]) and seen[0][2][name].equals(seen[2][2][name])


def test_ingest_structures_loads_no_pandas_scipy_or_matplotlib(tmp_path) -> None:
    """pyarrow's pa.array/pa.table import pandas (~0.5 s); the lake writes avoid both."""
    path = tmp_path / "set.xyz"
    write_fcc_xyz(path, 5, reps=2)
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    probe = (
        "import sys\nfrom cli.app import main\n"
        f"sys.argv = ['warehouse', '--url', {url!r}, '--lake', {str(tmp_path / 'lake')!r},"
        f" 'ingest', 'structures', {str(path)!r}, '--dataset', 'd']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('heavy:' + ','.join(sorted(m for m in ('pandas', 'scipy', 'matplotlib')"
        " if m in sys.modules)))\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "5 structures" in res.stdout
    assert res.stdout.strip().splitlines()[-1] == "heavy:"


def test_numpy_table_keeps_types_and_values_without_pandas() -> None:
    code = (
        "import sys, numpy as np\n"
        "from warehouse.lake import numpy_table\n"
        "a = np.arange(12.0).reshape(4, 3)\n"
        "t = numpy_table({'i': np.arange(4, dtype=np.int64), 'z': np.arange(4, dtype=np.int16),"
        " 'x': a[:, 1], 'f': np.ones(4, np.float32)})\n"
        "assert [str(f.type) for f in t.schema] == ['int64', 'int16', 'double', 'float'], t.schema\n"
        "assert t.column('x').to_pylist() == [1.0, 4.0, 7.0, 10.0]\n"
        "assert 'pandas' not in sys.modules\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# -- background lake writes and COPYs ------------------------------------------------------------

def test_a_failure_after_background_lake_writes_leaves_no_file(wh, tmp_path) -> None:
    """A bad frame after several batches: the files written by the worker are removed too."""
    from ingest import extxyz
    from ingest.api import ingest_structures

    before = snapshot(wh)
    path = tmp_path / "bad-late.xyz"
    write_fcc_xyz(path, 60, reps=3, seed=2)
    with open(path, "a") as fh:
        fh.write("2\nLattice=\"3 0 0 0 3 0 0 0 3\" Properties=species:S:1:pos:R:3\n"
                 "Cu 0 0 0\nCu nan 0 0\n")
    reader = extxyz.ExtxyzReader(path, batch_atoms=1000)
    with pytest.raises(IngestError, match="frame 60") as info:
        ingest_structures(wh, path, dataset="d", reader=reader)
    assert str(path) in str(info.value)
    assert snapshot(wh) == before


@pytest.mark.skipif(engine_name() != "postgresql", reason="background COPY is PostgreSQL's")
def test_a_failing_background_copy_is_raised_at_the_next_statement(wh) -> None:
    from ingest.writers.bulk import BackgroundWriter

    with wh.engine.connect() as conn:
        copy = BackgroundWriter(conn)
        # a member of a dataset that does not exist: the COPY fails on the foreign key
        copy.copy(m.DatasetMember.__table__, ("dataset_id", "structure_id", "ingest_run_id"),
                    [(999_999, 1, 1)])
        with pytest.raises(Exception, match="foreign key"):
            conn.execute(text("SELECT 1"))
        copy.close()
        conn.rollback()
    with wh.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dataset_members")).scalar() == 0


def test_messages_cross_the_pipe_with_their_arrays_out_of_band() -> None:
    """What the reader process sends arrives equal, arrays writable (contiguous, strided, empty,
    object and zero-dimensional ones among plain values); a sender gone part-way through a
    message is EOF, not a hang or a half-built item."""
    import io
    import os
    import pickle
    import threading

    from ingest.prefetch import _recv, _send

    r, w = os.pipe()
    recv, send = io.FileIO(r, "rb"), io.FileIO(w, "wb")
    big = np.arange(300_000, dtype=np.float64).reshape(-1, 3)
    message = ("item", {"big": big, "strided": big[::7, 1], "empty": np.empty((0, 3)),
                        "scalar": np.float64(2.5), "objects": np.array(["Cu", None], dtype=object),
                        "plain": [1, "two", None]})
    sender = threading.Thread(target=_send, args=(send, message))  # the pipe holds less than it
    sender.start()
    tag, got = _recv(recv)
    sender.join()
    assert tag == "item" and got["plain"] == [1, "two", None] and got["scalar"] == 2.5
    for name in ("big", "strided", "empty", "objects"):
        assert np.array_equal(got[name], message[1][name]), name
    assert got["big"].flags.writeable
    got["big"][0, 0] = -1.0  # a fresh buffer: the sender's array is untouched
    assert big[0, 0] == 0.0
    # the header promises a buffer that never comes: EOF
    meta = pickle.dumps((pickle.dumps("x", protocol=5), [16]), protocol=5)
    send.write(len(meta).to_bytes(8, "little") + meta)
    send.close()
    with pytest.raises(EOFError):
        _recv(recv)
    recv.close()
