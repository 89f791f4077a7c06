"""Presence in the running show against hand labels: the whole piece on a labelled clip, beside the bench's analysis.

    python3 bench/bench_presence_live.py CLIP [CLIP ...] [--venue FILE] [--keep DIR]

For each clip (with ``NAME.labels.txt`` beside it, the format of
../shared/media/README.md), two runs over the same frames:

``show``
    ``run.py --headless --no-leds --venue FILE --camera CLIP --record-sensors
    REC`` for the clip's length: the installation as it runs in a gallery,
    with the engine rendering on this machine's GL, the camera's capture
    thread and the person detector's own thread sharing the cores.  A clip is
    paced at its own frame rate and every frame is analysed, so the recorded
    camera records are matched to the clip's frames in order (a gap between
    two records of more than 1.9 frames is reported: a frame the analysis
    failed on leaves no record, and the match would slip).
``bench``
    the same frames through ``CameraAnalyzer`` in this process with the
    detector inline on every run it is due (bench_presence.py's *as shot*, at
    the clip's own size as the show gets it): no other load, no detector
    latency.

Both use the venue's calibration (``--venue``, default run.py's
hardware/demo-venue.toml): the venue-scope values saved beside it and its
camera ROI and lens.  The show's first detector answer comes about 0.2 s
after its first frame, so on a clip seconds long with people in view from
the start its ``hit`` is a few frames lower.

Per run: AUC of presence on the labelled frames, the share of present frames
reading present (``hit``), seconds to empty after each exit and to present
after each entry, false people per minute of labelled-empty room, and for the
show how many records came back and the largest gap between two of them.
Figures only, no pass/fail.  ``--keep DIR`` keeps each show's recording and log.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_presence as B  # noqa: E402
from installation import app  # noqa: E402
from installation.engine import declare_all  # noqa: E402
from installation.presets import venue_params_path  # noqa: E402
from installation.schema import ConfigError  # noqa: E402
from installation.sensing import PARAMS as SENSING  # noqa: E402
from installation.sensing import scenarios as S  # noqa: E402
from installation.showfile import load_show  # noqa: E402

#: a clip that names no frame rate is paced at this by the show's camera source (camera.py CvSource)
FALLBACK_FPS = 30.0


def venue_tree(venue: Path):
    """The parameters the show's camera analysis starts with under ``venue`` (defaults, then its calibration)."""
    tree = declare_all(extra=SENSING)
    app.apply_venue_calibration(tree, venue, load_show(venue))
    return tree


def show_records(clip_path: Path, seconds: float, out_dir: Path, venue: Path) -> tuple[list[dict], str]:
    """Camera records of the whole piece run on ``clip_path`` for ``seconds``, and the run's log (stdout and
    stderr).  ``RuntimeError`` with the log's tail if the piece exits with an error or records nothing."""
    rec = out_dir / f"{clip_path.stem}.jsonl"
    rec.unlink(missing_ok=True)
    cmd = [sys.executable, str(ROOT / "run.py"), "--headless", "--no-leds", "--venue", str(venue),
           "--camera", str(clip_path), "--record-sensors", str(rec), "--seconds", f"{seconds:.1f}",
           "--osc-port", "0", "--health-port", "0"]
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"run.py did not stop {seconds + 120:.0f} s after it started") from e
    log = p.stdout + p.stderr
    (out_dir / f"{clip_path.stem}.log").write_text(log, encoding="utf-8")
    if p.returncode != 0:
        raise RuntimeError(f"run.py exited {p.returncode}: " + " | ".join(log.strip().splitlines()[-3:]))
    recs = []
    if rec.exists():
        for line in rec.read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            if "camera" in d:
                recs.append(d["camera"])
    if not recs:
        raise RuntimeError("run.py recorded no camera records: " + " | ".join(log.strip().splitlines()[-3:]))
    return recs, log


def figures(pres, cnt, labs, fps: float) -> S.Score:
    """The bench's score of one run (hand labels as given: nothing more left out round entries and exits)."""
    sco = S.score(pres, cnt, labs, fps, 0.0, clear_s=0.0)
    p, lab = np.asarray(pres), np.asarray(labs)
    sco.hit = float(np.mean(p[lab == 1] > S.EMPTY_MAX)) if np.any(lab == 1) else math.nan
    return sco


def line(name: str, who: str, sco: S.Score, extra: str = "") -> str:
    """One row of the table."""
    return (f"{name:<36} {who:<5} {'n/a' if math.isnan(sco.auc) else f'{sco.auc:.3f}':>6} "
            f"{'n/a' if math.isnan(sco.hit) else f'{sco.hit:.2f}':>5} {B.fmt_list(sco.to_empty):<26} "
            f"{B.fmt_list(sco.to_present):<22} "
            f"{'n/a' if math.isnan(sco.false_people_per_min) else f'{sco.false_people_per_min:.1f}':>9}  {extra}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="+", type=Path, help="video files, each with NAME.labels.txt beside it")
    ap.add_argument("--venue", type=Path, default=app.DEFAULT_VENUE,
                    help="venue file the show runs with; its calibration is the bench row's too "
                         "(default: run.py's, hardware/demo-venue.toml)")
    ap.add_argument("--keep", type=Path, default=None, help="keep each show's sensor recording and log here")
    args = ap.parse_args(argv)
    venue = args.venue.absolute()
    try:
        venue_tree(venue)
    except (ConfigError, app.StartupError, OSError) as e:
        print(f"bench_presence_live: --venue {args.venue}: {e}")
        return 2
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    cv2.setNumThreads(1)
    params = venue_params_path(venue)
    print("presence vs hand labels: the running show (engine, camera and detector threads) beside the bench's "
          f"inline analysis of the same frames; 'empty' = presence <= {S.EMPTY_MAX}")
    print(f"venue {venue} ({'with' if params.exists() else 'no'} saved calibration {params.name})")
    print(f"{'clip':<36} {'run':<5} {'AUC':>6} {'hit':>5} {'to empty (s)':<26} {'to present (s)':<22} "
          f"{'false/min':>9}  records")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="tapestry-live-") as tmp:
        out_dir = (args.keep or Path(tmp)).absolute()
        for path in args.clips:
            path = path.absolute()   # not resolve(): a clip linked in beside its labels stays beside them
            try:
                clip = S.load_clip(path, fallback_fps=FALLBACK_FPS)
            except (OSError, ValueError) as e:
                print(f"{path.name}: skipped: {e}")
                failed += 1
                continue
            n = len(clip.frames)
            labs = [int(v) for v in clip.labels]
            ours = B.Ours(venue_tree(venue))
            res = [ours.process(f, k / clip.fps) for k, f in enumerate(clip.frames)]
            ours.a.close()
            print(line(clip.name, "bench", figures([r[0] for r in res], [r[1] for r in res], labs, clip.fps)),
                  flush=True)
            try:
                recs, _ = show_records(path, n / clip.fps + 1.0, out_dir, venue)
            except RuntimeError as e:
                print(f"{clip.name:<36} show  failed: {e}")
                failed += 1
                continue
            got = recs[:n]   # a file loops: records past its last frame are its second showing
            ts = [r["t"] for r in got]
            gap = max(np.diff(ts)) if len(ts) > 1 else math.nan
            sco = figures([r["presence"] for r in got], [len(r["people"]) for r in got], labs[: len(got)], clip.fps)
            slip = " (over 1.9 frames: a frame may have left no record, and what follows is matched one early)" \
                if gap > 1.9 / clip.fps else ""
            print(line(clip.name, "show", sco, f"{len(got)} of {n} frames, largest gap {gap:.2f} s "
                       f"(frames {1 / clip.fps:.2f} s apart){slip}"), flush=True)
    print("goals: AUC >= 0.99 as shot; empty within 3 s of every exit; present within 1 s of every entry")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
