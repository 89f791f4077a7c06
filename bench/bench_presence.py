"""Presence against hand labels: the camera analysis beside a plain MOG2 pipeline, on every labelled clip.

    python bench/bench_presence.py [--media DIR ...] [--only NAME] [--size 640x360] [--scenarios LIST]

For every clip with a ``NAME.labels.txt`` beside it (../shared/media, plus
each ``--media DIR``), runs the scenarios of installation/sensing/scenarios.py
that the clip's footage allows (as shot; visits to its empty view; the same
under daylight drift; under sudden light steps; a visitor in view at
start-up) and prints per scenario, for ``ours`` (CameraAnalyzer, defaults:
the person detector as second opinion where its runtime is installed) and ``mog2`` (MOG2 at 320x180, a 3x3 opening, connected components, nothing
tuned):

    AUC of presence on the scored frames (1 s after each entry/exit left out),
    seconds to empty after each exit (presence <= 0.05 from then on),
    seconds to present after each entry (presence > 0.05),
    false people per minute of labelled-empty room, ms per frame (ours: detector included),
    and for ours the detector's ms per call and per frame amortised.

Frames are scaled to ``--size`` before timing (scaling is not timed).  For
clips with no empty stretch the AUC is undefined (n/a) and the share of
present frames reading present is printed instead.  Figures only, no
pass/fail; other processes on the machine inflate ms (compare the two
columns of one run).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from installation.sensing.camera import CameraAnalyzer  # noqa: E402
from installation.sensing import scenarios as S  # noqa: E402

MEDIA = Path(os.environ.get("TAPESTRY_MEDIA") or ROOT / "../shared/media")


class Mog2Baseline:
    """The plain OpenCV pipeline: MOG2 at 320x180 (defaults, shadows as background), 3x3 opening, components."""

    def __init__(self, min_blob: float = 0.002) -> None:
        self.mog = cv2.createBackgroundSubtractorMOG2()
        self.min_blob = min_blob

    def process(self, frame: np.ndarray, t: float):
        small = cv2.resize(frame, (320, 180), interpolation=cv2.INTER_AREA)
        m = self.mog.apply(small)
        m = cv2.morphologyEx((m == 255).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        people = int(np.sum(stats[1:, cv2.CC_STAT_AREA] >= self.min_blob * m.size)) if n > 1 else 0
        return float(m.mean()), people


class Ours:
    """CameraAnalyzer with its defaults, reporting (presence, people)."""

    def __init__(self) -> None:
        self.a = CameraAnalyzer()

    def process(self, frame: np.ndarray, t: float):
        r = self.a.process(frame, t)
        return r.presence, len(r.people)

    def detector(self) -> tuple[int, float]:
        """(detector runs, seconds spent in them); (0, 0) without a detector."""
        op = self.a.opinion
        return (op.calls, op.seconds) if op is not None else (0, 0.0)


def run(sc: S.Scenario, make, size) -> S.Score:
    """One analyser over one scenario."""
    a = make()
    pres, cnt, labs = [], [], []
    spent = 0.0
    for f, t, lab in S.play(sc):
        if size is not None and (f.shape[1], f.shape[0]) != size:
            f = cv2.resize(f, size, interpolation=cv2.INTER_LINEAR)
        t0 = time.perf_counter()
        p, n = a.process(f, t)
        spent += time.perf_counter() - t0
        pres.append(p)
        cnt.append(n)
        labs.append(lab)
    sco = S.score(pres, cnt, labs, sc.fps, 1000.0 * spent / max(1, len(pres)), sc.clear_s)
    sco.hit = float(np.mean(np.asarray(pres)[np.asarray(labs) == 1] > S.EMPTY_MAX)) if 1 in labs else math.nan
    calls, secs = a.detector() if hasattr(a, "detector") else (0, 0.0)
    sco.det = (1000.0 * secs / calls, 1000.0 * secs / max(1, len(pres))) if calls else None
    return sco


def fmt_list(xs) -> str:
    if not xs:
        return "-"
    return ",".join("inf" if not math.isfinite(x) else f"{x:.1f}" for x in xs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--media", action="append", default=[], help="another folder of clips with labels files")
    ap.add_argument("--only", default=None, help="only clips whose name contains this")
    ap.add_argument("--size", default="640x360", help="frame size fed to the analysers (WxH), or 'native'")
    ap.add_argument("--scenarios", default="as shot,visits,drift,steps,start-up")
    args = ap.parse_args(argv)
    size = None
    if args.size != "native":
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            size = (w, h)
        except ValueError:
            print(f"bench_presence: --size {args.size!r}: expected WxH like 640x360 or 'native'")
            return 2
    dirs = [MEDIA] + [Path(d) for d in args.media]
    for d in dirs:
        if not d.is_dir():
            print(f"bench_presence: --media {d}: not a folder")
            return 2
    cv2.setNumThreads(1)
    kinds = tuple(k.strip() for k in args.scenarios.split(","))
    print(f"presence vs hand labels; frames at {args.size}; 'empty' = presence <= {S.EMPTY_MAX}")
    print(f"{'clip':<36} {'scenario':<9} {'s':>5} {'who':<5} {'AUC':>6} {'hit':>5} {'to empty (s)':<22} "
          f"{'to present (s)':<18} {'false/min':>9} {'ms/f':>6} {'det ms/call':>11} {'det ms/f':>8}")
    worst = {}
    for path in S.find_clips(*dirs):
        if args.only and args.only not in path.name:
            continue
        try:
            clip = S.load_clip(path)
        except (OSError, ValueError) as e:
            print(f"{path.name}: skipped: {e}")
            continue
        for sc in S.standard(clip, kinds):
            if not sc.segments:
                print(f"{clip.name:<36} {sc.name:<9} {sc.how}")
                continue
            for who, make in (("ours", Ours), ("mog2", Mog2Baseline)):
                r = run(sc, make, size)
                print(f"{clip.name:<36} {sc.name:<9} {sc.seconds:5.0f} {who:<5} "
                      f"{'n/a' if math.isnan(r.auc) else f'{r.auc:.3f}':>6} "
                      f"{'' if math.isnan(r.hit) else f'{r.hit:.2f}':>5} {fmt_list(r.to_empty):<22} "
                      f"{fmt_list(r.to_present):<18} "
                      f"{'n/a' if math.isnan(r.false_people_per_min) else f'{r.false_people_per_min:.1f}':>9} "
                      f"{r.ms_per_frame:6.2f}"
                      + (f" {r.det[0]:11.1f} {r.det[1]:8.2f}" if r.det else ""), flush=True)
                w = worst.setdefault((who, sc.name), [1.0, 0.0, 0.0])
                if not math.isnan(r.auc):
                    w[0] = min(w[0], r.auc)
                w[1] = max([w[1]] + r.to_empty)
                w[2] = max(w[2], r.ms_per_frame)
    print("\nworst over clips: scenario, who, min AUC, max s to empty, max ms/frame")
    for (who, name), (a, e, ms) in sorted(worst.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"  {name:<9} {who:<5} {a:6.3f} {e:6.1f} {ms:6.2f}")
    print("goals: AUC >= 0.99 as shot / visits, >= 0.95 under drift; empty within 3 s of every exit; "
          "<= 5 ms per 640x360 frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
