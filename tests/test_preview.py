"""The preview window in a real X server (Xvfb): the tapestry fills it and the LEDs are drawn over it
(computed with the GIL released in the window's own GL context too)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
from installation.preview import PreviewWindow
from installation.engine import Engine, EngineOptions, declare_all
from installation.leds import LedPipeline
from installation.venue import load_venue
from installation.clock import FixedStepClock
pw = PreviewWindow((480, 270))
tree = declare_all()
eng = Engine(pw.ctx, EngineOptions(size=(320, 180), particles=16384), tree=tree)
eng.attach_leds(LedPipeline(pw.ctx, load_venue(sys.argv[1] + '/hardware/demo-venue.toml'), tree))
pw.attach(eng)
eng.sinks.append(pw)
assert eng.shaders.dispatch.releases_gil, "the window's context dispatches holding the GIL"
clock = FixedStepClock(60)
for _ in range(40):
    eng.frame(clock.next_frame())
w, h = pw.window.get_framebuffer_size()
img = np.frombuffer(pw.ctx.screen.read(components=3), np.uint8).reshape(h, w, 3)[::-1]
np.save(sys.argv[2], img)
leds = eng.leds.layout.positions
np.save(sys.argv[3], leds)
eng.close()
pw.close()
"""


@pytest.fixture(scope="module")
def display():
    if not shutil.which("Xvfb"):
        pytest.skip("Xvfb not installed (bash scripts/install.sh --test installs it)")
    num = 90 + os.getpid() % 9
    proc = subprocess.Popen(["Xvfb", f":{num}", "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{num}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f":{num}"
    proc.terminate()
    proc.wait(timeout=5)


def test_preview_window_shows_the_tapestry_and_the_leds(display, tmp_path):
    env = {**os.environ, "DISPLAY": display}
    shot, pos = tmp_path / "shot.npy", tmp_path / "leds.npy"
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT), str(shot), str(pos)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    img = np.load(shot).astype(float)
    h, w, _ = img.shape
    assert (w, h) == (480, 270)
    assert img.mean() > 3                       # the field is on screen
    # Every LED dot sits where the layout puts it: sample the dot centres against the gaps
    # between strips (the strip wall's LEDs are in columns).
    leds = np.load(pos)
    cols = np.clip((leds[:, 0] * w).astype(int), 0, w - 1)
    rows = np.clip((leds[:, 1] * h).astype(int), 0, h - 1)
    on_dots = img[rows, cols].mean()
    assert on_dots > img.mean()


STROBE = r"""
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
from installation.preview import PreviewWindow
from installation.engine import Engine, EngineOptions, declare_all
from installation.clock import FixedStepClock
pw = PreviewWindow((240, 135))
eng = Engine(pw.ctx, EngineOptions(size=(160, 90), particles=16384), tree=declare_all())
pw.attach(eng)
eng.sinks.append(pw)
for path, value in (("render/trail", 0.0), ("render/exposure", 8.0), ("render/ambient", 0.2),
                    ("render/glow/amount", 4.0)):
    eng.params.set_base(path, value)       # a bright field: a strobe of it is a flash by WCAG's measure
clock = FixedStepClock(60)
for _ in range(30):
    eng.frame(clock.next_frame())
levels = []
for i in range(120):                      # a 10 Hz full-field strobe for 2 s, by blackout
    eng.params.set_base("show/blackout", (i // 3) % 2 == 1)
    eng.frame(clock.next_frame())
    w, h = pw.window.get_framebuffer_size()
    img = np.frombuffer(pw.ctx.screen.read(components=3), np.uint8).astype(float) / 255.0
    levels.append(float((img ** 2.2).mean()))
np.save(sys.argv[2], np.array(levels))
pw.close()
"""


def test_preview_strobe_is_flash_limited(display, tmp_path):
    env = {**os.environ, "DISPLAY": display}
    out = tmp_path / "levels.npy"
    r = subprocess.run([sys.executable, "-c", STROBE, str(ROOT), str(out)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    lum = np.load(out)
    assert lum.max() > 0.25                    # a strobe that would be a flash
    # WCAG 2.3.1 general flash, whole field: opposing changes of relative luminance of at least 0.1
    # (of the maximum, 1.0) where the darker state is below 0.8.
    turns, last, direction = [], lum[0], 0
    for i, v in enumerate(lum[1:], 1):
        if abs(v - last) >= 0.1 and min(v, last) < 0.8:
            d = 1 if v > last else -1
            if d != direction:
                turns.append(i)
                direction = d
            last = v
        elif (v - last) * direction > 0:
            last = v                           # still moving the same way: extend the transition
    worst = max(sum(1 for t in turns if s <= t < s + 60) for s in range(len(lum)))
    assert worst <= 7, f"{worst} transitions in one second ({len(turns)} in all)"  # 3 flashes = 6 (+1 at the edge)


MAP_PREVIEW = r"""
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
import installation.preview as P
from installation.mapping.cli import MapOptions, dry_run
shots = {}
show = P.PreviewWindow.draw_led_frame


def watched(self):
    show(self)
    w, h = self.window.get_framebuffer_size()
    img = np.frombuffer(self.ctx.screen.read(components=3), np.uint8).reshape(h, w, 3)[::-1]
    shots[watched.current[0]] = img.copy()


watched.current = [""]
P.PreviewWindow.draw_led_frame = watched
import installation.mapping.drive as D
played = D.PatternPlayer.show


def named(self, levels, seconds, name="", tick=None):
    watched.current[0] = name
    return played(self, levels, seconds, name, tick)


D.PatternPlayer.show = named
lines = dry_run(sys.argv[2], MapOptions(hold_s=0.05, quiet=True), None, preview=True)
print("\n".join(lines))
np.savez(sys.argv[3], **{k.replace(" ", "_"): v for k, v in shots.items()})
"""


def test_map_dry_run_preview_shows_each_pattern_on_the_leds(display, tmp_path):
    """`run.py map --dry-run --preview`: the patterns appear in a window, each LED at its layout position, as
    they go out (dark: nothing; white: every LED; red: red), without a camera."""
    from installation.venue import load_venue
    from tests.hardware.test_test_leds import LAYOUT, VENUE, Capture
    cap = Capture()
    try:
        (tmp_path / "l.toml").write_text(LAYOUT)
        (tmp_path / "v.toml").write_text(VENUE.format(port=cap.port))
        env = {**os.environ, "DISPLAY": display}
        out = tmp_path / "shots.npz"
        r = subprocess.run([sys.executable, "-c", MAP_PREVIEW, str(ROOT), str(tmp_path / "v.toml"), str(out)],
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "flash limiter: 0 of" in r.stdout and cap.packets
    finally:
        cap.close()
    shots = dict(np.load(out))
    lay = load_venue(tmp_path / "v.toml").layout
    h, w, _ = shots["dark"].shape
    px = np.clip((lay.positions * [w, h]).astype(int), 0, [w - 1, h - 1])
    at = {k: v[px[:, 1], px[:, 0]].astype(float) for k, v in shots.items()}
    assert at["dark"].max() < 20
    assert at["white"].min() > at["dark"].max() + 20
    red = at["red"]
    assert (red[:, 0] > red[:, 1] + 20).all() and (red[:, 0] > red[:, 2] + 20).all()   # RGB: red at every LED
