"""The LED path of a frame: one explicit list of stages, owned by :class:`LedPipeline`.

    correct -> power -> quantize -> flash -> pack -> send

* ``correct`` (GPU, one dispatch): sample the tapestry over every LED's footprint (or take the
  per-LED colours given) and apply gamma, white balance x brightness and the master level --
  the one place they are applied (``shaders/led_sample.glsl``); one readback;
* ``power``: the power limit per supply (``ColorPipeline.limit_power``);
* ``quantize``: RGBW, dithering, 8 bits (``ColorPipeline.quantize``): from here the levels are the
  light the bytes will make, so the next stage limits what goes on the wire;
* ``flash``: the photosensitive flash limiter (``installation.safety.FlashLimiter``), handed
  the frame's ``dt``; counted over the whole and over regions sized by the venue's ``[safety]``;
  the LEDs it slows are quantised again;
* ``pack``: every controller's buffer in its colour order (``ColorPipeline.pack``);
* ``send``: a slot write; a hand-off thread calls every controller's non-blocking ``send``.

The pipeline builds every stage itself from the venue: there is no argument, parameter or
attribute that leaves the power or the flash limit out.  ``process`` is called on the engine
thread (or a script's own thread when it owns the pipeline's GL context).  With
``worker=True`` (the live show) only ``correct`` runs there; the CPU stages run on a thread of
their own, fed the newest sampled frame (a frame the worker had not started when the next one
came is replaced, and its ``dt`` is added to the next, so the flash limiter still counts real
time): the frame loop pays for the GPU pass and a hand-off, never for the limiters.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable, Sequence

import moderngl
import numpy as np

from installation.color import PARAMS as COLOR_PARAMS
from installation.color import ColorPipeline
from installation.fixtures.sampler import LedSampler
from installation.outputs.claim import ControllerClaim
from installation.params import ParamSpec, ParamTree
from installation.safety import FlashLimiter, venue_region
from installation.slot import NewestSlot
from installation.venue import END_STATES, Venue

log = logging.getLogger(__name__)

PARAMS: tuple[ParamSpec, ...] = COLOR_PARAMS


def _build_outputs(venue: Venue) -> list:
    """One Output per controller that has fixtures, with its spans; in ``venue.patch.controllers`` order.

    Private: a venue's outputs are built by :class:`LedPipeline`, after it has claimed the controllers, and
    fed only by its stages (the flash and power limits); the benchmark of the bare path is the one other
    caller."""
    from installation.outputs import create_output
    from installation.outputs.base import Span

    outs = []
    for c in venue.patch.controllers:
        spans = [Span(address=a, offset=o, length=n) for a, o, n in c.spans]
        outs.append(create_output(venue.output(c.name), spans))
    return outs


class _Handoff(NewestSlot):
    """One thread that hands each packed frame to every output, so the frame thread only fills a slot.

    ``Output.send`` never blocks on the network, but each one copies its share and wakes its sender
    thread; done for every controller on the frame thread, those senders then compete with it for
    the GIL and the cores while it is still handing out the rest.  Here the frame thread's part is
    one slot write; a frame not yet handed out when the next arrives is replaced (newest wins).
    """

    thread_name = "leds-handoff"

    def __init__(self, outputs: Sequence, slices: Sequence[slice]):
        super().__init__()
        self.outputs, self.slices = list(outputs), list(slices)
        self.busy_s = 0.0  # time spent handing out (thread CPU)
        self._failed: set[str] = set()

    def _handle(self, buf: np.ndarray) -> None:
        t = time.thread_time()
        for out, sl in zip(self.outputs, self.slices):
            try:
                out.send(buf[sl])
            except Exception:  # Output.send logs its own input problems; this is a bug: log once, go on
                name = getattr(out, "name", "?")
                if name not in self._failed:
                    self._failed.add(name)
                    log.exception("output %s: send failed (logged once)", name)
        self.busy_s += time.thread_time() - t


class _StageWorker(NewestSlot):
    """Runs the CPU stages (power -> send) of :class:`LedPipeline` on their own thread.

    The frame thread samples into one of three buffers (never one the worker is reading or the
    one waiting for it), then :meth:`put` makes ``(buffer index, dt)`` the pending frame; a pending
    frame the worker has not taken is replaced and its ``dt`` added to the new one's, so the flash
    limiter's clock keeps the wall's.  The worker copies the buffer into the colour pipeline's levels
    and runs the stages under the pipeline's stage lock, so :meth:`LedPipeline.close` can go dark
    through the same stages once the worker has stopped.  A stage that raises is logged (first time,
    then every 1000th), the frame is skipped and the worker goes on.
    """

    thread_name = "leds-stages"

    def __init__(self, pipeline: "LedPipeline", n: int):
        super().__init__()
        self._pipe = pipeline
        self.buffers = [np.zeros((n, 3), np.float32) for _ in range(3)]
        self._reading: int | None = None
        self._carry_dt = 0.0    # the time of frames that failed, handed to the next
        self.done = 0           # frames the worker ran through every stage
        self.errors = 0
        self.last_error = ""

    def free(self) -> int:
        """Index of a buffer the frame thread may sample into now (the frame thread is the only producer)."""
        with self._cv:
            used = (self._reading, self._pending[0] if self._pending is not None else None)
        return next(i for i in range(len(self.buffers)) if i not in used)

    def _merge(self, older: tuple[int, float], newer: tuple[int, float]) -> tuple[int, float]:
        return newer[0], newer[1] + older[1]

    def _taken(self, item: tuple[int, float]) -> None:
        self._reading = item[0]

    def _handle(self, item: tuple[int, float]) -> None:
        index, dt = item
        pipe = self._pipe
        with pipe._stage_lock:
            np.copyto(pipe.color.levels, self.buffers[index])
            with self._cv:
                self._reading = None
            dt, self._carry_dt = dt + self._carry_dt, 0.0
            try:
                pipe._run_stages(LedFrame(None, dt, pipe.color.levels), pipe.stages[1:])
                self.done += 1
            except Exception as exc:  # the frame is skipped (its time goes to the next); the show goes on
                self._carry_dt = dt
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.errors == 1 or self.errors % 1000 == 0:
                    log.error("LED stages: %s (occurrence %d; frame skipped)", self.last_error, self.errors,
                              exc_info=self.errors == 1)

    def status(self) -> dict:
        return {"alive": self.alive, "done": self.done, "dropped": self.replaced, "errors": self.errors,
                "last_error": self.last_error}


class LedFrame:
    """One frame on its way through the stages: its source, its ``dt``, the float levels, the bytes."""

    __slots__ = ("source", "dt", "levels", "packed", "hold")

    def __init__(self, source, dt: float | None, levels: np.ndarray):
        self.source = source          # a moderngl.Texture (the tapestry) or (N, 3) display-referred colours
        self.dt = dt                  # seconds since the previous frame (None: 1 / fps)
        self.levels = levels          # (N, 3) float32 LED drive levels, changed in place by the stages
        self.packed: np.ndarray | None = None
        self.hold = False             # a stage failed: send the last safe frame again


class CorrectStage:
    """Sample (or take the given colours) and apply gamma, white balance and master on the GPU."""

    name = "correct"

    def __init__(self, sampler: LedSampler, color: ColorPipeline):
        self.sampler, self.color = sampler, color

    def __call__(self, f: LedFrame) -> None:
        gamma, scale, gamma_default, master, key = self.color.gpu_correction()
        if isinstance(f.source, np.ndarray):
            self.sampler.correct_colors(f.source, gamma, scale, gamma_default, master, key=key, out=f.levels)
        else:
            self.sampler.sample_linear(f.source, gamma, scale, gamma_default, master, key=key, out=f.levels)


class PowerStage:
    """Keep every supply's estimated current within its budget."""

    name = "power"

    def __init__(self, color: ColorPipeline):
        self.color = color

    def __call__(self, f: LedFrame) -> None:
        self.color.limit_power()


class QuantizeStage:
    """RGBW, dithering, 8 bits: the levels become the light the bytes will make."""

    name = "quantize"

    def __init__(self, color: ColorPipeline):
        self.color = color

    def __call__(self, f: LedFrame) -> None:
        self.color.quantize()


class FlashStage:
    """The photosensitive flash limiter on the light the quantised bytes make, handed the frame's ``dt``.

    The ``dt`` it counts is never more than ``clock`` says passed since its last frame: frames reach
    the wire at the clock's pace, so a caller that claims more time (a low ``fps``, a large ``dt``)
    cannot spread a strobe over seconds that did not pass.  LEDs it slows are quantised again from
    its output.  If the limiter itself fails, the last frame sent (which passed it) is sent again
    until it works.
    """

    name = "flash"

    def __init__(self, limiter: FlashLimiter, color: ColorPipeline, clock: Callable[[], float] = time.monotonic):
        self.limiter, self.color, self.clock = limiter, color, clock
        self._failed = False
        self._last: float | None = None

    def _dt(self, dt: float | None) -> float:
        if dt is None or not math.isfinite(dt) or dt < 0:
            dt = 1.0 / self.limiter.fps
        now = self.clock()
        if self._last is not None:
            dt = min(dt, max(0.0, now - self._last))
        self._last = now
        return dt

    def __call__(self, f: LedFrame) -> None:
        try:
            out = self.limiter.limit(f.levels, self._dt(f.dt))
            if out is not f.levels:
                rows = np.flatnonzero((out != f.levels).any(axis=1))
                if rows.size:
                    self.color.requantize(rows, out[rows])
            self._failed = False
        except Exception:
            if not self._failed:
                log.exception("flash limiter failed; holding the last frame until it works again")
            self._failed = True
            f.hold = True


class PackStage:
    """Every controller's buffer, in its colour order."""

    name = "pack"

    def __init__(self, color: ColorPipeline):
        self.color = color
        self.last: np.ndarray = color.blackout()

    def __call__(self, f: LedFrame) -> None:
        f.packed = self.last if f.hold else self.color.pack()
        self.last = f.packed


class SendStage:
    """Hand the packed frame to the outputs (a slot write)."""

    name = "send"

    def __init__(self, send):
        self._send = send

    def __call__(self, f: LedFrame) -> None:
        self._send(f)


class LedPipeline:
    """The LED path for ``venue``: ``process(texture, dt)`` (the engine) or ``process_colors(colors, dt)``.

    Build one with ``LedPipeline(ctx, venue, tree, fps=60.0)``:

    * ``ctx``: the GL context whose thread will call it (the engine's), or None for a script:
      the pipeline then makes its own headless context (and frees it in :meth:`release`);
    * ``venue``: :func:`installation.venue.load_venue`'s result (layouts, outputs, power, ``[safety]``);
    * ``tree``: a ParamTree with :data:`PARAMS` declared (``ParamTree.from_specs(PARAMS)`` will do);
    * ``fps``: the nominal frame rate, the flash limiter's ``dt`` when a frame gives none;
    * ``clock``: the flash limiter never counts more time between two frames than this clock saw
      pass (the wall clock for anything on a wire); a simulation that makes frames faster than
      real time and shows them to nobody live (``installation/field/look.py``) passes its own;
    * ``outputs``: tests and benchmarks may pass their own, one per ``venue.patch.controllers``;
      without them the pipeline claims the venue's controllers (:mod:`installation.outputs.claim`:
      :class:`~installation.outputs.claim.ControllersBusy` if another program drives one) and builds them;
    * ``shaders``: the engine's ShaderLibrary (hot reload, file:line errors), else one of its own;
    * ``worker``: run the CPU stages on a thread of their own (the live show): ``process`` then
      returns None once the frame is sampled and handed over, and :attr:`last` has the bytes once sent.

    Every frame runs :attr:`stages` in order: correct -> power -> quantize -> flash -> pack -> send.
    """

    def __init__(self, ctx: moderngl.Context | None, venue: Venue, tree: ParamTree, fps: float = 60.0,
                 outputs: Sequence | None = None, shaders=None, worker: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self.venue = venue
        self.layout = venue.layout
        self.tree = tree
        region = venue_region(venue)   # a bad [safety] section fails here, before any GL object exists
        self._claim = None
        if outputs is None:   # the venue's own controllers: no other program may drive them meanwhile
            self._claim = ControllerClaim((venue.output(c.name), [a for a, _, _ in c.spans])
                                          for c in venue.patch.controllers)
        self._own_ctx = None
        self.sampler = None
        try:
            if ctx is None:
                from installation.gfx.context import headless_context
                ctx = self._own_ctx = headless_context()
            self.ctx = ctx
            self.sampler = LedSampler(ctx, self.layout, shaders=shaders)
            self.color = ColorPipeline(self.layout, venue.patch, tree, venue.supplies, venue.current,
                                       venue.max_brightness)
            n = self.layout.count
            areas = np.asarray(self.layout.areas(), np.float64) if n else np.ones(1)
            # each LED counts by the area it lights (equal shares if a layout cannot say)
            weights = areas if areas.size and np.isfinite(areas).all() and areas.sum() > 0 else np.ones(max(n, 1))
            self.flash_limiter = FlashLimiter(weights, fps, positions=self.layout.positions if n else None,
                                              region=region, snap=self.color.snap)
            self.outputs = list(outputs) if outputs is not None else _build_outputs(venue)
        except BaseException:   # nothing half-built stays held: the claim, the GL objects
            self._release_claim()
            self.release()
            raise
        pm = venue.patch
        self._slices = [slice(b, b + c.size) for b, c in zip(pm.base, pm.controllers)]
        self.frames = 0
        self._handoff = _Handoff(self.outputs, self._slices)
        self._closed = False
        self._closing = False
        self._pack = PackStage(self.color)
        #: the LED path, in order; built here and nowhere else
        self.stages: tuple = (CorrectStage(self.sampler, self.color), PowerStage(self.color),
                              QuantizeStage(self.color), FlashStage(self.flash_limiter, self.color, clock), self._pack,
                              SendStage(self._send))
        self.timing = {f"{st.name}_ms": 0.0 for st in self.stages}
        self.timing["frame_thread_ms"] = 0.0
        self._stage_lock = threading.Lock()   # the CPU stages: the worker's frame, or close() going dark
        self._threaded = bool(worker)
        self._worker = _StageWorker(self, n) if worker and n else None
        self._sampled = np.zeros((n, 3), np.float32) if self._worker is None else None

    @property
    def last(self) -> np.ndarray:
        """The last packed frame sent (all controllers end to end)."""
        return self._pack.last

    def prepare(self, size: tuple[int, int]) -> None:
        """Get the sampler ready for tapestries of ``size`` (w, h) (taps, programs), so the first frame
        does not pay for it."""
        if self.sampler is not None:
            self.sampler.prepare(size)

    def _run_stages(self, f: LedFrame, stages) -> None:
        tm = self.timing
        t0 = time.perf_counter()
        for stage in stages:
            stage(f)
            t1 = time.perf_counter()
            key = stage.name + "_ms"
            tm[key] += ((t1 - t0) * 1e3 - tm[key]) * 0.1   # smoothed
            t0 = t1

    def _run(self, source, dt: float | None) -> np.ndarray | None:
        if self.layout.count == 0 or self._closing:
            return None if self._threaded else self.last
        t0 = time.perf_counter()
        w = self._worker
        if w is None:
            # GL into a buffer of its own, outside the lock: close() (the watchdog's thread) never waits
            # on a GPU stall, and a late readback cannot land in the levels it is taking to black
            self._run_stages(LedFrame(source, dt, self._sampled), self.stages[:1])
            with self._stage_lock:
                np.copyto(self.color.levels, self._sampled)
                f = LedFrame(source, dt, self.color.levels)
                self._run_stages(f, self.stages[1:])
            out = f.packed
        else:
            index = w.free()
            self._run_stages(LedFrame(source, dt, w.buffers[index]), self.stages[:1])
            w.put((index, 1.0 / self.flash_limiter.fps if dt is None else float(dt)))
            out = None
        tm = self.timing
        tm["frame_thread_ms"] += ((time.perf_counter() - t0) * 1e3 - tm["frame_thread_ms"]) * 0.1
        return out

    def process(self, texture: moderngl.Texture, dt: float | None = None) -> np.ndarray | None:
        """Run every stage on the tapestry ``texture``, ``dt`` seconds after the last frame; returns the
        packed bytes sent (all controllers), or None with ``worker=True`` (the stages after
        ``correct`` then finish on the worker thread)."""
        return self._run(texture, dt)

    def process_colors(self, colors: np.ndarray, dt: float | None = None) -> np.ndarray | None:
        """Run every stage on (N, 3) display-referred colours 0..1 (test patterns, mapping codes)."""
        colors = np.asarray(colors, np.float32)
        if colors.shape != (self.layout.count, 3):
            raise ValueError(f"process_colors: expected ({self.layout.count}, 3) colours, got {colors.shape}")
        return self._run(colors, dt)

    def _send(self, f: LedFrame) -> None:
        """The send stage: hand the packed frame to every output (never blocks: a slot write; a hand-off
        thread calls each output's ``send``).  Private: bytes reach the outputs only through the stages."""
        if self._closed:
            return
        self.frames += 1
        if self.outputs:
            self._handoff.put(f.packed)
    def led_colors(self) -> np.ndarray:
        """(N, 3) uint8: what each LED shows after the whole pipeline (W folded back into R, G, B), for the preview.

        Unpacked from the last frame sent, so it includes calibration, power limit and dithering.
        """
        rgbw = self.color.unpack(self.last).astype(np.uint16)
        return np.minimum(rgbw[:, :3] + rgbw[:, 3:4], 255).astype(np.uint8)

    def status(self) -> dict:
        """LED count, frames, frames replaced before the hand-off thread took them, smoothed stage timings,
        power per supply, and each output's status."""
        st = {"leds": self.layout.count, "frames": self.frames, "replaced": self._handoff.replaced,
                **{k: round(v, 3) for k, v in self.timing.items()},
                "power": self.color.status(),
                "flash": {"frames_limited": self.flash_limiter.frames_limited},
                "outputs": [o.status() for o in self.outputs]}
        if self._worker is not None:
            st["worker"] = self._worker.status()
        return st

    def _fade_to_black(self, limit_s: float = 1.2) -> None:
        """Go dark through the CPU stages (power, quantize, flash, pack, send), frame by frame, until the
        flash limiter lets the blackout through: going dark is a transition too, and right after a
        burst of flashes it would be a fourth.  At most ``limit_s`` (the limiter's window frees by then)."""
        if self.layout.count == 0 or not self.outputs:   # nothing on a wire to go dark
            return
        dt = 1.0 / self.flash_limiter.fps
        end = time.monotonic() + limit_s
        while True:
            if not self._stage_lock.acquire(timeout=max(end - time.monotonic(), 0.0)):
                log.error("LED stages busy for %.1f s while going dark; sending the blackout directly", limit_s)
                return
            try:
                f = LedFrame(None, dt, self.color.levels)
                f.levels[...] = 0.0
                for stage in self.stages[1:]:   # every stage but the GPU one: no GL here
                    stage(f)
            except Exception:
                log.exception("LED stages failed while going dark; sending the blackout directly")
                return
            finally:
                self._stage_lock.release()
            if not f.packed.any() or time.monotonic() >= end:
                return
            time.sleep(dt)

    def close(self, end_state: str = "blackout") -> None:
        """Send the final frame (``blackout``: all zero, reached through the flash limiter -- up to about
        a second right after a burst of flashes; ``hold``: the last frame) and close the outputs.

        Touches no GL, so the frame watchdog may call it from its own thread while the engine
        thread is stuck in a GL call; :meth:`release` frees the GL side, on the engine thread.
        """
        if self._closing:
            return
        if end_state not in END_STATES:
            log.warning("end_state %r unknown; using blackout", end_state)
            end_state = "blackout"
        self._closing = True   # process() hands nothing more over
        if self._worker is not None and not self._worker.stop():
            log.error("LED stage worker did not stop within 1 s")
        if end_state == "blackout":
            self._fade_to_black()
        self._closed = True
        self._handoff.stop()
        final = self.color.blackout() if end_state == "blackout" else self.last
        for out, sl in zip(self.outputs, self._slices):
            try:
                out.close(final=final[sl])
            except Exception:
                log.exception("output %s: close failed", getattr(out, "name", "?"))
        self._release_claim()

    def _release_claim(self) -> None:
        if self._claim is not None:
            self._claim.release()
            self._claim = None

    def release(self) -> None:
        """Free the sampler's GL objects, and the context if the pipeline made it (after :meth:`close`)."""
        if self.sampler is not None:
            self.sampler.release()
            self.sampler = None
        if self._own_ctx is not None:
            self._own_ctx.release()
            self._own_ctx = None
