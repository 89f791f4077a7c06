"""Controller discovery on loopback: packet formats (checked against the `sacn` library's own parser and
a hand-built ArtPollReply), a responder on a real socket, missing / mismatched controllers, the health
board and ``run.py status`` lines, bad venue keys and junk on the wire.

Everything binds OS-chosen ports on loopback; the broadcast and fixed-port cases (OLA's Art-Net node,
another sACN source) are in test_discovery_netns.py.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
import uuid

import pytest

from installation.health import HealthBoard, format_status
from installation.outputs.discovery import (DISCOVERY_GROUP, Discovery, DiscoveryConfig, DiscoveryConfigError,
                                            Expected, artpoll_packet, format_controllers, parse_artpollreply,
                                            parse_universe_discovery, universe_discovery_packets)


def hand_built_reply(ip: str, short: str, net: int, sub: int, sw_out: list[int]) -> bytes:
    """An ArtPollReply laid out field by field from the Art-Net 4 spec (independent of the module's builder)."""
    ports = len(sw_out)
    return b"".join([
        b"Art-Net\x00", struct.pack("<H", 0x2100), socket.inet_aton(ip), struct.pack("<H", 6454),
        struct.pack(">H", 0x0102),                      # VersInfo
        bytes([net, sub]), struct.pack(">H", 0x2BE0),   # NetSwitch, SubSwitch, Oem
        b"\x00", b"\xd0", struct.pack("<H", 0x7FF0),    # Ubea, Status1, EstaMan
        short.encode().ljust(18, b"\x00"), (short + " long name").encode().ljust(64, b"\x00"),
        b"#0001 [0042] Power On Tests successful".ljust(64, b"\x00"),
        struct.pack(">H", ports), bytes([0x80] * ports + [0] * (4 - ports)),   # NumPorts, PortTypes
        bytes(4), bytes([0x80] * ports + [0] * (4 - ports)),                   # GoodInput, GoodOutputA
        bytes(4), bytes(sw_out + [0] * (4 - ports)),                           # SwIn, SwOut
        bytes([100, 0, 0]), bytes(3), b"\x00",                                 # AcnPriority, SwMacro, SwRemote, spare, Style
        bytes.fromhex("0250c2aabbcc"), socket.inet_aton(ip), b"\x01", b"\x08",  # MAC, BindIp, BindIndex, Status2
        bytes(4), b"\x00", bytes(6), bytes(2), bytes(2), bytes(11),           # GoodOutputB .. filler
    ])


class Responder:
    """An Art-Net node on a real loopback socket: answers each ArtPoll with an ArtPollReply to the poller."""

    def __init__(self, ip: str, short: str, universes: list[int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        net, sub = universes[0] >> 8, (universes[0] >> 4) & 0xF
        self.reply = hand_built_reply(ip, short, net, sub, [u & 0xF for u in universes])
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except (socket.timeout, OSError):
                continue
            if data[:8] == b"Art-Net\x00" and data[8:10] == b"\x00\x20":
                self.polls += 1
                self.sock.sendto(self.reply, addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def wait_for(pred, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return None


def test_artpoll_is_the_art_net_4_packet():
    p = artpoll_packet()
    assert p[:8] == b"Art-Net\x00"
    assert struct.unpack("<H", p[8:10])[0] == 0x2000            # OpCode, little-endian
    assert p[10:12] == b"\x00\x0e"                                 # ProtVer 14, hi byte first
    assert len(p) == 14


def test_artpollreply_fields_decode():
    node = parse_artpollreply(hand_built_reply("10.0.0.7", "Strip-Node", net=1, sub=2, sw_out=[0, 1, 5]))
    assert node is not None
    assert (node.ip, node.port, node.short_name, node.long_name) == ("10.0.0.7", 6454, "Strip-Node",
                                                                     "Strip-Node long name")
    assert node.outputs == (0x120, 0x121, 0x125)                   # Net:SubNet:Universe
    assert node.mac == "02:50:c2:aa:bb:cc" and node.bind_index == 1
    # junk, truncated replies and other opcodes are not nodes
    assert parse_artpollreply(artpoll_packet()) is None
    assert parse_artpollreply(hand_built_reply("10.0.0.7", "x", 0, 0, [0])[:150]) is None
    assert parse_artpollreply(os.urandom(239)) is None


def test_universe_discovery_packets_read_by_the_sacn_library_and_back():
    sacn_ud = pytest.importorskip("sacn.messages.universe_discovery")
    cid = uuid.uuid4().bytes
    unis = list(range(1, 700))
    ours = universe_discovery_packets(cid, "Tapestry rim", unis)
    assert len(ours) == 2                                          # 512 universes a page
    theirs = [sacn_ud.UniverseDiscoveryPacket.make_universe_discovery_packet(list(p)) for p in ours]
    assert [(t.page, t.lastPage) for t in theirs] == [(0, 1), (1, 1)]
    assert list(theirs[0].universes) + list(theirs[1].universes) == unis
    assert theirs[0].sourceName == "Tapestry rim" and bytes(theirs[0].cid) == cid
    # and what the sacn library sends, we read
    pkts = sacn_ud.UniverseDiscoveryPacket.make_multiple_uni_disc_packets(tuple(cid), "console", [7, 3, 1])
    page = parse_universe_discovery(bytes(pkts[0].getBytes()))
    assert page is not None and page.universes == (1, 3, 7) and page.source_name == "console"
    assert page.cid == str(uuid.UUID(bytes=cid))
    assert parse_universe_discovery(os.urandom(300)) is None


def test_discovery_finds_the_node_and_reports_missing_and_mismatched_controllers():
    live = Responder("127.0.0.2", "wall-node", [0, 1])
    wrong = Responder("127.0.0.4", "net-node", [16, 17])
    dead_port = live.port + 1 if live.port < 65535 else live.port - 1
    published: list[dict] = []
    board = HealthBoard()
    expected = [
        Expected("wall", "artnet", "127.0.0.2", live.port, (0, 1)),
        Expected("floor", "artnet", "127.0.0.3", dead_port, (2,)),     # powered off: nothing answers
        Expected("net", "artnet", "127.0.0.4", wrong.port, (16, 18)),  # answers, but not universe 18
        Expected("rim", "sacn", "127.0.0.5", 9, (1,)),
        Expected("pixels", "ddp", "127.0.0.6", 9),
    ]
    cfg = DiscoveryConfig(interval_s=1.0, missing_after=2, artnet_port=0, sacn_listen=False, poll_loopback=True)

    def publish(doc):
        published.append(doc)
        board.set_section("controllers", doc)

    d = Discovery(expected, cfg, publish=publish).start()
    try:
        doc = wait_for(lambda: (r := d.report())["expected"]["floor"]["state"] == "missing" and r)
    finally:
        d.stop()
        live.close()
        wrong.close()
    assert doc, d.report()
    e = doc["expected"]
    assert e["wall"]["state"] == "ok" and e["wall"]["node"] == "wall-node", e["wall"]
    assert e["floor"]["state"] == "missing" and "no ArtPollReply from 127.0.0.3" in e["floor"]["reason"]
    assert e["net"]["state"] == "mismatch" and "18" in e["net"]["reason"], e["net"]
    assert e["rim"]["state"] == "unverified" and e["pixels"]["state"] == "unverified"
    assert doc["state"] == "missing" and doc["missing"] == ["floor"] and doc["unexpected"] == []
    assert live.polls >= 2 and published
    # the board: degraded, naming the controllers; the status command and /metrics say so too
    board.record_frame(16.0)
    report = board.report()
    assert report["status"] == "degraded"
    assert "controller/floor" in report["unhealthy"] and "controller/net" in report["unhealthy"]
    assert "controller/wall" not in report["unhealthy"]
    text = format_status(report)
    assert "controllers: missing" in text and "floor" in text and "wall-node" in text
    assert 'tapestry_controller_ok{controller="floor"} 0' in board.metrics()
    assert 'tapestry_controller_ok{controller="wall"} 1' in board.metrics()


def test_a_node_that_comes_back_is_ok_again():
    node = Responder("127.0.0.2", "wall-node", [0])
    port = node.port
    cfg = DiscoveryConfig(interval_s=1.0, missing_after=1, artnet_port=0, sacn_listen=False, poll_loopback=True)
    d = Discovery([Expected("wall", "artnet", "127.0.0.2", port, (0,))], cfg).start()
    try:
        assert wait_for(lambda: d.report()["expected"]["wall"]["state"] == "ok"), d.report()
        node.close()                                               # the controller loses power
        assert wait_for(lambda: d.report()["expected"]["wall"]["state"] == "missing"), d.report()
        back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        back.bind(("127.0.0.2", port))                             # ... and comes back on the same port
        back.settimeout(0.2)
        reply = hand_built_reply("127.0.0.2", "wall-node", 0, 0, [0])
        end = time.monotonic() + 10
        while time.monotonic() < end and d.report()["expected"]["wall"]["state"] != "ok":
            try:
                data, addr = back.recvfrom(2048)
                back.sendto(reply, addr)
            except socket.timeout:
                pass
        back.close()
        assert d.report()["expected"]["wall"]["state"] == "ok", d.report()
    finally:
        d.stop()


def test_loopback_outputs_are_local_and_nothing_is_bound_for_them():
    """The demo venue (every output on 127.0.0.1) binds no Art-Net or sACN port and says so plainly."""
    d = Discovery([Expected("wall", "artnet", "127.0.0.1", None, (0,)), Expected("rim", "sacn", "127.0.0.1", None, (1,))],
                  DiscoveryConfig())
    assert not d.polls_artnet and not d.listens_sacn and not d.announces_sacn
    d.start()
    try:
        doc = d.report()
    finally:
        d.stop()
    assert d.artnet_bound_port is None and d.sacn_bound_port is None
    assert doc["expected"]["wall"]["state"] == "local" and doc["state"] == "unverified"
    board = HealthBoard()
    board.set_section("controllers", doc)
    board.record_frame(16.0)
    assert board.report()["status"] == "ok"


def test_junk_and_floods_do_not_stop_discovery():
    node = Responder("127.0.0.2", "wall-node", [0])
    cfg = DiscoveryConfig(interval_s=1.0, missing_after=2, artnet_port=0, sacn_listen=False, poll_loopback=True)
    d = Discovery([Expected("wall", "artnet", "127.0.0.2", node.port, (0,)),
                   Expected("floor", "artnet", "127.0.0.3", node.port, (1,))], cfg).start()
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        forged = hand_built_reply("127.0.0.3", "floor-node", 0, 0, [1])   # claims to be the dead controller
        bad = [b"", b"Art-Net\x00", b"Art-Net\x00\x00\x21" + os.urandom(30), os.urandom(1400),
               hand_built_reply("127.0.0.9", "x", 0, 0, [0])[:206], b"\xff" * 600, forged,
               b"Art-Net\x00\x00\x21" + os.urandom(229)]
        for i in range(4000):
            junk.sendto(bad[i % len(bad)], ("127.0.0.1", d.artnet_bound_port))
        assert wait_for(lambda: d.report()["expected"]["floor"]["state"] == "missing"), d.report()
        doc = d.report()
        assert doc["expected"]["wall"]["state"] == "ok", doc
        assert d._thread is not None and d._thread.is_alive()
        # the junk came from 127.0.0.1, which is no controller of the venue: listed once, as unexpected
        assert [u["ip"] for u in doc["unexpected"]] == ["127.0.0.1"]
    finally:
        junk.close()
        d.stop()
        node.close()


@pytest.mark.parametrize("table, message", [
    ({"interval_s": 0.1}, "interval_s must be in 1.0..60.0"),
    ({"broadcast": "yes"}, "broadcast must be true or false"),
    ({"broadcast_address": "10.0.0"}, "broadcast_address must be an IPv4 address"),
    ({"intervall_s": 3}, "unknown key 'intervall_s'"),
    ({"missing_after": 0}, "missing_after must be in 1..100"),
    ("on", "expected a table"),
    ({"wled_port": 0}, "wled_port must be in 1..65535"),
])
def test_bad_discovery_keys_are_named(table, message):
    with pytest.raises(DiscoveryConfigError) as err:
        DiscoveryConfig.from_sections({"discovery": table}, "venue.toml")
    assert message in str(err.value) and "venue.toml: [discovery]" in str(err.value)


def test_discovery_keys_read():
    cfg = DiscoveryConfig.from_sections({"discovery": {"broadcast": True, "broadcast_address": "10.1.255.255",
                                                       "interval_s": 3, "sacn_announce": False}})
    assert cfg.broadcast and cfg.broadcast_address == "10.1.255.255" and cfg.interval_s == 3.0
    assert cfg.sacn_announce is False and DiscoveryConfig.from_sections({}) == DiscoveryConfig()
    assert format_controllers({}) == [] and DISCOVERY_GROUP == "239.255.250.214"


class FakeWled:
    """An HTTP server on a loopback address answering GET /json/info as WLED 0.14 does (trimmed to
    the fields discovery reads, plus a few real ones)."""

    def __init__(self, host: str, leds: int, name: str = "WLED-net", port: int = 0) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        info = {"ver": "0.14.0", "vid": 2310130, "leds": {"count": leds, "pwr": 0, "fps": 0, "maxpwr": 850,
                                                           "maxseg": 32, "seglc": [1], "lc": 1, "rgbw": False, "wv": 0},
                "str": False, "name": name, "udpport": 21324, "live": False, "brand": "WLED", "product": "FOSS",
                "mac": "c8c9a3aabbcc", "ip": host}
        body = json.dumps(info).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path != "/json/info":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_wled_controllers_are_asked_through_their_json_api():
    ok = FakeWled("127.0.0.2", leds=300)
    port = ok.port                                                   # one wled_port: each fake on its own address
    short = FakeWled("127.0.0.3", leds=50, name="short-strip", port=port)
    cfg = DiscoveryConfig(interval_s=1.0, missing_after=2, sacn_listen=False, poll_loopback=True, wled=True,
                          wled_port=port)
    d = Discovery([Expected("net", "ddp", "127.0.0.2", None, size=300 * 3),
                   Expected("strip", "ddp", "127.0.0.3", None, size=60 * 3),
                   Expected("gone", "ddp", "127.0.0.4", None, size=30)], cfg).start()
    try:
        doc = wait_for(lambda: (r := d.report())["expected"]["gone"]["state"] == "missing"
                       and r["expected"]["strip"]["state"] != "checking" and r)
    finally:
        d.stop()
        ok.close()
        short.close()
    assert doc, d.report()
    e = doc["expected"]
    assert e["net"]["state"] == "ok" and e["net"]["node"] == "WLED-net" and e["net"]["node_leds"] == 300, e["net"]
    assert e["strip"]["state"] == "mismatch" and "has 50 LEDs; we send 60" in e["strip"]["reason"], e["strip"]
    assert e["gone"]["state"] == "missing" and "no answer from http://127.0.0.4" in e["gone"]["reason"]
    assert d.artnet_bound_port is None                              # no Art-Net output: nothing bound for it
