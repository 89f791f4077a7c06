"""Body detector: an SSD MobileNetV2 (Open Images v4) that finds whole people, from any side, on one frame.

The pose detector (detector.py) is anchored on a face: it misses people seen
from behind, as gallery visitors facing the work often are, and visitors
standing still when the camera starts are found by nothing else.  This
model scores boxes for 23 Open Images classes; only "Person" is read.

The model (``models/object_detection_ssd_mobilenetv2_oidv4_fp16.tflite``,
Google LLC, Apache-2.0, see ``models/README.md``) takes a 300x300 RGB image
scaled to [-1, 1] and gives, per anchor of the TensorFlow Object Detection
API's SSD layout (6 layers, scales 0.2-0.95), box offsets (y, x, h, w with
scales 10, 10, 5, 5) and per-class logits.  A frame wider than it is tall is
looked at as overlapping squares (squeezing 16:9 into a square makes people
too thin to score).  Its scores are lower than the pose detector's: people
score 0.4-0.7, people-free rooms, tables, shelves and products 0.1-0.25
(docs/sensing.md); a car seen from above 0.40, a motion-blurred bottle 0.52.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from .detector import Detection, DetectorUnavailable, inside, interpreter, iou

MODEL = Path(__file__).resolve().parent / "models" / "object_detection_ssd_mobilenetv2_oidv4_fp16.tflite"
LABELS = MODEL.parent / "object_detection_oidv4_labelmap.txt"
INPUT = 300
#: the squares a wide frame is looked at in overlap by at least this share of their side
OVERLAP = 0.2


def ssd_anchors(size: int = INPUT, layers: int = 6, lo: float = 0.2, hi: float = 0.95) -> np.ndarray:
    """Anchor boxes (N, 4: centre x, centre y, width, height in 0..1 of the square input) in the TensorFlow
    Object Detection API's SSD order: per layer, per cell (row-major), per aspect ratio; the lowest layer
    has three boxes a cell (a small square and two at aspect 2 and 1/2), the others six."""
    scales = [lo + (hi - lo) * i / (layers - 1) for i in range(layers)] + [1.0]
    out = []
    for i in range(layers):
        g = int(math.ceil(size / (16 * 2 ** i)))
        if i == 0:
            specs = [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
        else:
            specs = [(scales[i], a) for a in (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)]
            specs.append((math.sqrt(scales[i] * scales[i + 1]), 1.0))
        wh = np.array([(s * math.sqrt(a), s / math.sqrt(a)) for s, a in specs], np.float32)
        ys, xs = np.mgrid[0:g, 0:g]
        c = np.stack([(xs.ravel() + 0.5) / g, (ys.ravel() + 0.5) / g], axis=1).astype(np.float32)
        out.append(np.concatenate([np.repeat(c, len(specs), axis=0), np.tile(wh, (g * g, 1))], axis=1))
    return np.concatenate(out)


def squares(w: int, h: int) -> list[tuple[int, int, int]]:
    """The squares ``(x, y, side)`` a ``w`` x ``h`` frame is looked at in: one if it is square, else as few
    as cover it with at least ``OVERLAP`` of a side shared by neighbours."""
    side = min(w, h)
    extra = max(w, h) - side
    n = 1 if extra == 0 else 1 + int(math.ceil(extra / ((1.0 - OVERLAP) * side)))
    offs = [round(extra * k / (n - 1)) for k in range(n)] if n > 1 else [0]
    return [(o, 0, side) if w >= h else (0, o, side) for o in offs]


class BodyDetector:
    """SSD body detector; ``detect(bgr)`` gives the people on one frame (whole-frame finds: ``close`` False).

    One interpreter thread, not thread-safe (as :class:`detector.PersonDetector`).
    """

    def __init__(self, model_path: Path | str = MODEL, min_score: float = 0.45, nms_iou: float = 0.4) -> None:
        self._it = interpreter(model_path, "body detector")
        try:
            labels = Path(model_path).with_name(LABELS.name).read_text(encoding="utf-8").split("\n")
            self._person = labels.index("Person")
        except (ValueError, OSError) as e:
            raise DetectorUnavailable(f"body detector off: cannot read its labels beside {model_path}: {e}") from e
        self._in = self._it.get_input_details()[0]["index"]
        outs = self._it.get_output_details()
        self._box = next(o["index"] for o in outs if o["shape"][-1] == 4)
        self._cls = next(o["index"] for o in outs if o["shape"][-1] != 4)
        self._anchors = ssd_anchors()
        self.min_score = float(min_score)
        self.nms_iou = float(nms_iou)

    def scores(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person scores (N,) and boxes (N, 4: x0, y0, x1, y1 in 0..1 of ``bgr``) for one picture, which
        the model sees squeezed to a square (callers hand it squares)."""
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        small = cv2.resize(bgr, (INPUT, INPUT), interpolation=cv2.INTER_AREA)
        x = cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32) * (1.0 / 127.5) - 1.0
        self._it.set_tensor(self._in, x[None])
        self._it.invoke()
        enc = self._it.get_tensor(self._box)[0]
        logit = self._it.get_tensor(self._cls)[0][:, self._person]
        p = 1.0 / (1.0 + np.exp(-np.clip(logit, -80.0, 80.0)))
        A = self._anchors
        cy = enc[:, 0] * 0.1 * A[:, 3] + A[:, 1]
        cx = enc[:, 1] * 0.1 * A[:, 2] + A[:, 0]
        bh = np.exp(np.clip(enc[:, 2] * 0.2, -10.0, 10.0)) * A[:, 3]
        bw = np.exp(np.clip(enc[:, 3] * 0.2, -10.0, 10.0)) * A[:, 2]
        return p, np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)

    def _find(self, bgr: np.ndarray, parts, min_score: float) -> tuple[Detection, ...]:
        """Finds in each part ``(x, y, width, height)`` of ``bgr`` (pixels), in its normalised coordinates,
        best first, overlapping boxes suppressed."""
        h, w = bgr.shape[:2]
        cands = []
        for x0, y0, pw, ph in parts:
            p, b = self.scores(bgr[y0:y0 + ph, x0:x0 + pw])
            for i in np.nonzero(p >= min_score)[0]:
                bx = ((x0 + b[i, 0] * pw) / w, (y0 + b[i, 1] * ph) / h, (x0 + b[i, 2] * pw) / w,
                      (y0 + b[i, 3] * ph) / h)
                cands.append((float(p[i]), tuple(float(min(1.0, max(0.0, v))) for v in bx)))
        cands.sort(key=lambda c: -c[0])
        out: list[Detection] = []
        for s, box in cands:
            # A person across the squares' seam is found whole in one square and cut in the other: the cut
            # box lies mostly inside the whole one (on the one-by-one clip 44 of 1003 frames had both).
            if box[2] - box[0] <= 0 or box[3] - box[1] <= 0 or any(
                    iou(box, d.box) > self.nms_iou or inside(box, d.box) for d in out):
                continue
            hip = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            rad = 0.5 * max((box[2] - box[0]) * w, (box[3] - box[1]) * h) / w
            out.append(Detection(s, box, hip, rad, box))
        return tuple(out)

    def detect(self, bgr: np.ndarray, min_score: float | None = None) -> tuple[Detection, ...]:
        """People on one BGR frame (score >= ``min_score``, default the detector's own)."""
        h, w = bgr.shape[:2]
        parts = [(x, y, s, s) for x, y, s in squares(w, h)]
        return self._find(bgr, parts, self.min_score if min_score is None else min_score)
