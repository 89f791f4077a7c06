"""Packet bytes, hand-computed from the layouts in REFERENCE.md (not from the encoders)."""

from __future__ import annotations

import struct
import uuid

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage

from installation.outputs import OutputConfig, Span, create_output
from installation.outputs.artnet import ARTSYNC, artdmx_header
from installation.outputs.ddp import ddp_header
from installation.outputs.enttec import enttec_packet
from installation.outputs.osc import message_header
from installation.outputs.sacn import data_header, multicast_group, sync_packet

CID = uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")


def out(protocol, spans, **options):
    return create_output(OutputConfig(name="t", protocol=protocol, options=options), spans)


def packet(o, i):
    return bytes(o.block.views[i])


# --- Art-Net --------------------------------------------------------------------------------

def test_artdmx_header_bytes():
    # port-address 0x0123: Net 0x01, SubUni 0x23; length 510 = 0x01FE
    assert artdmx_header(0x0123, 510, sequence=5) == (
        b"Art-Net\x00" + b"\x00\x50" + b"\x00\x0e" + b"\x05" + b"\x00" + b"\x23" + b"\x01" + b"\x01\xfe")


def test_artsync_bytes():
    assert ARTSYNC == b"Art-Net\x00\x00\x52\x00\x0e\x00\x00"


def test_artdmx_full_packet_and_sequence_wrap():
    o = out("artnet", [Span(0x7FFF, 0, 512)])
    buf = np.arange(512, dtype=np.uint32).astype(np.uint8)
    seqs = []
    for _ in range(257):
        o._encode(buf, np.ones(1, bool))
        p = packet(o, 0)
        seqs.append(p[12])
    assert len(p) == 530
    assert p[:18] == b"Art-Net\x00\x00\x50\x00\x0e" + bytes([p[12]]) + b"\x00\xff\x7f\x02\x00"
    assert p[18:] == buf.tobytes()
    assert seqs[:3] == [1, 2, 3] and seqs[254] == 255 and seqs[255] == 1 and seqs[256] == 2  # 255 -> 1, never 0


def test_artdmx_odd_length_padded_even():
    o = out("artnet", [Span(1, 2, 3), Span(2, 5, 1)])
    o._encode(np.array([9, 9, 10, 11, 12, 13], dtype=np.uint8), np.ones(2, bool))
    p0, p1 = packet(o, 0), packet(o, 1)
    assert p0[16:18] == b"\x00\x04" and p0[18:] == b"\x0a\x0b\x0c\x00"
    assert p1[16:18] == b"\x00\x02" and p1[18:] == b"\x0d\x00"


# --- sACN -----------------------------------------------------------------------------------

def test_sacn_full_638_byte_packet():
    hdr = data_header(CID.bytes, "Tapestry", 100, 0, 1, 512, sequence=7)
    slots = bytes(range(256)) * 2
    pkt = hdr + slots
    expected = (
        b"\x00\x10" b"\x00\x00" b"ASC-E1.17\x00\x00\x00"      # preamble, postamble, ACN id
        b"\x72\x6e"                                          # flags 0x7, length 638-16 = 622 = 0x26e
        b"\x00\x00\x00\x04" + CID.bytes                      # VECTOR_ROOT_E131_DATA, CID
        + b"\x72\x58"                                        # framing: 638-38 = 600 = 0x258
        b"\x00\x00\x00\x02"                                  # VECTOR_E131_DATA_PACKET
        + b"Tapestry" + bytes(56)                            # source name, 64 bytes
        + b"\x64" b"\x00\x00" b"\x07" b"\x00" b"\x00\x01"    # priority 100, sync 0, seq 7, options, universe 1
        b"\x72\x0b"                                          # DMP: 638-115 = 523 = 0x20b
        b"\x02\xa1" b"\x00\x00" b"\x00\x01" b"\x02\x01"      # vector, type, first addr, increment, count 513
        b"\x00" + slots)                                     # start code, slots
    assert len(pkt) == 638
    assert pkt == expected


def test_sacn_output_packet_fields():
    o = out("sacn", [Span(300, 0, 510)], priority=150, source_name="Hall ✓", cid=str(CID), sync_universe=7)
    o._encode(np.full(510, 42, np.uint8), np.ones(1, bool))
    p = packet(o, 0)
    assert len(p) == 636
    assert p[16:18] == bytes([0x72, 0x6c]) and p[38:40] == bytes([0x72, 0x56]) and p[115:117] == bytes([0x72, 0x09])
    assert p[22:38] == CID.bytes
    assert p[44:52] == "Hall ✓".encode() and p[52:108] == bytes(56)
    assert p[108] == 150 and p[109:111] == b"\x00\x07" and p[111] == 1 and p[112] == 0 and p[113:115] == b"\x01\x2c"
    assert p[123:125] == b"\x01\xff" and p[126:] == bytes([42]) * 510


def test_sacn_sequence_wraps_full_byte_per_universe():
    o = out("sacn", [Span(1, 0, 2), Span(2, 2, 2)])
    buf = np.zeros(4, np.uint8)
    only_first = np.array([True, False])
    for _ in range(256):
        o._encode(buf, only_first)
    assert packet(o, 0)[111] == 0 and packet(o, 1)[111] == 0  # 256 steps wrap to 0; universe 2 untouched
    o._encode(buf, np.ones(2, bool))
    assert packet(o, 0)[111] == 1 and packet(o, 1)[111] == 1


def test_sacn_sync_packet_bytes():
    assert sync_packet(CID.bytes, 7, 3) == (
        b"\x00\x10\x00\x00ASC-E1.17\x00\x00\x00" b"\x70\x21" b"\x00\x00\x00\x08" + CID.bytes
        + b"\x70\x0b" b"\x00\x00\x00\x01" b"\x03" b"\x00\x07" b"\x00\x00")


def test_sacn_multicast_group():
    assert multicast_group(1) == "239.255.0.1"
    assert multicast_group(63999) == "239.255.249.255"


def test_sacn_default_cid_stable_from_name():
    a = out("sacn", [Span(1, 0, 3)]).options["cid"]
    b = out("sacn", [Span(1, 0, 3)]).options["cid"]
    c = create_output(OutputConfig(name="other", protocol="sacn"), [Span(1, 0, 3)]).options["cid"]
    assert a == b != c and uuid.UUID(a)


# --- DDP ------------------------------------------------------------------------------------

def test_ddp_header_bytes():
    assert ddp_header(1440, 1440, sequence=3, push=True) == b"\x41\x03\x0b\x01\x00\x00\x05\xa0\x05\xa0"
    assert ddp_header(0, 30) == b"\x40\x00\x0b\x01\x00\x00\x00\x00\x00\x1e"


def test_ddp_split_sequence_and_push():
    o = out("ddp", [Span(0, 0, 3000), Span(6000, 3000, 60)])  # -> 1440, 1440, 120, 60
    assert o.block.count == 4
    buf = (np.arange(3060) % 251).astype(np.uint8)
    seqs = []
    for _ in range(16):
        o._encode(buf, np.ones(2, bool))
        seqs.append(packet(o, 0)[1])
    assert seqs == list(range(1, 16)) + [1]
    ps = [packet(o, i) for i in range(4)]
    assert [p[0] for p in ps] == [0x40, 0x40, 0x40, 0x41]  # push on the frame's last packet only
    assert [struct.unpack(">IH", p[4:10]) for p in ps] == [(0, 1440), (1440, 1440), (2880, 120), (6000, 60)]
    assert b"".join(p[10:] for p in ps) == buf.tobytes()
    # only the second span changed: its one packet carries the push flag
    o._encode(buf, np.array([False, True]))
    assert packet(o, 3)[0] == 0x41


# --- OSC ------------------------------------------------------------------------------------

def test_osc_blob_bytes():
    o = out("osc", [Span("/leds/a", 0, 5)])
    o._encode(np.array([1, 2, 3, 4, 5], np.uint8), np.ones(1, bool))
    assert packet(o, 0) == b"/leds/a\x00" b",b\x00\x00" b"\x00\x00\x00\x05" b"\x01\x02\x03\x04\x05\x00\x00\x00"


def test_osc_floats_and_ints_parse_with_python_osc():
    buf = np.array([0, 255, 51], np.uint8)
    f = out("osc", [Span("/f", 0, 3)], type="floats")
    f._encode(buf, np.ones(1, bool))
    assert packet(f, 0) == b"/f\x00\x00" b",fff\x00\x00\x00\x00" + struct.pack(">fff", 0.0, 1.0, 0.2)
    assert OscMessage(packet(f, 0)).params == pytest.approx([0.0, 1.0, 0.2])
    i = out("osc", [Span("/i", 0, 3)], type="ints")
    i._encode(buf, np.ones(1, bool))
    assert OscMessage(packet(i, 0)).params == [0, 255, 51]
    assert message_header("/x", "blob", 3) == b"/x\x00\x00,b\x00\x00\x00\x00\x00\x03"


# --- Enttec ---------------------------------------------------------------------------------

def test_enttec_packet_bytes():
    assert enttec_packet(b"\x10\x20\x30") == b"\x7e\x06\x04\x00\x00\x10\x20\x30\xe7"
    full = enttec_packet(bytes(512))
    assert full[:5] == b"\x7e\x06\x01\x02\x00" and len(full) == 518 and full[-1] == 0xE7
