"""A synthetic camera for the mapping tests: the only faked part (a frame source, the narrowest seam).

It watches a *true* venue -- where the LEDs really hang and how they are really
wired -- and sees exactly what the controllers receive: loopback receivers on
OS-chosen ports decode the Art-Net / sACN / DDP packets the venue's outputs
send, the true patch turns their bytes into LED levels, and each LED is drawn
through a known homography with radial lens distortion (k1), blurred, with
room light, sensor noise (sigma grey levels) and some LEDs occluded.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from installation.mapping.geometry import Lens
from installation.venue import Venue


def project(H: np.ndarray, lens: Lens, canvas: np.ndarray) -> np.ndarray:
    """Canvas (M, 2) -> camera pixels through homography ``H`` (canvas -> undistorted pixels) and ``lens``."""
    c = np.asarray(canvas, np.float64)
    p = np.c_[c, np.ones(len(c))] @ H.T
    return lens.distort(p[:, :2] / p[:, 2:3])


def default_homography(size: tuple[int, int], aspect: float) -> np.ndarray:
    """Canvas -> undistorted pixels: the canvas filling most of the frame, seen a little from the left
    and from below (a camera on a tripod off-centre), so the homography is a real perspective."""
    w, h = size
    ch = 0.86 * h
    cw = min(ch * aspect, 0.9 * w)
    cx, cy = w / 2.0, h / 2.0
    dst = np.array([[cx - cw / 2 + 18, cy - ch / 2 + 10], [cx + cw / 2 - 6, cy - ch / 2 - 8],
                    [cx + cw / 2 + 4, cy + ch / 2 + 6], [cx - cw / 2 + 2, cy + ch / 2 - 12]], np.float32)
    src = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    return cv2.getPerspectiveTransform(src, dst).astype(np.float64)


class SyntheticCamera:
    """``grab()`` -> (H, W, 3) uint8 BGR image of the true venue's LEDs as the receivers last heard them."""

    def __init__(self, true_venue: Venue, receivers: dict, size=(1280, 720), k1: float = -0.1,
                 noise: float = 4.0, blur: float = 1.2, occluded: np.ndarray | None = None,
                 gain: float = 16000.0, seed: int = 7, H: np.ndarray | None = None, reflection: float = 0.0):
        self.venue = true_venue
        self.receivers = receivers          # output name -> DmxReceiver
        self.size = tuple(size)
        self.lens = Lens(k1, self.size)
        lay = true_venue.layout
        aspect = lay.canvas_size[0] / lay.canvas_size[1] if lay.canvas_size else 16 / 9
        self.H = default_homography(self.size, aspect) if H is None else H
        self.px = project(self.H, self.lens, lay.positions)
        n = lay.count
        self.occluded = np.zeros(n, bool) if occluded is None else occluded
        # gain: an all-on LED (drive ~0.085) peaks near 150 grey levels, as with a well-set exposure
        self.noise, self.blur, self.gain = noise, blur, gain
        self.rng = np.random.default_rng(seed)
        w, h = self.size
        yy, xx = np.mgrid[0:h, 0:w]
        # a dim wall, brighter toward one side, with some texture: room light the dark frame cancels
        self.ambient = (18 + 10 * xx / w + 3 * np.sin(xx / 37.0) * np.cos(yy / 23.0)).astype(np.float32)
        # a camera's primaries are not pure: 6 % of each channel leaks into the others
        self.mix = np.full((3, 3), 0.06) + np.eye(3) * 0.88
        self.room: list[np.ndarray] | None = None   # real footage behind the LEDs, one frame per grab
        # a glossy ledge just below the lowest LEDs mirrors them, dimmer
        self.reflection = reflection
        floor = float(self.px[:, 1].max()) + 0.02 * self.size[1]
        self.px_mirror = np.c_[self.px[:, 0], 2 * floor - self.px[:, 1]]
        self.grabs = 0
        self.grab_s = 0.0                   # time spent rendering (not part of mapping proper)

    def use_room(self, clip: str, brightness: float = 0.35) -> None:
        """Put real footage behind the LEDs (scaled to the image, dimmed as under a low exposure); it plays
        on, one clip frame per exposure, so people in it move while the patterns change."""
        cap = cv2.VideoCapture(clip)
        frames = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(cv2.resize(f, self.size, interpolation=cv2.INTER_LINEAR).astype(np.float32) * brightness)
        cap.release()
        if not frames:
            raise ValueError(f"cannot read {clip}")
        self.room = frames

    def canvas_corners_px(self) -> np.ndarray:
        """Where the canvas corners TL, TR, BR, BL appear in the image (what an installer would mark)."""
        return project(self.H, self.lens, np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64))

    def levels(self) -> np.ndarray:
        """(N, 3) LED levels 0..1 from the newest packets, through the TRUE patch (W folded into R, G, B)."""
        pm = self.venue.patch
        parts = []
        for c in pm.controllers:
            buf = np.zeros(c.size, np.uint8)
            latest = self.receivers[c.name].latest()
            for addr, off, length in c.spans:
                if c.protocol == "ddp":
                    for (proto, o), data in latest.items():
                        if proto == "ddp" and addr <= o < addr + length:
                            k = min(len(data), addr + length - o)
                            buf[off + o - addr: off + o - addr + k] = np.frombuffer(data[:k], np.uint8)
                else:
                    data = latest.get((c.protocol, addr))
                    if data is not None:
                        k = min(len(data), length)
                        buf[off:off + k] = np.frombuffer(data[:k], np.uint8)
            parts.append(buf)
        allb = np.concatenate(parts + [np.zeros(1, np.uint8)])
        dest = np.where(pm.dest >= 0, pm.dest, len(allb) - 1)
        v = allb[dest].astype(np.float32) / 255.0          # (N, 4) R, G, B, W
        return np.clip(v[:, :3] + v[:, 3:4], 0.0, 1.0)

    def grab(self) -> np.ndarray:
        """One exposure."""
        t0 = time.perf_counter()
        try:
            return self._render()
        finally:
            self.grabs += 1
            self.grab_s += time.perf_counter() - t0

    def _render(self) -> np.ndarray:
        w, h = self.size
        lv = self.levels() @ self.mix.T
        vis = ~self.occluded & (lv.max(axis=1) > 0)
        img = np.zeros((h, w, 3), np.float32)
        p = self.px[vis]
        col = lv[vis][:, ::-1] * self.gain                  # RGB -> BGR
        if self.reflection > 0:
            p = np.concatenate([p, self.px_mirror[vis]])
            col = np.concatenate([col, col * self.reflection])
        x0 = np.floor(p[:, 0]).astype(int)
        y0 = np.floor(p[:, 1]).astype(int)
        fx, fy = p[:, 0] - x0, p[:, 1] - y0
        for dx, dy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            xi, yi = x0 + dx, y0 + dy
            ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            np.add.at(img, (yi[ok], xi[ok]), col[ok] * wt[ok, None])
        img = cv2.GaussianBlur(img, (0, 0), self.blur)   # optics + the LED's own size; sum kept
        if self.room:
            img += self.room[self.grabs % len(self.room)]
        else:
            img += self.ambient[:, :, None]
        noise = self.rng.standard_normal(img.shape, dtype=np.float32)
        noise *= np.float32(self.noise)
        img += noise
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)

    def close(self) -> None:
        """Nothing to release (the receivers belong to the test)."""
