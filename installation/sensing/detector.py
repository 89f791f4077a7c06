"""Person detector: MediaPipe's BlazePose person detector on one frame (and the body detector beside it).

The camera analysis (camera.py) learns a background and sees what differs
from it; it cannot see a visitor who was already there, still, when it
started.  This module answers a different question on a single frame —
"is there a body here?" — and camera.py uses it as a second opinion
(docs/sensing.md).

The model (``models/pose_detection.tflite``, Google LLC, Apache-2.0, see
``models/README.md``) takes a 224x224 RGB image scaled to [-1, 1] and gives
per SSD anchor a score and a box plus four keypoints, all in input pixels
relative to the anchor centre: keypoint 0 is the mid-hip point, keypoint 1
with it gives the radius of a circle round the whole body, keypoint 2 is the
mid-shoulder point.  The regressed box is round the face (of an all but
fixed size, a fifth of the input); we report the body's
box (the circle's bounding square) and the hip point.  It runs with
``ai-edge-litert``; where that package is missing (Python 3.14, other CPUs)
:func:`load` raises :class:`DetectorUnavailable` and callers run without it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

MODEL = Path(__file__).resolve().parent / "models" / "pose_detection.tflite"
INPUT = 224
STRIDES = (8, 16, 32, 32, 32)


class DetectorUnavailable(RuntimeError):
    """The detector cannot run here (runtime not installed, model missing or unreadable)."""


@dataclass(frozen=True)
class Detection:
    """One person found on a frame, in normalised image coordinates (0..1 of width / height).

    ``box`` (x0, y0, x1, y1) bounds the body circle (centre ``hip``, radius
    ``radius`` in image widths), clipped to the image; ``face`` is the
    model's own face box: its centre is the face's, its size all but fixed
    (a fifth of the 224x224 input, whoever is found; for a body detector
    find, body_detector.py: ``box`` is its box, ``hip`` its centre, ``face``
    the box again);
    ``score`` is 0..1; ``close``: found in a close-up
    (:meth:`PersonDetector.detect_in`), not the whole frame.
    """

    score: float
    box: tuple[float, float, float, float]
    hip: tuple[float, float]
    radius: float
    face: tuple[float, float, float, float]
    close: bool = False


def anchors(size: int = INPUT, strides=STRIDES) -> np.ndarray:
    """SSD anchor centres (N, 2) in 0..1 of the square input, as MediaPipe's pose detector lays them out.

    Consecutive equal strides share one grid; each layer adds two anchors per cell.
    """
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        g = int(math.ceil(size / strides[i]))
        ys, xs = np.mgrid[0:g, 0:g]
        cells = np.stack([(xs.ravel() + 0.5) / g, (ys.ravel() + 0.5) / g], axis=1)
        out.append(np.repeat(cells, 2 * (j - i), axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def interpreter(model_path: Path | str, what: str):
    """A TFLite interpreter with its tensors allocated, on one thread, for ``model_path``; or
    :class:`DetectorUnavailable` naming ``what`` and why not (runtime missing, model unreadable)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise DetectorUnavailable(f"{what} off: the ai-edge-litert runtime is not installed ({e})") from e
    try:
        it = Interpreter(model_path=str(model_path), num_threads=1)
        it.allocate_tensors()
    except (ValueError, RuntimeError, OSError) as e:
        raise DetectorUnavailable(f"{what} off: cannot load {model_path}: {e}") from e
    return it


def load(model_path: Path | str = MODEL, min_score: float = 0.5, body: bool = True) -> "PersonDetector":
    """A :class:`PersonDetector`, with the body detector beside it loaded now (``body``; else on the first
    run that wants it), or :class:`DetectorUnavailable` saying why not.  Without its body model it still
    runs, after a warning."""
    det = PersonDetector(model_path, min_score)
    if body:
        det.load_body()
    return det


class PersonDetector:
    """BlazePose person detector; ``detect(bgr)`` gives the people on one frame.

    With ``body_on``, the body detector's whole-frame finds (score >=
    ``body_score``) of people the pose detector did not find are added; its
    model (``body``, a :class:`body_detector.BodyDetector`) is loaded on the
    first such run unless :func:`load` loaded it.  Close-ups use the pose
    detector alone.  The body detector costs about 35 ms a whole frame (two
    squares); camera.py turns it on at start-up only.

    One interpreter thread: the detector runs beside the camera analysis on
    small machines and must not take every core.  Not thread-safe: one
    caller at a time (camera.py gives the threaded variant its own instance).
    """

    body = None
    body_on = True
    body_score = 0.45
    _body_tried = False

    def __init__(self, model_path: Path | str = MODEL, min_score: float = 0.5, nms_iou: float = 0.3) -> None:
        self._it = interpreter(model_path, "person detector")
        self._in = self._it.get_input_details()[0]["index"]
        outs = self._it.get_output_details()
        self._reg = next(o["index"] for o in outs if o["shape"][-1] > 1)
        self._score = next(o["index"] for o in outs if o["shape"][-1] == 1)
        self._anchors = anchors()
        self.min_score = float(min_score)
        self.nms_iou = float(nms_iou)

    def scores(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
        """Raw model output for a frame: sigmoid scores (N,), regressors (N, 12) and where the frame lies in
        the square input (x, y, width, height in input pixels)."""
        h, w = bgr.shape[:2]
        # Scale first, then letterbox: the same picture as padding first, for a fraction of the pixels.
        s = INPUT / max(h, w)
        sw, sh = max(1, round(w * s)), max(1, round(h * s))
        small = cv2.resize(bgr, (sw, sh), interpolation=cv2.INTER_AREA)
        if small.ndim == 2:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        sq = np.zeros((INPUT, INPUT, 3), np.uint8)
        oy, ox = (INPUT - sh) // 2, (INPUT - sw) // 2
        sq[oy:oy + sh, ox:ox + sw] = small
        x = cv2.cvtColor(sq, cv2.COLOR_BGR2RGB).astype(np.float32) * (1.0 / 127.5) - 1.0
        self._it.set_tensor(self._in, x[None])
        self._it.invoke()
        reg = self._it.get_tensor(self._reg).reshape(len(self._anchors), -1)
        raw = self._it.get_tensor(self._score).reshape(-1)
        p = 1.0 / (1.0 + np.exp(-np.clip(raw, -80.0, 80.0)))
        return p, reg, (ox, oy, sw, sh)

    def load_body(self):
        """The body detector, loaded on the first call (``None``, after one warning, where it cannot be)."""
        if self.body is None and not self._body_tried:
            self._body_tried = True
            from .body_detector import BodyDetector
            try:
                self.body = BodyDetector()
            except DetectorUnavailable as e:
                log.warning("%s; people seen from behind are found by background subtraction alone", e)
        return self.body

    def detect(self, bgr: np.ndarray, min_score: float | None = None) -> tuple[Detection, ...]:
        """People on one BGR frame: the pose detector's, best first (score >= ``min_score``, default the
        detector's own, overlapping faces suppressed), then the body detector's that are not one of them."""
        body = self.load_body() if self.body_on else None
        more = body.detect(bgr, self.body_score) if body is not None else ()
        return _add(self.pose(bgr, min_score), more)

    def pose(self, bgr: np.ndarray, min_score: float | None = None) -> tuple[Detection, ...]:
        """The pose detector's people alone (see :meth:`detect`)."""
        h, w = bgr.shape[:2]
        p, reg, (ox, oy, sw, sh) = self.scores(bgr)
        idx = np.nonzero(p >= (self.min_score if min_score is None else min_score))[0]
        idx = idx[np.argsort(-p[idx], kind="stable")]
        A = self._anchors

        def img(ax, ay, dx, dy):  # input pixels relative to an anchor -> normalised image coordinates
            return ((ax * INPUT + dx - ox) / sw, (ay * INPUT + dy - oy) / sh)

        out: list[Detection] = []
        for i in idx:
            ax, ay = A[i]
            r = reg[i]
            cx, cy = img(ax, ay, r[0], r[1])
            fw, fh = r[2] / sw, r[3] / sh
            face = (cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2)
            if any(iou(face, d.face) > self.nms_iou for d in out):
                continue
            hx, hy = img(ax, ay, r[4], r[5])
            kx, ky = img(ax, ay, r[6], r[7])
            rad = math.hypot((kx - hx) * w, (ky - hy) * h)  # pixels
            box = (max(0.0, hx - rad / w), max(0.0, hy - rad / h), min(1.0, hx + rad / w), min(1.0, hy + rad / h))
            out.append(Detection(float(p[i]), tuple(float(v) for v in box), (float(hx), float(hy)), float(rad / w),
                                 tuple(float(v) for v in face)))
        return tuple(out)

    def detect_in(self, bgr: np.ndarray, region: tuple[int, int, int, int], min_score: float) \
            -> tuple[Detection, ...]:
        """People in one region (x0, y0, x1, y1 in pixels) of a frame, looked at close up, in the whole
        frame's normalised coordinates.  A person a few tenths of the frame's height tall is a few pixels
        in the whole frame's 224x224 input and is not found there; in a close-up they fill it."""
        h, w = bgr.shape[:2]
        x0, y0, x1, y1 = (int(v) for v in region)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return ()
        cw, ch = x1 - x0, y1 - y0

        def fx(u: float) -> float:
            return (x0 + u * cw) / w

        def fy(v: float) -> float:
            return (y0 + v * ch) / h

        # A body circle wider than the close-up is part of someone larger, cut by its edge.
        return tuple(Detection(d.score, (fx(d.box[0]), fy(d.box[1]), fx(d.box[2]), fy(d.box[3])),
                               (fx(d.hip[0]), fy(d.hip[1])), d.radius * cw / w,
                               (fx(d.face[0]), fy(d.face[1]), fx(d.face[2]), fy(d.face[3])), True)
                     for d in self.pose(bgr[y0:y1, x0:x1], min_score) if 2.0 * d.radius < 1.0)


def _add(first, more) -> tuple[Detection, ...]:
    """``first`` and those of ``more`` that are not one of them (boxes overlapping by a third, or one
    mostly inside the other: the two detectors box the same person differently)."""
    out = list(first)
    for d in more:
        if not any(iou(d.box, o.box) > 0.3 or inside(d.box, o.box) for o in out):
            out.append(d)
    return tuple(out)


def inside(a, b) -> bool:
    """Whether the smaller of boxes ``a`` and ``b`` lies more than half inside the other."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return smaller > 0 and ix * iy > 0.5 * smaller
