"""The show file (a venue TOML), read once, checked against every section's schema, typed.

Each section's schema lives in the module that owns the section; :data:`SECTIONS` is the one
explicit list of them (add a new section's schema there).  :func:`load_show` reads the file,
refuses unknown sections and keys, runs each owner's own parser, and returns a :class:`Show`;
every problem is one :class:`~installation.schema.ConfigError` ``file: key: problem``.
``python run.py venue reference`` writes docs/venue-reference.md from the same declarations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .control.osc import OSC_SCHEMA, OscConfig
from .fixtures.layout import LayoutError, read_table
from .scenes import SCENES_SCHEMA, SCHEDULE_SCHEMA, Schedule, SceneList
from .schema import ConfigError, Key, Section, reference_markdown, validate
from .sensing.hub import SENSORS_SCHEMA
from .alerts import AlertConfig
from .safety import SAFETY_KEYS, read_safety
from .control.web import WebConfig
from .outputs.discovery import DiscoveryConfig
from .venue import END_STATE, LEDS, OUTPUTS, POWER, TOP_KEYS, Venue, build_venue

def owned_section(name: str, description: str, reader, keys: tuple[str, ...] = ()) -> Section:
    """A section whose keys its owner checks itself (``reader(sections, where)`` returns the typed config and
    raises a ValueError naming the key); the reference lists its keys from the owner's ``_KEYS``."""
    cls = getattr(reader, "__self__", None)
    keys = keys or getattr(cls, "_KEYS", ())
    text = description + (" Keys: " + ", ".join(f"`{k}`" for k in keys) + "." if keys else "")
    return Section(name, text, open_keys=True,
                   build=lambda raw, where: reader({name: raw}, where.split(": ")[0].rstrip(":")))


ALERTS_SCHEMA = owned_section("alerts", "Webhook alerts when the show degrades and recovers (docs/operations.md).",
                              AlertConfig.from_sections)
DISCOVERY_SCHEMA = owned_section("discovery", "ArtPoll / sACN discovery of the controllers the venue names "
                                 "(docs/operations.md).", DiscoveryConfig.from_sections)

WEB_SCHEMA = owned_section("web", "The phone page and OSCQuery server (docs/web.md); no [web] table: no page. "
                           "A token of 4+ characters is required unless host is loopback.",
                           lambda sections, where: WebConfig.from_venue(sections), ("enabled", "host", "port", "token"))

SAFETY_SCHEMA = owned_section("safety", "Photosensitive safety: the closest viewing distance sets the size of the "
                              "regions the flash limiter counts over (docs/operations.md). The limiter has no switch.",
                              lambda sections, where: read_safety(sections.get("safety")), SAFETY_KEYS)

CAMERA_SCHEMA = Section("camera", "The presence camera's calibration, written by `run.py map --write-roi` "
                        "(docs/mapping.md); the camera device itself is `[sensors] camera`.", keys=(
    Key("roi", list, None, "camera image -> canvas homography as 8 numbers (the 4 canvas corners in the image, "
        "x,y each, in 0..1 image units)", item=float, lo=-1.0, hi=2.0),
    Key("lens_k1", float, 0.0, "radial lens distortion k1 measured by the mapping", lo=-1.0, hi=1.0),
    Key("image_size", list, None, "the camera image size the mapping saw (width, height)", unit="px", item=int, lo=1),
    Key("mapped", str, None, "when the mapping that wrote these values ran"),
))

#: Every section a venue file may have, in the order of the reference.  Register new ones here.
SECTIONS: tuple[Section, ...] = (OUTPUTS, POWER, LEDS, END_STATE, SCENES_SCHEMA, SCHEDULE_SCHEMA, SENSORS_SCHEMA,
                                 OSC_SCHEMA, ALERTS_SCHEMA, DISCOVERY_SCHEMA, WEB_SCHEMA, SAFETY_SCHEMA, CAMERA_SCHEMA)


def top_section(sections: tuple[Section, ...] = SECTIONS) -> Section:
    """The whole file: the top-level keys plus one key per registered section."""
    return Section("", "A venue file: which LED layouts, outputs and power supplies, and how the show runs "
                   "there. Paths are relative to the file.",
                   keys=TOP_KEYS + tuple(Key(s.name, list if s.many else dict, None, s.description, section=s)
                                         for s in sections))


@dataclass
class Show:
    """A loaded, checked show file."""

    path: Path
    venue: Venue                       # the LED part: layouts, outputs, patch, power, limits
    scenes: SceneList | None = None
    schedule: Schedule | None = None
    sensors: dict[str, Any] = field(default_factory=dict)
    osc: OscConfig = field(default_factory=OscConfig)
    end_state: str = "blackout"
    sections: dict[str, Any] = field(default_factory=dict)  # every section's checked value, by name


def load_show(path: str | Path, sections: tuple[Section, ...] = SECTIONS) -> Show:
    """Read and check ``path``; :class:`ConfigError` on the first problem."""
    path = Path(path)
    try:
        raw = read_table(path)
    except LayoutError as exc:
        raise ConfigError(str(exc)) from None
    if "fixtures" in raw and not any(k in raw for k in ("layouts", "layout", "outputs")):
        raise ConfigError(f"{path}: a layout file ([[fixtures]]), not a venue: a venue names its layouts "
                          f"(layouts = [\"{path.name}\"]) and its [[outputs]] (see docs/venue-reference.md)")
    values = validate(top_section(sections), raw, f"{path}:")
    venue = build_venue(raw, path)
    return Show(path=path, venue=venue, scenes=values.get("scenes"), schedule=values.get("schedule"),
                sensors={k: v for k, v in (values.get("sensors") or {}).items() if v is not None},
                osc=values.get("osc") or OscConfig(), end_state=(values.get("end_state") or {}).get("mode", "blackout"),
                sections={s.name: values.get(s.name) for s in sections})


def reference(sections: tuple[Section, ...] = SECTIONS) -> str:
    """docs/venue-reference.md: every key of a venue file with its description."""
    return reference_markdown((top_section(sections),), "Venue file reference",
                              "Every key a venue file (`--venue FILE`) may hold. Generated from the schema by "
                              "`python run.py venue reference --update-docs`; do not edit by hand. "
                              "Unknown sections and keys are refused. `python run.py venue check FILE` "
                              "checks a file.")
