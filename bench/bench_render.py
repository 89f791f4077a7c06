#!/usr/bin/env python3
"""Render benchmark: real-time factor of ``run.py render`` per preset, with a same-process baseline.

Each round renders every preset once as the piece does it, and once without two of the third
session's changes: compute dispatches go through moderngl's ``run`` (which holds the Python GIL
while llvmpipe computes), and the video writer runs at the engine's priority. Variants alternate, so the
host's drift hits both alike. For every render it prints the real-time factor, the process's CPU
per frame and the machine's busy / idle / stolen share from ``/proc/stat``. Steal is CPU time the
hypervisor gave to other guests, and it moves these figures more than most code changes do. At the
end it reports the medians and ours / baseline. The two variants must write the same bytes, and
the benchmark checks that.

    python bench/bench_render.py [--presets harmony,breakdown] [--seconds 4] [--size 1280x720]
                                 [--fps 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from installation import recording  # noqa: E402
from installation.app import RenderArgs, parse_size, render  # noqa: E402
from installation.gfx.dispatch import ComputeDispatch  # noqa: E402


def _cpu_ticks() -> list[int]:
    """Machine-wide user, nice, system, idle, iowait, irq, softirq, steal (clock ticks)."""
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:9]]


@contextlib.contextmanager
def baseline():
    """The render without those changes: dispatches hold the GIL, the writer runs at the engine's priority."""
    with mock.patch.object(ComputeDispatch, "__call__", lambda self, prog, x=1, y=1, z=1: prog.run(x, y, z)), \
            mock.patch.object(recording, "_below_engine_priority", lambda: None):
        yield


def one(preset: str, variant: str, args, out: Path) -> dict:
    ctx = baseline() if variant == "baseline" else contextlib.nullcontext()
    ticks0, r0, t0 = _cpu_ticks(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    with ctx:
        render(RenderArgs(out=str(out), preset=preset, seconds=args.seconds, fps=args.fps, size=args.size,
                          quiet=True))
    wall = time.perf_counter() - t0
    r1, ticks1 = resource.getrusage(resource.RUSAGE_SELF), _cpu_ticks()
    d = [b - a for a, b in zip(ticks0, ticks1)]
    total = max(sum(d), 1)
    frames = round(args.seconds * args.fps)
    return {"x": args.seconds / wall, "ms": wall / frames * 1e3,
            "cpu": (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / frames * 1e3,
            "busy": (d[0] + d[1] + d[2] + d[5] + d[6]) / total, "idle": (d[3] + d[4]) / total,
            "steal": d[7] / total, "sha": hashlib.sha256(out.read_bytes()).hexdigest()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="harmony,breakdown")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--size", type=parse_size, default=(1280, 720))
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    print(f"# render {args.size[0]}x{args.size[1]} @ {args.fps:g} fps, {args.seconds:g} s per render, "
          f"{args.rounds} rounds, {os.cpu_count()} CPUs; x = real-time factor")
    print(f"{'preset':>10} {'variant':>9} {'x':>6} {'ms/frame':>9} {'CPU ms/frame':>13} {'busy':>5} "
          f"{'idle':>5} {'steal':>6}")
    results: dict[tuple[str, str], list[dict]] = {}
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for preset in presets:
                order = ("ours", "baseline") if r % 2 == 0 else ("baseline", "ours")
                shas = {}
                for variant in order:
                    m = one(preset, variant, args, Path(tmp) / f"{preset}_{variant}.mp4")
                    results.setdefault((preset, variant), []).append(m)
                    shas[variant] = m["sha"]
                    print(f"{preset:>10} {variant:>9} {m['x']:>5.2f}x {m['ms']:>9.1f} {m['cpu']:>13.1f} "
                          f"{m['busy']:>5.0%} {m['idle']:>5.0%} {m['steal']:>6.0%}", flush=True)
                same &= shas["ours"] == shas["baseline"]
    print("\n# medians")
    for preset in presets:
        ours = statistics.median(m["x"] for m in results[(preset, "ours")])
        base = statistics.median(m["x"] for m in results[(preset, "baseline")])
        print(f"{preset:>10}: ours {ours:.2f}x real time, baseline {base:.2f}x, ours / baseline {ours / base:.3f}")
    print(f"same bytes from both variants: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
