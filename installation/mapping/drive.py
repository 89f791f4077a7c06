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
    """Counts the pattern frames the pipeline's own flash limiter changed (it must change none)."""

    limiter: object            # the pipeline's FlashLimiter (``frames_limited`` counts what it changed)
    frames: int = 0
    altered: int = 0
    altered_names: list = field(default_factory=list)
    current: str = ""
    _seen: int = 0

    def count(self) -> None:
        """Call after each frame the pipeline ran."""
        self.frames += 1
        n = int(self.limiter.frames_limited)
        if n != self._seen:
            self._seen = n
            self.altered += 1
            if self.current not in self.altered_names:
                self.altered_names.append(self.current)


def open_safe_pipeline(venue: Venue, tree: ParamTree, fps: float, outputs: Sequence | None = None, ctx=None):
    """The venue's LED pipeline, flash and power limits included (they cannot be left out).

    Returns ``(pipeline, watch, thresholds)``: ``watch`` counts frames the limiter altered; ``thresholds``
    are the limiter's (general, red) transition sizes the patterns stay under.  The pipeline makes its own
    headless GL context (patterns are colours, corrected on the GPU like any frame) unless given ``ctx``
    (a preview window's, to draw the LEDs in).
    """
    from installation.leds import LedPipeline
    from installation.safety import GENERAL_DELTA, RED_DELTA

    pipe = LedPipeline(ctx, venue, tree, fps=fps, outputs=outputs)
    return pipe, LimiterWatch(pipe.flash_limiter), (GENERAL_DELTA, RED_DELTA)


def default_tree() -> ParamTree:
    """The LED parameters at their defaults (mapping runs outside the show)."""
    return ParamTree.from_specs(COLOR_PARAMS)


class PatternPlayer:
    """Sends pattern frames (LED drive levels) through the safe pipeline at ``fps``, in real time."""

    def __init__(self, venue: Venue, tree: ParamTree | None = None, fps: float = 30.0,
                 outputs: Sequence | None = None, ctx=None):
        self.venue = venue
        self.tree = tree or default_tree()
        self.fps = float(fps)
        self._last = None
        self.pipe, self.watch, self.thresholds = open_safe_pipeline(venue, self.tree, self.fps, outputs, ctx)
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
            self.pipe.process_colors(colors, self._dt())
            self.watch.count()
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
        self.pipe.release()
