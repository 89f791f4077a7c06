"""Sensing benchmarks: camera analysis per frame, microphone-to-mood latency.

    python bench/bench_sensing.py [--frames N] [--trials N] [--only camera,latency,quiet]

Prints figures only (no pass/fail): camera ms per frame at 640x360 and
1280x720 (the test footage upscaled), with OpenCV's default threading and
single-threaded, as ratios to the 640x360 default; and the latency from a
microphone block arriving (a synthetic PortAudio callback feed in real time)
to the engine's Mood reflecting it, with the engine polling at 60 fps; and
what a quiet room reads (room tone at -54 dBFS with 50 Hz hum, issue 13) as
heard from the start, after a stream that opens with 50 ms of zeros, after a
minute of a muted channel and after a recorder's quiet first 10 ms, each
followed by applause (synthetic claps).
Goals: <= 5 ms per 640x360 frame; sound -> mood well inside 45 ms; the quiet
room < 0.05 loudness, applause > 0.4.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from installation.mood import PARAMS as MOOD_PARAMS, MoodModel  # noqa: E402
from installation.params import ParamTree  # noqa: E402
from installation.sensing import PARAMS, SensorHub  # noqa: E402
from installation.sensing.camera import CameraAnalyzer  # noqa: E402
from installation.sensing.microphone import MicCapture  # noqa: E402

MEDIA = Path(os.environ.get("TAPESTRY_MEDIA") or ROOT / "../shared/media")


def clip(name: str) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(MEDIA / name))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    if not out:
        raise SystemExit(f"cannot read {MEDIA / name}")
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def bench_camera(n: int) -> None:
    print("camera analysis as the live capture thread runs it (CameraAnalyzer.process, work width 160 px, the "
          "person detector on its own thread at its default rate), ms per frame")
    print(f"  {'size':>9} {'threads':>8} {'mean':>7} {'p50':>7} {'p95':>7} {'max':>7} {'ratio':>6}")
    base = None
    default_threads = cv2.getNumThreads()
    for size in ((640, 360), (1280, 720)):
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR)
                  for f in clip("classroom-seated.gif") + clip("people-walking-in.gif")]
        for threads in (default_threads, 1):
            cv2.setNumThreads(threads)
            a = CameraAnalyzer(opinion="thread")
            for i in range(20):  # warm up
                a.process(frames[i % len(frames)], i / 30)
            ts = []
            for i in range(n):
                t0 = time.perf_counter()
                a.process(frames[i % len(frames)], (i + 20) / 30)
                ts.append(1000 * (time.perf_counter() - t0))
            det = a.opinion
            a.close()
            mean = statistics.fmean(ts)
            base = base or mean
            print(f"  {size[0]:>4}x{size[1]:<4} {threads:>8} {mean:7.3f} {pct(ts, .5):7.3f} {pct(ts, .95):7.3f} "
                  f"{max(ts):7.3f} {mean / base:6.2f}"
                  + (f"   detector {det.calls} runs, {1000 * det.seconds / max(1, det.calls):.1f} ms each"
                     if det is not None else "   (no detector)"))
    cv2.setNumThreads(default_threads)
    print("  goal: <= 5 ms per 640x360 frame")


def bench_latency(trials: int, sr: int = 48000, block_ms: float = 5.0, fps: float = 60.0) -> None:
    tree = ParamTree.from_specs(PARAMS + MOOD_PARAMS)
    mic = MicCapture("synthetic", tree)
    mic._setup(float(sr))
    hub = SensorHub(None, None, tree)
    hub._mic = mic  # the hub's read path, fed by a synthetic PortAudio callback
    model = MoodModel(tree)
    block = int(sr * block_ms / 1000)
    rng = np.random.default_rng(7)
    quiet = (rng.standard_normal(sr) * 10 ** (-60 / 20)).astype(np.float32)
    loud = (rng.standard_normal(sr) * 10 ** (-15 / 20)).astype(np.float32)
    state = {"loud": False, "t_loud": None, "stop": False}

    def feeder():  # plays the part of PortAudio's audio thread: real-time blocks into the callback
        pos = 0
        nxt = time.perf_counter()
        while not state["stop"]:
            src = loud if state["loud"] else quiet
            blk = src[(np.arange(pos, pos + block)) % sr][:, None]
            if state["loud"] and state["t_loud"] is None:
                state["t_loud"] = time.perf_counter()  # arrival of the first loud block
            mic.callback(blk, block, None, None)
            pos += block
            nxt += block / sr
            time.sleep(max(0.0, nxt - time.perf_counter()))

    th = threading.Thread(target=feeder, daemon=True)
    th.start()
    first, half, work = [], [], []
    frame = 1.0 / fps
    try:
        for trial in range(trials):
            # Quiet room for a while (the floor settles), then a loud burst at a random phase.
            state["loud"], state["t_loud"] = False, None
            t_end = time.perf_counter() + 2.0 + rng.uniform(0, frame)
            switched = False
            before = None
            t_first = t_half = None
            nxt = time.perf_counter()
            while True:
                now = time.perf_counter()
                if not switched and now >= t_end:
                    state["loud"] = True
                    switched = True
                t0 = time.perf_counter()
                _, audio = hub.latest()
                mood = model.update(None, audio, frame)
                t1 = time.perf_counter()
                work.append(1000 * (t1 - t0))
                if not switched:
                    before = mood.sound
                elif state["t_loud"] is not None:
                    if t_first is None and mood.sound > before + 0.05:
                        t_first = t1
                    if t_half is None and mood.sound > 0.5:
                        t_half = t1
                        break
                if switched and now > t_end + 1.0:
                    break
                nxt += frame
                time.sleep(max(0.0, nxt - time.perf_counter()))
            if t_first is not None and t_half is not None:
                first.append(1000 * (t_first - state["t_loud"]))
                half.append(1000 * (t_half - state["t_loud"]))
    finally:
        state["stop"] = True
        th.join(1.0)
    print(f"microphone -> mood latency ({trials} trials; {block_ms:g} ms blocks at {sr} Hz, engine at {fps:g} fps, "
          f"analysis hop {tree['sensing/audio/hop_ms']:g} ms, sound attack {tree['mood/attack/sound']:g} s)")
    for name, xs in (("first change", first), ("sound > 0.5", half)):
        if xs:
            print(f"  {name:>13}: mean {statistics.fmean(xs):6.1f} ms  p95 {pct(xs, .95):6.1f} ms  "
                  f"max {max(xs):6.1f} ms")
    print(f"  engine-side work per frame (hub.latest + mood.update): mean {statistics.fmean(work):.3f} ms, "
          f"p95 {pct(work, .95):.3f} ms")
    print(f"  one engine frame is {1000 * frame:.1f} ms of that latency at most; goal: well inside 45 ms")


def bench_quiet(sr: int = 48000) -> None:
    """Loudness of a quiet room after each way a stream can begin or break, through MicCapture's callback."""
    rng = np.random.default_rng(5)

    def room(seconds: float) -> np.ndarray:
        n = int(sr * seconds)
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / sr)
        spec[(f < 20) | (f > 300)] = 0   # low-frequency room tone, as rooms are
        x = np.fft.irfft(spec, n)
        x *= 10 ** (-54 / 20) / np.sqrt(np.mean(x ** 2))
        t = np.arange(n) / sr
        return (x + 10 ** (-54 / 20) * np.sqrt(2) * np.sin(2 * np.pi * 50 * t)).astype(np.float32)

    def claps(seconds: float) -> np.ndarray:
        out = np.zeros(int(sr * seconds), np.float32)
        m = int(0.03 * sr)
        for k in range(int(seconds * 6)):
            s0 = int((k / 6 + 0.1) * sr)
            if s0 + m <= out.size:
                out[s0:s0 + m] += rng.standard_normal(m) * 0.5 * np.exp(-np.arange(m) / (0.005 * sr))
        return out

    cases = {
        "heard from the start": [room(30)],
        "stream opens with 50 ms of zeros": [np.zeros(sr // 20, np.float32), room(30)],
        "a minute muted, then the room": [room(10), np.zeros(60 * sr, np.float32), room(30)],
        "a recorder's quiet first 10 ms": [room(0.01) * 10 ** (-25 / 20), room(30)],
    }
    print("quiet room (-54 dBFS room tone + 50 Hz hum), then 5 s of applause; loudness 0..1")
    print(f"  {'case':36s} {'quiet: max':>11s} {'mean':>6s} {'applause: mean':>15s}")
    for name, parts in cases.items():
        x = np.concatenate(parts + [np.clip(room(5) + claps(5), -1, 1)])
        quiet_end = sum(p.size for p in parts) / sr
        mic = MicCapture("bench", ParamTree.from_specs(PARAMS))
        mic._setup(float(sr))
        block = int(sr * 0.005)
        quiet, loud = [], []
        for i, s0 in enumerate(range(0, x.size, block)):
            mic.callback(x[s0:s0 + block, None], block, None, None)
            if i % 3 == 0 and mic.read() is not None:
                t = (s0 + block) / sr
                if quiet_end - 28 <= t < quiet_end:   # the last 28 s of the quiet room (after its first 2 s)
                    quiet.append(mic.analyzer.last.loudness)
                elif t > quiet_end + 0.5:
                    loud.append(mic.analyzer.last.loudness)
        print(f"  {name:36s} {max(quiet):11.3f} {statistics.fmean(quiet):6.3f} {statistics.fmean(loud):15.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--trials", type=int, default=25)
    ap.add_argument("--only", default="camera,latency,quiet", help="which parts, comma-separated")
    args = ap.parse_args()
    only = set(args.only.split(","))
    print(f"cores: {cv2.getNumberOfCPUs()}  OpenCV {cv2.__version__}  default threads {cv2.getNumThreads()}")
    if "camera" in only:
        bench_camera(args.frames)
        print()
    if "latency" in only:
        bench_latency(args.trials)
        print()
    if "quiet" in only:
        bench_quiet()


if __name__ == "__main__":
    main()
