"""DDP (Distributed Display Protocol; WLED and others): 1440 data bytes per packet,
sequence 1..15 per frame, push flag on the frame's last packet."""

from __future__ import annotations

import numpy as np

from .base import OutputError, Span
from .udp import PacketBlock, UdpOutput

MAX_DATA = 1440  # 480 RGB pixels (also a whole number of RGBW pixels)
HEADER_LEN = 10
FLAG_VER1 = 0x40
FLAG_PUSH = 0x01


def ddp_header(offset: int, length: int, sequence: int = 0, push: bool = False, data_type: int = 0x0B,
               dest_id: int = 1) -> bytes:
    """A DDP header: flags, sequence, data type, destination id, 32-bit BE offset, 16-bit BE length."""
    return (bytes([FLAG_VER1 | (FLAG_PUSH if push else 0), sequence & 0x0F, data_type, dest_id])
            + offset.to_bytes(4, "big") + length.to_bytes(2, "big"))


class DdpOutput(UdpOutput):
    """DDP to host:port (4048).  span.address = destination byte offset; long spans are split
    into packets of at most 1440 bytes.  options: dest_id, data_type, keepalive."""

    def _check_span(self, index: int, span: Span, where: str) -> None:
        a = span.address
        if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a <= 0xFFFFFFFF - span.length:
            raise OutputError(f"{where}: span {index}: DDP destination offset must be a byte offset >= 0, got {a!r}")

    def _build(self):
        dtype, dest = int(self.options["data_type"]), int(self.options["dest_id"])
        headers, src_off, src_len, pkt_span = [], [], [], []
        for i, s in enumerate(self.spans):
            for k in range(0, s.length, MAX_DATA):
                n = min(MAX_DATA, s.length - k)
                headers.append(ddp_header(int(s.address) + k, n, data_type=dtype, dest_id=dest))
                src_off.append(s.offset + k)
                src_len.append(n)
                pkt_span.append(i)
        self._frame_seq = 0
        block = PacketBlock(headers, src_off, src_len, [HEADER_LEN + n for n in src_len])
        return block, pkt_span, None

    def _patch(self, buffer: np.ndarray, sel: np.ndarray | None) -> None:
        self._frame_seq = self._frame_seq % 15 + 1
        p = self.block.packets
        idx = slice(None) if sel is None else sel
        p[idx, 0] = FLAG_VER1
        p[idx, 1] = self._frame_seq
        last = self.block.count - 1 if sel is None else int(sel[-1])
        p[last, 0] = FLAG_VER1 | FLAG_PUSH
        self.block.fill(buffer, sel)
