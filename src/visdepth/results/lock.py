"""One run at a time per run folder: an advisory lock on a file inside the folder.

Two runs appending to one ``samples.jsonl`` would each measure every missing sample and write it, so the file
would end with every row twice. :class:`RunLock` holds an OS-level advisory lock (``flock`` on POSIX,
``msvcrt.locking`` on Windows) on ``<folder>/.visdepth.lock`` for the duration of a run; a second run into the
same folder is refused at once with :class:`RunLockedError`. The kernel drops the lock when the holding process
ends, however it ends, so a killed run never leaves the folder stuck: the stale file is simply locked again by
the next run. The file records who holds it (pid, host, start time, command) for the refusal message.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from visdepth.errors import VisdepthError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
try:  # Windows
    import msvcrt
except ImportError:
    msvcrt = None  # type: ignore[assignment]

LOCK_NAME = ".visdepth.lock"


class RunLockedError(VisdepthError):
    """Another run is writing into the same run folder."""


def _try_lock(f: IO[str]) -> bool:
    """Take the lock on ``f`` without waiting; False when another open file (any process) holds it."""
    if fcntl is not None:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    if msvcrt is not None:  # pragma: no cover - Windows
        try:
            f.seek(0)
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    return True  # pragma: no cover - no advisory locks on this platform: run unguarded


def _unlock(f: IO[str]) -> None:
    if fcntl is not None:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    elif msvcrt is not None:  # pragma: no cover - Windows
        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)


def _same_file(f: IO[str], path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(f.fileno()), os.stat(path))
    except OSError:
        return False


def holder(path: Path) -> dict[str, Any]:
    """What the lock file says about its holder (empty when it is unreadable or being rewritten)."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


class RunLock:
    """Exclusive lock on a run folder, as a context manager: ``with RunLock(out): ...``.

    Acquiring never waits: a folder locked by a live process raises :class:`RunLockedError` naming the folder,
    the holder and the fix. Releasing removes the lock file (while still holding the lock, so a run that opened
    the old file notices the swap and locks the new one). Not re-entrant: lock a folder once per run.
    ``name`` is the lock file's (the other processes of a data-parallel run lock ``.visdepth.rank<k>.lock``).
    """

    def __init__(self, folder: str | os.PathLike[str], name: str = LOCK_NAME) -> None:
        self.folder = Path(folder)
        self.path = self.folder / name
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> RunLock:
        if self._file is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            f = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
            if not _try_lock(f):
                f.close()
                raise RunLockedError(self._refusal())
            if _same_file(f, self.path):
                break
            # the previous holder removed the file between our open and our lock: lock the current one
            _unlock(f)
            f.close()
        f.seek(0)
        f.truncate()
        f.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "command": sys.argv,
                }
            )
            + "\n"
        )
        f.flush()
        self._file = f
        return self

    def _refusal(self) -> str:
        info = holder(self.path)
        who = ""
        if info.get("pid"):
            who = f" (pid {info['pid']}" + (f" on {info['host']}" if info.get("host") else "")
            who += f", started {info['started_at']})" if info.get("started_at") else ")"
        return (
            f"another visdepth run{who} is writing to {self.folder}; wait for it to finish, or pass another "
            "--output_path to run both at once."
        )

    def release(self) -> None:
        f, self._file = self._file, None
        if f is None:
            return
        # Windows refuses to delete an open file: the file is then left, unlocked, for the next run to take
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        try:
            _unlock(f)
        finally:
            f.close()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunLock({str(self.folder)!r}, held={self.held})"
