"""Child processes the tests start (daemons, capture tools): stopping them without hanging the suite."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM ``proc`` if it still runs; SIGKILL it if it has not exited after ``timeout`` s; reap it."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
