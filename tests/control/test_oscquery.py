"""OSCQuery over real HTTP and WebSocket, generated from the piece's whole parameter tree.

The node test walks EVERY declared parameter of the piece (engine + sensing) and compares the served node
with its ParamSpec.  The LISTEN test sends a real OSC datagram to the real OscServer and expects the
change as a binary OSC message on the WebSocket.  The "engine" here is a small loop on its own thread that
does what Engine.frame does for control (drain the queue, run on_frame callbacks): no GL is needed.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import socket
import struct
import threading
import time
import urllib.request

import pytest
from pythonosc.osc_message import OscMessage

from installation.control.bridge import EngineBridge
from installation.control.osc import OscConfig, OscServer
from installation.control.web import WebConfig, WebControl
from installation.engine import declare_all
from installation.params import BOOL, CHOICE, FLOAT, INT
from installation.sensing import PARAMS as SENSING_PARAMS

from tests.control.wsclient import WsClient


class MiniShow:
    """The control half of Engine.frame at ~60 Hz on its own thread: drain commands, then on_frame."""

    def __init__(self) -> None:
        self.params = declare_all(extra=SENSING_PARAMS)
        self.commands: queue.Queue = queue.Queue(maxsize=4096)
        self.on_frame: list = []
        self.preset_name = "harmony"
        self.scenes = None
        self.schedule = None
        self.schedule_level = 1.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def preset_names(self) -> list[str]:
        return ["harmony", "tension"]

    def _run(self) -> None:
        while not self._stop.is_set():
            for _ in range(512):
                try:
                    self.commands.get_nowait().apply(self)
                except queue.Empty:
                    break
            for cb in self.on_frame:
                cb(self)
            time.sleep(1 / 60)

    def start(self) -> "MiniShow":
        self._t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._t.join(5)


@pytest.fixture
def show():
    s = MiniShow()
    bridge = EngineBridge()
    bridge.attach(s)
    osc = OscServer(s.params, s.commands, OscConfig(port=0))
    osc.start()
    web = WebControl(WebConfig(enabled=True, port=0), s.params, s.commands, bridge, osc_port=osc.address[1])
    assert web.start()
    s.start()
    yield s, web, osc
    s.stop()
    web.stop()
    osc.stop()


def get_json(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, (json.loads(r.read()) if r.status == 200 else None)


def check_every_node(port: int, tree) -> int:
    """Compare the served node of every parameter of ``tree`` with its ParamSpec; returns how many."""
    specs = tree.specs()
    _, root = get_json(port, "/")
    seen = 0
    for spec in specs:
        node = root
        for part in ("tapestry/" + spec.path).split("/"):
            node = node["CONTENTS"][part]
        # the whole tree and the node's own URL agree
        assert get_json(port, "/tapestry/" + spec.path)[1] == node
        assert node["FULL_PATH"] == "/tapestry/" + spec.path
        assert node["TYPE"] == {FLOAT: "f", INT: "i", BOOL: "T", CHOICE: "s"}[spec.kind]
        assert node["DESCRIPTION"] == spec.description
        assert node["ACCESS"] == 3
        assert node["VALUE"] == [tree.base(spec.path)]
        assert node.get("UNIT", [""]) == [spec.unit]
        if spec.kind in (FLOAT, INT):
            assert node["RANGE"] == [{"MIN": spec.lo, "MAX": spec.hi}] and node["CLIPMODE"] == "both"
        elif spec.kind == CHOICE:
            assert node["RANGE"] == [{"VALS": list(spec.choices)}]
        seen += 1
    assert seen == len(specs)  # 100 % of the parameters
    return seen


def test_every_parameter_node_matches_its_paramspec(show):
    s, web, _ = show
    assert check_every_node(web.port, s.params) > 50


def test_attribute_queries_host_info_and_commands(show):
    s, web, osc = show
    assert get_json(web.port, "/tapestry/show/master?VALUE")[1] == {"VALUE": [1.0]}
    assert get_json(web.port, "/tapestry/show/master?RANGE")[1] == {"RANGE": [{"MIN": 0.0, "MAX": 1.0}]}
    info = get_json(web.port, "/?HOST_INFO")[1]
    assert info["OSC_PORT"] == osc.address[1] and info["OSC_TRANSPORT"] == "UDP" and info["EXTENSIONS"]["LISTEN"]
    load = get_json(web.port, "/tapestry/preset/load")[1]
    assert load["ACCESS"] == 2 and load["TYPE"] == "sf" and load["RANGE"][0]["VALS"] == ["harmony", "tension"]
    for path in ("/tapestry/preset/save", "/tapestry/scene/go", "/tapestry/show/blackout"):
        assert get_json(web.port, path)[0] == 200
    with pytest.raises(urllib.error.HTTPError) as e:
        get_json(web.port, "/tapestry/no/such")
    assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        get_json(web.port, "/tapestry/show/master?BOGUS")
    assert e.value.code == 400 and "unknown attribute" in json.loads(e.value.read())["error"]


def _osc_send(port: int, address: str, value: float) -> None:
    from pythonosc.osc_message_builder import OscMessageBuilder
    b = OscMessageBuilder(address)
    b.add_arg(value)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b.build().dgram, ("127.0.0.1", port))


def test_a_change_over_osc_reaches_a_listen_client_as_binary_osc(show):
    s, web, osc = show
    ws = WsClient(web.port, "/")
    ws.send_json({"COMMAND": "LISTEN", "DATA": "/tapestry/show/master"})
    ws.send_json({"COMMAND": "LISTEN", "DATA": "/tapestry/field/flow/speed"})
    time.sleep(0.1)  # the LISTENs are read before the change arrives
    _osc_send(osc.address[1], "/tapestry/show/master", 0.25)
    opcode, payload = ws.recv()
    assert opcode == 0x2
    msg = OscMessage(payload)
    assert msg.address == "/tapestry/show/master" and msg.params == [pytest.approx(0.25)]
    # IGNORE stops it; a path not listened to never arrives
    ws.send_json({"COMMAND": "IGNORE", "DATA": "/tapestry/show/master"})
    time.sleep(0.1)
    _osc_send(osc.address[1], "/tapestry/show/master", 0.5)
    _osc_send(osc.address[1], "/tapestry/field/flow/speed", 0.5)
    msg = OscMessage(ws.recv()[1])
    assert msg.address == "/tapestry/field/flow/speed" and msg.params == [pytest.approx(0.5)]
    ws.close()


def test_bad_listen_requests_get_a_clear_answer_and_the_socket_stays_usable(show):
    s, web, osc = show
    ws = WsClient(web.port, "/")
    nested = "[" * 30000 + "]" * 30000   # deeper than the parser recurses: was a close (1011)
    for bad in ("not json", json.dumps({"COMMAND": "DANCE", "DATA": "/x"}), json.dumps([1, 2]), nested):
        ws.send_text(bad)
        opcode, payload = ws.recv()
        assert opcode == 0x1 and "ERROR" in json.loads(payload)
    ws.send_json({"COMMAND": "LISTEN", "DATA": "/tapestry/nope"})
    assert "no readable value" in json.loads(ws.recv()[1])["ERROR"]
    ws.send_json({"COMMAND": "LISTEN", "DATA": "/tapestry/show/master"})
    time.sleep(0.1)
    _osc_send(osc.address[1], "/tapestry/show/master", 0.75)
    assert OscMessage(ws.recv()[1]).params == [pytest.approx(0.75)]
    ws.close()


def test_writes_over_http_to_oscquery_are_refused(show):
    s, web, _ = show
    req = urllib.request.Request(f"http://127.0.0.1:{web.port}/tapestry/show/master", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405


def test_listen_takes_a_path_however_slashed_and_never_walks_the_whole_tree(show, monkeypatch):
    """A LISTEN was answered by building the whole OSCQuery tree: a flood of them held the server thread
    (and through the GIL the frame loop) for minutes.  And "tapestry/show/master" was accepted, then silent."""
    s, web, osc = show
    walks = []
    real_tree = web.query.tree
    monkeypatch.setattr(web.query, "tree", lambda: walks.append(1) or real_tree())
    ws = WsClient(web.port, "/")
    for _ in range(200):
        ws.send_json({"COMMAND": "LISTEN", "DATA": "tapestry//show/master"})
    ws.send_json({"COMMAND": "LISTEN", "DATA": "/tapestry/show"})  # a container has no value
    assert "no readable value" in json.loads(ws.recv()[1])["ERROR"]
    assert walks == []
    _osc_send(osc.address[1], "/tapestry/show/master", 0.3)
    msg = OscMessage(ws.recv()[1])
    assert msg.address == "/tapestry/show/master" and msg.params == [pytest.approx(0.3)]
    ws.close()


def test_a_closed_listen_session_is_forgotten_at_once(show):
    """Sessions were dropped only when a parameter changed: a show that changes nothing for hours kept
    every closed client (and its queue) in memory."""
    s, web, osc = show
    for _ in range(20):
        ws = WsClient(web.port, "/")
        ws.send_json({"COMMAND": "LISTEN", "DATA": "/tapestry/show/master"})
        ws.close()
    deadline = time.monotonic() + 5
    while web.query._sessions:
        assert time.monotonic() < deadline, f"{len(web.query._sessions)} closed sessions kept"
        time.sleep(0.02)



def test_a_client_that_resets_right_after_the_handshake_leaves_no_listen_session(show):
    """A reset as the 101 went out raised out of drain(), past the cleanup: the LISTEN session stayed
    registered for good (136 of 200 such clients), every broadcast looping over them."""
    _, web, _ = show
    for _ in range(200):
        c = socket.create_connection(("127.0.0.1", web.port))
        key = base64.b64encode(os.urandom(16)).decode()
        c.sendall(f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # close = reset
        c.close()
    deadline = time.monotonic() + 5
    while web.query._sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not web.query._sessions, f"{len(web.query._sessions)} sessions kept after their clients reset"
