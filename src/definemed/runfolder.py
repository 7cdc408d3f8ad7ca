"""What a run may touch: ownership markers, the run lock, and joining config names under a folder.

A run deletes only folders it created. Every folder the runner makes (the run folder, each stage folder) carries
a small marker file; a folder without one is someone else's and is never removed or written into: the runner
refuses with an error instead (like Git and DVC refusing to overwrite what they do not track).

The run lock is an `flock` on `<run_dir>/.lock`, held by the main process only: the descriptor is not inherited
across exec, forked workers close their copy at once and are told to die with their parent, so a `kill -9` of the
main process releases the lock. The lock file records the holder's pid, host and a token that every process of
the run carries in its environment; a rerun that finds the record of a run that is no longer alive says so, stops
that run's leftover workers (datatrove's forkserver workers finish their rank otherwise) and takes over.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from definemed.errors import DefinemedError

logger = logging.getLogger("definemed")

MARKER = ".definemed-owned"
LOCK = ".lock"


class RunFolderError(DefinemedError, RuntimeError):
    """The run folder (or a folder inside it) is not ours to change, or is in use by another run."""


# ---------------------------------------------------------------------------------------------- markers
def mark_owned(folder: Path, role: str) -> None:
    """Create `folder` if needed and record that definemed made it (written once, never rewritten)."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER
    if not marker.exists():
        marker.write_text(
            json.dumps(
                {"created_by": "definemed", "role": role, "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
            )
            + "\n",
            encoding="utf-8",
        )


def is_owned(folder: Path) -> bool:
    return not folder.is_symlink() and (folder / MARKER).is_file()


def _legacy_run(run_dir: Path, stages: tuple[str, ...]) -> bool:
    """A run folder written before markers existed: a `.lock` and only stage folders holding our manifests."""
    if not (run_dir / LOCK).is_file():
        return False
    for entry in run_dir.iterdir():
        if entry.name == LOCK:
            continue
        if entry.is_symlink() or not entry.is_dir() or entry.name not in stages:
            return False
        if not ((entry / "manifest.json").is_file() or (entry / ".attempt.json").is_file()):
            return False
    return True


def claim_run_dir(run_dir: Path, stages: tuple[str, ...] = ()) -> None:
    """Make `run_dir` ours: create and mark it, adopt it when it exists empty, refuse it when it holds foreign files."""
    if run_dir.is_symlink() and not run_dir.exists():
        raise RunFolderError(f"run.run_dir {run_dir} is a dangling symlink; point run.run_dir at a real folder")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"run.run_dir {run_dir} exists and is not a folder; choose another run.run_dir")
    if run_dir.exists() and not is_owned(run_dir) and _legacy_run(run_dir, stages):
        logger.info("adopting %s, a run folder from a definemed version without ownership markers", run_dir)
        for entry in run_dir.iterdir():
            if entry.is_dir():
                mark_owned(entry, f"stage:{entry.name}")
    elif run_dir.exists() and not is_owned(run_dir) and any(p.name != LOCK for p in run_dir.iterdir()):
        raise RunFolderError(
            f"run.run_dir {run_dir} already exists, holds files and was not created by definemed (no {MARKER}); "
            "nothing was changed. Choose an empty or new run.run_dir"
        )
    mark_owned(run_dir, "run")


def remove_owned(folder: Path, what: str) -> None:
    """Delete a folder the runner created; refuse (touching nothing) if it carries no marker."""
    if not folder.exists() and not folder.is_symlink():
        return
    if not is_owned(folder):
        raise RunFolderError(
            f"{what} {folder} exists but was not created by definemed (no {MARKER}"
            f"{', it is a symlink' if folder.is_symlink() else ''}); nothing was deleted. Move it away or choose "
            "another run.run_dir"
        )
    shutil.rmtree(folder)


# --------------------------------------------------------------------------------------------- safe join
def safe_join(root: Path, name: str, suffix: str = "") -> Path:
    """`root / (name + suffix)`, refusing a name that is not a single plain component or that leaves `root`."""
    leaf = f"{name}{suffix}"
    if not name or {name, leaf} & {".", ".."} or "/" in leaf or "\\" in leaf or "\x00" in leaf:
        raise RunFolderError(f"'{name}' cannot be used as a file name under {root}: use letters, digits, - _ .")
    path = root / leaf
    if not path.resolve().is_relative_to(root.resolve()):
        raise RunFolderError(f"'{name}' resolves outside {root}; refusing to write there")
    return path


# ------------------------------------------------------------------------------------------------- lock
_HELD_FDS: set[int] = set()


def _after_fork_in_child() -> None:
    # A forked worker must not keep the run lock alive once the main process is gone: drop our descriptor copy
    # (the parent's lock is untouched: an flock belongs to the open file description, which the parent keeps).
    if not _HELD_FDS:
        return
    for fd in list(_HELD_FDS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_FDS.clear()
    _die_with_parent()


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies, so an orphaned worker stops writing into the run."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


os.register_at_fork(after_in_child=_after_fork_in_child)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


TOKEN_ENV = "DEFINEMED_RUN_TOKEN"  # inherited by every process a run starts (forkserver workers included)


def _stop_leftovers(token: str) -> int:
    """SIGKILL processes a dead run left behind (found by the token in their environment; Linux /proc only), so
    an orphaned datatrove worker cannot keep writing into the folder the rerun resumes in."""
    needle = f"{TOKEN_ENV}={token}".encode()
    stopped = 0
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)
                stopped += 1
        except (OSError, ValueError):
            continue
    return stopped


def _read_holder(fd: int) -> dict[str, object]:
    with contextlib.suppress(OSError, ValueError):
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 4096).decode("utf-8", "replace").strip()
        if raw:
            data = json.loads(raw)
            if isinstance(data, dict):
                return data
    return {}


def _describe(holder: dict[str, object]) -> str:
    if not holder:
        return "another process"
    return f"definemed pid {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"


@contextlib.contextmanager
def run_lock(run_dir: Path, stages: tuple[str, ...] = ()) -> Iterator[None]:
    """Hold the run folder exclusively; take over (with a message) the lock record of a run that died."""
    claim_run_dir(run_dir, stages)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = _read_holder(fd)
            hint = ""
            if (
                holder.get("host") == socket.gethostname()
                and isinstance(holder.get("pid"), int)
                and not _pid_alive(holder["pid"])
            ):
                hint = (
                    " The recorded run is no longer alive, so a leftover process of it still holds the lock "
                    f"(find it with `fuser {run_dir / LOCK}`)"
                )
            raise RunFolderError(
                f"{run_dir} is in use by {_describe(holder)}; wait for it to finish or stop it.{hint}"
            ) from None
        previous = _read_holder(fd)
        if previous.get("pid") not in (None, os.getpid()) and not previous.get("released"):
            stopped = _stop_leftovers(str(previous["token"])) if previous.get("token") else 0
            logger.warning(
                "run lock of %s was left by %s, which is no longer running; taking it over and resuming%s",
                run_dir,
                _describe(previous),
                f" (stopped {stopped} leftover worker process(es) of it)" if stopped else "",
            )
        token = uuid.uuid4().hex
        _write_holder(
            fd,
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "token": token,
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        _HELD_FDS.add(fd)
        outer = os.environ.get(TOKEN_ENV)
        os.environ[TOKEN_ENV] = token
        try:
            yield
        finally:
            if outer is None:
                os.environ.pop(TOKEN_ENV, None)
            else:
                os.environ[TOKEN_ENV] = outer
            _HELD_FDS.discard(fd)
            with contextlib.suppress(OSError):
                _write_holder(fd, {**_read_holder(fd), "released": True})
    finally:
        os.close(fd)


def _write_holder(fd: int, record: dict[str, object]) -> None:
    data = (json.dumps(record) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
