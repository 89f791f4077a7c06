"""The OSC server: live control of every declared parameter, over UDP.

One thread owns one UDP socket.  It receives a datagram, checks the sender
(allow-list, per-sender token bucket, size), parses it with the strict
parser in :mod:`installation.control.wire`, looks the address up in an exact
dict (no pattern matching), validates the arguments against the parameter's
immutable spec, and enqueues a command for the engine.  Nothing heavier
happens on this thread and nothing from the network runs on the engine's.

The same thread sends every outgoing datagram: replies the engine produced
(``reply`` callables only enqueue), change feedback (``publish_change`` only
records the latest value per path) and heartbeats (``heartbeat`` only
enqueues).  So the engine thread never touches a socket and never blocks.

See docs/osc.md for the address map and every reply.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import math
import queue
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable

from installation.control.commands import (
    ERROR_ADDRESS, ROOT, Command, GetStatus, GetValue, GoScene, ListPresets, LoadPreset, Reply, SavePreset,
    SaveVenue, SendSnapshot, SetParam, feedback_messages, status_args,
)
from installation.control.wire import IMPULSE, OscError, OscMessage, encode_bundle, encode_message, parse_packet
from installation.params import FLOAT, INT, ParamError, ParamSpec, ParamTree
from installation.scenes import SAFE_NAME

log = logging.getLogger(__name__)

PATTERN_CHARS = frozenset("*?[]{}")
MAX_REPLY_BYTES = 1400  # stay under a typical MTU so nothing is fragmented
MAX_FADE_S = 3600.0
MAX_TEXT = 400  # longest error/warning text sent back
ALIASES = {"master": "show/master", "blackout": "show/blackout"}


@dataclass(frozen=True)
class OscConfig:
    """Where and how the server listens.  Defaults are safe for a venue: loopback only."""

    host: str = "127.0.0.1"
    port: int = 9000
    allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    """Sender networks allowed to control the show (CIDR); everyone else is dropped unanswered."""
    trusted: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    """Sender networks whose source addresses are believed (they get replies of any size).  Any other sender
    gets back at most as many bytes as it sent until it proves its address (``/tapestry/verify``)."""
    verified_ttl_s: float = 3600.0
    """How long a verified sender's address is believed."""
    reply_port: int | None = None
    """Send replies to this port of the sender's IP instead of the port it sent from."""
    max_datagram: int = 4096
    rate: float = 500.0
    """Datagrams per second per sender (token bucket refill)."""
    burst: float = 200.0
    """Token bucket size: how many datagrams a sender may send at once."""
    max_depth: int = 4
    max_elements: int = 64
    max_args: int = 32
    subscription_ttl_s: float = 60.0
    max_subscribers: int = 16
    subscribers: tuple[str, ...] = ()
    """Permanent feedback destinations ``"host:port"`` (a TouchOSC tablet): they never expire."""
    feedback_hz: float = 30.0
    outgoing_max: int = 8192
    poll_s: float = 0.02
    """Receive timeout: how often the thread wakes to send queued replies and notice a stop."""

    def __post_init__(self) -> None:
        def bad(key: str, problem: str) -> ValueError:
            return ValueError(f"osc.{key}: {problem}")

        if not isinstance(self.host, str) or not self.host:
            raise bad("host", f"expected an IP address such as '127.0.0.1', got {self.host!r}")
        for key in ("port", "reply_port"):
            v = getattr(self, key)
            if v is None and key == "reply_port":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or not (0 if key == "port" else 1) <= v <= 65535:
                raise bad(key, f"{v!r} is not a UDP port")
        if isinstance(self.allow, str) or not isinstance(self.allow, (tuple, list)):
            raise bad("allow", f"expected a list of networks such as ['192.168.1.0/24'], got {self.allow!r}")
        for key in ("allow", "trusted"):
            nets = getattr(self, key)
            if isinstance(nets, str) or not isinstance(nets, (tuple, list)):
                raise bad(key, f"expected a list of networks such as ['192.168.1.0/24'], got {nets!r}")
            for net in nets:
                try:
                    ipaddress.ip_network(net, strict=False)
                except (TypeError, ValueError) as exc:
                    raise bad(key, f"{net!r} is not a network ({exc})") from None
        positive = {"verified_ttl_s": 1, "rate": 1e-3, "burst": 1, "max_datagram": 16, "max_depth": 1,
                    "max_elements": 1, "max_args": 1,
                    "subscription_ttl_s": 1, "max_subscribers": 0, "feedback_hz": 0.1, "outgoing_max": 16,
                    "poll_s": 1e-3}
        for key, lo in positive.items():
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < lo:
                raise bad(key, f"expected a number >= {lo:g}, got {v!r}")
        if isinstance(self.subscribers, str) or not isinstance(self.subscribers, (tuple, list)):
            raise bad("subscribers", f"expected a list of \"host:port\", got {self.subscribers!r}")
        for sub in self.subscribers:
            try:
                parse_host_port(sub)
            except ValueError as exc:
                raise bad("subscribers", str(exc)) from None
        if self.max_datagram > 65507:
            raise bad("max_datagram", f"{self.max_datagram} is more than a UDP datagram can hold (65507)")


class _TokenBuckets:
    """Per-sender token buckets, bounded in number (oldest sender forgotten first)."""

    def __init__(self, rate: float, burst: float, max_senders: int = 1024) -> None:
        self.rate, self.burst, self.max_senders = rate, burst, max_senders
        self._buckets: dict[str, list[float]] = {}

    def allow(self, key: str, now: float) -> bool:
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.max_senders:
                self._buckets.pop(next(iter(self._buckets)))
            b = self._buckets[key] = [self.burst, now]
        tokens = min(self.burst, b[0] + (now - b[1]) * self.rate)
        b[1] = now
        if tokens >= 1.0:
            b[0] = tokens - 1.0
            return True
        b[0] = tokens
        return False


class _Complaints:
    """Log a problem once per (sender, kind), then count it and report the count now and then."""

    def __init__(self, every_s: float = 60.0, max_keys: int = 512) -> None:
        self.every_s, self.max_keys = every_s, max_keys
        self._unreported: dict[tuple[str, str], int] = {}
        self._seen: set[tuple[str, str]] = set()
        self._next_report = 0.0

    def note(self, sender: str, kind: str, detail: str) -> None:
        key = (sender, kind)
        if key not in self._seen:
            if len(self._seen) >= self.max_keys:  # very many senders (spoofed?): one line per kind, then counts
                key = ("many senders", kind)
                sender = key[0]
            if key not in self._seen:
                self._seen.add(key)
                log.warning("OSC from %s: %s: %s (repeats are counted, not logged)", sender, kind, detail)
                return
        self._unreported[key] = self._unreported.get(key, 0) + 1

    def report(self, now: float) -> None:
        if now < self._next_report:
            return
        self._next_report = now + self.every_s
        for (sender, kind), n in self._unreported.items():
            log.warning("OSC from %s: %d more %s in the last %.0f s", sender, n, kind, self.every_s)
        self._unreported.clear()


_STAT_KEYS = ("datagrams", "messages", "accepted", "coalesced", "refused", "malformed", "not_allowed",
              "rate_limited", "held", "held_merged", "held_dropped", "oversize", "queue_full", "sent", "send_errors",
              "outgoing_dropped", "withheld")

MAX_HELD = 1024  # rate-limited datagrams kept (newest per sender and address) ...
MAX_HELD_PER_SENDER = 256  # ... and per sender
MAX_CREDIT = 64 * 1024  # reply bytes an unverified sender can have banked
MAX_VERIFIED = 256


class _DatagramReply:
    """The replies to one datagram.  Calling it sends this thread's errors and warnings, at most ``cap`` of
    them (a bundle of 64 bad messages gets 8 answers, so a spoofed sender cannot amplify); ``send`` is the
    uncapped reply handed to commands for the engine's answers."""

    __slots__ = ("send", "left")

    def __init__(self, send: Reply, cap: int = 8) -> None:
        self.send, self.left = send, cap

    def __call__(self, address: str, *args: object) -> None:
        if self.left > 0:
            self.left -= 1
            # messages may quote what was sent (an address, a string): keep every reply one small datagram
            self.send(address, *(a[:MAX_TEXT] + "..." if isinstance(a, str) and len(a) > MAX_TEXT else a
                                 for a in args))


@dataclass
class _Route:
    kind: str
    spec: ParamSpec | None = None


class OscServer:
    """Live control over OSC: validate on this thread, enqueue commands for the engine.

    ``commands`` is the engine's queue (give it a ``maxsize``); the engine
    drains it and calls ``cmd.apply(target)``.  The address map is built
    from ``tree``'s specs when the server is made, so declare every parameter
    first.  ``publish_change`` and ``heartbeat`` are for the engine thread and
    only record/enqueue.
    """

    def __init__(self, tree: ParamTree, commands: queue.Queue, config: OscConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or OscConfig()
        self._commands = commands
        self._clock = clock
        self._specs: dict[str, ParamSpec] = {s.path: s for s in tree.specs()}
        self._paths = sorted(self._specs)
        self._routes = self._build_routes()
        self._allow = [ipaddress.ip_network(n, strict=False) for n in self.config.allow]
        self._allowed_cache: dict[str, bool] = {}
        self._trusted = [ipaddress.ip_network(n, strict=False) for n in self.config.trusted]
        self._trusted_cache: dict[str, bool] = {}
        # rate-limited datagrams, the newest per (sender, address), applied as the limit allows (server thread)
        self._held: dict[tuple[str, bytes], tuple[bytes, tuple]] = {}
        self._held_per_ip: dict[str, int] = {}
        self._told_limited: dict[str, float] = {}
        # reflection guard: unverified senders get back at most the bytes they sent (server thread)
        self._secret = os.urandom(16)
        self._credit: dict[str, int] = {}
        self._verified: dict[str, float] = {}  # ip -> expiry
        self._pending_subs: dict[str, tuple[str, int]] = {}  # ip -> subscription waiting for /verify
        self._buckets = _TokenBuckets(self.config.rate, self.config.burst)
        self._complaints = _Complaints()
        self._stats = dict.fromkeys(_STAT_KEYS, 0)
        # coalescing of sets still waiting in the engine queue (shared with the engine thread)
        self._pending_lock = threading.Lock()
        self._pending: dict[str, SetParam] = {}
        # outgoing: replies and heartbeats (any thread puts), latest changes per path (engine thread writes)
        self._out: deque = deque()  # append/popleft are atomic: no lock, no exception when empty
        self._changes_lock = threading.Lock()
        self._changes: dict[str, object] = {}
        self._subscribers: dict[tuple[str, int], float] = {}  # (ip, port) -> expiry; receive thread only
        self._has_subscribers = False
        self._next_flush = 0.0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- lifecycle -------------------------------------------------------
    def start(self) -> "OscServer":
        """Bind the socket and start the server thread; returns self."""
        if self._thread is not None:
            return self
        host = self.config.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, self.config.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"OSC server cannot bind {host}:{self.config.port}: {exc.strerror or exc}") from None
        sock.setblocking(False)
        self._sock = sock
        for sub in self.config.subscribers:  # permanent ones: a snapshot now, feedback for ever
            dest = parse_host_port(sub)
            self._subscribers[dest] = math.inf
            self._verified[dest[0]] = math.inf  # the venue names them: believed
            self._has_subscribers = True
            self._submit(SendSnapshot(send_values=partial(self._send_values, dest)),
                         _DatagramReply(self.reply_to(dest)))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="osc-server", daemon=True)
        self._thread.start()
        log.info("OSC server listening on %s:%d", *sock.getsockname()[:2])
        return self

    def stop(self) -> None:
        """Stop the thread and close the socket (queued replies are sent first)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "OscServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound (port 0 in the config picks a free one)."""
        if self._sock is None:
            raise RuntimeError("OSC server is not started")
        return self._sock.getsockname()[:2]

    def stats(self) -> dict[str, int]:
        """Counters: datagrams, messages, accepted, refused, malformed, rate_limited, ..."""
        return dict(self._stats)

    # -- engine side: only enqueue ---------------------------------------
    def publish_change(self, path: str, value: object) -> None:
        """Tree listener (engine thread): remember the latest value; sent to subscribers ≤ feedback_hz."""
        if self._has_subscribers:
            with self._changes_lock:
                self._changes[path] = value

    def heartbeat(self, status: dict) -> None:
        """About once a second (engine thread): ``/tapestry/heartbeat FPS FRAME_MS INTENSITY`` to subscribers."""
        if self._has_subscribers:
            self._put_out(("heartbeat", status_args(status)))

    def reply_to(self, dest: tuple[str, int]) -> Reply:
        """A thread-safe ``reply(address, *args)`` that enqueues a datagram for ``dest``."""
        return partial(self._reply, dest)

    # -- the thread ------------------------------------------------------
    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        bufsize = self.config.max_datagram + 1  # one more byte tells us a datagram was too big
        handled = 0
        while not self._stop.is_set():
            # non-blocking reads while datagrams are waiting (one syscall each); wait in select when idle
            try:
                data, addr = sock.recvfrom(bufsize)
            except BlockingIOError:
                self._service()
                select.select([sock], [], [], self.config.poll_s)
                continue
            except OSError as exc:
                if self._stop.is_set():
                    break
                self._complaints.note("socket", "recv error", str(exc))
                self._stop.wait(0.01)  # a persistent socket error must not spin a core
                continue
            try:
                self.handle_datagram(data, addr)
            except Exception:  # a bug here must not kill live control
                log.exception("OSC server: unexpected error handling a datagram from %s", addr[0])
            handled += 1
            if handled % 32 == 0:  # keep replies and feedback flowing under a flood
                self._service()
        self._service()

    def handle_datagram(self, data: bytes, addr: tuple) -> None:
        """Everything done for one received datagram (the server thread's work; public for tests/bench)."""
        st = self._stats
        st["datagrams"] += 1
        ip = addr[0]
        if not self._is_allowed(ip):
            st["not_allowed"] += 1
            self._complaints.note(ip, "sender not in the allow-list", f"port {addr[1]}")
            return
        now = self._clock()
        if not self._is_believed(ip, now):
            self._credit[ip] = min(MAX_CREDIT, self._credit.get(ip, 0) + len(data))
            if len(self._credit) > 4096:
                self._credit.pop(next(iter(self._credit)))
        key = (ip, data[:min(len(data), 256)].split(b"\0", 1)[0])
        if not self._buckets.allow(ip, now):
            st["rate_limited"] += 1
            self._hold(key, data, addr, now)
            return
        self._held_discard(key)  # a value held back for this address is older than this one
        self._process(data, addr)

    def _hold(self, key: tuple[str, bytes], data: bytes, addr: tuple, now: float) -> None:
        """Keep a rate-limited datagram as the newest for its (sender, address); tell the sender once a second."""
        ip = key[0]
        held = self._held
        if key in held:
            held[key] = (data, addr)
            self._stats["held_merged"] += 1
        elif len(held) < MAX_HELD and self._held_per_ip.get(ip, 0) < MAX_HELD_PER_SENDER:
            held[key] = (data, addr)
            self._held_per_ip[ip] = self._held_per_ip.get(ip, 0) + 1
            self._stats["held"] += 1
        else:
            self._stats["held_dropped"] += 1
            self._complaints.note(ip, "rate limit", f"over {self.config.rate:g} datagrams/s and more than "
                                                   f"{MAX_HELD_PER_SENDER} addresses waiting: dropped")
        if now >= self._told_limited.get(ip, 0.0):
            if len(self._told_limited) > 1024:
                self._told_limited.clear()
            self._told_limited[ip] = now + 1.0
            self._complaints.note(ip, "rate limit", f"over {self.config.rate:g} datagrams/s (newest value per "
                                                   "address kept)")
            self._reply(self._reply_dest(addr), "/tapestry/warning",
                        f"rate limit: over {self.config.rate:g} datagrams/s; the newest value per address is kept "
                        "and applied as the limit allows")

    def _held_discard(self, key: tuple[str, bytes]) -> None:
        if self._held and self._held.pop(key, None) is not None:
            self._held_per_ip[key[0]] -= 1

    def _release_held(self, now: float) -> None:
        """Apply held datagrams, oldest address first, as each sender's token bucket allows (server thread)."""
        empty: set[str] = set()  # senders out of tokens in this pass: skip their other addresses cheaply
        for key in list(self._held)[:256]:
            ip = key[0]
            if ip in empty:
                continue
            if not self._buckets.allow(ip, now):
                empty.add(ip)
                continue
            data, addr = self._held.pop(key)
            self._held_per_ip[ip] -= 1
            if not self._held_per_ip[ip]:
                del self._held_per_ip[ip]
            try:
                self._process(data, addr)
            except Exception:
                log.exception("OSC server: unexpected error handling a datagram from %s", ip)

    def _process(self, data: bytes, addr: tuple) -> None:
        st = self._stats
        ip = addr[0]
        reply = _DatagramReply(self.reply_to(self._reply_dest(addr)))
        if len(data) > self.config.max_datagram:
            st["oversize"] += 1
            self._complaints.note(ip, "oversize datagram", f"more than {self.config.max_datagram} bytes")
            reply(ERROR_ADDRESS, f"datagram larger than {self.config.max_datagram} bytes refused")
            return
        try:
            messages = parse_packet(data, max_depth=self.config.max_depth, max_elements=self.config.max_elements,
                                    max_args=self.config.max_args)
        except OscError as exc:
            st["malformed"] += 1
            self._complaints.note(ip, f"malformed packet ({exc.kind})", str(exc))
            reply(ERROR_ADDRESS, f"malformed OSC packet: {exc}")
            return
        for msg in messages:
            st["messages"] += 1
            self._dispatch(msg, addr, reply)

    # -- dispatch --------------------------------------------------------
    def _build_routes(self) -> dict[str, _Route]:
        routes: dict[str, _Route] = {
            ROOT + "preset/load": _Route("preset_load"),
            ROOT + "preset/save": _Route("preset_save"),
            ROOT + "preset/save/force": _Route("preset_save_force"),
            ROOT + "preset/list": _Route("preset_list"),
            ROOT + "scene/go": _Route("scene_go"),
            ROOT + "get": _Route("get"),
            ROOT + "list": _Route("list"),
            ROOT + "subscribe": _Route("subscribe"),
            ROOT + "unsubscribe": _Route("unsubscribe"),
            ROOT + "status": _Route("status"),
            ROOT + "verify": _Route("verify"),
            ROOT + "venue/save": _Route("venue_save"),
        }
        for alias, path in ALIASES.items():
            if path in self._specs:
                routes[ROOT + alias] = _Route("set", self._specs[path])
                routes[ROOT + alias + "/norm"] = _Route("norm", self._specs[path])
        for path, spec in self._specs.items():
            for address, kind in ((ROOT + path, "set"), (ROOT + path + "/norm", "norm")):
                if address in routes:
                    raise ParamError(f"parameter {path} collides with the OSC address {address}")
                routes[address] = _Route(kind, spec)
        return routes

    def _dispatch(self, msg: OscMessage, addr: tuple, reply: _DatagramReply) -> None:
        route = self._routes.get(msg.address)
        if route is None:
            self._stats["refused"] += 1
            if not PATTERN_CHARS.isdisjoint(msg.address):
                reply(ERROR_ADDRESS, f"{msg.address}: pattern addresses (* ? [ ] {{ }}) are not supported; "
                                     "send the exact address")
            else:
                reply(ERROR_ADDRESS, f"{msg.address}: unknown address (send {ROOT}list for the parameters)")
            return
        try:
            getattr(self, "_on_" + route.kind)(msg, route.spec, addr, reply)
        except ParamError as exc:
            self._stats["refused"] += 1
            reply(ERROR_ADDRESS, str(exc))

    def _on_set(self, msg: OscMessage, spec: ParamSpec, addr: tuple, reply: _DatagramReply) -> None:
        value = _one_arg(msg)
        if value is None or value is IMPULSE or isinstance(value, bytes):
            raise ParamError(f"{msg.address}: expected {spec.kind} {spec.range_text()}, got type '{msg.tags}'")
        coerced = spec.coerce(value, clamp=True)
        if spec.kind in (FLOAT, INT) and not isinstance(value, str) and not spec.lo <= float(value) <= spec.hi:
            reply("/tapestry/warning", f"{spec.path}: {_num(value)} is outside {spec.range_text()}, "
                                       f"clamped to {_num(coerced)}")
        self._submit_set(spec.path, coerced, reply)

    def _on_norm(self, msg: OscMessage, spec: ParamSpec, addr: tuple, reply: _DatagramReply) -> None:
        x = _one_arg(msg)
        if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and not 0 <= x <= 1:
            reply("/tapestry/warning", f"{spec.path}/norm: {x:g} is outside 0 .. 1, clamped")
        self._submit_set(spec.path, spec.denormalize(x), reply)

    def _on_preset_load(self, msg: OscMessage, spec: None, addr: tuple, reply: _DatagramReply) -> None:
        if not 1 <= len(msg.args) <= 2:
            raise ParamError(f"{msg.address}: expected NAME [FADE_S], got {len(msg.args)} arguments")
        name = _safe_name(msg.address, msg.args[0])
        fade = None
        if len(msg.args) == 2:
            fade = msg.args[1]
            if isinstance(fade, bool) or not isinstance(fade, (int, float)) or not math.isfinite(fade) or fade < 0:
                raise ParamError(f"{msg.address}: FADE_S must be a number of seconds >= 0, got {fade!r}")
            fade = min(float(fade), MAX_FADE_S)
        self._submit(LoadPreset(name=name, fade_s=fade, reply=reply.send), reply)

    def _on_preset_save(self, msg: OscMessage, spec: None, addr: tuple, reply: _DatagramReply,
                        force: bool = False) -> None:
        self._submit(SavePreset(name=_safe_name(msg.address, _one_arg(msg)), force=force, reply=reply.send), reply)

    def _on_preset_save_force(self, msg: OscMessage, spec: None, addr: tuple, reply: _DatagramReply) -> None:
        self._on_preset_save(msg, spec, addr, reply, force=True)

    def _on_venue_save(self, msg: OscMessage, spec: None, addr: tuple, reply: _DatagramReply) -> None:
        if msg.args:
            raise ParamError(f"{msg.address}: expected no arguments, got {len(msg.args)}")
        self._submit(SaveVenue(reply=reply.send), reply)

    def _on_preset_list(self, msg: OscMessage, spec: None, addr: tuple, reply: _DatagramReply) -> None:
        dest = self._reply_dest(addr)
        self._submit(ListPresets(reply=reply.send, send_list=partial(self._reply_list, dest)), reply)

    def _on_scene_go(self, msg: OscMessage, spec: None, addr: tuple, reply: _DatagramReply) -> None:
        self._submit(GoScene(name=_safe_name(msg.address, _one_arg(msg)), reply=reply.send), reply)

    def _on_get(self, msg: OscMessage, spec: None, addr: tuple, reply: _DatagramReply) -> None:
        self._submit(GetValue(path=self._path_arg(msg), reply=reply.send), reply)

    def _on_status(self, msg: OscMessage, spec: None, addr: tuple, reply: _DatagramReply) -> None:
        self._submit(GetStatus(reply=reply.send), reply)

    def _on_list(self, msg: OscMessage, spec: None, addr: tuple, reply: _DatagramReply) -> None:
        self._reply_list(self._reply_dest(addr), "/tapestry/paths", self._paths)

    def _on_subscribe(self, msg: OscMessage, spec: None, addr: tuple, reply: _DatagramReply) -> None:
        port = _port_arg(msg) if msg.args else self._reply_dest(addr)[1]
        dest = (addr[0], port)
        if not self._is_believed(addr[0], self._clock()):
            # the source address may be forged: send a token there first; /tapestry/verify TOKEN proves it
            if len(self._pending_subs) >= 1024:
                self._pending_subs.pop(next(iter(self._pending_subs)))
            self._pending_subs[addr[0]] = dest
            self._reply(dest, "/tapestry/token", self._token(addr[0]))
            return
        self._subscribe(dest)

    def _on_verify(self, msg: OscMessage, spec: None, addr: tuple, reply: _DatagramReply) -> None:
        token = _one_arg(msg)
        ip = addr[0]
        if isinstance(token, bool) or not isinstance(token, int) or not hmac.compare_digest(
                token.to_bytes(8, "big", signed=True), self._token(ip).to_bytes(8, "big", signed=True)):
            raise ParamError(f"{msg.address}: wrong token (send /tapestry/subscribe to get one)")
        if len(self._verified) >= MAX_VERIFIED:
            now = self._clock()
            for k, exp in list(self._verified.items()):
                if exp < now:
                    del self._verified[k]
            if len(self._verified) >= MAX_VERIFIED:
                raise ParamError(f"{msg.address}: already {MAX_VERIFIED} verified clients (the most allowed)")
        self._verified[ip] = self._clock() + self.config.verified_ttl_s
        self._credit.pop(ip, None)
        dest = self._pending_subs.pop(ip, None)
        self._reply(dest or self._reply_dest(addr), "/tapestry/verified", float(self.config.verified_ttl_s))
        if dest is not None:
            self._subscribe(dest)

    def _token(self, ip: str) -> int:
        digest = hmac.new(self._secret, ip.encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF

    def _subscribe(self, dest: tuple[str, int]) -> None:
        port = dest[1]
        subs = self._subscribers
        if dest not in subs and len(subs) >= self.config.max_subscribers:
            raise ParamError(f"{ROOT}subscribe: already {len(subs)} subscribers (the most allowed)")
        new = dest not in subs
        if subs.get(dest) != math.inf:  # a permanent subscriber from the config stays permanent
            subs[dest] = self._clock() + self.config.subscription_ttl_s
        self._has_subscribers = True
        sub_reply = self.reply_to(dest)
        sub_reply("/tapestry/subscribed", port, float(self.config.subscription_ttl_s))
        if new:
            self._submit(SendSnapshot(reply=sub_reply, send_values=partial(self._send_values, dest)),
                         _DatagramReply(sub_reply))

    def _on_unsubscribe(self, msg: OscMessage, spec: None, addr: tuple, reply: _DatagramReply) -> None:
        if msg.args:
            gone = [(addr[0], _port_arg(msg))]
        else:
            gone = [d for d in self._subscribers if d[0] == addr[0]]
        for dest in gone:
            if self._subscribers.pop(dest, None) is not None:
                self.reply_to(dest)("/tapestry/unsubscribed", dest[1])
        self._has_subscribers = bool(self._subscribers)

    def _path_arg(self, msg: OscMessage) -> str:
        path = _one_arg(msg)
        if not isinstance(path, str):
            raise ParamError(f"{msg.address}: expected a parameter path (string), got {path!r}")
        for prefix in (ROOT, "/"):
            if path.startswith(prefix):
                path = path[len(prefix):]
                break
        path = ALIASES.get(path, path)
        if path not in self._specs:
            raise ParamError(f"{msg.address}: unknown parameter {path!r}")
        return path

    # -- enqueueing to the engine ----------------------------------------
    def _submit_set(self, path: str, value: object, reply: _DatagramReply) -> None:
        with self._pending_lock:
            cmd = self._pending.get(path)
            if cmd is not None:  # still waiting in the engine queue: update it in place
                cmd.value, cmd.reply = value, reply.send
                self._stats["coalesced"] += 1
                return
            cmd = SetParam(path=path, value=value, reply=reply.send, lock=self._pending_lock, on_taken=self._taken)
            try:
                self._commands.put_nowait(cmd)
            except queue.Full:
                self._queue_full(reply)
                return
            self._pending[path] = cmd
            self._stats["accepted"] += 1

    def _taken(self, cmd: SetParam) -> None:  # engine thread, under _pending_lock
        if self._pending.get(cmd.path) is cmd:
            del self._pending[cmd.path]

    def _submit(self, cmd: Command, reply: _DatagramReply) -> None:
        try:
            self._commands.put_nowait(cmd)
        except queue.Full:
            self._queue_full(reply)
            return
        self._stats["accepted"] += 1

    def _queue_full(self, reply: _DatagramReply) -> None:
        self._stats["queue_full"] += 1
        self._complaints.note("engine", "command queue full", "the engine is not draining its queue")
        reply(ERROR_ADDRESS, "busy: the engine's command queue is full, try again")

    # -- outgoing --------------------------------------------------------
    def _reply_dest(self, addr: tuple) -> tuple[str, int]:
        return (addr[0], self.config.reply_port or addr[1])

    def _reply(self, dest: tuple[str, int], address: str, *args: object) -> None:
        self._put_out(("msg", dest, address, args))

    def _reply_list(self, dest: tuple[str, int], address: str, items: list[str]) -> None:
        self._put_out(("list", dest, address, list(items)))

    def _send_values(self, dest: tuple[str, int], values: dict[str, object]) -> None:
        self._put_out(("values", dest, values))

    def _put_out(self, item: tuple) -> None:
        if len(self._out) >= self.config.outgoing_max:
            self._stats["outgoing_dropped"] += 1
            return
        self._out.append(item)

    def _service(self) -> None:
        """Send what is queued, flush change feedback, expire subscriptions (server thread)."""
        out = self._out
        for _ in range(256):  # bounded so that receiving continues under a reply storm
            if not out:
                break
            item = out.popleft()
            kind = item[0]
            if kind == "msg":
                self._send(item[1], item[2], item[3])
            elif kind == "list":
                for args in split_args(item[2], item[3]):
                    self._send(item[1], item[2], tuple(args))
                self._send(item[1], item[2] + "/end", (len(item[3]),))
            elif kind == "values":
                for d in pack_bundles(self._feedback_packets(item[2])):
                    self._send_raw(item[1], d)
            elif kind == "heartbeat":
                for dest in list(self._subscribers):
                    self._send(dest, "/tapestry/heartbeat", item[1])
        now = self._clock()
        if self._held:
            self._release_held(now)
        if now >= self._next_flush:
            self._next_flush = now + 1.0 / self.config.feedback_hz
            self._expire(now)
            self._flush_changes()
            self._complaints.report(now)

    def _expire(self, now: float) -> None:
        for dest, expiry in list(self._subscribers.items()):
            if expiry < now:
                del self._subscribers[dest]
                log.info("OSC subscription of %s:%d expired", *dest)
                self._send(dest, "/tapestry/unsubscribed", (dest[1],))
        self._has_subscribers = bool(self._subscribers)

    def _flush_changes(self) -> None:
        with self._changes_lock:
            changes, self._changes = self._changes, {}
        if not changes or not self._subscribers:
            return
        datagrams = pack_bundles(self._feedback_packets(changes))
        for dest in list(self._subscribers):
            for d in datagrams:
                self._send_raw(dest, d)

    def _feedback_packets(self, values: dict[str, object]) -> list[bytes]:
        packets = []
        for path, value in values.items():
            spec = self._specs.get(path)
            if spec is None:
                continue
            for address, v in feedback_messages(spec, value):
                try:
                    packets.append(encode_message(address, v))
                except (TypeError, ValueError):
                    continue
        return packets

    def _send(self, dest: tuple[str, int], address: str, args: tuple) -> None:
        try:
            data = encode_message(address, *args)
        except (TypeError, ValueError) as exc:
            log.error("OSC reply %s %r cannot be encoded: %s", address, args, exc)
            return
        self._send_raw(dest, data)

    def _send_raw(self, dest: tuple[str, int], data: bytes) -> None:
        sock = self._sock
        if sock is None:
            return
        ip = dest[0]
        if not self._is_believed(ip, self._clock()):
            credit = self._credit.get(ip, 0)
            if credit < len(data):  # never more bytes back than a possibly forged sender sent
                self._stats["withheld"] += 1
                self._complaints.note(ip, "reply withheld", "an unverified sender gets back at most the bytes "
                                                            "it sent (see /tapestry/verify in docs/osc.md)")
                return
            self._credit[ip] = credit - len(data)
        try:
            sock.sendto(data, dest)
            self._stats["sent"] += 1
        except OSError as exc:
            self._stats["send_errors"] += 1
            self._complaints.note(dest[0], "send error", str(exc))

    def _is_believed(self, ip: str, now: float) -> bool:
        """True if replies of any size may go to ``ip``: a trusted network, or verified and not expired."""
        ok = self._trusted_cache.get(ip)
        if ok is None:
            ok = _in_networks(ip, self._trusted)
            if len(self._trusted_cache) > 4096:
                self._trusted_cache.clear()
            self._trusted_cache[ip] = ok
        if ok:
            return True
        exp = self._verified.get(ip)
        return exp is not None and exp >= now

    def _is_allowed(self, ip: str) -> bool:
        ok = self._allowed_cache.get(ip)
        if ok is None:
            try:
                a = ipaddress.ip_address(ip.split("%", 1)[0])
                if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
                    a = a.ipv4_mapped
                ok = any(a in net for net in self._allow)
            except ValueError:
                ok = False
            if len(self._allowed_cache) > 4096:
                self._allowed_cache.clear()
            self._allowed_cache[ip] = ok
        return ok


def _in_networks(ip: str, nets: list) -> bool:
    try:
        a = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return any(a.version == n.version and a in n for n in nets)


def _num(x: int | float) -> str:
    """A number as a reply quotes it: an int in full (8388608, not 8.38861e+06), a float short."""
    return str(x) if isinstance(x, int) else f"{x:g}"


def _one_arg(msg: OscMessage) -> object:
    if len(msg.args) != 1:
        raise ParamError(f"{msg.address}: expected 1 argument, got {len(msg.args)}")
    return msg.args[0]


def _safe_name(address: str, name: object) -> str:
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise ParamError(f"{address}: name must be 1-64 characters of A-Z a-z 0-9 _ -, got {name!r}")
    return name


def _port_arg(msg: OscMessage) -> int:
    port = _one_arg(msg)
    if isinstance(port, float) and port.is_integer():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ParamError(f"{msg.address}: expected a UDP port 1..65535, got {port!r}")
    return port


def parse_host_port(text: object) -> tuple[str, int]:
    """``"192.168.1.20:9001"`` or ``"[::1]:9001"`` -> (ip, port); ValueError with the reason."""
    if not isinstance(text, str) or ":" not in text:
        raise ValueError(f"expected \"host:port\", got {text!r}")
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        ip = str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: {port!r} is not a UDP port")
    return ip, int(port)


def split_args(address: str, items: list[str], limit: int = MAX_REPLY_BYTES) -> list[list[str]]:
    """Split string arguments into groups whose messages encode below ``limit`` bytes (at least one group)."""
    base = len(encode_message(address)) + 4  # room for the type tag string growing
    groups: list[list[str]] = [[]]
    size = base
    for item in items:
        cost = 1 + len(item.encode("utf-8")) + 4  # tag + padded string (upper bound)
        if groups[-1] and size + cost >= limit:
            groups.append([])
            size = base
        groups[-1].append(item)
        size += cost
    return groups


def pack_bundles(packets: Iterable[bytes], limit: int = MAX_REPLY_BYTES) -> list[bytes]:
    """Group encoded messages into bundles below ``limit`` bytes (a lone message is sent bare)."""
    out: list[bytes] = []
    group: list[bytes] = []
    size = 16
    for p in packets:
        if group and size + 4 + len(p) >= limit:
            out.append(group[0] if len(group) == 1 else encode_bundle(group))
            group, size = [], 16
        group.append(p)
        size += 4 + len(p)
    if group:
        out.append(group[0] if len(group) == 1 else encode_bundle(group))
    return out


def _osc_schema():
    from ..schema import Key, Section
    d = OscConfig()
    return Section("osc", "OSC control (docs/osc.md); --osc-port on the command line wins.", keys=(
        Key("host", str, d.host, "listen address (127.0.0.1: this machine only; 0.0.0.0: the network)"),
        Key("port", int, d.port, "UDP port", lo=1, hi=65535),
        Key("allow", list, list(d.allow), "sender networks allowed to control the show (CIDR)", item=str),
        Key("trusted", list, list(d.trusted), "sender networks whose source addresses are believed (replies of "
            "any size); others get back at most the bytes they sent until /tapestry/verify", item=str),
        Key("verified_ttl_s", float, d.verified_ttl_s, "how long a verified sender's address is believed",
            unit="s", lo=1),
        Key("reply_port", int, None, "send replies to this port of the sender's IP", lo=1, hi=65535),
        Key("max_datagram", int, d.max_datagram, "largest datagram accepted", unit="bytes", lo=1),
        Key("rate", float, d.rate, "datagrams per second per sender", unit="1/s", lo=0, lo_open=True),
        Key("burst", float, d.burst, "datagrams a sender may send at once", lo=1),
        Key("max_depth", int, d.max_depth, "deepest bundle nesting", lo=1),
        Key("max_elements", int, d.max_elements, "most elements in a bundle", lo=1),
        Key("max_args", int, d.max_args, "most arguments in a message", lo=1),
        Key("subscription_ttl_s", float, d.subscription_ttl_s, "a feedback subscription lasts this long",
            unit="s", lo=0, lo_open=True),
        Key("max_subscribers", int, d.max_subscribers, "most feedback subscribers", lo=0),
        Key("subscribers", list, [], "permanent feedback destinations \"host:port\"", item=str),
        Key("feedback_hz", float, d.feedback_hz, "feedback rate", unit="Hz", lo=0, lo_open=True),
        Key("outgoing_max", int, d.outgoing_max, "largest outgoing queue", lo=1),
        Key("poll_s", float, d.poll_s, "how often the thread wakes", unit="s", lo=0, lo_open=True),
    ), build=lambda raw, where: OscConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items()}))


OSC_SCHEMA = _osc_schema()
