"""One program at a time per LED controller.

Two programs sending to the same controller (the show and ``hardware/test_leds.py``, two mapping runs)
interleave their frames on the wire: each limits its own flashes, but the LEDs show both streams, and
"white" from one with "off" from the other is a strobe neither program sees.  So every program that
builds a venue's outputs first claims each controller it will drive: an exclusive advisory lock
(``flock``) on a file named after the controller's address, in a directory every user of the machine
shares.  The kernel drops the lock when the program ends, however it ends, so a crash never leaves a
controller claimed.  A claim held by another program is refused with who holds it.
"""

from __future__ import annotations

import fcntl
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Iterable

from .base import DEFAULT_PORTS, OutputConfig


class ControllersBusy(RuntimeError):
    """A controller is already driven by another program; the message names it and that program."""


def default_directory() -> Path:
    """Where the claims live: one directory for every user of the machine (the show's service user and
    the installer's login alike), overridable with ``TAPESTRY_CLAIMS_DIR``."""
    return Path(os.environ.get("TAPESTRY_CLAIMS_DIR") or Path(tempfile.gettempdir()) / "tapestry-controllers")


def controller_key(cfg: OutputConfig) -> str:
    """What two outputs must not share: the serial device of a DMX interface, else protocol, host and port."""
    if cfg.protocol == "enttec":
        dev = cfg.options.get("device") or cfg.host
        return f"enttec {os.path.realpath(str(dev))}"
    port = cfg.port if cfg.port is not None else DEFAULT_PORTS.get(cfg.protocol)
    return f"{cfg.protocol} {cfg.host}:{port}"


def _file_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key) + ".lock"


class ControllerClaim:
    """Exclusive claims on the controllers behind ``configs`` (enabled outputs only), held until :meth:`release`.

    Raises :class:`ControllersBusy` (claiming nothing) if another program holds any of them.
    """

    def __init__(self, configs: Iterable[OutputConfig], directory: Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()
        self.keys = sorted({controller_key(c) for c in configs if c.enabled})
        self._files: list[int] = []
        if not self.keys:
            return
        try:
            self.directory.mkdir(mode=0o777, parents=True, exist_ok=True)
            if self.directory.stat().st_uid == os.getuid():
                os.chmod(self.directory, 0o1777)   # shared like /tmp: anyone may add a claim, none remove another's
        except OSError as exc:
            raise ControllersBusy(f"cannot claim the LED controllers: {self.directory}: {exc.strerror}") from None
        try:
            for key in self.keys:
                self._claim(key)
        except BaseException:
            self.release()
            raise

    def _claim(self, key: str) -> None:
        path = self.directory / _file_name(key)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:   # another user's file: locking needs no write access
            fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 400, 0).decode("utf-8", "replace").strip() or "another program"
            os.close(fd)
            raise ControllersBusy(f"{key} is already driven by {holder}; stop that first (two programs sending "
                                  f"to the same LEDs interleave their frames into a flicker neither limits)") from None
        self._files.append(fd)
        try:
            if os.fstat(fd).st_uid == os.getuid():
                os.fchmod(fd, 0o666)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} ({' '.join(sys.argv)[:200]})\n".encode(), 0)
        except OSError:
            pass   # read-only: the claim holds, only the note of who holds it is another's

    def release(self) -> None:
        """Give the controllers back (closing the files drops the locks); safe to call twice."""
        while self._files:
            os.close(self._files.pop())
