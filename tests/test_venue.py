"""Venue files: layouts + outputs + power supplies, with clear errors; `layouts check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from installation.venue import VenueError, check_layout, load_venue

HW = Path(__file__).resolve().parents[1] / "hardware"

LAYOUT = """
[[fixtures]]
name = "s1"
type = "strip"
start = [0.1, 0.0]
end = [0.1, 1.0]
count = 60
[fixtures.patch]
controller = "node"
universe = 0
[[fixtures]]
name = "s2"
type = "strip"
start = [0.2, 0.0]
end = [0.2, 1.0]
count = 60
[fixtures.patch]
controller = "node"
universe = 1
"""

VENUE = """
name = "test"
layouts = ["l.toml"]
[[outputs]]
name = "node"
protocol = "artnet"
host = "127.0.0.1"
[[power]]
name = "psu"
amps = 2.0
fixtures = ["s*"]
[leds]
max_brightness = 0.5
[leds.current]
idle = 0.5
[sensors]
camera = "/dev/video0"
"""


def venue(tmp_path: Path, text: str = VENUE, layout: str = LAYOUT) -> Path:
    (tmp_path / "l.toml").write_text(layout)
    p = tmp_path / "v.toml"
    p.write_text(text)
    return p


def test_load(tmp_path):
    v = load_venue(venue(tmp_path))
    assert v.name == "test" and v.layout.count == 120
    assert v.outputs[0].protocol == "artnet"
    assert v.supplies[0].fixtures == ("s1", "s2") and v.supplies[0].amps == 2.0
    assert v.max_brightness == 0.5 and v.current.idle == 0.5 and v.current.r == 16
    assert v.sections["sensors"] == {"camera": "/dev/video0"}
    assert [c.universes for c in v.patch.controllers] == [[0, 1]]


@pytest.mark.parametrize("edit, message", [
    (("layouts = ", "layuots = "), "unknown key 'layuots' (did you mean 'layouts'?)"),
    (('controller = "node"', 'controller = "nod"'), "no output named 'nod' (did you mean 'node'?)"),
    (('protocol = "artnet"', 'protocol = "dmx"'), "'protocol' must be one of"),
    (('fixtures = ["s*"]', 'fixtures = ["x*"]'), "power[0] (psu).fixtures: 'x*' matches no fixture"),
    (("amps = 2.0", "amps = -1"), "amps: -1 must be > 0"),
    (("amps = 2.0", "amps = 0.05"), "cannot even feed the idle current of its 120 LEDs"),
    (("max_brightness = 0.5", "max_brightnes = 0.5"), "leds: unknown key 'max_brightnes'"),
    (("idle = 0.5", "idel = 0.5"), "did you mean 'idle'"),
])
def test_errors(tmp_path, edit, message):
    text = VENUE.replace(*edit)
    layout = LAYOUT.replace(*edit) if edit[0] in LAYOUT else LAYOUT
    p = venue(tmp_path, text, layout)
    with pytest.raises(VenueError) as e:
        load_venue(p)
    assert message in str(e.value)
    assert str(tmp_path) in str(e.value)


def test_unknown_sections_are_kept_and_reported(tmp_path):
    v = load_venue(venue(tmp_path, VENUE + "\n[lighting_desk]\nip = '10.0.0.2'\n[schedual]\nopen = '10:00'\n"))
    assert "lighting_desk" in v.sections
    assert any("schedual" in w and "did you mean 'schedule'" in w for w in v.warnings)


def test_overlap_reported_through_venue(tmp_path):
    with pytest.raises(VenueError, match="overlap on controller 'node'"):
        load_venue(venue(tmp_path, layout=LAYOUT.replace("universe = 1", "universe = 0\nchannel = 100")))


def test_check_layout_summary(tmp_path):
    out = check_layout(venue(tmp_path))
    assert "LEDs: 120" in out and "artnet: 1 controller(s), 2 universes" in out and out.endswith("OK")
    assert "power psu: 2 A budget" in out
    bad = check_layout(venue(tmp_path, VENUE.replace('"artnet"', '"sacn"')))
    assert bad.startswith("ERROR") and "(s1).patch.universe" in bad and "outside sacn's 1..63999" in bad


def test_shipped_venues():
    demo = load_venue(HW / "demo-venue.toml")
    assert all(o.host == "127.0.0.1" for o in demo.outputs)
    assert {o.protocol for o in demo.outputs} == {"artnet", "ddp", "sacn"}
    large = load_venue(HW / "large-venue.toml")
    assert large.layout.count >= 50_000
    assert sum(len(c.universes) for c in large.patch.controllers) >= 290
    summary = check_layout(HW / "large-venue.toml")
    assert "LEDs: 50000" in summary and "300 universes" in summary
