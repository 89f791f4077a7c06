"""The look as a visitor would notice it (issue 12): no pops in crossfades, every fixture lit, no clipping.

Real engine, real GL (llvmpipe), the demo venue's real LED pipeline with no outputs attached, at a small
internal size.  Thresholds are the issue's; the ones today's code still fails are marked xfail(strict)
with the measured figure, so they turn into failures the day they pass and someone forgets to unmark them.
"""

from __future__ import annotations

import datetime
import itertools

import numpy as np
import pytest

from installation.app import date_seed
from installation.field.look import DEMO_VENUE, LookRun, change, fade_pop, frame_stats

SMALL = dict(size=(192, 108), particles=32_768)


PRESETS = ("breakdown", "harmony", "restoration", "symbiosis", "tension")
PAIRS = list(itertools.permutations(PRESETS, 2))
@pytest.fixture(scope="module")
def pops(ctx):
    """Every ordered pair of shipped presets crossfaded once (tapestry and LED bytes from the same run)."""
    return {pair: fade_pop(ctx, *pair, **SMALL) for pair in PAIRS}


@pytest.mark.parametrize("source,target", PAIRS)
def test_a_crossfade_does_not_pop_on_the_tapestry(pops, source, target):
    # Old code: harmony->breakdown 8.9, tension->symbiosis 25.8 (the palette switched in one frame);
    # then 4.35 (harmony->symbiosis) while the palette switched at the midpoint and blended after it,
    # and the fade eased with a smoothstep (1.5x its average speed in the middle).
    pop = pops[(source, target)]
    assert pop.tapestry <= 2.0, pop


@pytest.mark.parametrize("source,target", PAIRS)
def test_a_crossfade_does_not_pop_on_the_leds(pops, source, target):
    # Old code: up to 7.25 (midpoint switches), then 3.5 on every pair with symbiosis, then 2.03
    # (harmony->breakdown) while breakdown's turbulence evolved at 0.35/s.
    pop = pops[(source, target)]
    assert pop.leds <= 2.0, pop


@pytest.mark.parametrize("preset", ["breakdown", "harmony", "restoration", "symbiosis", "tension"])
def test_no_preset_clips_more_than_one_percent_to_white(ctx, preset):
    # Old code: symbiosis 6.9 %, restoration 5.1 %, harmony 2.4 % at worst over these frames.
    run = LookRun(ctx, preset, **SMALL)
    try:
        frames = run.run(3.0, read=True)
    finally:
        run.close()
    assert max(frame_stats(f)["clipped"] for f in frames[30:]) <= 0.01


def test_breakdown_tears_into_strands_with_dark_between_not_a_fog(ctx):
    """Well after its first second, breakdown keeps structure: the brightest tenth of the picture stands
    well above the darkest tenth, and some of it is black.  Old code: a flat magenta fog, luminance
    p90 - p10 = 0.105 and no dark pixel at all (tension, the bar: 0.635)."""
    run = LookRun(ctx, "breakdown", **SMALL)
    try:
        run.run(8.0)
        stats = [frame_stats(f) for f in run.run(2.0, read=True)]
    finally:
        run.close()
    assert np.mean([s["p90"] - s["p10"] for s in stats]) >= 0.3
    assert np.mean([s["dark"] for s in stats]) >= 0.01


@pytest.mark.parametrize("preset", ["breakdown", "harmony", "restoration", "symbiosis", "tension"])
def test_every_fixture_of_the_demo_venue_lights_up(ctx, preset):
    # Every fixture's brightest LED reaches a quarter of full level within 20 s.
    # Old code: harmony's strip-8 peaked at 0.22 (nodes kept 10-12 % away from the canvas edges).
    peaks = fixture_peaks_in_20_s(ctx, preset, seed=1)
    assert min(peaks.values()) >= 0.25, peaks


def fixture_peaks_in_20_s(ctx, preset: str, seed: int) -> dict[str, float]:
    """Each demo-venue fixture's brightest LED level over the first 20 s of ``preset`` at ``seed``."""
    run = LookRun(ctx, preset, venue=DEMO_VENUE, **{**SMALL, "seed": seed})
    peaks: dict[str, float] = {}
    try:
        for _ in range(round(20 * run.fps)):
            run.step(read=False)
            for k, v in run.fixture_peaks().items():
                peaks[k] = max(peaks.get(k, 0.0), v)
    finally:
        run.close()
    return peaks


def test_every_edge_of_the_canvas_has_a_node_near_it_on_every_day_of_a_year():
    """The live seed is the date, so the network is laid out anew each day: on no day of a year may a canvas
    edge lie farther than 0.18 canvas h from the nearest of the 9 nodes harmony lights (the band beyond gets
    only stray light).  Old code (one best-candidate draw): 204 of these 365 days over 0.18, 0.41 at worst."""
    from installation.field.network import Network, edge_reach
    from installation.engine import declare_all
    tree = declare_all()
    aspect = SMALL["size"][0] / SMALL["size"][1]
    day0 = datetime.date(2027, 1, 1)
    reach = {s: edge_reach(Network(tree, aspect, s)._base[:9], aspect)
             for s in (date_seed(day0 + datetime.timedelta(d)) for d in range(365))}
    assert max(reach.values()) <= 0.18, sorted(reach.items(), key=lambda kv: -kv[1])[:5]


@pytest.mark.parametrize("preset", ["harmony", "restoration"])
def test_every_fixture_of_the_demo_venue_lights_up_on_3_december_2026(ctx, preset):
    # The demo venue on a live day's seed the fixture test was not tuned on.  Old code (no node above
    # y 0.30 nor left of x 0.18 that day): harmony's rim peaked at 0.04, restoration's strip-1 at 0.14.
    peaks = fixture_peaks_in_20_s(ctx, preset, seed=date_seed(datetime.date(2026, 12, 3)))
    assert min(peaks.values()) >= 0.25, peaks


def test_the_live_seed_is_the_date():
    assert date_seed(datetime.date(2026, 12, 3)) == 20261203
    assert date_seed(datetime.date(2026, 12, 4)) != date_seed(datetime.date(2026, 12, 3))


def test_nutrient_packets_travel_along_the_filaments_and_keep_the_brightness(ctx):
    """Harmony was nearly static (a neon diagram): packets of light now ride the stream from node to node.
    The picture changes frame to frame at least 1.5x more than with an even glow, at the same brightness."""
    seen = {}
    for amount in (0.0, 1.0):
        run = LookRun(ctx, "harmony", overrides={"field/filaments/packets": amount}, **SMALL)
        try:
            run.run(2.0)
            frames = run.run(1.0, read=True)
        finally:
            run.close()
        seen[amount] = (float(np.mean([change(a, b) for a, b in zip(frames, frames[1:])])),
                        float(np.mean([f.mean() for f in frames])))
    (still, level0), (alive, level1) = seen[0.0], seen[1.0]
    assert alive >= 1.5 * still, seen
    assert abs(level1 - level0) <= 0.1 * level0, seen
