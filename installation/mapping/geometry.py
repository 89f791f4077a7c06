"""Camera image <-> canvas: radial lens distortion, the homography, and the presence camera's ROI.

Lens model (one coefficient, about the image centre): a point at undistorted
normalised position ``p`` appears at ``p * (1 + k1 * |p|^2)``, where
normalised means ``(pixel - centre) / (half the image diagonal)``.  Barrel
distortion has k1 < 0.  (An OpenCV calibration's k1 converts as
``k1 * (half diagonal / fx)^2``.)

k1 is estimated by the plumb-line method: the LEDs of straight strips and of
matrix rows and columns must lie on straight lines once undistorted.  The
homography then maps undistorted pixels to canvas coordinates, fixed by four
or more anchors: canvas corners the user marked, or LEDs whose canvas place is
known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

CANVAS_CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # TL, TR, BR, BL


@dataclass(frozen=True)
class Lens:
    """Radial distortion ``k1`` of an image of ``size`` (width, height) pixels."""

    k1: float
    size: tuple[int, int]

    @property
    def centre(self) -> np.ndarray:
        """The distortion centre: the middle of the image (pixel centres at integers)."""
        return (np.asarray(self.size, np.float64) - 1.0) / 2.0

    @property
    def scale(self) -> float:
        """Half the image diagonal: the unit of the normalised radius."""
        return float(np.hypot(*self.size)) / 2.0

    @property
    def fold(self) -> float:
        """Normalised radius past which a barrel lens (k1 < 0) folds the picture back inwards: r (1 + k1 r^2)
        is largest at r = 1 / sqrt(-3 k1), where it is 2/3 of that; nothing there has an undistorted place
        (inf for k1 >= 0)."""
        return 2.0 / 3.0 / math.sqrt(-3.0 * self.k1) if self.k1 < 0 else math.inf

    def distort(self, px: np.ndarray) -> np.ndarray:
        """Undistorted pixel positions (M, 2) -> where the camera shows them."""
        p = (np.asarray(px, np.float64) - self.centre) / self.scale
        r2 = (p ** 2).sum(axis=-1, keepdims=True)
        return p * (1.0 + self.k1 * r2) * self.scale + self.centre

    def undistort(self, px: np.ndarray) -> np.ndarray:
        """Camera pixel positions (M, 2) -> undistorted (fixed-point iteration; exact to ~1e-6 px)."""
        q = (np.asarray(px, np.float64) - self.centre) / self.scale
        p = q.copy()
        for _ in range(20):
            r2 = (p ** 2).sum(axis=-1, keepdims=True)
            p = q / (1.0 + self.k1 * r2)
        return p * self.scale + self.centre


def _line_residuals(pts: np.ndarray) -> np.ndarray:
    c = pts - pts.mean(axis=0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    return c @ vt[1]


def estimate_k1(lines: list[np.ndarray], size: tuple[int, int], lo: float = -0.6, hi: float = 0.6) -> float | None:
    """The k1 that makes ``lines`` (each (M, 2) camera pixels of LEDs on one straight line) straightest.

    Returns None without at least two lines of four points.  Points far off their line (a wrong
    detection) are left out first.
    """
    clean = []
    for pts in lines:
        pts = np.asarray(pts, np.float64)
        if len(pts) < 4:
            continue
        for _ in range(2):
            res = np.abs(_line_residuals(pts))
            med = float(np.median(res))
            keep = res <= max(5.0 * med, 3.0)
            if keep.all() or keep.sum() < 4:
                break
            pts = pts[keep]
        clean.append(pts)
    if len(clean) < 2:
        return None

    def cost(k1: float) -> float:
        lens = Lens(k1, size)
        return float(sum(np.sum(_line_residuals(lens.undistort(p)) ** 2) for p in clean))

    grid = np.linspace(lo, hi, 49)
    costs = [cost(k) for k in grid]
    i = int(np.argmin(costs))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    g = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = cost(c), cost(d)
    for _ in range(40):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = cost(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = cost(d)
    return float((a + b) / 2.0)


@dataclass(frozen=True)
class CameraModel:
    """Lens plus the homography ``H`` from undistorted camera pixels to canvas (x, y in 0..1)."""

    lens: Lens
    H: np.ndarray

    def to_canvas(self, px: np.ndarray) -> np.ndarray:
        """Camera pixels (M, 2) -> canvas positions."""
        u = self.lens.undistort(px)
        p = np.c_[u, np.ones(len(u))] @ self.H.T
        return p[:, :2] / p[:, 2:3]

    def to_image(self, canvas: np.ndarray) -> np.ndarray:
        """Canvas positions (M, 2) -> camera pixels (where the camera sees them)."""
        Hi = np.linalg.inv(self.H)
        c = np.asarray(canvas, np.float64)
        p = np.c_[c, np.ones(len(c))] @ Hi.T
        return self.lens.distort(p[:, :2] / p[:, 2:3])

    def roi(self) -> list[float]:
        """The presence camera's ROI: the canvas corners TL, TR, BR, BL in 0..1 of the image's width/height,
        as ``sensing/camera/roi/x0, y0, ... x3, y3``."""
        px = self.to_image(CANVAS_CORNERS)
        w, h = self.lens.size
        norm = (px + 0.5) / np.array([w, h], np.float64)
        return [round(float(v), 6) for v in norm.reshape(-1)]


def fit_homography(image_px: np.ndarray, canvas: np.ndarray, lens: Lens, robust: bool = False):
    """Homography from undistorted ``image_px`` to ``canvas`` (>= 4 pairs); returns (H, inlier mask).

    ``robust``: RANSAC (a reference layout with some wrong positions); else least squares over all.
    """
    src = lens.undistort(np.asarray(image_px, np.float64)).astype(np.float64)
    dst = np.asarray(canvas, np.float64)
    if len(src) < 4:
        raise ValueError(f"a homography needs at least 4 anchor points, got {len(src)}")
    if robust:
        scale = float(np.hypot(*lens.size))
        H, mask = cv2.findHomography(src, dst, cv2.RANSAC, ransacReprojThreshold=0.01, maxIters=5000,
                                     confidence=0.999)
        if H is None:
            raise ValueError("could not fit the camera view to the layout (too few consistent LEDs)")
        inl = mask.ravel().astype(bool)
        H, _ = cv2.findHomography(src[inl], dst[inl], 0)
        del scale
    else:
        H, _ = cv2.findHomography(src, dst, 0)
        inl = np.ones(len(src), bool)
    if H is None or not np.all(np.isfinite(H)):
        raise ValueError("the anchor points are degenerate (three on one line, or two the same)")
    return H / H[2, 2], inl
