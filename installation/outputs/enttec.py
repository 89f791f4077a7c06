"""Enttec DMX USB Pro over a serial port: label 6 (Output Only Send DMX), at most 44 Hz."""

from __future__ import annotations

import numpy as np

from .base import Output, OutputConfig, OutputError, Span

START = 0x7E
END = 0xE7
LABEL_SEND_DMX = 6
WRITE_TIMEOUT_S = 0.5


def enttec_packet(slots: bytes, label: int = LABEL_SEND_DMX) -> bytes:
    """0x7E, label, length LSB/MSB, payload (start code 0 + slots), 0xE7."""
    payload = b"\x00" + bytes(slots)
    return bytes([START, label, len(payload) & 0xFF, len(payload) >> 8]) + payload + bytes([END])


class EnttecOutput(Output):
    """One DMX universe out of an Enttec DMX USB Pro (options.device, e.g. /dev/ttyUSB0).

    Spans (address 0) are laid out one after another into the 512 slots.  The serial write
    runs on the sender thread with a write timeout; a missing or unplugged device means
    backoff and reopening, not an exception in the frame loop.
    """

    UNCHANGED_REPEATS = 1

    def __init__(self, config: OutputConfig, spans, serial_factory=None) -> None:
        super().__init__(config, spans)
        total = int(self._lengths.sum())
        if total > 512:
            raise OutputError(f"output '{self.name}': Enttec spans hold {total} slots, a DMX universe at most 512")
        self.device = str(self.options["device"])
        self._packet = bytearray(enttec_packet(bytes(total)))
        self._slices = []
        pos = 5
        for s in self.spans:
            self._slices.append((slice(pos, pos + s.length), slice(s.offset, s.offset + s.length)))
            pos += s.length
        self._serial_factory = serial_factory
        self._ser = None

    def _check_span(self, index: int, span: Span, where: str) -> None:
        if span.address != 0:
            raise OutputError(f"{where}: span {index}: Enttec spans use address 0, got {span.address!r}")
        if span.length > 512:
            raise OutputError(f"{where}: span {index}: a DMX universe holds at most 512 slots, got {span.length}")

    def _open(self) -> None:
        if self._serial_factory is not None:
            self._ser = self._serial_factory(self.device)
            return
        import serial  # pyserial; imported here so the network outputs never need it
        self._ser = serial.Serial(self.device, baudrate=57600, timeout=0, write_timeout=WRITE_TIMEOUT_S)

    def _encode(self, buffer: np.ndarray, span_mask) -> bytes:
        mv = memoryview(self._packet)
        src = memoryview(buffer)
        for dst, s in self._slices:
            mv[dst] = src[s]
        return bytes(self._packet)

    def _transmit(self, packet: bytes) -> tuple[int, int]:
        n = self._ser.write(packet)
        if n is not None and n != len(packet):
            raise OSError(f"short write to {self.device}: {n} of {len(packet)} bytes")
        return 1, len(packet)

    def _shutdown(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            finally:
                self._ser = None
