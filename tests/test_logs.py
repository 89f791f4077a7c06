"""Rotated log files, log-once, and handlers that survive a full or read-only disk."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import threading
from pathlib import Path

import pytest

from installation.logs import (BackgroundHandler, OnceLogger, SafeRotatingFileHandler, SafeStreamHandler,
                              setup_logging)
from tests.support.pipes import StuckPipe


@pytest.fixture
def root_logger():
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield root
    for h in list(root.handlers):
        if h not in saved_handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(saved_level)
    logging.captureWarnings(False)


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """Mount a tiny tmpfs at ``path`` (root only); skip the test if mounting is not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'not root'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def logger_with(name: str, *handlers: logging.Handler):
    """A logger of its own with ``handlers`` (not propagating to the root), detached afterwards."""
    logger = logging.getLogger(name)
    logger.propagate = False
    for h in handlers:
        logger.addHandler(h)
    try:
        yield logger
    finally:
        for h in handlers:
            logger.removeHandler(h)


def test_rotation_keeps_n_files(tmp_path, root_logger):
    setup_logging(str(tmp_path), "DEBUG", console=False, max_bytes=2000, backup_count=2)
    log = logging.getLogger("tapestry.test")
    for i in range(300):
        log.info("line %04d %s", i, "x" * 60)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["tapestry.log", "tapestry.log.1", "tapestry.log.2"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 2000
    assert "line 0299" in (tmp_path / "tapestry.log").read_text()


def test_setup_is_idempotent_and_checks_the_level(tmp_path, root_logger, monkeypatch):
    monkeypatch.setenv("TAPESTRY_LOG_DIR", str(tmp_path / "from-env"))
    setup_logging(None, "info")
    setup_logging(None, logging.WARNING)
    ours = [h for h in root_logger.handlers if getattr(h, "_tapestry", False)]
    assert sorted(type(h).__name__ for h in ours) == ["SafeRotatingFileHandler", "SafeStreamHandler"]
    assert root_logger.level == logging.WARNING
    logging.getLogger("x").warning("hello")
    assert "hello" in (tmp_path / "from-env" / "tapestry.log").read_text()
    with pytest.raises(ValueError, match="unknown log level"):
        setup_logging(None, "LOUD")


def test_log_directory_that_cannot_be_created_falls_back_to_console(tmp_path, root_logger):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    setup_logging(str(blocker / "logs"), console=True)
    assert [type(h).__name__ for h in root_logger.handlers if getattr(h, "_tapestry", False)] == ["SafeStreamHandler"]


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_once_logger_counts_and_summarises():
    logger = logging.getLogger("tapestry.test.once")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    h = ListHandler()
    logger.addHandler(h)
    clock = Clock()
    once = OnceLogger(logger, interval_s=60, clock=clock)
    try:
        assert once.log("artnet 10.0.0.5", "cannot reach %s", "10.0.0.5")
        for _ in range(99):
            clock.t += 0.1
            assert not once.log("artnet 10.0.0.5", "cannot reach %s", "10.0.0.5")
        assert h.lines == ["cannot reach 10.0.0.5"]
        assert once.counts() == {"artnet 10.0.0.5": 100}
        clock.t = 61.0
        assert once.log("artnet 10.0.0.5", "cannot reach %s", "10.0.0.5")
        assert h.lines[-1] == "cannot reach 10.0.0.5 (repeated 100 times in the last 61 s)"
        once.log("camera", "camera gone")                       # another key logs at once
        once.log("camera", "camera gone")
        once.flush()
        assert h.lines[-2:] == ["camera gone", "camera gone (repeated 1 times in the last 0 s)"]
        assert once.resolved("artnet 10.0.0.5", "%s reachable again", "10.0.0.5")
        assert h.lines[-1] == "10.0.0.5 reachable again"
        assert once.log("artnet 10.0.0.5", "cannot reach %s", "10.0.0.5")   # a new failure logs again
        small = OnceLogger(logger, max_keys=3, clock=clock)
        for i in range(10):
            small.log(f"k{i}", "m")
        assert len(small.counts()) == 3
    finally:
        logger.removeHandler(h)


def test_full_disk_never_raises_and_recovers(tmp_path, capfd):
    logging.raiseExceptions = True                               # the strict default, as in production
    clock = Clock()
    with tmpfs(tmp_path / "tiny", "size=64k") as mnt:
        handler = SafeRotatingFileHandler(str(mnt / "tapestry.log"), max_bytes=10_000_000, backup_count=1,
                                          retry_s=5.0, clock=clock)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("tapestry.test.full")
        logger.propagate = False
        logger.addHandler(handler)
        try:
            for i in range(2000):                                # ~400 kB into 64 kB
                logger.warning("frame %d %s", i, "y" * 200)
            assert handler.failures >= 1 and handler.dropped > 0
            err = capfd.readouterr().err
            assert err.count("cannot write") == 1 and "Traceback" not in err
            # space comes back: after the back-off the handler writes again
            for p in mnt.iterdir():
                p.unlink()
            clock.t += 6.0
            logger.warning("after the disk was cleared")
            assert "after the disk was cleared" in (mnt / "tapestry.log").read_text()
            assert "writing" in capfd.readouterr().err
        finally:
            logger.removeHandler(handler)
            handler.close()


def test_read_only_location_never_raises(tmp_path, capfd, root_logger):
    with tmpfs(tmp_path / "ro", "ro,size=64k") as mnt:
        setup_logging(str(mnt), console=False)
        for i in range(100):
            logging.getLogger("tapestry.test.ro").error("cannot be written %d", i)
        fh = [h for h in root_logger.handlers if isinstance(h, SafeRotatingFileHandler)][0]
        assert fh.failures == 1 and fh.dropped == 100                # one try, then back-off
        assert capfd.readouterr().err.count("cannot write") == 1
        assert not os.listdir(mnt)
        setup_logging(None, console=False)                           # closes the handler before unmount


def test_bad_format_and_broken_console_do_not_raise(capfd):
    class Broken(io.StringIO):
        def write(self, s):
            raise BrokenPipeError("pipe gone")

    broken = SafeStreamHandler(Broken())
    sink = io.StringIO()
    fine = SafeStreamHandler(sink)
    with logger_with("tapestry.test.console", broken, fine) as logger:
        for _ in range(50):
            logger.warning("console %s")                         # fine
            logger.warning("bad %d", "not a number")             # format error
        assert broken.failures == 1 and broken.dropped == 100     # one try, then back-off
        assert fine.failures == 50 and sink.getvalue().count("console %s") == 50
        err = capfd.readouterr().err
        assert err.count("cannot format") == 1 and err.count("cannot write") == 1 and "Traceback" not in err


def test_journal_stream_gets_syslog_priorities(tmp_path, monkeypatch):
    from installation.logs import JOURNAL_FORMAT, _JournalFormatter, _under_journal

    with open(tmp_path / "journal", "w") as f:
        st = os.fstat(f.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert _under_journal(f)
        assert not _under_journal(io.StringIO())
    monkeypatch.setenv("JOURNAL_STREAM", "garbage")
    with open(os.devnull) as null:
        assert not _under_journal(null)
    rec = logging.LogRecord("tapestry.x", logging.WARNING, __file__, 1, "careful", (), None)
    assert _JournalFormatter(JOURNAL_FORMAT).format(rec).startswith("<4>tapestry.x [")


def test_background_logging_never_blocks_the_caller_and_the_file_keeps_up(tmp_path):
    # The live show logs from its frame thread: a console that stops reading must not stop it,
    # and the log file must still get every line meanwhile.
    pipe = StuckPipe()
    inner = SafeStreamHandler(pipe.stream)
    inner.setFormatter(logging.Formatter("%(message)s"))
    bg_console = BackgroundHandler(inner, capacity=50)
    log_file = tmp_path / "live.log"
    fh = SafeRotatingFileHandler(str(log_file))
    fh.setFormatter(logging.Formatter("%(message)s"))
    bg_file = BackgroundHandler(fh)
    try:
        with logger_with("tapestry.test.background", bg_console, bg_file) as log:
            done = threading.Event()

            def frame_loop():
                for i in range(500):
                    log.warning("frame %d", i)
                try:
                    raise ValueError("boom")
                except ValueError:
                    log.exception("a failure with its traceback")
                done.set()

            threading.Thread(target=frame_loop, daemon=True).start()
            assert done.wait(5)                     # 501 records logged while the console is stuck
            bg_file.flush()
            text = log_file.read_text()
            assert "frame 0\n" in text and "frame 499\n" in text and "ValueError: boom" in text
            assert bg_console.dropped >= 400        # the console kept only its newest records, bounded

            got = pipe.read_until(b"ValueError: boom")  # the console reads again: the newest records arrive
            assert b"frame 499\n" in got and b"ValueError: boom" in got
    finally:
        bg_file.close()
        bg_console.close()
        pipe.close()


def test_opencv_native_warnings_do_not_reach_stderr():
    """A camera that is unplugged made OpenCV print its own `[ WARN ]` line on every reconnect try,
    past the log-once rule; after setup_logging they stay off stderr (errors still come through)."""
    import subprocess
    import sys
    from pathlib import Path
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from installation.logs import setup_logging; "
            "setup_logging(None); import cv2; print(cv2.VideoCapture(99).isOpened())")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENCV_LOG_LEVEL"}
    r = subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parents[1])],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.stdout.strip() == "False", r.stderr
    assert "WARN" not in r.stderr, r.stderr


NATIVE_PROBE = r'''
import ctypes, logging, os, sys
sys.path.insert(0, sys.argv[1])
from installation.logs import NativeStderr, setup_logging
native = NativeStderr() if sys.argv[2] == "on" else None
if native:
    native.start()
setup_logging(None, "INFO")
asound, handle = ctypes.CDLL("libasound.so.2"), ctypes.c_void_p()
for _ in range(300):   # a microphone reconnect loop against a sound server that is gone
    asound.snd_pcm_open(ctypes.byref(handle), b"pulse", 1, 0)
logging.getLogger("tapestry.test").warning("our own line")
if native:
    native.stop()
print("done")
'''


@pytest.mark.parametrize("mode", ["off", "on"])
def test_alsa_and_pulseaudio_lines_go_through_the_log_once_rule(tmp_path, mode):
    """libasound's pulse plugin prints `ALSA lib pulse.c:...(pulse_connect) ... Connection refused`
    to fd 2 on every open while the sound server is down: a line per microphone reconnect try, all
    day, in the journal.  Captured, the journal gets it once and a repeat count; our own lines pass."""
    import subprocess
    import sys
    from ctypes.util import find_library
    from pathlib import Path
    if find_library("asound") is None:
        pytest.skip("libasound2 not installed")
    env = dict(__import__("os").environ, PULSE_SERVER=f"unix:{tmp_path}/no-such-server")
    r = subprocess.run([sys.executable, "-c", NATIVE_PROBE, str(Path(__file__).resolve().parents[1]), mode],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.stdout.strip() == "done", r.stderr
    alsa = [line for line in r.stderr.splitlines() if "ALSA lib" in line]
    if not alsa:
        pytest.skip("this libasound has no pulse plugin that complains (libasound2-plugins)")
    if mode == "off":           # what the journal got before: one line per try
        assert len(alsa) >= 300
        return
    assert len(alsa) == 2, r.stderr                       # the first, and one summary at stop
    assert "tapestry.native" in alsa[0] and "repeated 299 times" in alsa[1], alsa
    assert "our own line" in r.stderr


STALLED_PROBE = r'''
import logging, os, sys, threading
sys.path.insert(0, sys.argv[1])
from installation.logs import NativeStderr
stall = threading.Event()

class Stuck(logging.Handler):
    def emit(self, record):
        stall.wait()                       # a console that never drains

log = logging.getLogger("stalled")
log.addHandler(Stuck())
log.propagate = False
native = NativeStderr(logger=log)
native.start()
line = b"ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM x\n"
for _ in range(20000):                     # ~1.2 MB: far more than a pipe holds
    try:
        os.write(2, line)
    except BlockingIOError:
        pass
print("writer never blocked", flush=True)
stall.set()
native.stop()
'''


def test_a_stalled_log_never_blocks_a_native_library_writing_to_stderr():
    """If the pump cannot keep up (a stuck console), PortAudio printing to fd 2 must lose lines, not hang the
    audio thread on a full pipe."""
    import subprocess
    import sys
    from pathlib import Path
    r = subprocess.run([sys.executable, "-c", STALLED_PROBE, str(Path(__file__).resolve().parents[1])],
                       capture_output=True, text=True, timeout=60)
    assert "writer never blocked" in r.stdout, r.stderr[-2000:]
