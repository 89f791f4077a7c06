"""Presence against hand labels: the camera analysis beside a plain MOG2 pipeline, on every labelled clip.

    python bench/bench_presence.py [--media DIR ...] [--only NAME] [--size 640x360] [--scenarios LIST]
                                   [--camera h264:768x432@10:crf28]

For every clip with a ``NAME.labels.txt`` beside it (../shared/media, plus
each ``--media DIR``), runs the scenarios of installation/sensing/scenarios.py
that the clip's footage allows (as shot; visits to its empty view; the same
under daylight drift; under sudden light steps; a visitor in view at
start-up) and prints per scenario, for ``ours`` (CameraAnalyzer, defaults:
the person detector as second opinion where its runtime is installed) and
``mog2`` (MOG2 at 320x180, a 3x3 opening, connected components, nothing
tuned):

    AUC of presence on the scored frames (1 s after each entry/exit left out),
    seconds to empty after each exit (presence <= 0.05 from then on),
    seconds to present after each entry (presence > 0.05),
    false people per minute of labelled-empty room,
    ``cam ms/f``: ms per frame on the camera thread, that is the analysis
    without the detector (live the detector runs on its own thread; here it
    runs inline, and the time spent in its calls is taken out of ours; mog2
    has none; loading the detector, once per start, is left out too and its
    time printed at the end),
    and for ours the detector's ms per call (``det ms/call``) and per frame
    amortised (``det ms/f``).

``--camera CODEC:WxH@FPS:crfN[:mono]`` (e.g. ``h264:768x432@10:crf28``) passes each
scenario through a camera's delivery path first: resampled to FPS (output
frame k at time k/FPS is the scenario frame nearest in time, with its
label), scaled to WxH, made grey in every channel with ``:mono`` (a
monochrome camera, a night or infrared mode), H.264-encoded with libx264 (yuv420p, that CRF, x264's
other defaults) in memory, and decoded; both analysers see the same decoded
frames, and neither encoding nor decoding is timed.  Without it the
analysers see the scenario's frames as made.

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
import re
import sys
import time
import zlib
from dataclasses import dataclass
from fractions import Fraction
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
    """CameraAnalyzer (its defaults, or the parameters of ``tree``), reporting (presence, people)."""

    def __init__(self, tree=None) -> None:
        self.a = CameraAnalyzer(tree)

    def process(self, frame: np.ndarray, t: float):
        r = self.a.process(frame, t)
        return r.presence, len(r.people)

    def detector(self) -> tuple[int, float, float]:
        """(detector runs, seconds spent in them, seconds spent loading it); zeros without a detector."""
        op = self.a.opinion
        return (op.calls, op.seconds, op.load_seconds) if op is not None else (0, 0.0, 0.0)


@dataclass(frozen=True)
class CameraSpec:
    """A camera's delivery path: codec, frame size (w, h), frame rate and CRF, as given on the command line."""

    text: str
    codec: str
    size: tuple[int, int]
    fps: Fraction
    crf: int
    mono: bool = False


def parse_camera(text: str) -> CameraSpec:
    """``CODEC:WxH@FPS:crfN[:mono]`` as a :class:`CameraSpec`; ``ValueError`` with a one-line reason."""
    m = re.fullmatch(r"([a-z0-9]+):(\d+)x(\d+)@(\d+(?:\.\d+)?):crf(\d+)(:mono)?", text)
    if not m:
        raise ValueError(f"--camera {text!r}: expected CODEC:WxH@FPS:crfN[:mono] like h264:768x432@10:crf28")
    codec, w, h, fps, crf = m[1], int(m[2]), int(m[3]), Fraction(m[4]), int(m[5])
    if codec != "h264":
        raise ValueError(f"--camera {text!r}: codec {codec!r} not supported (only h264)")
    if not (16 <= w <= 7680 and 16 <= h <= 4320) or w % 2 or h % 2:
        raise ValueError(f"--camera {text!r}: frame size {w}x{h}: width and height must be even, "
                         f"16..7680 x 16..4320 (yuv420p)")
    if not 0 < fps <= 240:
        raise ValueError(f"--camera {text!r}: frame rate {m[4]}: expected more than 0 and at most 240")
    if crf > 51:
        raise ValueError(f"--camera {text!r}: crf{crf}: expected 0..51")
    try:
        import av
    except ImportError as e:
        raise ValueError(f"--camera {text!r}: needs PyAV ({e})") from e
    if "libx264" not in av.codecs_available:
        raise ValueError(f"--camera {text!r}: this PyAV has no libx264 encoder")
    return CameraSpec(text, codec, (w, h), fps, crf, bool(m[6]))


def resample(frames, src_fps: float, fps: Fraction):
    """``(frame, t, label)`` at ``fps`` from ``frames`` at ``src_fps``: output frame k (at k/fps) is the
    input frame nearest in time (the earlier one on a tie), with its label."""
    ratio = Fraction(src_fps).limit_denominator(1_000_000) / fps
    k, want = 0, 0
    for i, (f, _, lab) in enumerate(frames):
        while want == i:
            yield f, float(k / fps), lab
            k += 1
            want = math.ceil(k * ratio - Fraction(1, 2))


class CameraTake:
    """One scenario as a camera delivers it: encoded once into H.264 packets held in memory (raw frames
    are streamed, never kept), decoded afresh by :meth:`play` for each analyser."""

    def __init__(self, sc: S.Scenario, cam: CameraSpec) -> None:
        import av

        self.cam = cam
        self.fps = float(cam.fps)
        w, h = cam.size
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
        enc.time_base = 1 / cam.fps
        enc.framerate = cam.fps
        enc.options = {"crf": str(cam.crf)}
        self.packets: list[tuple[bytes, int, int]] = []
        self.times: list[float] = []
        self.labels: list[int] = []
        for k, (f, t, lab) in enumerate(resample(S.play(sc), sc.fps, cam.fps)):
            if (f.shape[1], f.shape[0]) != (w, h):
                shrink = f.shape[1] > w or f.shape[0] > h
                f = cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            if cam.mono:  # a monochrome camera (a night / infrared mode): the same grey in every channel
                f = cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
            # OpenCV's BT.601 limited-range I420, not swscale's: swscale's default rgb<->yuv round trip
            # darkens every frame by 2-5 grey levels, which no camera does.
            vf = av.VideoFrame.from_ndarray(cv2.cvtColor(f, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
            vf.pts = k
            self.packets += [(bytes(p), p.pts, p.dts) for p in enc.encode(vf)]
            self.times.append(t)
            self.labels.append(lab)
        self.packets += [(bytes(p), p.pts, p.dts) for p in enc.encode(None)]
        self.bytes = sum(len(b) for b, _, _ in self.packets)
        self._crc: int | None = None

    def play(self):
        """``(frame, t, label)`` for every decoded frame, in order; the same pixels on every call
        (checked: ``RuntimeError`` if a decode differs from the first)."""
        import av

        dec = av.CodecContext.create("h264", "r")
        k, crc = 0, 0

        def frames():
            for b, pts, dts in self.packets:
                p = av.Packet(b)
                p.pts, p.dts = pts, dts
                yield from dec.decode(p)
            yield from dec.decode(None)

        for vf in frames():
            if vf.pts != k or (vf.width, vf.height) != self.cam.size:
                raise RuntimeError(f"camera {self.cam.text}: decoded frame {k} came back as "
                                   f"pts {vf.pts}, {vf.width}x{vf.height}")
            f = cv2.cvtColor(vf.to_ndarray(), cv2.COLOR_YUV2BGR_I420)
            crc = zlib.crc32(f, crc)
            yield f, self.times[k], self.labels[k]
            k += 1
        if k != len(self.times):
            raise RuntimeError(f"camera {self.cam.text}: {len(self.times)} frames encoded, {k} decoded")
        if self._crc is None:
            self._crc = crc
        elif crc != self._crc:
            raise RuntimeError(f"camera {self.cam.text}: decoding the same packets twice gave different frames")


def run(sc: S.Scenario, make, size, take: CameraTake | None = None) -> S.Score:
    """One analyser over one scenario (through the camera ``take`` when given)."""
    a = make()
    pres, cnt, labs = [], [], []
    spent = 0.0
    fps = take.fps if take is not None else sc.fps
    for f, t, lab in (take.play() if take is not None else S.play(sc)):
        if size is not None and (f.shape[1], f.shape[0]) != size:
            f = cv2.resize(f, size, interpolation=cv2.INTER_LINEAR)
        t0 = time.perf_counter()
        p, n = a.process(f, t)
        spent += time.perf_counter() - t0
        pres.append(p)
        cnt.append(n)
        labs.append(lab)
    # The inline detector is loaded and runs only inside the timed process() calls of this fresh analyser,
    # so all of its time is in ``spent``: what is left is the camera thread's share per frame.  Loading it
    # (once per start, about 70 ms) is not a per-frame cost: on a 23-frame clip it would add 3 ms a frame.
    calls, secs, load = a.detector() if hasattr(a, "detector") else (0, 0.0, 0.0)
    sco = S.score(pres, cnt, labs, fps, 1000.0 * (spent - secs - load) / max(1, len(pres)), sc.clear_s)
    sco.hit = float(np.mean(np.asarray(pres)[np.asarray(labs) == 1] > S.EMPTY_MAX)) if 1 in labs else math.nan
    sco.det = (1000.0 * secs / calls, 1000.0 * secs / max(1, len(pres))) if calls else None
    sco.load_ms = 1000.0 * load
    return sco


def fmt_list(xs) -> str:
    """Seconds as a short comma-separated list ('-' when none)."""
    if not xs:
        return "-"
    return ",".join("inf" if not math.isfinite(x) else f"{x:.1f}" for x in xs)


def detector_cost(clips, size, rounds: int = 3) -> tuple[float, float] | None:
    """Median ms of one whole-frame detector run on the clips' first frames: the pose detector alone (the
    baseline) and with the body detector beside it, alternated in this process; ``None`` without a detector."""
    from installation.sensing import detector as D
    try:
        det = D.load()
    except D.DetectorUnavailable:
        return None
    if det.body is None:
        return None
    frames = []
    for path in clips:
        cap = cv2.VideoCapture(str(path))
        ok, f = cap.read()
        cap.release()
        if ok:
            frames.append(cv2.resize(f, size) if size else f)
    pose, both = [], []
    for _ in range(rounds):
        for f in frames:
            t0 = time.perf_counter()
            det.pose(f)
            t1 = time.perf_counter()
            det.detect(f)
            t2 = time.perf_counter()
            pose.append(t1 - t0)
            both.append(t2 - t1)
    return (1000.0 * float(np.median(pose)), 1000.0 * float(np.median(both))) if frames else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--media", action="append", default=[], help="another folder of clips with labels files")
    ap.add_argument("--only", default=None, help="only clips whose name contains this")
    ap.add_argument("--size", default="640x360", help="frame size fed to the analysers (WxH), or 'native'")
    ap.add_argument("--scenarios", default=",".join(S.KINDS), help="which scenarios, comma-separated")
    ap.add_argument("--camera", default=None, metavar="SPEC",
                    help="pass frames through a camera's delivery path first, e.g. h264:768x432@10:crf28 "
                         "(codec:WxH@fps:crfN[:mono], mono: a monochrome camera; default: the scenario's frames "
                         "as made)")
    args = ap.parse_args(argv)
    cam = None
    if args.camera is not None:
        try:
            cam = parse_camera(args.camera)
        except ValueError as e:
            print(f"bench_presence: {e}")
            return 2
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
    via = (f" (camera {cam.text}: libx264 yuv420p, resampled to {float(cam.fps):g} fps, decoded, then scaled)"
           if cam else "")
    print(f"presence vs hand labels; frames at {args.size}{via}; 'empty' = presence <= {S.EMPTY_MAX}")
    print(f"{'clip':<36} {'scenario':<9} {'s':>5} {'who':<5} {'AUC':>6} {'hit':>5} {'to empty (s)':<22} "
          f"{'to present (s)':<18} {'false/min':>9} {'cam ms/f':>8} {'det ms/call':>11} {'det ms/f':>8}")
    clips = S.find_clips(*dirs)
    for d in dirs:
        for lab in sorted(d.glob("*.labels.txt")):
            stem = lab.name[: -len(".labels.txt")]
            if (not args.only or args.only in lab.name) and not any(
                    p.parent == d and p.name.rsplit(".", 1)[0] == stem for p in clips):
                print(f"{lab.name}: no clip beside it, skipped "
                      "(bench/footage/README.md says where such clips come from)")
    worst = {}
    loads = []  # ms the detector took to load, once per analyser started
    for path in clips:
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
            take = CameraTake(sc, cam) if cam else None  # encoded once: both analysers decode the same packets
            for who, make in (("ours", Ours), ("mog2", Mog2Baseline)):
                r = run(sc, make, size, take)
                print(f"{clip.name:<36} {sc.name:<9} {sc.seconds:5.0f} {who:<5} "
                      f"{'n/a' if math.isnan(r.auc) else f'{r.auc:.3f}':>6} "
                      f"{'' if math.isnan(r.hit) else f'{r.hit:.2f}':>5} {fmt_list(r.to_empty):<22} "
                      f"{fmt_list(r.to_present):<18} "
                      f"{'n/a' if math.isnan(r.false_people_per_min) else f'{r.false_people_per_min:.1f}':>9} "
                      f"{r.ms_per_frame:8.2f}"
                      + (f" {r.det[0]:11.1f} {r.det[1]:8.2f}" if r.det else ""), flush=True)
                # nan until a clip defines it: a clip with no empty frame has no AUC, only a hit rate
                w = worst.setdefault((who, sc.name), [math.nan, math.nan, 0.0, 0.0])
                if not math.isnan(r.auc):
                    w[0] = r.auc if math.isnan(w[0]) else min(w[0], r.auc)
                if not math.isnan(r.hit):
                    w[1] = r.hit if math.isnan(w[1]) else min(w[1], r.hit)
                w[2] = max([w[2]] + r.to_empty)
                w[3] = max(w[3], r.ms_per_frame)
                if r.load_ms > 0:
                    loads.append(r.load_ms)
    print("\nworst over clips: scenario, who, min AUC, min hit, max s to empty, max cam ms/f (n/a: no clip "
          "defines it)")
    for (who, name), (a, hit, e, ms) in sorted(worst.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"  {name:<9} {who:<5} {'n/a' if math.isnan(a) else f'{a:.3f}':>6} "
              f"{'n/a' if math.isnan(hit) else f'{hit:.2f}':>5} {e:6.1f} {ms:6.2f}")
    if loads:
        print(f"the person detector's load, once per start (left out of cam ms/f): "
              f"median {np.median(loads):.0f} ms, max {max(loads):.0f} ms")
    cost = detector_cost([p for p in clips if not args.only or args.only in p.name], size)
    if cost:
        print(f"a whole-frame detector run (median over the clips' first frames, one core): pose detector alone "
              f"{cost[0]:.1f} ms, with the body detector {cost[1]:.1f} ms ({cost[1] / cost[0]:.1f}x)")
    print("goals: AUC >= 0.99 as shot / visits, >= 0.95 under drift; empty within 3 s of every exit; "
          "<= 5 ms per 640x360 frame on the camera thread (the detector runs on its own thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
