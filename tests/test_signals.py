"""Ctrl-C and SIGTERM at any moment: "Interrupted: nothing from this command was kept.", exit
130 / 143, never a traceback, never a silent death, and nothing kept.

The signal is sent once the process has its handlers (read from /proc: the moment the console
script's first line ran, i.e. during the imports), then after random delays, on real
`warehouse` processes.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest_helpers import snapshot, write_fcc_xyz

WAREHOUSE = Path(sys.executable).with_name("warehouse")
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
MESSAGE = "Interrupted: nothing from this command was kept."

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc: Linux only"),
    pytest.mark.skipif(not WAREHOUSE.exists(), reason="the warehouse console script is not installed"),
]


def _catches_signals(pid: int) -> bool:
    """True once the process handles SIGTERM itself (its handlers are installed)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt")), 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _start(cmd: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _catches_signals(proc.pid):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the process never installed its handlers"
        time.sleep(0.001)
    return proc


def _signal(proc: subprocess.Popen, sig: int) -> tuple[int, str, float]:
    t0 = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err, time.monotonic() - t0


@pytest.fixture(scope="module")
def medium_xyz(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sig") / "medium.xyz"
    write_fcc_xyz(path, 600, reps=4, seed=11)  # 600 x 256 atoms: an ingest of 0.5-3 s
    return path


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_imports_ends_cleanly(sig, db_url, lake_path, medium_xyz) -> None:
    proc = _start([str(WAREHOUSE), "--url", db_url, "--lake", str(lake_path), "ingest",
                   "structures", str(medium_xyz), "-d", "m"])
    code, err, _ = _signal(proc, sig)
    assert code == EXIT[sig], err
    assert err.strip().endswith(MESSAGE) and "Traceback" not in err, err


def _ingest_seconds(path: Path, folder: Path) -> float:
    """How long an uninterrupted ingest of ``path`` takes on this machine, from its handlers'
    installation (as ``_start`` returns) to its exit, into a catalog of its own."""
    from warehouse import open_warehouse

    url, lake = f"sqlite:///{folder / 'timing.sqlite'}", folder / "timing-lake"
    open_warehouse(url, str(lake)).close()  # the schema first: not part of the timed ingest
    proc = _start([str(WAREHOUSE), "--url", url, "--lake", str(lake), "ingest", "structures",
                   str(path), "-d", "m"])
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return time.monotonic() - t0


def test_signals_at_random_moments_of_an_ingest_keep_nothing(db_url, lake_path, medium_xyz, wh,
                                                             tmp_path) -> None:
    before = snapshot(wh)
    rng = random.Random(5)
    # signals at random moments within the ingest's own duration on this machine (a fixed
    # window missed the whole ingest on a fast one)
    window = 0.9 * _ingest_seconds(medium_xyz, tmp_path)
    outcomes = []
    for i in range(8):
        sig = (signal.SIGINT, signal.SIGTERM)[i % 2]
        proc = _start([str(WAREHOUSE), "--url", db_url, "--lake", str(lake_path), "ingest",
                       "structures", str(medium_xyz), "-d", "m"])
        time.sleep(rng.uniform(0.0, window))
        code, err, seconds = _signal(proc, sig)
        assert "Traceback" not in err, err
        if code == 0 or "had committed" in err:  # it had finished: it must be whole
            assert code in (0, EXIT[sig]), (code, err)
            assert snapshot(wh)[0]["structures"] == before[0]["structures"] + 600
            break
        assert code == EXIT[sig] and err.strip().endswith(MESSAGE), (code, err)
        assert snapshot(wh) == before  # nothing kept, no lake file left behind
        outcomes.append(seconds)
    assert outcomes, "every ingest finished before its signal"


LONG_WORK = """
import sys
from ingest.interrupts import install
install()
from warehouse import open_warehouse
from ingest.loader import ingest_run
wh = open_warehouse(sys.argv[1], sys.argv[2])
try:
    with ingest_run(wh, kind="structures", source="busy") as ld:
        ld.level_of_theory("busy-level")
        print("busy", flush=True)
        while True:  # long CPU work in pure Python, as a matching loop is
            sum(i * i for i in range(100_000))
except BaseException as exc:
    print(type(exc).__name__, getattr(exc, "exit_code", None), flush=True)
    sys.exit(getattr(exc, "exit_code", 1))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_lands_inside_long_cpu_work_and_undoes_the_ingest(sig, db_url, lake_path, wh) -> None:
    proc = subprocess.Popen([sys.executable, "-c", LONG_WORK, db_url, str(lake_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "busy", proc.communicate()
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    seconds = time.monotonic() - t0
    assert proc.returncode == EXIT[sig], (out, err)
    assert out.strip() == f"Interrupted {EXIT[sig]}" and "Traceback" not in err, (out, err)
    assert seconds < 10, seconds  # a generous bound: ~0.1 s measured; minutes before
    assert wh.counts()["levels_of_theory"] == 0  # its transaction was rolled back
    from sqlalchemy import select

    from warehouse import models as m

    with wh.session() as s:
        status, message = s.execute(select(m.IngestRun.status, m.IngestRun.message)).one()
    assert status == "failed" and signal.Signals(sig).name in message


def test_an_interrupt_after_a_commit_says_what_was_kept(monkeypatch) -> None:
    """A signal held off during a commit lands after it: the message must not say "nothing"."""
    from cli.early import interrupted_message
    from ingest import loader

    monkeypatch.setattr(loader, "COMMITTED_RUNS", [])
    assert interrupted_message() == MESSAGE
    monkeypatch.setattr(loader, "COMMITTED_RUNS", [7])
    assert interrupted_message().startswith("Interrupted after ingest run 7 had committed")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_console_scripts_first_import_already_handles_signals(sig, tmp_path) -> None:
    """A signal right after the console script's first import (cli.early), before the command's
    own handlers exist: the message and exit status, no traceback, no silent death."""
    script = tmp_path / "warehouse"  # named as the console script: cli.early checks argv[0]
    script.write_text("import os, signal, time\nimport cli.early\n"
                      f"os.kill(os.getpid(), {int(sig)})\ntime.sleep(30)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT[sig], done.stderr
    assert done.stderr == MESSAGE + "\n"


def test_importing_the_console_module_leaves_a_library_users_handlers_alone() -> None:
    code = "import signal, cli.early; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr



LOST_SIGNAL = """
import os, signal, sys, time
import typer
import cli.app, cli.early
from cli.context import WarehouseGroup
from warehouse.errors import WarehouseError

class Wrapped:  # the signal lands in __set_name__: a RuntimeError whose cause it is
    def __set_name__(self, owner, name):
        os.kill(os.getpid(), SIG)
        time.sleep(5)

class Lost:  # as numpy's PyCapsule_Import: the signal's exception replaced by an ImportError
    def __set_name__(self, owner, name):
        try:
            os.kill(os.getpid(), SIG)
            time.sleep(5)
        except BaseException:
            pass
        raise ImportError('PyCapsule_Import could not import module "datetime"')

def console_level():  # during the console script's own imports
    class Unlucky:
        late = HOW()

app = typer.Typer(cls=WarehouseGroup)

@app.command()
def read() -> None:  # inside a command, whose reader turns any failure into its own error
    try:
        class Unlucky:
            late = HOW()
    except Exception as exc:
        raise WarehouseError("file.xyz, line 3: unreadable") from exc

@app.command()
def other() -> None:
    pass

cli.app.main = console_level if sys.argv[1:] == ["console"] else app
cli.early.console()
"""


@pytest.mark.parametrize("how", ["Wrapped", "Lost"])
@pytest.mark.parametrize("where", ["console", "read"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_that_c_code_wrapped_or_replaced_still_ends_cleanly(sig, where, how, tmp_path) -> None:
    """C code can turn the signal's exception into another error: the cause of a RuntimeError
    (a class body's __set_name__), or replaced by an ImportError (numpy's PyCapsule_Import).
    Seen under load: a SIGTERM during `import numpy` printed either traceback. Still the message
    and the signal's exit status, never a traceback nor "Error: <the input is bad>"."""
    script = tmp_path / "warehouse"  # named as the console script: cli.early checks argv[0]
    script.write_text(LOST_SIGNAL.replace("SIG)", f"{int(sig)})").replace("HOW()", f"{how}()"))
    done = subprocess.run([sys.executable, str(script), where], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == EXIT[sig], done.stderr
    assert done.stderr == MESSAGE + "\n"


REPLACED_IN_INGEST = """
import os, signal, sys, time
from ingest.interrupts import install
install()
from warehouse import open_warehouse
from ingest.loader import ingest_run

class Lost:  # as numpy's PyCapsule_Import: the signal's exception replaced by an ImportError
    def __set_name__(self, owner, name):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except BaseException:
            pass
        raise ImportError("could not import")

wh = open_warehouse(sys.argv[1], sys.argv[2])
try:
    with ingest_run(wh, kind="structures", source="replaced") as ld:
        ld.level_of_theory("replaced-level")
        class Unlucky:
            late = Lost()
except Exception:  # the ImportError (a RuntimeError whose cause it is, before Python 3.12)
    sys.exit(3)
"""


def test_a_replaced_signal_inside_an_ingest_is_recorded_as_the_signal(db_url, lake_path, wh) -> None:
    done = subprocess.run([sys.executable, "-c", REPLACED_IN_INGEST, db_url, str(lake_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert wh.counts()["levels_of_theory"] == 0
    from sqlalchemy import select

    from warehouse import models as m

    with wh.session() as s:
        status, message = s.execute(select(m.IngestRun.status, m.IngestRun.message)).one()
    assert status == "failed"
    assert message.startswith("interrupted by signal SIGTERM ("), message


SWALLOWED = """
import os, signal, sys, time, weakref
from ingest.interrupts import Interrupted, install
install()

class Thing:
    pass

def callback(_ref):  # as importlib's module-lock callback: an exception here is only printed
    os.kill(os.getpid(), SIG)
    time.sleep(0.5)

thing = Thing()
ref = weakref.ref(thing, callback)
try:
    del thing  # the callback runs, the signal lands in it, Python drops the exception
    for _ in range(300):  # 3 s of ordinary work the signal must still stop
        time.sleep(0.01)
    print("finished")
except Interrupted as exc:
    print("Interrupted", exc.exit_code)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_that_python_drops_in_a_callback_is_raised_again(sig) -> None:
    """Raised in a weakref callback (importlib's module locks have one) the interrupt was
    printed as "Exception ignored in: ..." and dropped: under load an ingest hit by Ctrl-C ran to
    the end and exited 0. It is raised again at the next ordinary moment."""
    done = subprocess.run([sys.executable, "-c", SWALLOWED.replace("SIG)", f"{int(sig)})")],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == f"Interrupted {EXIT[sig]}", done.stdout + done.stderr
    assert done.stderr == ""


IN_POOL_CLOSE = """
import os, signal, sys, time
from sqlalchemy import text
from ingest.interrupts import Interrupted, install
from warehouse.db import make_engine
install()
engine = make_engine(sys.argv[1])  # any command's engine, not only an ingest's
real_close = engine.dialect.do_close

def close(dbapi_connection):  # the signal lands while the pool closes a connection
    real_close(dbapi_connection)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)

engine.dialect.do_close = close
with engine.connect() as conn:
    conn.execute(text("SELECT 1"))
try:
    engine.dispose()
    print("finished")
except Interrupted as exc:
    print("Interrupted", exc.exit_code)
"""


def test_a_signal_while_the_pool_closes_a_connection_prints_no_pool_traceback(tmp_path) -> None:
    """The pool logs "Exception closing connection ..." with a traceback before it raises the
    interrupt on (seen under load at the end of an ingest): the log record is dropped."""
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    done = subprocess.run([sys.executable, "-c", IN_POOL_CLOSE, url], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "Interrupted 143", done.stdout + done.stderr
    assert done.stderr == ""


IN_TEARDOWN = """
import os, signal, sys, threading, time
import cli.app, cli.early

class Teardown:  # freed with the modules, after Python has restored the default handlers
    def __del__(self):
        os.kill(os.getpid(), SIG)
        time.sleep(0.3)

def main():
    global late
    late = Teardown()
    # a thread still alive at teardown, as pyarrow's and BLAS's pools are: a process-wide signal
    # may be delivered to it rather than to the main thread
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    print("done", flush=True)
    sys.exit(0)

cli.app.main = main
cli.early.console()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_after_a_command_finished_does_not_change_its_exit_status(sig, tmp_path) -> None:
    """Python restores the default handlers during its teardown: `db upgrade` that had finished
    died as "killed by SIGTERM" (-15) when the signal came then, 7 of 30 tries."""
    script = tmp_path / "warehouse"  # named as the console script: cli.early checks argv[0]
    script.write_text(IN_TEARDOWN.replace("SIG)", f"{int(sig)})"))
    done = subprocess.run([sys.executable, str(script), "db", "upgrade"], capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")
