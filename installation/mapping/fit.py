"""What the camera saw, fixture by fixture: refitted geometry, LEDs missing, reversed wiring, colour order.

Strips (and polylines) are fitted as a line of evenly spaced LEDs from their
found LEDs (least squares, far-off detections left out), so a strip with a
few hidden LEDs still gets its true ``start`` and ``end``.  Matrices are
fitted as an axis-aligned grid (origin and spacing).  Points keep each LED's
own position.  A strip whose LED 0 turns up at its old end is wired reversed;
a fixture whose red shows green (and so on) has the wrong colour order, and
the order that fits is worked out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from installation.fixtures.layout import Layout


@dataclass
class FixtureResult:
    """The mapping of one fixture (canvas units; ``positions`` NaN where an LED was not seen)."""

    name: str
    kind: str
    count: int
    positions: np.ndarray
    missing: list[int]
    start: np.ndarray | None = None      # strip/polyline: fitted first and last LED
    end: np.ndarray | None = None
    origin: np.ndarray | None = None     # matrix: fitted top-left LED and spacing (canvas)
    spacing: np.ndarray | None = None
    grid: tuple[np.ndarray, np.ndarray] | None = None  # matrix: column, row of each LED (old layout)
    reversed: bool = False
    mirrored: tuple[bool, bool] = (False, False)   # matrix: data enters from the other side (x, y)
    order_seen: str | None = None        # colour order that fits what the camera saw, if not the configured one
    order_unclear: bool = False
    rms: float = 0.0                     # how far found LEDs sit from the fitted shape (canvas-height units)
    notes: list[str] = field(default_factory=list)

    @property
    def found(self) -> int:
        """How many of its LEDs were seen."""
        return self.count - len(self.missing)


def _aspect(layout: Layout) -> float:
    cs = layout.canvas_size
    return float(cs[0] / cs[1]) if cs else 16.0 / 9.0


def _fit_line(t: np.ndarray, p: np.ndarray, aspect: float):
    """Least squares p = a + (b - a) t, leaving out points far off; returns a, b, rms (canvas-height units)."""
    keep = np.ones(len(t), bool)
    a = b = None
    rms = 0.0
    for _ in range(3):
        A = np.c_[1.0 - t[keep], t[keep]]
        sol, *_ = np.linalg.lstsq(A, p[keep], rcond=None)
        a, b = sol[0], sol[1]
        pred = np.outer(1.0 - t, a) + np.outer(t, b)
        err = np.hypot((p[:, 0] - pred[:, 0]) * aspect, p[:, 1] - pred[:, 1])
        rms = float(np.sqrt(np.mean(err[keep] ** 2)))
        new = err <= max(4.0 * np.median(err), 0.004)
        if (new == keep).all() or new.sum() < 2:
            break
        keep = new
    return a, b, rms


def _grid_indices(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column and row of each LED of an axis-aligned grid (0 = left / top)."""
    def axis(v):
        u = np.unique(np.round(v, 7))
        return np.searchsorted(u, np.round(v, 7))
    return axis(pos[:, 0]), axis(pos[:, 1])


def colour_order(config: str, response: np.ndarray) -> tuple[str | None, bool]:
    """(order that fits, unclear) from ``response`` [sent R/G/B][camera R/G/B] summed over a fixture.

    Returns (None, False) when the configured order fits.
    """
    if not np.isfinite(response).all() or response.max() <= 0:
        return None, True
    seen = [int(np.argmax(response[c])) for c in range(3)]
    # a dominant channel must really dominate
    for c in range(3):
        row = np.sort(response[c])
        if row[-1] <= 1.5 * max(row[-2], 1e-9):
            return None, True
    if sorted(seen) != [0, 1, 2]:
        return None, True
    if seen == [0, 1, 2]:
        return None, False
    real = list(config)
    for c in range(3):
        real[config.index("RGB"[c])] = "RGB"[seen[c]]
    return "".join(real), False


def fit_fixtures(layout: Layout, canvas: np.ndarray, rgb: dict[int, np.ndarray] | None = None) -> list[FixtureResult]:
    """Per fixture of ``layout``: refit from ``canvas`` (N, 2) measured positions (NaN = not seen).

    ``rgb``: LED index -> (3, 3) camera response to red/green/blue, for the colour-order check.
    """
    aspect = _aspect(layout)
    results = []
    for fi, f in enumerate(layout.fixtures):
        sl = layout.led_range(fi)
        pos = canvas[sl]
        old = layout.positions[sl].astype(np.float64)
        seen = np.isfinite(pos).all(axis=1)
        r = FixtureResult(f.name, f.kind, f.count, pos.copy(), [int(i) for i in np.flatnonzero(~seen)])
        k = np.flatnonzero(seen)
        if f.kind in ("strip", "polyline") and k.size >= 2 and f.count >= 2:
            t = np.arange(f.count, dtype=np.float64) / (f.count - 1)
            a, b, r.rms = _fit_line(t[k], pos[k], aspect)
            r.start, r.end = a, b
            r.reversed = float(np.dot(b - a, old[-1] - old[0])) < 0
        elif f.kind == "matrix" and k.size >= 3:
            gx, gy = _grid_indices(old)
            r.grid = (gx, gy)
            A = np.c_[np.ones(k.size), gx[k], gy[k]]
            keep = np.ones(k.size, bool)
            for _ in range(3):
                sx, *_ = np.linalg.lstsq(np.c_[A[keep, 0], A[keep, 1]], pos[k[keep], 0], rcond=None)
                sy, *_ = np.linalg.lstsq(np.c_[A[keep, 0], A[keep, 2]], pos[k[keep], 1], rcond=None)
                px = sx[0] + sx[1] * gx[k]
                py = sy[0] + sy[1] * gy[k]
                err = np.hypot((pos[k, 0] - px) * aspect, pos[k, 1] - py)
                new = err <= max(4.0 * np.median(err), 0.004)
                r.rms = float(np.sqrt(np.mean(err[keep] ** 2)))
                if (new == keep).all() or new.sum() < 3:
                    break
                keep = new
            r.origin = np.array([sx[0], sy[0]])
            r.spacing = np.array([sx[1], sy[1]])
            r.mirrored = (bool(gx.max() > 0 and sx[1] < 0), bool(gy.max() > 0 and sy[1] < 0))
        elif f.kind in ("strip", "polyline", "matrix"):
            r.notes.append("too few LEDs seen to refit")
        if rgb is not None and k.size:
            resp = sum(rgb[sl.start + i] for i in k if sl.start + i in rgb)
            if isinstance(resp, np.ndarray):
                r.order_seen, r.order_unclear = colour_order(f.patch.order, _rgb_only(resp))
        results.append(r)
    return results


def _rgb_only(resp: np.ndarray) -> np.ndarray:
    return np.asarray(resp, np.float64)[:3, :3]
