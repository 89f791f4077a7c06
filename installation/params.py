"""The one parameter model: every tweakable value is declared here once.

A module declares its parameters as immutable :class:`ParamSpec` objects
(path, kind, range, default, unit, one-line description).  A
:class:`ParamTree` holds the live state for a running piece: each parameter
has a **base** (what the artist or a preset set) and a **value** (base plus
this frame's modulation from mood, LFOs or scenes, clamped to the range).

OSC addresses, preset files, the preview and the docs table all bind to the
paths of this tree; nothing else keeps its own copy of a tweakable value.
The tree is owned by the engine thread; other threads validate with
:meth:`ParamTree.validate` (pure, thread-safe) and enqueue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

FLOAT = "float"
INT = "int"
BOOL = "bool"
CHOICE = "choice"
KINDS = (FLOAT, INT, BOOL, CHOICE)

LOOK = "look"
VENUE = "venue"
MACHINE = "machine"
SCOPES = (LOOK, VENUE, MACHINE)
"""Where a value belongs (DESIGN.md "Parameters know their scope"):

* ``look``: the artistic look; saved in presets and crossfaded when one loads;
* ``venue``: the technician's calibration of the room (camera ROI, thresholds, masters, fixture gamma);
  saved with the venue (``<venue>.params.toml``), never in a look, never undone by loading one;
* ``machine``: quality settings chosen for this computer (particle count, ``field/sim_every``, internal
  sizes); never saved in a look or a venue, set by the machine's own options.
"""


class ParamError(ValueError):
    """A value or path that the parameter model refuses, with a message a user can act on."""


@dataclass(frozen=True)
class ParamSpec:
    """Declaration of one tweakable value.

    ``path`` is slash-separated (``field/flow/speed``); ``kind`` is one of
    float, int, bool, choice.  ``lo``/``hi`` bound float and int values;
    ``choices`` lists the allowed strings of a choice.  ``live`` is False for
    values that only take effect on restart (e.g. particle count).
    ``scope`` is ``look``, ``venue`` or ``machine`` (see :data:`SCOPES`): it
    decides whether presets save and load the value.
    """

    path: str
    kind: str
    default: object
    description: str
    lo: float | None = None
    hi: float | None = None
    unit: str = ""
    choices: tuple[str, ...] = ()
    live: bool = True
    scope: str = LOOK

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ParamError(f"{self.path}: unknown kind {self.kind!r}")
        if self.scope not in SCOPES:
            raise ParamError(f"{self.path}: unknown scope {self.scope!r} (expected one of {', '.join(SCOPES)})")
        if not self.path or self.path.startswith("/") or self.path.endswith("/") or " " in self.path:
            raise ParamError(f"bad parameter path {self.path!r}")
        if self.kind in (FLOAT, INT) and (self.lo is None or self.hi is None or self.lo > self.hi):
            raise ParamError(f"{self.path}: numeric parameter needs lo <= hi")
        if self.kind == CHOICE and self.default not in self.choices:
            raise ParamError(f"{self.path}: default {self.default!r} not in {self.choices}")
        # The default itself must pass validation.
        object.__setattr__(self, "default", self.coerce(self.default, clamp=False))

    @property
    def continuous(self) -> bool:
        """True if the value can be crossfaded (floats); ints, bools, choices switch."""
        return self.kind == FLOAT

    def range_text(self) -> str:
        """The valid range as a user reads it: ``0 .. 1 (ratio)`` or ``one of a, b``."""
        if self.kind in (FLOAT, INT):
            unit = f" {self.unit}" if self.unit else ""
            return f"{_fmt(self.lo)} .. {_fmt(self.hi)}{unit}"
        if self.kind == BOOL:
            return "true/false (0/1)"
        return "one of " + ", ".join(self.choices)

    def coerce(self, value: object, clamp: bool = True) -> object:
        """Return ``value`` converted to this parameter's type.

        Out-of-range numbers are clamped when ``clamp`` is true, refused
        otherwise.  NaN, infinities and wrong types are always refused with a
        :class:`ParamError` naming the path and the valid range.
        """
        if self.kind == BOOL:
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "on", "off"):
                return value.lower() in ("true", "1", "on")
            raise ParamError(f"{self.path}: expected {self.range_text()}, got {_fmt_huge(value)}")
        if self.kind == CHOICE:
            if isinstance(value, str) and value in self.choices:
                return value
            index = _whole(value)
            if index is not None and 0 <= index < len(self.choices):
                return self.choices[index]
            raise ParamError(f"{self.path}: expected {self.range_text()}, got {_fmt_huge(value)}")
        # numeric
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f"{self.path}: expected a number in {self.range_text()}, got {value!r}")
        try:
            x = float(value)
        except OverflowError:  # an int beyond a double (a JSON body may hold one): finite, far out of range
            if not clamp:
                raise ParamError(f"{self.path}: {_fmt_huge(value)} is outside {self.range_text()}") from None
            x = self.hi if value > 0 else self.lo
        if not math.isfinite(x):
            raise ParamError(f"{self.path}: {value!r} is not a finite number (range {self.range_text()})")
        if x < self.lo or x > self.hi:
            if not clamp:
                raise ParamError(f"{self.path}: {_fmt(x)} is outside {self.range_text()}")
            x = min(max(x, self.lo), self.hi)
        if self.kind == INT:
            return int(round(x))
        return x

    def normalize(self, value: object) -> float:
        """Map a value to 0..1 (for faders)."""
        if self.kind in (FLOAT, INT):
            span = self.hi - self.lo
            return 0.0 if span == 0 else (float(value) - self.lo) / span
        if self.kind == BOOL:
            return 1.0 if value else 0.0
        return self.choices.index(value) / max(1, len(self.choices) - 1)

    def denormalize(self, x: float) -> object:
        """Map a 0..1 fader position back to a value (clamped)."""
        if isinstance(x, bool) or not isinstance(x, (int, float)) or isinstance(x, float) and not math.isfinite(x):
            raise ParamError(f"{self.path}/norm: expected a number 0 .. 1, got {_fmt_huge(x)}")
        x = min(max(x, 0), 1) * 1.0  # clamp before float(): an int too big for a double still clamps
        if self.kind in (FLOAT, INT):
            return self.coerce(self.lo + x * (self.hi - self.lo))
        if self.kind == BOOL:
            return x >= 0.5
        return self.choices[int(round(x * (len(self.choices) - 1)))]


def _whole(value: object) -> int | None:
    """``value`` as an index if it is a whole number (an int, or a float such as 2.0), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _fmt_huge(value: object) -> str:
    """``repr`` of a value for a message, an int too long to print in full shortened to its size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a {'negative ' if value < 0 else ''}{value.bit_length()}-bit integer"
    return repr(value)


def _fmt(x: float | None) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass
class Param:
    """Live state of one declared parameter: base and this frame's value."""

    spec: ParamSpec
    base: object
    value: object
    modulation: float = 0.0
    override: object = None  # a non-numeric modulation (scene switching a choice), else None


Listener = Callable[[str, object], None]


@dataclass
class ParamTree:
    """All parameters of a running piece, addressed by path.

    Owned by the engine thread. ``set_base`` changes what the artist set;
    ``modulate`` adds this frame's offset; ``resolve`` computes every value.
    Listeners hear base changes (OSC feedback, the preview).
    """

    _params: dict[str, Param] = field(default_factory=dict)
    _listeners: list[Listener] = field(default_factory=list)

    @classmethod
    def from_specs(cls, specs: Iterable[ParamSpec]) -> "ParamTree":
        """Build a tree holding ``specs`` at their defaults."""
        tree = cls()
        tree.declare(specs)
        return tree

    def declare(self, specs: Iterable[ParamSpec]) -> None:
        """Add parameters; a path declared twice is a programming error."""
        for spec in specs:
            if spec.path in self._params:
                raise ParamError(f"parameter {spec.path} declared twice")
            self._params[spec.path] = Param(spec, spec.default, spec.default)

    # -- lookup ---------------------------------------------------------
    def __contains__(self, path: str) -> bool:
        return path in self._params

    def __len__(self) -> int:
        return len(self._params)

    def paths(self) -> list[str]:
        """All paths, sorted."""
        return sorted(self._params)

    def specs(self) -> list[ParamSpec]:
        """All specs, sorted by path."""
        return [self._params[p].spec for p in self.paths()]

    def spec(self, path: str) -> ParamSpec:
        """The declaration at ``path``; :class:`ParamError` if unknown."""
        return self._param(path).spec

    def _param(self, path: str) -> Param:
        try:
            return self._params[path]
        except KeyError:
            raise ParamError(f"unknown parameter {path!r}") from None

    def base(self, path: str) -> object:
        """What the artist or preset set."""
        return self._param(path).base

    def __getitem__(self, path: str) -> object:
        """This frame's resolved value (base + modulation)."""
        return self._param(path).value

    def get(self, path: str) -> object:
        """Alias of ``tree[path]``."""
        return self._param(path).value

    # -- changing -------------------------------------------------------
    def validate(self, path: str, value: object, clamp: bool = True) -> object:
        """Coerce ``value`` for ``path`` without changing anything (safe from any thread)."""
        return self._param(path).spec.coerce(value, clamp=clamp)

    def set_base(self, path: str, value: object, clamp: bool = True) -> object:
        """Set the base of ``path``; returns the stored (coerced) value."""
        p = self._param(path)
        v = p.spec.coerce(value, clamp=clamp)
        if v != p.base:
            p.base = v
            p.value = self._resolved(p)
            for cb in list(self._listeners):
                cb(path, v)
        return v

    def update_bases(self, values: Mapping[str, object], clamp: bool = True) -> None:
        """Set several bases at once, all or nothing: any bad entry refuses the whole map."""
        coerced = {path: self.validate(path, v, clamp=clamp) for path, v in values.items()}
        for path, v in coerced.items():
            self.set_base(path, v)

    def bases(self, scope: str | None = None) -> dict[str, object]:
        """Copy of every base value, or only those of one scope (``look``: what a preset saves)."""
        return {p: self._params[p].base for p in self.paths()
                if scope is None or self._params[p].spec.scope == scope}

    def in_scope(self, path: str, scope: str) -> bool:
        """True if ``path`` is declared with ``scope`` (False for unknown paths)."""
        p = self._params.get(path)
        return p is not None and p.spec.scope == scope

    def reset(self) -> None:
        """Every base back to its default."""
        for path, p in self._params.items():
            self.set_base(path, p.spec.default)

    def clear_modulation(self) -> None:
        """Drop last frame's modulation (called once per frame before modulators run)."""
        for p in self._params.values():
            p.modulation = 0.0
            p.override = None

    def modulate(self, path: str, amount: float) -> None:
        """Add ``amount`` (in the parameter's units) to this frame's modulation."""
        p = self._param(path)
        if p.spec.kind not in (FLOAT, INT):
            raise ParamError(f"{path}: only numeric parameters take modulation")
        if math.isfinite(amount):
            p.modulation += float(amount)

    def override(self, path: str, value: object) -> None:
        """Replace this frame's value of a discrete parameter (a scene switching a mode)."""
        p = self._param(path)
        p.override = p.spec.coerce(value)

    def resolve(self) -> None:
        """Compute every value from base + modulation, clamped to its range."""
        for p in self._params.values():
            p.value = self._resolved(p)

    @staticmethod
    def _resolved(p: Param) -> object:
        if p.override is not None:
            return p.override
        if p.modulation and p.spec.kind in (FLOAT, INT):
            return p.spec.coerce(float(p.base) + p.modulation, clamp=True)
        return p.base

    # -- listeners -----------------------------------------------------
    def listen(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(path, base)`` on every base change; returns an unsubscribe function."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    # -- documentation -------------------------------------------------
    def table(self, root: str = "/tapestry/") -> list[tuple[str, str, str, str, str]]:
        """Rows of (address, type, range, default, description) for docs and ``run.py params``."""
        rows = []
        for spec in self.specs():
            rows.append((root + spec.path, spec.kind, spec.range_text(), _fmt_value(spec.default),
                         spec.description + ("" if spec.live else " (takes effect on restart)")))
        return rows


def _fmt_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _fmt(v)
    return str(v)


def floats(prefix: str, rows: Sequence[tuple], scope: str = LOOK) -> list[ParamSpec]:
    """Shorthand for declaring many float parameters of one scope: rows of (name, default, lo, hi, unit,
    description)."""
    return [ParamSpec(f"{prefix}/{name}", FLOAT, default, desc, lo, hi, unit, scope=scope)
            for name, default, lo, hi, unit, desc in rows]
