"""Camera frames of a mapping run -> where each LED is in the image.

Per pixel: the white frame minus the dark one is the LED light there; each
Gray-code bit is read by comparing the bit's frame with its inverse (no
threshold to tune, and room light cancels).  A pixel is kept only if every bit
is clear -- at least ``min_contrast`` of its light differs between a bit and
its inverse -- so pixels lit by two neighbouring LEDs, whose bits disagree,
drop out instead of being read as a third LED; and only if the room's light
there did not change between a bit and its inverse (at an LED's pixel every
pair adds up to the same sum; people walking behind the LEDs move one pair's
sum, and could flip the bit on the dim rim of a spot, which would then read as
another LED).  The pixels of one index make that LED's spot -- around its
brightest pixel, so a dimmer reflection with the same code elsewhere does not
pull it -- and its position is their light-weighted centroid.  Spots that are
too small, too faint or torn apart are not LEDs (reflections, noise): such an
index is reported missing, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .patterns import bits_for, gray_to_binary


@dataclass
class Detections:
    """LEDs found in the camera image.

    ``index`` (K,) LED indices; ``px`` (K, 2) image positions (x right, y down, pixel centres at
    integers); ``light`` (K,) summed white-minus-dark light of the spot; ``pixels`` (K,) its size;
    ``rgb`` (K, 3, 3): camera response [sent colour R/G/B][camera R/G/B] of each spot.
    ``image_size`` (width, height); ``ambiguous``: LEDs whose code showed in two places about
    equally bright (a reflection as bright as the LED): not placed.
    """

    index: np.ndarray
    px: np.ndarray
    light: np.ndarray
    pixels: np.ndarray
    rgb: np.ndarray
    image_size: tuple[int, int]
    n: int
    ambiguous: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # seen in two places

    def found_mask(self) -> np.ndarray:
        """(n,) bool: which LEDs were found."""
        m = np.zeros(self.n, bool)
        m[self.index] = True
        return m

    def position_of(self) -> np.ndarray:
        """(n, 2) image positions, NaN for LEDs not found."""
        p = np.full((self.n, 2), np.nan)
        p[self.index] = self.px
        return p


def _grey(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32).mean(axis=2) if img.ndim == 3 else img.astype(np.float32)


def decode(frames: dict, n: int, min_contrast: float = 0.35, min_light: float | None = None,
           min_share: float = 0.25, max_stray: float = 1.25) -> Detections:
    """Find LEDs 0..n-1 in ``frames``: {"dark", "white", "red", "green", "blue": image,
    ("bit", b, inverse): image} of float or uint8 BGR images of one size.

    ``min_light``: least white-minus-dark grey level a pixel needs (default: from the dark frame's
    noise); ``min_share``: a spot with less light than this share of the median spot is not an LED;
    ``max_stray``: most room light, in units of the pixel's LED light, that may change between a bit
    and its inverse (judged by their sum against the median of all pairs' sums) before the pixel is
    left out.
    """
    dark = frames["dark"].astype(np.float32)
    h, w = dark.shape[:2]
    d = _grey(dark)
    amp = _grey(frames["white"]) - d
    if min_light is None:
        # noise of a grey level, from pixel-to-pixel differences of the dark frame (robust MAD)
        diff = np.diff(d, axis=1)
        sigma = 1.4826 * float(np.median(np.abs(diff - np.median(diff)))) / np.sqrt(2.0)
        min_light = max(6.0 * sigma, 8.0)
    # Only pixels with LED light are read (a few per cent of the picture): per pixel values from here on.
    ys, xs = np.nonzero(amp > min_light)
    a = amp[ys, xs]
    nbits = bits_for(n)
    keep = np.ones(ys.size, bool)
    code = np.zeros(ys.size, np.int64)
    sums = np.empty((nbits + 1, ys.size), np.float32)
    sums[nbits] = _grey(frames["white"])[ys, xs] + d[ys, xs]
    for b in range(nbits):
        p = _grey(frames[("bit", b, False)])[ys, xs]
        q = _grey(frames[("bit", b, True)])[ys, xs]
        delta = p - q
        keep &= np.abs(delta) >= min_contrast * a
        code |= (delta > 0).astype(np.int64) << b
        sums[b] = p + q
    # A bit and its inverse light complementary halves of the LEDs, so at an LED's pixel every pair adds
    # up to the same sum (white + dark, while the room's light holds).  Room light that changed in one
    # frame of a pair (someone walking behind the LEDs) moves that pair's sum away from the median of
    # all; to flip the bit it must outweigh the LED's light by 1 + min_contrast, so a pair off by more
    # than max_stray (< 1.35) times the LED's light (plus the noise) is not read.  Light that changed
    # before the codes and stayed (a lamp switched on after the white frame) moves every pair alike.
    ref = np.median(sums, axis=0)
    keep &= (np.abs(sums[:nbits] - ref) <= max_stray * a + 0.5 * min_light).all(axis=0)
    ys, xs, code = ys[keep], xs[keep], code[keep]
    idx = gray_to_binary(code)
    ok = idx < n
    ys, xs, idx = ys[ok], xs[ok], idx[ok]
    wgt = amp[ys, xs].astype(np.float64)

    def centroids(sel):
        s = np.bincount(idx[sel], wgt[sel], minlength=n)
        cx = np.bincount(idx[sel], wgt[sel] * xs[sel], minlength=n)
        cy = np.bincount(idx[sel], wgt[sel] * ys[sel], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            return s, cx / s, cy / s

    s_all = np.bincount(idx, wgt, minlength=n)
    # each index's spot is around its brightest pixel; light with the same code elsewhere is a
    # reflection (or a stray): left out, and if it is nearly as bright, the LED is ambiguous
    order = np.lexsort((-wgt, idx))
    head = order[np.r_[True, idx[order][1:] != idx[order][:-1]]] if order.size else order
    sx = np.full(n, np.nan)
    sy = np.full(n, np.nan)
    sx[idx[head]] = xs[head]
    sy[idx[head]] = ys[head]
    r2 = (xs - sx[idx]) ** 2 + (ys - sy[idx]) ** 2
    close = r2 <= 36.0
    m0 = np.bincount(idx[close], wgt[close], minlength=n)
    m2 = np.bincount(idx[close], wgt[close] * r2[close], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.sqrt(m2 / m0)
    typical = float(np.nanmedian(spread[m0 > 0])) if np.any(m0 > 0) else 1.0
    near = r2 <= (3.0 * max(typical, 1.0)) ** 2
    s, cx, cy = centroids(near)
    ambiguous = np.flatnonzero((s > 0) & (s_all - s > 0.5 * s))
    s[ambiguous] = 0.0
    count = np.bincount(idx[near], minlength=n)
    found = np.flatnonzero(s > 0)
    if found.size:
        med = float(np.median(s[found]))
        found = found[(s[found] >= min_share * med) & (count[found] >= 2)]
    # colour response of each spot: sum over its pixels of (colour frame - dark), per camera channel
    rgb = np.zeros((found.size, 3, 3))
    if found.size:
        sel = near & np.isin(idx, found)
        pos = np.searchsorted(found, idx[sel])
        for ci, name in enumerate(("red", "green", "blue")):
            if name not in frames:
                continue
            img = frames[name].astype(np.float32) - dark
            for ch in range(3):
                rgb[:, ci, 2 - ch] = np.bincount(pos, img[ys[sel], xs[sel], ch], minlength=found.size)  # BGR -> RGB
    return Detections(index=found, px=np.stack([cx[found], cy[found]], axis=1) if found.size else np.zeros((0, 2)),
                      light=s[found], pixels=count[found], rgb=rgb, image_size=(w, h), n=n, ambiguous=ambiguous)
