"""sACN / E1.31-2018: unicast or multicast, priority, source name, CID, per-universe sequence,
universe synchronization, and three Stream_Terminated packets on close."""

from __future__ import annotations

import uuid

import numpy as np

from .base import OutputError, Span
from .udp import PacketBlock, UdpOutput

ACN_ID = b"ASC-E1.17\x00\x00\x00"
VECTOR_ROOT_E131_DATA = 0x00000004
VECTOR_ROOT_E131_EXTENDED = 0x00000008
VECTOR_E131_DATA_PACKET = 0x00000002
VECTOR_E131_EXTENDED_SYNCHRONIZATION = 0x00000001
VECTOR_DMP_SET_PROPERTY = 0x02
OPT_PREVIEW = 0x80
OPT_STREAM_TERMINATED = 0x40
OPT_FORCE_SYNC = 0x20
HEADER_LEN = 126  # root 38 + framing 77 + DMP 10 + start code 1
SEQ_BYTE = 111
OPTIONS_BYTE = 112


def _fl(length: int) -> bytes:
    """A PDU's flags & length: 0x7 in the top nibble, 12-bit length."""
    return (0x7000 | length).to_bytes(2, "big")


def _root(cid: bytes, vector: int, total: int) -> bytes:
    return (b"\x00\x10\x00\x00" + ACN_ID + _fl(total - 16) + vector.to_bytes(4, "big") + cid)


def multicast_group(universe: int) -> str:
    """239.255.{hi}.{lo} for a universe."""
    return f"239.255.{universe >> 8}.{universe & 0xFF}"


def data_header(cid: bytes, source_name: str, priority: int, sync_address: int, universe: int, slots: int,
                sequence: int = 0, options: int = 0) -> bytes:
    """The 126 bytes (through the start code) before an E1.31 data packet's `slots` values."""
    total = HEADER_LEN + slots
    name = source_name.encode("utf-8")[:63].ljust(64, b"\x00")
    framing = (_fl(total - 38) + VECTOR_E131_DATA_PACKET.to_bytes(4, "big") + name + bytes([priority])
               + sync_address.to_bytes(2, "big") + bytes([sequence, options]) + universe.to_bytes(2, "big"))
    dmp = (_fl(total - 115) + bytes([VECTOR_DMP_SET_PROPERTY, 0xA1]) + (0).to_bytes(2, "big")
           + (1).to_bytes(2, "big") + (slots + 1).to_bytes(2, "big") + b"\x00")
    return _root(cid, VECTOR_ROOT_E131_DATA, total) + framing + dmp


def sync_packet(cid: bytes, sync_address: int, sequence: int) -> bytes:
    """An E1.31 synchronization packet (49 bytes)."""
    framing = (_fl(49 - 38) + VECTOR_E131_EXTENDED_SYNCHRONIZATION.to_bytes(4, "big") + bytes([sequence])
               + sync_address.to_bytes(2, "big") + b"\x00\x00")
    return _root(cid, VECTOR_ROOT_E131_EXTENDED, 49) + framing


class SacnOutput(UdpOutput):
    """One E1.31 data packet per span (span.address = universe 1..63999).

    Unchanged data goes out three times, then as keep-alives; close() sends three
    Stream_Terminated packets per universe.  With options.sync_universe, data packets carry
    that sync address and an E1.31 sync packet follows each frame.
    """

    UNCHANGED_REPEATS = 3
    HAS_GOODBYE = True

    def _check_span(self, index: int, span: Span, where: str) -> None:
        a = span.address
        if isinstance(a, bool) or not isinstance(a, int) or not 1 <= a <= 63999:
            raise OutputError(f"{where}: span {index}: sACN universe must be 1..63999, got {a!r}")
        if span.length > 512:
            raise OutputError(f"{where}: span {index}: a DMX universe holds at most 512 slots, got {span.length}")
        if a in {s.address for s in self.spans[:index]}:
            raise OutputError(f"{where}: span {index}: universe {a} is patched twice")

    def _build(self):
        o = self.options
        self.cid = uuid.UUID(str(o["cid"])).bytes
        self.sync_universe = int(o["sync_universe"])
        self._multicast = bool(o["multicast"])
        headers = [data_header(self.cid, str(o["source_name"]), int(o["priority"]), self.sync_universe,
                               int(s.address), s.length) for s in self.spans]
        self._seq = np.zeros(len(self.spans), dtype=np.int64)
        self._sync_seq = 0
        block = PacketBlock(headers, [s.offset for s in self.spans], [s.length for s in self.spans],
                            [HEADER_LEN + s.length for s in self.spans])
        dests = [(multicast_group(int(s.address)), self.port) for s in self.spans] if self._multicast else None
        self._sync_dest = (multicast_group(self.sync_universe), self.port) if self._multicast else None
        return block, np.arange(len(self.spans)), dests

    def _patch(self, buffer: np.ndarray, sel: np.ndarray | None) -> None:
        idx = slice(None) if sel is None else sel
        self._seq[idx] = (self._seq[idx] + 1) & 0xFF
        self.block.packets[idx, SEQ_BYTE] = self._seq[idx]
        self.block.fill(buffer, sel)

    def _send_sync(self) -> int:
        self._sync_seq = (self._sync_seq + 1) & 0xFF
        return self._transport.send_one(sync_packet(self.cid, self.sync_universe, self._sync_seq), self._sync_dest)

    def _transmit(self, sel):
        packets, nbytes = self._transport.send(sel)
        if self.sync_universe:
            nbytes += self._send_sync()
            packets += 1
        return packets, nbytes

    def _goodbye(self, buffer: np.ndarray | None) -> None:
        """Three packets per universe with Stream_Terminated set (receivers drop the source at once)."""
        if buffer is None:
            return
        self.block.packets[:, OPTIONS_BYTE] |= OPT_STREAM_TERMINATED
        try:
            for _ in range(3):
                self._patch(buffer, None)
                self._transport.send(None)
        finally:
            self.block.packets[:, OPTIONS_BYTE] &= ~np.uint8(OPT_STREAM_TERMINATED)
