"""OSC 1.0 output: one message per span to span.address; a blob (default), or floats 0..1, or ints 0..255."""

from __future__ import annotations

import numpy as np

from .base import OutputError, Span
from .udp import PacketBlock, UdpOutput

_FORBIDDEN = set(" #*,?[]{}")


def osc_string(s: str) -> bytes:
    """NUL-terminated, padded to a multiple of 4 bytes."""
    b = s.encode("ascii") + b"\x00"
    return b + b"\x00" * (-len(b) % 4)


def message_header(address: str, kind: str, count: int) -> bytes:
    """Address + type tags (+ the blob size) — everything before the argument bytes."""
    if kind == "blob":
        return osc_string(address) + osc_string(",b") + count.to_bytes(4, "big")
    tag = "f" if kind == "floats" else "i"
    return osc_string(address) + osc_string("," + tag * count)


def _lut(kind: str) -> np.ndarray:
    v = np.arange(256)
    table = (v / 255.0).astype(">f4") if kind == "floats" else v.astype(">i4")
    return table.view(np.uint32)  # 4 big-endian bytes per input byte, gathered in one step


class OscOutput(UdpOutput):
    """Each span -> one OSC message to host:port (default 9000) at span.address (a string).

    options.type: "blob" (the span's bytes as one blob, the default), "floats" (one float
    per byte, 0..1), "ints" (one int32 per byte, 0..255).
    """

    UNCHANGED_REPEATS = 1

    def _check_span(self, index: int, span: Span, where: str) -> None:
        a = span.address
        if (not isinstance(a, str) or not a.startswith("/") or not a.isascii() or not a.isprintable()
                or _FORBIDDEN & set(a)):
            raise OutputError(f"{where}: span {index}: OSC address must be a string like '/leds/1' "
                              f"(ASCII, no spaces or any of #*,?[]{{}}), got {a!r}")
        per = 1 if self.options["type"] == "blob" else 4
        if span.length * per > 60000:
            raise OutputError(f"{where}: span {index}: {span.length} values do not fit one UDP datagram")

    def _build(self):
        kind = str(self.options["type"])
        self._kind = kind
        scale = 1 if kind == "blob" else 4
        headers = [message_header(str(s.address), kind, s.length) for s in self.spans]
        data_len = [s.length * scale for s in self.spans]
        lengths = [len(h) + n + (-n % 4) for h, n in zip(headers, data_len)]
        self._table = None if kind == "blob" else _lut(kind)
        block = PacketBlock(headers, [s.offset * scale for s in self.spans], data_len, lengths)
        return block, np.arange(len(self.spans)), None

    def _patch(self, buffer: np.ndarray, sel: np.ndarray | None) -> None:
        src = buffer if self._table is None else self._table[buffer].view(np.uint8)
        self.block.fill(src, sel)
