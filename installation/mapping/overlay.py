"""Pictures for the installer: the camera view with every found LED and its index, and the dry-run patterns."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from installation.fixtures.layout import Layout

from .decode import Detections
from .geometry import CameraModel


def camera_view_png(path: Path, white: np.ndarray, dark: np.ndarray, det: Detections, model: CameraModel | None,
                    layout: Layout, missing_expected: np.ndarray | None = None) -> Path:
    """Write the camera's all-on frame with each found LED circled and numbered (green), where each missing LED
    should be after the old layout (red x), and the canvas outline (yellow)."""
    light = np.clip(white.astype(np.float32) - dark.astype(np.float32), 0, 255)
    base = np.clip(dark.astype(np.float32) * 1.5 + light, 0, 255).astype(np.uint8)
    big = max(base.shape[:2])
    scale = 3 if big <= 2000 else 2 if big <= 3000 else 1     # room for the numbers
    img = cv2.resize(base, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    if model is not None:
        t = np.linspace(0.0, 1.0, 60)
        edge = np.concatenate([np.c_[t, 0 * t], np.c_[1 + 0 * t, t], np.c_[1 - t, 1 + 0 * t], np.c_[0 * t, 1 - t]])
        pts = np.round(model.to_image(edge) * scale).astype(np.int32)
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], True, (0, 220, 255), 1, cv2.LINE_AA)
    for i, (x, y) in zip(det.index, det.px):
        c = (int(round(x * scale)), int(round(y * scale)))
        cv2.circle(img, c, 2 * scale, (60, 255, 60), 1, cv2.LINE_AA)
        dy = -3 * scale if i % 2 == 0 else 7 * scale       # neighbours' numbers above and below, not on top
        cv2.putText(img, str(int(i)), (c[0] - 2 * scale, c[1] + dy), cv2.FONT_HERSHEY_PLAIN, 0.3 * scale,
                    (120, 255, 120), 1, cv2.LINE_AA)
    if model is not None and missing_expected is not None and len(missing_expected):
        px = model.to_image(layout.positions[missing_expected].astype(np.float64)) * scale
        for i, (x, y) in zip(missing_expected, px):
            if np.isfinite(x) and np.isfinite(y):
                c = (int(round(x)), int(round(y)))
                cv2.drawMarker(img, c, (40, 40, 255), cv2.MARKER_TILTED_CROSS, 3 * scale, 1)
                dy = -3 * scale if i % 2 == 0 else 7 * scale
                cv2.putText(img, str(int(i)), (c[0] - 2 * scale, c[1] + dy), cv2.FONT_HERSHEY_PLAIN, 0.3 * scale,
                            (80, 80, 255), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"cannot write {path}")
    return path


def patterns_png(path: Path, layout: Layout, patterns, cell=(320, 180), columns: int = 6) -> Path:
    """Every pattern drawn at the layout's LED positions, one small canvas each, in a grid (``--dry-run``)."""
    cw, ch = cell
    rows = -(-len(patterns) // columns)
    sheet = np.full((rows * (ch + 18), columns * cw, 3), 24, np.uint8)
    px = np.round(layout.positions * [cw - 1, ch - 1]).astype(int)
    for k, p in enumerate(patterns):
        r, c = divmod(k, columns)
        y0, x0 = r * (ch + 18) + 18, c * cw
        tile = sheet[y0:y0 + ch, x0:x0 + cw]
        tile[:] = 0
        col = np.clip(p.levels / max(float(p.levels.max()), 1e-6), 0, 1)[:, ::-1] * 255
        for (x, y), v in zip(px, col):
            if v.max() > 0:
                cv2.circle(tile, (int(x), int(y)), 1, tuple(int(a) for a in v), -1)
        cv2.putText(sheet, f"{k + 1}. {p.name}", (x0 + 4, y0 - 5), cv2.FONT_HERSHEY_PLAIN, 1.0, (230, 230, 230), 1)
    if not cv2.imwrite(str(path), sheet):
        raise OSError(f"cannot write {path}")
    return path


def snapshot_png(path: Path, frame: np.ndarray, step: int = 100) -> Path:
    """A camera frame with a labelled pixel grid, to read the canvas corners off for ``--corners``."""
    img = frame.copy()
    h, w = img.shape[:2]
    for x in range(0, w, step):
        cv2.line(img, (x, 0), (x, h - 1), (0, 160, 255), 1)
        cv2.putText(img, str(x), (x + 2, 12), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 200, 255), 1)
    for y in range(0, h, step):
        cv2.line(img, (0, y), (w - 1, y), (0, 160, 255), 1)
        cv2.putText(img, str(y), (2, y + 12), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 200, 255), 1)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"cannot write {path}")
    return path
