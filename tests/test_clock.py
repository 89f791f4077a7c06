"""Frame clocks: the fixed step never drifts; the realtime clock paces, clamps stalls and never bursts.

The realtime clock is driven by an injected fake time source, so nothing here waits on the wall clock.
"""

from __future__ import annotations

import math

import pytest

from installation.clock import FixedStepClock, RealtimeClock


class FakeTime:
    """A monotonic clock that only moves when slept on or told to (``work``)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        assert s > 0, "the clock asked to sleep a non-positive time"
        self.sleeps.append(s)
        self.t += s

    def work(self, s: float) -> None:
        self.t += s


def clock(fps=50.0, **kw):
    ft = FakeTime()
    return RealtimeClock(fps, sleep=ft.sleep, now=ft.now, **kw), ft


# -- fixed step -----------------------------------------------------------

@pytest.mark.parametrize("fps", [24, 25, 29.97, 30, 50, 60, 144])
def test_fixed_step_exact_and_no_drift(fps):
    c = FixedStepClock(fps)
    assert c.frame == 0 and c.time == 0.0 and c.dt == 1.0 / fps
    for n in range(1, 10_001):
        assert c.next_frame() == c.dt
        assert c.frame == n
        assert c.time == n * c.dt  # computed from the frame count, never accumulated
    assert c.time == pytest.approx(10_000 / fps, rel=1e-12)


def test_fixed_step_repeats():
    a, b = FixedStepClock(30), FixedStepClock(30)
    assert [a.next_frame() for _ in range(100)] == [b.next_frame() for _ in range(100)]
    assert a.time == b.time


@pytest.mark.parametrize("cls", [FixedStepClock, RealtimeClock])
@pytest.mark.parametrize("fps", [0, -30, math.nan])
def test_bad_fps_refused(cls, fps):
    with pytest.raises(ValueError, match="fps must be positive"):
        cls(fps)


# -- realtime -------------------------------------------------------------

def test_paces_to_fps_with_no_work():
    c, ft = clock(50)
    t0 = ft.t
    dts = [c.next_frame() for _ in range(500)]
    assert all(dt == pytest.approx(0.02, abs=1e-9) for dt in dts)
    assert ft.t - t0 == pytest.approx(10.0, abs=1e-6)
    assert c.frame == 500 and c.time == pytest.approx(10.0, abs=1e-6)
    assert len(ft.sleeps) == 500


def test_sleeps_only_the_rest_of_the_period():
    c, ft = clock(50)
    c.next_frame()
    for _ in range(100):
        ft.work(0.015)  # 15 ms of work in a 20 ms period
        dt = c.next_frame()
        assert ft.sleeps[-1] == pytest.approx(0.005, abs=1e-9)
        assert dt == pytest.approx(0.02, abs=1e-9)
    assert c.time == pytest.approx(101 * 0.02, abs=1e-6)


def test_slow_frames_report_their_real_duration():
    c, ft = clock(60, max_dt=0.1)
    c.next_frame()
    n_sleeps = len(ft.sleeps)
    for _ in range(50):
        ft.work(0.05)  # can only manage 20 fps
        assert c.next_frame() == pytest.approx(0.05, abs=1e-9)
    assert len(ft.sleeps) == n_sleeps  # never sleeps when behind


def test_huge_stall_clamped_to_max_dt():
    c, ft = clock(50, max_dt=0.1)
    c.next_frame()
    t_before = c.time
    ft.work(30.0)  # a suspended laptop
    assert c.next_frame() == 0.1
    assert c.time == pytest.approx(t_before + 0.1)
    ft.work(0.5)
    assert c.next_frame() == 0.1


def test_no_burst_after_stall():
    c, ft = clock(50, max_dt=0.1)
    for _ in range(5):
        c.next_frame()
    ft.work(10.0)
    c.next_frame()
    sleeps_before = len(ft.sleeps)
    t0 = ft.t
    dts = [c.next_frame() for _ in range(20)]
    # Every frame after the stall waits a full period again: no run of zero-wait catch-up frames.
    assert len(ft.sleeps) - sleeps_before == 20
    assert all(s == pytest.approx(0.02, abs=1e-9) for s in ft.sleeps[sleeps_before:])
    assert all(dt == pytest.approx(0.02, abs=1e-9) for dt in dts)
    assert ft.t - t0 == pytest.approx(0.4, abs=1e-9)


def test_slightly_late_frame_does_not_shift_the_grid_but_never_bursts():
    c, ft = clock(50)
    c.next_frame()
    ft.work(0.03)  # 1.5 periods
    assert c.next_frame() == pytest.approx(0.03, abs=1e-9)
    # The next frame is still due on the original grid: a short wait, not zero or a run of frames.
    assert c.next_frame() == pytest.approx(0.01, abs=1e-9)
    assert c.next_frame() == pytest.approx(0.02, abs=1e-9)

