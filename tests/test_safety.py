"""Flash limiter: strobes come out within WCAG 2.3.1, everything else passes untouched.

The counters (tests/hardware/flash_count.py) are written from the WCAG definition, independently of the limiter's code:
a transition is a swing of >= 0.10 relative luminance between a peak and a valley where the darker
is below 0.80 (general), or of (R-G-B)*320 > 20 where either end is saturated red (red); a flash
is a pair of opposing transitions, so "<= 3 flashes in any 1 s" is "<= 6 transitions in any 1 s".
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from installation import safety
from installation.safety import FlashLimiter, FrameFlashLimiter, srgb_to_linear
from tests.hardware.flash_count import general_transitions, max_per_second, red_transitions

FPS = 60.0


def luminance(lin):
    return 0.2126 * lin[..., 0] + 0.7152 * lin[..., 1] + 0.0722 * lin[..., 2]


def max_flashing_area(per_led_events, times):
    """Largest share of LEDs (equal weights) that, at one moment, had > 6 transitions in the last 1 s."""
    worst = 0.0
    for t in times:
        over = [np.sum((ev > t - 1.0) & (ev <= t)) > 6 for ev in map(np.asarray, per_led_events)]
        worst = max(worst, float(np.mean(over)))
    return worst


def run(limiter, frames, dt=1 / FPS):
    return np.stack([limiter.limit(f, dt) for f in frames])


def strobe(n, hz, seconds, on=(1.0, 1.0, 1.0), off=(0.0, 0.0, 0.0), fps=FPS, mask=None, base=None):
    """Square-wave frames (n, 3): ``mask`` LEDs alternate on/off at ``hz``; the others show ``base``."""
    frames = []
    for i in range(int(seconds * fps)):
        t = i / fps
        lit = int(t * hz * 2) % 2 == 0
        f = np.tile(np.asarray(base if base is not None else off, np.float32), (n, 1))
        sel = slice(None) if mask is None else mask
        f[sel] = on if lit else off
        frames.append(f)
    return frames


def times_for(count, fps=FPS):
    return [(i + 1) / fps for i in range(count)]


def uniform(n):
    return np.full(n, 1.0 / n)


def test_full_field_white_strobe_is_limited_to_three_flashes_per_second():
    n = 400
    frames = strobe(n, 10.0, 4.0)
    out = run(FlashLimiter(uniform(n), FPS), frames)
    t = times_for(len(frames))
    raw = general_transitions(luminance(np.stack(frames).mean(axis=1)), t)
    assert max_per_second(raw) >= 19          # the input really is a 10 Hz strobe
    lim = general_transitions(luminance(out.mean(axis=1)), t)
    assert max_per_second(lim) <= 6           # <= 3 flashes in every 1 s window
    assert len(lim) >= 6                      # and the content still comes through
    # every LED individually too
    for led in (0, n // 2, n - 1):
        assert max_per_second(general_transitions(luminance(out[:, led]), t)) <= 6


@pytest.mark.parametrize("red_level", [1.0, 0.45])
def test_saturated_red_strobe_is_limited_by_the_red_rule(red_level):
    # at 0.45 the luminance swing (0.096) is below the general threshold: only the red rule applies
    n = 300
    frames = strobe(n, 10.0, 4.0, on=(red_level, 0.0, 0.0))
    t = times_for(len(frames))
    if red_level < 0.5:
        assert general_transitions(luminance(np.stack(frames).mean(axis=1)), t) == []
    assert max_per_second(red_transitions(np.stack(frames).mean(axis=1), t)) >= 19
    out = run(FlashLimiter(uniform(n), FPS), frames)
    mean = out.mean(axis=1)
    assert max_per_second(red_transitions(mean, t)) <= 6
    assert max_per_second(general_transitions(luminance(mean), t)) <= 6
    assert len(red_transitions(mean, t)) >= 6


def test_slow_fades_pass_through_exactly():
    n = 500
    rng = np.random.default_rng(3)
    phase = rng.uniform(0, 2 * np.pi, n)
    hue = rng.uniform(0, 1, (n, 3))
    lim = FlashLimiter(rng.uniform(0.5, 1.5, n), FPS)
    for i in range(int(6 * FPS)):
        t = i / FPS
        level = 0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * t + phase)           # 0.3 Hz, full swing
        frame = (level[:, None] * hue).astype(np.float32)
        out = lim.limit(frame, 1 / FPS)
        assert np.array_equal(out, frame)
    assert lim.frames_limited == 0


def test_two_hertz_strobe_passes_unchanged():
    n = 200
    frames = strobe(n, 2.0, 4.0)
    lim = FlashLimiter(uniform(n), FPS)
    for f in frames:
        assert np.array_equal(lim.limit(f, 1 / FPS), f)
    assert lim.frames_limited == 0


def test_strobe_on_five_percent_of_the_area_passes():
    n = 1000
    mask = np.zeros(n, bool)
    mask[:50] = True                                  # 5 % of the LEDs, equal weights
    frames = strobe(n, 10.0, 3.0, mask=mask, base=(0.3, 0.3, 0.3))
    lim = FlashLimiter(uniform(n), FPS)
    for f in frames:
        assert np.array_equal(lim.limit(f, 1 / FPS), f)


def test_area_weights_decide_not_led_count():
    # the same 50 LEDs now carry 40 % of the area: their strobe must be limited
    n = 1000
    mask = np.zeros(n, bool)
    mask[:50] = True
    w = np.where(mask, 0.4 / 50, 0.6 / 950)
    frames = strobe(n, 10.0, 3.0, mask=mask, base=(0.3, 0.3, 0.3))
    out = run(FlashLimiter(w, FPS), frames)
    t = times_for(len(frames))
    assert max_per_second(general_transitions(luminance(out[:, 0]), t)) <= 6


def test_counter_phase_chequerboard_is_limited_per_led():
    # half the LEDs go up while the other half go down: the mean never moves, every LED flashes
    n = 400
    half = np.arange(n) % 2 == 0
    frames = []
    for i in range(int(3 * FPS)):
        lit = int(i / FPS * 20) % 2 == 0
        f = np.zeros((n, 3), np.float32)
        f[half == lit] = 1.0
        frames.append(f)
    out = run(FlashLimiter(uniform(n), FPS), frames)
    t = times_for(len(frames))
    per_led = [general_transitions(luminance(out[:, j]), t) for j in range(0, n, 3)]
    assert max_flashing_area(per_led, t) < 0.25


def test_turn_taking_regions_are_limited_on_the_whole_field():
    # four quarters flash one after another: each LED only 2.5 Hz, the field at 10 Hz
    n = 400
    quarter = np.arange(n) * 4 // n
    frames = []
    for i in range(int(3 * FPS)):
        step = int(i / FPS * 20)
        f = np.zeros((n, 3), np.float32)
        if step % 2 == 0:
            f[quarter == (step // 2) % 4] = 1.0
        frames.append(f)
    t = times_for(len(frames))
    assert max_per_second(general_transitions(luminance(np.stack(frames).mean(axis=1)), t)) >= 19
    out = run(FlashLimiter(uniform(n), FPS), frames)
    assert max_per_second(general_transitions(luminance(out.mean(axis=1)), t)) <= 6


def test_time_comes_from_dt_and_results_are_deterministic():
    n = 100
    frames = strobe(n, 10.0, 2.0, fps=120.0)
    a = run(FlashLimiter(uniform(n), 120.0), frames, dt=1 / 120)
    b = run(FlashLimiter(uniform(n), 120.0), frames, dt=1 / 120)
    assert np.array_equal(a, b)
    t = [(i + 1) / 120 for i in range(len(frames))]
    assert max_per_second(general_transitions(luminance(a.mean(axis=1)), t)) <= 6
    # the same frames declared 1 s apart are a 0.5 Hz strobe: nothing to limit
    slow = FlashLimiter(uniform(n), 120.0)
    assert all(np.array_equal(slow.limit(f, 1.0), f) for f in frames)


def test_random_noise_is_limited_and_bad_values_do_not_crash():
    n = 256
    rng = np.random.default_rng(7)
    frames = [rng.uniform(0, 1, (n, 3)).astype(np.float32) for _ in range(int(3 * FPS))]
    frames[10][5] = np.nan
    frames[11][6] = 7.0
    out = run(FlashLimiter(uniform(n), FPS), frames)
    assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1
    t = times_for(len(frames))
    assert max_per_second(general_transitions(luminance(out.mean(axis=1)), t)) <= 6
    assert max_flashing_area([general_transitions(luminance(out[:, j]), t) for j in range(n)], t) < 0.25
    assert max_flashing_area([red_transitions(out[:, j], t) for j in range(n)], t) < 0.25


def test_srgb_encoded_values_are_decoded_before_measuring():
    # 0 <-> 0.3 sRGB is a 0.07 swing in linear light: not a flash; read as linear values it would be 0.3
    n = 10
    frames = strobe(n, 10.0, 2.0, on=(0.3, 0.3, 0.3))
    lim = FlashLimiter(uniform(n), FPS, encoding="srgb")
    assert all(np.array_equal(lim.limit(f, 1 / FPS), f) for f in frames)
    frames = strobe(n, 10.0, 2.0)
    out = run(FlashLimiter(uniform(n), FPS, encoding="srgb"), frames)
    lin = srgb_to_linear(out.mean(axis=1))
    assert max_per_second(general_transitions(luminance(lin), times_for(len(frames)))) <= 6


def test_nothing_can_switch_the_limiter_off():
    assert not hasattr(safety, "PARAMS")
    params = set(inspect.signature(FlashLimiter).parameters) | set(inspect.signature(FrameFlashLimiter).parameters)
    assert params <= {"weights", "fps", "encoding", "grid", "positions", "region", "snap"}  # none is a switch
    with pytest.raises(ValueError):
        FlashLimiter(np.ones(4), FPS).limit(np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError):
        FlashLimiter(np.array([1.0, -1.0]), FPS)


def rgba_strobe(h, w, hz, seconds, box=None):
    frames = []
    for i in range(int(seconds * FPS)):
        img = np.full((h, w, 4), 60, np.uint8)
        img[:, :, 3] = 200
        y0, y1, x0, x1 = box or (0, h, 0, w)
        img[y0:y1, x0:x1, :3] = 255 if int(i / FPS * hz * 2) % 2 == 0 else 0
        frames.append(img)
    return frames


def test_frame_limiter_limits_a_video_strobe_and_keeps_alpha():
    frames = rgba_strobe(36, 64, 10.0, 3.0)
    lim = FrameFlashLimiter(FPS, grid=(16, 9))
    out = [lim.limit(f, 1 / FPS) for f in frames]
    lin = np.stack([srgb_to_linear(o[:, :, :3] / 255.0).reshape(-1, 3).mean(axis=0) for o in out])
    t = times_for(len(frames))
    assert max_per_second(general_transitions(luminance(lin), t)) <= 6
    assert len(general_transitions(luminance(lin), t)) >= 6
    assert all(np.all(o[:, :, 3] == 200) for o in out)
    assert lim.frames_limited > 0


def test_frame_limiter_passes_slow_content_and_small_strobes_untouched():
    lim = FrameFlashLimiter(FPS)
    for i in range(int(3 * FPS)):
        img = np.zeros((90, 160, 4), np.uint8)
        img[:, :, :3] = int(127 + 127 * np.sin(2 * np.pi * 0.4 * i / FPS))
        assert lim.limit(img, 1 / FPS) is img
    # 4.5 % of the picture: small when the whole picture is one 10-degree field ...
    small = FrameFlashLimiter(FPS, region=(1.0, 1.0))
    for f in rgba_strobe(90, 160, 10.0, 2.0, box=(0, 18, 0, 36)):
        assert small.limit(f, 1 / FPS) is f
    # ... but a local flash where the picture is seen from close up (the default regions)
    local = FrameFlashLimiter(FPS)
    for f in rgba_strobe(90, 160, 10.0, 2.0, box=(0, 18, 0, 36)):
        local.limit(f, 1 / FPS)
    assert local.frames_limited > 0


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 8),
    seed=st.integers(0, 2**31 - 1),
    levels=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=4),
    fps=st.sampled_from([20.0, 30.0, 60.0, 120.0]),
    jitter=st.booleans(),
)
def test_any_content_comes_out_within_the_rules(n, seed, levels, fps, jitter):
    """Random flicker between a few colours, random area weights, optionally jittery dt."""
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.05, 1.0, n)
    weights /= weights.sum()
    palette = np.asarray(levels, np.float32)
    count = int(2.5 * fps)
    dts = (1 / fps) * (rng.uniform(0.5, 1.5, count) if jitter else np.ones(count))
    times = list(np.cumsum(dts))
    frames = [palette[rng.integers(0, len(palette), n)] for _ in range(count)]
    lim = FlashLimiter(weights, fps)
    out = np.stack([lim.limit(f, dt) for f, dt in zip(frames, dts)])
    mean = np.einsum("n,fnc->fc", weights.astype(np.float32), out)
    # a fresh limiter's world was dark before its first frame, so is the count's
    assert max_per_second(general_transitions(luminance(mean), times, start=0.0)) <= 6
    assert max_per_second(red_transitions(mean, times, start=(0, 0, 0))) <= 6
    for counter in (lambda j: general_transitions(luminance(out[:, j]), times, start=0.0),
                    lambda j: red_transitions(out[:, j], times, start=(0, 0, 0))):
        events = [np.asarray(counter(j)) for j in range(n)]
        for t in times:
            over = [np.sum((ev > t - 1.0) & (ev <= t)) > 6 for ev in events]
            assert float(np.sum(weights[over])) < 0.25 + 1e-6


def test_frame_limiter_slows_only_the_flashing_half():
    frames = rgba_strobe(36, 64, 10.0, 3.0, box=(0, 36, 0, 32))       # left half strobes
    for i, f in enumerate(frames):                                    # right half: a slow ramp
        f[:, 32:, :3] = 40 + i // 4
    lim = FrameFlashLimiter(FPS, grid=(16, 9))
    out = [lim.limit(f.copy(), 1 / FPS) for f in frames]
    t = times_for(len(frames))
    left = np.stack([srgb_to_linear(o[:, :32, :3] / 255.0).reshape(-1, 3).mean(axis=0) for o in out])
    assert max_per_second(general_transitions(luminance(left), t)) <= 6
    assert all(np.array_equal(o[:, 32:], f[:, 32:]) for o, f in zip(out, frames))
    assert lim.frames_limited > 0


def test_safety_section_reader_and_region_size():
    """[safety] is read through a typed reader: defaults, a 10-degree field at the viewing distance,
    one-line errors for unknown keys and bad values; nothing in it is a switch."""
    from installation.safety import SafetySettings, read_safety
    assert read_safety(None) == SafetySettings()
    s = read_safety({"viewing_distance_m": 2.0, "canvas_width_m": 8})
    w, h = s.region()
    side = 2 * 2.0 * np.tan(np.radians(5.0))                 # 0.35 m
    assert w == pytest.approx(side / 8.0) and h == pytest.approx(side / 4.5)
    assert read_safety({"viewing_distance_m": 0.5}).region(4.0)[0] < read_safety({}).region(4.0)[0]  # closer: smaller
    for bad, words in (({"viewing_distance": 1.0}, "unknown key 'viewing_distance'"),
                       ({"viewing_distance_m": 0.0}, "viewing_distance_m must be"),
                       ({"viewing_distance_m": True}, "viewing_distance_m must be"),
                       ({"canvas_width_m": "4 m"}, "canvas_width_m must be"),
                       ({"enabled": False}, "unknown key 'enabled'"),
                       ([1, 2], "expected a table")):
        with pytest.raises(ValueError) as e:
            read_safety(bad)
        assert words in str(e.value) and "\n" not in str(e.value)


def test_a_local_strobe_is_held_in_its_region_and_the_rest_passes():
    """A strobe on a patch of 2 % of the wall: small for the whole, but it fills its 10-degree region.
    The regions around it are held; LEDs far away stay bit-exact."""
    side = 40
    n = side * side
    yy, xx = np.mgrid[0:side, 0:side]
    pos = np.stack([(xx.ravel() + 0.5) / side, (yy.ravel() + 0.5) / side], 1)
    patch = (np.abs(pos[:, 0] - 0.5) < 0.07) & (np.abs(pos[:, 1] - 0.5) < 0.07)   # about 2 % of the LEDs
    far = (pos[:, 0] < 0.2) | (pos[:, 0] > 0.8)
    frames = strobe(n, 10.0, 3.0, mask=patch, base=(0.3, 0.3, 0.3))
    for i, f in enumerate(frames):                                    # far away: a slow ramp
        f[far] = 0.3 + 0.1 * i / len(frames)
    whole = run(FlashLimiter(uniform(n), FPS), frames)                # the whole field only: it passes
    assert np.array_equal(whole, np.stack(frames))
    lim = FlashLimiter(uniform(n), FPS, positions=pos, region=(0.2, 0.2))
    out = run(lim, frames)
    t = times_for(len(frames))
    mean = out[:, patch].mean(axis=1)
    assert max_per_second(general_transitions(luminance(mean), t)) <= 6
    assert lim.frames_limited > 0
    assert np.array_equal(out[:, far], np.stack(frames)[:, far])     # far from the strobe: untouched
