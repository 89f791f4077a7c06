"""Logging for months of unattended running: rotated files, log-once, and handlers that never raise.

* :func:`setup_logging` configures the root logger once at start-up: a console handler (stderr;
  under systemd the journal, with syslog priority prefixes) and, when a log directory is given
  (or ``$TAPESTRY_LOG_DIR`` is set, as the systemd unit does), a size-rotated file.
* Handlers here never raise into the caller and never spray tracebacks: a full or read-only disk
  makes the file handler drop records, say so once on stderr, and retry after ``retry_s``.
* :class:`OnceLogger` logs a message the first time per key (an unreachable device), then
  counts repeats and logs a summary at most every ``interval_s``.
* :class:`NativeStderr` sends what PortAudio and ALSA print on fd 2 through that same rule.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from logging.handlers import RotatingFileHandler
from typing import Callable

LOG_FILE = "tapestry.log"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s"
JOURNAL_FORMAT = "<%(priority)d>%(name)s [%(threadName)s] %(message)s"
_SYSLOG_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def _say(text: str) -> None:
    """Last-resort notice on stderr; never raises."""
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass


class _NeverRaise:
    """Mixin: count failures instead of raising or printing a traceback per record.

    ``OSError`` (disk full, read-only, pipe gone) drops records for ``retry_s`` and reopens the
    stream afterwards; other errors (e.g. a bad format string) are reported once per call site.
    """

    retry_s = 30.0
    _clock: Callable[[], float] = staticmethod(time.monotonic)

    def _init_safety(self, retry_s: float, clock: Callable[[], float] | None) -> None:
        self.retry_s = retry_s
        if clock is not None:
            self._clock = clock
        self.failures = 0
        self.dropped = 0
        self._retry_at = -float("inf")
        self._in_trouble = False
        self._bad_sites: set[tuple[str, int]] = set()

    def _backing_off(self) -> bool:
        if self._clock() < self._retry_at:
            self.dropped += 1
            return True
        return False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's naming
        exc = sys.exc_info()[1]
        self.failures += 1
        self.dropped += 1
        if isinstance(exc, OSError):
            self._retry_at = self._clock() + self.retry_s
            self._drop_stream()
            if not self._in_trouble:
                self._in_trouble = True
                _say(f"tapestry logging: cannot write {self._target()} ({exc}); dropping log records, "
                     f"retrying every {self.retry_s:g} s")
        else:
            site = (record.pathname, record.lineno)
            if site not in self._bad_sites and len(self._bad_sites) < 100:
                self._bad_sites.add(site)
                _say(f"tapestry logging: cannot format a record from {site[0]}:{site[1]} ({exc!r})")

    def _recovered(self) -> None:
        if self._in_trouble:
            self._in_trouble = False
            _say(f"tapestry logging: writing {self._target()} again ({self.dropped} records dropped so far)")

    def _drop_stream(self) -> None:
        pass

    def _target(self) -> str:
        return "log"


class SafeRotatingFileHandler(_NeverRaise, RotatingFileHandler):
    """A size-based :class:`RotatingFileHandler` that never raises (see module docstring)."""

    def __init__(self, filename: str, max_bytes: int = 5_000_000, backup_count: int = 5,
                 retry_s: float = 30.0, clock: Callable[[], float] | None = None) -> None:
        RotatingFileHandler.__init__(self, filename, maxBytes=max_bytes, backupCount=backup_count,
                                     encoding="utf-8", delay=True)
        self._init_safety(retry_s, clock)

    def emit(self, record: logging.LogRecord) -> None:
        if self._backing_off():
            return
        failures = self.failures
        RotatingFileHandler.emit(self, record)     # writes and flushes; errors arrive in handleError
        if self.failures == failures:
            self._recovered()

    def _drop_stream(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - flushing a full disk fails again; it is closed anyway
                pass

    def _target(self) -> str:
        return self.baseFilename


class SafeStreamHandler(_NeverRaise, logging.StreamHandler):
    """A console handler that never raises (a closed or broken stderr just drops records)."""

    def __init__(self, stream=None, retry_s: float = 30.0, clock: Callable[[], float] | None = None) -> None:
        logging.StreamHandler.__init__(self, stream)
        self._init_safety(retry_s, clock)

    def emit(self, record: logging.LogRecord) -> None:
        if not self._backing_off():
            logging.StreamHandler.emit(self, record)

    def _target(self) -> str:
        return getattr(self.stream, "name", "console")


class _JournalFormatter(logging.Formatter):
    """Prefix ``<priority>`` so journald records the level (SyslogLevelPrefix=yes is the default)."""

    def format(self, record: logging.LogRecord) -> str:
        record.priority = _SYSLOG_PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return super().format(record)


class BackgroundHandler(logging.Handler):
    """Runs another handler on its own thread, so the thread that logs never waits for a write.

    A console that stops reading (a terminal paused with Ctrl-S, a stuck pipe) or a disk that hangs
    then blocks only this handler's thread: the frame loop goes on.  The message is merged on the
    caller's thread (the record no longer refers to its arguments); at most ``capacity`` records
    wait, and when more come the oldest are dropped and counted in :attr:`dropped`.
    """

    def __init__(self, inner: logging.Handler, capacity: int = 2000) -> None:
        super().__init__(inner.level)
        self.inner = inner
        self.dropped = 0
        self._records: deque[logging.LogRecord] = deque()
        self._capacity = int(capacity)
        self._wake = threading.Condition()
        self._busy = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"log-{type(inner).__name__}", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.msg = record.getMessage()
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        except Exception:  # noqa: BLE001 - the inner handler reports a bad format once
            pass
        with self._wake:
            if len(self._records) >= self._capacity:
                self._records.popleft()
                self.dropped += 1
            self._records.append(record)
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._records and not self._closing:
                    self._wake.wait()
                if not self._records:
                    return
                record = self._records.popleft()
                self._busy = True
            try:
                self.inner.handle(record)
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def flush(self, timeout_s: float = 1.0) -> None:
        """Wait (at most ``timeout_s``) until what is queued is written, then flush the inner handler."""
        end = time.monotonic() + timeout_s
        with self._wake:
            while (self._records or self._busy) and time.monotonic() < end:
                self._wake.wait(max(0.0, end - time.monotonic()))
        if not self._records and not self._busy:
            self.inner.flush()

    def close(self) -> None:
        """Write what is queued (bounded), then close the inner handler."""
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._thread.join(1.0)
        if not self._thread.is_alive():
            self.inner.close()
        super().close()


def _under_journal(stream) -> bool:
    """True when ``stream`` is the journald stream systemd gave us ($JOURNAL_STREAM = dev:inode)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (dev, ino)
    except (ValueError, OSError, AttributeError):
        return False


def quiet_native_warnings() -> None:
    """Keep OpenCV's own C++ warnings (``[ WARN ] can't open camera by index``, one per reconnect try,
    ~21,000 a day with a camera unplugged) off stderr: Tapestry's camera code reports the same state
    once, through the log-once rule.  Errors still come through.  ``OPENCV_LOG_LEVEL`` set by the
    user wins."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # read when cv2 is first imported
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and os.environ["OPENCV_LOG_LEVEL"].upper() == "ERROR":
        try:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        except AttributeError:  # an OpenCV build without the logging module
            pass


class NativeStderr:
    """Route what native libraries write to file descriptor 2 through the log-once rule.

    PortAudio and ALSA print straight to fd 2 (``ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown
    PCM ...``), once per device probe: with a microphone unplugged that is a line per reconnect try,
    all day, past every Python logging rule.  :meth:`start` points fd 2 at a pipe read by a thread
    that hands each line to an :class:`OnceLogger` (logger ``tapestry.native``), keyed on the line with
    its numbers masked, and gives Python a ``sys.stderr`` on a copy of the real fd 2, so our own log
    lines, tracebacks and ``faulthandler`` still reach the terminal or the journal directly.
    :meth:`stop` restores fd 2 and drains the pipe.  One per process; it changes process-wide state,
    so the live show owns it for its lifetime.
    """

    MAX_LINE = 2000

    def __init__(self, interval_s: float = 600.0, logger: logging.Logger | None = None) -> None:
        self.once = OnceLogger(logger or logging.getLogger("tapestry.native"), interval_s=interval_s)
        self.lines = 0
        self._saved_fd: int | None = None
        self._read_fd: int | None = None
        self._old_stderr = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    @staticmethod
    def key(line: str) -> str:
        """The repeat key of a native line: digits masked, so ``card 0``/``card 1`` retries count as one."""
        return "".join("#" if c.isdigit() else c for c in line)[:200]

    def start(self) -> bool:
        """Capture fd 2; returns False (and changes nothing) where that is not possible."""
        if self._saved_fd is not None:
            return True
        try:
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
        try:
            saved = os.dup(2)
            r, w = os.pipe()
        except OSError:
            return False
        stream = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
        # A native library must never block on a full pipe (a reader that stalls would freeze the
        # audio thread mid-print): with O_NONBLOCK its write fails with EAGAIN and the line is lost.
        os.set_blocking(w, False)
        os.dup2(w, 2)
        os.close(w)
        self._saved_fd, self._read_fd = saved, r
        self._old_stderr, sys.stderr = sys.stderr, stream
        try:
            import faulthandler
            if faulthandler.is_enabled():
                faulthandler.enable(file=stream)
        except (ImportError, ValueError, OSError):
            pass
        self._thread = threading.Thread(target=self._pump, args=(r,), name="native-stderr", daemon=True)
        self._thread.start()
        return True

    def _pump(self, fd: int) -> None:
        try:
            self._pump_lines(fd)
        finally:
            if not self._stopping and self._saved_fd is not None:   # ended on its own: fd 2 back, not a full pipe
                try:
                    os.dup2(self._saved_fd, 2)
                except OSError:
                    pass

    def _pump_lines(self, fd: int) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if len(pending) > self.MAX_LINE:
                lines.append(pending)
                pending = b""
            for raw in lines:
                self._line(raw)
        if pending:
            self._line(pending)

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return
        self.lines += 1
        try:
            self.once.log(self.key(text), "native: %s", text)
        except Exception:  # noqa: BLE001  (a logging failure must not end the pump)
            pass

    def stop(self, timeout_s: float = 1.0) -> None:
        """Give fd 2 back to the real stderr, log what is still queued, and close the pipe."""
        if self._saved_fd is None:
            return
        self._stopping = True
        try:
            os.dup2(self._saved_fd, 2)      # closes our end of the pipe on fd 2: the pump sees EOF
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.once.flush()
        for fd in (self._saved_fd, self._read_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._old_stderr is not None:
            try:
                sys.stderr.flush()
            except Exception:  # noqa: BLE001
                pass
            sys.stderr = self._old_stderr
        self._saved_fd = self._read_fd = None


def setup_logging(log_dir: str | None = None, level: int | str = "INFO", console: bool = True,
                  max_bytes: int = 5_000_000, backup_count: int = 5, filename: str = LOG_FILE,
                  retry_s: float = 30.0, background: bool = False) -> logging.Logger:
    """Configure the root logger for a run and return it.

    ``log_dir``: directory for the rotated ``filename`` (``max_bytes`` per file, ``backup_count``
    old files kept); ``None`` uses ``$TAPESTRY_LOG_DIR`` when set, else no file.  A directory
    that cannot be created is reported and the run continues with the console only.
    Calling it again replaces the handlers it installed before.  ``background``: each handler
    writes on its own thread (:class:`BackgroundHandler`), as the live show needs.
    """
    if isinstance(level, str):
        resolved = logging.getLevelName(level.upper())
        if not isinstance(resolved, int):
            raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        level = resolved
    quiet_native_warnings()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_tapestry", False):
            root.removeHandler(h)
            try:
                h.close()
            except Exception:  # noqa: BLE001
                pass
    root.setLevel(level)
    if console:
        ch = SafeStreamHandler(sys.stderr, retry_s=retry_s)
        ch.setFormatter(_JournalFormatter(JOURNAL_FORMAT) if _under_journal(sys.stderr) else logging.Formatter(FORMAT))
        ch = BackgroundHandler(ch) if background else ch
        ch._tapestry = True
        root.addHandler(ch)
    log_dir = log_dir if log_dir is not None else (os.environ.get("TAPESTRY_LOG_DIR") or None)
    if log_dir:
        path = os.path.join(log_dir, filename)
        try:
            os.makedirs(log_dir, exist_ok=True)
        except OSError as exc:
            root.warning("cannot create log directory %s (%s); logging to the console only", log_dir, exc)
        else:
            fh = SafeRotatingFileHandler(path, max_bytes=max_bytes, backup_count=backup_count, retry_s=retry_s)
            fh.setFormatter(logging.Formatter(FORMAT))
            fh = BackgroundHandler(fh) if background else fh
            fh._tapestry = True
            root.addHandler(fh)
    logging.captureWarnings(True)
    return root


class OnceLogger:
    """Log a problem once per key, then count repeats and summarise them periodically.

    ``log("artnet 10.0.0.5", "cannot reach %s: %s", host, err)`` logs the first time; later calls
    with the same key only count, and the first call after ``interval_s`` logs
    ``"... (repeated N times in the last 60 s)"``.  :meth:`resolved` logs a recovery and forgets the
    key, so a new failure is logged again.  Memory is bounded by ``max_keys``.  Meant to be owned
    by one thread (one per output / sensor); no timers or threads of its own.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0, max_keys: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._clock = clock
        # key -> [first message, repeats since the last line, time of the last line, total]
        self._seen: dict[str, list] = {}

    def log(self, key: str, msg: str, *args, level: int = logging.WARNING) -> bool:
        """Log ``msg % args`` if ``key`` is new or a summary is due; returns True if a line was logged."""
        now = self._clock()
        entry = self._seen.get(key)
        if entry is None:
            if len(self._seen) >= self.max_keys:
                self._seen.pop(next(iter(self._seen)))
            self._seen[key] = [msg % args if args else msg, 0, now, 1]
            self.logger.log(level, msg, *args)
            return True
        entry[1] += 1
        entry[3] += 1
        if now - entry[2] >= self.interval_s:
            self.logger.log(level, "%s (repeated %d times in the last %.0f s)",
                            msg % args if args else msg, entry[1], now - entry[2])
            entry[1], entry[2] = 0, now
            return True
        return False

    def resolved(self, key: str, msg: str | None = None, *args, level: int = logging.INFO) -> bool:
        """The problem under ``key`` is over: log ``msg`` (if given) and forget the key."""
        entry = self._seen.pop(key, None)
        if entry is None:
            return False
        if msg:
            self.logger.log(level, msg, *args)
        return True

    def flush(self) -> None:
        """Log pending repeat counts now (e.g. at shutdown)."""
        now = self._clock()
        for entry in self._seen.values():
            if entry[1]:
                self.logger.warning("%s (repeated %d times in the last %.0f s)", entry[0], entry[1], now - entry[2])
                entry[1], entry[2] = 0, now

    def counts(self) -> dict[str, int]:
        """Total occurrences per active key (for the health report)."""
        return {k: v[3] for k, v in self._seen.items()}
