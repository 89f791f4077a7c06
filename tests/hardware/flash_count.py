"""WCAG 2.3.1 flash counting for captured LED frames, written from the definition (not from the limiter's code).

A general transition is a swing of >= 0.10 relative luminance between a peak and a valley where
the darker state is below 0.80; a red transition a swing of (R-G-B) x 320 > 20 where either end is
saturated red (R / (R+G+B) >= 0.8); a flash is a pair of opposing transitions, so "at most 3
flashes in any 1 s" is "at most 6 transitions in any 1 s".  LED bytes are drive levels, i.e.
linear light (byte / 255).

:func:`report` counts over the whole installation (area-weighted mean), over every region of a
given size starting every half and every quarter region (each region's weighted mean, and the
share of its area whose LEDs flash more than three times a second, which must stay under 25 %).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LUMA = np.array([0.2126, 0.7152, 0.0722])


def general_transitions(lum, times, start: float | None = None) -> list[float]:
    """Times at which a general transition completes (a plain zig-zag walk over one signal); ``start``:
    the light before the first sample (0 for LEDs dark before the program ran), else the first sample."""
    found = []
    peak = valley = float(lum[0]) if start is None else float(start)
    going = None
    for t, v in zip(times, lum):
        v = float(v)
        if going != "down" and peak - v >= 0.1 and v < 0.8:
            found.append(t)
            going, peak, valley = "down", v, v
        elif going != "up" and v - valley >= 0.1 and valley < 0.8:
            found.append(t)
            going, peak, valley = "up", v, v
        else:
            peak, valley = max(peak, v), min(valley, v)
    return found


def red_transitions(rgb, times, start=None) -> list[float]:
    """Times at which a red transition completes; ``rgb`` (T, 3) linear; ``start``: the colour before the
    first sample (as for :func:`general_transitions`)."""
    found = []

    def sig(c):
        return max(0.0, float(c[0] - c[1] - c[2])) * 320.0

    def sat(c):
        s = float(c.sum())
        return s > 0 and float(c[0]) / s >= 0.8

    first = rgb[0] if start is None else np.asarray(start, np.float64)
    peak = valley = (sig(first), sat(first))
    going = None
    for t, c in zip(times, rgb):
        s, st = sig(c), sat(c)
        if going != "down" and peak[0] - s > 20 and (peak[1] or st):
            found.append(t)
            going, peak, valley = "down", (s, st), (s, st)
        elif going != "up" and s - valley[0] > 20 and (valley[1] or st):
            found.append(t)
            going, peak, valley = "up", (s, st), (s, st)
        else:
            if s > peak[0]:
                peak = (s, st)
            if s < valley[0]:
                valley = (s, st)
    return found


def max_per_second(events) -> int:
    """Most events in any half-open 1 s window."""
    ev = np.asarray(events)
    return max((int(np.sum((ev > t - 1.0) & (ev <= t))) for t in ev), default=0)


@dataclass
class FlashReport:
    """Worst counts found: transitions per second (whole, worst region), and flashing shares."""

    whole_general: int
    whole_red: int
    region_general: int
    region_red: int
    region_flashing_area: float     # largest share of one region's area flashing > 3/s at one moment
    leds_flashing_share: float      # largest share of all LEDs flashing > 3/s at one moment (by count)
    leds_max_general: int           # most general transitions of one LED in any 1 s

    def ok(self) -> bool:
        """Within WCAG 2.3.1 over the whole and every region."""
        return (max(self.whole_general, self.whole_red, self.region_general, self.region_red) <= 6
                and self.region_flashing_area < 0.25)


def _over(events: list[float], times: np.ndarray) -> np.ndarray:
    ev = np.asarray(events)
    if ev.size == 0:
        return np.zeros(times.size, bool)
    return np.array([np.sum((ev > t - 1.0) & (ev <= t)) > 6 for t in times])


def report(frames: np.ndarray, times, weights: np.ndarray, positions: np.ndarray,
           region: tuple[float, float], dark_start: bool = True) -> FlashReport:
    """Count flashes in ``frames`` (T, N, 3) linear 0..1 at ``times`` (T,): see the module docstring.
    ``dark_start``: the LEDs were dark before the first frame, so lighting up counts as a transition."""
    frames = np.asarray(frames, np.float64)
    times = np.asarray(times, np.float64)
    if dark_start:
        frames = np.concatenate([np.zeros_like(frames[:1]), frames])
        times = np.concatenate([times[:1] - 1e-6, times])
    w = np.asarray(weights, np.float64)
    w = w / w.sum()
    lum = frames @ LUMA                                   # (T, N)
    whole = np.einsum("n,tnc->tc", w, frames)
    wg = max_per_second(general_transitions(whole @ LUMA, times))
    wr = max_per_second(red_transitions(whole, times))
    # per LED: which are flashing > 3/s at each moment (general or red)
    n = frames.shape[1]
    over = np.zeros((times.size, n), bool)
    led_max = 0
    for i in range(n):
        g = general_transitions(lum[:, i], times)
        led_max = max(led_max, max_per_second(g))
        over[:, i] = _over(g, times) | _over(red_transitions(frames[:, i], times), times)
    rg = rr = 0
    area = 0.0
    # regions of the given size starting every half and every quarter region (docs/operations.md): the
    # canvas cut into cells at most 1/k of a region wide and high, a region = k x k cells, one per cell
    for k in (2, 4):
        cx, cy = (max(1, int(np.ceil(k / r - 1e-9))) for r in region)
        px = np.minimum((np.clip(positions[:, 0], 0, 1) * cx).astype(int), cx - 1)
        py = np.minimum((np.clip(positions[:, 1], 0, 1) * cy).astype(int), cy - 1)
        for j in range(max(cy - k + 1, 1)):
            for i in range(max(cx - k + 1, 1)):
                m = (px >= i) & (px < i + k) & (py >= j) & (py < j + k)
                if not m.any():
                    continue
                wm = w[m] / w[m].sum()
                mean = np.einsum("n,tnc->tc", wm, frames[:, m])
                rg = max(rg, max_per_second(general_transitions(mean @ LUMA, times)))
                rr = max(rr, max_per_second(red_transitions(mean, times)))
                area = max(area, float((over[:, m] @ wm).max()))
    return FlashReport(wg, wr, rg, rr, area, float(over.mean(axis=1).max()), led_max)
