"""The engine: owns the clock, the command queue and the frame loop — orchestration only.

One frame, one way through (see docs and DESIGN.md)::

    drain commands -> dt -> mood -> params resolve -> field step -> render
    -> LEDs (sample, correct, send) -> sinks (preview, video) read the same tapestry

Only the engine thread touches GL and the parameter tree.  Other threads
reach it through ``engine.commands`` (a queue of objects with
``apply(engine)``) or the sensors' latest-value slots.  A failure inside a
frame is logged once (then counted) and the show goes on.
"""

from __future__ import annotations

import datetime as _dt
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Protocol

import moderngl

from . import color
from . import mood as mood_mod
from .clock import FixedStepClock, RealtimeClock
from .field import network, renderer, simulation
from .field.renderer import TapestryRenderer
from .field.simulation import Attractor, ParticleField
from .gfx.shaders import ShaderLibrary
from .mood import Mood, MoodModel
from .params import BOOL, FLOAT, LOOK, VENUE, ParamSpec, ParamTree
from .presets import Crossfade, MoodMapping, Preset, PresetError, PresetLibrary, SaveWorker, save_venue_params
from .scenes import FadeToPreset, SceneEntered

log = logging.getLogger(__name__)

SHOW_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("show/master", FLOAT, 1.0, "Master brightness of everything: preview, video and LEDs", 0.0, 1.0,
              "ratio", scope=VENUE),
    ParamSpec("show/blackout", BOOL, False, "Blackout: all light off (the piece keeps running underneath)",
              scope=VENUE),
    ParamSpec("show/fade", FLOAT, 4.0, "Default crossfade time when a preset is loaded without one", 0.0, 120.0,
              "s", scope=VENUE),
)

SensorSource = Callable[[float], tuple]
"""``source(t) -> (CameraFrame | None, AudioFrame | None)``: live latest values or a deterministic replay."""


class FrameSink(Protocol):
    """Something that consumes the finished tapestry each frame (preview window, video writer)."""

    def consume(self, engine: "Engine", tapestry: moderngl.Texture) -> None:
        """Read the tapestry (engine thread; must not block for long)."""


class LedStage(Protocol):
    """The LED pipeline as the engine sees it (installation.leds.LedPipeline)."""

    def process(self, texture: moderngl.Texture, dt: float | None = None): ...
    def status(self) -> dict: ...
    def close(self, end_state: str = "blackout") -> None: ...
    def release(self) -> None: ...  # optional: GL cleanup after close, on the engine thread


def declare_all(tree: ParamTree | None = None, extra: Iterable[ParamSpec] = ()) -> ParamTree:
    """A parameter tree holding every declared parameter of the piece."""
    tree = tree or ParamTree()
    tree.declare(SHOW_PARAMS + network.PARAMS + simulation.PARAMS + renderer.PARAMS + mood_mod.PARAMS
                 + tuple(color.PARAMS) + tuple(extra))
    return tree


@dataclass
class EngineOptions:
    """How an engine is built: internal size, seed, where shaders and presets live, the first preset."""

    size: tuple[int, int] = (640, 360)
    seed: int = 1
    preset: str | None = "harmony"
    shaders: Path = Path(__file__).resolve().parents[1] / "shaders"
    presets: Path = Path(__file__).resolve().parents[1] / "presets"
    particles: int | None = None
    end_state: str = "blackout"
    # Parameter bases set after the first preset and before the field is built (``render --set``);
    # a path or value the model refuses raises ParamError.
    overrides: Mapping[str, object] = dataclass_field(default_factory=dict)


class Engine:
    """Runs the Nutrient Network frame by frame; implements the live-control target."""

    def __init__(self, ctx: moderngl.Context, options: EngineOptions, tree: ParamTree | None = None,
                 sensors: SensorSource | None = None, leds: LedStage | None = None,
                 sinks: Iterable[FrameSink] = (), scenes=None, schedule=None) -> None:
        self.ctx = ctx
        self.options = options
        self.params = tree if tree is not None else declare_all()
        self.commands: queue.Queue = queue.Queue(maxsize=4096)
        self.shaders = ShaderLibrary(ctx, options.shaders)
        self.presets = PresetLibrary(options.presets, self.params)
        self.saver = SaveWorker()  # preset and venue-file writes happen there, never on the frame thread
        self.venue_params: Path | None = None  # the venue's params file (set by app.py when a venue is used)
        self.preset_name: str | None = None
        self._mappings: tuple[MoodMapping, ...] = ()
        self._fade: Crossfade | None = None
        if options.preset:
            first = self.presets.load(options.preset)  # at start-up a broken preset is an error to fix
            self._apply_now(first)
        for path, value in options.overrides.items():
            self.params.set_base(path, value, clamp=False)
        if options.particles:
            self.params.set_base("field/particles", options.particles)
        w, h = options.size
        self.field = ParticleField(ctx, self.shaders, self.params, w / h, options.seed)
        self.renderer = TapestryRenderer(ctx, self.shaders, self.params, options.size)
        self.mood_model = MoodModel(self.params, seed=options.seed)
        self.mood: Mood = self.mood_model.update(None, None, 0.0)
        self.sensors = sensors
        self.leds = None
        if leds is not None:
            self.attach_leds(leds)
        self.sinks = list(sinks)
        self.scenes = scenes
        self.schedule = schedule
        self.schedule_level = 1.0
        self.clock_time = 0.0
        self.last_dt = 1.0 / 60.0
        self.frame_count = 0
        self.tapestry = self.renderer.tapestry
        self._frame_ms: deque[float] = deque(maxlen=240)
        self._frame_started: deque[float] = deque(maxlen=120)
        self._errors: dict[str, int] = {}
        self.last_errors: deque[str] = deque(maxlen=20)
        self.on_frame: list[Callable[["Engine"], None]] = []
        # Compile every program now: a broken shader at start-up is reported before the show begins.
        for name in ("field_flow.glsl", "field_step.glsl", "field_hue.glsl", "field_hue_resolve.glsl",
                     "field_resolve.glsl",
                     "field_glow_down.glsl", "field_glow.glsl"):
            self.shaders.compute(name)
        for slices in range(2, 5):  # the resolve's sim_every 2..4 variants: a broken one is reported now
            self.shaders.compute("field_resolve.glsl", {"SLICES": slices})

    def attach_leds(self, leds: LedStage, fps: float = 60.0) -> None:
        """Drive ``leds`` from the tapestry, handing it each frame's ``dt``.

        The power and flash limits are stages the LED pipeline builds for itself
        (installation.leds): nothing here, in a preset, an OSC message or a venue can leave them out.
        """
        self.flash_limiter = getattr(leds, "flash_limiter", None)
        prepare = getattr(leds, "prepare", None)
        if prepare is not None:
            prepare(self.tapestry.size)  # compile the sampling programs now, not in the first frame
        self.leds = leds

    # -- the frame ----------------------------------------------------
    def frame(self, dt: float) -> moderngl.Texture:
        """Run one frame of ``dt`` seconds and return the tapestry."""
        t0 = time.perf_counter()
        self._frame_started.append(t0)
        self.frame_count += 1
        self.clock_time += dt
        self.last_dt = dt
        self._drain()
        self._guard("sensors/mood", self._update_mood, dt)
        self._guard("scenes", self._update_scenes, dt)
        self._modulate(dt)
        self.field.set_attractors([Attractor(p.x, p.y, 0.6 + 3.0 * p.size, 0.08 + 0.5 * p.size)
                                   for p in self.mood.people])
        self._guard("field", self.field.step, dt, self.renderer.splat_target(self.field.count, self.field.slices))
        self._guard("render", self.renderer.render, dt, self.master_level(), self.field.round_started)
        tex = self.renderer.tapestry
        if self.leds is not None:
            self._guard("leds", self.leds.process, tex, dt)
        for sink in self.sinks:
            self._guard(type(sink).__name__, sink.consume, self, tex)
        for cb in self.on_frame:
            self._guard("on_frame", cb, self)
        self._frame_ms.append((time.perf_counter() - t0) * 1e3)
        return tex

    def master_level(self) -> float:
        """Show master x blackout x opening-hours level: what reaches the light."""
        if self.params["show/blackout"]:
            return 0.0
        return float(self.params["show/master"]) * self.schedule_level

    def _update_mood(self, dt: float) -> None:
        cam, audio = self.sensors(self.clock_time) if self.sensors else (None, None)
        self.mood = self.mood_model.update(cam, audio, dt)

    def _update_scenes(self, dt: float) -> None:
        if self.schedule is not None:
            self.schedule_level = float(self.schedule.level(_dt.datetime.now().astimezone()))
        if self.scenes is None:
            return
        for action in self.scenes.update(self.clock_time, dt, self.mood):
            if isinstance(action, FadeToPreset):
                self.load_preset(action.name, action.fade_s)
            elif isinstance(action, SceneEntered):
                log.info("scene %s (%s)", action.name, action.reason)

    def _modulate(self, dt: float) -> None:
        tree = self.params
        tree.clear_modulation()
        if self._fade is not None:
            self._fade.step(dt)
            if not self._fade.done and not self._fade.holds("field/malfunction"):
                self.renderer.follow_live_fever()   # someone took the malfunction over mid-fade
            weighted = self._fade.mappings()
            if self._fade.done:
                self._mappings = self._fade.new_mood
                self._fade = None
        else:
            weighted = [(m, 1.0) for m in self._mappings]
        mood = self.mood
        for m, weight in weighted:
            level = float(getattr(mood, m.source, 0.0))
            tree.modulate(m.target, weight * m.offset(level, tree.spec(m.target)))
        tree.resolve()

    def _drain(self) -> None:
        for _ in range(512):  # bounded: a command storm cannot stall a frame
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                return
            self._guard("command", cmd.apply, self)

    def _guard(self, where: str, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # the frame loop never dies for one part's failure
            n = self._errors.get(where, 0) + 1
            self._errors[where] = n
            msg = f"{where}: {type(exc).__name__}: {exc}"
            if n == 1 or n % 1000 == 0:
                log.error("%s (occurrence %d; the show goes on)", msg, n, exc_info=n == 1)
            if not self.last_errors or self.last_errors[-1] != msg:
                self.last_errors.append(msg)

    # -- running -----------------------------------------------------
    def run(self, clock: FixedStepClock | RealtimeClock, frames: int | None = None,
            stop: threading.Event | None = None) -> int:
        """Run frames until ``frames`` are done or ``stop`` is set; returns frames run."""
        n = 0
        while (frames is None or n < frames) and not (stop and stop.is_set()):
            self.frame(clock.next_frame())
            n += 1
        return n

    def close(self) -> None:
        """Send the configured end state to the LEDs and free GPU memory (idempotent)."""
        self.saver.close()  # queued saves are written first
        if self.leds is not None:
            try:
                self.leds.close(self.options.end_state)
                release = getattr(self.leds, "release", None)
                if release is not None:
                    release()
            except Exception:
                log.exception("closing the LED outputs failed")
            self.leds = None
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close:
                try:
                    close()
                except Exception:
                    log.exception("closing %s failed", type(sink).__name__)
        self.sinks = []

    # -- status --------------------------------------------------------
    def fps(self) -> float:
        """Frames per second over the last couple of seconds."""
        s = self._frame_started
        if len(s) < 2 or s[-1] <= s[0]:
            return 0.0
        return (len(s) - 1) / (s[-1] - s[0])

    def frame_ms(self) -> float:
        """Mean engine work per frame (ms), excluding the wait for the next frame."""
        return sum(self._frame_ms) / len(self._frame_ms) if self._frame_ms else 0.0

    def status(self) -> dict:
        """What the status line, OSC heartbeat and health endpoint report."""
        m = self.mood
        st = {
            "fps": round(self.fps(), 1), "frame_ms": round(self.frame_ms(), 2), "frames": self.frame_count,
            "particles": self.field.count, "preset": self.preset_name,
            "scene": self.scenes.current if self.scenes else None,
            "mood": {"intensity": round(m.intensity, 3), "presence": round(m.presence, 3),
                     "motion": round(m.motion, 3), "sound": round(m.sound, 3),
                     "excitement": round(m.excitement, 3), "people": len(m.people)},
            "sensors": list(m.live), "master": round(self.master_level(), 3),
            "errors": list(self.last_errors)[-5:],
        }
        if self.leds is not None:
            try:
                st["leds"] = self.leds.status()
            except Exception as exc:
                st["leds"] = {"error": str(exc)}
            self._note_led_worker(st["leds"].get("worker"))
        return st

    def _note_led_worker(self, w: dict | None) -> None:
        """Errors of the LED pipeline's stage worker (its own thread) join the engine's, as the frame's do."""
        if not w:
            return
        if w.get("errors", 0) > self._errors.get("leds/worker", 0):
            self._errors["leds/worker"] = w["errors"]
            msg = f"leds: {w.get('last_error')} (frames skipped)"
            if not self.last_errors or self.last_errors[-1] != msg:
                self.last_errors.append(msg)

    # -- live control (ControlTarget) -----------------------------------
    def preset_names(self) -> list[str]:
        """Names of the presets that can be loaded."""
        return self.presets.names()

    def load_preset(self, name: str, fade_s: float | None = None) -> None:
        """Crossfade to preset ``name``; a broken preset raises PresetError and changes nothing."""
        preset = self.presets.load(name)
        fade = self.params["show/fade"] if fade_s is None else float(fade_s)
        self._start_fade(preset, fade)

    def _look(self, preset: Preset) -> dict[str, object]:
        """Every look parameter as ``preset`` has it: the ones it does not name at their defaults.

        A look is whole: loading harmony gives harmony whatever came before (a shipped preset that leaves
        out `field/nodes/share` used to keep the previous preset's).  Venue and machine values are untouched.
        """
        look = {p: self.params.spec(p).default for p in self.params.bases(LOOK) if self.params.spec(p).live}
        look.update(preset.params)
        return look

    def _start_fade(self, preset: Preset, fade: float) -> None:
        old = self._fade.new_mood if self._fade else self._mappings
        look = self._look(preset)
        palette = look.get("render/palette", self.params.base("render/palette"))
        # the colour tables blend across the whole fade, in step with everything else (a switch at the
        # midpoint and a blend after it stacked the colour change into the fade's second half)
        malf = (float(self.params.base("field/malfunction")),
                float(look.get("field/malfunction", self.params.base("field/malfunction"))))
        self.renderer.blend_next_palette(palette, fade if fade > 0 else None, malf)
        self._fade = Crossfade(self.params, look, fade, old, preset.mood, early=frozenset({"render/palette"}))
        self.preset_name = preset.name
        skipped = [p for p in preset.params if not self.params.spec(p).live]
        if skipped:
            log.info("preset %s: %s take effect on restart", preset.name, ", ".join(skipped))

    def _apply_now(self, preset: Preset) -> None:
        # At start-up the tree holds defaults, plus what the caller chose on purpose before (kept).
        for path, value in preset.params.items():
            self.params.set_base(path, value)
        self._mappings = preset.mood
        self.preset_name = preset.name

    def save_preset(self, name: str, force: bool = False, done=None) -> None:
        """Save the look (look-scope bases, not the mood-modulated values) as preset ``name``.

        With ``done`` (live control) the file is written on the save worker and ``done(error_or_None)``
        is called there; a shipped preset is then always refused, ``force`` or not.  Without ``done``
        (local tools, tests) it is written now and ``force`` may overwrite a shipped preset.
        """
        bases = self.params.bases(LOOK)
        mood = self._fade.new_mood if self._fade else self._mappings
        if done is None:
            self.presets.save(name, bases, mood, force=force)
            log.info("preset %s saved", name)
            return
        path = self.presets.path(name)  # a bad name is refused now
        presets = self.presets

        def job() -> None:
            if presets.is_shipped(name):
                raise PresetError(f"{name} is a shipped preset and cannot be overwritten over the network; "
                                  "save under another name")
            presets.save(name, bases, mood)
            log.info("preset %s saved", name)
        self.saver.submit(str(path), job, done)

    def save_venue(self, done=None) -> None:
        """Save the venue-scope bases (calibration) to the venue's params file, on the save worker."""
        path = self.venue_params
        if path is None:
            raise ValueError("no venue file is in use, so there is nowhere to save the calibration")
        bases, tree = self.params.bases(VENUE), self.params

        def job() -> None:
            save_venue_params(path, bases, tree)
            log.info("venue calibration saved to %s", path)
        self.saver.submit(str(path), job, done)

    def go_scene(self, name: str) -> None:
        """Jump to scene ``name``."""
        if self.scenes is None:
            raise ValueError("no scene list is configured (add [scenes] to the venue file)")
        self.scenes.go(name)

    def file_changed(self, event) -> None:
        """Hot reload: a preset or shader changed on disk; keep the last good version on errors."""
        path = Path(event.path)
        if path.suffix == ".glsl":
            for err in self.shaders.reload():
                self.last_errors.append(f"shader: {err}")
        elif path.suffix == ".toml" and path.parent.resolve() == Path(self.options.presets).resolve():
            if self.preset_name == path.stem and not getattr(event, "removed", False):
                try:
                    self._start_fade(self.presets.load(path.stem), 1.0)
                    log.info("preset %s reloaded from disk", path.stem)
                except PresetError as exc:
                    log.error("preset changed on disk but is broken; keeping the running look: %s", exc)
                    self.last_errors.append(str(exc))

    def release(self) -> None:
        """Free GPU resources (after close)."""
        self.field.release()
        self.renderer.release()
        self.shaders.release()
