"""Which LED controllers are really there: Art-Net polls and sACN universe discovery, compared with the venue.

UDP sends never fail, so an output whose controller is powered off looks "ok" to its sender.  The
:class:`Discovery` thread asks the network instead:

* **Art-Net 4**: every ``interval_s`` (2.5-3 s, as the spec asks of controllers) an ArtPoll (0x2000)
  goes, unicast, to each Art-Net output's host, and to the broadcast address only if the venue
  allows it.  Nodes answer with ArtPollReply (0x2100) to port 6454 of the poller; a reply names the
  node and the port-addresses it outputs.  An output whose host has not answered ``missing_after``
  polls in a row is ``missing``; one that answers but outputs none of some of our universes is
  ``mismatch``; a node that answers and is in no output of the venue is ``unexpected``.
* **sACN (E1.31-2018 universe discovery)**: receivers never reply, so sACN outputs are
  ``unverified``.  The thread listens on the universe-discovery group (239.255.250.214) for the
  other sources on the network (and notes those that send on our universes), and, as a source
  should, announces our own universes there every 10 s when the venue allows multicast.
* DDP outputs to WLED (``wled = true``): WLED's JSON API (``GET /json/info``) is asked on its own
  thread; no answer is ``missing``, fewer LEDs than we send is ``mismatch``.  Other DDP, OSC and
  Enttec outputs cannot be polled here: ``unverified``.  Outputs at a loopback host
  are on this machine (a visualiser, a test receiver): ``local``, not polled, unless
  ``poll_loopback`` is set.

Venue keys: the ``[discovery]`` table, read by :meth:`DiscoveryConfig.from_sections`.
The result is a plain dict (see :meth:`Discovery.report`) handed to a callback (the health
board) whenever it changes; nothing here runs on the frame thread.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import queue
import select
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from .artnet import ARTNET_ID, PROT_VER
from .base import DEFAULT_PORTS
from .sacn import ACN_ID, VECTOR_ROOT_E131_EXTENDED, _fl, _root

log = logging.getLogger(__name__)

OP_POLL = 0x2000
OP_POLL_REPLY = 0x2100
ARTNET_PORT = DEFAULT_PORTS["artnet"]
SACN_PORT = DEFAULT_PORTS["sacn"]
#: E1.31 universe discovery: universe 64214, its multicast group, and the interval a source announces at.
DISCOVERY_UNIVERSE = 64214
DISCOVERY_GROUP = "239.255.250.214"
DISCOVERY_INTERVAL_S = 10.0
VECTOR_E131_EXTENDED_DISCOVERY = 0x00000002
VECTOR_UNIVERSE_DISCOVERY_UNIVERSE_LIST = 0x00000001
UNIVERSES_PER_PAGE = 512
#: a source not heard from for this long is forgotten (2.5 discovery intervals)
SOURCE_TIMEOUT_S = 25.0
#: the shortest ArtPollReply we parse: through the MAC address (Art-Net 3 nodes stop there)
POLL_REPLY_MIN = 207
POLL_REPLY_LEN = 239

#: the most (node, bind index) pairs and sACN sources kept: a flood of forged replies cannot grow memory
MAX_NODES = 1024
MAX_SOURCES = 256
#: datagrams read a second, all sockets together; more is a flood and is left to the kernel to drop
MAX_PACKETS_PER_S = 2000
#: controller states that make the show "degraded"
PROBLEM_STATES = frozenset({"missing", "mismatch"})


class DiscoveryConfigError(ValueError):
    """A ``[discovery]`` table that cannot be used; the message names the key."""


# -- Art-Net packets ---------------------------------------------------------------------------------

def artpoll_packet(flags: int = 0, diag_priority: int = 0) -> bytes:
    """An ArtPoll: ID, OpCode 0x2000 (little-endian), ProtVer 14 (hi byte first), Flags, DiagPriority."""
    return ARTNET_ID + OP_POLL.to_bytes(2, "little") + PROT_VER.to_bytes(2, "big") + bytes([flags, diag_priority])


@dataclass(frozen=True)
class ArtNode:
    """What one ArtPollReply says about a node (one bind index of it)."""

    ip: str
    port: int
    short_name: str
    long_name: str
    report: str
    oem: int
    esta: int
    bind_index: int
    mac: str
    outputs: tuple[int, ...]  # port-addresses of the ports that output DMX from Art-Net
    inputs: tuple[int, ...]   # port-addresses of the ports that input DMX to Art-Net


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("ascii", "replace").strip()


def parse_artpollreply(data: bytes) -> ArtNode | None:
    """Decode an ArtPollReply; None for anything else (other opcodes, short or foreign packets)."""
    if len(data) < POLL_REPLY_MIN or data[:8] != ARTNET_ID or int.from_bytes(data[8:10], "little") != OP_POLL_REPLY:
        return None
    ip = socket.inet_ntoa(data[10:14])
    port = int.from_bytes(data[14:16], "little")
    net, sub = data[18] & 0x7F, data[19] & 0x0F
    num_ports = min(4, int.from_bytes(data[172:174], "big"))
    types, sw_in, sw_out = data[174:178], data[186:190], data[190:194]
    outs = tuple((net << 8) | (sub << 4) | (sw_out[i] & 0x0F) for i in range(num_ports) if types[i] & 0x80)
    ins = tuple((net << 8) | (sub << 4) | (sw_in[i] & 0x0F) for i in range(num_ports) if types[i] & 0x40)
    bind_index = data[211] if len(data) > 211 else 0
    return ArtNode(ip=ip, port=port, short_name=_text(data[26:44]), long_name=_text(data[44:108]),
                   report=_text(data[108:172]), oem=int.from_bytes(data[20:22], "big"),
                   esta=int.from_bytes(data[24:26], "little"), bind_index=bind_index,
                   mac=":".join(f"{b:02x}" for b in data[201:207]), outputs=outs, inputs=ins)


def artpollreply_packet(ip: str, short_name: str, long_name: str = "", outputs: Sequence[int] = (),
                        mac: bytes = b"\x00" * 6, bind_index: int = 1, report: str = "#0001 [0000] ok") -> bytes:
    """A 239-byte Art-Net 4 ArtPollReply for a node outputting ``outputs`` (up to 4 port-addresses that
    share one Net and Sub-Net).  Used to answer polls (a node simulator, the tests)."""
    outputs = list(outputs)
    if len(outputs) > 4 or len({(a >> 4) for a in outputs}) > 1:
        raise ValueError("one ArtPollReply carries up to 4 ports that share Net and Sub-Net")
    first = outputs[0] if outputs else 0
    p = bytearray(POLL_REPLY_LEN)
    p[0:8] = ARTNET_ID
    p[8:10] = OP_POLL_REPLY.to_bytes(2, "little")
    p[10:14] = socket.inet_aton(ip)
    p[14:16] = ARTNET_PORT.to_bytes(2, "little")
    p[16:18] = (1).to_bytes(2, "big")                       # firmware version
    p[18], p[19] = (first >> 8) & 0x7F, (first >> 4) & 0x0F  # NetSwitch, SubSwitch
    p[23] = 0xD0                                            # Status1: indicators normal, front-panel addressing
    p[26:44] = short_name.encode("ascii", "replace")[:17].ljust(18, b"\x00")
    p[44:108] = (long_name or short_name).encode("ascii", "replace")[:63].ljust(64, b"\x00")
    p[108:172] = report.encode("ascii", "replace")[:63].ljust(64, b"\x00")
    p[172:174] = len(outputs).to_bytes(2, "big")
    for i, a in enumerate(outputs):
        p[174 + i] = 0x80           # PortTypes: outputs DMX512 from Art-Net
        p[182 + i] = 0x80           # GoodOutputA: data is being transmitted
        p[190 + i] = a & 0x0F       # SwOut
    p[200] = 0x00                   # Style: StNode
    p[201:207] = mac
    p[207:211] = socket.inet_aton(ip)
    p[211] = bind_index
    p[212] = 0x08                   # Status2: 15-bit port-addresses
    return bytes(p)


# -- sACN universe discovery ---------------------------------------------------------------------------

def universe_discovery_packets(cid: bytes, source_name: str, universes: Iterable[int]) -> list[bytes]:
    """E1.31 universe discovery packets (one per page of up to 512 sorted universes)."""
    unis = sorted({int(u) for u in universes if 1 <= int(u) <= 63999})
    pages = [unis[i:i + UNIVERSES_PER_PAGE] for i in range(0, len(unis), UNIVERSES_PER_PAGE)] or [[]]
    name = source_name.encode("utf-8")[:63].ljust(64, b"\x00")
    out = []
    for page, chunk in enumerate(pages):
        total = 120 + 2 * len(chunk)
        framing = _fl(total - 38) + VECTOR_E131_EXTENDED_DISCOVERY.to_bytes(4, "big") + name + b"\x00" * 4
        layer = (_fl(total - 112) + VECTOR_UNIVERSE_DISCOVERY_UNIVERSE_LIST.to_bytes(4, "big")
                 + bytes([page, len(pages) - 1]) + b"".join(u.to_bytes(2, "big") for u in chunk))
        out.append(_root(cid, VECTOR_ROOT_E131_EXTENDED, total) + framing + layer)
    return out


@dataclass(frozen=True)
class DiscoveryPage:
    """One decoded universe discovery packet."""

    cid: str
    source_name: str
    page: int
    last_page: int
    universes: tuple[int, ...]


def parse_universe_discovery(data: bytes) -> DiscoveryPage | None:
    """Decode an E1.31 universe discovery packet; None for anything else (data, sync, foreign)."""
    if len(data) < 120 or data[4:16] != ACN_ID:
        return None
    if int.from_bytes(data[18:22], "big") != VECTOR_ROOT_E131_EXTENDED:
        return None
    if int.from_bytes(data[40:44], "big") != VECTOR_E131_EXTENDED_DISCOVERY:
        return None
    if int.from_bytes(data[114:118], "big") != VECTOR_UNIVERSE_DISCOVERY_UNIVERSE_LIST:
        return None
    n = (len(data) - 120) // 2
    layer_len = int.from_bytes(data[112:114], "big") & 0x0FFF
    n = min(n, max(0, (layer_len - 8) // 2))
    unis = struct.unpack(f">{n}H", data[120:120 + 2 * n]) if n else ()
    cid = data[22:38].hex()
    cid = f"{cid[:8]}-{cid[8:12]}-{cid[12:16]}-{cid[16:20]}-{cid[20:]}"
    return DiscoveryPage(cid=cid, source_name=data[44:108].split(b"\x00", 1)[0].decode("utf-8", "replace"),
                         page=data[118], last_page=data[119], universes=tuple(unis))


# -- configuration ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DiscoveryConfig:
    """The venue's ``[discovery]`` table (see docs/operations.md, "Alerts and discovery")."""

    enable: bool = True
    broadcast: bool = False                   # ArtPoll to broadcast_address too (finds unexpected nodes)
    broadcast_address: str = "255.255.255.255"
    interval_s: float = 2.5                   # ArtPoll period (Art-Net: 2.5-3 s)
    missing_after: int = 3                    # unanswered polls in a row before an output is "missing"
    artnet_port: int = ARTNET_PORT            # where replies arrive (the spec's 6454; 0 = any, for tests)
    sacn_port: int = SACN_PORT                # sACN universe discovery port
    sacn_listen: bool = True                  # listen for other sACN sources' universe discovery
    sacn_announce: bool | None = None         # send our own universe discovery (None: when multicast is allowed)
    source_name: str = "Tapestry"
    poll_loopback: bool = False               # poll outputs at loopback hosts too (a node simulator here)
    interface: str = ""                       # local IPv4 for sACN multicast (join, send) ('' = routing table)
    wled: bool = False                        # DDP outputs are WLED: ask their JSON API
    wled_port: int = 80                       # WLED's HTTP port

    _KEYS = ("enable", "broadcast", "broadcast_address", "interval_s", "missing_after", "artnet_port",
             "sacn_port", "sacn_listen", "sacn_announce", "source_name", "poll_loopback", "interface", "wled",
             "wled_port")

    @classmethod
    def from_sections(cls, sections: Mapping[str, Any], where: str = "venue") -> "DiscoveryConfig":
        """Read ``sections["discovery"]`` (missing: the defaults); :class:`DiscoveryConfigError` names the key."""
        t = sections.get("discovery", {}) if sections else {}
        w = f"{where}: [discovery]"
        if not isinstance(t, Mapping):
            raise DiscoveryConfigError(f"{w}: expected a table")
        unknown = sorted(set(t) - set(cls._KEYS))
        if unknown:
            raise DiscoveryConfigError(f"{w}: unknown key {unknown[0]!r} (expected one of {', '.join(cls._KEYS)})")
        d = cls()

        def get(key, kind, lo=None, hi=None, none_ok=False):
            v = t.get(key, getattr(d, key))
            if v is None and none_ok:
                return None
            if kind is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
                raise DiscoveryConfigError(f"{w}: {key} must be {_kind_name(kind)}, got {v!r}")
            if kind in (int, float) and (not math.isfinite(v) or (lo is not None and v < lo)
                                         or (hi is not None and v > hi)):
                raise DiscoveryConfigError(f"{w}: {key} must be in {lo}..{hi}, got {v!r}")
            return v

        cfg = cls(enable=get("enable", bool), broadcast=get("broadcast", bool),
                  broadcast_address=get("broadcast_address", str), interval_s=get("interval_s", float, 1.0, 60.0),
                  missing_after=get("missing_after", int, 1, 100), artnet_port=get("artnet_port", int, 0, 65535),
                  sacn_port=get("sacn_port", int, 0, 65535), sacn_listen=get("sacn_listen", bool),
                  sacn_announce=get("sacn_announce", bool, none_ok=True), source_name=get("source_name", str),
                  poll_loopback=get("poll_loopback", bool), interface=get("interface", str),
                  wled=get("wled", bool), wled_port=get("wled_port", int, 1, 65535))
        for key in ("broadcast_address",) + (("interface",) if cfg.interface else ()):
            try:
                ipaddress.IPv4Address(getattr(cfg, key))
            except ValueError:
                raise DiscoveryConfigError(f"{w}: {key} must be an IPv4 address, got {getattr(cfg, key)!r}") from None
        if len(cfg.source_name.encode("utf-8")) > 63:
            raise DiscoveryConfigError(f"{w}: source_name must be at most 63 bytes of UTF-8")
        return cfg


def _kind_name(kind: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]


# -- what we expect ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Expected:
    """One output of the venue as discovery sees it: where its controller should be, which universes."""

    name: str
    protocol: str
    host: str
    port: int | None
    universes: tuple[int, ...] = ()
    enabled: bool = True
    multicast: bool = False
    cid: str = ""
    size: int = 0  # bytes patched to the controller (DDP: 3 per RGB LED)


def expected_from_venue(venue) -> list[Expected]:
    """The venue's outputs with the universes patched to them."""
    unis = {c.name: tuple(int(u) for u in c.universes) for c in venue.patch.controllers}
    sizes = {c.name: int(c.size) for c in venue.patch.controllers}
    out = []
    for o in venue.outputs:
        out.append(Expected(name=o.name, protocol=o.protocol, host=o.host, port=o.port,
                            universes=unis.get(o.name, ()), enabled=o.enabled,
                            multicast=bool(o.options.get("multicast", False)), cid=str(o.options.get("cid", "")),
                            size=sizes.get(o.name, 0)))
    return out


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- the thread -------------------------------------------------------------------------------------

@dataclass
class _Target:
    exp: Expected
    ip: str | None = None
    resolve_error: str = ""
    resolved_at: float = -math.inf
    unanswered: int = 0
    polls: int = 0
    last_reply: float | None = None
    wled: dict | None = None        # WLED's /json/info, when it last answered
    wled_error: str = ""


@dataclass
class _Source:
    cid: str
    name: str
    ip: str
    pages: dict[int, tuple[int, ...]] = field(default_factory=dict)
    last_page: int = 0
    seen: float = 0.0


class Discovery:
    """Polls the venue's controllers on its own thread and publishes what answers.

    ``publish(report)`` is called from the discovery thread after each poll round (and when a
    reply changes what is known); it must be cheap and must not block (the health board's
    :meth:`set_section` is a reference assignment).  ``clock`` is for tests.
    """

    RESOLVE_EVERY_S = 60.0

    def __init__(self, expected: Sequence[Expected], config: DiscoveryConfig = DiscoveryConfig(),
                 publish: Callable[[dict], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._publish = publish
        self._clock = clock
        self._targets = [_Target(e) for e in expected]
        self._nodes: dict[tuple[str, int], tuple[ArtNode, float]] = {}
        self._sources: dict[str, _Source] = {}
        cid = next((e.cid for e in expected if e.protocol == "sacn" and e.cid), "")
        self._announce_cid = uuid.UUID(cid) if cid else uuid.uuid5(uuid.NAMESPACE_URL, "tapestry:discovery")
        self._own_cids = {e.cid.lower() for e in expected if e.cid} | {str(self._announce_cid)}
        self._polls_sent = 0
        self._replies = 0
        self._errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._art: socket.socket | None = None
        self._sacn: socket.socket | None = None
        self._wled_results: queue.Queue = queue.Queue(256)   # (name, info or None, error) from the WLED thread
        self._wled_thread: threading.Thread | None = None
        self._report: dict = self._build_report()
        self.artnet_bound_port: int | None = None
        self.sacn_bound_port: int | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def polls_artnet(self) -> bool:
        """True when some Art-Net output is polled (or broadcast polling is on)."""
        return self.config.broadcast or any(self._polled(t.exp) for t in self._targets)

    def _polled(self, e: Expected) -> bool:
        return e.enabled and e.protocol == "artnet" and (self.config.poll_loopback or not _is_loopback(e.host))

    def _wled_asked(self, e: Expected) -> bool:
        return (self.config.wled and e.enabled and e.protocol == "ddp"
                and (self.config.poll_loopback or not _is_loopback(e.host)))

    @property
    def announces_sacn(self) -> bool:
        """True when our universe discovery is sent (sACN outputs exist and multicast is allowed)."""
        unis = [u for t in self._targets if t.exp.protocol == "sacn" and t.exp.enabled for u in t.exp.universes]
        if not unis:
            return False
        if self.config.sacn_announce is not None:
            return self.config.sacn_announce
        return self.config.broadcast or any(t.exp.multicast for t in self._targets if t.exp.protocol == "sacn")

    @property
    def listens_sacn(self) -> bool:
        """True when other sources' universe discovery is listened for."""
        return self.config.sacn_listen and any(
            t.exp.protocol == "sacn" and t.exp.enabled and (t.exp.multicast or not _is_loopback(t.exp.host)
                                                             or self.config.poll_loopback)
            for t in self._targets)

    def start(self) -> "Discovery":
        """Open the sockets (on the calling thread, so bind errors are known now) and start the thread.

        A socket that cannot be opened is logged once and its part reported as an error; the rest runs.
        """
        # always the wildcard: nodes such as OLA broadcast their replies, and a socket bound to one
        # unicast address does not receive broadcasts
        bind_ip = "0.0.0.0"
        if self.polls_artnet:
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                s.bind((bind_ip, self.config.artnet_port))
                s.setblocking(False)
                self._art = s
                self.artnet_bound_port = s.getsockname()[1]
            except OSError as exc:
                self._error(f"Art-Net discovery off: cannot listen on {bind_ip}:{self.config.artnet_port} "
                            f"({exc.strerror or exc}); another Art-Net program may hold the port")
        if self.listens_sacn or self.announces_sacn:
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", self.config.sacn_port if self.listens_sacn else 0))
                if self.listens_sacn:
                    mreq = socket.inet_aton(DISCOVERY_GROUP) + socket.inet_aton(self.config.interface or "0.0.0.0")
                    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
                if self.config.interface:
                    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.config.interface))
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
                s.setblocking(False)
                self._sacn = s
                self.sacn_bound_port = s.getsockname()[1]
            except OSError as exc:
                self._error(f"sACN discovery off: cannot listen on port {self.config.sacn_port} or join "
                            f"{DISCOVERY_GROUP} ({exc.strerror or exc}); on a network without a default route "
                            f"set [discovery] interface to this machine's address there")
        self._thread = threading.Thread(target=self._run, name="discovery", daemon=True)
        self._thread.start()
        if any(self._wled_asked(t.exp) for t in self._targets):
            self._wled_thread = threading.Thread(target=self._wled_loop, name="discovery-wled", daemon=True)
            self._wled_thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close the sockets."""
        self._stop.set()
        for th in (self._thread, self._wled_thread):
            if th is not None:
                th.join(3.0)
        self._thread = self._wled_thread = None
        for s in (self._art, self._sacn):
            if s is not None:
                s.close()
        self._art = self._sacn = None

    def report(self) -> dict:
        """The latest report (see the module docstring; the same dict ``publish`` received)."""
        return self._report

    # -- the loop -----------------------------------------------------------------------------------
    def _run(self) -> None:
        next_poll = self._clock()
        next_announce = self._clock() if self.announces_sacn else math.inf
        while not self._stop.is_set():
            now = self._clock()
            try:
                if now >= next_poll:
                    self._poll_round(now)
                    next_poll = now + self.config.interval_s
                    self._publish_report()
                if now >= next_announce:
                    self._announce()
                    next_announce = now + DISCOVERY_INTERVAL_S
                if self._take_wled_results():
                    self._publish_report()
                socks = [s for s in (self._art, self._sacn) if s is not None]
                wait = max(0.0, min(next_poll, next_announce) - self._clock())
                if not socks:
                    self._stop.wait(min(wait, 1.0))
                    continue
                ready, _, _ = select.select(socks, [], [], min(wait, 0.5))
                changed = False
                for s in ready:
                    changed |= self._drain(s)
                if changed:
                    self._publish_report()
                if self._budget_used >= MAX_PACKETS_PER_S:
                    # a flood: stop reading until the next second (the kernel drops the excess), so
                    # this thread never takes more than a sliver of the CPU and the GIL from the frame
                    self._error(f"more than {MAX_PACKETS_PER_S} discovery packets a second: flood ignored",
                                once=True)
                    self._stop.wait(max(0.0, self._budget_start + 1.0 - self._clock()))
            except Exception as exc:  # noqa: BLE001 - discovery must never stop, whatever arrives
                self._error(f"discovery: {type(exc).__name__}: {exc}")
                self._stop.wait(1.0)

    # -- WLED (its own thread: an HTTP request to a dead host waits for its timeout) --------------
    def _wled_loop(self) -> None:
        targets = [t for t in self._targets if self._wled_asked(t.exp)]
        while not self._stop.is_set():
            for t in targets:
                if self._stop.is_set():
                    return
                info, error = self._ask_wled(t.exp)
                try:
                    self._wled_results.put_nowait((t.exp.name, info, error))
                except queue.Full:
                    pass
            self._stop.wait(self.config.interval_s)

    def _ask_wled(self, e: Expected) -> tuple[dict | None, str]:
        url = f"http://{e.host}:{self.config.wled_port}/json/info"
        try:
            with urllib.request.urlopen(url, timeout=min(2.0, self.config.interval_s)) as resp:
                info = json.loads(resp.read(65536).decode("utf-8", "replace"))
        except urllib.error.HTTPError as exc:
            return None, f"{url} answered HTTP {exc.code}: not a WLED JSON API"
        except (urllib.error.URLError, OSError) as exc:
            return None, f"no answer from {url} ({getattr(exc, 'reason', exc)})"
        except ValueError:
            return None, f"{url} did not return JSON: not a WLED JSON API"
        if not isinstance(info, dict) or not isinstance(info.get("leds"), dict):
            return None, f"{url} is not WLED's /json/info"
        return info, ""

    def _take_wled_results(self) -> bool:
        changed = False
        by_name = {t.exp.name: t for t in self._targets}
        while True:
            try:
                name, info, error = self._wled_results.get_nowait()
            except queue.Empty:
                return changed
            t = by_name[name]
            t.polls += 1
            if info is not None:
                t.wled, t.wled_error, t.unanswered, t.last_reply = info, "", 0, self._clock()
            else:
                t.wled_error, t.unanswered = error, t.unanswered + 1
            changed = True

    def _poll_round(self, now: float) -> None:
        if self._art is None:
            return
        poll = artpoll_packet()
        sent_to: set[tuple[str, int]] = set()
        for t in self._targets:
            if not self._polled(t.exp):
                continue
            if now - t.resolved_at > self.RESOLVE_EVERY_S or t.ip is None:
                self._resolve(t, now)
            if t.ip is None:
                continue
            if t.polls > 0 and (t.last_reply is None or t.last_reply < self._last_round_at):
                t.unanswered += 1
            t.polls += 1
            dest = (t.ip, t.exp.port or ARTNET_PORT)
            if dest in sent_to:
                continue
            sent_to.add(dest)
            self._send(poll, dest)
        if self.config.broadcast:
            self._send(poll, (self.config.broadcast_address, ARTNET_PORT))
        self._last_round_at = now
        # nodes that stopped answering are forgotten after the same number of silent polls
        horizon = now - self.config.interval_s * (self.config.missing_after + 0.5)
        for key, (_node, seen) in list(self._nodes.items()):
            if seen < horizon:
                del self._nodes[key]

    _last_round_at = -math.inf

    def _send(self, data: bytes, dest: tuple[str, int]) -> None:
        try:
            self._art.sendto(data, dest)
            self._polls_sent += 1
        except OSError as exc:
            self._error(f"ArtPoll to {dest[0]}:{dest[1]} failed ({exc.strerror or exc})", once=True)

    def _resolve(self, t: _Target, now: float) -> None:
        t.resolved_at = now
        try:
            t.ip = socket.getaddrinfo(t.exp.host, None, socket.AF_INET, socket.SOCK_DGRAM)[0][4][0]
            t.resolve_error = ""
        except OSError as exc:
            t.resolve_error = f"cannot resolve {t.exp.host!r} ({exc.strerror or exc})"
            if t.ip is not None:  # a name server that went away: keep polling the address it gave
                self._error(f"{t.resolve_error}; still polling {t.ip}", once=True)

    def _announce(self) -> None:
        if self._sacn is None:
            return
        unis = sorted({u for t in self._targets if t.exp.protocol == "sacn" and t.exp.enabled for u in t.exp.universes})
        for pkt in universe_discovery_packets(self._announce_cid.bytes, self.config.source_name, unis):
            try:
                self._sacn.sendto(pkt, (DISCOVERY_GROUP, self.config.sacn_port or SACN_PORT))
            except OSError as exc:
                self._error(f"sACN universe discovery to {DISCOVERY_GROUP} failed ({exc.strerror or exc})", once=True)

    _budget_start = -math.inf
    _budget_used = 0

    def _drain(self, s: socket.socket) -> bool:
        changed = False
        if self._clock() - self._budget_start >= 1.0:
            self._budget_start, self._budget_used = self._clock(), 0
        for _ in range(256):  # bounded: a flood cannot keep the thread here
            if self._budget_used >= MAX_PACKETS_PER_S:
                break
            self._budget_used += 1
            try:
                data, addr = s.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            now = self._clock()
            if s is self._art:
                node = parse_artpollreply(data)
                if node is None:
                    continue  # our own polls come back on loopback/broadcast; other opcodes are not ours
                self._replies += 1
                # keyed and matched by the sender's address, not the IP the packet claims: a forged or
                # garbled reply cannot vouch for another controller
                key = (addr[0], node.bind_index)
                known = self._nodes.get(key)
                if known is None and len(self._nodes) >= MAX_NODES:
                    self._error(f"more than {MAX_NODES} Art-Net nodes answering; the rest are not listed", once=True)
                    continue
                self._nodes[key] = (node, now)
                changed |= known is None or known[0] != node
                for t in self._targets:
                    if t.ip == addr[0] and self._polled(t.exp):
                        first = t.last_reply is None or t.unanswered > 0
                        t.last_reply, t.unanswered = now, 0
                        changed |= first
            else:
                page = parse_universe_discovery(data)
                if page is None or page.cid.lower() in self._own_cids:
                    continue
                src = self._sources.get(page.cid)
                if src is None and len(self._sources) >= MAX_SOURCES:
                    self._error(f"more than {MAX_SOURCES} sACN sources announcing; the rest are not listed", once=True)
                    continue
                if src is None:
                    src = self._sources[page.cid] = _Source(page.cid, page.source_name, addr[0])
                    changed = True
                old = src.pages.get(page.page)
                src.pages[page.page], src.last_page, src.seen = page.universes, page.last_page, now
                for stale in [p for p in src.pages if p > page.last_page]:
                    del src.pages[stale]
                src.name, src.ip = page.source_name, addr[0]
                changed |= old != page.universes
        now = self._clock()
        for cid, src in list(self._sources.items()):
            if now - src.seen > SOURCE_TIMEOUT_S:
                del self._sources[cid]
                changed = True
        return changed

    def _error(self, message: str, once: bool = False) -> None:
        if once and message in self._errors:
            return
        if message not in self._errors:
            log.warning("%s", message)
        self._errors = (self._errors + [message])[-10:]

    def _publish_report(self) -> None:
        self._report = self._build_report()
        if self._publish is not None:
            try:
                self._publish(self._report)
            except Exception:  # noqa: BLE001 - a broken consumer must not stop discovery
                log.exception("discovery: publishing the report failed")

    # -- the report ---------------------------------------------------------------------------------
    def _build_report(self) -> dict:
        now = self._clock()
        nodes_by_ip: dict[str, list[ArtNode]] = {}
        for (ip, _bind), (node, _seen) in self._nodes.items():
            nodes_by_ip.setdefault(ip, []).append(node)
        sources = {cid: s for cid, s in self._sources.items()}
        source_unis = {cid: sorted({u for p in s.pages.values() for u in p}) for cid, s in sources.items()}
        expected: dict[str, dict] = {}
        matched_ips: set[str] = set()
        for t in self._targets:
            e = t.exp
            entry: dict[str, Any] = {"protocol": e.protocol, "host": e.host}
            if e.universes:
                entry["universes"] = list(e.universes)
            if not e.enabled:
                entry["state"] = "disabled"
            elif e.protocol == "artnet" and not self._polled(e):
                entry.update(state="local", reason="on this machine (loopback): not polled")
            elif e.protocol == "artnet":
                self._artnet_entry(t, entry, nodes_by_ip, matched_ips, now)
            elif e.protocol == "sacn":
                entry.update(state="unverified", reason="sACN receivers do not answer; not polled")
                others = [f"{sources[c].name or c} ({sources[c].ip})" for c, unis in source_unis.items()
                          if set(unis) & set(e.universes)]
                if others:
                    entry["other_sources"] = others
            elif self._wled_asked(e):
                self._wled_entry(t, entry)
            elif e.protocol == "enttec":
                entry.update(state="unverified", reason="serial: see the output's own state")
            else:
                entry.update(state="unverified", reason=f"{e.protocol} controllers cannot be polled here"
                             + (" ([discovery] wled = true if it is WLED)" if e.protocol == "ddp" else ""))
            expected[e.name] = entry
        unexpected = []
        for ip, nodes in sorted(nodes_by_ip.items()):
            if ip in matched_ips:
                continue
            if len(unexpected) == 50:
                unexpected.append({"protocol": "artnet", "ip": "...", "name": f"{len(nodes_by_ip) - 50} more",
                                   "universes": []})
                break
            unexpected.append({"protocol": "artnet", "ip": ip, "name": nodes[0].short_name,
                               "long_name": nodes[0].long_name,
                               "universes": sorted({u for n in nodes for u in n.outputs})})
        ours = {u for t in self._targets if t.exp.protocol == "sacn" for u in t.exp.universes}
        sacn_sources = [{"cid": cid, "name": s.name, "ip": s.ip, "universes": source_unis[cid],
                         "shares_our_universes": sorted(set(source_unis[cid]) & ours)}
                        for cid, s in sorted(sources.items())]
        missing = sorted(n for n, e in expected.items() if e.get("state") == "missing")
        mismatch = sorted(n for n, e in expected.items() if e.get("state") == "mismatch")
        checking = any(e.get("state") == "checking" for e in expected.values())
        return {
            "state": ("missing" if missing else "mismatch" if mismatch else "checking" if checking
                      else "ok" if any(e.get("state") == "ok" for e in expected.values()) else "unverified"),
            "expected": expected,
            "missing": missing,
            "unexpected": unexpected,
            "sacn_sources": sacn_sources,
            "polls": self._polls_sent,
            "replies": self._replies,
            "interval_s": self.config.interval_s,
            "errors": list(self._errors),
        }

    def _wled_entry(self, t: _Target, entry: dict) -> None:
        if t.wled is not None and t.unanswered < self.config.missing_after:
            leds = t.wled.get("leds") or {}
            count = leds.get("count")
            per_led = 4 if leds.get("rgbw") is True else 3
            entry.update(state="ok", node=str(t.wled.get("name", "WLED"))[:64], wled_version=str(t.wled.get("ver", "")))
            if isinstance(count, int) and not isinstance(count, bool):
                entry["node_leds"] = count
                if t.exp.size > count * per_led:
                    entry.update(state="mismatch", reason=f"WLED {entry['node']!r} has {count} LEDs; we send "
                                                          f"{t.exp.size // per_led}")
        elif t.unanswered >= self.config.missing_after:
            entry.update(state="missing", reason=f"{t.wled_error} ({t.unanswered} checks in a row)")
        else:
            entry.update(state="checking", reason=t.wled_error or "asking WLED's JSON API")

    def _artnet_entry(self, t: _Target, entry: dict, nodes_by_ip: dict, matched_ips: set, now: float) -> None:
        e = t.exp
        if self._art is None:
            entry.update(state="unverified", reason="Art-Net discovery is off (see errors)")
            return
        if t.ip is None and t.resolve_error:
            entry.update(state="missing", reason=t.resolve_error)
            return
        entry["ip"] = t.ip
        nodes = nodes_by_ip.get(t.ip or "", [])
        if t.last_reply is not None and t.unanswered < self.config.missing_after:
            matched_ips.add(t.ip)
            entry["last_reply_s"] = round(now - t.last_reply, 1)
            if nodes:
                entry["node"] = nodes[0].short_name
                node_unis = sorted({u for n in nodes for u in n.outputs})
                entry["node_universes"] = node_unis
                absent = [u for u in e.universes if u not in node_unis]
                if absent and node_unis:
                    entry.update(state="mismatch", reason=f"node {nodes[0].short_name!r} does not output "
                                                          f"port-address(es) {', '.join(map(str, absent))}")
                    return
            entry["state"] = "ok"
        elif t.unanswered < self.config.missing_after:
            entry.update(state="checking", reason=f"{t.polls} poll(s) sent, waiting for an ArtPollReply")
        else:
            entry.update(state="missing", reason=f"no ArtPollReply from {t.ip} to the last {t.unanswered} polls "
                                                 f"({t.unanswered * self.config.interval_s:.0f} s)")


def format_controllers(doc: Any) -> list[str]:
    """Lines for ``run.py status``: each venue output's controller state, then unexpected ones."""
    if not isinstance(doc, dict) or not doc.get("expected"):
        return []
    lines = [f"controllers: {doc.get('state', '?')}"]
    for name, e in sorted(doc["expected"].items()):
        extra = e.get("reason") or (f"node {e['node']}" if e.get("node") else "")
        lines.append(f"  {name:<20} {str(e.get('state', '?')):<12} {e.get('protocol', '')} "
                     f"{e.get('ip') or e.get('host', '')}  {extra}".rstrip())
    for u in doc.get("unexpected") or ():
        lines.append(f"  unexpected: {u.get('protocol')} node {u.get('name')!r} at {u.get('ip')} "
                     f"(universes {', '.join(map(str, u.get('universes') or [])) or '-'})")
    for err in doc.get("errors") or ():
        lines.append(f"  discovery: {err}")
    for s in doc.get("sacn_sources") or ():
        shared = s.get("shares_our_universes")
        lines.append(f"  sACN source {s.get('name')!r} at {s.get('ip')}: universes "
                     f"{', '.join(map(str, s.get('universes') or [])) or '-'}"
                     + (f" (also ours: {', '.join(map(str, shared))})" if shared else ""))
    return lines


def start_discovery(venue, config: DiscoveryConfig, publish: Callable[[dict], None]) -> Discovery | None:
    """Start discovery for a live show's venue (None when ``[discovery] enable = false``)."""
    if not config.enable:
        return None
    return Discovery(expected_from_venue(venue), config, publish=publish).start()
