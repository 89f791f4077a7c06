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


def test_gpu_correction_matches_the_cpu_colour_pipeline(rig):
    """process() does gamma, white balance and master on the GPU; the bytes match the CPU path's."""
    venue, tree, ctx, rx = rig
    tree.set_base("leds/gamma", 2.2)
    tree.set_base("leds/master", 0.8)
    leds = LedPipeline(ctx, venue, tree)
    leds.color.set_calibration(1, gamma=1.6, white=(1.0, 0.7, 0.4), brightness=0.9)
    yy, xx = np.mgrid[0:90, 0:160]
    img = np.zeros((90, 160, 4), np.uint8)
    img[..., 0] = xx * 255 // 159
    img[..., 1] = yy * 255 // 89
    img[..., 2] = 255 - xx * 255 // 159
    tex = ctx.texture((160, 90), 4, img.tobytes())
    gpu = leds.process(tex).astype(int)
    cpu = leds.color.process(leds.sampler.sample(tex)).astype(int)
    assert np.abs(gpu - cpu).max() <= 1 and np.abs(gpu - cpu).mean() < 0.05
    assert cpu.max() > 150 and np.count_nonzero(cpu) > 0.5 * cpu.size   # a real picture, not all black
    # a live change of a calibration reaches the GPU on the next frame
    leds.color.set_calibration(1, brightness=0.0)
    out = leds.color.unpack(leds.process(tex))
    assert not out[200:280].any() and out[:200].any()
    leds.close()
    tex.release()


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
