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
import stat
import sys
import tempfile
from pathlib import Path
from typing import Iterable

from .base import DEFAULT_PORTS, OutputConfig


class ControllersBusy(RuntimeError):
    """A controller is already driven by another program; the message names it and that program."""


#: Shared by every program whatever its ``TMPDIR`` or private /tmp (the systemd unit has ``PrivateTmp=yes``
#: and lists this directory in ``ReadWritePaths``); /tmp only where a system has no /run/lock.
SHARED_DIRS = (Path("/run/lock"), Path("/tmp"))


def default_directory() -> Path:
    """Where the claims live: one directory for every user of the machine and every program (the show's
    service and the installer's login alike), overridable with ``TAPESTRY_CLAIMS_DIR``."""
    if os.environ.get("TAPESTRY_CLAIMS_DIR"):
        return Path(os.environ["TAPESTRY_CLAIMS_DIR"])
    base = next((d for d in SHARED_DIRS if d.is_dir()), SHARED_DIRS[-1])
    return base / "tapestry-controllers"


def controller_keys(cfg: OutputConfig, universes: Iterable[int] = ()) -> list[str]:
    """What two outputs must not share: the serial device of a DMX interface; for sACN multicast each
    universe (its group is the universe's, whatever ``host`` says); else protocol, host and port."""
    if cfg.protocol == "enttec":
        dev = cfg.options.get("device") or cfg.host
        return [f"enttec {os.path.realpath(str(dev))}"]
    if cfg.protocol == "sacn" and cfg.options.get("multicast"):
        return [f"sacn multicast universe {int(u)}" for u in universes]
    port = cfg.port if cfg.port is not None else DEFAULT_PORTS.get(cfg.protocol)
    return [f"{cfg.protocol} {cfg.host}:{port}"]


def _file_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key) + ".lock"


class ControllerClaim:
    """Exclusive claims on the controllers behind ``outputs`` (enabled ones only), held until :meth:`release`.

    ``outputs``: output configs, or ``(config, universes)`` pairs (the universes matter for sACN multicast).
    Raises :class:`ControllersBusy` (claiming nothing) if another program holds any of them, or the claim
    cannot be made at all.
    """

    def __init__(self, outputs: Iterable, directory: Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()
        pairs = [o if isinstance(o, tuple) else (o, ()) for o in outputs]
        self.keys = sorted({k for c, u in pairs if c.enabled for k in controller_keys(c, u)})
        self._files: list[int] = []
        if not self.keys:
            return
        self._open_directory()
        try:
            for key in self.keys:
                self._claim(key)
        except BaseException:
            self.release()
            raise

    def _open_directory(self) -> None:
        """Make the shared directory (atomically: a private one renamed into place, then sticky and open to
        all, like /tmp) or check the one there: a real directory, not a link, that nobody can empty under
        the claims it holds (sticky wherever others may write)."""
        d = self.directory
        try:
            if not os.path.lexists(d):
                d.parent.mkdir(parents=True, exist_ok=True)
                tmp = tempfile.mkdtemp(prefix=".tapestry-", dir=d.parent)
                os.chmod(tmp, 0o1777)
                try:
                    os.rename(tmp, d)   # fails if another program made it meanwhile: theirs is checked below
                except OSError:
                    os.rmdir(tmp)
            st = os.lstat(d)
        except OSError as exc:
            raise ControllersBusy(f"cannot claim the LED controllers: {d}: {exc.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise ControllersBusy(f"cannot claim the LED controllers: {d} is not a directory (a link?); remove it")
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise ControllersBusy(f"cannot claim the LED controllers: {d} may be emptied by others (writable, not "
                                  f"sticky); remove it (it is made again)")

    def _claim(self, key: str) -> None:
        path = self.directory / _file_name(key)
        # a link planted in the shared directory is never followed, a planted FIFO never waited on
        flags = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            try:
                fd = os.open(path, os.O_RDWR | flags)   # an existing file first: another user's refuses O_CREAT
            except FileNotFoundError:
                try:
                    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | flags, 0o666)
                except FileExistsError:   # another program made it just now
                    fd = os.open(path, os.O_RDWR | flags)
        except PermissionError as denied:   # another user's file: locking needs no write access
            try:
                fd = os.open(path, os.O_RDONLY | flags)
            except FileNotFoundError:   # no file, and no right to make one: the directory is the problem
                raise ControllersBusy(f"cannot claim {key}: {self.directory}: {denied.strerror} (it must be "
                                      f"writable by every user, sticky, like /tmp)") from None
            except OSError as exc:
                raise ControllersBusy(f"cannot claim {key}: {path}: {exc.strerror}") from None
        except OSError as exc:
            raise ControllersBusy(f"cannot claim {key}: {path}: {exc.strerror}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:   # a hard link to someone's file: hands off
            os.close(fd)
            raise ControllersBusy(f"cannot claim {key}: {path} is not a plain claim file; remove it")
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
