"""Shared fixtures for the live-control tests: a real ParamTree, a small real ControlTarget, an engine thread
draining the command queue, and OSC clients (python-osc over a UDP socket; liblo's oscsend/oscdump)."""

from __future__ import annotations

import queue
import shutil
import socket
import subprocess
import threading
import time

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from installation.control.osc import OscConfig, OscServer
from installation.params import ParamSpec, ParamTree
from tests.support.procs import stop_process

SPECS = (
    ParamSpec("show/master", "float", 1.0, "Master brightness", 0.0, 1.0, "ratio"),
    ParamSpec("show/blackout", "bool", False, "All outputs dark"),
    ParamSpec("field/flow/speed", "float", 1.0, "Flow speed", 0.0, 4.0, "1/s"),
    ParamSpec("field/particles", "int", 20000, "Particle count", 1000, 100000, live=False),
    ParamSpec("field/palette", "choice", "moss", "Colour palette", choices=("moss", "ember", "tide")),
)


def make_tree() -> ParamTree:
    return ParamTree.from_specs(SPECS)


class PresetError(ValueError):
    pass


class Target:
    """A real, small ControlTarget: presets are dicts of bases, shipped ones are protected."""

    def __init__(self, tree: ParamTree) -> None:
        self.params = tree
        self.presets = {"calm": {"field/flow/speed": 0.5, "field/palette": "tide"}, "storm": {"field/flow/speed": 3.5}}
        self.shipped = {"calm", "storm"}
        self.scenes = ("harmony", "tension", "restoration")
        self.scene = "harmony"
        self.preset = None
        self.fades: list[tuple[str, float]] = []

    def load_preset(self, name: str, fade_s: float | None) -> None:
        if name not in self.presets:
            raise PresetError(f"preset {name!r} not found (have: {', '.join(sorted(self.presets))})")
        self.params.update_bases(self.presets[name])
        self.preset = name
        self.fades.append((name, fade_s))

    def save_preset(self, name: str, force: bool, done) -> None:
        # like the engine: shipped presets are never overwritten from the network, force or not
        if name in self.shipped:
            done(PresetError(f"{name} is a shipped preset and cannot be overwritten over the network"))
            return
        self.presets[name] = self.params.bases("look")
        done(None)

    def save_venue(self, done) -> None:
        self.venue_saved = self.params.bases("venue")
        done(None)

    def preset_names(self) -> list[str]:
        return sorted(self.presets)

    def go_scene(self, name: str) -> None:
        if name not in self.scenes:
            raise ValueError(f"unknown scene {name!r}")
        self.scene = name

    def status(self) -> dict:
        return {"fps": 60.0, "frame_ms": 4.5, "mood": {"intensity": 0.25}, "scene": self.scene, "preset": self.preset}


class Engine:
    """Stands in for the lead's engine loop: drains the queue on its own thread and applies commands."""

    def __init__(self, target: Target, commands: queue.Queue) -> None:
        self.target, self.commands = target, commands
        self.applied = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                cmd = self.commands.get(timeout=0.01)
            except queue.Empty:
                continue
            cmd.apply(self.target)
            self.applied += 1

    def start(self) -> "Engine":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def call(self, fn, timeout: float = 5.0):
        """Run ``fn(target)`` on the engine thread (between commands) and return its result."""
        box: list = []
        done = threading.Event()

        class _Call:
            def apply(self, target):
                box.append(fn(target))
                done.set()

        self.commands.put(_Call())
        assert done.wait(timeout), "engine did not run the call"
        return box[0]


def wait_for(pred, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``pred`` until true; fail after ``timeout`` (a bound for a broken test, not a performance check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


class Client:
    """A python-osc client on its own UDP socket, so the server's replies come back to it."""

    def __init__(self, server_addr: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.server_addr = server_addr
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.05)
        self.inbox: list[tuple[str, list]] = []

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def send(self, address: str, *args, types: str | None = None) -> None:
        b = OscMessageBuilder(address)
        for i, a in enumerate(args):
            b.add_arg(a, types[i] if types else None)
        self.sock.sendto(b.build().dgram, self.server_addr)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server_addr)

    def _receive(self) -> None:
        try:
            data, _ = self.sock.recvfrom(65536)
        except socket.timeout:
            return
        for tm in OscPacket(data).messages:  # python-osc parses what our encoder sent
            self.inbox.append((tm.message.address, list(tm.message.params)))

    def _receive_nowait(self) -> None:
        """Take in every datagram already waiting (returns None, so it chains with ``or``)."""
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    data, _ = self.sock.recvfrom(65536)
                except BlockingIOError:
                    return
                for tm in OscPacket(data).messages:
                    self.inbox.append((tm.message.address, list(tm.message.params)))
        finally:
            self.sock.settimeout(0.05)

    def wait(self, address: str, timeout: float = 5.0, pred=lambda args: True) -> list:
        """The arguments of the first received message at ``address`` matching ``pred`` (consumed)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (a, args) in enumerate(self.inbox):
                if a == address and pred(args):
                    del self.inbox[i]
                    return args
            if time.monotonic() > deadline:
                raise AssertionError(f"no {address} reply; got {self.inbox[-10:]}")
            self._receive()

    def close(self) -> None:
        self.sock.close()


class OscDump:
    """liblo's ``oscdump -L PORT`` as a real, independent receiver; lines collected on a thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def ready(self) -> bool:
        """True once oscdump prints what it receives (probe: send it a /ready message)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"/ready\x00\x00,\x00\x00\x00", ("127.0.0.1", self.port))
        time.sleep(0.02)
        return any("/ready" in line for line in self.lines)

    def wait_line(self, needle: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if needle in line:
                    return line
            time.sleep(0.01)
        raise AssertionError(f"oscdump never printed {needle!r}; got {self.lines[-10:]}")

    def close(self) -> None:
        stop_process(self.proc)


needs_liblo = pytest.mark.skipif(shutil.which("oscsend") is None or shutil.which("oscdump") is None,
                                 reason="liblo-tools (oscsend/oscdump) not installed")


@pytest.fixture
def rig():
    """A started server on a free loopback port, its tree, target and engine thread."""
    tree = make_tree()
    commands: queue.Queue = queue.Queue(maxsize=256)
    server = OscServer(tree, commands, OscConfig(port=0))
    target = Target(tree)
    engine = Engine(target, commands)
    tree.listen(server.publish_change)
    server.start()
    engine.start()
    clients: list[Client] = []

    class Rig:
        pass

    r = Rig()
    r.tree, r.commands, r.server, r.target, r.engine = tree, commands, server, target, engine

    def client() -> Client:
        c = Client(server.address)
        clients.append(c)
        return c

    r.client = client
    yield r
    for c in clients:
        c.close()
    engine.stop()
    server.stop()
