"""The show file's schema mechanism: typed keys with defaults, ranges, units and descriptions.

A module that owns a section of the venue file declares it here-style, next to the code that uses
it (``SCHEMA = Section("osc", "...", keys=(Key(...), ...))``); :mod:`installation.showfile`
registers the sections in one explicit list and reads the file once.  :func:`validate` checks a
TOML table against a section: types, ranges, choices, required keys, nested tables and arrays of
tables, and refuses unknown keys.  Every problem is one :class:`ConfigError` whose message reads
``file: key.path: problem``.  A section may add a ``build`` step (the owner's own parser, for what
a per-key check cannot see: cross references, patch overlaps); its errors become ConfigErrors too.
:func:`reference_markdown` writes the reference of every key from the same declarations.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

REQUIRED = object()
"""``Key(default=REQUIRED)``: the key must be given."""


class ConfigError(ValueError):
    """A show file that cannot be used.  The message is one line: ``file: key: problem``."""


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a table", _dt.date: "a date (YYYY-MM-DD)"}


@dataclass(frozen=True)
class Key:
    """One key of a section.

    ``type``: str, int, float (ints are accepted), bool, list, dict, or a tuple of them (any of);
    ``item``: the type of a list's items; ``lo``/``hi`` (``lo_open``): the allowed range of a
    number, or of a list's numbers; ``choices``: the allowed values; ``section``: the schema of a
    nested table (``[leds.current]``) or, with ``many``, of an array of tables (``[[scenes.cue]]``).
    """

    name: str
    type: type | tuple[type, ...]
    default: Any = None
    description: str = ""
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple = ()
    item: type | tuple[type, ...] | None = None
    section: "Section | None" = None

    @property
    def required(self) -> bool:
        """True when the key has no default."""
        return self.default is REQUIRED


@dataclass(frozen=True)
class Section:
    """A table of the show file (``[osc]``), an array of tables (``[[outputs]]``, ``many=True``) or
    the file's top level (``name=""``).

    ``build(values, where)``, if given, turns the checked values into the owner's object (and may
    raise the owner's own ValueError for what keys alone cannot say; it becomes a ConfigError).
    ``open_keys``: extra keys are allowed (a table of names chosen by the user, e.g. per-output
    protocol options checked by the owner's ``build``).
    """

    name: str
    description: str
    keys: tuple[Key, ...] = ()
    many: bool = False
    build: Callable[[Any, str], Any] | None = None
    open_keys: bool = False
    sections: tuple["Section", ...] = field(default=())

    def key(self, name: str) -> Key:
        """The declared key called ``name``."""
        for k in self.keys:
            if k.name == name:
                return k
        raise KeyError(name)


def _type_ok(value: Any, t: type | tuple[type, ...]) -> bool:
    types = t if isinstance(t, tuple) else (t,)
    for ty in types:
        if ty is bool:
            if isinstance(value, bool):
                return True
        elif ty is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return True
        elif ty is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return True
        elif ty is dict:
            if isinstance(value, Mapping):
                return True
        elif ty is _dt.date:
            if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
                return True
        elif isinstance(value, ty):
            return True
    return False


def type_name(t: type | tuple[type, ...], item: Any = None) -> str:
    """``"a number"``, ``"a list of strings"``, ``"a string or an integer"``."""
    types = t if isinstance(t, tuple) else (t,)
    names = []
    for ty in types:
        n = _TYPE_NAMES.get(ty, ty.__name__)
        if ty is list and item is not None:
            n = f"a list of {type_name(item).split(' ', 1)[1]}s"
        names.append(n)
    return " or ".join(names)


def _check_number(k: Key, v: float, where: str) -> None:
    if isinstance(v, float) and not math.isfinite(v):
        raise ConfigError(f"{where}: {v!r} is not a finite number")
    if k.lo is not None and (v < k.lo or (k.lo_open and v == k.lo)):
        raise ConfigError(f"{where}: {v!r} is out of range ({range_text(k)})")
    if k.hi is not None and v > k.hi:
        raise ConfigError(f"{where}: {v!r} is out of range ({range_text(k)})")


def range_text(k: Key) -> str:
    """``"> 0"``, ``"0 .. 1"``, ``">= 1"``, or ``""``."""
    unit = f" {k.unit}" if k.unit else ""
    if k.lo is not None and k.hi is not None and not k.lo_open:
        return f"{k.lo:g} .. {k.hi:g}{unit}"
    parts = []
    if k.lo is not None:
        parts.append(f"{'>' if k.lo_open else '>='} {k.lo:g}")
    if k.hi is not None:
        parts.append(f"<= {k.hi:g}")
    return " and ".join(parts) + (unit if parts else "")


def validate(section: Section, raw: Any, where: str) -> Any:
    """Check ``raw`` against ``section``; returns a dict with every key (defaults filled in), a list
    of such dicts for ``many``, or what ``section.build`` returns.  ``where`` is ``"file: path"``."""
    if section.many:
        items = [raw] if isinstance(raw, Mapping) else raw
        if not isinstance(items, list):
            raise ConfigError(f"{where}: expected [[{section.name}]] tables, got {_what(raw)}")
        values = [_validate_table(section, item, f"{where}[{i}]") for i, item in enumerate(items)]
    else:
        values = _validate_table(section, raw, where)
    if section.build is None:
        return values
    try:
        return section.build(raw, where)  # the owner parses the original table (its own defaults)
    except ConfigError:
        raise
    except ValueError as exc:  # the owner's own error type (LayoutError, SceneError, OutputError ...)
        msg, source = one_line(exc), where.split(": ")[0].rstrip(":")
        raise ConfigError(msg if msg.startswith(source) else f"{source}: {msg}") from None


def _validate_table(section: Section, raw: Any, where: str) -> dict:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table, got {_what(raw)}")
    known = {k.name: k for k in section.keys}
    if not section.open_keys:
        for name in raw:
            if name not in known:
                raise ConfigError(f"{_sub(where, name)}: unknown key{_did_you_mean(name, known)}")
    out: dict[str, Any] = {k: v for k, v in raw.items() if k not in known}
    for k in section.keys:
        path = _sub(where, k.name)
        if k.name not in raw:
            if k.required:
                raise ConfigError(f"{path}: required ({k.description or type_name(k.type)})")
            out[k.name] = k.default
            continue
        v = raw[k.name]
        if k.section is not None:
            out[k.name] = validate(k.section, v, path)
            continue
        if not _type_ok(v, k.type):
            raise ConfigError(f"{path}: expected {type_name(k.type, k.item)}, got {_what(v)}")
        if isinstance(v, list) and k.item is not None:
            for i, x in enumerate(v):
                if not _type_ok(x, k.item):
                    raise ConfigError(f"{path}[{i}]: expected {type_name(k.item)}, got {_what(x)}")
                if _type_ok(x, float) and not isinstance(x, bool):
                    _check_number(k, x, f"{path}[{i}]")
        elif _type_ok(v, float) and not isinstance(v, bool) and (k.lo is not None or k.hi is not None):
            _check_number(k, v, path)
        if k.choices and v not in k.choices:
            raise ConfigError(f"{path}: {v!r} is not one of {', '.join(map(repr, k.choices))}")
        out[k.name] = float(v) if k.type is float else v
    return out


def _sub(where: str, name: str) -> str:
    """``"f.toml:" + "osc"`` -> ``"f.toml: osc"``; ``"f.toml: osc" + "port"`` -> ``"f.toml: osc.port"``."""
    return f"{where} {name}" if where.endswith(":") else f"{where}.{name}"


def _what(v: Any) -> str:
    if isinstance(v, Mapping):
        return "a table"
    if isinstance(v, list):
        return f"a list {v!r}"[:80]
    return f"{type(v).__name__} {v!r}"[:80]


def _did_you_mean(name: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(sorted(known))})" if known else ""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (multi-line messages joined with ``; ``)."""
    return "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())


# -- the reference ---------------------------------------------------------------------------------

def reference_markdown(sections: tuple[Section, ...], title: str, intro: str) -> str:
    """Markdown reference of every key of ``sections`` (the top level first), for docs/."""
    lines = [f"# {title}", "", intro.strip(), ""]
    for s in sections:
        _section_md(s, s.name, lines)
    return "\n".join(lines).rstrip() + "\n"


def _section_md(s: Section, path: str, lines: list[str]) -> None:
    head = "top level" if not path else (f"[[{path}]]" if s.many else f"[{path}]")
    lines += [f"## `{head}`" if path else "## Top level", "", s.description.strip(), ""]
    if s.keys:
        lines += ["| key | type | default | range / choices | description |", "|---|---|---|---|---|"]
        for k in s.keys:
            if k.section is not None:
                kind = "array of tables" if k.section.many else "table"
                desc = f"see `{'[[' if k.section.many else '['}{_join(path, k.name)}{']]' if k.section.many else ']'}`"
                lines.append(f"| `{k.name}` | {kind} | {'required' if k.required else '-'} | | {desc} |")
                continue
            default = "**required**" if k.required else ("-" if k.default is None else f"`{_toml(k.default)}`")
            rng = range_text(k) or (", ".join(f"`{_toml(c)}`" for c in k.choices) if k.choices else "")
            if k.choices and range_text(k):
                rng += "; " + ", ".join(f"`{_toml(c)}`" for c in k.choices)
            desc = k.description.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{k.name}` | {type_name(k.type, k.item).replace('a ', '').replace('an ', '')} | "
                         f"{default} | {rng} | {desc} |")
        lines.append("")
    for k in s.keys:
        if k.section is not None:
            _section_md(k.section, _join(path, k.name), lines)
    for sub in s.sections:
        _section_md(sub, _join(path, sub.name), lines)


def _join(a: str, b: str) -> str:
    return f"{a}.{b}" if a else b


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
