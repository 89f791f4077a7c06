"""Outputs sending to real UDP sockets on loopback: data, keep-alives, changed-only sends, sync, close."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from installation.outputs import OutputConfig, Span, create_output
from installation.outputs.udp import HAVE_SENDMMSG


def make(protocol, port, spans, fps=200.0, **options):
    return create_output(OutputConfig(name="t", protocol=protocol, port=port, fps=fps, options=options), spans)


def frame(n, seed):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)


@pytest.mark.parametrize("use_sendmmsg", [True, False] if HAVE_SENDMMSG else [False])
def test_artnet_data_arrives_with_sync(receiver, use_sendmmsg):
    spans = [Span(u, u * 510, 510) for u in range(40)]
    o = make("artnet", receiver.port, spans, sync=True)
    o._transport.use_sendmmsg = use_sendmmsg
    buf = frame(40 * 510, 1)
    o.send(buf)
    assert receiver.wait_for(lambda p: len(p) >= 41)
    o.close()
    dmx, sync = receiver.packets[:40], receiver.packets[40]
    assert sync[8:10] == b"\x00\x52"
    for u, p in enumerate(dmx):
        assert p[8:10] == b"\x00\x50" and p[14] | (p[15] << 8) == u and p[12] == 1
        assert p[18:] == buf[u * 510:(u + 1) * 510].tobytes()


def test_only_changed_universes_then_repeats_then_keepalive(receiver):
    spans = [Span(u, u * 4, 4) for u in range(3)]
    o = make("artnet", receiver.port, spans, fps=1000, keepalive=0.6)
    buf = np.zeros(12, np.uint8)
    o.send(buf)
    assert receiver.wait_for(lambda p: len(p) >= 3)
    o.send(buf)  # unchanged: Art-Net repeats once more (2 sends in all)
    assert receiver.wait_for(lambda p: len(p) >= 6)
    o.send(buf)  # unchanged and repeated enough: nothing
    time.sleep(0.05)
    assert len(receiver.packets) == 6
    buf2 = buf.copy()
    buf2[5] = 9  # universe 1 only
    o.send(buf2)
    assert receiver.wait_for(lambda p: len(p) >= 7)
    time.sleep(0.05)
    assert len(receiver.packets) == 7 and receiver.packets[6][14] == 1 and receiver.packets[6][19] == 9
    # frames stop: keep-alives (all universes) come about every 0.6 s
    assert receiver.wait_for(lambda p: len(p) >= 7 + 6, timeout=3)
    o.close()
    st = o.status()
    assert st["errors"] == 0 and st["packets"] >= 13


def test_sacn_three_repeats_sync_and_stream_terminated(receiver):
    o = make("sacn", receiver.port, [Span(1, 0, 510), Span(2, 510, 510)], fps=1000, sync_universe=9)
    buf = frame(1020, 2)
    for _ in range(5):
        o.send(buf)
        time.sleep(0.02)
    o.close(final=np.zeros(1020, np.uint8))
    assert receiver.wait_for(lambda ps: len([p for p in ps if len(p) == 636 and p[112] & 0x40]) >= 6)
    time.sleep(0.05)
    pk = receiver.packets
    data = [p for p in pk if len(p) == 636]
    syncs = [p for p in pk if len(p) == 49]
    # 3 sends of unchanged data, the final (blackout) frame, then 3 Stream_Terminated per universe
    assert len(data) == 2 * (3 + 1 + 3), [len(p) for p in pk]
    assert len(syncs) == 3 + 1
    assert all(p[109:111] == b"\x00\x09" for p in data)
    u1 = [p for p in data if p[113:115] == b"\x00\x01"]
    assert [p[111] for p in u1] == [1, 2, 3, 4, 5, 6, 7]
    assert [p[112] for p in u1] == [0, 0, 0, 0, 0x40, 0x40, 0x40]
    assert u1[0][126:] == buf[:510].tobytes() and u1[3][126:] == bytes(510)
    assert [p[44] for p in syncs] == [1, 2, 3, 4]


def test_ddp_frame_arrives_with_push(receiver):
    o = make("ddp", receiver.port, [Span(0, 0, 3600)])
    buf = frame(3600, 3)
    o.send(buf)
    assert receiver.wait_for(lambda p: len(p) >= 3)
    o.close()
    pk = receiver.packets[:3]
    assert [p[0] for p in pk] == [0x40, 0x40, 0x41] and {p[1] for p in pk} == {1}
    assert b"".join(p[10:] for p in pk) == buf.tobytes()


def test_osc_floats_arrive(receiver):
    from pythonosc.osc_message import OscMessage
    o = make("osc", receiver.port, [Span("/a", 0, 3), Span("/b", 3, 2)], type="floats")
    o.send(np.array([0, 255, 51, 102, 204], np.uint8))
    assert receiver.wait_for(lambda p: len(p) >= 2)
    o.close()
    msgs = {m.address: m.params for m in map(OscMessage, receiver.packets[:2])}
    assert msgs["/a"] == pytest.approx([0, 1, 0.2]) and msgs["/b"] == pytest.approx([0.4, 0.8])


@pytest.mark.parametrize("use_sendmmsg", [True, False] if HAVE_SENDMMSG else [False])
def test_sacn_multicast_on_loopback(use_sendmmsg):
    group, port = "239.255.0.42", 0
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    try:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     socket.inet_aton(group) + socket.inet_aton("127.0.0.1"))
    except OSError as e:
        pytest.skip(f"cannot join a multicast group on lo here: {e}")
    s.settimeout(2)
    o = make("sacn", port, [Span(42, 0, 6)], multicast=True, interface="127.0.0.1")
    o._transport.use_sendmmsg = use_sendmmsg
    o.send(np.arange(6, dtype=np.uint8))
    try:
        data, addr = s.recvfrom(2000)
    finally:
        o.close()
        s.close()
    assert data[113:115] == b"\x00\x2a" and data[126:] == bytes(range(6))


def test_send_never_blocks_and_drops_stale_frames(receiver):
    o = make("artnet", receiver.port, [Span(0, 0, 512)], fps=5)
    t0 = time.perf_counter()
    for i in range(50):
        o.send(np.full(512, i, np.uint8))
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.5  # generous: 50 sends at a 5 fps cap would take 10 s if send waited
    assert receiver.wait_for(lambda p: any(p_[18] == 49 for p_ in p), timeout=2)  # the newest frame wins
    o.close()
    st = o.status()
    assert st["dropped"] >= 40 and st["frames"] <= 5


def test_disabled_output_sends_nothing(receiver):
    o = create_output(OutputConfig(name="off", protocol="artnet", port=receiver.port, enabled=False), [Span(0, 0, 4)])
    o.send(np.ones(4, np.uint8))
    o.close(final=np.zeros(4, np.uint8))
    time.sleep(0.05)
    assert receiver.packets == [] and o.status()["state"] == "disabled"


def test_bad_frames_logged_once_not_raised(receiver, caplog):
    o = make("artnet", receiver.port, [Span(0, 0, 8)])
    for _ in range(5):
        o.send(np.zeros(3, np.uint8))  # shorter than the patch
    o.close()
    assert sum("shorter than the patch" in r.message for r in caplog.records) == 1
    assert receiver.packets == []


def test_fps_cap_limits_transmitted_frames(receiver):
    o = make("artnet", receiver.port, [Span(0, 0, 4)], fps=20)
    t0 = time.monotonic()
    for i in range(100):
        o.send(np.full(4, i, np.uint8))
        time.sleep(0.005)
    elapsed = time.monotonic() - t0
    tx = o.status()["frames"]
    o.close()
    assert 2 <= tx <= 20 * elapsed + 2, (tx, elapsed)


def test_localhost_name_reaches_an_ipv4_receiver(receiver):
    o = create_output(OutputConfig(name="t", protocol="osc", host="localhost", port=receiver.port),
                      [Span("/x", 0, 2)])
    o.send(np.array([1, 2], np.uint8))
    assert receiver.wait_for(lambda p: len(p) >= 1)
    o.close()


def test_non_uint8_frames_rejected_once_bytes_accepted(receiver, caplog):
    o = make("artnet", receiver.port, [Span(0, 0, 4)])
    for _ in range(3):
        o.send(np.full(4, 0.5, np.float32))  # colours not yet converted: would truncate to 0
    assert sum("must be uint8" in r.getMessage() for r in caplog.records) == 1
    o.send(b"\x01\x02\x03\x04")
    assert receiver.wait_for(lambda p: len(p) >= 1)
    o.close()
    assert receiver.packets[0][18:22] == b"\x01\x02\x03\x04"
