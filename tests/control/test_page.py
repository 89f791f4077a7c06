"""The phone page as a person uses it: a real Chromium (Debian's, headless, driven by Playwright) against the
real engine + LED pipeline on real GL, LED bytes caught by a loopback Art-Net receiver on an OS-chosen port.
Plus the page's API without a browser: token, bad input, the commands that exist."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from installation.clock import RealtimeClock
from installation.control.bridge import EngineBridge
from installation.control.web import WebConfig, WebConfigError, WebControl
from installation.engine import Engine, EngineOptions, declare_all
from installation.health import HealthBoard, HealthServer
from installation.leds import LedPipeline
from installation.sensing import PARAMS as SENSING_PARAMS
from installation.venue import load_venue
from tests.support.udp import DmxReceiver

TOKEN = "4711"
CHROMIUM = "/usr/bin/chromium"

LAYOUT = """name = "page strips"
[canvas]
units = "canvas"
width = 1.0
height = 0.5625
[[fixtures]]
name = "a1"
type = "strip"
start = [0.1, 0.3]
end = [0.9, 0.3]
count = 60
[fixtures.patch]
controller = "wall"
universe = 0
"""


def write_venue(folder: Path, port: int) -> Path:
    (folder / "layout.toml").write_text(LAYOUT)
    venue = folder / "venue.toml"
    venue.write_text(f'name = "page"\nlayout = "layout.toml"\n\n[[outputs]]\nname = "wall"\nprotocol = "artnet"\n'
                     f'host = "127.0.0.1"\nport = {port}\nfps = 240\n')
    return venue


class LiveShow:
    """Engine + LEDs + web control, frames stepped by the test's thread (the GL thread).  The output runs at
    240 fps so that its own pacing never holds a frame back: what is judged is page -> engine -> bytes."""

    def __init__(self, ctx, tmp: Path) -> None:
        self.rx = DmxReceiver(0, "127.0.0.1", poll=0.002)
        self.tree = declare_all(extra=SENSING_PARAMS)
        self.engine = Engine(ctx, EngineOptions(size=(160, 90), particles=8192), tree=self.tree)
        self.leds = LedPipeline(ctx, load_venue(write_venue(tmp, self.rx.port)), self.tree,
                                shaders=self.engine.shaders)
        self.engine.attach_leds(self.leds, fps=60)
        self.board = HealthBoard()
        self.bridge = EngineBridge()
        self.bridge.attach(self.engine)
        self.web = WebControl(WebConfig(enabled=True, port=0, token=TOKEN), self.tree, self.engine.commands,
                              self.bridge, HealthServer(self.board).routes())
        assert self.web.start()
        self.clock = RealtimeClock(60)

    def step(self) -> None:
        self.engine.frame(self.clock.next_frame())
        self.board.record_frame(self.engine._frame_ms[-1])
        if self.engine.frame_count % 30 == 0:
            self.board.update(self.engine.status())

    def packets(self) -> int:
        return len(self.rx.snapshot())

    def close(self) -> None:
        self.web.stop()
        self.engine.close()
        self.engine.release()
        self.rx.close()


@pytest.fixture
def live(ctx, tmp_path):
    show = LiveShow(ctx, tmp_path)
    yield show
    show.close()


def call(port: int, path: str, body: object | None = None, token: str | None = TOKEN, raw: bytes | None = None):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Tapestry-Token"] = token
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers,
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def run_frames_while(show: LiveShow, worker: threading.Thread, limit_s: float = 90.0) -> None:
    """Step frames on this (GL) thread until ``worker`` ends (bounded)."""
    end = time.monotonic() + limit_s
    while worker.is_alive() and time.monotonic() < end:
        show.step()
    assert not worker.is_alive(), "the browser session did not finish"


def test_api_needs_the_token_and_refuses_bad_input_clearly(live):
    port = live.web.port
    live.step()
    assert call(port, "/api/state", token=None)[0] == 401
    assert call(port, "/api/state", token="0000")[0] == 401
    assert call(port, "/health", token=None)[0] == 401
    code, body = call(port, "/api/state")
    assert code == 200 and any(p["path"] == "show/master" for p in json.loads(body)["params"])
    for path, payload, words in (
            ("/api/set", b"{not json", "not valid JSON"),
            ("/api/set", b'{"path": "show/master", "value": "loud"}', "expected a number"),
            ("/api/set", b'{"path": "no/such", "value": 1}', "unknown parameter"),
            ("/api/set", b"[1,2]", "JSON object"),
            ("/api/set", b'{"path": "render/palette", "value": 1' + b"0" * 400 + b"}", "1329-bit integer"),
            ("/api/preset/load", b'{"name": "nope"}', "unknown preset"),
            ("/api/scene/next", b"{}", "no scene list"),
            ("/api/hours", b'{"mode": "open"}', "no opening hours"),
            ("/api/blackout", b'{"on": "yes"}', "expected")):
        code, body = call(port, path, raw=payload)
        assert code == 400 and words in json.loads(body)["error"], (path, body)
    # a good one reaches the tree through the engine's queue, on the next frame
    assert call(port, "/api/set", {"path": "show/master", "value": 0.3})[0] == 200
    live.step()
    assert live.tree.base("show/master") == pytest.approx(0.3)
    assert call(port, "/api/preset/load", {"name": "tension", "fade_s": 0.5})[0] == 200
    live.step()
    assert live.engine.preset_name == "tension"


def test_oscquery_covers_the_led_parameters_of_a_real_venue_too(live):
    from tests.control.test_oscquery import check_every_node
    live.step()
    leds = [p for p in live.tree.paths() if p.startswith("leds/")]
    assert leds, "the LED pipeline declares its parameters"
    assert check_every_node(live.web.port, live.tree) == len(live.tree)


def test_scene_next_and_the_opening_hours_override_act_on_the_show(live):
    import datetime as dt

    from installation.scenes import SceneRunner, parse_scenes, parse_schedule
    today = dt.date.today()
    live.engine.scenes = SceneRunner(parse_scenes({"cue": [{"name": "harmony"}, {"name": "tension"}]}))
    # open 09-17 every day, but yesterday, today and tomorrow are holidays: closed now, whatever the hour
    live.engine.schedule = parse_schedule({"hours": {"daily": "09:00-17:00"}, "holidays": [
        str(today + dt.timedelta(days=d)) for d in (-1, 0, 1)]})
    live.bridge.state_every_s = 0.0  # publish the show state every frame in this test
    port = live.web.port
    for _ in range(3):
        live.step()
    assert live.engine.schedule_level == 0.0
    state = json.loads(call(port, "/api/state")[1])
    assert state["scenes"] == ["harmony", "tension"] and state["scene"] == "harmony"
    assert state["hours"]["open"] is False and state["hours"]["override"] is None

    assert call(port, "/api/scene/next", {})[0] == 200
    for _ in range(3):
        live.step()
    assert live.engine.scenes.current == "tension"
    assert json.loads(call(port, "/api/state")[1])["scene"] == "tension"

    assert call(port, "/api/hours", {"mode": "open", "minutes": 30})[0] == 200
    for _ in range(2):
        live.step()
    assert live.engine.schedule_level == 1.0
    hours = json.loads(call(port, "/api/state")[1])["hours"]
    assert hours["open"] is True and hours["override"] == "open" and hours["until"]
    assert call(port, "/api/hours", {"mode": "auto"})[0] == 200
    for _ in range(2):
        live.step()
    assert live.engine.schedule_level == 0.0
    assert call(port, "/api/hours", {"mode": "open", "minutes": 0})[0] == 400


def test_thumbnail_is_the_tapestry_the_right_way_up(live):
    import cv2
    import numpy as np
    live.bridge.state_every_s = 0.0
    end = time.monotonic() + 20
    while time.monotonic() < end:
        live.step()
        if live.engine.frame_count > 60:
            break
    tex = live.engine.tapestry
    frame = np.frombuffer(tex.read(), np.uint8).reshape(tex.height, tex.width, 4)[:, :, :3].astype(np.float32)
    code, body = call(live.web.port, "/api/thumbnail.jpg")
    assert code == 200 and body[:2] == b"\xff\xd8"
    thumb = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32)
    want = cv2.resize(frame, (thumb.shape[1], thumb.shape[0]), interpolation=cv2.INTER_AREA)
    upright = float(np.abs(thumb - want).mean())
    flipped = float(np.abs(thumb - want[::-1]).mean())
    assert upright < 12 and upright < flipped, (upright, flipped)


def test_web_config_refuses_a_lan_address_without_a_token():
    with pytest.raises(WebConfigError, match="token"):
        WebConfig.from_venue({"web": {"host": "0.0.0.0"}})
    with pytest.raises(WebConfigError, match="unknown key 'pin'"):
        WebConfig.from_venue({"web": {"pin": "1"}})
    assert WebConfig.from_venue({}).enabled is False
    assert WebConfig.from_venue({"web": {"host": "0.0.0.0", "port": 0, "token": "1234"}}).token == "1234"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (scripts/install.sh testing list)")
def test_in_a_real_browser_moving_master_changes_the_led_bytes_within_two_frames(live, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    port = live.web.port
    # light first: the receiver sees lit frames at full master
    end = time.monotonic() + 30
    while time.monotonic() < end:
        live.step()
        latest = live.rx.latest().get(("artnet", 0))
        if latest and sum(latest) > 500 and live.engine.frame_count > 60:
            break
    before = live.rx.latest()[("artnet", 0)]
    assert sum(before) > 500, "the strip never lit"
    result: dict = {}

    def browser() -> None:
        try:
            with sync_api.sync_playwright() as p:
                b = p.chromium.launch(executable_path=CHROMIUM, args=[
                    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync"])
                page = b.new_page(viewport={"width": 400, "height": 900})
                page.goto(f"http://127.0.0.1:{port}/")  # a browser at the root lands on the page
                page.fill("#token", TOKEN)
                page.click("button[type=submit]")
                page.wait_for_selector("#app:not([hidden])", timeout=10000)
                page.wait_for_selector("#params details", timeout=10000)
                result["status_text"] = page.text_content("#status")
                page.fill("#master", "0.1")  # sets the range and fires input: the page POSTs show/master
                page.wait_for_function("document.getElementById('master-out').textContent === '0.100'")
                page.wait_for_timeout(1500)  # a thumbnail and a health refresh arrive
                page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
                result["thumb_loaded"] = page.evaluate(
                    "document.getElementById('thumb').naturalWidth")
                b.close()
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            result["error"] = repr(exc)

    worker = threading.Thread(target=browser)
    worker.start()
    changed_at = lit_after = None
    last_full = sum(before)
    end = time.monotonic() + 90
    while worker.is_alive() and time.monotonic() < end:
        t0 = time.monotonic()
        live.step()
        frame = live.engine.frame_count
        if changed_at is None and live.tree.base("show/master") == pytest.approx(0.1):
            changed_at = frame  # the frame whose start applied the page's command
        deadline = time.monotonic() + 0.2  # let this frame's packet land before judging it
        while not any(p.t >= t0 for p in live.rx.since(t0)) and time.monotonic() < deadline:
            time.sleep(0.002)
        now_sum = sum(live.rx.latest()[("artnet", 0)])
        if changed_at is None:
            last_full = now_sum  # the bytes of the last frame at full master
        elif lit_after is None and now_sum < 0.9 * last_full:
            lit_after = frame
    worker.join(5)
    assert "error" not in result, result.get("error")
    assert changed_at is not None, "the page's master never reached the engine"
    # the command is applied at the start of frame `changed_at`; that frame or the next one sends dimmer bytes
    assert lit_after is not None and lit_after - changed_at <= 1, (changed_at, lit_after)
    assert "fps" in result["status_text"]
    assert result["thumb_loaded"] > 0
    shutil.copy(tmp_path / "page.png", Path(os.environ.get("TAPESTRY_PAGE_SHOT", str(tmp_path / "copy.png"))))
