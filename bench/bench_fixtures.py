#!/usr/bin/env python3
"""Is every LED fixture lit?  Each preset at each date seed, on layouts the look was not tuned on.

Runs each preset at each seed on the real engine at small settings (as tests/test_look.py SMALL: 192x108,
32,768 particles, fixed 30 fps step, so the figures do not depend on the machine's speed or load) and
drives the real LED pipelines (no outputs) of several venues off the same tapestry.  Per fixture it
records the peak of its brightest LED within 20 s of show time and over the whole run, when it first
reached 0.25, its mean level and the share of frames (after 2 s) it is lit (brightest LED >= 0.1).

Criterion: a fixture's brightest LED reaches 0.25 of full level within 20 s of show time.

Venues (--venues, comma-separated): a name in hardware/ (demo-venue, large-venue: reported whole, as
the venue, with their power limits), `sweep` (bench/layouts/sweep-venue.toml: strip-wall, hanging-net and
large-wall from hardware/ plus the test layouts ring, corners, columns, sparse-grid and border, no power
limits), or a venue file's path.  Fixtures of any venue outside hardware/ are reported per layout file.

    python3 bench/bench_fixtures.py                              # 3 seeds x 5 presets x 20 s: a few minutes
    python3 bench/bench_fixtures.py --seeds 20261203,20261204,20261205,20261206,20261207,20261208,20261209,1,42 \\
        --seconds 30 --json sweep.json                           # the wider sweep (~15 min on 2 cores)
    python3 bench/bench_fixtures.py --presets harmony --venues demo-venue --seeds 20261203

Prints per layout (or hardware venue) x preset how many seeds leave a fixture under 0.25 within 20 s, and
its worst fixture; then every fixture that missed at least once.  --json OUT writes the raw rows.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from installation.field.look import LookRun  # noqa: E402
from installation.gfx.context import headless_context  # noqa: E402
from installation.leds import LedPipeline  # noqa: E402
from installation.venue import load_venue  # noqa: E402

HARDWARE = ROOT / "hardware"
NAMED = {"sweep": Path(__file__).resolve().parent / "layouts" / "sweep-venue.toml"}
THRESHOLD = 0.25      # of full level, the brightest LED of a fixture
WITHIN = 20.0         # seconds of show time
LIT = 0.1             # "lit" for the lit share
WARM = 2.0            # seconds left out of the mean and the lit share
DEFAULT_SEEDS = "20261203,42,20261204"   # the demo venue's live seed, the seed-42 failure, the next day
PRESETS = "breakdown,harmony,restoration,symbiosis,tension"


class _Once(logging.Filter):
    """Let each distinct log message through once (the sweep venue's intended "no [[power]] supply
    feeds ..." would otherwise repeat for every run)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg in self.seen:
            return False
        self.seen.add(msg)
        return True


def venue_path(spec: str) -> Path:
    if spec in NAMED:
        return NAMED[spec]
    if (HARDWARE / f"{spec}.toml").exists():
        return HARDWARE / f"{spec}.toml"
    return Path(spec).resolve()


def origins(key: str, path: Path) -> dict[str, str]:
    """fixture name -> where it is reported: the venue for a venue in hardware/, else its layout file's stem."""
    top = tomllib.loads(path.read_text())
    files = top.get("layouts", top.get("layout", []))
    files = [files] if isinstance(files, str) else files
    out = {}
    for f in files:
        lp = path.parent / f
        for fx in tomllib.loads(lp.read_text()).get("fixtures", []):
            out[fx["name"]] = key if path.parent.resolve() == HARDWARE.resolve() else lp.stem
    return out


def run_one(ctx, preset: str, seed: int, venues: dict, size, particles: int, seconds: float) -> list[dict]:
    """One preset at one seed; a row per (venue, fixture)."""
    run = LookRun(ctx, preset, size=size, particles=particles, seed=seed)
    pipes = {}
    try:
        for key, (v, org) in venues.items():
            p = LedPipeline(ctx, v, run.engine.params, outputs=[], shaders=run.engine.shaders,
                            clock=lambda: run.clock.time)
            p.prepare(run.engine.tapestry.size)
            pipes[key] = (p, [(f.name, v.layout.led_range(i)) for i, f in enumerate(v.layout.fixtures)], org)
        n = round(seconds * run.fps)
        n_within = round(WITHIN * run.fps)
        warm = round(WARM * run.fps)
        acc = {k: {name: dict(peak20=0.0, peak=0.0, t_quarter=None, sum_mean=0.0, lit=0, cnt=0) for name, _ in r}
               for k, (_, r, _) in pipes.items()}
        for i in range(n):
            dt = run.clock.next_frame()
            tex = run.engine.frame(dt)
            for k, (p, ranges, _) in pipes.items():
                p.process(tex, dt)
                cols = p.led_colors().max(axis=1) / 255.0
                for name, rg in ranges:
                    c = cols[rg]
                    pk = float(c.max())
                    s = acc[k][name]
                    s["peak"] = max(s["peak"], pk)
                    if i < n_within:
                        s["peak20"] = max(s["peak20"], pk)
                    if s["t_quarter"] is None and pk >= THRESHOLD:
                        s["t_quarter"] = round((i + 1) / run.fps, 3)
                    if i >= warm:
                        s["sum_mean"] += float(c.mean())
                        s["lit"] += pk >= LIT
                        s["cnt"] += 1
    finally:
        for p, _, _ in pipes.values():
            p.release()
        run.close()
    rows = []
    for k, d in acc.items():
        org = pipes[k][2]
        for name, s in d.items():
            c = max(s["cnt"], 1)
            rows.append(dict(venue=k, layout=org.get(name, k), fixture=name, preset=preset, seed=seed,
                             peak20=round(s["peak20"], 4), peak=round(s["peak"], 4), t_quarter=s["t_quarter"],
                             mean=round(s["sum_mean"] / c, 4), lit_share=round(s["lit"] / c, 3)))
    return rows


def report(rows: list[dict]) -> None:
    seeds = list(dict.fromkeys(r["seed"] for r in rows))
    print(f"\n{len(rows)} fixture-runs, seeds {seeds}; criterion: brightest LED >= {THRESHOLD} within {WITHIN:g} s")
    by = collections.defaultdict(list)
    for r in rows:
        by[(r["layout"], r["preset"])].append(r)
    print(f"| layout | preset | seeds with a fixture < {THRESHOLD} | worst fixture: peak in {WITHIN:g} s / mean / "
          f"lit share (seed) |")
    print("|---|---|---|---|")
    for (lay, pre), rs in sorted(by.items()):
        fails = sorted({r["seed"] for r in rs if r["peak20"] < THRESHOLD})
        w = min(rs, key=lambda r: (r["peak20"], r["mean"]))
        n = len({r["seed"] for r in rs})
        print(f"| {lay} | {pre} | {len(fails)}/{n}{' ' + str(fails) if fails else ''} | "
              f"{w['fixture']}: {w['peak20']:.2f} / {w['mean']:.3f} / {w['lit_share']:.2f} ({w['seed']}) |")
    fx = collections.defaultdict(list)
    for r in rows:
        fx[(r["layout"], r["fixture"])].append(r)
    missed = [(k, rs) for k, rs in sorted(fx.items()) if any(r["peak20"] < THRESHOLD for r in rs)]
    print(f"\nfixtures under {THRESHOLD} in at least one run ({len(missed)} of {len(fx)}):")
    if missed:
        print("| layout | fixture | runs < 0.25 (of preset x seed) | lowest peak (preset, seed) |")
        print("|---|---|---|---|")
        for (lay, f), rs in missed:
            bad = sum(r["peak20"] < THRESHOLD for r in rs)
            w = min(rs, key=lambda r: r["peak20"])
            print(f"| {lay} | {f} | {bad}/{len(rs)} | {w['peak20']:.2f} ({w['preset']}, {w['seed']}) |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default=DEFAULT_SEEDS, help=f"comma-separated engine seeds (default {DEFAULT_SEEDS})")
    ap.add_argument("--presets", default=PRESETS)
    ap.add_argument("--venues", default="demo-venue,large-venue,sweep",
                    help="comma-separated: a venue in hardware/ by name, 'sweep', or a venue file")
    ap.add_argument("--seconds", type=float, default=20.0, help="show time per run (default 20)")
    ap.add_argument("--size", default="192x108", help="internal size (default 192x108, as tests/test_look.py)")
    ap.add_argument("--particles", type=int, default=32_768)
    ap.add_argument("--json", metavar="OUT", help="write the raw rows here")
    a = ap.parse_args()
    if not a.seconds >= WITHIN:   # the criterion is a peak within WITHIN s: a shorter run would flag passes
        ap.error(f"--seconds {a.seconds:g}: give at least {WITHIN:g} (the criterion looks {WITHIN:g} s in)")
    size = tuple(int(v) for v in a.size.split("x"))
    seeds = [int(s) for s in a.seeds.split(",")]
    venues = {}
    for spec in a.venues.split(","):
        path = venue_path(spec)
        key = spec if spec in NAMED or (HARDWARE / f"{spec}.toml").exists() else path.stem
        if key in venues:
            ap.error(f"--venues: {spec} is {key} again")
        venues[key] = (load_venue(path), origins(key, path))
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip() or "?"
    except OSError:
        rev = "?"
    print(f"bench_fixtures at {rev}: presets {a.presets}; seeds {a.seeds}; venues {','.join(venues)}; "
          f"{a.seconds:g} s a run at {a.size}, {a.particles} particles", flush=True)
    logging.getLogger("installation.color").addFilter(_Once())
    ctx = headless_context()
    rows: list[dict] = []
    t_all = time.perf_counter()
    for preset in a.presets.split(","):
        for seed in seeds:
            t0 = time.perf_counter()
            rs = run_one(ctx, preset, seed, venues, size, a.particles, a.seconds)
            rows += rs
            worst = {}
            for r in rs:
                worst[r["venue"]] = min(worst.get(r["venue"], 1.0), r["peak20"])
            print(f"{preset} {seed}: {time.perf_counter() - t0:.1f} s  lowest peak in {WITHIN:g} s "
                  + ", ".join(f"{k} {v:.2f}" for k, v in worst.items()), flush=True)
            if a.json:
                Path(a.json).write_text(json.dumps(dict(args=vars(a), rows=rows)))
    report(rows)
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
