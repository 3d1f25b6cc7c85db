"""The run-folder lock: one run at a time per folder, and a killed run never leaves the folder stuck."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from visdepth.errors import VisdepthError
from visdepth.results.lock import LOCK_NAME, RunLock, RunLockedError

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process signals")


def _holder(folder) -> subprocess.Popen:
    """Another process that takes the folder's lock, says so, and waits to be killed."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from visdepth.results.lock import RunLock
        lock = RunLock({str(folder)!r}).acquire()
        print("locked", flush=True)
        time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_lock_on_a_held_folder_is_refused_in_one_line(tmp_path):
    with RunLock(tmp_path / "run") as held:
        assert held.held and (tmp_path / "run" / LOCK_NAME).exists()
        with pytest.raises(RunLockedError) as info:
            RunLock(tmp_path / "run").acquire()
    message = str(info.value)
    assert isinstance(info.value, VisdepthError) and "\n" not in message
    assert str(tmp_path / "run") in message and f"pid {os.getpid()}" in message
    assert "--output_path" in message and "wait for it to finish" in message
    # released: the file is gone and the folder can be locked again
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    with RunLock(tmp_path / "run"):
        pass


def test_another_process_holding_the_lock_refuses_this_one(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_left_by_a_killed_process_does_not_block_the_next_run(tmp_path):
    proc = _holder(tmp_path)
    with pytest.raises(RunLockedError):
        RunLock(tmp_path).acquire()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / LOCK_NAME).exists()  # the file stays behind; the kernel dropped the lock itself
    with RunLock(tmp_path) as lock:
        assert lock.held and f'"pid": {os.getpid()}' in (tmp_path / LOCK_NAME).read_text()
    assert not (tmp_path / LOCK_NAME).exists()


def test_release_is_idempotent_and_a_lock_is_not_re_entrant(tmp_path):
    lock = RunLock(tmp_path).acquire()
    with pytest.raises(RuntimeError, match="already held"):
        lock.acquire()
    lock.release()
    lock.release()
    assert not lock.held
    with lock:  # the same object can lock the folder again once released
        assert lock.held
