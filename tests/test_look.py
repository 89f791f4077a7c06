"""The look as a visitor would notice it (issue 12): no pops in crossfades, every fixture lit, no clipping.

Real engine, real GL (llvmpipe), the demo venue's real LED pipeline with no outputs attached, at a small
internal size.  Thresholds are the issue's; the ones today's code still fails are marked xfail(strict)
with the measured figure, so they turn into failures the day they pass and someone forgets to unmark them.
"""

from __future__ import annotations

import datetime

import pytest

from installation.app import date_seed
from installation.field.look import DEMO_VENUE, LookRun, fade_pop, frame_stats

SMALL = dict(size=(192, 108), particles=32_768)


# The LED bytes still change up to ~3.5x faster than around the fade when the node count grows a lot
# (symbiosis, 16 nodes, 4 links): a broad hump while nodes and filaments fade in, no single-frame pop.
LEDS_HUMP = pytest.mark.xfail(strict=True, reason="issue 12 not done: fades into and out of symbiosis change the "
                              "LED bytes up to 3.5x faster than around them (no switch any more; old code 50.4)")


@pytest.mark.parametrize("source,target", [("harmony", "breakdown"), ("tension", "breakdown"),
                                           ("tension", "symbiosis"), ("breakdown", "symbiosis")])
def test_a_crossfade_does_not_pop_on_the_tapestry(ctx, source, target):
    # Old code: harmony->breakdown 8.9, tension->symbiosis 25.8 (the palette switched in one frame);
    # then 3.0 and 8.2 (harmony->symbiosis) while the node count switched and the network was rebuilt.
    pop = fade_pop(ctx, source, target, **SMALL)
    assert pop.tapestry <= 2.0, pop


@pytest.mark.parametrize("source,target", [("harmony", "restoration"), ("tension", "restoration"),
                                           pytest.param("tension", "symbiosis", marks=LEDS_HUMP)])
def test_a_crossfade_does_not_pop_on_the_leds(ctx, source, target):
    pop = fade_pop(ctx, source, target, **SMALL)
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


@pytest.mark.parametrize("preset", ["breakdown", "harmony", "restoration", "symbiosis", "tension"])
def test_every_fixture_of_the_demo_venue_lights_up(ctx, preset):
    # Every fixture's brightest LED reaches a quarter of full level within 20 s.
    # Old code: harmony's strip-8 peaked at 0.22 (nodes kept 10-12 % away from the canvas edges).
    run = LookRun(ctx, preset, venue=DEMO_VENUE, **SMALL)
    peaks: dict[str, float] = {}
    try:
        for _ in range(round(20 * run.fps)):
            run.step(read=False)
            for k, v in run.fixture_peaks().items():
                peaks[k] = max(peaks.get(k, 0.0), v)
    finally:
        run.close()
    assert min(peaks.values()) >= 0.25, peaks


def test_the_live_seed_is_the_date():
    assert date_seed(datetime.date(2026, 12, 3)) == 20261203
    assert date_seed(datetime.date(2026, 12, 4)) != date_seed(datetime.date(2026, 12, 3))
