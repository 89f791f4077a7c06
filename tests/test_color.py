"""The colour pipeline: gamma, white balance (on the GPU, the one place), power limiter (never over budget),
dithering, packing -- run as LedPipeline's correct -> power -> pack stages run them, on a real GL context."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from installation.color import PARAMS, ColorPipeline, CurrentModel, Supply
from installation.fixtures.layout import load_layout, resolve_patch
from installation.fixtures.sampler import LedSampler
from installation.params import ParamTree

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # no overflow / NaN anywhere in the pipeline

LAYOUT = """
[[fixtures]]
name = "a"
type = "strip"
start = [0.0, 0.2]
end = [1.0, 0.2]
count = 300
[fixtures.patch]
controller = "c"
universe = 1
order = "GRB"
[fixtures.calibration]
white = [1.0, 0.5, 0.25]
[[fixtures]]
name = "b"
type = "strip"
start = [0.0, 0.5]
end = [1.0, 0.5]
count = 200
[fixtures.patch]
controller = "c"
order = "RGBW"
reversed = true
[fixtures.calibration]
gamma = 1.0
brightness = 0.5
[[fixtures]]
name = "c"
type = "strip"
start = [0.0, 0.8]
end = [1.0, 0.8]
count = 100
[fixtures.patch]
controller = "d"
offset = 0
order = "BGR"
"""


class Stages:
    """ColorPipeline driven like LedPipeline's stages: correct (GPU shader) -> power -> pack."""

    def __init__(self, ctx, lay, pm, tree, supplies=(), cm=CurrentModel()):
        self.cp = ColorPipeline(lay, pm, tree, supplies, cm)
        self.sampler = LedSampler(ctx, lay)

    def process(self, colors: np.ndarray) -> np.ndarray:
        gamma, scale, g_default, master, key = self.cp.gpu_correction()
        self.sampler.correct_colors(colors, gamma, scale, g_default, master, key=key, out=self.cp.levels)
        self.cp.limit_power()
        return self.cp.quantize_pack()

    def __getattr__(self, name):   # unpack, estimate_amps, status, last_scale, set_calibration ...
        return getattr(self.cp, name)


@pytest.fixture
def setup(tmp_path: Path, ctx):
    p = tmp_path / "l.toml"
    p.write_text(LAYOUT)
    lay = load_layout(p)
    pm = resolve_patch(lay, {"c": "artnet", "d": "ddp"})
    tree = ParamTree.from_specs(PARAMS)
    made = []

    def make(lay_, pm_, tree_, *args, **kw):   # called like ColorPipeline(layout, patch, tree, ...)
        made.append(Stages(ctx, lay_, pm_, tree_, *args, **kw))
        return made[-1]
    yield lay, pm, tree, make
    for st_ in made:
        st_.sampler.release()


def test_params_declared():
    paths = {p.path for p in PARAMS}
    assert {"leds/master", "leds/gamma", "leds/dither"} <= paths


def test_gamma_white_balance_brightness_and_order(setup):
    lay, pm, tree, ColorPipeline = setup
    tree.set_base("leds/dither", False)
    cp = ColorPipeline(lay, pm, tree)
    colors = np.full((lay.count, 3), 0.5, np.float32)
    out = cp.unpack(cp.process(colors)).astype(int)
    g = 0.5 ** 2.2
    # fixture a: default gamma 2.2, white balance (1, .5, .25)
    np.testing.assert_allclose(out[0, :3], [255 * g, 255 * g * 0.5, 255 * g * 0.25], atol=1)
    # fixture b: gamma 1, brightness .5, RGBW: all of the grey goes to W
    assert list(out[300]) == [0, 0, 0, round(255 * 0.25)]
    # fixture c: default gamma, BGR on the wire
    buf = cp.process(np.tile(np.array([[1.0, 0.0, 0.0]], np.float32), (lay.count, 1)))
    base = pm.base[pm.controller("d")]
    assert list(buf[base:base + 3]) == [0, 0, 255]   # B, G, R
    # fixture a: GRB
    assert list(buf[0:3]) == [0, 255, 0]
    # live gamma and master
    tree.set_base("leds/gamma", 1.0)
    tree.set_base("leds/master", 0.5)
    out = cp.unpack(cp.process(colors)).astype(int)
    assert abs(out[0, 0] - 255 * 0.25) <= 1


def test_reversed_fixture_packs_last_led_first(setup):
    lay, pm, tree, ColorPipeline = setup
    tree.set_base("leds/dither", False)
    cp = ColorPipeline(lay, pm, tree)
    colors = np.zeros((lay.count, 3), np.float32)
    colors[499] = [1.0, 0.0, 0.0]   # the geometrically last LED of fixture b
    buf = cp.process(colors)
    first_b = int(pm.dest[499, 0])
    assert buf[first_b] == 128 and first_b < int(pm.dest[300, 0])   # fixture b has brightness 0.5
    assert first_b == 512 + 390   # a: 170 pixels in universe 1, 130 in universe 2; b follows at ch 391


def test_zero_stays_zero_and_full_stays_full_with_dither(setup):
    lay, pm, tree, ColorPipeline = setup
    cp = ColorPipeline(lay, pm, tree)
    rng = np.random.default_rng(3)
    for _ in range(20):
        cp.process(rng.random((lay.count, 3), dtype=np.float32))
    assert not cp.process(np.zeros((lay.count, 3), np.float32)).any()
    # bytes no LED is patched to (the rest of each universe) stay 0 frame after frame
    used = np.zeros(pm.total, bool)
    used[pm.dest[pm.dest >= 0]] = True
    for _ in range(5):
        buf = cp.process(rng.random((lay.count, 3), dtype=np.float32))
    assert (~used).sum() > 100 and not buf[~used].any()
    out = cp.unpack(cp.process(np.ones((lay.count, 3), np.float32)))
    assert np.all(out[:300, 0] == 255)


def test_dithering_reproduces_fractional_levels_on_average(setup):
    lay, pm, tree, ColorPipeline = setup
    cp = ColorPipeline(lay, pm, tree)
    level = 0.03  # after gamma 2.2 this is far below one 8-bit step
    colors = np.full((lay.count, 3), level, np.float32)
    frames = [cp.unpack(cp.process(colors))[:300, 0].astype(float) for _ in range(256)]
    want = 255 * level ** 2.2 * 1.0
    mean = np.mean(frames)
    assert 0 < want < 0.5 and mean == pytest.approx(want, rel=0.05)
    tree.set_base("leds/dither", False)
    assert cp.unpack(cp.process(colors))[:300, 0].max() == 0   # without dithering it is simply black


def test_power_limiter_never_exceeds_budget(setup):
    lay, pm, tree, ColorPipeline = setup
    supplies = [Supply("ab", 4.0, ("a", "b")), Supply("c", 1.5, ("c",))]
    cm = CurrentModel(r=16, g=11, b=15, w=20, idle=1)
    cp = ColorPipeline(lay, pm, tree, supplies, cm)
    rng = np.random.default_rng(7)
    limited = 0
    for i in range(300):
        kind = i % 3
        if kind == 0:
            colors = rng.random((lay.count, 3), dtype=np.float32)
        elif kind == 1:
            colors = np.clip(rng.normal(0.8, 0.3, (lay.count, 3)), 0, 1).astype(np.float32)
        else:
            colors = (rng.random((lay.count, 3)) > rng.random()).astype(np.float32)
        tree.set_base("leds/dither", bool(i % 2))
        buf = cp.process(colors)
        amps = cp.estimate_amps(buf)
        assert np.all(amps <= [4.0, 1.5]), (i, amps)
        limited += bool(np.any(cp.last_scale < 1))
    assert limited > 100  # the budgets really bit
    # full white is limited to just under budget, not to black
    amps = cp.estimate_amps(cp.process(np.ones((lay.count, 3), np.float32)))
    # (the RGBW fixture is estimated as if its white were R+G+B, an upper bound, so "ab" lands lower)
    assert amps[0] > 0.75 * 4.0 and amps[1] > 0.9 * 1.5
    assert cp.status()["ab"]["scale"] < 1


def test_unfed_fixture_is_not_limited(setup):
    lay, pm, tree, ColorPipeline = setup
    cp = ColorPipeline(lay, pm, tree, [Supply("c", 0.5, ("c",))])
    out = cp.unpack(cp.process(np.ones((lay.count, 3), np.float32)))
    assert out[0, 0] == 255 and out[599, 0] < 255


def test_rgbw_white_extraction(setup):
    lay, pm, tree, ColorPipeline = setup
    tree.set_base("leds/dither", False)
    cp = ColorPipeline(lay, pm, tree)
    colors = np.zeros((lay.count, 3), np.float32)
    colors[300] = [1.0, 1.0, 0.5]
    out = cp.unpack(cp.process(colors))[300].astype(int)
    # gamma 1, brightness .5: (0.5, 0.5, 0.25) -> W 0.25, RGB (0.25, 0.25, 0)
    assert list(out) == [64, 64, 0, 64]


@settings(max_examples=60, deadline=None)
@given(amps=st.tuples(st.floats(0.8, 30.0), st.floats(0.2, 10.0)),  # above the idle current of 500 / 100 LEDs
       ma=st.tuples(st.floats(1, 40), st.floats(1, 40), st.floats(1, 40), st.floats(0, 200), st.floats(0, 1.5)),
       master=st.floats(0.0, 1.0), dither=st.booleans(), seed=st.integers(0, 2**32 - 1),
       level=st.floats(0.0, 1.0))
def test_power_limit_property(tmp_path_factory, ctx, amps, ma, master, dither, seed, level):
    """For any budgets, current model, master, dithering and frames: the estimate never exceeds a budget."""
    p = tmp_path_factory.mktemp("pl") / "l.toml"
    p.write_text(LAYOUT)
    lay = load_layout(p)
    pm = resolve_patch(lay, {"c": "artnet", "d": "ddp"})
    tree = ParamTree.from_specs(PARAMS)
    tree.set_base("leds/master", master)
    tree.set_base("leds/dither", dither)
    cm = CurrentModel(*ma)
    cp = Stages(ctx, lay, pm, tree, [Supply("ab", amps[0], ("a", "b")), Supply("c", amps[1], ("c",))], cm)
    rng = np.random.default_rng(seed)
    try:
        for _ in range(6):
            colors = np.clip(rng.random((lay.count, 3), dtype=np.float32) + level, 0, 1).astype(np.float32)
            amps_now = cp.estimate_amps(cp.process(colors))
            assert amps_now[0] <= amps[0] and amps_now[1] <= amps[1]
    finally:
        cp.sampler.release()
