"""The bounded HTTP server (installation.control.http) under the abuse a LAN-facing server meets:
a thousand connections, slow and half-open clients, malformed requests, oversized bodies and frames.
Real sockets on loopback, OS-chosen ports; the server must keep answering /health throughout."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.request

import pytest

from installation.control.http import HttpLimits, HttpServer, Response, WsSession
from installation.health import HealthBoard, HealthServer

from tests.control.wsclient import WsClient


def get(port: int, path: str = "/health", timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


@pytest.fixture
def health():
    board = HealthBoard()
    board.update({"fps": 60.0, "outputs": {"wall": {"state": "ok"}}})
    srv = HealthServer(board, port=0)
    assert srv.start()
    yield srv
    srv.stop()


def _threads() -> int:
    return threading.active_count()


def test_health_answers_the_same_json_and_metrics(health):
    code, body = get(health.port)
    assert code == 200 and json.loads(body)["status"] == "ok"
    code, body = get(health.port, "/metrics")
    assert code == 200 and b"tapestry_" in body
    code, body = get(health.port, "/nope")
    assert code == 404 and "error" in json.loads(body)


def test_a_thousand_half_open_connections_start_no_threads_and_health_still_answers(health):
    """Today's ThreadingHTTPServer made one thread per connection (1,022 -> fd exhaustion)."""
    before = _threads()
    socks = []
    try:
        for _ in range(1000):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", health.port))
            socks.append(s)
        for s in socks[:200]:  # some of them start a request and never finish it (slowloris)
            try:
                s.send(b"GET /health HTTP/1.1\r\nX-Slow: ")
            except OSError:
                pass
        time.sleep(0.5)
        assert _threads() <= before + 1
        code, body = get(health.port, timeout=5)  # answered WHILE the thousand are held open
        assert code == 200 and json.loads(body)["status"] == "ok"
        # beyond the cap the server refuses at once, and a fresh client still gets its answer once
        # the cap frees up; meanwhile the process has file descriptors left (no exhaustion)
        fds = len(os.listdir("/proc/self/fd"))
        assert fds < 20000 - 100
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 10
    while True:  # the server notices the closed sockets; then /health answers again
        try:
            code, body = get(health.port, timeout=2)
            break
        except OSError:
            assert time.monotonic() < deadline, "/health did not come back after the flood closed"
    assert code == 200


def test_beyond_the_cap_clients_get_a_clear_503():
    """Every slot busy with a client that talks (WebSockets here): the next one is refused clearly."""
    srv = HttpServer({"/": lambda r: Response.text("hi")}, ws_handler=lambda r: WsSession(),
                     limits=HttpLimits(max_connections=4))
    assert srv.start()
    busy = [WsClient(srv.port, "/") for _ in range(4)]
    try:
        reply = raw(srv.port, b"GET / HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 503") and b"too many connections" in reply
        assert srv.stats()["refused_full"] >= 1
    finally:
        for ws in busy:
            ws.close()
    deadline = time.monotonic() + 5
    while get(srv.port, "/")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    srv.stop()


def test_silent_connections_make_room_for_a_client_that_talks():
    srv = HttpServer({"/": lambda r: Response.text("hi")}, limits=HttpLimits(max_connections=4, head_timeout_s=30))
    assert srv.start()
    idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(4)]
    try:
        time.sleep(0.2)
        assert get(srv.port, "/") == (200, b"hi")
        assert srv.stats()["evicted_idle"] >= 1 and srv.stats()["refused_full"] == 0
    finally:
        for s in idle:
            s.close()
    srv.stop()


def test_slow_client_is_cut_off_with_408_and_others_are_served():
    srv = HttpServer({"/": lambda r: Response.text("hi")}, limits=HttpLimits(head_timeout_s=0.5))
    assert srv.start()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\n")
    assert get(srv.port, "/")[0] == 200  # served while the slow one dribbles
    s.sendall(b"X-A: 1\r\n")
    reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 408")
    s.close()
    assert srv.stats()["timeouts"] == 1
    srv.stop()


@pytest.mark.parametrize("request_bytes, status", [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"GET /health\r\n\r\n", b"400"),
    (b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
    (b"GET /health HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
    (b"POST /health HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", b"413"),
    (b"POST /health HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"400"),
    (b"POST /health HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", b"400"),  # a digit to str.isdigit, not to int()
    (b"POST /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"411"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", b"400"),  # a TLS hello
])
def test_malformed_requests_get_a_clear_refusal(health, request_bytes, status):
    reply = raw(health.port, request_bytes)
    assert reply.split(b" ")[1] == status
    assert b'"error"' in reply
    assert get(health.port)[0] == 200


def test_a_route_that_raises_answers_500_and_the_server_goes_on():
    def broken(req):
        raise RuntimeError("boom")
    srv = HttpServer({"/b": broken, "/ok": lambda r: Response.text("ok")})
    assert srv.start()
    code, body = get(srv.port, "/b")
    assert code == 500 and b"boom" in body
    assert get(srv.port, "/ok") == (200, b"ok")
    srv.stop()


def test_keep_alive_serves_several_requests_on_one_connection(health):
    s = socket.create_connection(("127.0.0.1", health.port), timeout=5)
    for _ in range(3):
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        n = int([ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0].split(b":")[1])
        body = b""
        while len(body) < n:
            body += s.recv(n - len(body))
        assert json.loads(body)["status"] == "ok"
    s.close()


class Echo(WsSession):
    def on_text(self, text):
        self.send_text(text.upper())


def test_websocket_echo_and_oversized_frame_is_closed_1009():
    srv = HttpServer({}, ws_handler=lambda r: Echo(), limits=HttpLimits(ws_max_frame_bytes=1000))
    assert srv.start()
    ws = WsClient(srv.port, "/")
    ws.send_text("hello")
    assert ws.recv() == (0x1, b"HELLO")
    ws.send_text("x" * 5000)
    opcode, payload = ws.recv()
    assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1009
    ws.close()
    ws2 = WsClient(srv.port, "/")  # the server still takes new clients
    ws2.send_text("again")
    assert ws2.recv() == (0x1, b"AGAIN")
    ws2.close()
    srv.stop()


def test_websocket_without_handler_or_bad_handshake_is_refused(health):
    reply = raw(health.port, b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 404")
    reply = raw(health.port, b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400")


def test_busy_port_is_reported_not_raised(health):
    other = HttpServer({}, port=health.port)
    assert other.start() is False


class Flood(WsSession):
    instances: list = []

    def on_open(self):
        Flood.instances.append(self)

    def on_text(self, text):
        for _ in range(5000):
            self.send_binary(b"x" * 1024)


def test_a_websocket_client_that_does_not_read_is_dropped_not_buffered():
    srv = HttpServer({"/": lambda r: Response.text("hi")}, ws_handler=lambda r: Flood(),
                     limits=HttpLimits(ws_queue=64))
    assert srv.start()
    Flood.instances.clear()
    ws = WsClient(srv.port, "/")
    ws.send_text("go")  # the server wants to send 5 MB; the client reads nothing
    deadline = time.monotonic() + 5
    while not (Flood.instances and Flood.instances[-1].closed):
        assert time.monotonic() < deadline, "a client that does not read was kept"
        time.sleep(0.01)
    deadline = time.monotonic() + 5
    while srv.stats()["websockets_open"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert get(srv.port, "/") == (200, b"hi")
    ws.sock.close()
    srv.stop()


def test_a_client_over_its_request_rate_gets_429_and_others_are_unaffected():
    srv = HttpServer({"/": lambda r: Response.text("hi")}, host="127.0.0.1",
                     limits=HttpLimits(client_rate=5, client_burst=10))
    assert srv.start()
    codes = [get(srv.port, "/")[0] for _ in range(30)]
    assert codes[:10] == [200] * 10 and 429 in codes
    code, body = get(srv.port, "/")
    assert code == 429 and "slow down" in json.loads(body)["error"]
    time.sleep(0.5)  # the bucket refills: the same client is served again
    assert get(srv.port, "/")[0] == 200
    srv.stop()


def test_websocket_payloads_of_every_length_form_are_unmasked_intact():
    srv = HttpServer({}, ws_handler=lambda r: Echo())
    assert srv.start()
    ws = WsClient(srv.port, "/")
    for n in (0, 1, 5, 125, 126, 3001, 65535):  # 7-bit, 16-bit lengths; n % 4 of each kind
        text = "".join(chr(97 + (i * 7) % 26) for i in range(n))
        ws.send_text(text)
        assert ws.recv() == (0x1, text.upper().encode())
    ws.close()
    srv.stop()


def test_websocket_messages_count_against_the_socket_rate_and_none_is_lost():
    """A LISTEN flood once kept the server thread (and through the GIL the frame loop) busy for minutes:
    WebSocket frames now spend the socket's budget; over it the server reads more slowly."""
    srv = HttpServer({}, ws_handler=lambda r: Echo(), limits=HttpLimits(ws_rate=40, ws_burst=10))
    assert srv.start()
    ws = WsClient(srv.port, "/")
    t0 = time.monotonic()
    for i in range(50):
        ws.send_text(f"m{i}")
    got = [ws.recv() for _ in range(50)]
    elapsed = time.monotonic() - t0
    assert got == [(0x1, f"M{i}".encode()) for i in range(50)]  # every message answered, in order
    assert elapsed >= 0.8, f"50 messages at 40/s (burst 10) were read in {elapsed:.2f} s"
    assert srv.stats()["rate_limited"] >= 1
    ws.close()
    srv.stop()


def test_a_client_following_every_path_at_once_leaves_the_page_on_its_tablet_served():
    """An OSCQuery client LISTENs to each path it shows on connecting (a thousand messages at once); while
    WebSocket frames spent the address's request budget, the page on the same tablet got 429s for seconds."""
    srv = HttpServer({"/": lambda r: Response.text("page")}, ws_handler=lambda r: Echo())
    assert srv.start()
    ws = WsClient(srv.port, "/")
    for i in range(1000):
        ws.send_text(f"/tapestry/p{i}")
    assert [ws.recv()[1] for _ in range(1000)][-1] == b"/TAPESTRY/P999"
    assert [get(srv.port, "/")[0] for _ in range(20)] == [200] * 20
    assert srv.stats()["rate_limited"] == 0
    ws.close()
    srv.stop()


def test_a_websocket_client_that_stops_mid_frame_is_cut_off():
    srv = HttpServer({}, ws_handler=lambda r: Echo(), limits=HttpLimits(body_timeout_s=0.3))
    assert srv.start()
    ws = WsClient(srv.port, "/")
    ws.sock.sendall(bytes([0x81, 0x80 | 126]))  # a 16-bit length follows ... never
    deadline = time.monotonic() + 3
    while srv.stats()["websockets_open"]:
        assert time.monotonic() < deadline, "a half-sent frame header held a WebSocket slot for ever"
        time.sleep(0.02)
    ws.sock.close()
    srv.stop()


def test_a_silent_websocket_is_pinged_and_kept_while_it_answers():
    """An OSCQuery client that only LISTENs sends nothing: it is pinged, and its pong keeps it."""
    srv = HttpServer({}, ws_handler=lambda r: Echo(), limits=HttpLimits(ws_idle_timeout_s=0.6))
    assert srv.start()
    ws = WsClient(srv.port, "/")
    for _ in range(3):  # 3 x half the idle time: it would have been closed as idle without the pongs
        opcode, payload = ws.recv()
        assert opcode == 0x9
        ws._send(0xA, payload)
    ws.send_text("still here")
    assert ws.recv() == (0x1, b"STILL HERE")
    mute = WsClient(srv.port, "/")  # one that answers nothing is closed after the whole idle time
    assert mute.recv()[0] == 0x9
    opcode, payload = mute.recv()
    assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1001
    ws.close()
    mute.sock.close()
    srv.stop()


def test_json_nested_too_deeply_is_a_400_not_a_500():
    def route(req):
        return Response.json(req.json())
    srv = HttpServer({"/j": route})
    assert srv.start()
    body = b"[" * 30000 + b"]" * 30000  # under the 64 KiB body limit, far over the recursion limit
    reply = raw(srv.port, b"POST /j HTTP/1.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert reply.startswith(b"HTTP/1.1 400") and b"nested too deeply" in reply
    srv.stop()


def test_a_websocket_that_keeps_flooding_is_cut_off_not_read_slowly_for_ever():
    """Read at the client rate, a flood in the kernel's buffers lasted half an hour after the client left,
    holding one of the 16 WebSocket slots: a socket kept over the rate for ws_flood_s is closed (1008), each
    of several flooding from one address."""
    srv = HttpServer({}, ws_handler=lambda r: Echo(), limits=HttpLimits(ws_rate=20, ws_burst=5, ws_flood_s=0.5))
    assert srv.start()
    clients = [WsClient(srv.port, "/") for _ in range(3)]
    t0 = time.monotonic()
    for ws in clients:
        for i in range(100):  # 5 s worth at 20/s each
            ws.send_text("x")
    for ws in clients:
        while True:
            opcode, payload = ws.recv()
            if opcode == 0x8:
                break
        assert int.from_bytes(payload[:2], "big") == 1008 and b"messages/s" in payload
        ws.sock.close()
    assert time.monotonic() - t0 < 4
    deadline = time.monotonic() + 3
    while srv.stats()["websockets_open"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    srv.stop()



def test_a_websocket_over_its_rate_now_and_then_is_not_taken_for_a_flood():
    """Two short bursts over the rate, more than ws_flood_s apart, with talk under the rate between them: the
    flood clock ran on from the first burst (only a whole second of silence stopped it) and closed it (1008)."""
    srv = HttpServer({}, ws_handler=lambda r: Echo(), limits=HttpLimits(ws_rate=20, ws_burst=10, ws_flood_s=1.0))
    assert srv.start()
    ws = WsClient(srv.port, "/")
    sent = 0
    for _ in range(15):
        ws.send_text("x")
        sent += 1
    for _ in range(30):   # 3 s at 10 a second, half the rate
        time.sleep(0.1)
        ws.send_text("y")
        sent += 1
    for _ in range(15):
        ws.send_text("z")
        sent += 1
    got = [ws.recv()[0] for _ in range(sent)]
    assert got == [0x1] * sent   # every message answered, no close frame among them
    ws.close()
    srv.stop()

def test_a_client_that_asks_and_never_reads_is_dropped():
    """Pipelined requests whose answers were never read left the server blocked in drain() for ever: the
    connection held a slot (64 of them and everyone gets 503) and megabytes of buffers."""
    big = Response(200, b"x" * 200_000)
    srv = HttpServer({"/big": lambda r: big, "/": lambda r: Response.text("hi")},
                     limits=HttpLimits(send_timeout_s=0.5))
    assert srv.start()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(b"GET /big HTTP/1.1\r\n\r\n" * 100)  # 20 MB of answers; reads none of them
    time.sleep(0.3)
    assert srv.stats()["open"] == 1
    deadline = time.monotonic() + 5
    while srv.stats()["open"]:
        assert time.monotonic() < deadline, "a client that never reads held its connection"
        time.sleep(0.05)
    assert get(srv.port, "/") == (200, b"hi")
    s.close()
    srv.stop()
