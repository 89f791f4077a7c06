"""Camera frames for mapping: a live camera (device index or /dev path), or a recorded clip.

A live camera is asked for a fresh frame after each pattern has settled (the
frames a driver buffered meanwhile are dropped).  A clip -- a phone or camera
recording of ``run.py map --dry-run`` showing its patterns -- is cut into its
still scenes (a scene ends where many pixels change at once); the brightest
scene is the all-on frame, and the scenes around it are the sequence.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np


class SourceError(ValueError):
    """A camera or clip that cannot be used; the message says which and why."""


class LiveCamera:
    """``grab()``: the newest frame of an OpenCV capture device, as (H, W, 3) uint8 BGR."""

    def __init__(self, spec: str, flush: int = 3):
        self.spec = spec
        dev = int(spec) if spec.isdigit() else spec
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)   # our message says it better
        try:
            self.cap = cv2.VideoCapture(dev)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not self.cap.isOpened():
            raise SourceError(f"camera {spec!r}: cannot open it (is it plugged in, and not used by another program?)")
        self.flush = flush

    def grab(self) -> np.ndarray:
        """A fresh frame (the ones buffered meanwhile dropped)."""
        for _ in range(self.flush):   # frames buffered while the pattern changed are stale
            self.cap.grab()
        ok, frame = self.cap.read()
        if not ok or frame is None:
            raise SourceError(f"camera {self.spec!r}: stopped delivering frames")
        return frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)

    def close(self) -> None:
        """Release the device."""
        self.cap.release()


def is_clip(spec: str) -> bool:
    """True when ``spec`` names a video file rather than a camera device."""
    return not spec.isdigit() and not spec.startswith("/dev/") and os.path.isfile(spec)


def clip_scenes(path: str | Path, expected: int, change: float = 30.0) -> list[np.ndarray]:
    """The ``expected`` still scenes of a recorded mapping run, each the average of its frames (float32 BGR).

    Raises :class:`SourceError` when the clip cannot be read or does not hold the sequence.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SourceError(f"clip {path}: OpenCV cannot read it")
    whites, prev = [], None
    counts = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        # LEDs are a few pixels each: compare at full resolution, counting pixels that changed a lot
        g = (cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame).astype(np.int16)
        counts.append(0 if prev is None else int(np.count_nonzero(np.abs(g - prev) > change)))
        # white light shows in all three channels (a blue or red scene does not)
        whites.append(float((frame.min(axis=2) if frame.ndim == 3 else frame).mean()))
        prev = g
    cap.release()
    if len(counts) < 2 * expected:
        raise SourceError(f"clip {path}: {len(counts)} frames, too short for a mapping sequence of {expected} "
                          f"patterns (record all of `run.py map --dry-run`)")
    c = np.asarray(counts, np.float64)
    floor = max(3.0, 5.0 * float(np.median(c)))
    cut = c > floor
    # still runs between cuts; the frame after a cut may still be mid-change, so it is skipped
    runs, start = [], None
    for i in range(len(c)):
        if cut[i] or (i > 0 and cut[i - 1]):
            if start is not None and i - start >= 2:
                runs.append((start, i))
            start = None
        elif start is None:
            start = i
    if start is not None and len(c) - start >= 2:
        runs.append((start, len(c)))
    if len(runs) < expected:
        raise SourceError(f"clip {path}: found {len(runs)} still scenes, expected at least {expected} "
                          f"(hold each pattern longer with --hold, or keep the camera still)")
    bright = [np.mean(whites[a:b]) for a, b in runs]
    w = int(np.argmax(bright))
    first = w - 1
    if first < 0 or first + expected > len(runs):
        raise SourceError(f"clip {path}: the sequence is cut off (the all-on scene is scene {w + 1} of "
                          f"{len(runs)}; {expected} are needed from the dark one before it)")
    chosen = runs[first:first + expected]
    sums: list[np.ndarray | None] = [None] * expected
    cap = cv2.VideoCapture(str(path))
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        for k, (a, b) in enumerate(chosen):
            if a <= i < b:
                f = frame.astype(np.float32)
                sums[k] = f if sums[k] is None else sums[k] + f
        i += 1
    cap.release()
    return [s / (b - a) for s, (a, b) in zip(sums, chosen)]
