"""A strict OSC 1.0 parser and encoder, written for a venue-facing server.

Why not python-osc's parser and dispatcher for incoming packets: in 1.10 an
address is compiled to a regex and matched against every mapped address (a
short ``/*****Z`` stalls it for seconds), bundles are held until their
timetag, and invalid UTF-8 raises out of the parser.  Here every length is
checked before it is read, bundles are delivered at once whatever their
timetag, nesting depth and element count are bounded, strings must be strict
UTF-8, and every problem is an :class:`OscError` naming what was wrong.

Supported type tags: ``i f s b T F N I d h`` (int32, float32, string, blob,
true, false, nil, impulse, float64, int64).  All numbers are big-endian.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

__all__ = ["OscError", "OscMessage", "IMPULSE", "parse_packet", "encode_message", "encode_bundle",
           "message_size"]

_BUNDLE_TAG = b"#bundle\x00"
_I32 = struct.Struct(">i")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_I64 = struct.Struct(">q")
_F32_MAX = 3.4028234663852886e38


class OscError(ValueError):
    """A packet that is not valid OSC 1.0 (or exceeds our limits).

    ``kind`` is a short stable word for logging and counting (``truncated``,
    ``utf8``, ``typetag``, ``limit``, ``address``, ``bundle``).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Impulse:
    """The OSC ``I`` (impulse / infinitum) argument: a bang without a value."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "IMPULSE"


IMPULSE = _Impulse()


@dataclass(frozen=True)
class OscMessage:
    """One decoded message: an address, its type tags (without the comma) and its arguments."""

    address: str
    tags: str
    args: tuple


def _read_string(data: bytes, pos: int, what: str) -> tuple[str, int]:
    end = data.find(b"\x00", pos)
    if end < 0:
        raise OscError("truncated", f"{what} at byte {pos} has no NUL terminator")
    nxt = (end + 4) & ~3  # NUL included, padded to a multiple of 4
    if nxt > len(data):
        raise OscError("truncated", f"{what} at byte {pos} is missing its padding")
    try:
        return data[pos:end].decode("utf-8", errors="strict"), nxt
    except UnicodeDecodeError as exc:
        raise OscError("utf8", f"{what} at byte {pos} is not valid UTF-8 ({exc.reason})") from None


def _need(data: bytes, pos: int, n: int, what: str) -> None:
    if pos + n > len(data):
        raise OscError("truncated", f"{what} at byte {pos} needs {n} bytes, packet has {len(data) - pos}")


def _parse_message(data: bytes, max_args: int) -> OscMessage:
    if not data.startswith(b"/"):
        raise OscError("address", "message address must start with '/'")
    address, pos = _read_string(data, 0, "address")
    if pos >= len(data):
        raise OscError("typetag", f"{address}: no type tag string (OSC 1.0 requires one)")
    tags, pos = _read_string(data, pos, "type tag string")
    if not tags.startswith(","):
        raise OscError("typetag", f"{address}: type tag string must start with ','")
    tags = tags[1:]
    if len(tags) > max_args:
        raise OscError("limit", f"{address}: {len(tags)} arguments, at most {max_args} allowed")
    args = []
    for tag in tags:
        if tag == "i":
            _need(data, pos, 4, "int32")
            args.append(_I32.unpack_from(data, pos)[0])
            pos += 4
        elif tag == "f":
            _need(data, pos, 4, "float32")
            args.append(_F32.unpack_from(data, pos)[0])
            pos += 4
        elif tag == "s":
            s, pos = _read_string(data, pos, "string argument")
            args.append(s)
        elif tag == "b":
            _need(data, pos, 4, "blob size")
            size = _I32.unpack_from(data, pos)[0]
            pos += 4
            if size < 0:
                raise OscError("truncated", f"{address}: negative blob size {size}")
            padded = (size + 3) & ~3
            _need(data, pos, padded, "blob")
            args.append(bytes(data[pos:pos + size]))
            pos += padded
        elif tag == "T":
            args.append(True)
        elif tag == "F":
            args.append(False)
        elif tag == "N":
            args.append(None)
        elif tag == "I":
            args.append(IMPULSE)
        elif tag == "d":
            _need(data, pos, 8, "float64")
            args.append(_F64.unpack_from(data, pos)[0])
            pos += 8
        elif tag == "h":
            _need(data, pos, 8, "int64")
            args.append(_I64.unpack_from(data, pos)[0])
            pos += 8
        else:
            raise OscError("typetag", f"{address}: unsupported type tag {tag!r} (supported: i f s b T F N I d h)")
    if pos != len(data):
        raise OscError("truncated", f"{address}: {len(data) - pos} unexpected bytes after the arguments")
    return OscMessage(address, tags, tuple(args))


def parse_packet(data: bytes, *, max_depth: int = 4, max_elements: int = 64, max_args: int = 32) -> list[OscMessage]:
    """Decode one UDP datagram into its messages, in order.

    Bundles are flattened and delivered immediately (timetags are ignored on
    purpose); ``max_depth`` bounds bundle nesting, ``max_elements`` the total
    number of messages and bundles in the datagram, ``max_args`` the
    arguments of one message.  Raises :class:`OscError` on anything else.
    """
    data = bytes(data)
    if not data:
        raise OscError("truncated", "empty packet")
    if len(data) % 4:
        raise OscError("truncated", f"packet length {len(data)} is not a multiple of 4")
    out: list[OscMessage] = []
    budget = [max_elements]
    _parse_element(data, 0, max_depth, max_args, budget, out)
    return out


def _parse_element(data: bytes, depth: int, max_depth: int, max_args: int, budget: list[int],
                   out: list[OscMessage]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise OscError("limit", "too many messages/bundles in one packet")
    if data.startswith(b"#"):
        if not data.startswith(_BUNDLE_TAG):
            raise OscError("bundle", "element starts with '#' but is not '#bundle'")
        if depth >= max_depth:
            raise OscError("limit", f"bundles nested deeper than {max_depth}")
        if len(data) < 16:
            raise OscError("truncated", "bundle shorter than its header (16 bytes)")
        pos = 16  # '#bundle\0' + 8-byte timetag, deliberately not honoured
        while pos < len(data):
            _need(data, pos, 4, "bundle element size")
            size = _I32.unpack_from(data, pos)[0]
            pos += 4
            if size <= 0 or size % 4:
                raise OscError("bundle", f"bundle element size {size} is not a positive multiple of 4")
            _need(data, pos, size, "bundle element")
            _parse_element(data[pos:pos + size], depth + 1, max_depth, max_args, budget, out)
            pos += size
        return
    out.append(_parse_message(data, max_args))


# -- encoding ---------------------------------------------------------------

def _pad_string(s: str) -> bytes:
    raw = s.encode("utf-8")
    if b"\x00" in raw:
        raise ValueError(f"OSC strings cannot contain NUL: {s!r}")
    return raw + b"\x00" * (4 - len(raw) % 4)


def encode_message(address: str, *args: object) -> bytes:
    """Encode one message.  Arguments map to tags by Python type:

    bool -> T/F, int -> i (h beyond int32), float -> f, str -> s,
    bytes -> b, None -> N, :data:`IMPULSE` -> I.  Non-finite floats are
    encoded as they are (the encoder does not judge, the parser neither).
    """
    if not address.startswith("/"):
        raise ValueError(f"OSC address must start with '/': {address!r}")
    tags = [","]
    body = []
    for a in args:
        if a is True:
            tags.append("T")
        elif a is False:
            tags.append("F")
        elif a is None:
            tags.append("N")
        elif a is IMPULSE:
            tags.append("I")
        elif isinstance(a, int):
            if -2**31 <= a < 2**31:
                tags.append("i")
                body.append(_I32.pack(a))
            else:
                tags.append("h")
                body.append(_I64.pack(a))
        elif isinstance(a, float):
            tags.append("f")
            if math.isfinite(a) and abs(a) > _F32_MAX:  # struct refuses finite values beyond float32
                a = math.copysign(_F32_MAX, a)
            body.append(_F32.pack(a))
        elif isinstance(a, str):
            tags.append("s")
            body.append(_pad_string(a))
        elif isinstance(a, (bytes, bytearray, memoryview)):
            b = bytes(a)
            tags.append("b")
            body.append(_I32.pack(len(b)) + b + b"\x00" * (-len(b) % 4))
        else:
            raise TypeError(f"cannot encode {type(a).__name__} as an OSC argument: {a!r}")
    return _pad_string(address) + _pad_string("".join(tags)) + b"".join(body)


def encode_bundle(elements: list[bytes], timetag: int = 1) -> bytes:
    """Wrap already-encoded messages/bundles in a bundle (timetag 1 = immediately)."""
    parts = [_BUNDLE_TAG, struct.pack(">Q", timetag)]
    for e in elements:
        parts.append(_I32.pack(len(e)))
        parts.append(e)
    return b"".join(parts)


def message_size(address: str, *args: object) -> int:
    """Encoded size in bytes of ``encode_message(address, *args)``."""
    return len(encode_message(address, *args))
