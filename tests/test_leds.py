"""LedPipeline end to end: a real texture on a headless GL context -> real outputs -> a loopback receiver."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from installation.gfx.context import headless_context
from installation.leds import PARAMS, LedPipeline
from installation.params import ParamTree
from installation.venue import load_venue
from tests.support.udp import DmxReceiver

LAYOUT = """
[[fixtures]]
name = "wall"
type = "strip"
start = [0.25, 0.1]
end = [0.25, 0.9]
count = 200
width = 0.2
[fixtures.patch]
controller = "art"
universe = 3
order = "GRB"
[[fixtures]]
name = "net"
type = "matrix"
origin = [0.6, 0.1]
columns = 10
rows = 8
spacing = 0.03
[fixtures.patch]
controller = "wled"
offset = 0
order = "BGR"
[[fixtures]]
name = "rim"
type = "strip"
start = [0.6, 0.95]
end = [0.95, 0.95]
count = 20
[fixtures.patch]
controller = "node"
universe = 7
order = "RGBW"
"""

VENUE = """
layouts = ["l.toml"]
[[outputs]]
name = "art"
protocol = "artnet"
host = "127.0.0.1"
port = {port}
fps = 200
[[outputs]]
name = "wled"
protocol = "ddp"
host = "127.0.0.1"
port = {port}
fps = 200
[[outputs]]
name = "node"
protocol = "sacn"
host = "127.0.0.1"
port = {port}
fps = 200
"""


@pytest.fixture
def rig(tmp_path: Path):
    rx = DmxReceiver()
    (tmp_path / "l.toml").write_text(LAYOUT)
    (tmp_path / "v.toml").write_text(VENUE.format(port=rx.port))
    venue = load_venue(tmp_path / "v.toml")
    tree = ParamTree.from_specs(PARAMS)
    tree.set_base("leds/dither", False)
    tree.set_base("leds/gamma", 1.0)
    ctx = headless_context()
    yield venue, tree, ctx, rx
    rx.close()
    ctx.release()


def solid(ctx, rgb):
    img = np.zeros((90, 160, 4), np.uint8)
    img[..., :3] = rgb
    return ctx.texture((160, 90), 4, img.tobytes())


def test_texture_to_wire_in_every_protocol(rig):
    venue, tree, ctx, rx = rig
    leds = LedPipeline(ctx, venue, tree)
    tex = solid(ctx, (255, 128, 0))
    buf = leds.process(tex)
    assert buf.dtype == np.uint8
    g = 128  # 128/255 at gamma 1 -> 128
    # Art-Net: 200 GRB pixels from universe 3: 170 in 3, 30 in 4
    ok = rx.wait_latest(lambda s: s[("artnet", 3)][:6] == bytes([g, 255, 0, g, 255, 0])
                        and len(s[("artnet", 4)]) == 90)
    assert ok, rx.latest().keys()
    assert rx.latest()[("artnet", 3)][:510] == bytes([g, 255, 0]) * 170
    # DDP: 80 BGR pixels at offset 0
    assert rx.wait_latest(lambda s: s[("ddp", 0)] == bytes([0, g, 255]) * 80)
    # sACN: 20 RGBW pixels in universe 7 (orange: W = min = 0)
    assert rx.wait_latest(lambda s: s[("sacn", 7)][:80] == bytes([255, g, 0, 0]) * 20)
    shown = leds.led_colors()
    assert shown.shape == (300, 3) and tuple(shown[0]) == (255, g, 0) and tuple(shown[299]) == (255, g, 0)
    st = leds.status()
    assert st["leds"] == 300 and st["frames"] == 1 and len(st["outputs"]) == 3
    leds.close("blackout")
    assert rx.wait_latest(lambda s: not any(s[("artnet", 3)]) and not any(s[("ddp", 0)])
                          and not any(s[("sacn", 7)][:80]))
    tex.release()


def test_hold_end_state_keeps_last_frame(rig):
    venue, tree, ctx, rx = rig
    leds = LedPipeline(ctx, venue, tree)
    tex = solid(ctx, (0, 0, 255))
    leds.process(tex)
    leds.close("hold")
    assert rx.wait_latest(lambda s: s[("ddp", 0)] == bytes([255, 0, 0]) * 80)
    tex.release()


def test_process_sends_never_blocks_on_a_dead_host(rig, tmp_path):
    venue, tree, ctx, rx = rig
    # port 9 on loopback (discard; nothing listening): sending must not raise into the frame loop
    (tmp_path / "v.toml").write_text(VENUE.format(port=9))
    venue = load_venue(tmp_path / "v.toml")
    leds = LedPipeline(ctx, venue, tree)
    tex = solid(ctx, (10, 20, 30))
    for _ in range(5):
        leds.process(tex)
    assert leds.status()["frames"] == 5
    leds.close()
    tex.release()


def test_gamma_and_white_balance_in_one_place_for_textures_and_colours(rig):
    """process(texture) and process_colors(colours) go through the same GPU correction: the same
    colour, as a uniform tapestry or given per LED, gives the same bytes; calibrations reach both."""
    venue, tree, ctx, rx = rig
    tree.set_base("leds/gamma", 2.2)
    tree.set_base("leds/master", 0.8)
    leds = LedPipeline(ctx, venue, tree)
    leds.color.set_calibration(1, gamma=1.6, white=(1.0, 0.7, 0.4), brightness=0.9)
    for rgb in ((200, 100, 30), (255, 255, 255), (0, 0, 0), (17, 240, 128)):
        tex = solid(ctx, rgb)
        a = leds.process(tex, 1 / 60).copy()
        b = leds.process_colors(np.tile(np.array(rgb, np.float32) / 255.0, (leds.layout.count, 1)), 1 / 60)
        np.testing.assert_array_equal(a, b)
        tex.release()
    out = leds.color.unpack(leds.last)
    g = round(255 * (17 / 255) ** 1.6 * 0.9 * 0.8)   # the net (fixture 1): its own gamma, brightness, master
    assert abs(int(out[200, 0]) - g) <= 1 and out[0, 1] > 150
    leds.color.set_calibration(1, brightness=0.0)     # a live change reaches the GPU on the next frame
    out = leds.color.unpack(leds.process_colors(np.full((300, 3), 0.5, np.float32), 1 / 60))
    assert not out[200:280].any() and out[:200].any()
    leds.close()
    leds.release()


def test_no_pipeline_without_the_power_and_flash_limits(rig):
    """The stages are built by the pipeline: none can be left out or swapped in at construction,
    and bytes reach the outputs only through them."""
    venue, tree, ctx, rx = rig
    import inspect
    params = set(inspect.signature(LedPipeline).parameters)
    assert params == {"ctx", "venue", "tree", "fps", "outputs", "shaders", "worker", "clock"}
    with pytest.raises(TypeError):
        LedPipeline(ctx, venue, tree, safety=None)
    leds = LedPipeline(ctx, venue, tree)
    assert [s.name for s in leds.stages] == ["correct", "power", "quantize", "flash", "pack", "send"]
    assert not hasattr(leds, "send") and not hasattr(leds, "safety")
    leds.close()
    leds.release()


def test_a_full_field_strobe_is_limited_on_the_wire_and_slow_content_is_byte_identical(rig):
    """10 Hz black/white through process_colors: at most 3 flashes a second arrive; a slow fade comes out
    exactly as the stages without the flash limiter would pack it."""
    venue, tree, ctx, rx = rig
    leds = LedPipeline(ctx, venue, tree, fps=60)
    n = leds.layout.count
    sent = []
    for i in range(120):
        v = 1.0 if (i // 3) % 2 else 0.0
        sent.append(leds.process_colors(np.full((n, 3), v, np.float32), 1 / 60).copy())
    lum = np.array([leds.color.unpack(b)[:, :3].astype(float).mean() / 255 for b in sent])
    hi, lo, moves, times = lum[0], lum[0], [], []
    for i, x in enumerate(lum):   # transitions of >= 10 % between extremes, as WCAG counts them
        if hi - x >= 0.1 and (not moves or moves[-1] > 0):
            moves.append(-1); times.append(i / 60); hi = lo = x
        elif x - lo >= 0.1 and (not moves or moves[-1] < 0):
            moves.append(1); times.append(i / 60); hi = lo = x
        hi, lo = max(hi, x), min(lo, x)
    t = np.array(times)
    assert len(t) >= 4 and max(np.sum((t > s - 1.0) & (t <= s)) for s in t) <= 6
    assert leds.status()["flash"]["frames_limited"] > 0
    leds.close()
    leds.release()

    # slow content: the flash stage leaves every byte alone
    from installation.color import ColorPipeline
    from installation.fixtures.sampler import LedSampler
    leds = LedPipeline(ctx, venue, tree, fps=60)
    ref = ColorPipeline(venue.layout, venue.patch, tree, venue.supplies, venue.current, venue.max_brightness)
    sampler = LedSampler(ctx, venue.layout)
    for i in range(90):
        tex = solid(ctx, (int(127 + 120 * np.sin(i / 30)), 60, int(127 + 120 * np.cos(i / 40))))
        got = leds.process(tex, 1 / 60)
        gamma, scale, gd, m, key = ref.gpu_correction()
        sampler.sample_linear(tex, gamma, scale, gd, m, key=key, out=ref.levels)
        ref.limit_power()
        np.testing.assert_array_equal(got, ref.quantize_pack())
        tex.release()
    assert leds.flash_limiter.frames_limited == 0
    sampler.release()
    leds.close()
    leds.release()


def _wcag_transitions(lum, times, start=0.0):
    """Times of the transitions of >= 10 % between extremes in ``lum``, as WCAG counts them, the light
    before the first frame being ``start``."""
    hi = lo = start
    moves, out = [], []
    for t, x in zip(times, lum):
        if hi - x >= 0.1 and (not moves or moves[-1] > 0):
            moves.append(-1); out.append(t); hi = lo = x
        elif x - lo >= 0.1 and (not moves or moves[-1] < 0):
            moves.append(1); out.append(t); hi = lo = x
        hi, lo = max(hi, x), min(lo, x)
    return np.array(out)


def _worst_second(t):
    return max((int(np.sum((t > s - 1.0) & (t <= s))) for s in t), default=0)


class _Clock:
    """The wall clock as the wire sees it, advanced by the test: one frame every 1/60 s."""

    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.mark.parametrize("fps, dt", [(0.1, None), (60, 10.0)])
def test_a_strobe_cannot_be_spread_over_seconds_that_did_not_pass(rig, fps, dt):
    """A caller that claims more time than passed (a low nominal fps, a large dt) still gets a 10 Hz
    strobe limited to 3 flashes in every second of the clock the frames go out by."""
    venue, tree, ctx, rx = rig
    clock = _Clock()
    leds = LedPipeline(ctx, venue, tree, fps=fps, clock=clock)
    n = leds.layout.count
    lum, times = [], []
    for i in range(180):
        clock.t += 1 / 60
        v = 1.0 if (i // 3) % 2 else 0.0
        out = leds.process_colors(np.full((n, 3), v, np.float32), dt)
        lum.append(leds.color.unpack(out)[:, :3].astype(float).mean() / 255)
        times.append(i / 60)
    assert leds.flash_limiter.frames_limited > 0
    assert _worst_second(_wcag_transitions(lum, times)) <= 6
    leds.close()
    leds.release()


def test_lighting_up_from_dark_counts_as_the_first_transition(rig):
    """The LEDs are dark before a pipeline's first frame: on/off at 60 fps from the start makes at most
    6 transitions in any second counting the first lighting-up (was 7)."""
    venue, tree, ctx, rx = rig
    clock = _Clock()
    leds = LedPipeline(ctx, venue, tree, fps=60, clock=clock)
    n = leds.layout.count
    lum, times = [], []
    for i in range(60):
        clock.t += 1 / 60
        out = leds.process_colors(np.full((n, 3), float(i % 2 == 0), np.float32), 1 / 60)
        lum.append(leds.color.unpack(out)[:, :3].astype(float).mean() / 255)
        times.append(i / 60)
    t = _wcag_transitions(lum, times, start=0.0)
    assert len(t) >= 2 and _worst_second(t) <= 6
    leds.close()
    leds.release()


def test_a_failing_flash_limiter_holds_the_last_safe_frame(rig):
    venue, tree, ctx, rx = rig
    leds = LedPipeline(ctx, venue, tree)
    good = leds.process_colors(np.full((300, 3), 0.3, np.float32), 1 / 60).copy()

    def broken(rgb, dt=None):
        raise RuntimeError("boom")

    leds.flash_limiter.limit = broken
    held = leds.process_colors(np.ones((300, 3), np.float32), 1 / 60)
    np.testing.assert_array_equal(held, good)
    leds.close()
    leds.release()


class StuckOutput:
    """An output whose send() blocks until released (a stand-in for any slow hand-off)."""

    def __init__(self, name):
        import threading
        self.name = name
        self.entered = threading.Event()
        self.release = threading.Event()
        self.frames: list[bytes] = []
        self.final = None

    def send(self, buf):
        self.entered.set()
        self.release.wait(10)
        self.frames.append(bytes(buf))

    def close(self, final=None):
        self.final = None if final is None else bytes(final)

    def status(self):
        return {"name": self.name, "frames": len(self.frames)}


def test_frame_thread_does_not_wait_for_outputs_and_newest_frame_wins(rig):
    venue, tree, ctx, rx = rig
    outs = [StuckOutput(c.name) for c in venue.patch.controllers]
    leds = LedPipeline(ctx, venue, tree, outputs=outs)
    texs = [solid(ctx, (v, v, v)) for v in (10, 20, 30, 40)]
    bufs = [leds.process(texs[0]).copy()]
    assert outs[0].entered.wait(5)                   # the hand-off thread is now stuck in the first send
    bufs += [leds.process(t).copy() for t in texs[1:]]   # and the frame thread goes on regardless
    assert not outs[0].frames
    assert leds.status()["frames"] == 4
    for o in outs:
        o.release.set()
    # the first frame was taken before the outputs stuck; of the three queued behind it only the newest is sent
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(outs[-1].frames) < 2:
        time.sleep(0.01)
    sl = slice(int(venue.patch.base[0]), int(venue.patch.base[0]) + venue.patch.controllers[0].size)
    assert outs[0].frames == [bytes(bufs[0][sl]), bytes(bufs[3][sl])]
    assert leds.status()["replaced"] == 2
    leds.close("hold")
    assert outs[0].final == bytes(bufs[3][sl])
    for t in texs:
        t.release()


def wait_until(pred, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.002)
    return pred()


def strobe(n: int, i: int) -> np.ndarray:
    """Frame ``i`` of a 10 Hz full-field strobe at 60 fps, with a colour ramp so frames differ."""
    v = 1.0 if (i // 3) % 2 else 0.05
    return np.column_stack([np.full(n, v), np.linspace(0, v, n), np.full(n, v * 0.5)]).astype(np.float32)


def test_worker_sends_the_bytes_the_inline_path_sends_and_the_frame_thread_runs_only_the_gpu_pass(rig):
    """The live show's pipeline (CPU stages on their own thread) puts the same bytes on the wire, frame by
    frame, as the inline one -- flash limiter acting included -- while the limiter never runs on the
    thread that calls process()."""
    import threading
    venue, tree, ctx, rx = rig
    tree.set_base("leds/dither", True)
    inline = LedPipeline(ctx, venue, tree, fps=60, outputs=[])
    live = LedPipeline(ctx, venue, tree, fps=60, outputs=[], worker=True)
    threads = set()
    limit = live.flash_limiter.limit

    def watched(rgb, dt=None):
        threads.add(threading.current_thread().name)
        return limit(rgb, dt)

    live.flash_limiter.limit = watched
    n = inline.layout.count
    for i in range(90):
        want = inline.process_colors(strobe(n, i), 1 / 60).copy()
        assert live.process_colors(strobe(n, i), 1 / 60) is None
        assert wait_until(lambda: live.status()["worker"]["done"] == i + 1)
        np.testing.assert_array_equal(live.last, want, err_msg=f"frame {i}")
    assert threads == {"leds-stages"}
    assert inline.flash_limiter.frames_limited == live.flash_limiter.frames_limited > 0
    st = live.status()
    assert st["worker"]["alive"] and st["worker"]["dropped"] == 0 and st["frame_thread_ms"] > 0
    for p in (inline, live):
        p.close()
        p.release()


def test_worker_behind_drops_frames_but_the_flash_limiter_still_counts_real_time(rig):
    """When the CPU stages fall behind, the frame thread does not wait: the newest frame replaces one the
    worker had not started, and the time of the frames it replaced is added to it, so the limiter's
    clock keeps up with the wall's."""
    import threading
    venue, tree, ctx, rx = rig
    clock = _Clock()
    live = LedPipeline(ctx, venue, tree, fps=60, outputs=[], worker=True, clock=clock)
    gate = threading.Event()
    seen: list[float] = []
    limit = live.flash_limiter.limit

    def slow(rgb, dt=None):
        seen.append(dt)
        gate.wait(5)
        return limit(rgb, dt)

    live.flash_limiter.limit = slow
    n = live.layout.count
    t0 = time.perf_counter()
    for i in range(30):
        clock.t += 1 / 60
        live.process_colors(strobe(n, i), 1 / 60)
    frame_thread_s = time.perf_counter() - t0
    gate.set()
    assert wait_until(lambda: live.status()["worker"]["done"] + live.status()["worker"]["dropped"] == 30)
    st = live.status()["worker"]
    assert st["dropped"] >= 20 and st["done"] == len(seen) <= 10
    # the replaced frames' time is carried (without it: at most 10 / 60); the clock the worker reads when
    # it takes its first frame may already be a frame or two on, so up to that much less
    assert 25 / 60 <= sum(seen) <= 30 / 60 + 1e-9, (seen, st)
    assert frame_thread_s < 5.0   # it never waited for the gate (5 s per frame if it had)
    live.close()
    live.release()


def test_worker_survives_a_failing_stage_and_close_goes_dark_through_the_limiter(rig):
    """A stage that raises costs its frame, not the worker; closing the live pipeline stops the worker
    and takes every LED to black on the wire (after a strobe, through the flash limiter)."""
    venue, tree, ctx, rx = rig
    clock = _Clock()
    live = LedPipeline(ctx, venue, tree, fps=60, worker=True, clock=clock)
    n = live.layout.count
    real = live.color.limit_power
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("supply table corrupt")
        real()

    live.color.limit_power = flaky
    seen: list[float] = []
    limit = live.flash_limiter.limit

    def counted(rgb, dt=None):
        seen.append(dt)
        return limit(rgb, dt)

    live.flash_limiter.limit = counted
    for i in range(12):
        clock.t += 1 / 60
        live.process_colors(strobe(n, i), 1 / 60)
        wait_until(lambda: live.status()["worker"]["done"] + live.status()["worker"]["errors"] == i + 1)
    st = live.status()["worker"]
    assert st["errors"] == 1 and st["done"] == 11 and st["alive"] and "supply table corrupt" in st["last_error"]
    assert len(seen) == 11 and sum(seen) == pytest.approx(12 / 60)   # the failed frame's time went to the next
    assert rx.wait_latest(lambda s: any(s[("ddp", 0)]))
    live.close("blackout")
    assert not live.status()["worker"]["alive"]
    assert rx.wait_latest(lambda s: not any(s[("artnet", 3)]) and not any(s[("ddp", 0)])
                          and not any(s[("sacn", 7)][:80]))
    assert live.process_colors(strobe(n, 0), 1 / 60) is None   # after close: nothing handed over, no error
    live.release()


def test_scene_changes_over_osc_at_10_hz_flash_at_most_3_times_a_second_in_every_region(tmp_path):
    """Issue 14's case: hard preset changes sent over OSC at 10 Hz on the demo venue.  The whole-field mean
    stayed within 3 flashes a second before, while parts of the wall flashed up to 5 times a second; now
    every region (a 10-degree field at the venue's closest viewing distance) stays within the rule too."""
    import dataclasses
    import socket

    from installation.control.osc import OscConfig, OscServer
    from installation.control.wire import encode_message
    from installation.engine import Engine, EngineOptions, declare_all
    from installation.safety import venue_region
    from tests.hardware.flash_count import report

    ROOT = Path(__file__).resolve().parents[1]
    rx = DmxReceiver()
    ctx = headless_context()
    tree = declare_all()
    eng = Engine(ctx, EngineOptions(size=(160, 90), particles=8192), tree=tree)
    venue = load_venue(ROOT / "hardware" / "demo-venue.toml")
    venue = dataclasses.replace(venue, outputs=tuple(dataclasses.replace(o, port=rx.port) for o in venue.outputs))
    leds = LedPipeline(ctx, venue, tree, fps=60, shaders=eng.shaders)
    eng.attach_leds(leds, fps=60)
    server = OscServer(tree, eng.commands, OscConfig(port=0)).start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    names = ["harmony", "tension", "breakdown", "restoration", "symbiosis"]
    frames = []
    try:
        for i in range(180):                                   # 3 s at 60 fps, a preset cut every 6 frames
            if i % 6 == 0:
                client.sendto(encode_message("/tapestry/preset/load", names[(i // 6) % 5], 0.0),
                              server.address)
                deadline = time.monotonic() + 5
                while eng.commands.empty() and time.monotonic() < deadline:
                    time.sleep(0.002)
            eng.frame(1 / 60)
            rgbw = leds.color.unpack(leds.last).astype(np.float64) / 255.0   # the bytes sent this frame
            frames.append(np.minimum(rgbw[:, :3] + rgbw[:, 3:], 1.0))
        assert eng.preset_name == "symbiosis" and rx.wait_latest(lambda s: len(s) >= 3)   # it ran; it was sent
    finally:
        client.close()
        server.stop()
        eng.close()
        eng.release()
        rx.close()
        ctx.release()
    lay = venue.layout
    r = report(np.stack(frames), [(i + 1) / 60 for i in range(180)], lay.areas(), lay.positions, venue_region(venue))
    assert max(np.ptp(np.stack(frames)[:, :, 0], axis=0)) > 0.1   # the cuts really changed the light
    assert r.ok(), r


def test_a_pipeline_that_fails_to_build_leaves_its_controllers_free(rig, monkeypatch):
    """A start that fails after claiming the venue's controllers (here the GPU sampler) gives them back:
    the next try, or test_leds.py, is not refused by a claim nobody uses."""
    venue, tree, ctx, rx = rig
    import installation.leds as L

    def broken(*a, **k):
        raise RuntimeError("no sampler today")

    monkeypatch.setattr(L, "LedSampler", broken)
    with pytest.raises(RuntimeError, match="no sampler today"):
        LedPipeline(ctx, venue, tree)
    monkeypatch.undo()
    leds = LedPipeline(ctx, venue, tree)
    from installation.outputs.claim import ControllersBusy
    with pytest.raises(ControllersBusy):
        LedPipeline(ctx, venue, tree)           # while it runs, a second one is refused
    leds.close()
    leds.release()
