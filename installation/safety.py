"""Photosensitive flash limiter: the last stage before light leaves the building.

The installation fills the visitor's visual field, so it keeps to WCAG 2.3.1
(three flashes) and ITU-R BT.1702 / Ofcom: **no more than three general
flashes and no more than three red flashes in any one second**.

Definitions used (WCAG 2.x "general flash and red flash thresholds"):

* relative luminance ``L = 0.2126 R + 0.7152 G + 0.0722 B`` of linear light;
* a *transition* is a change between a local extreme and the current value:
  general: ``|dL| >= 0.10`` where the darker state is below 0.80;
  red: ``|d(max(0, R-G-B) * 320)| > 20`` where either state is saturated red,
  ``R / (R+G+B) >= 0.8`` (linear R, G, B);
* a flash is a pair of opposing transitions, so three flashes are six
  transitions.  The limiter allows at most **six transitions of each kind in
  any sliding 1 s window** (time is the sum of the ``dt`` given to it -- no wall
  clock, so renders are deterministic).

Area.  WCAG counts a flash only when it covers at least 25 % of a 10-degree
field of view.  We treat the whole installation as the visual field and take
**25 % of its area** (the ``weights``) as the threshold.  Two detectors run:

1. per element (LED or preview cell): each has its own transition history; at
   any time the elements that flashed more than three times in the last second
   must cover less than 25 % of the area.  This catches counter-phase patterns
   (a chequerboard strobe) whose average luminance never moves;
2. the whole field: the area-weighted mean colour gets its own history and
   budget.  This catches a flash made of many small areas taking turns, and is
   deliberately stricter than the 25 % rule for hard strobes covering 10-25 %
   of the field (a full-swing strobe over 10 % of the area moves the mean by
   0.1).  A strobe over 5 % of the area passes.

When a change would spend a seventh transition (per kind, per element with the
area rule, or for the field), the change is slowed: the element is blended
toward the last emitted frame just enough that its signal stays within half
the threshold of its last extreme (``HOLD_FRACTION``), so the opposing
transition cannot happen.  As the window slides, budget frees and the content
comes through again.  A final check holds the whole previous frame if any
violation would remain.  Frames that break no rule come out bit-for-bit
unchanged.

There is deliberately **no parameter, flag or preset key** for this module:
nothing reachable from a preset or an OSC message can switch it off or loosen
it.  The engine applies :class:`FlashLimiter` to the final corrected LED frame
and :class:`FrameFlashLimiter` to the tapestry read back for preview/video.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

log = logging.getLogger(__name__)

WINDOW_S = 1.0
# a transition up to 1.1 s old still counts: frames reach the lights with jitter (hand-off and sender
# threads, the network), and a budget spent exactly on the 1 s edge would be broken by a few ms of it
_WINDOW_SLACK_S = 0.1
MAX_TRANSITIONS = 6          # three flashes = three pairs of opposing transitions
GENERAL_DELTA = 0.10         # relative luminance, fraction of white
DARK_LIMIT = 0.80            # the darker state must be below this for a general flash
RED_DELTA = 20.0 / 320.0     # (R-G-B) x 320 > 20  <=>  d(R-G-B) > 0.0625
RED_SATURATION = 0.80        # R / (R+G+B)
FLASH_AREA = 0.25            # fraction of the installation's area
HOLD_FRACTION = 0.5          # a held element may still move this fraction of the threshold

_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
_EPS = 1e-6
_NONE = np.zeros(0, np.int64)


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """Decode sRGB-encoded values 0..1 to linear light (IEC 61966-2-1), float32."""
    v = np.asarray(v, dtype=np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """Encode linear light 0..1 as sRGB values 0..1, float32."""
    v = np.clip(np.asarray(v, dtype=np.float32), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1.0 / 2.4) - 0.055).astype(np.float32)


# 8-bit sRGB code -> linear, and the linear boundaries half-way between codes (for exact re-encoding).
_SRGB8_TO_LINEAR = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)
_SRGB8_BOUNDS = srgb_to_linear((np.arange(255, dtype=np.float32) + 0.5) / 255.0)
# linear light quantised to 16 bits -> nearest 8-bit sRGB code (finer than one code step everywhere)
_LINEAR16_TO_SRGB8 = np.searchsorted(_SRGB8_BOUNDS, np.arange(65536, dtype=np.float32) / 65535.0).astype(np.uint8)


def _encode_srgb8(lin: np.ndarray) -> np.ndarray:
    return _LINEAR16_TO_SRGB8[(np.clip(lin, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)]


_RED = np.array([1.0, -1.0, -1.0], dtype=np.float32)
_SUM = np.ones(3, dtype=np.float32)
_SAT_RAW = 2.0 * RED_SATURATION - 1.0   # R >= 0.8 (R+G+B)  <=>  R-G-B >= 0.6 (R+G+B)


def _signals(lum: np.ndarray, raw: np.ndarray, total: np.ndarray) -> tuple:
    """(luminance, red signal max(0, R-G-B), raw R-G-B, saturated-red flag) from the three measures."""
    sat = (total > _EPS) & (raw >= np.float32(_SAT_RAW) * total)
    return lum, np.maximum(raw, 0.0), raw, sat


_PLANAR = np.stack([_LUMA, _RED, _SUM])


def _planar(lin: np.ndarray) -> np.ndarray:
    """(3, N) relative luminance, R-G-B and R+G+B of linear RGB rows (N, 3)."""
    return np.stack([lin @ _PLANAR[0], lin @ _PLANAR[1], lin @ _PLANAR[2]])


class _Transitions:
    """Peak/valley tracker and transition history for one flash kind over ``n`` elements."""

    def __init__(self, n: int, red: bool) -> None:
        self.red = red
        self.delta = RED_DELTA if red else GENERAL_DELTA
        self.dir = np.zeros(n, np.int8)          # +1 after a rise, -1 after a fall, 0 none yet
        self.can_fall = np.ones(n, bool)         # dir >= 0 and dir <= 0, kept for the per-frame pre-check
        self.can_rise = np.ones(n, bool)
        self.hi = np.zeros(n, np.float32)        # highest value since the last transition
        self.lo = np.zeros(n, np.float32)        # lowest value since the last transition
        self.sat_hi = np.zeros(n, bool)
        self.sat_lo = np.zeros(n, bool)
        # times of each element's last MAX_TRANSITIONS+1 transitions, oldest first (one row per element:
        # the few elements that move in a frame are updated as whole rows)
        self.times = np.full((n, MAX_TRANSITIONS + 1), -np.inf)

    def reset(self, x: np.ndarray, sat: np.ndarray) -> None:
        self.dir[:] = 0
        self.can_fall[:] = True
        self.can_rise[:] = True
        self.hi[:] = x
        self.lo[:] = x
        self.sat_hi[:] = sat
        self.sat_lo[:] = sat

    def detect(self, x: np.ndarray, sat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the elements for which value ``x`` would complete a rising / falling transition.

        Two passes over every element find the few that moved a threshold from an extreme; the
        rules are then checked on those alone (a frame usually has none or a handful).
        """
        drop = self.hi - x
        rise = x - self.lo
        m = drop >= self.delta
        m &= self.can_fall
        m2 = rise >= self.delta
        m2 &= self.can_rise
        if self.red:   # a red transition needs saturated red at one end
            m &= self.sat_hi | sat
            m2 &= self.sat_lo | sat
        m |= m2
        cand = np.flatnonzero(m)
        if cand.size == 0:
            return _NONE, _NONE
        d = self.dir[cand]
        xc = x[cand]
        dr = self.hi[cand] - xc
        ri = xc - self.lo[cand]
        if self.red:
            sc = sat[cand]
            down = (d >= 0) & (dr > self.delta) & (self.sat_hi[cand] | sc)
            up = (d <= 0) & (ri > self.delta) & (self.sat_lo[cand] | sc)
        else:
            down = (d >= 0) & (dr >= self.delta) & (xc < DARK_LIMIT)
            up = (d <= 0) & (ri >= self.delta) & (self.lo[cand] < DARK_LIMIT)
        both = up & down
        if both.any():  # only before the first transition: keep the larger swing
            up = up & ~(both & (dr > ri))
            down = down & ~up
        return cand[up], cand[down]

    def exhausted_at(self, idx: np.ndarray, now: float) -> np.ndarray:
        """For elements ``idx``: is their budget spent (six transitions already inside the window)?"""
        return self.times[idx, 1] > now - WINDOW_S - _WINDOW_SLACK_S

    def over(self, now: float) -> np.ndarray:
        """Elements with more than six transitions inside the window (allowed only on < 25 % area)."""
        return self.times[:, 0] > now - WINDOW_S - _WINDOW_SLACK_S

    def commit(self, x: np.ndarray, sat: np.ndarray, up: np.ndarray, down: np.ndarray, now: float) -> None:
        """Record value ``x`` as emitted, given its transitions (indices) from :meth:`detect`."""
        if self.red:   # the general rule does not look at saturation
            # sat_hi = sat where x > hi (as bit operations: a masked copyto is 20x slower here)
            d = self.sat_hi ^ sat
            d &= x > self.hi
            self.sat_hi ^= d
            d = self.sat_lo ^ sat
            d &= x < self.lo
            self.sat_lo ^= d
        np.maximum(self.hi, x, out=self.hi)
        np.minimum(self.lo, x, out=self.lo)
        if up.size or down.size:
            idx = np.concatenate([up, down])
            self.dir[up] = 1
            self.dir[down] = -1
            self.can_fall[up] = True
            self.can_rise[up] = False
            self.can_fall[down] = False
            self.can_rise[down] = True
            xi = x[idx]
            self.hi[idx] = xi
            self.lo[idx] = xi
            if self.red:
                si = sat[idx]
                self.sat_hi[idx] = si
                self.sat_lo[idx] = si
            t = self.times[idx]
            t[:, :-1] = t[:, 1:]
            t[:, -1] = now
            self.times[idx] = t

    def blend_limit(self, idx: np.ndarray, prev: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Largest blend factor k in [0, 1] (prev -> target) keeping elements ``idx`` within the hold band.

        ``prev``/``target`` are the linear-in-k signals of those elements (luminance, or raw R-G-B:
        for positive bounds max(0, v) >= b <=> v >= b and max(0, v) <= b <=> v <= b).
        """
        d = self.dir[idx]
        lower = self.hi[idx] - HOLD_FRACTION * self.delta   # after a rise: stay above
        upper = self.lo[idx] + HOLD_FRACTION * self.delta   # after a fall: stay below
        with np.errstate(divide="ignore", invalid="ignore"):
            kd = np.where(target < prev, (prev - lower) / (prev - target), 1.0)
            ku = np.where(target > prev, (upper - prev) / (target - prev), 1.0)
        k = np.where(d > 0, kd, np.where(d < 0, ku, 0.0))
        return np.clip(np.nan_to_num(k, nan=0.0), 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- venue settings

#: the visual field WCAG 2.3.1 counts a flash in: 25 % of any 10-degree field of view
FIELD_DEG = 10.0
DEFAULT_VIEWING_DISTANCE_M = 1.0   # a visitor can walk up to a wall; closer is stricter
DEFAULT_CANVAS_WIDTH_M = 20.0      # when nothing says how wide the canvas is: assume a large one (small regions)
MAX_CELLS = 512                    # per axis; regions never get smaller than REGION_STEPS of these cells
# regions start every quarter region (a 10-degree field anywhere is then within an eighth of a region of
# one) while that keeps their number under MAX_FINE_REGIONS; every half region above (50,000 LEDs on a
# 16 m wall seen from 1 m: 18,000 regions at half steps, 73,000 at quarter steps and 4x the cost)
MAX_FINE_REGIONS = 20_000
SAFETY_KEYS = ("viewing_distance_m", "canvas_width_m")
_UNIT_M = {"m": 1.0, "cm": 0.01, "mm": 0.001}


@dataclass(frozen=True)
class SafetySettings:
    """The venue's ``[safety]`` section: what decides the size of the regions flashes are counted over.

    ``viewing_distance_m``: the closest a visitor's eyes come to the lights (default 1 m);
    ``canvas_width_m``: the physical width of the canvas (default: from the layouts' ``[canvas]``
    when given in m/cm/mm, else 20 m).  Neither can switch the limiter off or loosen its thresholds.
    """

    viewing_distance_m: float = DEFAULT_VIEWING_DISTANCE_M
    canvas_width_m: float | None = None

    def region(self, canvas_width_m: float | None = None, aspect: float = 16 / 9) -> tuple[float, float]:
        """(width, height) of one counting region in canvas units (the canvas is 1 x 1): a 10-degree
        field of view at the closest viewing distance, on a canvas of ``aspect`` (width / height)."""
        width_m = self.canvas_width_m or canvas_width_m or DEFAULT_CANVAS_WIDTH_M
        side = 2.0 * self.viewing_distance_m * math.tan(math.radians(FIELD_DEG / 2.0))
        return side / width_m, side / (width_m / aspect)


def read_safety(section: Any) -> SafetySettings:
    """Typed reader of a venue's ``[safety]`` table (``venue.sections.get("safety")``).

    Raises ValueError with a one-line message for an unknown key or a value out of range.
    """
    if section is None:
        return SafetySettings()
    if not isinstance(section, Mapping):
        raise ValueError(f"[safety]: expected a table, got {type(section).__name__}")
    unknown = sorted(set(section) - set(SAFETY_KEYS))
    if unknown:
        raise ValueError(f"[safety]: unknown key {unknown[0]!r} (known: {', '.join(SAFETY_KEYS)})")
    vals = {}
    for key, lo, hi in (("viewing_distance_m", 0.05, 1000.0), ("canvas_width_m", 0.05, 10_000.0)):
        if key not in section:
            continue
        v = section[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise ValueError(f"[safety]: {key} must be a number of metres from {lo:g} to {hi:g}, got {v!r}")
        vals[key] = float(v)
    return SafetySettings(**vals)


def layout_width_m(layout: Any) -> float | None:
    """Physical canvas width from the layout files' ``[canvas]`` tables (m, cm or mm), if any gives one."""
    from installation.fixtures.layout import LayoutError, read_table
    for path in getattr(layout, "paths", ()):
        try:
            canvas = read_table(Path(path)).get("canvas", {})
        except (LayoutError, OSError):
            continue
        unit = canvas.get("units") if isinstance(canvas, Mapping) else None
        w = canvas.get("width") if isinstance(canvas, Mapping) else None
        if unit in _UNIT_M and isinstance(w, (int, float)) and w > 0:
            return float(w) * _UNIT_M[unit]
    return None


def venue_region(venue: Any, aspect: float = 16 / 9) -> tuple[float, float]:
    """The counting region (canvas units) for a venue: its ``[safety]`` section and its layouts' canvas."""
    settings = read_safety(getattr(venue, "sections", {}).get("safety"))
    return settings.region(layout_width_m(venue.layout), aspect)


# ----------------------------------------------------------------------------- regions


def _box_sum(g: np.ndarray, axis: int, k: int) -> np.ndarray:
    """Sums of ``k`` (1, 2 or 4) consecutive entries along ``axis`` (all of them when there are fewer)."""
    if g.shape[axis] <= k:
        return g.sum(axis=axis, keepdims=True)

    def sl(a, b):
        idx = [slice(None)] * g.ndim
        idx[axis] = slice(a, b)
        return tuple(idx)
    step = 1
    while step < k:   # pairs, then pairs of pairs: two additions per entry instead of k
        g = g[sl(None, -step)] + g[sl(step, None)]
        step *= 2
    return g


def _spread_min(g: np.ndarray, axis: int, k: int, cells: int) -> np.ndarray:
    """For ``cells`` positions along ``axis``: the minimum of the windows (``k`` long, one starting at each
    position) that contain each one; ``g`` holds the windows' values along ``axis``."""
    if cells <= k:
        return np.repeat(g, cells, axis=axis)
    shape = list(g.shape)
    shape[axis] = cells
    t = np.ones(shape, np.float32)
    w = g.shape[axis]
    for d in range(k):
        sl = [slice(None)] * g.ndim
        sl[axis] = slice(d, d + w)
        np.minimum(t[tuple(sl)], g, out=t[tuple(sl)])
    return t


class _Regions:
    """Overlapping regions of the canvas, each ``region`` (w, h) in canvas units, over which flashes count.

    The canvas is cut into cells (at most) a ``k``-th of a region wide and high; a region is a window of
    k x k cells, and windows start at every cell, so the regions overlap by (k-1)/k in each direction
    and a 10-degree field anywhere on the wall is within a k-th of a region of one of them.  Only
    windows that hold any element are kept.  The whole field is the last window.
    """

    def __init__(self, positions: np.ndarray | None, weights: np.ndarray, region: tuple[float, float] | None,
                 k: int = 2):
        n = weights.shape[0]
        self.k = k
        if positions is None or region is None:
            cx = cy = 1
            cell = np.zeros(n, np.int64)
        else:
            pos = np.clip(np.asarray(positions, np.float64).reshape(n, 2), 0.0, 1.0)
            cx = int(min(max(1, math.ceil(k / max(region[0], 1e-9))), MAX_CELLS))
            cy = int(min(max(1, math.ceil(k / max(region[1], 1e-9))), MAX_CELLS))
            ix = np.minimum((pos[:, 0] * cx).astype(np.int64), cx - 1)
            iy = np.minimum((pos[:, 1] * cy).astype(np.int64), cy - 1)
            cell = iy * cx + ix
        self.cx, self.cy = cx, cy
        self.cell = cell
        self.ncell = cx * cy
        warea = self.window_sums(np.bincount(cell, weights=weights, minlength=self.ncell))
        self.wshape = warea.shape[:2]
        self.keep = np.flatnonzero(warea.reshape(-1) > 0)
        self.all_kept = self.keep.size == warea.size
        self.area = np.append(warea.reshape(-1)[self.keep], weights.sum()).astype(np.float64)
        self.inv_area = (1.0 / self.area).astype(np.float32)
        # (LED, quantity) -> one bincount slot: planar measures (3, N) are summed per cell in one call
        self.cell3 = np.concatenate([cell, cell + self.ncell, cell + 2 * self.ncell])
        self.count = self.keep.size + 1

    def window_sums(self, cells: np.ndarray) -> np.ndarray:
        """Sums over every k x k window of a per-cell quantity (C,) or (C, q); shape (wy, wx[, q])."""
        g = cells.reshape((self.cy, self.cx) + cells.shape[1:])
        return _box_sum(_box_sum(g, 0, self.k), 1, self.k)

    def window_values(self, cells: np.ndarray) -> np.ndarray:
        """Per kept window (and the whole, last) sums of a per-cell quantity (C, q) -> (count, q)."""
        w = self.window_sums(cells)
        flat = w.reshape((-1,) + cells.shape[1:])
        out = np.empty((self.count,) + cells.shape[1:], cells.dtype)
        if self.all_kept:
            out[:-1] = flat
        else:
            np.take(flat, self.keep, axis=0, out=out[:-1])
        out[-1] = np.add.reduce(cells, axis=0)
        return out

    def window_rows(self, cells: np.ndarray) -> np.ndarray:
        """Like :meth:`window_values` for quantities in rows: (q, C) -> (q, count)."""
        q = cells.shape[0]
        g = cells.reshape(q, self.cy, self.cx)
        g = _box_sum(_box_sum(g, 1, self.k), 2, self.k)
        flat = g.reshape(q, -1)
        out = np.empty((q, self.count), cells.dtype)
        if self.all_kept:
            out[:, :-1] = flat
        else:
            np.take(flat, self.keep, axis=1, out=out[:, :-1])
        np.add.reduce(cells, axis=1, out=out[:, -1])
        return out

    def cell_min(self, per_window: np.ndarray) -> np.ndarray:
        """(C,) for each cell the minimum over the windows that contain it (and the whole)."""
        wy, wx = self.wshape
        full = np.ones(wy * wx, np.float32)
        full[self.keep] = per_window[:-1]
        g = _spread_min(full.reshape(wy, wx), 0, self.k, self.cy)
        g = _spread_min(g, 1, self.k, self.cx)
        return np.minimum(g.reshape(-1), per_window[-1])

    def cells_of_windows(self, windows: np.ndarray) -> np.ndarray:
        """(C,) bool: cells inside any of the given window indices."""
        k = np.ones(self.count, np.float32)
        k[windows] = 0.0
        return self.cell_min(k) < 0.5


class FlashLimiter:
    """Keeps an LED frame within three general and three red flashes per second, over the whole and per region.

    ``weights`` (N,): each LED's share of the installation's visible area (normalised to sum 1).
    ``fps``: the nominal frame rate, used as ``dt`` when none (or a non-finite one) is given.
    ``positions`` (N, 2) canvas x, y in 0..1 and ``region`` (w, h) in canvas units: flashes are also
    counted over overlapping regions of that size (a 10-degree field at the closest viewing distance:
    :meth:`SafetySettings.region`); without them the whole field is the only region.
    ``snap(rows, values)``: what elements ``rows`` will really show for (k, 3) ``values`` (the LED
    pipeline rounds them to its 8-bit codes), so slowed elements are judged as they will show.
    ``encoding``: ``"linear"`` (default) -- the values are final LED drive levels after gamma;
    WS2812-style PWM emits light proportional to the duty cycle, so the values already are linear
    light and are *not* sRGB-decoded.  ``"srgb"`` for display-referred values (screens, video).

    Use one instance per output frame stream; call :meth:`limit` once per frame, in order.
    """

    def __init__(self, weights: np.ndarray, fps: float, encoding: str = "linear",
                 positions: np.ndarray | None = None, region: tuple[float, float] | None = None,
                 snap=None) -> None:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("FlashLimiter weights must be a non-empty array of finite, non-negative area "
                             "weights with a positive sum")
        if abs(w.sum() - 1.0) > 1e-3:
            log.debug("flash limiter: weights sum to %.4f, normalising", w.sum())
        try:
            fps_ok = math.isfinite(float(fps)) and float(fps) > 0
        except (TypeError, ValueError):
            fps_ok = False
        if not fps_ok:
            raise ValueError(f"FlashLimiter fps must be a positive number, got {fps!r}")
        if encoding not in ("linear", "srgb"):
            raise ValueError(f"FlashLimiter encoding must be 'linear' or 'srgb', got {encoding!r}")
        if positions is not None and np.asarray(positions).shape != (w.size, 2):
            raise ValueError(f"FlashLimiter positions must be ({w.size}, 2), got {np.asarray(positions).shape}")
        self.weights = (w / w.sum()).astype(np.float32)
        self.n = w.size
        self.fps = float(fps)
        self.encoding = encoding
        self.time = 0.0
        self.frames_limited = 0
        self.regions = _Regions(positions, self.weights.astype(np.float64), region, 4)
        if self.regions.count > MAX_FINE_REGIONS:
            self.regions = _Regions(positions, self.weights.astype(np.float64), region, 2)
        self.snap = snap
        self._w3 = self.weights[:, None]
        self._leds = (_Transitions(self.n, red=False), _Transitions(self.n, red=True))
        self._wins = (_Transitions(self.regions.count, red=False), _Transitions(self.regions.count, red=True))
        self._prev: np.ndarray | None = None   # last emitted frame, linear light (N, 3)
        self._prev_signals: tuple = ()
        self._cache: tuple | None = None       # (frame object, _assess result) for the current frame
        self._planned: np.ndarray | None = None

    # -- the two halves, also used by FrameFlashLimiter ------------------------------------------
    def _advance(self, dt: float | None) -> float:
        if dt is None or not math.isfinite(dt) or dt < 0:
            dt = 1.0 / self.fps
        self.time += min(float(dt), 10.0)
        return self.time

    def _cell_sums(self, meas: np.ndarray) -> np.ndarray:
        """(3, C) area-weighted sums per regions cell of planar measures (3, N): luminance, R-G-B, R+G+B."""
        reg = self.regions
        wm = meas * self.weights
        if reg.ncell == 1:
            return wm.sum(axis=1, keepdims=True)
        return np.bincount(reg.cell3, weights=wm.reshape(-1), minlength=3 * reg.ncell).reshape(3, reg.ncell)

    def _window_measure(self, cells: np.ndarray) -> tuple:
        """Area-weighted mean measures of every region (and the whole, last) from the cell sums (3, C)."""
        reg = self.regions
        means = reg.window_rows(np.asarray(cells, np.float32))
        means *= reg.inv_area
        return _signals(means[0], means[1], means[2])

    def _led_violations(self, lum, s, sat, now) -> list:
        """Per kind: (tracker, LED indices that must not transition, detect result), with the area rule
        per region: an LED may flash more than three times a second while the over-flashing area stays
        under 25 % of every region it lies in and of the whole."""
        out = []
        reg = self.regions
        for tr, x in zip(self._leds, (lum, s)):
            up, down = tr.detect(x, sat)
            bad = _NONE
            if up.size or down.size:
                moving = np.concatenate([up, down])
                bad = moving[tr.exhausted_at(moving, now)]
            if bad.size:
                flagged = tr.over(now)
                flagged[bad] = True
                f_idx = np.flatnonzero(flagged)
                cells = np.bincount(reg.cell[f_idx], weights=self.weights[f_idx], minlength=reg.ncell)
                frac = reg.window_values(cells[:, None])[:, 0] / reg.area
                hot = (frac >= FLASH_AREA).astype(np.float32)
                hot_cell = reg.cell_min(1.0 - hot) < 0.5
                bad = bad[hot_cell[reg.cell[bad]]]
            out.append((tr, bad, (up, down)))
        return out

    def _win_violations(self, wlum, ws, wsat, now) -> list:
        out = []
        for tr, x in zip(self._wins, (wlum, ws)):
            up, down = tr.detect(x, wsat)
            bad = _NONE
            if up.size or down.size:
                moving = np.concatenate([up, down])
                bad = moving[tr.exhausted_at(moving, now)]
            out.append((tr, bad, (up, down)))
        return out

    def _assess(self, lin: np.ndarray, now: float) -> tuple:
        """Measurements of frame ``lin`` and the rule violations it would cause (cached per object)."""
        if self._cache is not None and self._cache[0] is lin:
            return self._cache[1]
        meas = _planar(lin)
        lum, s, raw, sat = _signals(meas[0], meas[1], meas[2])
        wlum, ws, wraw, wsat = self._window_measure(self._cell_sums(meas))
        leds = self._led_violations(lum, s, sat, now)
        wins = self._win_violations(wlum, ws, wsat, now)
        result = ((lum, s, raw, sat), (wlum, ws, wraw, wsat), leds, wins)
        self._cache = (lin, result)
        return result

    @staticmethod
    def _any(viol: list) -> bool:
        return any(idx.size for _, idx, _ in viol)

    def _plan(self, lin: np.ndarray, now: float) -> np.ndarray:
        """Blend factor per element (1 = pass, 0 = hold the previous frame) for target ``lin``."""
        prev = self._prev
        self._cache = None
        self._planned = None
        k = np.ones(self.n, np.float32)
        if prev is None:
            return k
        (lum_t, _, raw_t, _), _, leds, wins = self._assess(lin, now)
        if not (self._any(leds) or self._any(wins)):
            self._planned = lin
            return k
        lum_p, raw_p, wlum_p, wraw_p = self._prev_signals
        reg = self.regions
        for tr, idx, _ in leds:   # slow each LED that would spend a seventh transition
            if idx.size:
                sig_p, sig_t = (raw_p, raw_t) if tr.red else (lum_p, lum_t)
                k[idx] = np.minimum(k[idx], tr.blend_limit(idx, sig_p[idx], sig_t[idx]))
        cand = self._blend(prev, lin, k)
        (_, _, _, _), (wlum_c, _, wraw_c, _), _, wins = self._assess(cand, now)
        kw = np.ones(reg.count, np.float32)
        for tr, idx, _ in wins:   # then each region whose mean would, as blended so far
            if idx.size:
                sig_p, sig_t = (wraw_p, wraw_c) if tr.red else (wlum_p, wlum_c)
                kw[idx] = np.minimum(kw[idx], tr.blend_limit(idx, sig_p[idx], sig_t[idx]))
        if (kw < 1.0).any():
            k *= reg.cell_min(kw)[reg.cell]
            cand = self._blend(prev, lin, k)
        # blends of neighbours interact: check, and hold what still breaks a rule (a few rounds at most)
        for _ in range(3):
            _, _, leds, wins = self._assess(cand, now)   # (cached when cand was assessed above)
            if not (self._any(leds) or self._any(wins)):
                self._planned = cand
                return k
            for _, idx, _ in leds:
                k[idx] = 0.0
            for _, idx, _ in wins:
                if idx.size:
                    k[reg.cells_of_windows(idx)[reg.cell]] = 0.0
            cand = self._blend(prev, lin, k)
        k[:] = 0.0
        return k

    def _blend(self, prev: np.ndarray, target: np.ndarray, k: np.ndarray) -> np.ndarray:
        passing = k >= 1.0
        if passing.all():
            return target
        kk = k[:, None]
        out = target * kk        # target k + prev (1 - k): exactly target where k = 1, prev where k = 0
        out += prev * (np.float32(1.0) - kk)
        if self.snap is not None:   # judge (and remember) the slowed elements as they will really show
            rows = np.flatnonzero(~passing)
            if rows.size == self.n:
                out = self.snap(rows, out)
            else:
                out[rows] = self.snap(rows, out[rows])
        return out

    def _commit(self, lin: np.ndarray, now: float) -> bool:
        """Record the emitted frame; returns False if it breaks a rule (caller must then hold)."""
        if self._prev is None:
            meas = _planar(lin)
            lum, s, raw, sat = _signals(meas[0], meas[1], meas[2])
            wlum, ws, wraw, wsat = self._window_measure(self._cell_sums(meas))
            for tr, x in zip(self._leds, (lum, s)):
                tr.reset(x, sat)
            for tr, x in zip(self._wins, (wlum, ws)):
                tr.reset(x, wsat)
        else:
            (lum, s, raw, sat), (wlum, ws, wraw, wsat), leds, wins = self._assess(lin, now)
            if self._any(leds) or self._any(wins):
                return False
            for tr, _, (up, down) in leds:
                tr.commit(s if tr.red else lum, sat, up, down, now)
            for tr, _, (up, down) in wins:
                tr.commit(ws if tr.red else wlum, wsat, up, down, now)
        self._cache = None
        self._prev = lin.copy()
        self._prev_signals = (lum, raw, wlum, wraw)
        return True

    def _hold(self, now: float) -> np.ndarray:
        """Emit the previous frame again (always safe) and record it."""
        prev = self._prev
        self._commit(prev, now)
        return prev

    # -- public ----------------------------------------------------------------------------------
    def limit(self, rgb: np.ndarray, dt: float | None = None) -> np.ndarray:
        """Return the frame to emit for target ``rgb`` (N, 3) float 0..1, ``dt`` seconds after the last.

        The result is float32 (N, 3); when no rule would be broken it is the input itself (or its
        clipped copy: NaN and out-of-range values are treated as 0 and clipped).
        """
        now = self._advance(dt)
        target = np.asarray(rgb, dtype=np.float32)
        if target.shape != (self.n, 3):
            raise ValueError(f"FlashLimiter.limit: expected an ({self.n}, 3) frame, got {target.shape}")
        if not (target.min() >= 0.0 and target.max() <= 1.0):   # NaN fails both
            target = np.minimum(np.fmax(target, 0.0), 1.0)       # NaN -> 0, +inf -> 1
        lin = srgb_to_linear(target) if self.encoding == "srgb" else target
        if self._prev is None:
            self._commit(np.zeros_like(lin), now)   # dark before the first frame: lighting up is a transition
        k = self._plan(lin, now)
        if np.all(k >= 1.0):
            if self._commit(lin, now):
                return target
            k[:] = 0.0
        self.frames_limited += 1
        out_lin = self._planned if self._planned is not None and k.any() else self._blend(self._prev, lin, k)
        if not self._commit(out_lin, now):
            k[:] = 0.0
            out_lin = self._hold(now)
        if self.encoding == "srgb":
            return np.where((k >= 1.0)[:, None], target, linear_to_srgb(out_lin)).astype(np.float32)
        return out_lin.astype(np.float32, copy=True)


class FrameFlashLimiter:
    """The same limiter for an RGBA8 image (the tapestry read back for preview and video).

    The image (H, W, 4) uint8, sRGB-encoded, is decoded to linear light (every second pixel in
    each direction -- a quarter of the work, the same cells) and averaged over a ``grid`` of
    (columns, rows) cells; each cell is one element of a :class:`FlashLimiter` whose weights are
    the cells' areas, counted per region too (``region``, canvas units; default: a 10-degree field
    at the default viewing distance, see :class:`SafetySettings`).  Cells that must be slowed are blended toward the last emitted image in
    linear light with the cell's factor, then re-encoded to 8 bits.  Alpha passes through.
    Images that break no rule are returned unchanged (the same object).
    """

    def __init__(self, fps: float, grid: tuple[int, int] = (32, 18),
                 region: tuple[float, float] | None = None) -> None:
        gx, gy = int(grid[0]), int(grid[1])
        if gx < 1 or gy < 1:
            raise ValueError(f"FrameFlashLimiter grid must be at least 1x1, got {grid!r}")
        self.fps = float(fps)
        self.grid = (gx, gy)
        self.region = region if region is not None else SafetySettings().region()
        self._shape: tuple[int, int] | None = None
        self._core: FlashLimiter | None = None
        self._prev: np.ndarray | None = None   # last emitted image, RGBA8
        self._luts: dict[int, np.ndarray] = {}

    def _setup(self, h: int, w: int) -> None:
        hs, ws = (h + 1) // 2, (w + 1) // 2            # size of the measured (subsampled) image
        gx, gy = min(self.grid[0], ws), min(self.grid[1], hs)
        self._rows = (np.arange(gy + 1) * hs) // gy
        self._cols = (np.arange(gx + 1) * ws) // gx
        self._counts = np.outer(np.diff(self._rows), np.diff(self._cols))[:, :, None].astype(np.float32)
        area = self._counts.reshape(-1).astype(np.float64)
        self._gx, self._gy = gx, gy
        # full-resolution pixel -> cell, through the subsampled pixel it belongs to
        self._row_cell = np.repeat(np.arange(gy), np.diff(self._rows))[np.arange(h) // 2]
        self._col_cell = np.repeat(np.arange(gx), np.diff(self._cols))[np.arange(w) // 2]
        centres = np.stack(np.meshgrid((self._cols[:-1] + self._cols[1:]) / (2.0 * ws),
                                       (self._rows[:-1] + self._rows[1:]) / (2.0 * hs)), axis=-1).reshape(-1, 2)
        # a region smaller than one cell sees no more than the cell: no finer grid than that
        region = (max(self.region[0], 1.0 / gx), max(self.region[1], 1.0 / gy))
        self._core = FlashLimiter(area / area.sum(), self.fps, positions=centres, region=region)
        self._shape = (h, w)
        self._prev = None

    def _cells(self, img: np.ndarray) -> np.ndarray:
        lin = _SRGB8_TO_LINEAR[img[::2, ::2, :3]]
        sums = np.add.reduceat(np.add.reduceat(lin, self._rows[:-1], axis=0), self._cols[:-1], axis=1)
        return (sums / self._counts).reshape(-1, 3)

    @property
    def frames_limited(self) -> int:
        """How many frames so far had to be slowed or held."""
        return self._core.frames_limited if self._core else 0

    _K_STEPS = 64   # blend factors are rounded DOWN to 1/64: closer to the previous image, so never less safe

    def _blend_lut(self, level: int) -> np.ndarray:
        """(prev code << 8 | new code) -> sRGB code of their linear-light blend at ``level / _K_STEPS``."""
        lut = self._luts.get(level)
        if lut is None:
            a = _SRGB8_TO_LINEAR[:, None]
            b = _SRGB8_TO_LINEAR[None, :]
            lut = _encode_srgb8(a + np.float32(level / self._K_STEPS) * (b - a)).reshape(-1)
            self._luts[level] = lut
        return lut

    def _apply(self, img: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Blend each cell of ``img`` toward the previous image by its factor in ``k``."""
        steps = self._K_STEPS
        levels = np.minimum(np.floor(k * steps), steps).astype(np.uint8).reshape(self._gy, self._gx)
        out = img.copy()
        used = np.unique(levels)
        if used.size == 1:
            if used[0] == 0:
                out[:, :, :3] = self._prev[:, :, :3]
            elif used[0] < steps:
                codes = (self._prev[:, :, :3].astype(np.uint16) << 8) | img[:, :, :3]
                out[:, :, :3] = self._blend_lut(int(used[0]))[codes]
            return out
        px = levels[self._row_cell][:, self._col_cell]
        codes = (self._prev[:, :, :3].astype(np.uint16) << 8) | img[:, :, :3]
        rgb = out[:, :, :3]
        for level in used:
            if level < steps:
                m = px == level
                rgb[m] = self._blend_lut(int(level))[codes[m]]
        return out

    def limit(self, rgba: np.ndarray, dt: float | None = None) -> np.ndarray:
        """Return the image to show for ``rgba`` (H, W, 4) uint8, ``dt`` seconds after the last one."""
        img = np.asarray(rgba)
        if img.ndim != 3 or img.shape[2] != 4 or img.dtype != np.uint8:
            raise ValueError(f"FrameFlashLimiter.limit: expected an (H, W, 4) uint8 image, got "
                             f"{img.shape} {img.dtype}")
        h, w = img.shape[:2]
        if self._shape != (h, w):
            if self._shape is not None:
                log.warning("flash limiter: image size changed %s -> %s, restarting its history",
                            self._shape, (h, w))
            self._setup(h, w)
        core = self._core
        now = core._advance(dt)
        if self._prev is None:   # dark before the first image: lighting up is a transition
            self._prev = np.zeros_like(img)
            self._prev[:, :, 3] = img[:, :, 3]
            core._commit(self._cells(self._prev), now)
        cells = self._cells(img)
        k = core._plan(cells, now)
        if np.all(k >= 1.0):
            if core._commit(cells, now):
                self._prev = img.copy()   # the caller may reuse its buffer
                return rgba
            k[:] = 0.0
        core.frames_limited += 1
        out = self._apply(img, k)
        if not core._commit(self._cells(out), now):
            # 8-bit rounding pushed a cell over: show the previous picture again
            out[:, :, :3] = self._prev[:, :, :3]
            core._commit(self._cells(out), now)
        self._prev = out
        return out
