"""Unattended running under systemd: sd_notify, a frame-loop watchdog, and the unit installer.

* :class:`Notifier` speaks the sd_notify protocol (one unix datagram per message to
  ``$NOTIFY_SOCKET``, abstract sockets written ``@name``) with the standard library only.
  Without ``NOTIFY_SOCKET`` every call is a cheap no-op, so the same code runs from a terminal.
* :class:`FrameWatchdog`: the engine calls :meth:`FrameWatchdog.beat` once per frame.  The beat
  -- and only the beat, on the engine thread -- sends systemd's ``WATCHDOG=1``, so a hung frame
  loop stops the pings and systemd restarts the service after ``WatchdogSec``.  A monitor thread
  notices the stall sooner (``timeout_s``) and calls ``on_stall``; the default tries a bounded
  final blackout and exits with status 70 so systemd restarts us cleanly.
* :func:`install_service` fills in ``hardware/tapestry.service`` and installs it.
"""

from __future__ import annotations

import getpass
import logging
import os
import pathlib
import socket
import sys
import threading
import time
import traceback
from typing import Callable, Mapping

log = logging.getLogger(__name__)

STALL_EXIT_CODE = 70   # EX_SOFTWARE: systemd's Restart=always brings us back
UNIT_NAME = "tapestry.service"
UNIT_TEMPLATE = pathlib.Path(__file__).resolve().parents[1] / "hardware" / UNIT_NAME


class Notifier:
    """sd_notify over ``$NOTIFY_SOCKET``; every method is a no-op when systemd did not start us.

    ``env`` defaults to ``os.environ``; ``clock`` (monotonic seconds) paces :meth:`watchdog`.
    Sends never block (a full socket buffer drops the message) and never raise.
    """

    def __init__(self, env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        env = os.environ if env is None else env
        self._clock = clock
        self._sock: socket.socket | None = None
        self._addr: str | bytes | None = None
        self._failed = False
        self._last_ping = -float("inf")
        addr = env.get("NOTIFY_SOCKET", "")
        if addr:
            if addr.startswith("@"):
                self._addr = b"\0" + addr[1:].encode()   # Linux abstract namespace
            elif addr.startswith("/"):
                self._addr = addr
            else:
                log.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract socket; not notifying", addr)
        if self._addr is not None:
            try:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            except OSError as exc:
                log.warning("cannot open a socket for systemd notifications: %s", exc)
                self._sock = None
        # WATCHDOG_USEC is systemd's WatchdogSec; ping at half of it (sd_watchdog_enabled(3)).
        # Without WATCHDOG_USEC we still ping once a second (harmless); with it, at half of it;
        # with a WATCHDOG_PID naming another process the watchdog is not ours and we never ping.
        self.watchdog_interval_s: float | None = 1.0
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        try:
            if pid and int(pid) != os.getpid():
                self.watchdog_interval_s = None
            elif usec:
                self.watchdog_interval_s = max(int(usec), 1) / 1e6 / 2.0
        except ValueError:
            log.warning("ignoring malformed WATCHDOG_USEC=%r / WATCHDOG_PID=%r", usec, pid)

    @property
    def enabled(self) -> bool:
        """True when started by systemd with a notify socket."""
        return self._sock is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; returns True if it was sent."""
        if self._sock is None:
            return False
        msg = "\n".join(a.replace("\n", " ") for a in assignments).encode("utf-8", "replace")
        try:
            self._sock.sendto(msg, self._addr)
            self._failed = False
            return True
        except OSError as exc:
            if not self._failed:  # log once per run of failures
                log.warning("systemd notification failed (%s); will keep trying quietly", exc)
            self._failed = True
            return False

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is complete (Type=notify)."""
        return self.notify("READY=1", *((f"STATUS={status}",) if status else ()))

    def status(self, text: str) -> bool:
        """Free-form one-line status shown by ``systemctl status``."""
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        """Tell systemd we are shutting down on purpose."""
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        """Ping systemd's watchdog, at most once per ``WATCHDOG_USEC / 2`` (1 s if unset).

        Call it only from the frame loop: a ping must mean "a frame was just made".
        """
        if self._sock is None or self.watchdog_interval_s is None:
            return False
        now = self._clock()
        if now - self._last_ping < self.watchdog_interval_s:
            return False
        self._last_ping = now
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        """Close the socket; later calls are no-ops."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _bounded(fn: Callable[[], object], timeout_s: float, name: str) -> bool:
    """Run ``fn`` on a daemon thread for at most ``timeout_s``; True if it finished (even by raising)."""
    def attempt() -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - we are leaving anyway
            log.exception("%s failed", name)

    t = threading.Thread(target=attempt, name=name, daemon=True)
    t.start()
    t.join(timeout_s)
    return not t.is_alive()


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # noqa: BLE001
            pass


def default_on_stall(blackout: Callable[[], object] | None = None, blackout_timeout_s: float = 1.0,
                     exit_code: int = STALL_EXIT_CODE,
                     exit: Callable[[int], object] = os._exit) -> Callable[[float], None]:
    """Make the standard stall handler: log, try ``blackout`` for at most ``blackout_timeout_s``, exit.

    The blackout runs on its own daemon thread so a blackout that hangs too (a dead serial port)
    cannot stop the exit.  ``os._exit`` skips interpreter shutdown, which would wait on the very
    thread that is stuck; systemd (``Restart=always``) starts us again.
    """

    def on_stall(stalled_s: float) -> None:
        # even logging is bounded: the stuck thread may hold a handler's lock
        _bounded(lambda: log.critical("frame loop stalled for %.1f s; blacking out and exiting (%d) for a "
                                      "restart", stalled_s, exit_code), 0.5, "stall-log")
        if blackout is not None and not _bounded(blackout, blackout_timeout_s, "stall-blackout"):
            log.error("final blackout did not finish within %.1f s", blackout_timeout_s)
        _bounded(_flush_logs, 0.5, "stall-log-flush")
        exit(exit_code)

    return on_stall


class FrameWatchdog:
    """Notices a stalled frame loop.

    The engine calls :meth:`beat` every frame (cheap: a clock read, and a systemd ping at most
    every ``WATCHDOG_USEC/2`` through ``notifier``).  A daemon monitor thread started by
    :meth:`start` calls ``on_stall(seconds_since_last_beat)`` once when no beat came for
    ``timeout_s``; it re-arms when beats resume.  ``on_stall`` defaults to
    :func:`default_on_stall` (log, blackout, exit 70).  Keep ``timeout_s`` below systemd's
    ``WatchdogSec`` so our own, cleaner exit comes first.
    """

    def __init__(self, timeout_s: float, on_stall: Callable[[float], object] | None = None,
                 notifier: Notifier | None = None, clock: Callable[[], float] = time.monotonic,
                 poll_s: float | None = None) -> None:
        if not timeout_s > 0:
            raise ValueError(f"watchdog timeout must be positive, got {timeout_s!r}")
        self.timeout_s = float(timeout_s)
        self.on_stall = on_stall or default_on_stall()
        self.notifier = notifier
        self._clock = clock
        self._poll_s = poll_s if poll_s is not None else min(0.25, self.timeout_s / 4.0)
        self._last_beat = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread: int | None = None  # who beats: whose stack to show when it stops
        self.stalls = 0

    def beat(self) -> None:
        """Called by the engine thread once per frame: "the loop is alive"."""
        self._last_beat = self._clock()
        self._loop_thread = threading.get_ident()
        if self.notifier is not None:
            self.notifier.watchdog()

    @property
    def since_last_beat(self) -> float:
        """Seconds since the last beat (or since start)."""
        return self._clock() - self._last_beat

    def loop_stack(self) -> str:
        """The frame loop's current Python stack (innermost last), or "" before the first beat."""
        frame = sys._current_frames().get(self._loop_thread) if self._loop_thread is not None else None
        return "".join(traceback.format_stack(frame)).rstrip() if frame is not None else ""

    def start(self) -> "FrameWatchdog":
        """Start the monitor thread (the clock starts now, so start-up time does not count)."""
        if self._thread is None:
            self._last_beat = self._clock()
            self._stop.clear()
            self._thread = threading.Thread(target=self._monitor, name="frame-watchdog", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the monitor (on a clean shutdown, before the loop stops beating)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        self._thread = None

    def _monitor(self) -> None:
        fired = False
        while not self._stop.wait(self._poll_s):
            stalled = self._clock() - self._last_beat
            if stalled < self.timeout_s:
                fired = False
                continue
            if fired:
                continue
            fired = True
            self.stalls += 1
            stack = self.loop_stack()
            if stack:  # where the loop is stuck: the first thing a technician or developer needs
                _bounded(lambda: log.critical("frame loop stuck here:\n%s", stack), 0.5, "stall-stack")
            try:
                self.on_stall(stalled)
            except Exception:  # noqa: BLE001 - the monitor must survive its handler
                log.exception("watchdog stall handler failed")


def render_unit(repo_dir: str, venue: str, user: str, python: str | None = None,
                template: pathlib.Path = UNIT_TEMPLATE) -> str:
    """The unit text: ``hardware/tapestry.service`` with @REPO_DIR@, @VENUE@, @USER@, @PYTHON@ filled in."""
    repo = pathlib.Path(repo_dir).resolve()
    py = python or sys.executable
    for name, value in (("repo_dir", str(repo)), ("venue", venue), ("user", user), ("python", py)):
        if not value or any(c in value for c in "\n\r\"'\\ ") or "%" in value:
            raise ValueError(f"install-service: {name} {value!r} must be non-empty, without spaces, quotes, "
                             f"backslashes, '%' or newlines")
    text = pathlib.Path(template).read_text(encoding="utf-8")
    for key, value in (("@REPO_DIR@", str(repo)), ("@VENUE@", venue), ("@USER@", user), ("@PYTHON@", py)):
        text = text.replace(key, value)
    return text


class ServiceError(ValueError):
    """install-service cannot make a unit that would start; the message says why."""


def install_service(repo_dir: str, venue: str, user: str | None = None, dry_run: bool = False,
                    python: str | None = None, unit_dir: str = "/etc/systemd/system",
                    out: Callable[[str], object] = print) -> str:
    """Write the systemd unit for this checkout and print the commands that enable it.

    ``venue`` is passed to ``run.py --venue``; ``user`` (default: the invoking user, or
    ``$SUDO_USER`` under sudo) runs the show.  With ``dry_run`` nothing is written and the unit is
    printed instead.  Returns the unit text.  Raises ``OSError`` with the path if writing fails
    (run it with sudo).
    """
    user = user or os.environ.get("SUDO_USER") or getpass.getuser()
    # A unit that cannot start is a crash loop in the gallery: refuse it here, with the reason.
    import pwd
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise ServiceError(f"--user {user}: no such user on this machine (create it, or give another)") from None
    from .showfile import load_show
    load_show(venue)  # ConfigError: file: key: problem
    text = render_unit(repo_dir, venue, user, python)
    path = pathlib.Path(unit_dir) / UNIT_NAME
    if dry_run:
        out(f"# {path} (dry run, not written)\n{text}")
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise OSError(f"cannot write {path}: {exc.strerror or exc} (install-service needs root: use sudo)") from exc
        out(f"wrote {path}")
    out("\n".join([
        "then:",
        "  sudo systemctl daemon-reload",
        f"  sudo systemctl enable --now {UNIT_NAME}",
        f"  systemctl status {UNIT_NAME}",
        f"  journalctl -u {UNIT_NAME} -f",
    ]))
    return text
