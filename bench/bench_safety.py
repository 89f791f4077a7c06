"""Flash limiter cost per frame: 50,000 LEDs and a 640x360 preview image.

Prints ms per frame for content that passes untouched (slow fade), content the limiter has to
slow (a full-field 10 Hz strobe) and random noise, counted over the whole and per region (a
10-degree field at 1 m on a 16 m wall), measured on the CPU (the LED pipeline hands the limiter
its per-LED measures from the GPU: bench_leds.py), and the ratio to a baseline measured in the
same run: the clip + copy any final colour stage does anyway.

    python bench/bench_safety.py [--leds 50000] [--frames 300]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from installation.safety import FlashLimiter, FrameFlashLimiter, SafetySettings  # noqa: E402

FPS = 60.0


def per_frame_ms(make, frames, repeats=3):
    """Best of ``repeats`` runs (a fresh callable from ``make()`` each time): the least disturbed figure."""
    best = float("inf")
    for _ in range(repeats):
        fn = make()
        t0 = time.perf_counter()
        for f in frames:
            fn(f)
        best = min(best, (time.perf_counter() - t0) * 1000.0 / len(frames))
    return best


def led_frames(kind, n, count, rng):
    base = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    out = []
    for i in range(count):
        t = i / FPS
        if kind == "fade":
            out.append((base * (0.5 + 0.5 * np.sin(2 * np.pi * 0.2 * t))).astype(np.float32))
        elif kind == "strobe":
            out.append(base if int(t * 20) % 2 == 0 else np.zeros_like(base))
        else:
            out.append(rng.uniform(0, 1, (n, 3)).astype(np.float32))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leds", type=int, default=50_000)
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    n = args.leds
    weights = np.full(n, 1.0 / n)
    # the LEDs on a grid over a 16 m wall seen from 1 m: flashes counted per 10-degree region too
    cols = int(np.ceil(np.sqrt(n * 16 / 9)))
    pos = np.stack([(np.arange(n) % cols + 0.5) / cols, (np.arange(n) // cols + 0.5) / int(np.ceil(n / cols))], 1)
    region = SafetySettings().region(16.0)

    fade = led_frames("fade", n, args.frames, rng)
    baseline = per_frame_ms(lambda: lambda f: np.clip(f, 0.0, 1.0).astype(np.float32, copy=True), fade)
    print(f"LEDs: {n}, frames: {args.frames}")
    print(f"  baseline (clip + copy)        {baseline:7.3f} ms/frame")
    for kind in ("fade", "strobe", "noise"):
        frames = fade if kind == "fade" else led_frames(kind, n, args.frames, rng)
        made = []

        def make():
            made.append(FlashLimiter(weights, FPS, positions=pos, region=region))
            return lambda f: made[-1].limit(f, 1 / FPS)

        ms = per_frame_ms(make, frames)
        print(f"  FlashLimiter {kind:<8}         {ms:7.3f} ms/frame  ({ms / baseline:5.1f}x baseline, "
              f"{made[-1].frames_limited} frames limited)")

    h, w = 360, 640
    imgs = []
    for i in range(min(args.frames, 180)):
        img = np.empty((h, w, 4), np.uint8)
        img[:, :, :3] = 255 if int(i / FPS * 20) % 2 == 0 else 0
        img[:, :, 3] = 255
        imgs.append(img)
    img_base = per_frame_ms(lambda: lambda f: f.copy(), imgs)
    print(f"image {w}x{h} RGBA8")
    print(f"  baseline (copy)               {img_base:7.3f} ms/frame")
    still = [imgs[0]] * len(imgs)
    for name, frames in (("still", still), ("strobe", imgs)):
        made = []

        def make():
            made.append(FrameFlashLimiter(FPS))
            return lambda f: made[-1].limit(f, 1 / FPS)

        ms = per_frame_ms(make, frames)
        print(f"  FrameFlashLimiter {name:<8}    {ms:7.3f} ms/frame  ({ms / img_base:5.1f}x baseline, "
              f"{made[-1].frames_limited} frames limited)")


if __name__ == "__main__":
    main()
