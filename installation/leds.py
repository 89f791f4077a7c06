"""The LED path of a frame: tapestry texture -> per-LED colours -> corrected bytes -> outputs.

:class:`LedPipeline` ties a venue's layout, the GPU sampler, the colour
pipeline and one output per controller.  Everything is built once; a frame is
one compute dispatch (sampling, gamma, white balance, master) + readback, a few
numpy passes (power limit, safety, dithering, packing), and a slot write: a
hand-off thread calls every controller's non-blocking ``send`` (each output
copies its share into its own slot and encodes/transmits on its own thread).
Engine thread only.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Sequence

import moderngl
import numpy as np

from installation.color import PARAMS as COLOR_PARAMS
from installation.color import ColorPipeline, SafetyHook
from installation.fixtures.sampler import LedSampler
from installation.params import ParamSpec, ParamTree
from installation.venue import END_STATES, Venue

log = logging.getLogger(__name__)

PARAMS: tuple[ParamSpec, ...] = COLOR_PARAMS


def build_outputs(venue: Venue) -> list:
    """One Output per controller that has fixtures, with its spans; in ``venue.patch.controllers`` order."""
    from installation.outputs import create_output
    from installation.outputs.base import Span

    outs = []
    for c in venue.patch.controllers:
        spans = [Span(address=a, offset=o, length=n) for a, o, n in c.spans]
        outs.append(create_output(venue.output(c.name), spans))
    return outs


class _Handoff:
    """One thread that hands each packed frame to every output, so the frame thread only fills a slot.

    ``Output.send`` never blocks on the network, but each one copies its share and wakes its sender
    thread; done for every controller on the frame thread, those senders then compete with it for
    the GIL and the cores while it is still handing out the rest.  Here the frame thread's part is
    one slot write; a frame not yet handed out when the next arrives is replaced (newest wins).
    """

    def __init__(self, outputs: Sequence, slices: Sequence[slice]):
        self.outputs, self.slices = list(outputs), list(slices)
        self._cv = threading.Condition()
        self._pending: np.ndarray | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self.replaced = 0
        self.busy_s = 0.0  # time spent handing out (thread CPU)
        self._failed: set[str] = set()

    def put(self, buf: np.ndarray) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="leds-handoff", daemon=True)
            self._thread.start()
        with self._cv:
            if self._pending is not None:
                self.replaced += 1
            self._pending = buf
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                buf, self._pending = self._pending, None
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

    def stop(self, timeout: float = 1.0) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout)


class LedPipeline:
    """Builds layout, sampler, colour pipeline and outputs for ``venue``; ``process(texture)`` per frame.

    ``outputs`` may be given (tests, the benchmark) as a list matching
    ``venue.patch.controllers``; otherwise they are made from the venue.
    ``safety`` is applied to the final (N, 3) float frame before packing.
    """

    def __init__(self, ctx: moderngl.Context | None, venue: Venue, tree: ParamTree,
                 safety: SafetyHook | None = None, outputs: Sequence | None = None, shaders=None):
        self.venue = venue
        self.layout = venue.layout
        self.tree = tree
        self.sampler = LedSampler(ctx, self.layout, shaders=shaders) if ctx is not None else None
        self.color = ColorPipeline(self.layout, venue.patch, tree, venue.supplies, venue.current,
                                   venue.max_brightness, safety)
        self.outputs = list(outputs) if outputs is not None else build_outputs(venue)
        pm = venue.patch
        self._slices = [slice(b, b + c.size) for b, c in zip(pm.base, pm.controllers)]
        self.last: np.ndarray = self.color.blackout()
        self.frames = 0
        self.timing = {"sample_ms": 0.0, "color_ms": 0.0, "send_ms": 0.0}
        self._handoff = _Handoff(self.outputs, self._slices)
        self._closed = False

    @property
    def safety(self) -> SafetyHook | None:
        return self.color.safety

    @safety.setter
    def safety(self, hook: SafetyHook | None) -> None:
        self.color.safety = hook

    def prepare(self, size: tuple[int, int]) -> None:
        """Get the sampler ready for tapestries of ``size`` (w, h) (taps, programs), so the first frame
        does not pay for it."""
        if self.sampler is not None:
            self.sampler.prepare(size)

    def sample(self, texture: moderngl.Texture) -> np.ndarray:
        """Sample ``texture`` with gamma, white balance and master applied on the GPU, straight into
        ``color.levels`` (returned)."""
        gamma, scale, gamma_default, master, key = self.color.gpu_correction()
        return self.sampler.sample_linear(texture, gamma, scale, gamma_default, master, key=key,
                                          out=self.color.levels)

    def process(self, texture: moderngl.Texture) -> np.ndarray:
        """Sample, correct and send one frame; returns the packed bytes (all controllers)."""
        t0 = time.perf_counter()
        self.sample(texture)
        t1 = time.perf_counter()
        buf = self.color.process_levels()
        t2 = time.perf_counter()
        self.send(buf)
        t3 = time.perf_counter()
        a = 0.1  # smoothing of the timing figures
        tm = self.timing
        tm["sample_ms"] += ((t1 - t0) * 1e3 - tm["sample_ms"]) * a
        tm["color_ms"] += ((t2 - t1) * 1e3 - tm["color_ms"]) * a
        tm["send_ms"] += ((t3 - t2) * 1e3 - tm["send_ms"]) * a
        return buf

    def process_colors(self, colors: np.ndarray) -> np.ndarray:
        """Correct and send (N, 3) display-referred colours (no texture: patterns, tests)."""
        buf = self.color.process(colors)
        self.send(buf)
        return buf

    def send(self, buf: np.ndarray) -> None:
        """Hand a packed frame to every output (never blocks: a slot write; a hand-off thread calls
        each output's ``send``).  ``buf`` must not be changed afterwards (``process`` returns a new one)."""
        if self._closed:
            return
        self.last = buf
        self.frames += 1
        if self.outputs:
            self._handoff.put(buf)

    def led_colors(self) -> np.ndarray:
        """(N, 3) uint8: what each LED shows after the whole pipeline (W folded back into R, G, B), for the preview.

        Unpacked from the last frame sent, so it includes calibration, power limit and dithering.
        """
        rgbw = self.color.unpack(self.last).astype(np.uint16)
        return np.minimum(rgbw[:, :3] + rgbw[:, 3:4], 255).astype(np.uint8)

    def status(self) -> dict:
        """LED count, frames, frames replaced before the hand-off thread took them, smoothed stage timings,
        power per supply, and each output's status."""
        return {"leds": self.layout.count, "frames": self.frames, "replaced": self._handoff.replaced,
                **{k: round(v, 3) for k, v in self.timing.items()},
                "power": self.color.status(),
                "outputs": [o.status() for o in self.outputs]}

    def close(self, end_state: str = "blackout") -> None:
        """Send the final frame (``blackout``: all zero; ``hold``: the last frame) and close the outputs.

        Touches no GL, so the frame watchdog may call it from its own thread while the engine
        thread is stuck in a GL call; :meth:`release` frees the GL side, on the engine thread.
        """
        if self._closed:
            return
        if end_state not in END_STATES:
            log.warning("end_state %r unknown; using blackout", end_state)
            end_state = "blackout"
        self._closed = True
        self._handoff.stop()
        final = self.color.blackout() if end_state == "blackout" else self.last
        for out, sl in zip(self.outputs, self._slices):
            try:
                out.close(final=final[sl])
            except Exception:
                log.exception("output %s: close failed", getattr(out, "name", "?"))

    def release(self) -> None:
        """Free the sampler's GL objects (engine thread, after :meth:`close`)."""
        if self.sampler is not None:
            self.sampler.release()
            self.sampler = None
