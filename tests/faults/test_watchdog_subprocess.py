"""The frame watchdog end to end: the real piece (``run.py --headless --venue ...``) seen from outside
as a gallery technician and systemd would see it.

Two real situations, nothing injected:

* A console that stops reading (a terminal paused with Ctrl-S, a log pipe whose reader hung): here
  stdout is a FIFO that the test stops reading and fills.  The status line is written on its own
  thread, so the show must go on: frames, LEDs, /health and systemd's pings all continue.
* A frame loop that really stops: an artist loads a preset (OSC, read on the frame thread) whose
  file is a FIFO with no writer -- what a preset folder on a hung network share does to ``open()``.
  Then /health says ``stalled``; the process exits with status 70 (EX_SOFTWARE, for
  systemd's ``Restart=always``); the log has one clear CRITICAL line and the stuck stack; every LED
  receiver's last frame is all zero and sACN says goodbye; the ``WATCHDOG=1`` pings, which come only
  from the frame loop, stopped when it stopped.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import threading
import time
from pathlib import Path

from pythonosc.udp_client import SimpleUDPClient

from faults_support import Piece

ROOT = Path(__file__).resolve().parents[2]
START_S = 40.0   # generous: GL start-up on a loaded CI machine
WATCHDOG_S = 4.0  # run.py --watchdog: above /health's 2 s "stalled", so both can be seen
EXIT_CODE = 70


class Console:
    """A FIFO standing in for the piece's terminal: a thread reads it until :meth:`pause`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a reader exists before the piece opens it
        self.text = bytearray()
        self._reading = threading.Lock()  # held while reading; pause() takes it away from the thread
        self._paused = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._reading:
                ready = [] if self._paused else select.select([self._fd], [], [], 0.05)[0]
                data = b""
                if ready:
                    try:
                        data = os.read(self._fd, 65536)
                    except BlockingIOError:
                        pass
                self.text += data
            if not data:
                time.sleep(0.02)  # paused, nothing yet, or no writer (EOF)

    def wait_for(self, needle: bytes, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.text:
                return True
            time.sleep(0.05)
        return needle in self.text

    def pause_and_fill(self) -> int:
        """Stop reading and fill the FIFO to the brim; the writer's next write blocks.  Returns bytes added."""
        with self._reading:
            self._paused = True
        fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)  # our own open file: the piece's stays blocking
        added = 0
        try:
            for chunk in (4096, 1):  # whole pages, then single bytes into the last one
                while True:
                    try:
                        added += os.write(fd, b"#" * chunk)
                    except BlockingIOError:
                        break
        finally:
            os.close(fd)
        return added

    def resume(self) -> None:
        with self._reading:
            self._paused = False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        os.close(self._fd)


class NotifySocket:
    """``$NOTIFY_SOCKET`` as systemd offers it: a unix datagram socket; keeps (arrival, message)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.notes: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.sock.recv(4096).decode(errors="replace")
            except socket.timeout:
                continue
            except OSError:
                return
            self.notes.append((time.monotonic(), msg))

    def times(self, key: str) -> list[float]:
        return [t for t, m in list(self.notes) if key in m.split("\n")]

    def wait_for(self, key: str, count: int, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.times(key)) < count:
            time.sleep(0.05)
        return len(self.times(key)) >= count

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()


def test_a_console_that_stops_reading_does_not_stop_the_show(tmp_path, receivers, venue):
    notify = NotifySocket(tmp_path / "notify.sock")
    console = Console(tmp_path / "console")
    # sh only redirects stdout to the FIFO (stderr, the log, stays in the piece's log file) and execs
    # python: the pid, the signals and the exit status are the piece's own.
    piece = Piece(venue, tmp_path / "piece.log", prefix=("/bin/sh", "-c", 'exec "$@" >"$0"', str(console.path)),
                  env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"},  # ping every 0.5 s
                  extra=("--watchdog", str(WATCHDOG_S), "--status-line"))  # a FIFO is not a terminal
    try:
        assert receivers.all_lit(10, START_S), piece.log()
        assert console.wait_for(b" fps | frame ", 5), bytes(console.text[-500:])
        assert console.pause_and_fill() > 0
        t_paused = time.monotonic()
        # Well past the watchdog's timeout: still running, still healthy, LEDs still fed, systemd still pinged.
        time.sleep(WATCHDOG_S + 2.0)
        assert piece.proc.poll() is None, (piece.proc.returncode, piece.log())
        assert piece.wait_health(lambda d: d.get("status") == "ok", 5), (piece.last_health, piece.log())
        assert receivers.all_lit(10, 5, after=time.monotonic()), "LED frames stopped while the console was stuck"
        assert [t for t in notify.times("WATCHDOG=1") if t > t_paused + WATCHDOG_S], notify.notes[-5:]
        assert "frame loop stalled" not in piece.log()
        # The console reads again: status lines come back.
        console.resume()
        end = time.monotonic() + 10
        while console.text.count(b" fps | frame ") < 2 and time.monotonic() < end:
            time.sleep(0.05)
        assert console.text.count(b" fps | frame ") >= 2, bytes(console.text[-300:])
    finally:
        console.resume()
        piece.stop()
        console.close()
        notify.close()


def test_a_frame_loop_stuck_on_a_hung_preset_file_is_blacked_out_and_exits_70(tmp_path, receivers, venue):
    notify = NotifySocket(tmp_path / "notify.sock")
    presets = tmp_path / "presets"
    shutil.copytree(ROOT / "presets", presets)
    hung = presets / "share.toml"
    os.mkfifo(hung)  # open() for reading waits for a writer that never comes, like a dead file server
    piece = Piece(venue, tmp_path / "piece.log", env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"},
                  extra=("--watchdog", str(WATCHDOG_S), "--presets", str(presets)))
    try:
        # Running normally: lit, healthy, systemd pinged from the loop.
        assert receivers.all_lit(10, START_S), piece.log()
        assert piece.wait_health(lambda d: d.get("status") == "ok", 10), (piece.last_health, piece.log())
        assert notify.wait_for("READY=1", 1, 5) and notify.wait_for("WATCHDOG=1", 2, 5), notify.notes

        # The artist's tablet loads it: the frame thread opens the file and never returns.
        SimpleUDPClient("127.0.0.1", piece.osc_port).send_message("/tapestry/preset/load", "share")
        t_stuck = time.monotonic()

        # What `run.py status` shows meanwhile: the health server still answers, and says stalled.
        doc = piece.wait_health(lambda d: d.get("status") == "stalled", WATCHDOG_S + 10)
        assert doc, (piece.last_health, piece.log())

        # The watchdog ends it with status 70 for systemd to restart it (bounded: stall + blackout + exit).
        rc = piece.wait(WATCHDOG_S + 20)
        t_exit = time.monotonic()
        log = piece.log()
        assert rc == EXIT_CODE, (rc, log)
        assert log.count("frame loop stalled for") == 1 and "CRITICAL" in log and f"exiting ({EXIT_CODE})" in log, log
        assert "frame loop stuck here" in log and "presets.py" in log, log  # where: the preset reload
        assert "final blackout did not finish" not in log, log
        assert t_exit - t_stuck >= WATCHDOG_S - 1.0  # not before the watchdog's timeout

        # The LEDs went dark: on every receiver, the last frame to every universe / offset is all zero
        # (and full length); sACN nodes are told the stream ended rather than holding the last look.
        time.sleep(0.3)  # the last datagrams drain into the receivers
        for name, rx in receivers.rx.items():
            last = {p.address: p for p in rx.snapshot()}  # in arrival order: the newest per address wins
            assert last and all(not p.nonzero and len(p.data) >= 90 for p in last.values()), (name, last)
        rim = receivers["rim"].snapshot()
        assert all(p.terminated and not p.nonzero for p in rim[-3:]), [(hex(p.options), p.nonzero) for p in rim[-4:]]

        # systemd's own watchdog would have fired too: the pings came from the loop and stopped with it.
        pings = notify.times("WATCHDOG=1")
        assert pings and t_exit - pings[-1] >= WATCHDOG_S - 1.0, (t_exit - pings[-1], notify.notes[-5:])
        assert not notify.times("STOPPING=1"), "a stall is a failure for systemd, not an orderly stop"
    finally:
        if piece.proc.poll() is None and hung.is_fifo():  # release a reader still blocked on it
            try:
                os.close(os.open(hung, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        piece.stop()
        notify.close()
