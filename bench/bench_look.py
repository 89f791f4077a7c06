#!/usr/bin/env python3
"""The look, measured: per preset over a render, and the crossfade pop for every ordered pair of presets.

    python3 bench/bench_look.py                      # 30 s a preset at 320x180, 65k particles, all pairs
    python3 bench/bench_look.py --seconds 10 --size 256x144 --no-pairs

Per preset (fixed-step clock, the demo venue's LED pipeline attached with no outputs):
  dark     share of pixels with luma < 6 % (darkness between the structures)
  clipped  share of pixels with every channel >= 250 (clipped to white; the issue asks <= 1 %)
  p10/p90  luminance percentiles (0..1)
  change   mean frame-to-frame change (/255): how alive it is
  visitor  mean difference (/255) between the same render with and without a synthetic visitor walking
           across the room from the 2nd second on (same seed: the only difference is the visitor)
  led_min  the lowest, over the demo venue's fixtures, of each fixture's brightest LED in the first 20 s
           (the issue asks >= 0.25)
Per ordered pair: the largest tapestry / LED-byte change during a 4 s crossfade over the largest in the
second before and after it (the issue asks <= 2).
The figures are ratios and shares, not timings, so the load of other processes does not change them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from installation.field.look import DEMO_VENUE, LookRun, change, fade_pop, frame_stats, walking_visitor  # noqa: E402
from installation.gfx.context import headless_context  # noqa: E402
from installation.presets import PresetLibrary  # noqa: E402
from installation.engine import EngineOptions, declare_all  # noqa: E402


def measure(ctx, preset: str, size, particles: int, seconds: float, fps: float) -> dict:
    """Figures for one preset (see the module docstring)."""
    plain = LookRun(ctx, preset, size=size, particles=particles, fps=fps, venue=DEMO_VENUE)
    visited = LookRun(ctx, preset, size=size, particles=particles, fps=fps,
                      sensors=lambda t: walking_visitor(t, start=2.0))
    stats, changes, response = [], [], []
    peaks: dict[str, float] = {}
    prev = None
    try:
        for i in range(round(seconds * fps)):
            a, b = plain.step(), visited.step()
            if i >= fps:  # the first second is the network settling in
                if i % 3 == 0:
                    stats.append(frame_stats(a))
                changes.append(change(prev, a))
                if i >= 4 * fps:
                    response.append(change(a, b))
            if i < 20 * fps:
                for k, v in plain.fixture_peaks().items():
                    peaks[k] = max(peaks.get(k, 0.0), v)
            prev = a
    finally:
        plain.close()
        visited.close()
    out = {k: float(np.mean([s[k] for s in stats])) for k in ("dark", "clipped", "p10", "p90")}
    out["clipped_max"] = float(max(s["clipped"] for s in stats))
    out["change"] = float(np.mean(changes)) * 255
    out["visitor"] = float(np.mean(response)) * 255
    worst = min(peaks, key=peaks.get)
    out["led_min"], out["led_worst"] = peaks[worst], worst
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="320x180")
    ap.add_argument("--particles", type=int, default=65_536)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--presets", default=None, help="comma-separated (default: every shipped preset)")
    ap.add_argument("--no-pairs", action="store_true", help="skip the crossfade pairs")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    ctx = headless_context()
    names = args.presets.split(",") if args.presets else PresetLibrary(EngineOptions().presets, declare_all()).names()
    t0 = time.perf_counter()
    print(f"# {args.seconds:g} s a preset at {size[0]}x{size[1]}, {args.particles} particles, {args.fps:g} fps")
    print(f"{'preset':<12} {'dark':>6} {'clipped':>8} {'clip max':>8} {'p10':>6} {'p90':>6} {'change':>7} "
          f"{'visitor':>8} {'led_min':>8}  worst fixture")
    for name in names:
        m = measure(ctx, name, size, args.particles, args.seconds, args.fps)
        print(f"{name:<12} {m['dark']:6.1%} {m['clipped']:8.2%} {m['clipped_max']:8.2%} {m['p10']:6.3f} "
              f"{m['p90']:6.3f} {m['change']:7.2f} {m['visitor']:8.2f} {m['led_min']:8.2f}  {m['led_worst']}",
              flush=True)
    if not args.no_pairs:
        print("\n# fade pop (largest change during a 4 s fade / largest in the second around it)")
        print(f"{'from':<12} {'to':<12} {'tapestry':>9} {'LED bytes':>10}")
        worst = (0.0, 0.0)
        for a in names:
            for b in names:
                if a != b:
                    p = fade_pop(ctx, a, b, size=size, particles=args.particles, fps=args.fps)
                    worst = (max(worst[0], p.tapestry), max(worst[1], p.leds))
                    print(f"{a:<12} {b:<12} {p.tapestry:9.2f} {p.leds:10.2f}", flush=True)
        print(f"{'worst':<25} {worst[0]:9.2f} {worst[1]:10.2f}")
    print(f"# took {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
