"""The engine side of remote control: what the engine thread publishes for the HTTP thread to read.

:class:`EngineBridge` hooks into a running :class:`~installation.engine.Engine` without touching its
loop: ``tree.listen`` hears base changes and ``engine.on_frame`` (engine thread) publishes them once a
frame as an immutable snapshot (a new dict each time: readers on other threads take the reference and
never see a half-written map), hands the batch of changes to subscribers (the OSCQuery LISTEN sessions,
whose callback only enqueues onto the server thread), and about once a second refreshes the show state
(presets, scenes, preset playing) and a small JPEG thumbnail of the tapestry into latest-value slots.

Commands from the web go through ``engine.commands`` like OSC's: :class:`NextScene` and
:class:`HoursOverride` are the two the OSC side does not have.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from installation.control.commands import Command, ControlTarget

log = logging.getLogger(__name__)

ChangeListener = Callable[[list[tuple[str, object]]], None]


@dataclass(frozen=True)
class ShowState:
    """What the page shows besides parameters (refreshed ~1 Hz on the engine thread)."""

    presets: tuple[str, ...] = ()
    preset: str | None = None
    scenes: tuple[str, ...] = ()
    scene: str | None = None
    hours: dict | None = None  # {"open": bool, "level": float, "override": "open"|"closed"|None, "until": iso}


class EngineBridge:
    """Latest-value slots the engine thread fills: parameter values, show state, thumbnail.

    ``values`` (dict path -> base) and ``state`` are replaced, never mutated, so any thread may read
    them.  ``subscribe(fn)`` registers ``fn(changes)``, called on the engine thread once per frame with
    the frame's ``[(path, base), ...]``; ``fn`` must only enqueue.
    """

    def __init__(self, thumb_size: tuple[int, int] = (160, 90), state_every_s: float = 1.0) -> None:
        self.values: dict[str, object] = {}
        self.state = ShowState()
        self.thumbnail: bytes | None = None
        self.thumb_size = thumb_size
        self.state_every_s = state_every_s
        self._pending: dict[str, object] = {}
        self._listeners: list[ChangeListener] = []
        self._last_state = -1e9
        self.engine = None

    def attach(self, engine) -> None:
        """Hook into ``engine`` (call before the frame loop starts, on the thread that will run it)."""
        self.engine = engine
        self.values = dict(engine.params.bases())
        engine.params.listen(self._changed)
        engine.on_frame.append(self.on_frame)
        self._refresh_state(engine)

    def subscribe(self, fn: ChangeListener) -> Callable[[], None]:
        """Hear every frame's changes (engine thread; ``fn`` must only enqueue)."""
        self._listeners = [*self._listeners, fn]
        return lambda: setattr(self, "_listeners", [f for f in self._listeners if f is not fn])

    def _changed(self, path: str, value: object) -> None:
        self._pending[path] = value

    def on_frame(self, engine) -> None:
        """Engine thread, once a frame: publish changes; about once a second, state and thumbnail."""
        if self._pending:
            changes, self._pending = list(self._pending.items()), {}
            self.values = {**self.values, **dict(changes)}
            for fn in self._listeners:
                try:
                    fn(changes)
                except Exception:  # noqa: BLE001 - a subscriber never breaks the frame
                    log.exception("change subscriber failed")
        now = time.monotonic()
        if now - self._last_state >= self.state_every_s:
            self._last_state = now
            self._refresh_state(engine)
            self.thumbnail = self._thumb(engine)

    def _refresh_state(self, engine) -> None:
        scenes = getattr(engine, "scenes", None)
        names = tuple(scenes.scenes.names()) if scenes is not None else ()
        sched = getattr(engine, "schedule", None)
        hours = None
        if sched is not None:
            now = _dt.datetime.now().astimezone()
            ov = sched if isinstance(sched, OverriddenSchedule) else None
            hours = {"open": bool(sched.is_open(now)), "level": round(float(engine.schedule_level), 3),
                     "override": ov.mode if ov and ov.active(now) else None,
                     "until": ov.until.isoformat(timespec="seconds") if ov and ov.active(now) else None}
        try:
            presets = tuple(engine.preset_names())
        except Exception:  # noqa: BLE001 - a broken presets folder shows as an empty list
            presets = ()
        self.state = ShowState(presets, engine.preset_name, names, scenes.current if scenes else None, hours)

    def _thumb(self, engine) -> bytes | None:
        import cv2
        try:
            rgba = np.frombuffer(engine.tapestry.read(), np.uint8).reshape(
                engine.tapestry.height, engine.tapestry.width, 4)
        except Exception:  # noqa: BLE001 - no thumbnail rather than a broken frame
            return None
        # rows as the recorder writes them (row 0 = top); RGBA -> BGR for OpenCV
        small = cv2.resize(rgba[:, :, 2::-1], self.thumb_size, interpolation=cv2.INTER_AREA)
        ok, jpg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])
        return jpg.tobytes() if ok else None


@dataclass
class NextScene(Command):
    """Go to the scene after the current one in the venue's list (wraps to the first)."""

    def _apply(self, target: ControlTarget) -> None:
        runner = getattr(target, "scenes", None)
        if runner is None:
            raise ValueError("no scene list is configured (add [scenes] to the venue file)")
        cues = runner.scenes.cues
        names = [c.name for c in cues]
        cur = runner.current
        nxt = names[(names.index(cur) + 1) % len(names)] if cur in names else names[0]
        target.go_scene(nxt)
        self.reply("/tapestry/scene/current", nxt)


class OverriddenSchedule:
    """A venue schedule with a technician's "open now" / "closed now" until ``until``, then the hours again."""

    def __init__(self, inner, mode: str, until: _dt.datetime) -> None:
        self.inner = inner
        self.mode = mode
        self.until = until

    def active(self, now: _dt.datetime) -> bool:
        """True while the override holds."""
        return now < self.until

    def is_open(self, now: _dt.datetime) -> bool:
        """Open per the override while it holds, else per the hours."""
        return (self.mode == "open") if self.active(now) else self.inner.is_open(now)

    def level(self, now: _dt.datetime) -> float:
        """The schedule's open or closed level while the override holds, else the hours' ramp."""
        if self.active(now):
            return self.inner.open_level if self.mode == "open" else self.inner.closed_level
        return self.inner.level(now)


@dataclass
class HoursOverride(Command):
    """Override the opening hours: ``mode`` "open" or "closed" for ``minutes``; "auto" ends an override."""

    mode: str = "auto"
    minutes: float = 60.0

    def _apply(self, target: ControlTarget) -> None:
        sched = getattr(target, "schedule", None)
        if sched is None:
            raise ValueError("no opening hours are configured (add [schedule] to the venue file)")
        inner = sched.inner if isinstance(sched, OverriddenSchedule) else sched
        if self.mode == "auto":
            target.schedule = inner
            return
        until = _dt.datetime.now().astimezone() + _dt.timedelta(minutes=self.minutes)
        target.schedule = OverriddenSchedule(inner, self.mode, until)
        log.info("opening hours overridden: %s until %s", self.mode, until.isoformat(timespec="minutes"))
