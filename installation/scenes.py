"""The story arc of a show and the venue's opening hours, both read from the venue's TOML file.

A :class:`SceneList` is a cue list (harmony -> tension -> breakdown ->
restoration -> symbiosis, or any other): each cue names a preset and a fade,
lasts a duration or waits for a mood trigger ("when intensity stays above
0.7 for 20 s, go to restoration"), and the list may loop.  A
:class:`SceneRunner` plays it: the engine calls ``update(t, dt, mood)`` once
a frame with its own clock and gets back actions (:class:`SceneEntered`,
:class:`FadeToPreset`); the runner reads no wall clock, so renders with a
fixed-step clock are deterministic.

A :class:`Schedule` is a week of opening hours on the venue's local clock
(with optional holidays): ``level(now)`` is 0..1, ramping smoothly up after
opening and down to the idle level by closing, for the engine to multiply
into the master brightness.

The file format is documented in docs/scenes.md.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["SceneError", "MoodTrigger", "Cue", "SceneList", "SceneEntered", "FadeToPreset", "SceneRunner",
           "Schedule", "Venue", "parse_scenes", "parse_schedule", "load_venue"]

SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Preset and scene names (use ``fullmatch``): no paths, no dots, no spaces, no newline."""
_MOOD_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SceneError(ValueError):
    """A scene list or schedule that cannot be used; the message names the file and the key."""


# -- the cue list ----------------------------------------------------------

@dataclass(frozen=True)
class MoodTrigger:
    """Go to cue ``go`` when mood ``key`` stays above ``above`` (or below ``below``) for ``for_s`` seconds."""

    go: str
    key: str = "intensity"
    above: float | None = None
    below: float | None = None
    for_s: float = 0.0

    def holds(self, mood: object) -> bool:
        """True if this frame's mood meets the condition (a missing or non-finite value never does)."""
        v = _mood_value(mood, self.key)
        if v is None:
            return False
        return (self.above is None or v > self.above) and (self.below is None or v < self.below)

    def describe(self) -> str:
        parts = []
        if self.above is not None:
            parts.append(f"above {self.above:g}")
        if self.below is not None:
            parts.append(f"below {self.below:g}")
        return f"{self.key} {' and '.join(parts)} for {self.for_s:g} s"


@dataclass(frozen=True)
class Cue:
    """One scene: a preset faded in over ``fade_s``; it ends after ``duration_s`` (None: only by a trigger
    or ``/tapestry/scene/go``) and goes to ``next`` (None: the following cue).  Triggers are watched once
    the cue has run ``min_s`` seconds."""

    name: str
    preset: str
    fade_s: float = 5.0
    duration_s: float | None = None
    next: str | None = None
    triggers: tuple[MoodTrigger, ...] = ()
    min_s: float = 0.0


@dataclass(frozen=True)
class SceneList:
    """An ordered list of cues; ``loop`` goes back to the first after the last; ``start`` names the first played."""

    cues: tuple[Cue, ...]
    loop: bool = True
    start: str | None = None

    def __post_init__(self) -> None:
        if not self.cues:
            raise SceneError("a scene list needs at least one cue")
        names = [c.name for c in self.cues]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise SceneError(f"cue names must be unique: {', '.join(sorted(dup))}")
        known = set(names)
        targets = [(c.name, "next", c.next) for c in self.cues] + \
                  [(c.name, "when.go", t.go) for c in self.cues for t in c.triggers] + [("scenes", "start", self.start)]
        for where, key, target in targets:
            if target is not None and target not in known:
                raise SceneError(f"{where}: {key} = {target!r} is not a cue (cues: {', '.join(names)})")
        for c in self.cues:
            if any(t.go == c.name for t in c.triggers):
                raise SceneError(f"{c.name}: a trigger cannot go to its own cue (it would restart it over and over)")

    def names(self) -> list[str]:
        """Cue names in order."""
        return [c.name for c in self.cues]

    def cue(self, name: str) -> Cue:
        """The cue called ``name``; :class:`ValueError` naming the known cues otherwise."""
        for c in self.cues:
            if c.name == name:
                return c
        raise ValueError(f"unknown scene {name!r} (scenes: {', '.join(self.names())})")

    def following(self, cue: Cue) -> Cue | None:
        """Where ``cue`` goes when its duration is over (None: the list has ended)."""
        if cue.next is not None:
            return self.cue(cue.next)
        i = self.cues.index(cue)
        if i + 1 < len(self.cues):
            return self.cues[i + 1]
        return self.cues[0] if self.loop else None


@dataclass(frozen=True)
class SceneEntered:
    """Action: the runner entered scene ``name`` (``reason`` says why: start, duration, a trigger, go)."""

    name: str
    reason: str


@dataclass(frozen=True)
class FadeToPreset:
    """Action: crossfade to preset ``name`` over ``fade_s`` seconds."""

    name: str
    fade_s: float


Action = SceneEntered | FadeToPreset


class SceneRunner:
    """Plays a :class:`SceneList` on the engine's clock; deterministic for the same ``t``/``dt``/mood inputs.

    ``update(t, dt, mood)`` once a frame returns the actions for this frame
    (empty most of the time).  ``go(name)`` (from ``/tapestry/scene/go``)
    jumps on the next update.  ``mood`` is a mapping or an object with
    attributes (``intensity``, ...).
    """

    def __init__(self, scenes: SceneList, keep_first_preset: bool = False) -> None:
        self.scenes = scenes
        self.keep_first_preset = keep_first_preset  # an explicit --preset: the first cue does not fade it away
        self._cue: Cue | None = None
        self._entered = 0.0
        self._t = 0.0
        self._held: list[float] = []
        self._requested: str | None = None
        self.finished = False

    @property
    def current(self) -> str | None:
        """Name of the scene playing (None before the first update)."""
        return self._cue.name if self._cue else None

    @property
    def time_in_scene(self) -> float:
        """Seconds since the current scene was entered (on the engine's clock)."""
        return self._t - self._entered if self._cue else 0.0

    def go(self, name: str) -> None:
        """Jump to scene ``name`` at the next update; :class:`ValueError` for an unknown name."""
        self.scenes.cue(name)
        self._requested = name

    def update(self, t: float, dt: float, mood: object = None) -> list[Action]:
        """Advance to time ``t`` (``dt`` since the last frame) and return what to do this frame."""
        self._t = t
        if self._requested is not None:
            name, self._requested = self._requested, None
            return self._enter(self.scenes.cue(name), t, "go")
        if self._cue is None:
            first = self._enter(self.scenes.cue(self.scenes.start or self.scenes.cues[0].name), t, "start")
            return [a for a in first if not (self.keep_first_preset and isinstance(a, FadeToPreset))]
        cue = self._cue
        if t - self._entered >= cue.min_s:
            for i, trig in enumerate(cue.triggers):
                holds = trig.holds(mood)
                self._held[i] = self._held[i] + max(dt, 0.0) if holds else 0.0
                if holds and self._held[i] >= trig.for_s:
                    return self._enter(self.scenes.cue(trig.go), t, trig.describe())
        actions: list[Action] = []
        # duration over: follow the list on an exact timeline (a long frame may pass several short cues)
        for _ in range(len(self.scenes.cues) + 1):
            if self._cue.duration_s is None or self.finished or t - self._entered < self._cue.duration_s:
                break
            nxt = self.scenes.following(self._cue)
            if nxt is None:
                self.finished = True
                break
            actions = self._enter(nxt, self._entered + self._cue.duration_s, "duration")
        return actions

    def _enter(self, cue: Cue, at: float, reason: str) -> list[Action]:
        self._cue = cue
        self._entered = at
        self._held = [0.0] * len(cue.triggers)
        self.finished = False
        return [SceneEntered(cue.name, reason), FadeToPreset(cue.preset, cue.fade_s)]


def _mood_value(mood: object, key: str) -> float | None:
    if mood is None:
        return None
    v = mood.get(key) if isinstance(mood, Mapping) else getattr(mood, key, None)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


# -- opening hours ---------------------------------------------------------

def _ease(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class Schedule:
    """Weekly opening hours on the venue's local clock.

    ``hours[d]`` (d = 0 Monday .. 6 Sunday) lists (open, close) times; a close
    at or before the open means after midnight.  ``holidays`` are dates
    closed all day.  Light ramps from ``closed_level`` up to ``open_level``
    over ``fade_in_s`` after opening and back down over ``fade_out_s`` ending
    at closing (smoothstep), so outside the hours it is exactly
    ``closed_level``.  ``timezone`` (IANA) converts aware datetimes; naive ones
    are taken as local venue time.
    """

    hours: tuple[tuple[tuple[_dt.time, _dt.time | None], ...], ...]
    fade_in_s: float = 300.0
    fade_out_s: float = 600.0
    open_level: float = 1.0
    closed_level: float = 0.0
    holidays: frozenset[_dt.date] = frozenset()
    timezone: str | None = None

    def _local(self, now: _dt.datetime) -> _dt.datetime:
        if now.tzinfo is None:
            return now
        if self.timezone:
            return now.astimezone(ZoneInfo(self.timezone)).replace(tzinfo=None)
        return now.astimezone().replace(tzinfo=None)

    def intervals(self, now: _dt.datetime) -> list[tuple[_dt.datetime, _dt.datetime]]:
        """Opening intervals around ``now`` (yesterday .. tomorrow), local, merged where they touch."""
        day = self._local(now).date()
        spans = []
        for offset in (-1, 0, 1):
            d = day + _dt.timedelta(days=offset)
            if d in self.holidays:
                continue
            for start, end in self.hours[d.weekday()]:
                s = _dt.datetime.combine(d, start)
                e = _dt.datetime.combine(d + _dt.timedelta(days=1), end or _dt.time(0)) \
                    if end is None or end <= start else _dt.datetime.combine(d, end)
                spans.append((s, e))
        spans.sort()
        merged: list[tuple[_dt.datetime, _dt.datetime]] = []
        for s, e in spans:
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        return merged

    def is_open(self, now: _dt.datetime) -> bool:
        """True within opening hours."""
        t = self._local(now)
        return any(s <= t < e for s, e in self.intervals(now))

    def level(self, now: _dt.datetime) -> float:
        """Brightness factor 0..1 at ``now``: smooth ramps at opening and closing."""
        t = self._local(now)
        best = 0.0
        for s, e in self.intervals(now):
            if s <= t <= e:
                up = _ease((t - s).total_seconds() / self.fade_in_s) if self.fade_in_s > 0 else 1.0
                down = _ease((e - t).total_seconds() / self.fade_out_s) if self.fade_out_s > 0 else 1.0
                best = max(best, min(up, down))
        return self.closed_level + (self.open_level - self.closed_level) * best


# -- parsing ---------------------------------------------------------------

@dataclass(frozen=True)
class Venue:
    """What a venue file says about the show's time: the cue list and the opening hours (either may be absent)."""

    scenes: SceneList | None = None
    schedule: Schedule | None = None
    source: str = "<venue>"


class _Reader:
    """Typed access to one TOML table with errors that name file and key, and a check for unknown keys."""

    def __init__(self, table: object, source: str, where: str) -> None:
        if not isinstance(table, Mapping):
            raise SceneError(f"{source}: {where}: expected a table, got {type(table).__name__}")
        self.table, self.source, self.where = table, source, where
        self.used: set[str] = set()

    def fail(self, key: str, problem: str) -> SceneError:
        return SceneError(f"{self.source}: {self.where}.{key}: {problem}")

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.table.get(key, default)

    def number(self, key: str, default: float | None, lo: float = 0.0, hi: float = math.inf,
               lo_open: bool = False) -> float | None:
        v = self.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or v < lo or v > hi or (lo_open and v == lo):
            rng = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi != math.inf else "")
            raise self.fail(key, f"expected a number {rng}, got {v!r}")
        return float(v)

    def name(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        v = self.get(key, default)
        if v is None:
            if required:
                raise self.fail(key, "is required")
            return None
        if not isinstance(v, str) or not SAFE_NAME.fullmatch(v):
            raise self.fail(key, f"expected a name of 1-64 characters A-Z a-z 0-9 _ -, got {v!r}")
        return v

    def boolean(self, key: str, default: bool) -> bool:
        v = self.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(key, f"expected true or false, got {v!r}")
        return v

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise SceneError(f"{self.source}: {self.where}: unknown key(s) {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(self.used))})")


def parse_scenes(table: Mapping, source: str = "<venue>") -> SceneList:
    """Build a :class:`SceneList` from a venue's ``[scenes]`` table; :class:`SceneError` names file and key."""
    r = _Reader(table, source, "scenes")
    loop = r.boolean("loop", True)
    start = r.name("start")
    default_fade = r.number("fade_s", 5.0)
    raw = r.get("cue", [])
    if not isinstance(raw, list) or not raw:
        raise r.fail("cue", "needs at least one [[scenes.cue]]")
    r.done()
    cues = []
    for i, item in enumerate(raw):
        label = item.get("name") if isinstance(item, Mapping) and isinstance(item.get("name"), str) else f"#{i + 1}"
        c = _Reader(item, source, f"scenes.cue[{label}]")
        name = c.name("name", required=True)
        triggers = []
        when = c.get("when", [])
        if not isinstance(when, list):
            raise c.fail("when", "expected [[scenes.cue.when]] tables")
        for j, w in enumerate(when):
            tr = _Reader(w, source, f"scenes.cue[{label}].when[{j + 1}]")
            key = tr.get("mood", "intensity")
            if not isinstance(key, str) or not _MOOD_KEY.fullmatch(key):
                raise tr.fail("mood", f"expected a mood value name such as 'intensity', got {key!r}")
            above = tr.number("above", None, lo=-math.inf)
            below = tr.number("below", None, lo=-math.inf)
            if above is None and below is None:
                raise tr.fail("above", "a trigger needs above and/or below")
            trig = MoodTrigger(go=tr.name("go", required=True), key=key, above=above, below=below,
                               for_s=tr.number("for_s", 0.0))
            tr.done()
            triggers.append(trig)
        cue = Cue(name=name, preset=c.name("preset", name), fade_s=c.number("fade_s", default_fade),
                  duration_s=c.number("duration_s", None, lo_open=True), next=c.name("next"),
                  triggers=tuple(triggers), min_s=c.number("min_s", 0.0))
        c.done()
        cues.append(cue)
    try:
        return SceneList(tuple(cues), loop=loop, start=start)
    except SceneError as exc:
        raise SceneError(f"{source}: scenes: {exc}") from None


_TIME = re.compile(r"(\d{1,2}):(\d{2})")


def _parse_time(text: str, fail) -> _dt.time | None:
    m = _TIME.fullmatch(text.strip())
    if not m:
        raise fail(f"expected HH:MM, got {text!r}")
    h, mi = int(m.group(1)), int(m.group(2))
    if (h, mi) == (24, 0):
        return None  # midnight at the end of the day
    if h > 23 or mi > 59:
        raise fail(f"{text!r} is not a time of day")
    return _dt.time(h, mi)


def _parse_hours(value: object, fail) -> tuple[tuple[_dt.time, _dt.time | None], ...]:
    items = value if isinstance(value, list) else [value]
    if items == ["closed"] or items == []:
        return ()
    out = []
    for item in items:
        if not isinstance(item, str) or item.count("-") != 1:
            raise fail(f"expected \"HH:MM-HH:MM\", a list of them, or \"closed\"; got {item!r}")
        a, b = item.split("-")
        start = _parse_time(a, fail)
        if start is None:
            raise fail(f"an opening time cannot be 24:00 ({item!r})")
        end = _parse_time(b, fail)
        if end == start:
            raise fail(f"{item!r} opens and closes at the same time (use 00:00-24:00 for all day)")
        out.append((start, end))
    return tuple(out)


def parse_schedule(table: Mapping, source: str = "<venue>") -> Schedule:
    """Build a :class:`Schedule` from a venue's ``[schedule]`` table; :class:`SceneError` names file and key."""
    r = _Reader(table, source, "schedule")
    tz = r.get("timezone")
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise r.fail("timezone", f"unknown time zone {tz!r} (use an IANA name such as 'Europe/Berlin')") from None
    open_level = r.number("open_level", 1.0, hi=1.0)
    closed_level = r.number("closed_level", 0.0, hi=1.0)
    hours_table = r.get("hours", {})
    hr = _Reader(hours_table, source, "schedule.hours")
    daily = hr.get("daily", "closed")
    week = []
    for d in DAYS:
        key = d if d in hours_table else "daily"
        week.append(_parse_hours(hr.get(d, daily), lambda p, k=key: hr.fail(k, p)))
    hr.done()
    holidays = set()
    raw_h = r.get("holidays", [])
    if not isinstance(raw_h, list):
        raise r.fail("holidays", "expected a list of dates")
    for h in raw_h:
        if isinstance(h, str):
            try:
                h = _dt.date.fromisoformat(h)
            except ValueError:
                raise r.fail("holidays", f"{h!r} is not a date (YYYY-MM-DD)") from None
        if isinstance(h, _dt.datetime) or not isinstance(h, _dt.date):
            raise r.fail("holidays", f"{h!r} is not a date (YYYY-MM-DD)")
        holidays.add(h)
    sched = Schedule(hours=tuple(week), fade_in_s=r.number("fade_in_s", 300.0),
                     fade_out_s=r.number("fade_out_s", 600.0), open_level=open_level, closed_level=closed_level,
                     holidays=frozenset(holidays), timezone=tz)
    r.done()
    if not any(week):
        raise r.fail("hours", "the venue is never open (set daily = \"HH:MM-HH:MM\" or per day mon..sun)")
    return sched


def load_venue(path: str | Path) -> Venue:
    """Read ``[scenes]`` and ``[schedule]`` from a venue TOML file (other sections are ignored here)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SceneError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SceneError(f"{path}: not valid TOML: {exc}") from None
    return venue_from_dict(data, str(path))


def venue_from_dict(data: Mapping, source: str = "<venue>") -> Venue:
    """Like :func:`load_venue` for an already parsed TOML document."""
    scenes = parse_scenes(data["scenes"], source) if "scenes" in data else None
    schedule = parse_schedule(data["schedule"], source) if "schedule" in data else None
    return Venue(scenes, schedule, source)


# -- the schema of [scenes] and [schedule] (registered in installation/showfile.py) ----------------
def _schemas():
    from .schema import REQUIRED, Key, Section
    when = Section("when", "A mood trigger: go to another cue when a mood value stays above/below a level.",
                   many=True, keys=(
        Key("mood", str, "intensity", "the mood value watched (intensity, presence, motion, sound ...)"),
        Key("above", float, None, "fire when the value is above this"),
        Key("below", float, None, "fire when the value is below this"),
        Key("for_s", float, 0.0, "... for this long", unit="s", lo=0),
        Key("go", str, REQUIRED, "the cue to go to"),
    ))
    cue = Section("cue", "One cue of the story arc, played in order.", many=True, keys=(
        Key("name", str, REQUIRED, "the cue's name (1-64 characters A-Z a-z 0-9 _ -)"),
        Key("preset", str, None, "the preset it shows (default: the cue's name)"),
        Key("fade_s", float, None, "fade into this cue (default: [scenes] fade_s)", unit="s", lo=0),
        Key("duration_s", float, None, "how long it plays before the next cue (none: until a trigger)",
            unit="s", lo=0, lo_open=True),
        Key("min_s", float, 0.0, "triggers wait this long after the cue starts", unit="s", lo=0),
        Key("next", str, None, "the cue after this one (default: the next in the list)"),
        Key("when", list, None, "mood triggers", section=when),
    ))
    scenes = Section("scenes", "The story arc, played unattended (docs/scenes.md). The first cue's preset "
                     "is shown at start unless --preset is given.", keys=(
        Key("loop", bool, True, "start again after the last cue"),
        Key("start", str, None, "the cue to start with (default: the first)"),
        Key("fade_s", float, 5.0, "default fade between cues", unit="s", lo=0),
        Key("cue", list, REQUIRED, "the cues", section=cue),
    ), build=lambda raw, where: parse_scenes(raw, where.split(": ")[0]))
    hours = Section("hours", "Opening hours: \"HH:MM-HH:MM\", a list of them, or \"closed\"; per day or daily.",
                    keys=tuple(Key(d, (str, list), None, f"opening hours on {d}" if d != "daily" else
                                   "opening hours on every day not listed", item=str)
                               for d in ("daily",) + tuple(DAYS)))
    schedule = Section("schedule", "Opening hours: the show fades to closed_level outside them.", keys=(
        Key("timezone", str, None, "IANA time zone, e.g. Europe/Berlin (default: the machine's)"),
        Key("open_level", float, 1.0, "brightness while open", lo=0, hi=1),
        Key("closed_level", float, 0.0, "brightness while closed", lo=0, hi=1),
        Key("fade_in_s", float, 300.0, "fade at opening", unit="s", lo=0),
        Key("fade_out_s", float, 600.0, "fade at closing", unit="s", lo=0),
        Key("hours", dict, REQUIRED, "opening hours", section=hours),
        Key("holidays", list, None, "closed on these dates (YYYY-MM-DD)", item=(str, _dt.date)),
    ), build=lambda raw, where: parse_schedule(raw, where.split(": ")[0]))
    return scenes, schedule


SCENES_SCHEMA, SCHEDULE_SCHEMA = _schemas()
