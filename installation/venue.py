"""Venue files: which layouts, which outputs, which power supplies, and the LED defaults.

A venue file is TOML (see docs/layouts.md).  :func:`load_venue` reads it,
loads its layouts, parses its ``[[outputs]]`` with the outputs package,
resolves every fixture's patch against the outputs' protocols (overlaps are
errors), and checks the power supplies.  Any problem raises
:class:`VenueError` naming the file, the key and the problem.

Every section of the file is checked by :mod:`installation.showfile` against the schemas the owning
modules declare (this module declares the top level, ``[[outputs]]``, ``[[power]]``, ``[leds]`` and
``[end_state]``); unknown sections and keys are errors.  ``VenueError`` is the show file's one
error type, :class:`~installation.schema.ConfigError`.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from installation.color import CurrentModel, Supply
from installation.schema import REQUIRED, ConfigError, Key, Section
from installation.fixtures.layout import (Layout, LayoutError, PatchMap, _Reader, infer_protocol, load_layouts,
                                          read_table, resolve_patch)
from installation.outputs.base import OutputConfig, OutputError, parse_output_config

log = logging.getLogger(__name__)

#: top-level keys this module reads
OWN_KEYS = ("name", "description", "layout", "layouts", "outputs", "power", "leds", "loopback_receivers")
END_STATES = ("blackout", "hold")

# -- the schema of the sections this module owns (registered in installation/showfile.py) --------
TOP_KEYS = (
    Key("name", str, None, "the venue's name (default: the file name)"),
    Key("description", str, None, "free text for the people who look after the venue"),
    Key("layouts", (str, list), None, "LED layout files, relative to this file (give layout or layouts)", item=str),
    Key("layout", str, None, "one LED layout file, relative to this file"),
    Key("loopback_receivers", bool, False, "start built-in receivers for outputs sent to 127.0.0.1, so a "
        "machine without LEDs shows them working (the demo venue); ports already taken are left alone"),
)
OUTPUTS = Section("outputs", "The LED controllers: one [[outputs]] table each. Fixtures are patched to an output "
                  "by its name (docs/outputs.md).", many=True, keys=(
    Key("name", str, REQUIRED, "the output's name; layouts patch fixtures to it"),
    Key("protocol", str, None, "how the LEDs are driven", choices=("artnet", "sacn", "ddp", "osc", "enttec")),
    Key("host", str, "127.0.0.1", "the controller's address (a serial device for enttec)"),
    Key("port", int, None, "UDP port (default: the protocol's standard port)", lo=1, hi=65535),
    Key("fps", float, 44.0, "frames per second sent (at most 44 for DMX-based protocols)", unit="Hz", lo=0, lo_open=True),
    Key("enabled", bool, True, "false: keep the output in the file but send nothing"),
    Key("options", dict, None, "protocol settings (docs/outputs.md); checked by the protocol"),
))
POWER = Section("power", "Power supplies: the limiter keeps each one's estimated current under its budget.",
                many=True, keys=(
    Key("name", str, None, "the supply's name (default supply-N)"),
    Key("amps", float, None, "the current budget at 5 V", unit="A", lo=0, lo_open=True, hi=10_000),
    Key("volts", float, 5.0, "the LEDs' voltage (only 5 V pixels are modelled)", unit="V", lo=0, lo_open=True),
    Key("fixtures", (str, list), None, "fixture names fed by this supply (glob patterns like \"strip-*\")", item=str),
))
LEDS = Section("leds", "Limits and the current model for every LED.", keys=(
    Key("max_brightness", float, 1.0, "a hard cap under leds/master that no preset can lift", lo=0, hi=1),
    Key("current", dict, None, "mA per LED at full level", section=Section("current", "mA per LED at full level, "
        "5 V (FastLED's model); w for RGBW parts.", keys=tuple(
            Key(c, float, getattr(CurrentModel(), c), f"{label} at full level", unit="mA", lo=0, hi=1000)
            for c, label in (("r", "red"), ("g", "green"), ("b", "blue"), ("w", "white"),
                             ("idle", "a dark LED's own draw"))))),
))
END_STATE = Section("end_state", "What the LEDs show when Tapestry stops.", keys=(
    Key("mode", str, "blackout", "blackout: all dark; hold: keep the last frame", choices=END_STATES),
))


VenueError = ConfigError
"""A venue file that cannot be used (the show file's one error type); the message names file, key and problem."""


@dataclass
class Venue:
    """A loaded, validated venue."""

    path: Path
    name: str
    layout: Layout
    outputs: tuple[OutputConfig, ...]
    patch: PatchMap
    supplies: tuple[Supply, ...]
    current: CurrentModel = CurrentModel()
    max_brightness: float = 1.0
    sections: dict[str, Any] = field(default_factory=dict)
    loopback_receivers: bool = False
    warnings: list[str] = field(default_factory=list)

    def output(self, name: str) -> OutputConfig:
        """The output config called ``name``."""
        for o in self.outputs:
            if o.name == name:
                return o
        raise KeyError(name)


def load_venue(path: str | Path) -> Venue:
    """Read and validate a whole venue file (every section, see :mod:`installation.showfile`) and
    return its LED part; :class:`ConfigError` (``VenueError``) on any problem."""
    from installation.showfile import load_show
    return load_show(path).venue


def build_venue(top: Mapping, path: Path) -> Venue:
    """The LED part of an already schema-checked venue table: layouts, outputs, patch, power."""
    warnings: list[str] = []
    sections = {k: v for k, v in top.items() if k not in OWN_KEYS}
    try:
        r = _Reader({k: v for k, v in top.items() if k in OWN_KEYS}, str(path), OWN_KEYS)
        name = r.str("name", path.stem)
        if r.has("layout") and r.has("layouts"):
            raise r.err("layouts", "give layout or layouts, not both")
        files = top.get("layouts", top.get("layout"))
        if isinstance(files, str):
            files = [files]
        if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
            raise r.err("layouts", "expected a list of layout file paths (relative to the venue file)")
        layout_paths = [(path.parent / f) for f in files]
        layout = load_layouts(layout_paths)
    except LayoutError as exc:
        raise VenueError(str(exc)) from None

    raw_outputs = top.get("outputs")
    if not isinstance(raw_outputs, list) or not raw_outputs:
        raise VenueError(f"{path}: outputs: expected at least one [[outputs]] table")
    outputs = []
    for i, d in enumerate(raw_outputs):
        try:
            outputs.append(parse_output_config(d, f"{path}: outputs[{i}]"))
        except OutputError as exc:
            raise VenueError(str(exc)) from None
    dup = [n for n, c in Counter(o.name for o in outputs).items() if c > 1]
    if dup:
        raise VenueError(f"{path}: outputs: name {dup[0]!r} used twice")
    try:
        patch = resolve_patch(layout, {o.name: o.protocol for o in outputs}, source=str(path))
    except LayoutError as exc:
        raise VenueError(str(exc)) from None
    unused = [o.name for o in outputs if o.name not in {c.name for c in patch.controllers}]
    for u in unused:
        warnings.append(f"{path}: output {u!r} has no fixtures patched to it (it will not send)")

    try:
        leds = _Reader(top.get("leds", {}), f"{path}: leds", ("max_brightness", "current"))
        max_brightness = leds.num("max_brightness", 1.0, lo=0.0, hi=1.0)
        cur = _Reader(leds.table("current"), f"{path}: leds.current", ("r", "g", "b", "w", "idle"))
        d = CurrentModel()
        current = CurrentModel(*(cur.num(k, getattr(d, k), lo=0.0, hi=1000.0) for k in ("r", "g", "b", "w", "idle")))
        supplies = _read_supplies(top.get("power", []), path, layout)
        for i, s in enumerate(supplies):
            n = sum(layout.fixtures[layout.fixture(f)].count for f in s.fixtures)
            if n * current.idle / 1000.0 >= s.amps:
                raise LayoutError(f"{path}: power[{i}] ({s.name}).amps: {s.amps:g} A cannot even feed the idle "
                                  f"current of its {n} LEDs ({n * current.idle / 1000.0:g} A at "
                                  f"{current.idle:g} mA each)")
    except LayoutError as exc:
        raise VenueError(str(exc)) from None
    return Venue(path=path, name=name, layout=layout, outputs=tuple(outputs), patch=patch,
                 supplies=supplies, current=current, max_brightness=max_brightness,
                 sections=sections, warnings=warnings, loopback_receivers=bool(top.get("loopback_receivers", False)))


def _read_supplies(raw: Any, path: Path, layout: Layout) -> tuple[Supply, ...]:
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        raise LayoutError(f"{path}: power: expected [[power]] tables")
    names = [f.name for f in layout.fixtures]
    fed_by: dict[str, str] = {}
    out = []
    for i, t in enumerate(raw):
        r = _Reader(t, f"{path}: power[{i}]", ("name", "amps", "volts", "fixtures"))
        name = r.str("name", f"supply-{i + 1}")
        r.where = f"{path}: power[{i}] ({name})"
        amps = r.num("amps", lo=0.0, lo_open=True, hi=10_000.0)
        volts = r.num("volts", 5.0, lo=0.0, lo_open=True)
        if abs(volts - 5.0) > 1e-9:
            raise r.err("volts", f"{volts:g} V: the current model is for 5 V pixels; give the budget in "
                                 f"amps at 5 V")
        pats = r.t.get("fixtures")
        if isinstance(pats, str):
            pats = [pats]
        if not isinstance(pats, list) or not pats or not all(isinstance(p, str) for p in pats):
            raise r.err("fixtures", "expected a list of fixture names (glob patterns like \"strip-*\" allowed)")
        chosen = []
        for p in pats:
            hits = [n for n in names if fnmatch.fnmatchcase(n, p)]
            if not hits:
                close = difflib.get_close_matches(p, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise r.err("fixtures", f"{p!r} matches no fixture{hint}")
            chosen += [h for h in hits if h not in chosen]
        for c in chosen:
            if c in fed_by:
                raise r.err("fixtures", f"fixture {c!r} is already fed by supply {fed_by[c]!r}")
            fed_by[c] = name
        out.append(Supply(name, amps, tuple(chosen)))
    return tuple(out)


def check_layout(path: str | Path, venue: bool = False) -> str:
    """``layouts check FILE``: a summary of a layout or venue file, or its errors.

    For a venue file the protocols come from its outputs; for a bare layout
    they are inferred from the patch keys (universe: Art-Net, offset: DDP,
    address: OSC).  ``venue``: check it as a venue whatever it holds (``venue check``: a layout file
    passed as OK there and was then refused by the show).  Returns the text to print; never raises for
    bad files.
    """
    path = Path(path)
    try:
        top = read_table(path)
    except LayoutError as exc:
        return f"ERROR {exc}"
    is_venue = venue or ("fixtures" not in top and ("outputs" in top or "layouts" in top or "layout" in top))
    lines = []
    try:
        if is_venue:
            venue = load_venue(path)
            layout, patch = venue.layout, venue.patch
            lines.append(f"venue {venue.name!r} ({path})")
            lines.append("layouts: " + ", ".join(str(p) for p in layout.paths))
            lines += [f"warning: {w}" for w in venue.warnings]
        else:
            layout = load_layouts([path])
            ctrl_patches: dict[str, list] = {}
            for f in layout.fixtures:
                ctrl_patches.setdefault(f.patch.controller, []).append(f.patch)
            protos = {c: infer_protocol(p) for c, p in ctrl_patches.items()}
            patch = resolve_patch(layout, protos)
            lines.append(f"layout {path} (protocols inferred from the patch; check a venue file for the real ones)")
            venue = None
    except (LayoutError, VenueError) as exc:
        return f"ERROR {exc}"
    lines.append(f"LEDs: {layout.count}")
    lines.append(f"fixtures: {len(layout.fixtures)}")
    for i, f in enumerate(layout.fixtures):
        p = f.patch
        where = (f"universe {p.universe} channel {p.channel}" if p.universe is not None else
                 f"offset {p.offset}" if p.offset is not None else f"address {p.address}" if p.address else "auto")
        lines.append(f"  {f.name}: {f.kind}, {f.count} LEDs -> {p.controller} {where}, {p.order}"
                     f"{', reversed' if p.reversed else ''}")
    by_proto: dict[str, list] = {}
    for c in patch.controllers:
        by_proto.setdefault(c.protocol, []).append(c)
    for proto, cs in sorted(by_proto.items()):
        nuni = sum(len(c.universes) for c in cs)
        extra = f", {nuni} universes" if proto in ("artnet", "sacn", "enttec") else ""
        lines.append(f"{proto}: {len(cs)} controller(s){extra}, {sum(c.size for c in cs)} bytes")
        for c in cs:
            if c.universes:
                u = c.universes
                rng = f"universes {u[0]}..{u[-1]}" if len(u) > 1 else f"universe {u[0]}"
                lines.append(f"  {c.name}: {rng} ({len(u)}), {len(c.fixtures)} fixtures")
            else:
                lines.append(f"  {c.name}: {c.size} bytes in {len(c.spans)} span(s), {len(c.fixtures)} fixtures")
    if venue is not None:
        for s in venue.supplies:
            n = sum(layout.fixtures[layout.fixture(f)].count for f in s.fixtures)
            full = n * (venue.current.r + venue.current.g + venue.current.b + venue.current.idle) / 1000.0
            lines.append(f"power {s.name}: {s.amps:g} A budget, {n} LEDs, {full:.1f} A at full white "
                         f"({'limited' if full > s.amps else 'fits'})")
        unfed = [f.name for f in layout.fixtures if not any(f.name in s.fixtures for s in venue.supplies)]
        if unfed and venue.supplies:
            lines.append(f"warning: no power supply listed for {', '.join(unfed[:8])}"
                         f"{' ...' if len(unfed) > 8 else ''} (not power-limited)")
    lines.append("OK")
    return "\n".join(lines)
