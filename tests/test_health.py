"""Health board and its HTTP endpoint, over real HTTP on loopback."""

from __future__ import annotations

import json
import re
import socket
import urllib.request

import numpy as np
import pytest

from installation.health import (HealthBoard, HealthServer, StatusUnavailable, fetch_status,
                                 format_status)


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def served():
    clock = FakeClock()
    board = HealthBoard(window=100, max_errors=3, clock=clock)
    server = HealthServer(board, port=0)
    assert server.start()
    yield board, server, clock
    server.stop()


def feed(board, clock, frames, ms=lambda i: 10.0, dt=1 / 50):
    for i in range(frames):
        clock.t += dt
        board.record_frame(ms(i))


def test_health_json_over_http(served):
    board, server, clock = served
    assert fetch_status(server.url)["status"] == "starting"
    feed(board, clock, 250, ms=lambda i: float(i % 100))       # 1..99 ms, 50 fps
    board.update({"preset": "dusk", "mood": np.float32(0.25),
                  "sensors": {"camera": {"state": "ok", "fps": 30.0}, "microphone": {"state": "ok", "level": 0.1}},
                  "outputs": {"wall-artnet": {"state": "ok", "packets": 1200}}})
    board.error("output/wall-artnet", "host unreachable")
    d = fetch_status(server.url)
    assert d["status"] == "ok" and d["preset"] == "dusk" and d["mood"] == 0.25
    assert d["frames"] == 250 and d["fps"] == pytest.approx(50.0, rel=1e-3)
    assert d["frame_ms"]["p50"] == pytest.approx(49.5) and d["frame_ms"]["p99"] == pytest.approx(98.01)
    assert d["frame_ms"]["max"] == 99.0
    assert d["sensors"]["camera"]["fps"] == 30.0
    assert d["errors"][-1]["message"] == "host unreachable" and d["error_counts"] == {"output/wall-artnet": 1}
    text = format_status(d)
    assert "OK" in text and "wall-artnet" in text and "host unreachable" in text and "p95" in text


def test_degraded_stalled_and_bounded(served):
    board, server, clock = served
    feed(board, clock, 10_000)                                   # the ring never grows
    assert board._frame_ms.shape == (100,)
    board.update({"sensors": {"camera": {"state": "reconnecting"}}, "outputs": {"dmx": {"state": "disabled"}}})
    for i in range(10):
        board.error("camera", f"read timeout {i}")
    d = fetch_status(server.url)
    assert d["status"] == "degraded" and d["unhealthy"] == ["sensor/camera"]
    assert [e["message"] for e in d["errors"]] == ["read timeout 7", "read timeout 8", "read timeout 9"]
    assert d["error_counts"] == {"camera": 10}
    clock.t += 5.0                                               # the frame loop stops
    d = fetch_status(server.url)
    assert d["status"] == "stalled" and d["last_frame_age_s"] == pytest.approx(5.0)
    assert "STALLED" in format_status(d)


def test_prometheus_metrics(served):
    board, server, clock = served
    feed(board, clock, 60)
    board.update({"mood": 0.5, "nan_value": float("nan"), "label": "x",
                  "outputs": {'odd "name"\n': {"state": "error", "packets": 7, "flag": True}}})
    board.error("osc", "bad type")
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    assert "# TYPE tapestry_frames_total counter" in text
    assert "tapestry_frames_total 60" in text
    assert 'tapestry_frame_time_ms{quantile="0.99"} 10' in text
    assert 'tapestry_errors_total{source="osc"} 1' in text
    assert 'tapestry_output_ok{output="odd \\"name\\"\\n"} 0' in text
    assert 'tapestry_output_packets{output="odd \\"name\\"\\n"} 7' in text
    assert "tapestry_mood 0.5" in text and "nan_value" not in text and "flag" not in text
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? -?[0-9.e+-]+$')
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line


def test_unknown_path_and_odd_snapshot(served):
    board, server, _ = served
    with pytest.raises(StatusUnavailable, match="404"):
        fetch_status(f"http://127.0.0.1:{server.port}/nope")
    board.update({"obj": object(), "arr": np.arange(3), "inf": float("inf")})
    d = fetch_status(server.url)
    assert d["arr"] == [0, 1, 2] and d["inf"] is None and isinstance(d["obj"], str)


def test_fetch_status_without_a_server_says_so():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StatusUnavailable, match="no Tapestry answering"):
        fetch_status(f"http://127.0.0.1:{port}/health", timeout=2)


def test_port_in_use_does_not_raise():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        server = HealthServer(HealthBoard(), port=s.getsockname()[1])
        assert server.start() is False
        server.stop()
    assert json.loads(json.dumps(HealthBoard().report()))["frames"] == 0


def test_engine_shaped_snapshot_without_per_frame_timing(served):
    board, server, clock = served
    board.update({"fps": 59.8, "frames": 1000, "frame_ms": 4.2, "preset": "harmony",
                  "mood": {"intensity": 0.4, "people": 2},
                  "sensors": {"camera": {"state": "stale", "age": float("inf"), "fps": 0.0},
                              "audio": {"state": "running", "blocks": 10},
                              "recording": {"path": "/tmp/x.jsonl", "written": 5}},
                  "leds": {"leds": 900, "outputs": [{"name": "wall", "state": "backoff", "packets": 3},
                                                    {"name": "rim", "state": "ok", "packets": 9}]},
                  "errors": ["shader: field_step.glsl:12: syntax error"]})
    d = fetch_status(server.url)
    assert d["status"] == "degraded" and sorted(d["unhealthy"]) == ["output/wall", "sensor/camera"]
    assert d["fps"] == 59.8 and d["frames"] == 1000
    assert d["sensors"]["camera"]["age"] is None and set(d["outputs"]) == {"wall", "rim"}
    assert d["errors"][-1]["message"].startswith("shader:")
    text = format_status(d)
    assert "backoff" in text and "shader:" in text
    clock.t += 3.0                                   # no update for 3 s: stalled
    assert fetch_status(server.url)["status"] == "stalled"
    metrics = board.metrics()
    assert "tapestry_mood_intensity 0.4" in metrics and 'tapestry_output_ok{output="wall"} 0' in metrics
    assert 'tapestry_sensor_ok{sensor="audio"} 1' in metrics
    assert 'tapestry_sensor_ok{sensor="recording"}' not in metrics        # no state: informational only


def test_status_is_honest_and_readable():
    """Failing outputs reach "last errors" (the list was never filled), the report has no raw dicts,
    `scene None` or a negative frame age, and the exit status says degraded."""
    from installation.health import format_status, status_exit
    t = [100.0]
    board = HealthBoard(clock=lambda: t[0])
    out = {"name": "wall", "protocol": "artnet", "state": "ok", "packets": 100, "last_error": None}
    snap = {"preset": "harmony", "scene": None, "mood": {"intensity": 0.25},
            "leds": {"leds": 10, "outputs": [out]}, "sensors": {"camera": {"state": "running", "age": 0.1}}}
    board.update(snap)
    assert board.note_states(snap) == []
    board.record_frame(16.0)
    t[0] += 2.0
    out2 = {**out, "state": "backoff", "packets": 160, "last_error": "[Errno 111] Connection refused"}
    snap2 = {**snap, "leds": {"leds": 10, "outputs": [out2]},
             "sensors": {"camera": {"state": "reconnecting", "age": 12.0}}}
    board.update(snap2)
    changes = board.note_states(snap2)
    assert "output/wall: ok -> backoff ([Errno 111] Connection refused)" in changes
    assert any(c.startswith("sensor/camera: running -> reconnecting") for c in changes)
    board.record_frame(16.0)
    doc = board.report()
    assert doc["status"] == "degraded" and status_exit(doc) == 1
    assert sorted(e["source"] for e in doc["errors"]) == ["output/wall", "sensor/camera"]
    text = format_status(doc)
    assert "{" not in text and "scene     none" in text and "-0.0" not in text
    assert "packets_per_s=30.0" in text and "last_error=[Errno 111] Connection refused" in text
    assert "output/wall: backoff: [Errno 111] Connection refused" in text
    assert board.note_states(snap2) == []          # no change, no new line and no new error
    assert status_exit({"status": "ok"}) == 0


@pytest.mark.parametrize("body, why", [
    (b"[1, 2]", "not with Tapestry's /health document"),
    (b"42", "not with Tapestry's /health document"),
    (b"{}", "not with Tapestry's /health document"),
    (b'{"state": 5, "fps": "x"}', "not with Tapestry's /health document"),
    (b'{"status": "ok", "fps": "fast", "uptime_s": [1], "outputs": 5}', "this version cannot read"),  # was a traceback
])
def test_another_programs_json_is_not_taken_for_the_health_document(body, why):
    """A wrong --url answering JSON: a list or number was an AttributeError traceback in `run.py status`,
    {} read as status '?' and exit 1 (degraded)."""
    import http.server
    import threading

    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with pytest.raises(StatusUnavailable, match=why):
            fetch_status(f"http://127.0.0.1:{srv.server_address[1]}/", timeout=5)
    finally:
        srv.shutdown()
        srv.server_close()
