"""Measuring the look: what a visitor would notice, as numbers (used by bench/bench_look.py and tests/test_look.py).

Everything here runs the real engine headless on a fixed-step clock (so the figures repeat), reads the
real tapestry back and, where asked, drives the real LED pipeline of a venue with no outputs attached
(its packed bytes are returned by ``LedPipeline.process``; nothing is sent anywhere).

* :func:`frame_stats` -- dark share, clipped-to-white share, luminance p10 / p90 of one frame.
* :func:`change` -- mean absolute frame-to-frame change (0..1 of full level).
* :class:`LookRun` -- an engine on one preset, stepping and reading frames and LED bytes.
* :func:`fade_pop` -- for one ordered pair of presets, the largest change during a crossfade over
  the largest in the second before and after it (1 or less: seamless; the issue asks for <= 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
DARK = 0.06          # luma below this (of full level) reads as black
CLIPPED = 250        # every channel at or above this reads as clipped white
ROOT = Path(__file__).resolve().parents[2]
DEMO_VENUE = ROOT / "hardware" / "demo-venue.toml"


def frame_stats(rgb: np.ndarray) -> dict:
    """Dark share, clipped share (all channels >= 250) and luminance p10 / p90 (0..1) of an (H, W, 3+) uint8 frame."""
    rgb = np.asarray(rgb)[..., :3]
    luma = (rgb.astype(np.float32) @ LUMA) / 255.0
    return {"dark": float(np.mean(luma < DARK)), "clipped": float(np.mean(rgb.min(axis=-1) >= CLIPPED)),
            "p10": float(np.percentile(luma, 10)), "p90": float(np.percentile(luma, 90))}


def change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference between two frames (or two LED byte buffers), 0..1 of full level."""
    return float(np.mean(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)))) / 255.0


def walking_visitor(t: float, start: float = 0.0):
    """A synthetic visitor who walks in at ``start`` seconds and across the room and back (sensor stand-in)."""
    from ..sensing.frames import CameraFrame, Person
    if t < start:
        return CameraFrame(t, 0.0, 0.0, 0.0, ()), None
    u = (t - start) / 8.0
    x = 0.5 + 0.35 * math.sin(2 * math.pi * u)
    vx = 0.35 * 2 * math.pi / 8.0 * math.cos(2 * math.pi * u)
    return CameraFrame(t, 0.2, 0.08, abs(vx), (Person(x, 0.6, 0.3, vx, 0.0),)), None


class LookRun:
    """An engine on ``preset`` at a small internal ``size``, optionally with the demo venue's LEDs."""

    def __init__(self, ctx, preset: str, size=(192, 108), particles: int = 32_768, seed: int = 1,
                 fps: float = 30.0, venue: Path | None = None, sensors=None, overrides=None) -> None:
        from ..clock import FixedStepClock
        from ..engine import Engine, EngineOptions, declare_all
        self.fps = fps
        self.engine = Engine(ctx, EngineOptions(size=tuple(size), seed=seed, preset=preset, particles=particles,
                                                overrides=dict(overrides or {})),
                             tree=declare_all(), sensors=sensors)
        self.clock = FixedStepClock(fps)
        self.leds = None
        if venue is not None:
            from ..leds import LedPipeline
            from ..venue import load_venue
            v = load_venue(venue)
            # frames come faster than real time and reach no wire: the limiter counts the frames' own time
            self.leds = LedPipeline(ctx, v, self.engine.params, outputs=[], shaders=self.engine.shaders,
                                    clock=lambda: self.clock.time)
            self.engine.attach_leds(self.leds, fps)
        self.led_bytes: np.ndarray | None = None

    def step(self, read: bool = True) -> np.ndarray | None:
        """One frame; returns the tapestry as (H, W, 3) uint8 (top row first) when ``read``."""
        tex = self.engine.frame(self.clock.next_frame())
        if self.leds is not None:
            self.led_bytes = np.array(self.leds.last, copy=True)
        if not read:
            return None
        w, h = tex.size
        return np.frombuffer(tex.read(), np.uint8).reshape(h, w, 4)[..., :3].copy()

    def run(self, seconds: float, read: bool = False) -> list:
        """Step ``seconds`` of frames; the frames when ``read``."""
        out = []
        for _ in range(max(1, round(seconds * self.fps))):
            f = self.step(read)
            if read:
                out.append(f)
        return out

    def fixture_peaks(self) -> dict[str, float]:
        """Per fixture: the brightest channel of its brightest LED in the last frame (0..1 of full level)."""
        cols = self.leds.led_colors().max(axis=1) / 255.0
        lay = self.leds.layout
        return {f.name: float(cols[lay.led_range(i)].max()) for i, f in enumerate(lay.fixtures)}

    def close(self) -> None:
        """Free everything (LED pipeline first)."""
        self.engine.close()
        self.engine.release()


@dataclass(frozen=True)
class FadePop:
    """One crossfade's pop ratios: the largest change during the fade over the largest around it."""

    source: str
    target: str
    tapestry: float
    leds: float


def fade_pop(ctx, source: str, target: str, fade_s: float = 4.0, settle_s: float = 2.0, **kw) -> FadePop:
    """Run ``source``, crossfade to ``target`` over ``fade_s``, compare the change during and around the fade."""
    run = LookRun(ctx, source, venue=kw.pop("venue", DEMO_VENUE), **kw)
    try:
        run.run(settle_s)
        frames = max(1, round(run.fps))
        fade_frames = max(1, round(fade_s * run.fps))
        tap, led = [], []
        prev, prev_led = run.step(), run.led_bytes
        for i in range(frames + fade_frames + frames):
            if i == frames:
                run.engine.load_preset(target, fade_s)
            cur = run.step()
            tap.append(change(prev, cur))
            led.append(change(prev_led, run.led_bytes))
            prev, prev_led = cur, run.led_bytes
    finally:
        run.close()

    def ratio(series):
        s = np.asarray(series)
        around = max(s[:frames].max(), s[frames + fade_frames:].max(), 1e-6)
        return float(s[frames:frames + fade_frames].max() / around)
    return FadePop(source, target, ratio(tap), ratio(led))
