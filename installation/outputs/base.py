"""The output contract: spans, configs, and the `Output` base class every protocol shares.

`Output.send()` is final (the LX habit): it only copies the frame into a one-slot
latest-value queue and returns.  A sender thread per output does everything that
can take time — fps cap, choosing which spans to transmit (changed data, repeats,
keep-alives), encoding, the transmit itself, backoff after failures, reconnecting.
Subclasses write only their encoding and transport (`_open`, `_encode`,
`_transmit`, `_goodbye`, `_shutdown`).
"""

from __future__ import annotations

import errno
import logging
import math
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

PROTOCOLS = ("artnet", "sacn", "ddp", "osc", "enttec")
DEFAULT_PORTS: Mapping[str, int | None] = MappingProxyType(
    {"artnet": 6454, "sacn": 5568, "ddp": 4048, "osc": 9000, "enttec": None}
)
#: The most frames per second a protocol may carry (DMX512 on a serial line: 44 Hz).
MAX_FPS: Mapping[str, float] = MappingProxyType(
    {"artnet": 1000.0, "sacn": 1000.0, "ddp": 1000.0, "osc": 1000.0, "enttec": 44.0}
)


class OutputError(ValueError):
    """A configuration problem; the message names where, the key and the problem."""


@dataclass(frozen=True)
class Span:
    """One run of bytes of the controller's buffer, sent to one address.

    address: Art-Net 15-bit port-address / sACN universe (1..63999) / DDP
    destination byte offset / OSC address string / 0 for Enttec.
    offset: start index into the buffer handed to `Output.send()`.
    length: number of bytes (DMX protocols: at most 512).
    """

    address: int | str
    offset: int
    length: int


# --- options schema -----------------------------------------------------------------------

@dataclass(frozen=True)
class OptionSpec:
    """One protocol option of a venue file: type, default, check, and a line of description."""

    key: str
    kind: type
    default: Any
    description: str
    check: Callable[[Any], str | None] | None = None  # returns a problem, or None when fine


def _range(lo: float, hi: float) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if isinstance(v, float) and not math.isfinite(v):
            return f"must be a finite number, got {v!r}"
        return None if lo <= v <= hi else f"must be in {lo}..{hi}, got {v!r}"
    return check


def _source_name(v: str) -> str | None:
    return None if len(v.encode("utf-8")) <= 63 else "must be at most 63 bytes of UTF-8"


def _cid(v: str) -> str | None:
    try:
        uuid.UUID(v)
    except ValueError:
        return f"must be a UUID string like '6ba7b810-9dad-11d1-80b4-00c04fd430c8', got {v!r}"
    return None


def _sync_universe(v: int) -> str | None:
    return None if 0 <= v <= 63999 else f"must be 0 (off) or a universe 1..63999, got {v!r}"


def _osc_type(v: str) -> str | None:
    return None if v in ("blob", "floats", "ints") else f"must be one of blob, floats, ints, got {v!r}"


def _ipv4_or_empty(v: str) -> str | None:
    if v == "":
        return None
    try:
        socket.inet_aton(v)
    except OSError:
        return f"must be an IPv4 address of a local interface, got {v!r}"
    return None


def _device(v: str) -> str | None:
    return None if v else "must name the serial device, e.g. /dev/ttyUSB0"


_COMMON_OPTIONS = (
    OptionSpec("keepalive", float, 1.0, "seconds between resends of unchanged data", _range(0.1, 4.0)),
)

OPTIONS: Mapping[str, tuple[OptionSpec, ...]] = MappingProxyType({
    "artnet": _COMMON_OPTIONS + (
        OptionSpec("sync", bool, False, "send ArtSync after each frame so nodes latch all universes together"),
    ),
    "sacn": _COMMON_OPTIONS + (
        OptionSpec("priority", int, 100, "E1.31 priority 0..200 (receivers merge by highest)", _range(0, 200)),
        OptionSpec("source_name", str, "Tapestry", "source name shown by receivers (<= 63 bytes UTF-8)", _source_name),
        OptionSpec("cid", str, None, "component id (UUID); default derived stably from the output name", _cid),
        OptionSpec("multicast", bool, False, "send to 239.255.{hi}.{lo} per universe instead of unicast to host"),
        OptionSpec("sync_universe", int, 0, "universe for E1.31 synchronization packets; 0 = off", _sync_universe),
        OptionSpec("interface", str, "", "local IPv4 address to send multicast from ('' = routing table)",
                   _ipv4_or_empty),
    ),
    "ddp": _COMMON_OPTIONS + (
        OptionSpec("dest_id", int, 1, "DDP destination id (1 = default output device)", _range(0, 255)),
        OptionSpec("data_type", int, 0x0B, "DDP data type byte (0x0B = RGB, 8 bits per channel)", _range(0, 255)),
    ),
    "osc": _COMMON_OPTIONS + (
        OptionSpec("type", str, "blob", "argument encoding: blob (one blob), floats (0..1 each), ints (0..255 each)",
                   _osc_type),
    ),
    "enttec": _COMMON_OPTIONS + (
        OptionSpec("device", str, None, "serial device of the Enttec DMX USB Pro, e.g. /dev/ttyUSB0", _device),
    ),
})


def default_cid(name: str) -> str:
    """A CID that stays the same for the same output name across restarts (receivers track sources by CID)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tapestry:output:{name}"))


def _typed(value: Any, kind: type, where: str, key: str) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise OutputError(f"{where}: '{key}' must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OutputError(f"{where}: '{key}' must be an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OutputError(f"{where}: '{key}' must be a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise OutputError(f"{where}: '{key}' must be a string, got {value!r}")
        return value
    raise AssertionError(kind)


def normalize_options(protocol: str, name: str, options: Mapping[str, Any] | None, where: str) -> Mapping[str, Any]:
    """Check a protocol's options and fill in defaults; raises OutputError naming `where` and the key."""
    specs = OPTIONS[protocol]
    options = dict(options or {})
    known = {s.key for s in specs}
    unknown = sorted(set(options) - known)
    if unknown:
        raise OutputError(f"{where}: unknown option(s) {', '.join(map(repr, unknown))} for protocol "
                          f"'{protocol}' (known: {', '.join(sorted(known))})")
    out: dict[str, Any] = {}
    for s in specs:
        key = f"options.{s.key}"
        if s.key in options:
            v = _typed(options[s.key], s.kind, where, key)
        elif s.key == "cid":
            v = default_cid(name)
        elif s.default is None:
            raise OutputError(f"{where}: '{key}' is required for protocol '{protocol}' ({s.description})")
        else:
            v = s.default
        problem = s.check(v) if s.check else None
        if problem:
            raise OutputError(f"{where}: '{key}' {problem}")
        out[s.key] = v
    return MappingProxyType(out)


@dataclass(frozen=True)
class OutputConfig:
    """One output of a venue: where it goes and how (see docs/outputs.md for every option)."""

    name: str
    protocol: str  # "artnet" | "sacn" | "ddp" | "osc" | "enttec"
    host: str = "127.0.0.1"
    port: int | None = None  # None: the protocol's default port
    fps: float = 44
    enabled: bool = True
    options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))


_TOP_KEYS = ("name", "protocol", "host", "port", "fps", "enabled", "options")


def parse_output_config(d: Mapping, where: str) -> OutputConfig:
    """Validate one venue-file output table into an OutputConfig.

    Every problem raises OutputError with `where`, the key and what is wrong.
    """
    if not isinstance(d, Mapping):
        raise OutputError(f"{where}: an output must be a table, got {type(d).__name__}")
    unknown = sorted(set(d) - set(_TOP_KEYS))
    if unknown:
        raise OutputError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(_TOP_KEYS)}; protocol settings go under 'options')")
    if "name" not in d:
        raise OutputError(f"{where}: 'name' is required")
    name = _typed(d["name"], str, where, "name")
    if not name.strip():
        raise OutputError(f"{where}: 'name' must not be empty")
    where = f"{where} (output '{name}')"
    if "protocol" not in d:
        raise OutputError(f"{where}: 'protocol' is required (one of {', '.join(PROTOCOLS)})")
    protocol = _typed(d["protocol"], str, where, "protocol")
    if protocol not in PROTOCOLS:
        raise OutputError(f"{where}: 'protocol' must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    host = _typed(d.get("host", "127.0.0.1"), str, where, "host")
    if protocol != "enttec" and not host.strip():
        raise OutputError(f"{where}: 'host' must not be empty")
    port = d.get("port")
    if port is not None:
        port = _typed(port, int, where, "port")
        if not 1 <= port <= 65535:
            raise OutputError(f"{where}: 'port' must be in 1..65535, got {port}")
    fps = _typed(d.get("fps", 44), float, where, "fps")
    if not (math.isfinite(fps) and 0 < fps <= MAX_FPS[protocol]):
        raise OutputError(f"{where}: 'fps' must be in (0, {MAX_FPS[protocol]:g}] for {protocol}, got {fps!r}")
    enabled = _typed(d.get("enabled", True), bool, where, "enabled")
    options = d.get("options", {})
    if not isinstance(options, Mapping):
        raise OutputError(f"{where}: 'options' must be a table, got {type(options).__name__}")
    opts = normalize_options(protocol, name, options, where)
    return OutputConfig(name=name, protocol=protocol, host=host, port=port, fps=fps, enabled=enabled, options=opts)


# --- errors: which ones mean "wait and reconnect" --------------------------------------------

#: errno values that mean the peer or the route is gone for now: back off, reopen, retry.
UNREACHABLE_ERRNOS = frozenset(
    getattr(errno, n) for n in ("ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH", "EHOSTDOWN", "ENETDOWN",
                                "EADDRNOTAVAIL", "ENODEV", "ENXIO", "ENOENT", "EIO", "ENOTCONN", "EPIPE",
                                "ECONNRESET")
    if hasattr(errno, n))
#: errno values that lose one frame and nothing more (kernel queue full): no backoff.
TRANSIENT_ERRNOS = frozenset(getattr(errno, n) for n in ("ENOBUFS", "EAGAIN", "EWOULDBLOCK", "EINTR")
                             if hasattr(errno, n))

BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 5.0
CLOSE_TIMEOUT_S = 1.5
RECOVERED_AFTER = 3  # consecutive good transmits before a backed-off output counts as recovered


class Output:
    """Base of every output.  `send()` is final; subclasses only encode and transmit.

    Subclass hooks (all run on the sender thread, never on the frame loop):
      _open()                       make the transport (resolve names, open sockets/ports); may raise OSError
      _encode(buf, span_mask)       write the selected spans of `buf` into packets; returns what _transmit needs
      _transmit(encoded) -> (packets, bytes)   put them on the wire; may raise OSError
      _goodbye(buf)                 optional protocol goodbye on close (sACN: Stream_Terminated x3)
      _shutdown()                   release the transport (idempotent)
    Class attributes: UNCHANGED_REPEATS — how many times unchanged data is sent before falling
    back to keep-alives (sACN: 3); HAS_GOODBYE — whether `_goodbye` sends anything.
    """

    UNCHANGED_REPEATS = 2
    HAS_GOODBYE = False

    def __init__(self, config: OutputConfig, spans: Sequence[Span]) -> None:
        where = f"output '{config.name}'"
        if config.protocol not in PROTOCOLS:
            raise OutputError(f"{where}: unknown protocol {config.protocol!r}")
        self.config = config
        self.name = config.name
        self.options = normalize_options(config.protocol, config.name, config.options, where)
        self.port = config.port if config.port is not None else DEFAULT_PORTS[config.protocol]
        fps = float(config.fps)
        if not (math.isfinite(fps) and fps > 0):
            raise OutputError(f"{where}: 'fps' must be a positive number, got {config.fps!r}")
        self.fps = min(fps, MAX_FPS[config.protocol])
        self.spans: tuple[Span, ...] = tuple(spans)
        if not self.spans:
            raise OutputError(f"{where}: no spans to send")
        for i, s in enumerate(self.spans):
            if not isinstance(s.offset, int) or not isinstance(s.length, int) or s.offset < 0 or s.length < 1:
                raise OutputError(f"{where}: span {i} needs offset >= 0 and length >= 1, got {s}")
            self._check_span(i, s, where)
        self._offsets = np.array([s.offset for s in self.spans], dtype=np.int64)
        self._lengths = np.array([s.length for s in self.spans], dtype=np.int64)
        self.min_buffer = int((self._offsets + self._lengths).max())
        # reduceat indices: [start0, end0, start1, end1, ...] over a diff padded by one element
        self._reduce_idx = np.stack([self._offsets, self._offsets + self._lengths], axis=1).ravel()
        self._keepalive = float(self.options["keepalive"])
        self._min_interval = 1.0 / self.fps

        n = len(self.spans)
        self._repeats = np.zeros(n, dtype=np.int64)
        self._last_tx = np.full(n, -math.inf)
        self._sent: np.ndarray | None = None  # the buffer as last transmitted (None: resend everything)
        self._last_frame: np.ndarray | None = None

        # slot + thread state
        self._cv = threading.Condition()
        self._pending: np.ndarray | None = None
        self._closing = False
        self._final: np.ndarray | None = None
        self._closed = False
        self._open_ok = False
        self._retry_at = 0.0
        self._backoff = BACKOFF_FIRST_S
        self._logged: set = set()
        self._next_due = -math.inf
        self._ok_streak = 0

        # status counters (written by the sender thread only)
        self._state = "ok" if config.enabled else "disabled"
        self._frames = 0
        self._packets = 0
        self._bytes = 0
        self._errors = 0
        self._dropped = 0
        self._last_error: str | None = None
        self._fps_ema = 0.0
        self._fps_prev = math.nan

        # started by the first send(), so subclasses finish building their packets first
        self._thread: threading.Thread | None = None

    # -- public API ------------------------------------------------------------------------

    def send(self, buffer: np.ndarray) -> None:
        """Hand a frame to the sender thread and return at once (never blocks on the network).

        `buffer`: 1-D uint8, channels in patch order.  A frame not yet sent when the next
        arrives is dropped (the newest wins).  Bad input is logged once and ignored.
        """
        if not self.config.enabled or self._closing:
            return
        if self._thread is None:
            self._start_thread()
        frame = self._as_frame(buffer)
        if frame is None:
            return
        if frame.size < self.min_buffer:
            self._log_once(("input", "short"), "output '%s': frame of %d bytes is shorter than the patch "
                           "needs (%d); frame dropped", self.name, frame.size, self.min_buffer)
            return
        with self._cv:
            if self._pending is not None:
                self._dropped += 1
            self._pending = frame
            self._cv.notify()

    def _as_frame(self, buffer) -> np.ndarray | None:
        """A private 1-D uint8 copy of `buffer`, or None (logged once) when it is not bytes."""
        if isinstance(buffer, (bytes, bytearray, memoryview)):
            return np.frombuffer(buffer, dtype=np.uint8).copy()
        arr = np.asarray(buffer)
        if arr.dtype != np.uint8:  # e.g. float colours 0..1 would silently truncate to 0/1
            self._log_once(("input", "dtype"), "output '%s': frames must be uint8, got %s; frame dropped",
                           self.name, arr.dtype)
            return None
        return np.array(arr, copy=True).reshape(-1)

    def close(self, final: np.ndarray | None = None) -> None:
        """Send `final` (e.g. a blackout) if given, then the protocol goodbye, and stop the thread.

        Idempotent; returns within about CLOSE_TIMEOUT_S even when the network or device is gone.
        """
        if self._closed:
            return
        self._closed = True
        if not self.config.enabled or (self._thread is None and final is None):
            self._closing = True  # later send() calls are ignored
            return
        fin = None if final is None else self._as_frame(final)
        if fin is not None and fin.size < self.min_buffer:
            log.warning("output '%s': final frame ignored: %d bytes, the patch needs %d",
                        self.name, fin.size, self.min_buffer)
            fin = None
        with self._cv:
            self._closing = True
            self._final = fin
            self._cv.notify()
        self._start_thread()
        self._thread.join(CLOSE_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("output '%s': sender did not stop within %.1f s (transmit stuck); leaving it",
                        self.name, CLOSE_TIMEOUT_S)
        self._state = "disabled"

    def _start_thread(self) -> None:
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"output-{self.name}", daemon=True)
                self._thread.start()

    def status(self) -> dict:
        """A snapshot: state ("ok"/"backoff"/"disabled"/"error"), frames, packets, bytes, errors,
        last_error, fps (frames per second actually transmitted), dropped (frames replaced in the slot)."""
        return {
            "name": self.name,
            "protocol": self.config.protocol,
            "state": self._state,
            "frames": self._frames,
            "packets": self._packets,
            "bytes": self._bytes,
            "errors": self._errors,
            "last_error": self._last_error,
            "fps": round(self._fps_ema, 2),
            "dropped": self._dropped,
        }

    def __enter__(self) -> "Output":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- subclass hooks ----------------------------------------------------------------------

    def _check_span(self, index: int, span: Span, where: str) -> None:
        """Validate one span's address/length for the protocol; raise OutputError."""

    def _open(self) -> None:
        raise NotImplementedError

    def _encode(self, buffer: np.ndarray, span_mask: np.ndarray | None) -> Any:
        raise NotImplementedError

    def _transmit(self, encoded: Any) -> tuple[int, int]:
        raise NotImplementedError

    def _goodbye(self, buffer: np.ndarray | None) -> None:
        """Protocol goodbye on close; default: nothing."""

    def _shutdown(self) -> None:
        raise NotImplementedError

    # -- sender thread -----------------------------------------------------------------------

    def _log_once(self, key, msg: str, *args) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning(msg, *args)

    def _next_keepalive(self) -> float:
        return float(self._last_tx.min()) + self._keepalive

    def _run(self) -> None:
        while True:
            keepalive = False
            with self._cv:
                while True:
                    if self._closing:
                        break
                    now = time.monotonic()
                    if now < self._retry_at:
                        timeout = self._retry_at - now
                    elif self._pending is not None:
                        due = self._next_due
                        if now >= due:
                            break
                        timeout = due - now
                    elif self._last_frame is not None:
                        due = max(self._next_keepalive(), self._next_due)
                        if now >= due:
                            keepalive = True
                            break
                        timeout = due - now
                    else:
                        timeout = None
                    self._cv.wait(timeout)
                if self._closing:
                    final = self._final
                    self._pending = None
                else:
                    frame = self._pending if not keepalive else self._last_frame
                    self._pending = None
            if self._closing:
                self._finish(final)
                return
            self._step(frame)

    def _select(self, frame: np.ndarray, now: float) -> np.ndarray:
        """Which spans to send: changed ones, unchanged ones not yet repeated enough, keep-alives due."""
        if self._sent is None or self._sent.size != frame.size:
            changed = np.ones(len(self.spans), dtype=bool)
        else:
            diff = np.empty(frame.size + 1, dtype=bool)
            np.not_equal(frame, self._sent, out=diff[:-1])
            diff[-1] = False
            changed = np.logical_or.reduceat(diff, self._reduce_idx)[::2]
        self._repeats[changed] = 0
        return changed | (self._repeats < self.UNCHANGED_REPEATS) | (now - self._last_tx >= self._keepalive)

    def _step(self, frame: np.ndarray) -> None:
        now = time.monotonic()
        self._last_frame = frame
        mask = self._select(frame, now)
        # fps cap on a schedule, not "interval since the last send": a frame that arrives a little
        # late (engine jitter) does not push every later one back, so nothing is dropped needlessly
        self._next_due = max(self._next_due, now - self._min_interval) + self._min_interval
        if not mask.any():
            return
        try:
            if not self._open_ok:
                self._open()
                self._open_ok = True
            encoded = self._encode(frame, mask)
            packets, nbytes = self._transmit(encoded)
        except Exception as exc:  # never let the sender thread die
            self._fail(exc, now)
            return
        self._repeats[mask] += 1
        np.minimum(self._repeats, 1 << 30, out=self._repeats)
        self._last_tx[mask] = now
        self._sent = frame
        self._frames += 1
        self._packets += packets
        self._bytes += nbytes
        dt = now - self._fps_prev
        self._fps_prev = now
        if dt > 0:  # NaN on the first frame: no rate yet
            self._fps_ema += (1.0 / dt - self._fps_ema) * min(1.0, dt * 2)
        self._ok_streak += 1
        # a UDP send "succeeds" until the ICMP error comes back: call it recovered only after a few
        if self._state != "ok" and self._ok_streak >= RECOVERED_AFTER:
            log.info("output '%s': transmitting again after %d error(s)", self.name, self._errors)
            self._state = "ok"
            self._logged = {k for k in self._logged if k and k[0] == "input"}
            self._backoff = BACKOFF_FIRST_S

    def _fail(self, exc: BaseException, now: float) -> None:
        self._errors += 1
        self._ok_streak = 0
        self._last_error = f"{type(exc).__name__}: {exc}"
        code = getattr(exc, "errno", None)
        if isinstance(exc, OSError) and code in TRANSIENT_ERRNOS:
            self._log_once(("transient", code), "output '%s': frame lost: %s (logged once)", self.name, exc)
            self._sent = None
            return
        # reconnect after a pause: close the transport, re-resolve and reopen on the next try
        if isinstance(exc, OSError):  # includes socket.gaierror and serial.SerialException
            self._state = "backoff"
            self._log_once(("os", type(exc).__name__, code),
                           "output '%s' (%s %s:%s): %s — backing off and retrying (logged once until it recovers)",
                           self.name, self.config.protocol, self.config.host, self.port, exc)
        else:
            self._state = "error"
            if ("bug", type(exc).__name__) not in self._logged:
                self._logged.add(("bug", type(exc).__name__))
                log.exception("output '%s': unexpected error (logged once)", self.name)
        self._close_transport()
        self._sent = None
        self._repeats[:] = 0
        self._last_tx[:] = -math.inf  # nothing known delivered: everything is due once the pause ends
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)

    def _close_transport(self) -> None:
        self._open_ok = False
        try:
            self._shutdown()
        except Exception:  # closing a broken transport must not raise
            pass

    def _finish(self, final: np.ndarray | None) -> None:
        """On close: the final frame (all spans), the goodbye, then release the transport."""
        try:
            if final is not None or (self.HAS_GOODBYE and self._last_frame is not None):
                if not self._open_ok:
                    self._open()
                    self._open_ok = True
            if final is not None:
                packets, nbytes = self._transmit(self._encode(final, np.ones(len(self.spans), dtype=bool)))
                self._packets += packets
                self._bytes += nbytes
                self._frames += 1
                self._last_frame = final
            if self._open_ok:
                self._goodbye(self._last_frame)
        except Exception as exc:
            self._errors += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            log.info("output '%s': final frame / goodbye not delivered: %s", self.name, exc)
        finally:
            self._close_transport()
