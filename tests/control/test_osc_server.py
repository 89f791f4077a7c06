"""The OSC server over real loopback UDP, python-osc as the client, effects checked on a real ParamTree."""

import math
import queue
import socket

import pytest

from installation.control.osc import OscConfig, OscServer, pack_bundles, split_args
from installation.control.wire import encode_bundle, encode_message, parse_packet
from tests.control.conftest import Client, Engine, Target, make_tree, wait_for


def test_set_float_int_bool_choice(rig):
    c = rig.client()
    c.send("/tapestry/field/flow/speed", 2.5)
    c.send("/tapestry/field/particles", 5000)
    c.send("/tapestry/show/blackout", True)
    c.send("/tapestry/field/palette", "ember")
    wait_for(lambda: rig.tree.base("field/palette") == "ember", what="choice set")
    assert rig.tree.base("field/flow/speed") == 2.5
    assert rig.tree.base("field/particles") == 5000
    assert rig.tree.base("show/blackout") is True


def test_int_accepted_for_float_and_01_for_bool(rig):
    c = rig.client()
    c.send("/tapestry/field/flow/speed", 3, types="i")
    c.send("/tapestry/show/blackout", 1, types="i")
    wait_for(lambda: rig.tree.base("show/blackout") is True and rig.tree.base("field/flow/speed") == 3.0)
    assert isinstance(rig.tree.base("field/flow/speed"), float)


def test_norm_address_maps_fader_to_range(rig):
    c = rig.client()
    c.send("/tapestry/field/flow/speed/norm", 0.25)
    c.send("/tapestry/field/palette/norm", 1.0)
    wait_for(lambda: rig.tree.base("field/palette") == "tide")
    assert rig.tree.base("field/flow/speed") == pytest.approx(1.0)


def test_out_of_range_is_clamped_with_a_warning(rig):
    c = rig.client()
    c.send("/tapestry/field/flow/speed", 9.0)
    (msg,) = c.wait("/tapestry/warning")
    assert "clamped" in msg and "field/flow/speed" in msg
    wait_for(lambda: rig.tree.base("field/flow/speed") == 4.0)


def test_a_clamped_int_is_quoted_as_the_int_it_became(rig):
    c = rig.client()
    c.send("/tapestry/field/particles", 12_345_678, types="i")
    (msg,) = c.wait("/tapestry/warning")
    # in full: not "1.23457e+07" (nor "clamped to 8.38861e+06" for the live tree's 8388608 particles)
    assert msg == "field/particles: 12345678 is outside 1000 .. 100000, clamped to 100000", msg
    wait_for(lambda: rig.tree.base("field/particles") == 100_000)


@pytest.mark.parametrize("value, types", [(math.nan, "f"), (math.inf, "d"), ("fast", "s"), (True, "T"), (b"x", "b")])
def test_nan_inf_and_wrong_types_refused_with_a_reply(rig, value, types):
    c = rig.client()
    c.send("/tapestry/field/flow/speed", value, types=types)
    (msg,) = c.wait("/tapestry/error")
    assert "field/flow/speed" in msg
    assert rig.tree.base("field/flow/speed") == 1.0
    assert rig.commands.qsize() == 0


def test_wrong_argument_count_and_unknown_address_refused(rig):
    c = rig.client()
    c.send("/tapestry/field/flow/speed", 1.0, 2.0)
    assert "expected 1 argument" in c.wait("/tapestry/error")[0]
    c.send("/tapestry/nothing/here", 1.0)
    assert "unknown address" in c.wait("/tapestry/error")[0]


def test_pattern_addresses_are_refused_without_matching(rig):
    c = rig.client()
    c.send("/**********************************Z", 1.0)
    c.send("/tapestry/field/*/speed", 1.0)
    c.send("/tapestry/{a,b}", 1.0)
    for _ in range(3):
        assert "pattern addresses" in c.wait("/tapestry/error")[0]
    c.send("/tapestry/get", "field/flow/speed")  # and it keeps serving
    assert c.wait("/tapestry/value") == ["field/flow/speed", 1.0]


def test_master_and_blackout_aliases(rig):
    c = rig.client()
    c.send("/tapestry/master", 0.3)
    c.send("/tapestry/blackout", 1, types="i")
    wait_for(lambda: rig.tree.base("show/blackout") is True)
    assert rig.tree.base("show/master") == pytest.approx(0.3)
    c.send("/tapestry/master/norm", 0.75)
    wait_for(lambda: rig.tree.base("show/master") == 0.75)


def test_get_replies_value(rig):
    c = rig.client()
    c.send("/tapestry/field/palette", "tide")
    c.send("/tapestry/get", "/tapestry/field/palette")
    assert c.wait("/tapestry/value") == ["field/palette", "tide"]
    c.send("/tapestry/get", "master")
    assert c.wait("/tapestry/value") == ["show/master", 1.0]
    c.send("/tapestry/get", "no/such")
    assert "unknown parameter" in c.wait("/tapestry/error")[0]


def test_list_replies_every_path_then_end(rig):
    c = rig.client()
    c.send("/tapestry/list")
    paths = c.wait("/tapestry/paths")
    assert c.wait("/tapestry/paths/end") == [len(rig.tree)]
    assert paths == rig.tree.paths()


def test_preset_load_save_force_and_list_reach_the_target(rig):
    c = rig.client()
    c.send("/tapestry/preset/load", "calm", 2.5)
    assert c.wait("/tapestry/preset/loaded") == ["calm"]
    assert rig.target.fades == [("calm", 2.5)]
    c.send("/tapestry/preset/load", "storm")
    assert c.wait("/tapestry/preset/loaded") == ["storm"]
    assert rig.target.fades[-1] == ("storm", None)  # no FADE_S: the target's default fade
    c.send("/tapestry/preset/load", "calm", 9999)
    c.wait("/tapestry/preset/loaded")
    assert rig.target.fades[-1] == ("calm", 3600.0)
    assert rig.tree.base("field/palette") == "tide"

    c.send("/tapestry/preset/load", "nope")
    assert "not found" in c.wait("/tapestry/error")[0]

    c.send("/tapestry/field/flow/speed", 3.0)
    c.send("/tapestry/preset/save", "my-look_2")
    assert c.wait("/tapestry/preset/saved") == ["my-look_2"]
    assert rig.target.presets["my-look_2"]["field/flow/speed"] == 3.0

    c.send("/tapestry/preset/save", "calm")
    assert "shipped" in c.wait("/tapestry/error")[0]
    assert rig.target.presets["calm"]["field/flow/speed"] == 0.5
    c.send("/tapestry/preset/save/force", "calm")  # shipped looks are never overwritten from the network
    assert "shipped" in c.wait("/tapestry/error")[0]
    assert rig.target.presets["calm"]["field/flow/speed"] == 0.5

    c.send("/tapestry/preset/list")
    assert c.wait("/tapestry/presets") == ["calm", "my-look_2", "storm"]
    assert c.wait("/tapestry/presets/end") == [3]


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "", "x" * 65, "with space", "dot.toml", "calm\n", "ćalm"])
def test_unsafe_preset_names_refused_before_the_engine(rig, name):
    c = rig.client()
    c.send("/tapestry/preset/save", name, types="s")
    assert "name must be" in c.wait("/tapestry/error")[0]
    assert rig.commands.qsize() == 0 and set(rig.target.presets) == {"calm", "storm"}


def test_preset_fade_validated(rig):
    c = rig.client()
    c.send("/tapestry/preset/load", "calm", -1.0)
    assert "FADE_S" in c.wait("/tapestry/error")[0]
    c.send("/tapestry/preset/load", "calm", math.nan)
    assert "FADE_S" in c.wait("/tapestry/error")[0]
    assert rig.target.fades == []


def test_scene_go_and_status(rig):
    c = rig.client()
    c.send("/tapestry/scene/go", "tension")
    assert c.wait("/tapestry/scene/current") == ["tension"]
    c.send("/tapestry/scene/go", "nowhere")
    assert "unknown scene" in c.wait("/tapestry/error")[0]
    c.send("/tapestry/status")
    fps, frame_ms, intensity, scene, preset = c.wait("/tapestry/status")
    assert (fps, frame_ms, intensity, scene, preset) == (60.0, 4.5, 0.25, "tension", "")


def test_subscribe_gets_snapshot_changes_and_heartbeat_then_unsubscribe(rig):
    c = rig.client()
    listener = Client(rig.server.address)
    try:
        c.send("/tapestry/subscribe", listener.port)
        assert listener.wait("/tapestry/subscribed")[0] == listener.port
        assert listener.wait("/tapestry/field/palette") == ["moss"]          # snapshot
        assert listener.wait("/tapestry/show/master/norm") == [1.0]
        c.send("/tapestry/field/flow/speed", 2.0)
        assert listener.wait("/tapestry/field/flow/speed", pred=lambda a: a == [2.0]) == [2.0]
        assert listener.wait("/tapestry/field/flow/speed/norm", pred=lambda a: a == [0.5]) == [0.5]
        rig.engine.call(lambda t: rig.server.heartbeat(t.status()))
        assert listener.wait("/tapestry/heartbeat") == [60.0, 4.5, 0.25]
        c.send("/tapestry/unsubscribe", listener.port)
        assert listener.wait("/tapestry/unsubscribed") == [listener.port]
        # after unsubscribing, changes are no longer sent (checked by the server's own bookkeeping)
        wait_for(lambda: not rig.server._has_subscribers)
    finally:
        listener.close()


def test_subscriptions_expire_unless_renewed():
    now = [100.0]
    tree = make_tree()
    q: queue.Queue = queue.Queue(maxsize=64)
    server = OscServer(tree, q, OscConfig(port=0, subscription_ttl_s=60.0), clock=lambda: now[0])
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        with server:
            server.handle_datagram(encode_message("/tapestry/subscribe", port), ("127.0.0.1", 5555))
            now[0] += 50
            server.handle_datagram(encode_message("/tapestry/subscribe", port), ("127.0.0.1", 5555))  # renew
            now[0] += 50
            wait_for(lambda: server._has_subscribers is True)
            server._service()
            assert ("127.0.0.1", port) in server._subscribers
            now[0] += 11
            wait_for(lambda: not server._has_subscribers, what="expiry")
            assert q.qsize() == 1  # one snapshot for the first subscription, none for the renewal
    finally:
        listener.close()


def test_publish_change_and_heartbeat_only_record_without_subscribers():
    tree = make_tree()
    server = OscServer(tree, queue.Queue(), OscConfig(port=0))
    server.publish_change("field/flow/speed", 2.0)
    server.heartbeat({"fps": 60})
    assert server._changes == {} and len(server._out) == 0


def test_fader_storm_is_coalesced_in_the_queue():
    tree = make_tree()
    q: queue.Queue = queue.Queue(maxsize=8)
    server = OscServer(tree, q, OscConfig(port=0, rate=1e6, burst=1e6))
    for i in range(1000):
        server.handle_datagram(encode_message("/tapestry/field/flow/speed", i / 250), ("127.0.0.1", 1))
    server.handle_datagram(encode_message("/tapestry/show/master", 0.5), ("127.0.0.1", 1))
    assert q.qsize() == 2
    target = Target(tree)
    while not q.empty():
        q.get_nowait().apply(target)
    assert tree.base("field/flow/speed") == pytest.approx(999 / 250) and tree.base("show/master") == 0.5
    # after the engine took it, a new set enqueues a new command
    server.handle_datagram(encode_message("/tapestry/field/flow/speed", 1.0), ("127.0.0.1", 1))
    assert q.qsize() == 1
    assert server.stats()["coalesced"] == 999


def test_full_queue_replies_busy_and_drops():
    tree = make_tree()
    q: queue.Queue = queue.Queue(maxsize=1)
    server = OscServer(tree, q, OscConfig(port=0))
    server.handle_datagram(encode_message("/tapestry/status"), ("127.0.0.1", 1))
    server.handle_datagram(encode_message("/tapestry/field/flow/speed", 2.0), ("127.0.0.1", 1))
    assert q.qsize() == 1 and server.stats()["queue_full"] == 1
    item = server._out.popleft()
    assert item[2] == "/tapestry/error" and "busy" in item[3][0]


def test_sender_outside_allow_list_is_dropped_silently():
    tree = make_tree()
    q: queue.Queue = queue.Queue()
    server = OscServer(tree, q, OscConfig(port=0, allow=("10.0.0.0/8",)))
    server.handle_datagram(encode_message("/tapestry/master", 0.1), ("127.0.0.1", 1))
    server.handle_datagram(encode_message("/tapestry/master", 0.1), ("::ffff:10.1.2.3", 1, 0, 0))
    assert server.stats()["not_allowed"] == 1 and q.qsize() == 1 and len(server._out) == 0


def test_rate_limit_per_sender():
    tree = make_tree()
    q: queue.Queue = queue.Queue()
    now = [0.0]
    server = OscServer(tree, q, OscConfig(port=0, rate=10.0, burst=5.0), clock=lambda: now[0])
    for _ in range(20):
        server.handle_datagram(encode_message("/tapestry/status"), ("127.0.0.2", 1))
    server.handle_datagram(encode_message("/tapestry/status"), ("127.0.0.3", 1))  # another sender is unaffected
    assert q.qsize() == 6 and server.stats()["rate_limited"] == 15
    now[0] += 1.0  # refilled: 10 more
    for _ in range(20):
        server.handle_datagram(encode_message("/tapestry/status"), ("127.0.0.2", 1))
    assert q.qsize() == 11


def test_oversize_and_malformed_get_error_replies(rig):
    c = rig.client()
    c.send_raw(b"/x\x00\x00,s\x00\x00" + b"a" * 5000 + b"\x00\x00\x00\x00")
    assert "larger than" in c.wait("/tapestry/error")[0]
    c.send_raw(b"/t\xff\x00,\x00\x00\x00")
    assert "UTF-8" in c.wait("/tapestry/error")[0]
    assert rig.server.stats()["oversize"] == 1 and rig.server.stats()["malformed"] == 1


def test_far_future_bundle_is_handled_at_once(rig):
    c = rig.client()
    bundle = encode_bundle([encode_message("/tapestry/field/flow/speed", 0.75), encode_message("/tapestry/get",
                                                                                                "field/flow/speed")],
                           timetag=(2**32 - 1) << 32)
    c.send_raw(bundle)
    assert c.wait("/tapestry/value") == ["field/flow/speed", 0.75]


def test_reply_port_config_sends_replies_elsewhere():
    tree = make_tree()
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    other.settimeout(5)
    try:
        server = OscServer(tree, queue.Queue(), OscConfig(port=0, reply_port=other.getsockname()[1]))
        with server:
            c = Client(server.address)
            c.send("/tapestry/list")
            data, _ = other.recvfrom(2048)
            c.close()
        assert parse_packet(data)[0].address == "/tapestry/paths"
    finally:
        other.close()


def test_split_args_and_pack_bundles_stay_under_1400_bytes():
    items = [f"field/layer{i:03d}/some/long/parameter/name" for i in range(300)]
    groups = split_args("/tapestry/paths", items)
    assert sum(groups, []) == items and len(groups) > 1
    assert all(len(encode_message("/tapestry/paths", *g)) < 1400 for g in groups)
    packets = [encode_message(f"/tapestry/{p}", 0.5) for p in items]
    datagrams = pack_bundles(packets)
    assert all(len(d) < 1400 for d in datagrams)
    assert [m.address for d in datagrams for m in parse_packet(d)] == [f"/tapestry/{p}" for p in items]


def test_a_param_colliding_with_a_command_is_refused():
    from installation.params import ParamError, ParamSpec, ParamTree

    tree = ParamTree.from_specs([ParamSpec("preset/load", "bool", False, "oops")])
    with pytest.raises(ParamError, match="collides"):
        OscServer(tree, queue.Queue())


def test_bind_failure_names_the_address():
    tree = make_tree()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            OscServer(tree, queue.Queue(), OscConfig(port=port)).start()


def test_engine_stand_in_applies_commands():
    tree = make_tree()
    q: queue.Queue = queue.Queue()
    e = Engine(Target(tree), q).start()
    try:
        assert e.call(lambda t: t.params.base("show/master")) == 1.0
    finally:
        e.stop()


@pytest.mark.parametrize("kwargs, key", [
    ({"port": 70000}, "osc.port"), ({"port": "9000"}, "osc.port"), ({"host": 5}, "osc.host"),
    ({"allow": "10.0.0.0/8"}, "osc.allow"), ({"allow": ("10.0.0.0/33",)}, "osc.allow"),
    ({"rate": 0}, "osc.rate"), ({"burst": float("nan")}, "osc.burst"), ({"reply_port": 0}, "osc.reply_port"),
    ({"max_datagram": 100000}, "osc.max_datagram"), ({"subscription_ttl_s": -1}, "osc.subscription_ttl_s"),
])
def test_config_errors_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        OscConfig(**kwargs)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback_server_answers():
    tree = make_tree()
    with OscServer(tree, queue.Queue(), OscConfig(host="::1", port=0)) as server:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as c:
            c.bind(("::1", 0))
            c.settimeout(5)
            c.sendto(encode_message("/tapestry/list"), server.address)
            data, _ = c.recvfrom(2048)
    assert parse_packet(data)[0].address == "/tapestry/paths"


def test_a_bundle_of_bad_messages_gets_a_capped_number_of_error_replies():
    tree = make_tree()
    q: queue.Queue = queue.Queue()
    server = OscServer(tree, q, OscConfig(port=0))
    bad = encode_bundle([encode_message("/tapestry/nope", 1.0)] * 60)
    server.handle_datagram(bad, ("127.0.0.1", 1))
    assert len(server._out) == 8 and server.stats()["refused"] == 60
    gets = encode_bundle([encode_message("/tapestry/get", "show/master")] * 20)
    server.handle_datagram(gets, ("127.0.0.1", 1))
    target = Target(tree)
    while not q.empty():
        q.get_nowait().apply(target)
    assert len(server._out) == 8 + 20  # the engine's answers are not capped


def test_error_replies_quoting_long_input_stay_small(rig):
    c = rig.client()
    c.send("/tapestry/" + "x" * 3000, 1.0)
    c.send("/tapestry/field/palette", "y" * 3000)
    for _ in range(2):
        (msg,) = c.wait("/tapestry/error")
        assert len(msg) <= 403 and msg.endswith("...")


def test_subscribe_without_port_uses_the_senders_port(rig):
    c = rig.client()
    c.send("/tapestry/subscribe")
    assert c.wait("/tapestry/subscribed")[0] == c.port
    c.send("/tapestry/field/flow/speed", 3.0)
    assert c.wait("/tapestry/field/flow/speed", pred=lambda a: a == [3.0]) == [3.0]


def test_permanent_subscribers_from_the_config_get_a_snapshot_and_never_expire():
    now = [0.0]
    tree = make_tree()
    q: queue.Queue = queue.Queue()
    listener = Client(("127.0.0.1", 9))  # only receives
    try:
        cfg = OscConfig(port=0, subscribers=(f"127.0.0.1:{listener.port}",))
        with OscServer(tree, q, cfg, clock=lambda: now[0]) as server:
            q.get_nowait().apply(Target(tree))  # the snapshot
            assert listener.wait("/tapestry/field/palette") == ["moss"]
            now[0] += 1e6
            server.heartbeat({"fps": 30.0})
            assert listener.wait("/tapestry/heartbeat")[0] == 30.0
    finally:
        listener.close()


@pytest.mark.parametrize("bad", ["nohost", "tablet:9001", "127.0.0.1:0", "127.0.0.1:x", 5])
def test_bad_permanent_subscriber_is_a_config_error(bad):
    with pytest.raises(ValueError, match="osc.subscribers"):
        OscConfig(subscribers=(bad,))


def test_complaints_are_logged_once_per_sender_and_kind_even_from_many_senders():
    import logging

    tree = make_tree()
    server = OscServer(tree, queue.Queue(), OscConfig(port=0, allow=("10.0.0.0/8",)))
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("installation.control.osc")
    logger.addHandler(handler)
    try:
        for _ in range(25):
            server.handle_datagram(b"junk", ("10.0.0.1", 1))  # malformed
        for i in range(3000):
            server.handle_datagram(b"junk", (f"192.168.{i // 250}.{i % 250}", 1))  # not allowed
        for _ in range(25):
            server.handle_datagram(b"junk", ("10.0.0.1", 1))
    finally:
        logger.removeHandler(handler)
    lines = [r.getMessage() for r in records]
    assert len(lines) <= 512 + 2
    assert sum("many senders" in m for m in lines) == 1
    assert sum("10.0.0.1" in m for m in lines) == 1
    assert server.stats()["not_allowed"] == 3000 and server.stats()["malformed"] == 50
