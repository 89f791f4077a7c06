"""Alerts: one webhook POST per incident and one on recovery, rate-limited, retried with backoff, never
blocking; checked against a real local HTTP receiver on an OS-chosen port."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from installation.alerts import AlertConfig, AlertConfigError, AlertMonitor, Alerts, format_alerts, problems
from installation.health import HealthBoard, format_status


class Webhook:
    """A local HTTP receiver: records each POST (headers, JSON body); answers with ``codes`` in turn, then 200."""

    def __init__(self, codes=()):
        self.posts: list[tuple[dict, dict]] = []
        self.codes = list(codes)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code = hook.codes.pop(0) if hook.codes else 200
                hook.posts.append((dict(self.headers), json.loads(body)))
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tapestry?key=secret"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def bodies(self):
        return [b for _, b in self.posts]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    w = Webhook()
    yield w
    w.close()


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def snapshot(wall_state: str, camera_state: str = "running") -> dict:
    return {"fps": 60.0, "outputs": [{"name": "wall", "state": wall_state, "last_error": "" if wall_state == "ok"
                                      else "[Errno 111] Connection refused"}],
            "sensors": {"camera": {"state": camera_state}}}


def run_frames(board: HealthBoard, seconds: float, snap: dict) -> None:
    """The engine's side: a frame every ~10 ms, the snapshot refreshed as app.py does (not every frame)."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        board.record_frame(10.0)
        if n % 10 == 0:
            board.update(dict(snap))
        n += 1
        time.sleep(0.01)


def test_one_alert_when_an_output_degrades_and_one_when_it_recovers(webhook):
    board = HealthBoard()
    cfg = AlertConfig(webhook=webhook.url, min_interval_s=0.0, degraded_for_s=0.3, on=("outputs", "sensors"),
                      token="t0ken")
    alerts = Alerts(cfg, board.report, target_fps=60, venue="gallery", check_s=0.05,
                    publish=lambda d: board.set_section("alerts", d)).start()
    try:
        run_frames(board, 0.5, snapshot("ok"))
        assert webhook.posts == []
        run_frames(board, 1.5, snapshot("backoff"))                 # ~150 frames degraded
        assert wait_for(lambda: len(webhook.posts) >= 1)
        run_frames(board, 1.5, snapshot("ok"))
        assert wait_for(lambda: len(webhook.posts) >= 2)
        run_frames(board, 0.5, snapshot("ok"))
    finally:
        alerts.stop()
    assert len(webhook.posts) == 2, webhook.bodies()
    (h1, first), (_, second) = webhook.posts
    assert first["status"] == "degraded" and first["open"] == ["output/wall"] and first["venue"] == "gallery"
    assert [(e["event"], e["what"]) for e in first["events"]] == [("degraded", "output/wall")]
    assert "Connection refused" in first["events"][0]["detail"] and "output/wall" in first["text"]
    assert h1["Content-Type"] == "application/json" and h1["Authorization"] == "Bearer t0ken"
    assert second["status"] == "recovered" and second["open"] == []
    assert [(e["event"], e["what"]) for e in second["events"]] == [("recovered", "output/wall")]
    assert second["events"][0]["lasted_s"] >= 0.3
    # /health and run.py status show where alerts go (without the URL's query, which may hold a key)
    doc = board.report()["alerts"]
    assert doc["sent"] == 2 and doc["failed"] == 0 and "secret" not in json.dumps(doc) and "hooks" not in json.dumps(doc)
    assert "alerts    -> http://127.0.0.1" in format_status(board.report())


def test_a_flapping_output_is_one_incident_and_posts_are_rate_limited():
    cfg = AlertConfig(webhook="http://127.0.0.1:9/x", min_interval_s=60.0, degraded_for_s=10.0)
    m = AlertMonitor(cfg, target_fps=60)
    posts = []
    for t in range(0, 600):                                        # ten minutes, one report a second
        bad = (t // 2) % 2 == 0 if t < 300 else False               # flapping every 2 s, then fine
        report = {"status": "degraded" if bad else "ok", "fps": 60.0, "frames": 1000,
                  "unhealthy": ["output/wall"] if bad else [], "outputs": {"wall": {"state": "backoff" if bad else "ok"}}}
        m.observe(report, 1000.0 + t)
        p = m.take(1000.0 + t)
        if p:
            posts.append(p)
    events = [(e["event"], e["what"]) for p in posts for e in p["events"]]
    assert events == [("degraded", "output/wall"), ("recovered", "output/wall")], events
    assert len(posts) == 2


def test_rate_limit_groups_several_incidents_into_one_post():
    cfg = AlertConfig(webhook="http://127.0.0.1:9/x", min_interval_s=60.0, degraded_for_s=0.0)
    m = AlertMonitor(cfg, target_fps=60)
    base = {"status": "degraded", "fps": 60.0, "frames": 1000, "outputs": {"a": {"state": "backoff"}, "b": {"state": "error"}},
            "sensors": {"camera": {"state": "stale"}}}
    m.observe({**base, "unhealthy": ["output/a"]}, 0.0)
    first = m.take(0.0)
    m.observe({**base, "unhealthy": ["output/a", "output/b"]}, 5.0)
    m.observe({**base, "unhealthy": ["output/a", "output/b", "sensor/camera"]}, 10.0)
    assert m.take(10.0) is None                                     # rate-limited
    second = m.take(60.0)
    assert [e["what"] for e in first["events"]] == ["output/a"]
    assert [e["what"] for e in second["events"]] == ["output/b", "sensor/camera"]
    assert second["open"] == ["output/a", "output/b", "sensor/camera"]


def test_frame_rate_down_and_stalled_count_starting_does_not():
    cfg = AlertConfig(webhook="http://127.0.0.1:9/x", degraded_for_s=0.0)
    assert problems({"status": "ok", "fps": 40.0, "frames": 500}, cfg, target_fps=60) == {"fps": "40.0 fps, under 45"}
    assert problems({"status": "ok", "fps": 50.0, "frames": 500}, cfg, target_fps=60) == {}
    assert problems({"status": "ok", "fps": 50.0, "frames": 500}, AlertConfig(fps_below=55), target_fps=60)
    assert "frames/stalled" in problems({"status": "stalled", "last_frame_age_s": 3.2}, cfg, target_fps=60)
    assert problems({"status": "starting", "fps": 0.0}, cfg, target_fps=60) == {}
    only_outputs = AlertConfig(on=("outputs",))
    assert problems({"status": "degraded", "fps": 10.0, "frames": 500, "unhealthy": ["sensor/mic", "output/w"],
                     "outputs": {"w": {"state": "backoff"}}}, only_outputs, 60) == {"output/w": "backoff"}
    # a missing controller from discovery, with its reason
    doc = {"status": "degraded", "fps": 60.0, "frames": 500, "unhealthy": ["controller/floor"],
           "controllers": {"expected": {"floor": {"state": "missing", "reason": "no ArtPollReply from 10.0.0.9"}}}}
    assert problems(doc, cfg, 60) == {"controller/floor": "missing: no ArtPollReply from 10.0.0.9"}


def test_failed_posts_are_retried_with_backoff_and_the_same_id():
    hook = Webhook(codes=[503, 502])
    try:
        board = HealthBoard()
        cfg = AlertConfig(webhook=hook.url, min_interval_s=0.0, degraded_for_s=0.0, on=("outputs",))
        alerts = Alerts(cfg, board.report, check_s=0.05)
        alerts.backoff_first_s = 0.05
        alerts.start()
        try:
            run_frames(board, 0.3, snapshot("backoff"))
            assert wait_for(lambda: alerts.sent == 1)
        finally:
            alerts.stop()
        assert len(hook.posts) == 3
        ids = {h["X-Tapestry-Alert-Id"] for h, _ in hook.posts}
        assert len(ids) == 1 and alerts.failed == 0
    finally:
        hook.close()


def test_client_errors_are_not_retried():
    hook = Webhook(codes=[404])
    try:
        board = HealthBoard()
        alerts = Alerts(AlertConfig(webhook=hook.url, min_interval_s=0.0, degraded_for_s=0.0, on=("outputs",)),
                        board.report, check_s=0.05)
        alerts.backoff_first_s = 0.05
        alerts.start()
        try:
            run_frames(board, 0.3, snapshot("backoff"))
            assert wait_for(lambda: alerts.failed == 1)
        finally:
            alerts.stop()
        assert len(hook.posts) == 1 and "HTTP 404" in alerts.last_error
    finally:
        hook.close()


def test_a_webhook_that_never_answers_blocks_nothing():
    """A server that accepts the connection and never replies: each attempt times out on the sending
    thread; the watching thread keeps reading reports and the show's side never waits."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    board = HealthBoard()
    reads = []

    def report():
        reads.append(time.monotonic())
        return board.report()

    alerts = Alerts(AlertConfig(webhook=url, min_interval_s=0.0, degraded_for_s=0.0, timeout_s=0.5, retries=1,
                                on=("outputs",)), report, check_s=0.05)
    alerts.backoff_first_s = 0.05
    alerts.start()
    try:
        t0 = time.monotonic()
        run_frames(board, 0.3, snapshot("backoff"))                 # the frame side: record_frame + update
        assert wait_for(lambda: alerts.failed == 1, 10)
        assert "timed out" in alerts.last_error
        assert len([t for t in reads if t > t0 + 0.6]) > 5          # kept watching while the POSTs hung
    finally:
        t_stop = time.monotonic()
        alerts.stop()
        stop_took = time.monotonic() - t_stop
        silent.close()
    assert stop_took < 5, stop_took


def test_an_unreachable_webhook_is_reported():
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()                                                    # nothing listens there now
    board = HealthBoard()
    alerts = Alerts(AlertConfig(webhook=f"http://127.0.0.1:{port}/", min_interval_s=0.0, degraded_for_s=0.0,
                                retries=2, on=("outputs",)), board.report, check_s=0.05,
                    publish=lambda d: board.set_section("alerts", d))
    alerts.backoff_first_s = 0.05
    alerts.start()
    try:
        run_frames(board, 0.3, snapshot("backoff"))
        assert wait_for(lambda: alerts.failed == 1)
    finally:
        alerts.stop()
    assert "refused" in alerts.last_error.lower()
    assert "1 failed" in format_alerts(board.report()["alerts"])[0]


@pytest.mark.parametrize("table, message", [
    ({"webhook": "ftp://example/x"}, "webhook must be an http:// or https:// URL"),
    ({"webhook": "http://"}, "webhook must be an http:// or https:// URL"),
    ({"webhook": 5}, "webhook must be a string"),
    ({"min_interval_s": -1}, "min_interval_s must be a number in 0..86400"),
    ({"min_interval_s": float("nan")}, "min_interval_s must be a number"),
    ({"on": ["outputs", "disks"]}, "on: unknown kind 'disks'"),
    ({"retries": 2.5}, "retries must be an integer"),
    ({"webhok": "http://x/"}, "unknown key 'webhok'"),
    ({"recoveries": "no"}, "recoveries must be true or false"),
])
def test_bad_alert_keys_are_named(table, message):
    with pytest.raises(AlertConfigError) as err:
        AlertConfig.from_sections({"alerts": table}, "venue.toml")
    assert message in str(err.value) and "venue.toml: [alerts]" in str(err.value)


def test_alert_keys_read_and_off_without_a_webhook():
    assert not AlertConfig.from_sections({}).enabled
    cfg = AlertConfig.from_sections({"alerts": {"webhook": "https://hooks.example/x", "min_interval_s": 300,
                                                "on": "outputs", "fps_below": 30}})
    assert cfg.enabled and cfg.min_interval_s == 300.0 and cfg.on == ("outputs",) and cfg.fps_below == 30.0


@pytest.mark.parametrize("section, message", [
    ('[alerts]\nwebhook = "ftp://x/y"\n', "[alerts]: webhook must be an http:// or https:// URL, got 'ftp://x/y'"),
    ('[discovery]\ninterval_s = "often"\n', "[discovery]: interval_s must be a number, got 'often'"),
])
def test_run_py_refuses_a_bad_alerts_or_discovery_table_in_one_line(tmp_path, section, message):
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    for f in ("demo-venue.toml", "strip-wall.toml", "hanging-net.toml", "net-points.csv"):
        shutil.copy(root / "hardware" / f, tmp_path / f)
    venue = tmp_path / "demo-venue.toml"
    venue.write_text(venue.read_text() + "\n" + section)
    r = subprocess.run([sys.executable, str(root / "run.py"), "--headless", "--seconds", "1", "--venue", str(venue),
                        "--health-port", "0"], capture_output=True, text=True, timeout=60, cwd=root)
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("tapestry:")]
    assert len(errors) == 1 and message in errors[0], r.stderr
