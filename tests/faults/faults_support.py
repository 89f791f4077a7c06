"""Helpers for the fault-injection suite: decoding UDP receivers, a small venue, the piece as a process.

Everything here talks to loopback (or to a network namespace the test made) and is bounded in
time: every wait has a deadline, every receiver and process is closed by its owner.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "NOTIFY_SOCKET",
                                                         "WATCHDOG_USEC", "WATCHDOG_PID")}
ENV["PYTHONUNBUFFERED"] = "1"

ARTNET_ID = b"Art-Net\x00"
ACN_ID = b"ASC-E1.17\x00\x00\x00"
OPT_STREAM_TERMINATED = 0x40


# -- packets -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Packet:
    """One decoded datagram: protocol, universe (Art-Net/sACN) or byte offset (DDP), sequence, data."""

    t: float
    proto: str
    address: int
    seq: int
    options: int
    data: bytes

    @property
    def nonzero(self) -> bool:
        return any(self.data)

    @property
    def terminated(self) -> bool:
        return self.proto == "sacn" and bool(self.options & OPT_STREAM_TERMINATED)


def decode(raw: bytes, t: float) -> Packet | None:
    """Art-Net ArtDmx, E1.31 data or DDP -> Packet; anything else (ArtSync, E1.31 sync, junk) -> None."""
    if raw[:8] == ARTNET_ID and len(raw) >= 18:
        if int.from_bytes(raw[8:10], "little") != 0x5000:
            return None
        n = int.from_bytes(raw[16:18], "big")
        return Packet(t, "artnet", raw[14] | (raw[15] << 8), raw[12], 0, bytes(raw[18:18 + n]))
    if raw[4:16] == ACN_ID and len(raw) >= 126:
        if int.from_bytes(raw[18:22], "big") != 0x04:
            return None
        slots = int.from_bytes(raw[123:125], "big") - 1
        return Packet(t, "sacn", int.from_bytes(raw[113:115], "big"), raw[111], raw[112],
                      bytes(raw[126:126 + slots]))
    if len(raw) >= 10 and (raw[0] & 0xC0) == 0x40:
        n = int.from_bytes(raw[8:10], "big")
        return Packet(t, "ddp", int.from_bytes(raw[4:8], "big"), raw[1] & 0x0F, raw[0], bytes(raw[10:10 + n]))
    return None


class Receiver:
    """A UDP socket on (host, port) drained by a thread; keeps the last `keep` decoded packets.

    ``close()`` closes the socket (the sender then gets ICMP port-unreachable); ``reopen()`` binds
    the same port again.  ``sock_factory`` makes the socket (a namespace test binds inside one).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, keep: int = 50000,
                 sock_factory: Callable[[], socket.socket] | None = None) -> None:
        self.host = host
        self.port = port
        self._factory = sock_factory or (lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        self.packets: deque[Packet] = deque(maxlen=keep)
        self.total = 0
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reopen()

    def reopen(self) -> None:
        """Bind (again) and start draining."""
        self.close()
        s = self._factory()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((self.host, self.port))
        s.settimeout(0.05)
        self.port = s.getsockname()[1]
        self._sock = s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(s, self._stop), daemon=True,
                                        name=f"rx-{self.port}")
        self._thread.start()

    def _run(self, sock: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                raw = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            p = decode(raw, time.monotonic())
            if p is not None:
                with self._lock:
                    self.packets.append(p)
                    self.total += 1

    def close(self) -> None:
        """Stop draining and close the socket (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def snapshot(self) -> list[Packet]:
        with self._lock:
            return list(self.packets)

    def since(self, t: float) -> list[Packet]:
        """Packets that arrived at or after monotonic time ``t``."""
        return [p for p in self.snapshot() if p.t >= t]

    def wait_for(self, pred: Callable[[list[Packet]], bool], timeout: float) -> bool:
        """Poll ``pred(packets)`` until true or ``timeout`` seconds passed."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred(self.snapshot()):
                return True
            time.sleep(0.05)
        return pred(self.snapshot())

    def lit_in_window(self, seconds: float) -> int:
        """Wait ``seconds``, return how many packets with some non-zero data arrived meanwhile."""
        t0 = time.monotonic()
        time.sleep(seconds)
        return sum(1 for p in self.since(t0) if p.nonzero)


def wait_lit(rx: Receiver, count: int, timeout: float, after: float | None = None) -> bool:
    """True once ``count`` packets with non-zero data arrived (after monotonic ``after``)."""
    after = time.monotonic() if after is None else after
    return rx.wait_for(lambda ps: sum(1 for p in ps if p.t >= after and p.nonzero) >= count, timeout)


# -- free ports -----------------------------------------------------------------------------------

def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A loopback port of ``kind`` that was free a moment ago."""
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -- the venue -------------------------------------------------------------------------------------

LAYOUT = """name = "fault strips"
[canvas]
units = "canvas"
width = 1.0
height = 0.5625
{fixtures}
"""

STRIP = """
[[fixtures]]
name = "{name}"
type = "strip"
start = [{x}, 0.1]
end = [{x}, 0.9]
count = 30
[fixtures.patch]
controller = "{controller}"
{address}
"""


def write_venue(folder: Path, host: str, ports: dict[str, int], fps: float = 60.0,
                end_state: str = "blackout") -> Path:
    """A venue of four 30-LED strips: two on Art-Net 'wall' (universes 0, 1), one on sACN 'rim'
    (universe 1), one on DDP 'net' (offset 0); every output at ``host`` and the port in ``ports``."""
    folder.mkdir(parents=True, exist_ok=True)
    fixtures = "".join(STRIP.format(name=n, x=x, controller=c, address=a) for n, x, c, a in (
        ("a1", 0.2, "wall", "universe = 0"), ("a2", 0.4, "wall", "universe = 1"),
        ("s1", 0.6, "rim", "universe = 1"), ("d1", 0.8, "net", "offset = 0")))
    (folder / "layout.toml").write_text(LAYOUT.format(fixtures=fixtures))
    outputs = "".join(
        f'\n[[outputs]]\nname = "{name}"\nprotocol = "{proto}"\nhost = "{host}"\nport = {ports[name]}\nfps = {fps}\n'
        for name, proto in (("wall", "artnet"), ("rim", "sacn"), ("net", "ddp")))
    venue = folder / "venue.toml"
    venue.write_text(f'name = "faults"\nlayout = "layout.toml"\n{outputs}\n[end_state]\nmode = "{end_state}"\n')
    return venue


class Receivers:
    """One receiver per output of :func:`write_venue`: ``wall`` (Art-Net), ``rim`` (sACN), ``net`` (DDP)."""

    def __init__(self, host: str = "127.0.0.1", sock_factory=None) -> None:
        self.host = host
        self.rx: dict[str, Receiver] = {}
        try:
            for name in ("wall", "rim", "net"):
                self.rx[name] = Receiver(host, 0, sock_factory=sock_factory)
        except BaseException:
            self.close()
            raise

    def __getitem__(self, name: str) -> Receiver:
        return self.rx[name]

    @property
    def ports(self) -> dict[str, int]:
        return {k: r.port for k, r in self.rx.items()}

    def all_lit(self, count: int, timeout: float, after: float | None = None) -> bool:
        """Every receiver got ``count`` non-zero packets (after ``after``) within ``timeout`` overall."""
        end = time.monotonic() + timeout
        return all(wait_lit(r, count, max(0.0, end - time.monotonic()), after) for r in self.rx.values())

    def close(self) -> None:
        for r in self.rx.values():
            r.close()


# -- network namespaces ----------------------------------------------------------------------------

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(ns: str, fn: Callable, timeout: float = 5.0):
    """Run ``fn()`` on a fresh thread that joined network namespace ``ns``; return its result.

    Sockets made there stay in that namespace afterwards (the namespace is per thread in Linux).
    """
    box: dict = {}

    def run():
        try:
            fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, os.strerror(e))
            finally:
                os.close(fd)
            box["v"] = fn()
        except BaseException as exc:  # handed to the caller
            box["e"] = exc

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(timeout)
    if "e" in box:
        raise box["e"]
    if "v" not in box:
        raise TimeoutError(f"in_netns({ns}) did not finish within {timeout} s")
    return box["v"]


# -- the piece as a process ------------------------------------------------------------------------

class Piece:
    """``python run.py --headless --venue V ...`` as a subprocess (output to a log file), with its /health.

    ``prefix``: a command to run it under (``ip netns exec NS``); ``netns``: fetch /health inside it.
    """

    def __init__(self, venue: Path, log_path: Path, prefix: tuple[str, ...] = (), netns: str | None = None,
                 extra: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.venue = venue
        self.env = {**ENV, **(env or {})}
        self.log_path = log_path
        self.prefix = prefix
        self.netns = netns
        self.extra = extra
        self.osc_port = free_port(socket.SOCK_DGRAM)
        self.health_port = free_port(socket.SOCK_STREAM)
        self.proc: subprocess.Popen | None = None
        self.last_health: dict | None = None
        self.start()

    def start(self) -> None:
        """Start (or restart, as systemd's Restart=always would) with the same command line."""
        if getattr(self, "_log", None) is not None:
            self._log.close()
        cmd = [*self.prefix, sys.executable, str(ROOT / "run.py"), "--headless", "--venue", str(self.venue),
               "--particles", "8192", "--size", "160x90", "--osc-port", str(self.osc_port),
               "--health-port", str(self.health_port), "--watchdog", "20", *self.extra]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env, cwd=ROOT)

    def log(self) -> str:
        """The combined stdout/stderr so far (for assertion messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def health(self, timeout: float = 1.0) -> dict | None:
        """The /health document, or None if nothing answers."""
        url = f"http://127.0.0.1:{self.health_port}/health"

        def get():
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r:
                    return json.loads(r.read().decode())
            except (OSError, ValueError):
                return None
        return in_netns(self.netns, get, timeout + 2) if self.netns else get()

    def wait_health(self, pred: Callable[[dict], bool], timeout: float) -> dict | None:
        """Poll /health until ``pred(doc)``; returns that doc, or None (last seen in ``self.last_health``)."""
        end = time.monotonic() + timeout
        self.last_health = None
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return None
            doc = self.health()
            if doc is not None:
                self.last_health = doc
                if pred(doc):
                    return doc
            time.sleep(0.2)
        return None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """Exit status, or None if still running after ``timeout``."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Always safe: SIGTERM, then SIGKILL after a few seconds; closes the log."""
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(8)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None


def output_state(doc: dict, name: str) -> str | None:
    """The state of output ``name`` in a /health document."""
    return ((doc or {}).get("outputs") or {}).get(name, {}).get("state")


# -- media standing in for sensors -----------------------------------------------------------------

def write_wav(path: Path, seconds: float = 1.0, sr: int = 48000) -> Path:
    """Mono 16-bit noise at about -20 dBFS (a room with some sound), written in place."""
    import wave

    import numpy as np
    x = (np.random.default_rng(3).standard_normal(int(sr * seconds)) * 0.1 * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(x.tobytes())
    return path


def write_video(path: Path, frames: int = 60) -> Path:
    """An MJPG .avi, 160x120 at 30 fps: a bright block walking across a dark room."""
    import cv2
    import numpy as np
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    try:
        for i in range(frames):
            f = np.zeros((120, 160, 3), np.uint8)
            x = (i * 4) % 120
            f[30:90, x:x + 25] = 220
            w.write(f)
    finally:
        w.release()
    return path


def appear(src: Path, dst: Path) -> None:
    """Make ``dst`` appear at once with ``src``'s content (a device plugged in: never half a file)."""
    tmp = dst.with_name(".incoming-" + dst.name)
    tmp.write_bytes(src.read_bytes())
    os.replace(tmp, dst)
