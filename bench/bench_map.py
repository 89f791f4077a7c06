#!/usr/bin/env python3
"""Benchmark of `run.py map`: the time to map 2,000 and 20,000 LEDs, end to end.

    python bench/bench_map.py [--hold 0.1] [--sizes 2000,20000]

Each run is the real thing except the camera: the venue's outputs send Art-Net, sACN and DDP
to loopback receivers, a synthetic camera (k1 = -0.1, noise 4 grey levels, blur, 10 % of LEDs
occluded) renders what they received, and the mapping finds, fits and writes every LED.
Printed per size: patterns shown, capture / decode / fit / total seconds, the share of visible
LEDs placed within 0.5 % of the canvas height, and whether every occluded LED was reported
missing.  Beside it, in the same process: the one-LED-at-a-time method (light LED i, grab,
find the brightest spot) timed on 40 LEDs with the same hold and camera, extrapolated to N,
and the ratio.  2,000 LEDs are seen by a 1280x720 camera, 20,000 by a 2560x1440 one.  Absolute
times depend on the machine's load (printed); the synthetic camera's rendering is part of the capture time and printed
beside it (a real camera delivers its frames at its own rate instead).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from installation.mapping.cli import MapOptions, map_venue  # noqa: E402
from installation.mapping.drive import PatternPlayer  # noqa: E402
from tests.mapping.conftest import make_world  # noqa: E402

ASPECT = 4.0 / 2.25
SHAPES = {2000: dict(strands=20, per_strand=40, size=(1280, 720)),
          20000: dict(strands=200, per_strand=94, size=(2560, 1440))}


def one_at_a_time(world, hold: float, sample: int = 40) -> float:
    """Seconds per LED of the naive method (light one LED, wait, grab, take the brightest spot)."""
    player = PatternPlayer(world.given, fps=60)
    n = world.given.layout.count
    levels = np.zeros((n, 3), np.float32)
    dark = world.camera.grab().astype(np.float32)
    t0 = time.perf_counter()
    for i in range(sample):
        levels[:] = 0
        levels[i] = 0.08
        player.show(levels, hold, "one")
        img = world.camera.grab().astype(np.float32) - dark
        np.unravel_index(int(np.argmax(img.mean(axis=2))), img.shape[:2])
    dt = (time.perf_counter() - t0) / sample
    player.close()
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hold", type=float, default=0.1, help="seconds per pattern before the camera looks")
    ap.add_argument("--sizes", default="2000,20000")
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; hold {a.hold:g} s per pattern")
    for n in [int(s) for s in a.sizes.split(",")]:
        shape = SHAPES[n]
        with tempfile.TemporaryDirectory() as d:
            world = make_world(Path(d), strands=shape["strands"], per_strand=shape["per_strand"], size=shape["size"])
            try:
                assert world.given.layout.count == n, world.given.layout.count
                corners = " ".join(f"{x:.2f},{y:.2f}" for x, y in world.camera.canvas_corners_px())
                t0 = time.perf_counter()
                world.camera.grab_s, world.camera.grabs = 0.0, 0
                res = map_venue(world.given_path, world.camera, MapOptions(corners=corners, hold_s=a.hold,
                                                                           quiet=True))
                total = time.perf_counter() - t0
                vis = ~world.occluded
                err = np.hypot((res.canvas[:, 0] - world.truth()[:, 0]) * ASPECT,
                               res.canvas[:, 1] - world.truth()[:, 1])
                within = float(np.mean(np.nan_to_num(err[vis], nan=1.0) <= 0.005))
                all_missing = set(np.flatnonzero(world.occluded)) <= set(res.missing.tolist())
                tm = res.timing
                per_led = one_at_a_time(world, a.hold)
                naive = per_led * n
                print(f"{n:>6} LEDs, {shape['size'][0]}x{shape['size'][1]} camera: {res.patterns} patterns; "
                      f"capture {tm['capture_s']:.1f} s, decode {tm['decode_s']:.2f} s, fit {tm['fit_s']:.2f} s, "
                      f"total {total:.1f} s (of which {world.camera.grab_s:.1f} s rendering the synthetic camera's "
                      f"{world.camera.grabs} frames); {100 * within:.1f} % of visible LEDs within 0.5 % of the canvas "
                      f"height; occluded all reported missing: {all_missing}; flash limiter altered "
                      f"{res.limiter_altered} of {res.limiter_frames} frames")
                print(f"{'':>6} one LED at a time (same process, hold, camera; timed on 40 LEDs): "
                      f"{per_led * 1e3:.0f} ms per LED -> {naive:.0f} s for {n}; Gray codes are "
                      f"{naive / total:.0f}x faster")
            finally:
                world.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
