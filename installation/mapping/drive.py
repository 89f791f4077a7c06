"""Showing the mapping patterns through the venue's own LED pipeline, flash and power limits included.

:func:`open_safe_pipeline` is the one place that builds the LED path for mapping
(the integrator adapts it when the pipeline's constructor changes): the venue's
outputs, colour pipeline and power limiter, with a real :class:`FlashLimiter`
as its safety stage.  :class:`PatternPlayer` turns the patterns' drive levels
into the display values the pipeline expects (its gamma and calibration
inverted) and sends them at the outputs' frame rate, counting every frame the
limiter would have altered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from installation.color import PARAMS as COLOR_PARAMS
from installation.params import ParamTree
from installation.venue import Venue


@dataclass
class LimiterWatch:
    """The flash limiter as the pipeline's safety stage, counting the frames it changed."""

    limiter: object
    dt: Callable[[], float]
    frames: int = 0
    altered: int = 0
    altered_names: list = field(default_factory=list)
    current: str = ""

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        out = self.limiter.limit(rgb, self.dt())
        self.frames += 1
        if not np.array_equal(out, np.clip(rgb, 0.0, 1.0)):
            self.altered += 1
            if self.current not in self.altered_names:
                self.altered_names.append(self.current)
        return out


def open_safe_pipeline(venue: Venue, tree: ParamTree, fps: float, dt: Callable[[], float],
                       outputs: Sequence | None = None):
    """The venue's LED pipeline with the photosensitive flash limiter as its safety stage.

    Returns ``(pipeline, watch, thresholds)``: ``watch`` counts altered frames; ``thresholds``
    are the limiter's (general, red) transition sizes the patterns stay under.  The limiter's
    weights are the LEDs' areas, as the engine gives them.  No GL: patterns are colours, not a texture.
    """
    from installation.leds import LedPipeline
    from installation.safety import GENERAL_DELTA, RED_DELTA, FlashLimiter

    areas = np.asarray(venue.layout.areas(), np.float64)
    n = venue.layout.count
    weights = areas / areas.sum() if areas.size and np.isfinite(areas).all() and areas.sum() > 0 \
        else np.full(n, 1.0 / max(n, 1))
    watch = LimiterWatch(FlashLimiter(weights, fps), dt)
    pipe = LedPipeline(ctx=None, venue=venue, tree=tree, safety=watch, outputs=outputs)
    return pipe, watch, (GENERAL_DELTA, RED_DELTA)


def default_tree() -> ParamTree:
    """The LED parameters at their defaults (mapping runs outside the show)."""
    return ParamTree.from_specs(COLOR_PARAMS)


class PatternPlayer:
    """Sends pattern frames (LED drive levels) through the safe pipeline at ``fps``, in real time."""

    def __init__(self, venue: Venue, tree: ParamTree | None = None, fps: float = 30.0,
                 outputs: Sequence | None = None):
        self.venue = venue
        self.tree = tree or default_tree()
        self.fps = float(fps)
        self._last = None
        self.pipe, self.watch, self.thresholds = open_safe_pipeline(venue, self.tree, self.fps, self._dt, outputs)
        self.sent = 0

    def _dt(self) -> float:
        now = time.monotonic()
        dt = 1.0 / self.fps if self._last is None else now - self._last
        self._last = now
        return dt

    def display_values(self, levels: np.ndarray) -> np.ndarray:
        """Display-referred colours that the pipeline's gamma and calibration turn into ``levels``.

        Where a fixture's calibration cannot reach a level (a dim brightness cap), its maximum is used.
        """
        color = self.pipe.color
        try:
            gamma = np.where(color.led_gamma > 0, color.led_gamma, float(self.tree["leds/gamma"]))
            scale = np.asarray(color.base_scale, np.float64) * color.master()
        except AttributeError:   # a pipeline without those tables: plain default gamma, no calibration
            gamma = np.full(levels.shape[0], float(self.tree["leds/gamma"]))
            scale = np.ones_like(levels, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(scale > 0, levels / scale, 0.0)
        out = np.power(np.clip(rel, 0.0, 1.0), 1.0 / np.asarray(gamma, np.float64).reshape(-1, 1))
        return out.astype(np.float32)

    def show(self, levels: np.ndarray, seconds: float, name: str = "", tick: Callable[[], None] | None = None) -> None:
        """Send ``levels`` for ``seconds`` (at least one frame), pacing at ``fps``; ``tick`` runs between frames."""
        colors = self.display_values(levels)
        self.watch.current = name
        end = time.monotonic() + max(seconds, 0.0)
        period = 1.0 / self.fps
        while True:
            self.pipe.process_colors(colors)
            self.sent += 1
            if tick is not None:
                tick()
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(period, left))

    def close(self) -> None:
        """Black out and close the outputs."""
        self.pipe.close("blackout")
