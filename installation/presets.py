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
preset (one without a ``saved`` stamp) is only overwritten with ``force``.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .params import ParamError, ParamSpec, ParamTree

SOURCES = ("intensity", "presence", "motion", "sound", "excitement", "bass", "voice", "air")
CURVES = ("linear", "smooth", "square", "sqrt")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


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
    for path, value in raw.items():
        if path not in tree:
            raise PresetError(f"{where}: params.{path}: unknown parameter (see `python run.py params`)")
        try:
            params[path] = tree.validate(path, value, clamp=False)
        except ParamError as exc:
            raise PresetError(f"{where}: params.{exc}") from None
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
    return Preset(name, desc, params, tuple(mood), shipped="saved" not in data)


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
        return Preset(preset.name, preset.description, preset.params, preset.mood, path, preset.shipped)

    def describe(self) -> list[tuple[str, str]]:
        """(name, one-line description or the error) for every preset."""
        rows = []
        for name in self.names():
            try:
                rows.append((name, self.load(name).description))
            except PresetError as exc:
                rows.append((name, f"BROKEN: {exc}"))
        return rows

    def save(self, name: str, bases: Mapping[str, object], mood: tuple[MoodMapping, ...] = (),
             description: str = "", force: bool = False) -> Path:
        """Write a preset atomically; the previous version goes to ``.history/``."""
        path = self.path(name)
        if path.exists():
            try:
                old = self.load_file(path)
            except PresetError:
                old = None
            if old is not None and old.shipped and not force:
                raise PresetError(f"{name} is a shipped preset; save under another name or use force")
            description = description or (old.description if old else "")
        stamp = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        text = dump_preset(description, bases, mood, saved=stamp)
        parse_preset(tomllib.loads(text), self.tree, name, str(path))  # never write what we cannot read back
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            if path.exists():
                hist = self.root / ".history"
                hist.mkdir(exist_ok=True)
                ts = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
                os.link(path, hist / f"{name}-{ts}.toml")
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise PresetError(f"{path}: could not save: {exc}") from None
        return path


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


@dataclass
class Crossfade:
    """Moves the tree's bases from where they are to a preset's over ``seconds``.

    Continuous (float) parameters ease smoothly; ints, bools and choices switch
    at the midpoint.  Mood mappings cross over the same way: the old ones fade
    out while the new ones fade in.  Parameters a preset does not name keep
    their current base.  Driven by the engine's clock, so renders repeat.
    """

    tree: ParamTree
    target: Mapping[str, object]
    seconds: float
    old_mood: tuple[MoodMapping, ...] = ()
    new_mood: tuple[MoodMapping, ...] = ()
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
        x = min(self.elapsed / self.seconds, 1.0)
        return x * x * (3 - 2 * x)

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
                value = end if a >= 0.5 else start
            self._wrote[path] = self.tree.set_base(path, value)

    def mappings(self) -> list[tuple[MoodMapping, float]]:
        """Mood mappings in force now, each with its weight (old fading out, new fading in)."""
        a = self.progress
        return [(m, 1.0 - a) for m in self.old_mood] + [(m, a) for m in self.new_mood]
