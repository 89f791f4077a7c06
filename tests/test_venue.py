"""Venue files: layouts + outputs + power supplies, with clear errors; `layouts check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from installation.schema import ConfigError
from installation.showfile import SECTIONS, load_show, reference
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
    (("layouts = ", "layuots = "), "v.toml: layuots: unknown key (did you mean 'layouts'?)"),
    (('controller = "node"', 'controller = "nod"'), "no output named 'nod' (did you mean 'node'?)"),
    (('protocol = "artnet"', 'protocol = "dmx"'), "outputs[0].protocol: 'dmx' is not one of"),
    (('fixtures = ["s*"]', 'fixtures = ["x*"]'), "power[0] (psu).fixtures: 'x*' matches no fixture"),
    (("amps = 2.0", "amps = -1"), "power[0].amps: -1 is out of range (> 0"),
    (("amps = 2.0", "amps = 0.05"), "cannot even feed the idle current of its 120 LEDs"),
    (("max_brightness = 0.5", "max_brightnes = 0.5"), "leds.max_brightnes: unknown key"),
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


def test_unknown_sections_are_refused_with_file_key_problem(tmp_path):
    """A typo in a section name used to be kept silently; now it is one error naming file and key."""
    with pytest.raises(ConfigError, match=r"v\.toml: schedual: unknown key \(did you mean 'schedule'\?\)"):
        load_venue(venue(tmp_path, VENUE + "\n[schedual]\nopen = '10:00'\n"))
    with pytest.raises(ConfigError, match=r"v\.toml: lighting_desk: unknown key"):
        load_venue(venue(tmp_path, VENUE + "\n[lighting_desk]\nip = '10.0.0.2'\n"))


@pytest.mark.parametrize("extra, message", [
    ("[scenes]\nloop = true\n", "scenes.cue: required"),
    ("[scenes]\nfade_s = -1\n[[scenes.cue]]\nname = 'a'\n", "scenes.fade_s: -1 is out of range"),
    ("[[scenes.cue]]\nname = 'a'\nnext = 'zz'\n", "zz"),            # the owner's cross-reference check
    ("[osc]\nport = 70000\n", "osc.port: 70000 is out of range"),
    ("[osc]\nprot = 9000\n", "osc.prot: unknown key (did you mean 'port'?)"),
    ("[osc]\nallow = [1]\n", "osc.allow[0]: expected a string"),
    ("[osc]\ncamra = 0\n", "osc.camra: unknown key (known: allow"),
    ("[end_state]\nmode = 'fade'\n", "end_state.mode: 'fade' is not one of 'blackout', 'hold'"),
    ("[schedule]\nopen_level = 2\n[schedule.hours]\ndaily = '10:00-18:00'\n", "schedule.open_level: 2 is out of"),
    ("[schedule]\n[schedule.hours]\ndaily = '25:00-18:00'\n", "schedule.hours.daily"),
])
def test_every_section_is_checked_as_one_config_error(tmp_path, extra, message):
    """scenes, schedule, osc, sensors, end_state: all ConfigError (a bad [scenes] used to escape as SceneError)."""
    with pytest.raises(ConfigError) as e:
        load_show(venue(tmp_path, VENUE + "\n" + extra))
    assert message in str(e.value) and str(e.value).startswith(str(tmp_path)) and "\n" not in str(e.value)


def test_the_show_is_typed_and_whole(tmp_path):
    show = load_show(venue(tmp_path, VENUE + "\n[osc]\nport = 9100\nallow = ['10.0.0.0/8']\n"
                           "[end_state]\nmode = 'hold'\n"
                           "[scenes]\n[[scenes.cue]]\nname = 'tension'\n"))
    assert show.osc.port == 9100 and show.osc.allow == ("10.0.0.0/8",)
    assert show.sensors == {"camera": "/dev/video0"} and show.end_state == "hold"
    assert show.scenes.cues[0].preset == "tension" and show.venue.layout.count == 120


def test_every_shipped_venue_passes(tmp_path):
    for p in sorted(HW.glob("*venue*.toml")):
        assert load_show(p).venue.layout.count > 0, p


def test_venue_reference_is_current():
    """docs/venue-reference.md is generated from the schema: regenerate with
    `python run.py venue reference --update-docs`."""
    doc = (HW.parent / "docs" / "venue-reference.md").read_text(encoding="utf-8")
    assert doc == reference()
    for s in SECTIONS:
        for k in s.keys:
            assert k.description, f"{s.name}.{k.name} has no description"
            assert f"`{k.name}`" in doc


def test_overlap_reported_through_venue(tmp_path):
    with pytest.raises(VenueError, match="overlap on controller 'node'"):
        load_venue(venue(tmp_path, layout=LAYOUT.replace("universe = 1", "universe = 0\nchannel = 100")))


def test_check_layout_summary(tmp_path):
    out = check_layout(venue(tmp_path))
    assert "LEDs: 120" in out and "artnet: 1 controller(s), 2 universes" in out and out.endswith("OK")
    assert "power psu: 2 A budget" in out
    bad = check_layout(venue(tmp_path, VENUE.replace('"artnet"', '"sacn"')))
    assert bad.startswith("ERROR") and "(s1).patch.universe" in bad and "outside sacn's 1..63999" in bad


def test_a_layout_file_given_as_a_venue_says_so():
    """`venue check strip-wall.toml` said OK (it checked it as a layout) and the show then refused it with
    'canvas: unknown key': now both say it is a layout file, not a venue; `layouts check` still takes it."""
    for problem in (check_layout(HW / "strip-wall.toml", venue=True).removeprefix("ERROR "),
                    _error(lambda: load_venue(HW / "strip-wall.toml"))):
        assert "strip-wall.toml: a layout file ([[fixtures]]), not a venue" in problem, problem
    assert check_layout(HW / "strip-wall.toml").endswith("OK")
    assert check_layout(HW / "demo-venue.toml", venue=True).endswith("OK")


def _error(fn) -> str:
    with pytest.raises(VenueError) as exc:
        fn()
    return str(exc.value)


def test_shipped_venues():
    demo = load_venue(HW / "demo-venue.toml")
    assert all(o.host == "127.0.0.1" for o in demo.outputs)
    assert {o.protocol for o in demo.outputs} == {"artnet", "ddp", "sacn"}
    large = load_venue(HW / "large-venue.toml")
    assert large.layout.count >= 50_000
    assert sum(len(c.universes) for c in large.patch.controllers) >= 290
    summary = check_layout(HW / "large-venue.toml")
    assert "LEDs: 50000" in summary and "300 universes" in summary


def test_explicit_preset_is_not_overridden_by_the_first_cue():
    """`--preset breakdown` was silently replaced by the venue's first cue at once; now it stays until
    that cue ends, then the scenes take over."""
    from installation.scenes import FadeToPreset, SceneRunner
    scenes = load_show(HW / "demo-venue.toml").scenes
    kept = SceneRunner(scenes, keep_first_preset=True)
    assert not [a for a in kept.update(0.0, 0.0) if isinstance(a, FadeToPreset)]
    later = kept.update(scenes.cues[0].duration_s + 0.1, 0.1)
    assert [a.name for a in later if isinstance(a, FadeToPreset)] == [scenes.cues[1].preset]
    plain = SceneRunner(scenes)
    assert [a.name for a in plain.update(0.0, 0.0) if isinstance(a, FadeToPreset)] == [scenes.cues[0].preset]
