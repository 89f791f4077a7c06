"""Marking the canvas corners by clicking on the camera's view (`run.py map --corners pick`), in a real
Chromium (Debian's, headless, driven by Playwright) against the real page server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from installation.mapping.picker import CornerPicker, PickError, check_corners
from tests.mapping.test_map_cli import ROOT, record_clip, small  # noqa: F401 (fixture)

CHROMIUM = "/usr/bin/chromium"
needs_browser = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (install.sh --test)")
SQUARE = [[100, 50], [500, 60], [520, 330], [90, 320]]


@pytest.mark.parametrize("points,message", [
    (SQUARE[:3], "exactly four"),
    ([[100, 50], [90, 320], [520, 330], [500, 60]], "anticlockwise"),
    ([[100, 50], [520, 330], [500, 60], [90, 320]], "cross"),
    ([[100, 50], [700, 60], [520, 330], [90, 320]], "outside"),
    ([[100, 50], [300, 50], [500, 50], [90, 320]], "in a line"),
    ("nonsense", "four"),
])
def test_corners_that_cannot_be_a_canvas_are_refused_with_the_reason(points, message):
    with pytest.raises(PickError, match=message):
        check_corners(points, (640, 360))
    assert check_corners(SQUARE, (640, 360)).shape == (4, 2)


def _post(url: str, body: bytes) -> tuple[int, str]:
    req = urllib.request.Request(url + "corners", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_the_page_server_keeps_waiting_through_bad_posts():
    picker = CornerPicker(np.zeros((360, 640, 3), np.uint8))
    url = picker.start()
    try:
        assert _post(url, b"{not json")[0] == 400
        code, body = _post(url, b'{"corners": [[1, 2]]}')
        assert code == 400 and "four" in body
        assert picker.wait(0.05) is None                 # still waiting
        code, body = _post(url, ('{"corners": %s}' % SQUARE).encode())
        assert code == 200 and "100.0,50.0" in body
        assert np.allclose(picker.wait(1.0), SQUARE)
    finally:
        picker.close()


def click_corners(url: str, corners_px, result: dict, wrong_first: bool = False) -> None:
    """A person at the page: click the four corners (image pixels) on the displayed picture, press the button."""
    from playwright.sync_api import sync_playwright
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = b.new_page(viewport={"width": 1000, "height": 800})
            page.goto(url)
            page.wait_for_function("document.getElementById('view').naturalWidth > 0")
            box = page.locator("#view").bounding_box()
            w, h = page.evaluate("[document.getElementById('view').naturalWidth, "
                                 "document.getElementById('view').naturalHeight]")

            def click(pts):
                for x, y in pts:
                    page.mouse.click(box["x"] + (x + 0.5) * box["width"] / w, box["y"] + (y + 0.5) * box["height"] / h)

            if wrong_first:                             # anticlockwise: refused, then undone
                click([corners_px[0], corners_px[3], corners_px[2], corners_px[1]])
                page.click("#send")
                page.wait_for_selector("#msg.err")
                result["refused"] = page.text_content("#msg")
                for _ in range(4):
                    page.click("#undo")
            click(corners_px)
            page.click("#send")
            page.wait_for_selector("#msg.ok")
            result["accepted"] = page.text_content("#msg")
            b.close()
    except Exception as exc:  # noqa: BLE001 - reported by the test's thread
        result["error"] = repr(exc)


@needs_browser
def test_corners_clicked_in_a_browser_reach_the_picker():
    pytest.importorskip("playwright.sync_api")
    picker = CornerPicker(np.full((360, 640, 3), 40, np.uint8))
    url = picker.start()
    result: dict = {}
    try:
        click_corners(url, SQUARE, result, wrong_first=True)
        assert "error" not in result, result
        assert "anticlockwise" in result["refused"]
        assert "--corners" in result["accepted"]
        assert np.abs(picker.wait(1.0) - np.array(SQUARE)).max() <= 1.0
    finally:
        picker.close()


@needs_browser
def test_map_from_a_clip_with_the_corners_clicked_in_a_browser(small, tmp_path):  # noqa: F811
    """The installer's whole run: `map --corners pick`, the page opened, four clicks, the layouts written."""
    pytest.importorskip("playwright.sync_api")
    clip = record_clip(small, tmp_path / "clip.mp4")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "map", "--venue", str(small.given_path),
                             "--camera", str(clip), "--corners", "pick", "--pick-listen", "127.0.0.1:0",
                             "--png-dir", str(tmp_path), "--quiet"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("open http://"):
                break
        assert lines and lines[-1].startswith("open http://"), "".join(lines)
        url = lines[-1].split()[1]
        result: dict = {}
        clicker = threading.Thread(target=click_corners, args=(url, small.camera.canvas_corners_px(), result))
        clicker.start()
        rest, _ = proc.communicate(timeout=180)
        clicker.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines) + rest
    assert "error" not in result, result
    assert proc.returncode == 0, out
    assert "corners marked; next time give --corners" in out
    assert "layouts check: OK" in out
    found = int(out.split(" of ")[0].split(": ")[-1])
    assert found >= 0.98 * (~small.occluded).sum(), out
