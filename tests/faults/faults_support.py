"""Helpers for the fault-injection suite: a receiver per output, a small venue, the piece as a process.

The receivers are :class:`tests.support.udp.DmxReceiver` (shared with the other suites).

Everything here talks to loopback (or to a network namespace the test made) and is bounded in
time: every wait has a deadline, every receiver and process is closed by its owner.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable

from tests.support.procs import stop_process
from tests.support.udp import DmxReceiver, free_port

ROOT = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "NOTIFY_SOCKET",
                                                         "WATCHDOG_USEC", "WATCHDOG_PID")}
ENV["PYTHONUNBUFFERED"] = "1"


# -- receivers ------------------------------------------------------------------------------------

def wait_lit(rx: DmxReceiver, count: int, timeout: float, after: float | None = None) -> bool:
    """True once ``count`` packets with non-zero data arrived (after monotonic ``after``)."""
    after = time.monotonic() if after is None else after
    return rx.wait_for(lambda ps: sum(1 for p in ps if p.t >= after and p.nonzero) >= count, timeout)


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
        self.rx: dict[str, DmxReceiver] = {}
        try:
            for name in ("wall", "rim", "net"):
                self.rx[name] = DmxReceiver(0, host, poll=0.05, sock_factory=sock_factory)
        except BaseException:
            self.close()
            raise

    def __getitem__(self, name: str) -> DmxReceiver:
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
        if self.proc is not None:
            stop_process(self.proc, 8)
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
