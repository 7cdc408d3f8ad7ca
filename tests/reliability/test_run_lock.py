"""A kill -9 of the main process never blocks the rerun: forked workers do not keep the run lock, and a lock
record left by a dead run is taken over with a message."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from definemed.errors import DefinemedError
from definemed.runfolder import LOCK, run_lock

REPO = Path(__file__).resolve().parents[2]

# The main process takes the run lock and forks a worker the way datatrove's local executor does (a
# multiprocess Manager and Pool under the fork start method), then waits to be killed.
HOLDER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import multiprocess
    from definemed.runfolder import run_lock

    def work(_):
        Path(sys.argv[2]).write_text(str(os.getpid()))
        time.sleep(120)

    if __name__ == "__main__":
        with run_lock(Path(sys.argv[1])):
            ctx = multiprocess.get_context(sys.argv[3])
            manager = multiprocess.Manager()
            with ctx.Pool(1) as pool:
                pool.map(work, [0])
""")


def _wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and not (path.exists() and path.read_text()):
        time.sleep(0.05)
    assert path.exists(), f"{path} never appeared"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); look at its state
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(") ")[1][0] != "Z"


@pytest.mark.parametrize("start_method", ["fork", "forkserver"])  # forkserver: datatrove's default
def test_killing_the_main_pid_releases_the_lock_at_once(tmp_path: Path, caplog, start_method: str) -> None:
    run_dir, child_pid_file = tmp_path / "run", tmp_path / "child.pid"
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO / "src"))}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(run_dir), str(child_pid_file), start_method], env=env, start_new_session=True
    )  # its own group: we kill the main PID only, not the group
    try:
        _wait_for(child_pid_file)
        with pytest.raises(DefinemedError, match=f"in use by definemed pid {proc.pid}"), run_lock(run_dir):
            pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        # the rerun gets the lock right away, says it takes over a dead run's lock
        with caplog.at_level(logging.WARNING, logger="definemed"), run_lock(run_dir):
            holder = json.loads((run_dir / LOCK).read_text())
            assert holder["pid"] == os.getpid()
        assert "no longer running; taking it over" in caplog.text
        # and the orphaned worker did not outlive its parent (it would keep writing into the run)
        child = int(child_pid_file.read_text())
        deadline = time.time() + 10
        while time.time() < deadline and _alive(child):
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_clean_release_is_not_reported_as_a_dead_run(tmp_path: Path, caplog) -> None:
    with run_lock(tmp_path / "run"):
        pass
    record = json.loads((tmp_path / "run" / LOCK).read_text())
    record["pid"] = 1  # as if another, finished process had held it
    (tmp_path / "run" / LOCK).write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="definemed"), run_lock(tmp_path / "run"):
        pass
    assert "taking it over" not in caplog.text


def test_a_second_run_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with run_lock(tmp_path / "run"), pytest.raises(DefinemedError, match="in use by"), run_lock(tmp_path / "run"):
        pass
