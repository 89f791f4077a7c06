"""Prebuilt UDP packets and a batched transmit shared by the network outputs.

`PacketBlock` keeps every packet of an output in one numpy array, headers written once;
a frame only patches the sequence bytes and copies the data.  `UdpTransport` puts the
selected packets on the wire with one libc ``sendmmsg(2)`` call per 1024 datagrams
(through ctypes, which releases the GIL), or a plain ``send``/``sendto`` loop where
sendmmsg is missing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket
import struct
from typing import Sequence

import numpy as np

from .base import Output, OutputConfig, Span

SNDBUF_BYTES = 4 << 20
SEND_TIMEOUT_S = 0.2  # SO_SNDTIMEO: a blocking send gives up (EAGAIN) rather than stall the sender thread
MULTICAST_TTL = 8


class PacketBlock:
    """All packets of one output, prebuilt: packet i = header i + data copied from the frame.

    headers: the fixed bytes of each packet (data follows at len(header)).
    src_offsets/src_lengths: where each packet's data comes from in the source array.
    packet_lengths: total length of each packet (>= header + data; the rest stays zero, e.g. Art-Net's pad byte).
    """

    def __init__(self, headers: Sequence[bytes], src_offsets: Sequence[int], src_lengths: Sequence[int],
                 packet_lengths: Sequence[int]) -> None:
        n = len(headers)
        self.count = n
        self.data_off = np.array([len(h) for h in headers], dtype=np.int64)
        self.src_off = np.asarray(src_offsets, dtype=np.int64)
        self.src_len = np.asarray(src_lengths, dtype=np.int64)
        self.lengths = np.asarray(packet_lengths, dtype=np.int64)
        assert (self.data_off + self.src_len <= self.lengths).all()
        self.stride = int(-(-int(self.lengths.max()) // 16) * 16)
        self.packets = np.zeros((n, self.stride), dtype=np.uint8)
        for i, h in enumerate(headers):
            self.packets[i, :len(h)] = np.frombuffer(h, dtype=np.uint8)
        self._flat = memoryview(self.packets.reshape(-1))
        self.views = [self._flat[i * self.stride: i * self.stride + int(self.lengths[i])] for i in range(n)]
        self._dst = [self._flat[i * self.stride + int(self.data_off[i]):
                                i * self.stride + int(self.data_off[i] + self.src_len[i])] for i in range(n)]
        self._src_slices = [slice(int(a), int(a + b)) for a, b in zip(self.src_off, self.src_len)]
        # the usual patch: equal packets taking evenly spaced data -> one strided numpy copy
        step = int(self.src_off[1] - self.src_off[0]) if n > 1 else int(self.src_len[0])
        self.regular = bool(
            (self.data_off == self.data_off[0]).all() and (self.src_len == self.src_len[0]).all()
            and step >= int(self.src_len[0])
            and (self.src_off == self.src_off[0] + step * np.arange(n)).all())
        self._step = step

    def fill(self, src: np.ndarray, sel: np.ndarray | None) -> None:
        """Copy the data of packets `sel` (indices; None = all) from the 1-D uint8 `src`."""
        if self.regular:
            d, ln = int(self.data_off[0]), int(self.src_len[0])
            grid = np.lib.stride_tricks.as_strided(src[int(self.src_off[0]):], shape=(self.count, ln),
                                                   strides=(self._step * src.strides[0], src.strides[0]),
                                                   writeable=False)
            if sel is None:
                self.packets[:, d:d + ln] = grid
            else:
                self.packets[sel, d:d + ln] = grid[sel]
            return
        smv = memoryview(np.ascontiguousarray(src))
        dst, sl = self._dst, self._src_slices
        for i in (range(self.count) if sel is None else sel.tolist()):
            dst[i][:] = smv[sl[i]]


# --- libc sendmmsg through ctypes -----------------------------------------------------------

class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


def _load_sendmmsg():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sendmmsg
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SENDMMSG = _load_sendmmsg()
_MSG_SIZE = ctypes.sizeof(_MMsgHdr)
_UIO_MAXIOV = 1024
HAVE_SENDMMSG = _SENDMMSG is not None


def sockaddr_in(ip: str, port: int) -> bytes:
    """A struct sockaddr_in (Linux layout: family in host order, port and address in network order)."""
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton(ip) + bytes(8)


class UdpTransport:
    """Sends a PacketBlock's packets.

    With `dests` None, every packet goes to (host, port): the name is resolved on `open()`
    (on the sender thread; a name that fails now may resolve on a later try) and the socket
    is connected, so the kernel reports ECONNREFUSED/unreachable for the backoff logic.
    With `dests` (one IPv4 (ip, port) per packet, e.g. sACN multicast groups) the socket
    stays unconnected.
    """

    def __init__(self, block: PacketBlock, host: str, port: int, dests: Sequence[tuple[str, int]] | None = None,
                 interface: str = "", use_sendmmsg: bool | None = None) -> None:
        self.block = block
        self.host, self.port = host, port
        self.dests = list(dests) if dests is not None else None
        self.interface = interface
        self.use_sendmmsg = HAVE_SENDMMSG if use_sendmmsg is None else (use_sendmmsg and HAVE_SENDMMSG)
        self.sock: socket.socket | None = None

    def open(self) -> None:
        """Resolve, open and configure the socket; prebuild the sendmmsg message array."""
        self.close()
        if self.dests is None:
            infos = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_DGRAM)
            # IPv4 first: Art-Net and most LED nodes speak nothing else, and "localhost" often lists ::1 first
            family, _, _, _, addr = sorted(infos, key=lambda i: i[0] != socket.AF_INET)[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF_BYTES)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                            struct.pack("ll", 0, int(SEND_TIMEOUT_S * 1e6)))
            if sock.family == socket.AF_INET:  # a venue may give a subnet broadcast address as host
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if self.dests is None:
                sock.connect(addr)
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, MULTICAST_TTL)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
                if self.interface:
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.interface))
                    sock.bind((self.interface, 0))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._build_messages()

    def _build_messages(self) -> None:
        b = self.block
        n = b.count
        if self.dests is not None:
            self._addrs = np.frombuffer(b"".join(sockaddr_in(ip, p) for ip, p in self.dests), dtype=np.uint8).copy()
        base = b.packets.ctypes.data
        if not HAVE_SENDMMSG:  # built even when use_sendmmsg is off, so it can be switched (bench)
            return
        self._iov = (_IoVec * n)()
        self._msgs = (_MMsgHdr * n)()
        for i in range(n):
            self._iov[i].iov_base = base + i * b.stride
            self._iov[i].iov_len = int(b.lengths[i])
            h = self._msgs[i].msg_hdr
            h.msg_iov = ctypes.addressof(self._iov[i])
            h.msg_iovlen = 1
            if self.dests is not None:
                h.msg_name = self._addrs.ctypes.data + 16 * i
                h.msg_namelen = 16
        self._msg_rows = np.frombuffer(self._msgs, dtype=np.uint8).reshape(n, _MSG_SIZE)

    def send(self, sel: np.ndarray | None = None) -> tuple[int, int]:
        """Transmit packets `sel` (indices, ascending; None = all). Returns (packets, bytes); raises OSError."""
        b = self.block
        if self.sock is None:
            raise OSError(errno.ENOTCONN, "transport not open")
        count = b.count if sel is None else len(sel)
        if count == 0:
            return 0, 0
        nbytes = int(b.lengths.sum() if sel is None else b.lengths[sel].sum())
        if self.use_sendmmsg:
            if sel is None:
                rows, ptr = None, ctypes.addressof(self._msgs)
            else:
                rows = np.ascontiguousarray(self._msg_rows[sel])  # keep alive until sent
                ptr = rows.ctypes.data
            fd = self.sock.fileno()
            left = count
            while left:
                r = _SENDMMSG(fd, ptr, min(left, _UIO_MAXIOV), 0)
                if r < 0:
                    e = ctypes.get_errno()
                    if e == errno.EINTR:
                        continue
                    raise OSError(e, os.strerror(e))
                ptr += r * _MSG_SIZE
                left -= r
            del rows
        else:
            views = b.views
            idx = range(count) if sel is None else sel.tolist()
            if self.dests is None:
                send = self.sock.send
                for i in idx:
                    send(views[i])
            else:
                sendto, dests = self.sock.sendto, self.dests
                for i in idx:
                    sendto(views[i], dests[i])
        return count, nbytes

    def send_one(self, data: bytes, dest: tuple[str, int] | None = None) -> int:
        """Send one extra datagram (ArtSync, E1.31 sync) to the connected peer or to `dest`."""
        if self.sock is None:
            raise OSError(errno.ENOTCONN, "transport not open")
        return self.sock.send(data) if dest is None else self.sock.sendto(data, dest)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


class UdpOutput(Output):
    """Base of the UDP outputs: a PacketBlock built once, a UdpTransport, span -> packet mapping.

    Subclasses implement `_build()` and `_patch(buffer, sel)` (sequence numbers, flags, data),
    and may extend `_transmit` for trailing packets (ArtSync, E1.31 sync).
    """

    def __init__(self, config: OutputConfig, spans: Sequence[Span], use_sendmmsg: bool | None = None) -> None:
        super().__init__(config, spans)
        block, pkt_span, dests = self._build()
        self.block = block
        self._pkt_span = np.asarray(pkt_span, dtype=np.int64)
        self._transport = UdpTransport(block, config.host, self.port, dests=dests,
                                       interface=str(self.options.get("interface", "")), use_sendmmsg=use_sendmmsg)

    def _build(self) -> tuple[PacketBlock, Sequence[int], Sequence[tuple[str, int]] | None]:
        raise NotImplementedError

    def _patch(self, buffer: np.ndarray, sel: np.ndarray | None) -> None:
        raise NotImplementedError

    def _open(self) -> None:
        self._transport.open()

    def _encode(self, buffer: np.ndarray, span_mask: np.ndarray | None) -> np.ndarray | None:
        sel = None if span_mask is None or span_mask.all() else np.flatnonzero(span_mask[self._pkt_span])
        self._patch(buffer, sel)
        return sel

    def _transmit(self, sel: np.ndarray | None) -> tuple[int, int]:
        return self._transport.send(sel)

    def _shutdown(self) -> None:
        self._transport.close()
