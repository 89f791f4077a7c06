"""Hostile input: random, truncated and mutated packets never raise and never stop the server serving;
a junk flood at the rate limit leaves a simulated 60 fps consumer loop with bounded work per frame."""

import queue
import socket
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from installation.control.osc import OscConfig, OscServer
from installation.control.wire import OscError, encode_bundle, encode_message, parse_packet
from tests.control.conftest import Client, Target, make_tree, wait_for

ADDRESSES = ["/tapestry/field/flow/speed", "/tapestry/show/master", "/tapestry/field/palette", "/tapestry/get",
             "/tapestry/preset/load", "/tapestry/subscribe", "/tapestry/list", "/tapestry/field/flow/speed/norm",
             "/tapestry/*", "/x"]
ARGS = st.one_of(st.integers(-2**31, 2**31 - 1), st.floats(width=32),
                 st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=20),
                 st.booleans(),
                 st.none(), st.binary(max_size=16))


@st.composite
def valid_packets(draw):
    msgs = [encode_message(draw(st.sampled_from(ADDRESSES)), *draw(st.lists(ARGS, max_size=3)))
            for _ in range(draw(st.integers(1, 3)))]
    if len(msgs) == 1 and draw(st.booleans()):
        return msgs[0]
    return encode_bundle(msgs, timetag=draw(st.integers(0, 2**64 - 1)))


@st.composite
def damaged_packets(draw):
    data = bytearray(draw(valid_packets()))
    how = draw(st.sampled_from(["truncate", "flip", "both"]))
    if how in ("truncate", "both"):
        data = data[:draw(st.integers(0, len(data)))]
    if how in ("flip", "both") and data:
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
    return bytes(data)


PACKETS = st.one_of(st.binary(max_size=300), damaged_packets(), valid_packets())


@given(PACKETS)
@settings(max_examples=400, deadline=None, database=None)
def test_parser_raises_only_osc_error(data):
    try:
        msgs = parse_packet(data)
    except OscError:
        return
    assert all(m.address.startswith("/") for m in msgs)


@given(st.lists(PACKETS, min_size=1, max_size=20))
@settings(max_examples=100, deadline=None, database=None)
def test_handle_datagram_never_raises_and_still_serves_valid_messages(packets):
    tree = make_tree()
    q: queue.Queue = queue.Queue(maxsize=64)
    server = OscServer(tree, q, OscConfig(port=0, rate=1e9, burst=1e9))
    for p in packets:
        server.handle_datagram(p, ("127.0.0.1", 4000))
    target = Target(tree)
    while not q.empty():
        q.get_nowait().apply(target)  # whatever got through validation applies without raising
    server.handle_datagram(encode_message("/tapestry/show/master", 0.125), ("127.0.0.1", 4000))
    while not q.empty():
        q.get_nowait().apply(target)
    assert tree.base("show/master") == 0.125


@pytest.fixture(scope="module")
def live_server():
    tree = make_tree()
    q: queue.Queue = queue.Queue(maxsize=64)
    server = OscServer(tree, q, OscConfig(port=0, rate=1e9, burst=1e9)).start()
    client = Client(server.address)
    yield server, q, client
    client.close()
    server.stop()


@given(st.lists(PACKETS, min_size=1, max_size=10))
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_real_server_keeps_answering_after_junk_over_udp(live_server, packets):
    server, q, client = live_server
    for p in packets:
        client.send_raw(p)
    client.send("/tapestry/list")
    client.wait("/tapestry/paths/end")
    assert server._thread is not None and server._thread.is_alive()
    while not q.empty():
        q.get_nowait()


def test_junk_flood_at_the_rate_limit_keeps_a_60fps_consumer_responsive():
    """A flooder hammers the server with junk and fader storms; a 60 fps loop drains the queue every frame.

    Asserted by counts: every frame's drain is bounded by the queue size, the flood is rate limited and
    refused, the frame loop keeps running, and a desk on another address still gets its fader through.
    """
    tree = make_tree()
    q: queue.Queue = queue.Queue(maxsize=128)
    server = OscServer(tree, q, OscConfig(port=0, rate=300.0, burst=50.0)).start()
    target = Target(tree)
    junk = [b"\x00" * 8, b"/t\xff\x00,\x00\x00\x00", b"#bundle\x00" + bytes(8) + b"\x00\x00\x00\x40",
            encode_message("/**********Z", 1.0)] + [encode_message("/tapestry/field/flow/speed", i / 100.0)
                                                    for i in range(100)]
    flood_sent = [0]
    stop = threading.Event()

    def flood():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            while not stop.is_set() and flood_sent[0] < 60000:
                s.sendto(junk[flood_sent[0] % len(junk)], server.address)
                flood_sent[0] += 1

    desk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    desk.bind(("127.0.0.2", 0))  # another sender on loopback: its own token bucket
    flooder = threading.Thread(target=flood, daemon=True)
    work = np.random.default_rng(0).random((256, 256), dtype=np.float32)
    drained_per_frame = []
    try:
        flooder.start()
        frames = 0
        while frames < 2000:
            n = 0
            while True:  # the engine's drain: everything queued, every frame
                try:
                    cmd = q.get_nowait()
                except queue.Empty:
                    break
                cmd.apply(target)
                n += 1
            drained_per_frame.append(n)
            work = np.tanh(work @ work.T * 1e-3)  # the frame's own work
            frames += 1
            if frames >= 100 and frames % 20 == 0 and tree.base("show/master") != 0.375:
                # a moving fader sends again and again; under a flood the kernel may drop some datagrams
                desk.sendto(encode_message("/tapestry/show/master", 0.375), server.address)
            if frames > 200 and tree.base("show/master") == 0.375 and server.stats()["rate_limited"] > 100:
                break
        stop.set()
        flooder.join(10)
        st_ = server.stats()
        assert tree.base("show/master") == 0.375, "the desk's fader never arrived during the flood"
        assert max(drained_per_frame) <= q.maxsize
        assert st_["rate_limited"] > 100 and st_["malformed"] + st_["refused"] > 0
        assert st_["accepted"] + st_["coalesced"] + st_["refused"] + st_["malformed"] <= st_["datagrams"] * 1
        # the server still answers once the flood is over (a fresh sender: the flooder's bucket is empty)
        c = Client(server.address, host="127.0.0.3")
        c.send("/tapestry/get", "show/master")

        def answered():
            while not q.empty():
                q.get_nowait().apply(target)
            c._receive()
            return any(a == "/tapestry/value" for a, _ in c.inbox)
        wait_for(answered, what="the get reply")
        assert c.wait("/tapestry/value") == ["show/master", 0.375]
        c.close()
    finally:
        stop.set()
        desk.close()
        server.stop()
