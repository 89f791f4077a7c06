"""Presets: validated data files of parameter base values and mood mappings.

A preset is a TOML file in ``presets/``::

    description = "The network at rest: slow, coherent streams"
    [params]
    "field/harmony" = 0.9
    "render/palette" = "bioluminescent"
    [[mood]]                     # mood only modulates: base + amount x range x curve(source)
    source = "presence"          # intensity | presence | motion | sound | excitement | bass | voice | air
    target = "field/malfunction"
    amount = -0.4                # fraction of the target's range (-1 .. 1)
    curve = "smooth"             # linear | smooth | square | sqrt
    threshold = 0.1              # source below this gives nothing

Loading validates everything first (unknown path, wrong type, out of range:
a :class:`PresetError` naming file, key and valid range) so a bad file never
changes the running show.  Loading crossfades continuous values over a fade
time; discrete ones switch at the midpoint.  Saving writes atomically (temp
file + rename) and moves the previous version into ``.history/``; a shipped
preset (one without a ``saved`` stamp) is only overwritten with ``force``
(which live control never passes).

A preset holds the *look* only: parameters of scope ``venue`` (the
technician's calibration) or ``machine`` (quality settings) are never saved
in one, and are ignored when an older file names them, so loading a look never
undoes a calibration.  Venue-scope values live in the venue's own params file
(:func:`venue_params_path`).  Saves are bounded (presets in a directory, size,
history per preset) and live control runs them on a :class:`SaveWorker`
thread, never on the frame thread.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import re
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from .params import LOOK, VENUE, ParamError, ParamSpec, ParamTree

log = logging.getLogger(__name__)

SOURCES = ("intensity", "presence", "motion", "sound", "excitement", "bass", "voice", "air")
CURVES = ("linear", "smooth", "square", "sqrt")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_PRESETS = 200
"""Most preset files a directory may hold before saving a new name is refused."""
MAX_HISTORY = 10
"""Previous versions kept per preset in ``.history/`` (oldest removed first)."""
MAX_PRESET_BYTES = 64 * 1024
"""Largest preset file that is written (a full look is about 3 KiB)."""


class PresetError(ValueError):
    """A preset that cannot be loaded or saved; the message names the file, the key and the problem."""


@dataclass(frozen=True)
class MoodMapping:
    """One modulation: ``amount`` x target range x curve(mood source) added to the target's value."""

    source: str
    target: str
    amount: float
    curve: str = "linear"
    threshold: float = 0.0

    def offset(self, level: float, spec: ParamSpec) -> float:
        """The modulation in the target's units for a source ``level`` in 0..1."""
        x = min(max((level - self.threshold) / max(1.0 - self.threshold, 1e-6), 0.0), 1.0)
        if self.curve == "smooth":
            x = x * x * (3 - 2 * x)
        elif self.curve == "square":
            x = x * x
        elif self.curve == "sqrt":
            x = math.sqrt(x)
        return self.amount * x * (spec.hi - spec.lo)


@dataclass(frozen=True)
class Preset:
    """A validated preset: base values by path, mood mappings, and where it came from."""

    name: str
    description: str
    params: Mapping[str, object]
    mood: tuple[MoodMapping, ...] = ()
    path: Path | None = None
    shipped: bool = True
    ignored: tuple[str, ...] = ()
    """Venue- or machine-scope paths the file names: not part of a look, so never loaded from it."""


def parse_preset(data: Mapping, tree: ParamTree, name: str, where: str) -> Preset:
    """Validate a preset's content against ``tree``; raise :class:`PresetError` on any problem."""
    known = {"description", "params", "mood", "saved", "name"}
    for key in data:
        if key not in known:
            raise PresetError(f"{where}: unknown key {key!r} (expected one of {', '.join(sorted(known))})")
    desc = data.get("description", "")
    if not isinstance(desc, str):
        raise PresetError(f"{where}: description: expected text")
    raw = data.get("params", {})
    if not isinstance(raw, Mapping):
        raise PresetError(f"{where}: [params] must be a table of \"path\" = value")
    params: dict[str, object] = {}
    ignored = []
    for path, value in raw.items():
        if path not in tree:
            raise PresetError(f"{where}: params.{path}: unknown parameter (see `python run.py params`)")
        try:
            value = tree.validate(path, value, clamp=False)
        except ParamError as exc:
            raise PresetError(f"{where}: params.{exc}") from None
        if tree.in_scope(path, LOOK):
            params[path] = value
        else:  # venue or machine: still checked (a broken file is broken), never part of the look
            ignored.append(path)
    maps = data.get("mood", [])
    if not isinstance(maps, list):
        raise PresetError(f"{where}: mood must be an array of tables ([[mood]])")
    mood = []
    for i, m in enumerate(maps):
        at = f"{where}: mood[{i}]"
        if not isinstance(m, Mapping):
            raise PresetError(f"{at}: expected a table")
        extra = set(m) - {"source", "target", "amount", "curve", "threshold"}
        if extra:
            raise PresetError(f"{at}: unknown key {sorted(extra)[0]!r}")
        src, tgt = m.get("source"), m.get("target")
        if src not in SOURCES:
            raise PresetError(f"{at}.source: {src!r} is not one of {', '.join(SOURCES)}")
        if tgt not in tree:
            raise PresetError(f"{at}.target: unknown parameter {tgt!r}")
        if tree.spec(tgt).kind not in ("float", "int"):
            raise PresetError(f"{at}.target: {tgt} is not numeric; mood can only modulate numbers")
        amount = m.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not -1 <= amount <= 1:
            raise PresetError(f"{at}.amount: expected a number -1 .. 1 (fraction of the target's range)")
        curve = m.get("curve", "linear")
        if curve not in CURVES:
            raise PresetError(f"{at}.curve: {curve!r} is not one of {', '.join(CURVES)}")
        thr = m.get("threshold", 0.0)
        if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0 <= thr < 1:
            raise PresetError(f"{at}.threshold: expected a number 0 .. <1")
        mood.append(MoodMapping(src, tgt, float(amount), curve, float(thr)))
    return Preset(name, desc, params, tuple(mood), shipped="saved" not in data, ignored=tuple(ignored))


@dataclass
class PresetLibrary:
    """The presets in one directory, validated against a parameter tree."""

    root: Path
    tree: ParamTree

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def path(self, name: str) -> Path:
        """File of preset ``name`` (a safe name: letters, digits, - and _)."""
        if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
            raise PresetError(f"preset name {name!r}: use 1-64 letters, digits, '-' or '_' (no paths)")
        return self.root / f"{name}.toml"

    def names(self) -> list[str]:
        """Preset names, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.toml") if SAFE_NAME.fullmatch(p.stem))

    def load(self, name: str) -> Preset:
        """Read and validate preset ``name``."""
        path = self.path(name)
        return self.load_file(path)

    def load_file(self, path: Path) -> Preset:
        """Read and validate a preset file."""
        path = Path(path)
        where = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PresetError(f"no preset {path.stem!r} (looked for {where}); "
                              f"available: {', '.join(self.names()) or 'none'}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PresetError(f"{where}: cannot read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise PresetError(f"{where}: not valid TOML: {exc}") from None
        preset = parse_preset(data, self.tree, path.stem, where)
        return Preset(preset.name, preset.description, preset.params, preset.mood, path, preset.shipped,
                      preset.ignored)

    def describe(self) -> list[tuple[str, str]]:
        """(name, one-line description or the error) for every preset."""
        rows = []
        for name in self.names():
            try:
                rows.append((name, self.load(name).description))
            except PresetError as exc:
                rows.append((name, f"BROKEN: {exc}"))
        return rows

    def is_shipped(self, name: str) -> bool:
        """True if preset ``name`` exists and is one shipped with the piece (no ``saved`` stamp)."""
        path = self.path(name)
        try:
            return "saved" not in tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return False
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return False  # a broken file is nobody's shipped look: it may be replaced

    def save(self, name: str, bases: Mapping[str, object], mood: tuple[MoodMapping, ...] = (),
             description: str = "", force: bool = False) -> Path:
        """Write the look part of ``bases`` as preset ``name``, atomically; the previous version goes to
        ``.history/`` (at most :data:`MAX_HISTORY` kept).  Venue- and machine-scope values are left out."""
        path = self.path(name)
        bases = {p: v for p, v in bases.items() if p not in self.tree or self.tree.in_scope(p, LOOK)}
        exists = path.exists()
        if exists:
            try:
                old = self.load_file(path)
            except PresetError:
                old = None
            if old is not None and old.shipped and not force:
                raise PresetError(f"{name} is a shipped preset; save under another name or use force")
            description = description or (old.description if old else "")
        elif len(self.names()) >= MAX_PRESETS:
            raise PresetError(f"{self.root} already holds {MAX_PRESETS} presets (the most allowed); "
                              "overwrite or delete one")
        stamp = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        text = dump_preset(description, bases, mood, saved=stamp)
        if len(text.encode("utf-8")) > MAX_PRESET_BYTES:
            raise PresetError(f"{name}: preset would be {len(text.encode('utf-8'))} bytes, more than "
                              f"{MAX_PRESET_BYTES} (shorten the description)")
        parse_preset(tomllib.loads(text), self.tree, name, str(path))  # never write what we cannot read back
        hist = self.root / ".history"
        try:
            _atomic_write(path, text, before_replace=lambda: self._keep_history(path, name, hist) if exists else None)
        except OSError as exc:
            raise PresetError(f"{path}: could not save: {exc}") from None
        return path

    @staticmethod
    def _keep_history(path: Path, name: str, hist: Path) -> None:
        if not path.exists():
            return
        hist.mkdir(parents=True, exist_ok=True)
        ts = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        os.link(path, hist / f"{name}-{ts}.toml")
        # names sort by time stamp; keep the newest MAX_HISTORY of this preset
        old = sorted(p for p in hist.glob(f"{name}-*.toml") if p.name[len(name) + 1:len(name) + 2].isdigit())
        for p in old[:-MAX_HISTORY]:
            p.unlink(missing_ok=True)


def _atomic_write(path: Path, text: str, before_replace: Callable[[], None] | None = None) -> None:
    """Write ``text`` to ``path`` via a synced temp file and a rename; ``before_replace`` runs just before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- venue-scope values ---------------------------------------------------------

def venue_params_path(venue: Path) -> Path:
    """Where a venue's calibration values live: ``<venue>.params.toml`` next to the venue file."""
    venue = Path(venue)
    return venue.with_name(venue.stem + ".params.toml")


def load_venue_params(path: Path, tree: ParamTree) -> dict[str, object]:
    """Validated venue-scope values from ``path`` ({} if the file does not exist yet).

    A look or machine parameter in the file, an unknown path or a bad value raises :class:`PresetError`
    naming the file and key.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path}: not valid TOML: {exc}") from None
    extra = set(data) - {"params", "saved"}
    if extra:
        raise PresetError(f"{path}: unknown key {sorted(extra)[0]!r} (expected [params])")
    raw = data.get("params", {})
    if not isinstance(raw, Mapping):
        raise PresetError(f"{path}: [params] must be a table of \"path\" = value")
    out: dict[str, object] = {}
    for key, value in raw.items():
        if key not in tree:
            raise PresetError(f"{path}: params.{key}: unknown parameter (see `python run.py params`)")
        if not tree.in_scope(key, VENUE):
            raise PresetError(f"{path}: params.{key}: a {tree.spec(key).scope} parameter, not a venue one; "
                              "it does not belong in the venue's params file")
        try:
            out[key] = tree.validate(key, value, clamp=False)
        except ParamError as exc:
            raise PresetError(f"{path}: params.{exc}") from None
    return out


# show/blackout is venue state but not calibration: a restart always comes back lit.
_NOT_PERSISTED = frozenset({"show/blackout"})


def save_venue_params(path: Path, tree_bases: Mapping[str, object], tree: ParamTree) -> Path:
    """Write the venue-scope values of ``tree_bases`` to ``path`` atomically (previous one kept as ``.bak``)."""
    path = Path(path)
    values = {p: v for p, v in tree_bases.items() if tree.in_scope(p, VENUE) and p not in _NOT_PERSISTED}
    stamp = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    text = dump_preset("", values, saved=stamp).replace('description = ""\n', "", 1)
    text = "# The venue's calibration (venue-scope parameters), written by /tapestry/venue/save.\n" + text

    def backup() -> None:
        if path.exists():
            os.replace(path, path.with_suffix(".toml.bak"))
    try:
        _atomic_write(path, text, before_replace=backup)
    except OSError as exc:
        raise PresetError(f"{path}: could not save: {exc}") from None
    return path


class SaveWorker:
    """Writes files on its own thread, fed by a bounded map of pending jobs: the frame thread only enqueues.

    Jobs are keyed by the file they write; a job for a key already waiting replaces it (the newest
    snapshot wins), and one file is written at most once per ``min_interval_s``, so a storm of same-name
    saves writes the file a few times a second, not once per request.  At most ``max_pending`` distinct
    files wait; more raise :class:`PresetError` ("busy").  ``done(error)`` is called on the worker thread
    for every request, with None on success, once the snapshot it asked for (or a newer one) is written.
    """

    def __init__(self, max_pending: int = 16, min_interval_s: float = 0.5) -> None:
        self.max_pending = max_pending
        self.min_interval_s = min_interval_s
        self._last_write: dict[str, float] = {}
        self._cond = threading.Condition()
        self._jobs: dict[str, tuple[Callable[[], object], list[Callable[[BaseException | None], None]]]] = {}
        self._closed = False
        self._busy = False
        self.written = 0
        self.merged = 0
        self._thread = threading.Thread(target=self._run, name="save-worker", daemon=True)
        self._thread.start()

    def submit(self, key: str, job: Callable[[], object],
               done: Callable[[BaseException | None], None] | None = None) -> None:
        """Queue ``job`` (file I/O) under ``key``; never blocks."""
        with self._cond:
            if self._closed:
                raise PresetError("saving is closed (the show is stopping)")
            dones = [done] if done is not None else []
            if key in self._jobs:
                dones = self._jobs[key][1] + dones
                self.merged += 1
            elif len(self._jobs) >= self.max_pending:
                raise PresetError(f"busy: {len(self._jobs)} saves are already waiting, try again")
            self._jobs[key] = (job, dones)
            self._cond.notify()

    def idle(self) -> bool:
        """True when nothing is waiting or being written."""
        with self._cond:
            return not self._jobs and not self._busy

    def _next_key(self, now: float) -> tuple[str | None, float]:
        """The oldest waiting key whose file may be written now, else (None, seconds until one may)."""
        wait = math.inf
        for key in self._jobs:
            ready = self._last_write.get(key, -math.inf) + self.min_interval_s
            if ready <= now or self._closed:
                return key, 0.0
            wait = min(wait, ready - now)
        return None, wait

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._jobs:
                        if self._closed:
                            return
                        self._cond.wait()
                        continue
                    key, wait = self._next_key(time.monotonic())
                    if key is not None:
                        break
                    self._cond.wait(wait)
                job, dones = self._jobs.pop(key)
                self._busy = True
            error: BaseException | None = None
            try:
                job()
                self.written += 1
            except Exception as exc:  # reported to whoever asked; the worker goes on
                error = exc
                if not isinstance(exc, PresetError):
                    log.exception("saving %s failed", key)
            for done in dones:
                try:
                    done(error)
                except Exception:
                    log.exception("save callback for %s failed", key)
            with self._cond:
                self._busy = False
                self._last_write[key] = time.monotonic()
                if len(self._last_write) > 4 * self.max_pending:
                    self._last_write.clear()
                self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued job is written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._jobs and not self._busy, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)


def dump_preset(description: str, bases: Mapping[str, object], mood: tuple[MoodMapping, ...] = (),
                saved: str | None = None) -> str:
    """Preset TOML text for the given base values and mappings."""
    lines = []
    if saved:
        lines.append(f"saved = {_toml(saved)}")
    lines.append(f"description = {_toml(description)}")
    lines.append("")
    lines.append("[params]")
    for path in sorted(bases):
        lines.append(f"{_toml(path)} = {_toml(bases[path])}")
    for m in mood:
        lines += ["", "[[mood]]", f"source = {_toml(m.source)}", f"target = {_toml(m.target)}",
                  f"amount = {_toml(m.amount)}", f"curve = {_toml(m.curve)}", f"threshold = {_toml(m.threshold)}"]
    return "\n".join(lines) + "\n"


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    out = []
    for ch in str(v):
        if ch == "\\" or ch == '"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")  # control characters are not allowed raw in TOML strings
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


EASE_RAMP = 0.15   # share of a crossfade at each end spent speeding up / slowing down


def ease(x: float, ramp: float = EASE_RAMP) -> float:
    """A crossfade's progress 0..1 at time ``x`` 0..1: steady in the middle, eased at both ends.

    Speed rises evenly over the first ``ramp`` of the fade, holds, and falls evenly over the last, so
    nothing starts or stops with a jolt; the top speed is 1 / (1 - ramp) times the average (1.18x at
    the default 15 %), where a smoothstep's is 1.5x: everything a fade moves changes most in its
    middle, so a lower peak is a smaller largest frame-to-frame change.
    """
    x = min(max(float(x), 0.0), 1.0)
    v = 1.0 / (1.0 - ramp)
    if x < ramp:
        return v * x * x / (2.0 * ramp)
    if x > 1.0 - ramp:
        return 1.0 - v * (1.0 - x) ** 2 / (2.0 * ramp)
    return v * (x - ramp / 2.0)


@dataclass
class Crossfade:
    """Moves the tree's bases from where they are to a preset's over ``seconds``.

    Continuous (float) parameters ease smoothly; ints, bools and choices switch
    at the midpoint, except the choices in ``early``, which switch at the start
    because whoever reads them blends across the whole fade (the renderer
    blends palettes).  Mood mappings cross over the same way: the old ones fade
    out while the new ones fade in.  Parameters a preset does not name keep
    their current base.  Driven by the engine's clock, so renders repeat.
    """

    tree: ParamTree
    target: Mapping[str, object]
    seconds: float
    old_mood: tuple[MoodMapping, ...] = ()
    new_mood: tuple[MoodMapping, ...] = ()
    early: frozenset = frozenset()
    elapsed: float = 0.0
    _start: dict[str, object] = field(default_factory=dict)
    _wrote: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._start = {p: self.tree.base(p) for p in self.target if self.tree.spec(p).live}
        if self.seconds <= 0:
            self.elapsed = self.seconds = 0.0

    @property
    def progress(self) -> float:
        """0 at the start, 1 when done (eased)."""
        if self.seconds <= 0:
            return 1.0
        return ease(min(self.elapsed / self.seconds, 1.0))

    def holds(self, path: str) -> bool:
        """Is this fade still moving ``path`` (not arrived, not taken over by someone else)?"""
        return path in self._start and not self.done

    @property
    def done(self) -> bool:
        """True once every value has arrived."""
        return self.seconds <= 0 or self.elapsed >= self.seconds

    def step(self, dt: float) -> None:
        """Advance by ``dt`` and write the in-between bases into the tree.

        A value someone else changed mid-fade (an artist's fader over OSC) is
        theirs from then on: the fade lets go of it instead of overwriting it.
        """
        self.elapsed += dt
        a = self.progress
        for path, start in list(self._start.items()):
            if path in self._wrote and self.tree.base(path) != self._wrote[path]:
                del self._start[path]
                continue
            spec = self.tree.spec(path)
            end = self.target[path]
            if spec.continuous:
                value = float(start) * (1.0 - a) + float(end) * a  # exact at a = 1
            else:
                value = end if a >= 0.5 or path in self.early else start
            self._wrote[path] = self.tree.set_base(path, value)

    def mappings(self) -> list[tuple[MoodMapping, float]]:
        """Mood mappings in force now, each with its weight (old fading out, new fading in)."""
        a = self.progress
        return [(m, 1.0 - a) for m in self.old_mood] + [(m, a) for m in self.new_mood]
