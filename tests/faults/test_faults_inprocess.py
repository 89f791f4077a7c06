"""Faults a subprocess cannot reach, driven in-process on the real parts: Engine + LedPipeline on real
GL, sending to loopback receivers, fed by a real SensorHub / FileWatcher.

- a camera that stalls (read blocks), then vanishes (read raises, open fails), then returns;
- presets and shaders corrupted on disk under the running engine, then fixed.

The light is judged by the receivers (non-zero frames counted over windows), the rest by the
engine's and the hub's own status.  Every loop is bounded by a deadline.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from faults_support import ROOT, wait_lit, write_wav
from installation.clock import RealtimeClock
from installation.engine import Engine, EngineOptions, declare_all
from installation.health import HealthBoard
from installation.leds import LedPipeline
from installation.sensing import PARAMS as SENSING_PARAMS
from installation.sensing import SensorHub
from installation.sensing.camera import FrameSource
from installation.venue import load_venue
from installation.watch import FileWatcher


class Show:
    """Engine + LEDs (+ optional hub) on ``venue``; ``run_until(pred, seconds)`` steps it in real time."""

    def __init__(self, ctx, venue: Path, options: EngineOptions | None = None, hub: SensorHub | None = None,
                 tree=None) -> None:
        self.tree = tree if tree is not None else declare_all(extra=SENSING_PARAMS)
        self.hub = hub
        self.engine = Engine(ctx, options or EngineOptions(size=(160, 90), particles=8192), tree=self.tree,
                             sensors=(lambda t: hub.latest()) if hub else None)
        self.leds = LedPipeline(ctx, load_venue(venue), self.tree, shaders=self.engine.shaders,
                                worker=True)  # as run_live does
        self.engine.attach_leds(self.leds, fps=60)
        self.clock = RealtimeClock(60)
        self.board = HealthBoard()
        self.moods: list = []

    def step(self) -> None:
        dt = self.clock.next_frame()
        t0 = time.perf_counter()
        self.engine.frame(dt)
        self.board.record_frame((time.perf_counter() - t0) * 1e3)
        self.moods.append(self.engine.mood)

    def health(self) -> dict:
        """The /health document as run_live builds it (engine status + the hub's sensors)."""
        st = self.engine.status()
        self.board.update({**st, "sensors": self.hub.status() if self.hub else {}, "live_sensors": st["sensors"]})
        return self.board.report()

    def run_until(self, pred, seconds: float) -> bool:
        """Step frames until ``pred()`` or ``seconds`` of wall time (and at most 60 fps x seconds frames)."""
        end = time.monotonic() + seconds
        for _ in range(int(seconds * 60) + 1):
            self.step()
            if pred():
                return True
            if time.monotonic() >= end:
                break
        return bool(pred())

    def run_for(self, seconds: float) -> int:
        n0 = self.engine.frame_count
        self.run_until(lambda: False, seconds)
        return self.engine.frame_count - n0

    def close(self) -> None:
        self.engine.close()
        self.engine.release()


# -- sensors -------------------------------------------------------------------------------------

class FlakyCamera(FrameSource):
    """A synthetic camera (a bright block walking across a dark room) whose faults the test switches:
    ``mode`` "live" delivers, "stall" blocks inside read() (a hung driver), "gone" raises in read()
    and open() (unplugged)."""

    name = "flaky"

    def __init__(self) -> None:
        self.mode = "live"
        self.i = 0
        self.opens = 0
        self.release = threading.Event()

    def open(self) -> None:
        if self.mode == "gone":
            raise OSError("no such device (unplugged)")
        self.opens += 1

    def read(self):
        if self.mode == "stall":
            self.release.wait(10.0)  # bounded: a stall the test ends, or gives up on
        if self.mode == "stall":
            return None
        if self.mode == "gone":
            raise OSError("device vanished")
        time.sleep(1 / 30)
        self.i += 1
        f = np.zeros((120, 160, 3), np.uint8)
        x = 10 + (self.i * 4) % 120
        f[30:90, x:x + 25] = 220
        return f


def test_camera_stalls_vanishes_and_returns_while_the_light_goes_on(ctx, tmp_path, venue, receivers):
    tree = declare_all(extra=SENSING_PARAMS)
    for path, value in (("sensing/camera/stale_s", 0.3), ("sensing/camera/calm_s", 0.2),
                        ("mood/attack/presence", 0.1), ("mood/release/presence", 0.3),
                        ("mood/attack/motion", 0.05), ("mood/release/motion", 0.3)):
        tree.set_base(path, value)
    cam = FlakyCamera()
    hub = SensorHub(None, str(write_wav(tmp_path / "room.wav")), tree=tree, camera_source=cam)
    show = Show(ctx, venue, hub=hub, tree=tree)
    hub.start()
    try:
        mood = lambda: show.engine.mood  # noqa: E731
        assert show.run_until(lambda: "camera" in mood().live and mood().presence > 0.2
                              and "audio" in mood().live, 10), (mood(), hub.status())
        assert hub.status()["camera"]["state"] == "running"
        show.run_until(lambda: mood().presence > 0.6, 3)  # let presence settle before taking its peak
        peak = mood().presence

        # 1. the driver hangs inside read(): no new frames, no error, just silence
        cam.mode = "stall"
        n0 = show.engine.frame_count
        assert show.run_until(lambda: hub.status()["camera"]["state"] == "stale", 5), hub.status()
        assert show.run_until(lambda: "camera" not in mood().live, 5), (mood(), hub.status())
        assert mood().presence < 0.5 * peak and "audio" in mood().live, mood()  # decayed to calm; audio on
        t0 = time.monotonic()
        frames = show.run_for(1.0)
        assert show.engine.frame_count - n0 > frames >= 20, "the engine keeps stepping"
        assert sum(1 for r in receivers.rx.values() for p in r.since(t0) if p.nonzero) >= 30
        assert not show.engine.last_errors, list(show.engine.last_errors)
        doc = show.health()
        assert doc["status"] == "degraded" and "sensor/camera" in doc["unhealthy"], doc["unhealthy"]
        assert doc["sensors"]["camera"]["state"] == "stale" and doc["sensors"]["audio"]["state"] == "running"

        # 2. the device vanishes: read raises, then open fails (backoff), the show goes on
        cam.mode = "gone"
        cam.release.set()
        assert show.run_until(lambda: hub.status()["camera"]["state"] == "reopening", 5), hub.status()
        st = hub.status()["camera"]
        assert "vanished" in st["error"] or "unplugged" in st["error"], st
        assert "camera" not in mood().live
        assert show.health()["sensors"]["camera"]["state"] == "reopening"
        t0 = time.monotonic()
        assert show.run_for(1.0) >= 20
        assert all(wait_lit(r, 5, 3, after=t0) for r in receivers.rx.values())

        # 3. plugged back in: it reopens by itself and the room is seen again
        opens = cam.opens
        cam.release.clear()
        cam.mode = "live"
        assert show.run_until(lambda: hub.status()["camera"]["state"] == "running" and "camera" in mood().live,
                              12), hub.status()
        assert cam.opens > opens
        assert not show.engine.last_errors, list(show.engine.last_errors)
        doc = show.health()
        assert doc["status"] == "ok" and not doc["unhealthy"], doc["unhealthy"]

        # 4. shutting down while the driver hangs again does not hang the shutdown
        cam.mode = "stall"
        cam.release.clear()
        show.run_for(0.3)
        t0 = time.monotonic()
        hub.stop(timeout=1.0)
        assert time.monotonic() - t0 < 5.0, "hub.stop() must not wait for a hung driver"
    finally:
        cam.release.set()
        hub.stop()
        show.close()


# -- files corrupted under the running engine ------------------------------------------------------

GARBAGE_BYTES = b"\x00\xff\xfe[[[params\n\x89PNG\r\n\x1a\n = = =\n"


def test_presets_and_shaders_corrupted_on_disk_keep_the_last_good_and_reload_when_fixed(
        ctx, tmp_path, venue, receivers, caplog):
    presets = tmp_path / "presets"
    shaders = tmp_path / "shaders"
    shutil.copytree(ROOT / "presets", presets)
    shutil.copytree(ROOT / "shaders", shaders)
    show = Show(ctx, venue, EngineOptions(size=(160, 90), particles=8192, presets=presets, shaders=shaders))
    eng = show.engine
    watcher = FileWatcher([presets, shaders], eng.commands, interval_s=0.1, suffixes=(".toml", ".glsl"))
    watcher.start()
    caplog.set_level(logging.INFO)
    harmony = (presets / "harmony.toml").read_text()
    step_src = (shaders / "field_step.glsl").read_text()
    speed = eng.params.base("field/flow/speed")

    def errors_with(text):
        return [e for e in eng.last_errors if text in e]

    def lit_window():
        t0 = time.monotonic()
        n = show.run_for(1.0)
        lit = sum(1 for r in receivers.rx.values() for p in r.since(t0) if p.nonzero)
        return n, lit

    try:
        assert show.run_until(lambda: all(r.total > 10 for r in receivers.rx.values()), 10)

        # a preset in use: binary garbage, then valid TOML with a wrong value
        for bad in (GARBAGE_BYTES, harmony.replace('"field/flow/speed" = 0.2', '"field/flow/speed" = "fast"')):
            before = len(eng.last_errors)
            (presets / "harmony.toml").write_bytes(bad if isinstance(bad, bytes) else bad.encode())
            assert show.run_until(lambda: len(eng.last_errors) > before, 5), list(eng.last_errors)
            assert "harmony" in eng.last_errors[-1], eng.last_errors[-1]
            assert eng.preset_name == "harmony" and eng.params.base("field/flow/speed") == speed
            doc = show.health()
            assert doc["status"] == "ok" and any("harmony" in e["message"] for e in doc["errors"]), doc["errors"]
            n, lit = lit_window()
            assert n >= 20 and lit >= 30, (n, lit)
        # fixed (with a new value): reloaded and faded in
        (presets / "harmony.toml").write_text(harmony.replace('"field/flow/speed" = 0.2', '"field/flow/speed" = 0.33'))
        assert show.run_until(lambda: abs(eng.params.base("field/flow/speed") - 0.33) < 1e-6, 8), \
            eng.params.base("field/flow/speed")
        assert "preset harmony reloaded from disk" in caplog.text

        # a shader run every frame: garbage -> compile error reported, the last good program kept
        before = len(errors_with("shader"))
        (shaders / "field_step.glsl").write_bytes(b"void main( { this is not GLSL }\n")
        assert show.run_until(lambda: len(errors_with("shader")) > before, 5), list(eng.last_errors)
        assert "field_step.glsl" in errors_with("shader")[-1], errors_with("shader")[-1]
        assert any("field_step.glsl" in e["message"] for e in show.health()["errors"])
        n, lit = lit_window()
        assert n >= 20 and lit >= 30, (n, lit)
        assert np.frombuffer(eng.tapestry.read(), np.uint8).any(), "the tapestry is still drawn"
        assert not [e for e in eng.last_errors if not e.startswith(("shader", "/", str(presets)))], \
            "no frame failed"
        # fixed: recompiled, no new errors
        caplog.clear()
        (shaders / "field_step.glsl").write_text(step_src + "\n// fixed\n")
        assert show.run_until(lambda: "shader field_step.glsl reloaded" in caplog.text, 5), caplog.text[-2000:]
        count = len(eng.last_errors)
        n, lit = lit_window()
        assert n >= 20 and lit >= 30 and len(eng.last_errors) == count

        # an include shared by several programs: broken, then fixed
        lib = next(p for p in sorted((shaders / "lib").glob("*.glsl")))
        lib_src = lib.read_text()
        before = len(errors_with("shader"))
        lib.write_text("#error broken include\n" + lib_src)
        assert show.run_until(lambda: len(errors_with("shader")) > before, 5), list(eng.last_errors)
        n, lit = lit_window()
        assert n >= 20 and lit >= 30, (n, lit)
        caplog.clear()
        lib.write_text(lib_src + "\n// fixed\n")
        assert show.run_until(lambda: "reloaded" in caplog.text, 5), caplog.text[-2000:]
    finally:
        watcher.stop()
        show.close()


# -- the LED sampling shader ------------------------------------------------------------------------

def test_a_broken_led_sampling_shader_at_start_up_is_named(ctx, tmp_path, venue, monkeypatch):
    from installation.fixtures import sampler
    from installation.gfx.shaders import ShaderError
    broken = tmp_path / "led_sample.glsl"
    broken.write_text(sampler.SHADER.read_text().replace("void main", "void main( {", 1))
    monkeypatch.setattr(sampler, "SHADER", broken)
    with pytest.raises(ShaderError, match="led_sample.glsl"):
        LedPipeline(ctx, load_venue(venue), declare_all())


def test_a_led_sampling_shader_broken_under_the_running_show_is_reported(ctx, tmp_path, venue, receivers):
    shaders = tmp_path / "shaders"
    shutil.copytree(ROOT / "shaders", shaders)
    show = Show(ctx, venue, EngineOptions(size=(160, 90), particles=8192, shaders=shaders))
    watcher = FileWatcher([shaders], show.engine.commands, interval_s=0.1, suffixes=(".glsl",))
    watcher.start()
    try:
        assert show.run_until(lambda: all(r.total > 10 for r in receivers.rx.values()), 10)
        (shaders / "led_sample.glsl").write_text("void main( { garbage\n")
        assert show.run_until(lambda: any("led_sample.glsl" in e for e in show.engine.last_errors), 3), \
            list(show.engine.last_errors)
    finally:
        watcher.stop()
        show.close()


def test_a_led_stage_failing_on_the_worker_thread_is_reported_and_the_light_comes_back(ctx, venue, receivers):
    """The CPU stages run on the LED pipeline's own thread in the live show: a stage that raises there
    reaches /health's errors like a frame's, and once it stops failing the LEDs go on."""
    show = Show(ctx, venue)
    real = show.leds.color.limit_power
    broken = {"on": False}

    def power():
        if broken["on"]:
            raise RuntimeError("supply table corrupt")
        real()

    show.leds.color.limit_power = power
    try:
        assert show.run_until(lambda: all(r.total > 10 for r in receivers.rx.values()), 10)
        broken["on"] = True
        assert show.run_until(lambda: any("supply table corrupt" in e["message"] for e in show.health()["errors"]),
                              3), show.health()["errors"]
        broken["on"] = False
        before = {k: r.total for k, r in receivers.rx.items()}
        assert show.run_until(lambda: all(r.total > before[k] + 10 for k, r in receivers.rx.items()), 5)
        worker = show.health()["leds"]["worker"]
        assert worker["alive"] and worker["errors"] > 0 and worker["done"] > 20
    finally:
        show.close()
