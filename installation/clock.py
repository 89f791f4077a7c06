"""Frame clocks: wall-clock pacing for live shows, a fixed step for deterministic renders."""

from __future__ import annotations

import time


class FixedStepClock:
    """Advances exactly ``1/fps`` per frame and never looks at the wall clock.

    Renders use it so that the same preset, seed and inputs give the same
    frames byte for byte, however fast or slow the machine is.
    """

    def __init__(self, fps: float) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self.fps = float(fps)
        self.dt = 1.0 / self.fps
        self.frame = 0
        self.time = 0.0

    def next_frame(self) -> float:
        """Return this frame's time step and advance the clock."""
        self.frame += 1
        self.time = self.frame * self.dt
        return self.dt


class RealtimeClock:
    """Paces frames to the wall clock at up to ``fps``; dt is the real elapsed time.

    A stall (a slow frame, a suspended laptop) is clamped to ``max_dt`` so the
    simulation never takes one huge, explosive step.
    """

    def __init__(self, fps: float, max_dt: float = 0.1, sleep=time.sleep, now=time.perf_counter) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self.fps = float(fps)
        self.max_dt = max_dt
        self._sleep = sleep
        self._now = now
        self._last = now()
        self._next = self._last
        self.frame = 0
        self.time = 0.0

    def next_frame(self) -> float:
        """Sleep until the next frame is due, then return the clamped elapsed time."""
        period = 1.0 / self.fps
        self._next += period
        now = self._now()
        if self._next > now:
            self._sleep(self._next - now)
            now = self._now()
        elif now - self._next > period:
            self._next = now  # fell behind: do not try to catch up with a burst of frames
        dt = min(max(now - self._last, 0.0), self.max_dt)
        self._last = now
        self.frame += 1
        self.time += dt
        return dt
