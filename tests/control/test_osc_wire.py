"""The strict OSC 1.0 parser and encoder, checked against python-osc's encoder/parser."""

import math
import struct

import pytest
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from installation.control.wire import IMPULSE, OscError, encode_bundle, encode_message, parse_packet


def build(address, *typed):
    b = OscMessageBuilder(address)
    for t, v in typed:
        b.add_arg(v, t)
    return b.build().dgram


def test_parses_every_supported_type_from_python_osc():
    data = build("/tapestry/x", ("i", -7), ("f", 0.5), ("s", "héllo"), ("b", b"\x01\x02\x03"), ("T", True),
                 ("F", False), ("N", None), ("d", 1e-300), ("h", 2**40))
    (msg,) = parse_packet(data)
    assert msg.address == "/tapestry/x"
    assert msg.tags == "ifsbTFNdh"
    assert msg.args == (-7, 0.5, "héllo", b"\x01\x02\x03", True, False, None, 1e-300, 2**40)


def test_impulse_round_trips():
    (msg,) = parse_packet(encode_message("/bang", IMPULSE))
    assert msg.tags == "I" and msg.args == (IMPULSE,)


def test_encoder_output_is_read_back_by_python_osc():
    data = encode_message("/a/b", 3, 0.25, "abc", b"xy", True, False, None, 2**40)
    m = OscPacket(data).messages[0].message
    assert m.address == "/a/b"
    assert list(m.params) == [3, 0.25, "abc", b"xy", True, False, None, 2**40]


def test_bundles_are_flattened_and_delivered_whatever_their_timetag():
    far_future = (2**32 - 1) << 32
    inner = encode_bundle([encode_message("/b", 2)], timetag=far_future)
    data = encode_bundle([encode_message("/a", 1), inner], timetag=far_future)
    assert [(m.address, m.args) for m in parse_packet(data)] == [("/a", (1,)), ("/b", (2,))]


def test_python_osc_bundle_parses():
    bb = OscBundleBuilder(1)
    bb.add_content(OscMessageBuilder("/x").build())
    bb.add_content(OscMessageBuilder("/y").build())
    assert [m.address for m in parse_packet(bb.build().dgram)] == ["/x", "/y"]


@pytest.mark.parametrize("data, kind", [
    (b"", "truncated"),
    (b"/ab", "truncated"),                                    # not a multiple of 4
    (b"/abc", "truncated"),                                   # no NUL
    (b"/ab\x00", "typetag"),                                  # no type tags at all
    (b"/ab\x00,i\x00\x00", "truncated"),                      # int missing
    (b"/ab\x00,x\x00\x00", "typetag"),                        # unknown tag
    (b"/ab\x00i\x00\x00\x00", "typetag"),                     # no comma
    (b"ab\x00\x00,\x00\x00\x00", "address"),
    (b"/\xff\xfe\x00,\x00\x00\x00", "utf8"),
    (b"/ab\x00,s\x00\x00\xc3\x28\x00\x00", "utf8"),
    (b"/ab\x00,b\x00\x00\x00\x00\x00\x09abcd", "truncated"),  # blob longer than the packet
    (b"/ab\x00,b\x00\x00\xff\xff\xff\xff", "truncated"),      # negative blob size
    (b"/ab\x00,\x00\x00\x00\x00\x00\x00\x00", "truncated"),   # trailing bytes
    (b"#bundle\x00\x00\x00\x00\x00", "truncated"),
    (b"#bundle\x00" + bytes(8) + struct.pack(">i", 3), "bundle"),
    (b"#bundle\x00" + bytes(8) + struct.pack(">i", 64), "truncated"),
    (b"#bundlX\x00" + bytes(8), "bundle"),
])
def test_malformed_packets_raise_osc_error_with_a_kind(data, kind):
    with pytest.raises(OscError) as exc:
        parse_packet(data)
    assert exc.value.kind == kind
    assert str(exc.value)


def test_nesting_and_element_limits():
    data = encode_message("/x")
    for _ in range(6):
        data = encode_bundle([data])
    with pytest.raises(OscError, match="nested") as exc:
        parse_packet(data, max_depth=4)
    assert exc.value.kind == "limit"
    many = encode_bundle([encode_message("/x")] * 100)
    with pytest.raises(OscError, match="too many"):
        parse_packet(many, max_elements=64)
    with pytest.raises(OscError, match="arguments"):
        parse_packet(encode_message("/x", *range(40)), max_args=32)


def test_encoder_clamps_huge_finite_floats_and_keeps_nan():
    (m,) = parse_packet(encode_message("/x", 1e300, math.nan))
    assert m.args[0] == pytest.approx(3.4028234663852886e38)
    assert math.isnan(m.args[1])
    with pytest.raises(TypeError):
        encode_message("/x", object())
