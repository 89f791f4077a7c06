"""Loopback UDP for the tests: free ports, Art-Net/sACN/DDP decoding, and receivers drained by a thread.

Every receiver is a real socket; every wait has a deadline; every receiver is closed by its owner.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

ARTNET_ID = b"Art-Net\x00"
ACN_ID = b"ASC-E1.17\x00\x00\x00"
OPT_STREAM_TERMINATED = 0x40


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A loopback port of ``kind`` (UDP unless told) that was free a moment ago."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- decoding ---------------------------------------------------------------------------------------

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


# -- receivers --------------------------------------------------------------------------------------

class Receiver:
    """A UDP socket on (host, port) drained by a thread into ``packets`` (the raw datagrams, in order).

    Subclasses keep something else by overriding :meth:`parse`.  ``keep``: hold only the newest that
    many (a deque) instead of all (a list).  ``close()`` closes the socket (a sender then gets ICMP
    port-unreachable); ``reopen()`` binds the same port again.  ``sock_factory`` makes the socket (a
    namespace test binds inside one); ``poll``: how often :meth:`wait_for` looks.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", *, keep: int | None = None, poll: float = 0.005,
                 sock_factory: Callable[[], socket.socket] | None = None) -> None:
        self.host = host
        self.port = port
        self.poll = poll
        self._factory = sock_factory or (lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        self.packets: list | deque = deque(maxlen=keep) if keep else []
        self.total = 0
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reopen()

    def parse(self, raw: bytes, t: float):
        """What to keep of one datagram that arrived at monotonic ``t`` (None: nothing)."""
        return raw

    def reopen(self) -> None:
        """Bind (again) and start draining."""
        self.close()
        s = self._factory()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
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
            item = self.parse(raw, time.monotonic())
            if item is not None:
                with self._lock:
                    self.packets.append(item)
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

    def snapshot(self) -> list:
        """A copy of ``packets`` as they are now."""
        with self._lock:
            return list(self.packets)

    def wait_for(self, pred: Callable[[list], bool], timeout: float = 3.0) -> bool:
        """Poll ``pred(packets)`` until true or ``timeout`` seconds passed; its last answer."""
        return self._until(lambda: pred(self.snapshot()), timeout)

    def _until(self, cond: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            time.sleep(self.poll)
        return bool(cond())


class DmxReceiver(Receiver):
    """A :class:`Receiver` that keeps decoded Art-Net/sACN/DDP :class:`Packet` s (the newest 50000 unless
    told) and the newest data per (protocol, address)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", *, keep: int | None = 50000, **kw) -> None:
        self._latest: dict[tuple[str, int], bytes] = {}
        super().__init__(port, host, keep=keep, **kw)

    def parse(self, raw: bytes, t: float) -> Packet | None:
        p = decode(raw, t)
        if p is not None:
            with self._lock:
                self._latest[(p.proto, p.address)] = p.data
        return p

    def since(self, t: float) -> list[Packet]:
        """Packets that arrived at or after monotonic time ``t``."""
        return [p for p in self.snapshot() if p.t >= t]

    def lit_in_window(self, seconds: float) -> int:
        """Wait ``seconds``, return how many packets with some non-zero data arrived meanwhile."""
        t0 = time.monotonic()
        time.sleep(seconds)
        return sum(1 for p in self.since(t0) if p.nonzero)

    def latest(self) -> dict[tuple[str, int], bytes]:
        """``{(protocol, universe or offset): data}`` of the newest packet to each address so far."""
        with self._lock:
            return dict(self._latest)

    def wait_latest(self, check: Callable[[dict], bool], timeout: float = 3.0) -> bool:
        """Poll until ``check(latest())`` holds (bounded by ``timeout``); a KeyError (an address that has
        not been heard from yet) counts as not yet."""
        def holds() -> bool:
            try:
                return bool(check(self.latest()))
            except KeyError:
                return False
        return self._until(holds, timeout)
