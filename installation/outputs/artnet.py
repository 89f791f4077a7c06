"""Art-Net 4 ArtDmx (unicast, sequence 1..255) with optional ArtSync after each frame."""

from __future__ import annotations

import numpy as np

from .base import OutputError, Span
from .udp import PacketBlock, UdpOutput

ARTNET_ID = b"Art-Net\x00"
OP_DMX = 0x5000
OP_SYNC = 0x5200
PROT_VER = 14
HEADER_LEN = 18
SEQ_BYTE = 12
#: ArtSync: ID, OpCode 0x5200 little-endian, ProtVer 14 (hi first), Aux1, Aux2.
ARTSYNC = ARTNET_ID + OP_SYNC.to_bytes(2, "little") + PROT_VER.to_bytes(2, "big") + b"\x00\x00"


def artdmx_header(port_address: int, length: int, sequence: int = 0, physical: int = 0) -> bytes:
    """The 18 bytes before an ArtDmx packet's data (`length` must already be even, 2..512)."""
    return (ARTNET_ID + OP_DMX.to_bytes(2, "little") + PROT_VER.to_bytes(2, "big")
            + bytes([sequence, physical, port_address & 0xFF, (port_address >> 8) & 0x7F])
            + length.to_bytes(2, "big"))


class ArtNetOutput(UdpOutput):
    """ArtDmx per span (span.address = 15-bit port-address), unicast to host:port (6454).

    Odd lengths are padded with one zero slot (the spec wants even lengths, 2..512).
    options: sync (ArtSync after each frame), keepalive.
    """

    def _check_span(self, index: int, span: Span, where: str) -> None:
        a = span.address
        if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a <= 0x7FFF:
            raise OutputError(f"{where}: span {index}: Art-Net port-address must be 0..32767, got {a!r}")
        if span.length > 512:
            raise OutputError(f"{where}: span {index}: an ArtDmx universe holds at most 512 slots, got {span.length}")
        if a in {s.address for s in self.spans[:index]}:
            raise OutputError(f"{where}: span {index}: port-address {a} is patched twice")

    def _build(self):
        headers, lengths = [], []
        for s in self.spans:
            n = max(2, s.length + (s.length & 1))
            headers.append(artdmx_header(int(s.address), n))
            lengths.append(HEADER_LEN + n)
        self._seq = np.zeros(len(self.spans), dtype=np.int64)
        self._sync = bool(self.options["sync"])
        block = PacketBlock(headers, [s.offset for s in self.spans], [s.length for s in self.spans], lengths)
        return block, np.arange(len(self.spans)), None

    def _patch(self, buffer: np.ndarray, sel: np.ndarray | None) -> None:
        idx = slice(None) if sel is None else sel
        self._seq[idx] = self._seq[idx] % 255 + 1  # 1..255, 0 would mean "sequence off"
        self.block.packets[idx, SEQ_BYTE] = self._seq[idx]
        self.block.fill(buffer, sel)

    def _transmit(self, sel):
        packets, nbytes = self._transport.send(sel)
        if self._sync:
            nbytes += self._transport.send_one(ARTSYNC)
            packets += 1
        return packets, nbytes
