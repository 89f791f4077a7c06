"""Presets as an artist meets them: the shipped looks load and differ, bad files are refused with a message
naming file and key, saving is atomic and keeps history, and loading crossfades."""

from __future__ import annotations

import itertools
import math
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import installation.presets as presets_mod
from installation.engine import declare_all
from installation.params import BOOL, CHOICE, FLOAT, INT, ParamSpec, ParamTree
from installation.presets import (CURVES, SOURCES, Crossfade, MoodMapping, PresetError, PresetLibrary,
                                  dump_preset, parse_preset)

SHIPPED = Path(__file__).resolve().parents[1] / "presets"
SHIPPED_NAMES = ["breakdown", "harmony", "restoration", "symbiosis", "tension"]


@pytest.fixture(scope="module")
def full_tree() -> ParamTree:
    return declare_all()


@pytest.fixture
def lib(tmp_path) -> PresetLibrary:
    return PresetLibrary(tmp_path / "presets", declare_all())


def write(lib: PresetLibrary, name: str, text: str) -> Path:
    lib.root.mkdir(parents=True, exist_ok=True)
    p = lib.root / f"{name}.toml"
    p.write_text(text, encoding="utf-8")
    return p


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.endswith(".tmp"))


# -- shipped presets --------------------------------------------------------

def test_shipped_presets_all_load(full_tree):
    lib = PresetLibrary(SHIPPED, full_tree)
    assert lib.names() == SHIPPED_NAMES
    for name in SHIPPED_NAMES:
        p = lib.load(name)
        assert p.name == name and p.shipped and p.path == SHIPPED / f"{name}.toml"
        assert p.description.strip() and p.params and p.mood, name
        for path, value in p.params.items():
            assert full_tree.validate(path, value, clamp=False) == value
        for m in p.mood:
            assert full_tree.spec(m.target).kind in ("float", "int")
    assert all(not d.startswith("BROKEN") for _, d in lib.describe())


def test_shipped_presets_look_different(full_tree):
    lib = PresetLibrary(SHIPPED, full_tree)
    looks = {}
    for name in SHIPPED_NAMES:
        merged = full_tree.bases() | dict(lib.load(name).params)
        looks[name] = merged
    for a, b in itertools.combinations(SHIPPED_NAMES, 2):
        key = ("render/palette", "field/malfunction", "field/harmony")
        assert tuple(looks[a][k] for k in key) != tuple(looks[b][k] for k in key), (a, b)
        # and they differ in more than one knob
        assert sum(looks[a][k] != looks[b][k] for k in looks[a]) >= 5, (a, b)
    assert len({looks[n]["render/palette"] for n in SHIPPED_NAMES}) == 5


def test_missing_preset_lists_the_available_ones(full_tree):
    lib = PresetLibrary(SHIPPED, full_tree)
    with pytest.raises(PresetError, match=r"no preset 'calm'.*available: breakdown, harmony"):
        lib.load("calm")


def test_names_of_empty_or_missing_dir(tmp_path):
    assert PresetLibrary(tmp_path / "nope", ParamTree()).names() == []


# -- refusing bad files -----------------------------------------------------

@pytest.mark.parametrize("text, words", [
    ('[params]\n"field/nope" = 1\n', ["params.field/nope", "unknown parameter"]),
    ('[params]\n"field/harmony" = 1.5\n', ["params.field/harmony", "1.5 is outside 0 .. 1 ratio"]),
    ('[params]\n"field/nodes/count" = 40\n', ["params.field/nodes/count", "outside 2 .. 32"]),
    ('[params]\n"field/harmony" = nan\n', ["params.field/harmony", "not a finite number", "0 .. 1"]),
    ('[params]\n"field/harmony" = inf\n', ["params.field/harmony", "not a finite number"]),
    ('[params]\n"field/harmony" = "high"\n', ["params.field/harmony", "expected a number in 0 .. 1"]),
    ('[params]\n"field/harmony" = true\n', ["params.field/harmony", "expected a number"]),
    ('[params]\n"render/palette" = "neon"\n', ["params.render/palette", "one of bioluminescent"]),
    ('[params]\n"show/blackout" = 2\n', ["params.show/blackout", "true/false"]),
    ('colour = "red"\n', ["unknown key 'colour'"]),
    ('params = 3\n', ["[params] must be a table"]),
    ('description = 5\n', ["description", "expected text"]),
    ('[params]\n"field/harmony" = \n', ["not valid TOML", "line 2"]),
    ('[params\n', ["not valid TOML", "line 1"]),
    ('[params]\n"field/harmony" = 0.5\n"field/harmony" = 0.6\n', ["not valid TOML"]),
    ('mood = 1\n', ["mood must be an array of tables"]),
    ('mood = [1]\n', ["mood[0]: expected a table"]),
    ('[[mood]]\nsource = "presence"\ntarget = "field/harmony"\namount = 0.1\nspeed = 2\n',
     ["mood[0]: unknown key 'speed'"]),
    ('[[mood]]\nsource = "moon"\ntarget = "field/harmony"\namount = 0.1\n',
     ["mood[0].source", "'moon' is not one of intensity, presence"]),
    ('[[mood]]\ntarget = "field/harmony"\namount = 0.1\n', ["mood[0].source", "None"]),
    ('[[mood]]\nsource = "sound"\ntarget = "field/nope"\namount = 0.1\n', ["mood[0].target", "'field/nope'"]),
    ('[[mood]]\nsource = "sound"\ntarget = "render/palette"\namount = 0.1\n',
     ["mood[0].target", "render/palette is not numeric"]),
    ('[[mood]]\nsource = "sound"\ntarget = "show/blackout"\namount = 0.1\n', ["mood[0].target", "not numeric"]),
    ('[[mood]]\nsource = "sound"\ntarget = "field/harmony"\namount = 1.5\n', ["mood[0].amount", "-1 .. 1"]),
    ('[[mood]]\nsource = "sound"\ntarget = "field/harmony"\namount = "lots"\n', ["mood[0].amount", "-1 .. 1"]),
    ('[[mood]]\nsource = "sound"\ntarget = "field/harmony"\namount = nan\n', ["mood[0].amount"]),
    ('[[mood]]\nsource = "sound"\ntarget = "field/harmony"\n', ["mood[0].amount"]),
    ('[[mood]]\nsource = "sound"\ntarget = "field/harmony"\namount = 0.1\ncurve = "cubic"\n',
     ["mood[0].curve", "'cubic' is not one of linear, smooth"]),
    ('[[mood]]\nsource = "sound"\ntarget = "field/harmony"\namount = 0.1\nthreshold = 1.0\n',
     ["mood[0].threshold", "0 .. <1"]),
    ('[[mood]]\nsource = "sound"\ntarget = "field/harmony"\namount = 0.1\nthreshold = -0.1\n',
     ["mood[0].threshold"]),
    ('[[mood]]\nsource = "sound"\ntarget = "field/harmony"\namount = 0.1\n'
     '[[mood]]\nsource = "sound"\ntarget = "field/harmony"\namount = 0.1\ncurve = 3\n', ["mood[1].curve"]),
])
def test_bad_preset_refused_naming_file_and_key(lib, text, words):
    path = write(lib, "broken", text)
    before = lib.tree.bases()
    with pytest.raises(PresetError) as exc:
        lib.load("broken")
    msg = str(exc.value)
    assert msg.startswith(str(path) + ": "), msg
    for w in words:
        assert w in msg, msg
    assert lib.tree.bases() == before  # a bad file never changes the running show
    assert dict(lib.describe())["broken"].startswith("BROKEN: " + str(path))


def test_unreadable_file(lib):
    path = lib.root / "garbled.toml"
    lib.root.mkdir(parents=True)
    path.write_bytes(b'description = "\xff\xfe"\n')
    with pytest.raises(PresetError, match=f"{path}: cannot read"):
        lib.load("garbled")


def test_good_minimal_preset(lib):
    write(lib, "tiny", '[params]\n"field/nodes/count" = 12.0\n"show/blackout" = "on"\n"render/palette" = 2\n')
    p = lib.load("tiny")
    assert dict(p.params) == {"field/nodes/count": 12, "render/palette": "mycelium"}
    assert p.ignored == ("show/blackout",)  # venue scope: checked, but never part of a look
    assert type(p.params["field/nodes/count"]) is float   # it morphs in a crossfade: nodes fade in one by one
    assert p.description == "" and p.mood == () and p.shipped


# -- saving -----------------------------------------------------------------

def some_bases(tree: ParamTree, harmony: float = 0.42) -> dict:
    b = tree.bases()
    b["field/harmony"] = harmony
    b["render/palette"] = "aurora"
    b["field/nodes/count"] = 17.0
    return b


def test_save_writes_a_loadable_user_preset(lib):
    bases = some_bases(lib.tree)
    mood = (MoodMapping("sound", "field/malfunction", -0.3, "sqrt", 0.25),)
    path = lib.save("mine", bases, mood, description="my look")
    assert path == lib.root / "mine.toml" and lib.names() == ["mine"]
    p = lib.load("mine")
    assert dict(p.params) == {k: v for k, v in bases.items() if lib.tree.spec(k).scope == "look"}
    assert p.mood == mood and p.description == "my look" and p.ignored == ()
    assert not p.shipped and "saved" in tomllib.loads(path.read_text())
    assert leftovers(lib.root) == [] and not (lib.root / ".history").exists()


def test_save_keeps_the_previous_version_in_history(lib):
    first = lib.save("mine", some_bases(lib.tree, 0.1), description="first").read_text()
    second = lib.save("mine", some_bases(lib.tree, 0.2)).read_text()
    hist = sorted((lib.root / ".history").glob("mine-*.toml"))
    assert [h.read_text() for h in hist] == [first]
    assert lib.load("mine").params["field/harmony"] == 0.2
    assert lib.load("mine").description == "first"  # kept when no new one is given
    lib.save("mine", some_bases(lib.tree, 0.3))
    hist = sorted((lib.root / ".history").glob("mine-*.toml"))
    assert [h.read_text() for h in hist] == [first, second]
    assert lib.names() == ["mine"]  # history is not offered as presets
    assert leftovers(lib.root) == []
    assert "field/harmony\" = 0.2" in second


def test_shipped_preset_needs_force(lib):
    lib.root.mkdir(parents=True)
    shutil.copy(SHIPPED / "harmony.toml", lib.root / "harmony.toml")
    original = (lib.root / "harmony.toml").read_text()
    with pytest.raises(PresetError, match="harmony is a shipped preset.*force"):
        lib.save("harmony", some_bases(lib.tree))
    assert (lib.root / "harmony.toml").read_text() == original
    assert not (lib.root / ".history").exists() and leftovers(lib.root) == []

    lib.save("harmony", some_bases(lib.tree), force=True)
    p = lib.load("harmony")
    assert p.params["field/harmony"] == 0.42 and not p.shipped
    assert p.description.startswith("Harmony:")  # the shipped description carries over
    assert [h.read_text() for h in (lib.root / ".history").glob("harmony-*.toml")] == [original]
    lib.save("harmony", some_bases(lib.tree, 0.5))  # now the user's own: no force needed
    assert lib.load("harmony").params["field/harmony"] == 0.5


def test_broken_existing_file_can_be_saved_over(lib):
    write(lib, "mine", "this is [not toml\n")
    lib.save("mine", some_bases(lib.tree))
    assert lib.load("mine").params["field/harmony"] == 0.42
    assert [h.read_text() for h in (lib.root / ".history").glob("*.toml")] == ["this is [not toml\n"]


@pytest.mark.parametrize("name", ["../x", "a/b", "", "x" * 65, "a.b", "a b", "/etc/passwd", "..", "é", None, 5])
def test_unsafe_names_refused(lib, name):
    with pytest.raises(PresetError, match="use 1-64 letters, digits"):
        lib.save(name, some_bases(lib.tree))
    with pytest.raises(PresetError, match="use 1-64 letters, digits"):
        lib.load(name)
    assert not lib.root.exists() or list(lib.root.rglob("*")) == []


def test_longest_safe_name_accepted(lib):
    name = "A-z_9" + "x" * 59
    assert len(name) == 64
    lib.save(name, some_bases(lib.tree))
    assert lib.names() == [name]


def test_name_with_trailing_newline_refused(lib):
    with pytest.raises(PresetError):
        lib.path("mine\n")


@pytest.mark.parametrize("bad, words", [({"field/harmony": 3.0}, "outside"), ({"field/nope": 1.0}, "unknown")])
def test_save_refuses_what_it_could_not_load(lib, bad, words):
    with pytest.raises(PresetError, match=words):
        lib.save("mine", bad)
    assert not (lib.root / "mine.toml").exists()


def test_failed_save_leaves_the_old_file_and_no_temp(lib, monkeypatch):
    first = lib.save("mine", some_bases(lib.tree, 0.1)).read_text()

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(presets_mod.os, "replace", refuse)
    with pytest.raises(PresetError, match=r"mine\.toml: could not save: .*No space left"):
        lib.save("mine", some_bases(lib.tree, 0.9))
    monkeypatch.undo()
    assert (lib.root / "mine.toml").read_text() == first
    assert leftovers(lib.root) == []


def test_description_with_control_characters(lib):
    desc = "line\rbreak\x07bell"
    lib.save("mine", some_bases(lib.tree), description=desc)
    assert lib.load("mine").description == desc


# -- dump -> load -------------------------------------------------------------

def test_dump_load_round_trip(lib):
    bases = some_bases(lib.tree)
    bases["show/blackout"] = True
    bases["render/exposure"] = 1 / 3
    mood = tuple(MoodMapping(s, "field/flow/speed", a, c, t)
                 for s, a, c, t in zip(SOURCES, (-1.0, -0.25, 0.0, 0.5, 1.0), CURVES + ("linear",),
                                       (0.0, 0.1, 0.5, 0.99, 0.3)))
    desc = 'A "quoted" \\ back\\slash\nnew line\ttab — ünïcode'
    path = write(lib, "rt", dump_preset(desc, bases, mood))
    p = lib.load("rt")
    assert p.description == desc and p.mood == mood and p.shipped
    assert dict(p.params) == {k: v for k, v in bases.items() if lib.tree.spec(k).scope == "look"}
    assert p.ignored == ("field/particles", "field/sim_every", "leds/dither", "leds/gamma", "leds/master",
                         "show/blackout", "show/fade", "show/master")
    assert all(type(p.params[k]) is type(bases[k]) for k in p.params)
    assert dump_preset(desc, dict(p.params), p.mood) == dump_preset(desc, {k: bases[k] for k in p.params}, mood)


@given(st.floats(0.0, 1.0), st.integers(2, 32), st.sampled_from(["bioluminescent", "abyssal", "aurora"]))
def test_dump_parse_exact(harmony, count, palette):
    tree = declare_all()
    bases = {"field/harmony": harmony, "field/nodes/count": count, "render/palette": palette}
    p = parse_preset(tomllib.loads(dump_preset("", bases)), tree, "x", "x.toml")
    assert dict(p.params) == bases


# -- crossfade --------------------------------------------------------------

GAIN = ParamSpec("fx/gain", FLOAT, 0.0, "Gain", 0.0, 2.0)
OTHER = ParamSpec("fx/other", FLOAT, 1.0, "Untouched", 0.0, 2.0)
COUNT = ParamSpec("fx/count", INT, 4, "Count", 1, 10)
ON = ParamSpec("fx/on", BOOL, True, "On")
MODE = ParamSpec("fx/mode", CHOICE, "calm", "Mode", choices=("calm", "wild"))
SIZE = ParamSpec("fx/size", INT, 16, "Restart only", 1, 64, live=False)


@pytest.fixture
def small():
    return ParamTree.from_specs([GAIN, OTHER, COUNT, ON, MODE, SIZE])


TARGET = {"fx/gain": 2.0, "fx/count": 8, "fx/on": False, "fx/mode": "wild", "fx/size": 32}


def test_crossfade_floats_ease_and_arrive(small):
    f = Crossfade(small, TARGET, 1.0)
    assert f.progress == 0.0 and not f.done
    f.step(0.25)
    quarter = small.base("fx/gain")
    assert 0.0 < quarter < 0.5  # eased: slower than linear at the start
    f.step(0.25)
    assert small.base("fx/gain") == 1.0  # exactly half way at the midpoint
    f.step(0.25)
    assert 1.5 < small.base("fx/gain") < 2.0
    assert small.base("fx/gain") == pytest.approx(2.0 - quarter)  # symmetric ease
    f.step(0.25)
    assert f.done and f.progress == 1.0 and small.base("fx/gain") == 2.0
    f.step(1.0)  # stepping past the end stays at the target
    assert small.base("fx/gain") == 2.0
    assert small.base("fx/other") == 1.0  # not in the preset: untouched
    assert small.base("fx/size") == 16    # restart-only parameter: not faded


def test_crossfade_values_are_monotonic(small):
    f = Crossfade(small, TARGET, 2.0)
    seen = []
    while not f.done:
        f.step(1 / 60)
        seen.append(small.base("fx/gain"))
    assert seen == sorted(seen) and seen[-1] == 2.0 and 100 < len(seen) < 130


def test_crossfade_speed_is_steady_in_the_middle_and_eased_at_the_ends():
    """A fade's progress rises at most 1/(1 - EASE_RAMP) times the average rate (a smoothstep peaks at
    1.5x: the largest frame-to-frame change of a fade follows the peak), and starts and stops gently."""
    from installation.presets import EASE_RAMP, ease
    x = np.linspace(0.0, 1.0, 2001)
    a = np.array([ease(v) for v in x])
    rate = np.diff(a) / np.diff(x)
    assert a[0] == 0.0 and a[-1] == 1.0 and np.all(rate >= 0)
    assert rate.max() <= 1.0 / (1.0 - EASE_RAMP) + 1e-6 < 1.5
    assert rate[0] < 0.01 and rate[-1] < 0.01
    assert ease(0.5) == pytest.approx(0.5) and ease(0.3) == pytest.approx(1.0 - ease(0.7))


def test_crossfade_early_choices_switch_at_the_start(small):
    f = Crossfade(small, TARGET, 1.0, early=frozenset({"fx/mode"}))
    f.step(0.01)
    assert (small.base("fx/count"), small.base("fx/mode")) == (4, "wild")


def test_crossfade_discrete_switch_at_midpoint(small):
    f = Crossfade(small, TARGET, 1.0)
    f.step(0.49)
    assert (small.base("fx/count"), small.base("fx/on"), small.base("fx/mode")) == (4, True, "calm")
    f.step(0.01)
    assert (small.base("fx/count"), small.base("fx/on"), small.base("fx/mode")) == (8, False, "wild")
    f.step(0.5)
    assert (small.base("fx/count"), small.base("fx/on"), small.base("fx/mode")) == (8, False, "wild")


def test_crossfade_listeners_hear_each_change_once(small):
    heard = []
    small.listen(lambda p, v: heard.append(p))
    f = Crossfade(small, {"fx/mode": "wild"}, 1.0)
    for _ in range(10):
        f.step(0.1)
    assert heard == ["fx/mode"]


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_crossfade_zero_time_is_a_cut(small, seconds):
    f = Crossfade(small, TARGET, seconds)
    assert f.done and f.progress == 1.0
    f.step(0.0)
    assert {p: small.base(p) for p in TARGET if p != "fx/size"} == {k: v for k, v in TARGET.items()
                                                                      if k != "fx/size"}


def test_crossfade_mood_mappings_cross_over(small):
    old = (MoodMapping("sound", "fx/gain", 0.5),)
    new = (MoodMapping("presence", "fx/gain", -0.5), MoodMapping("motion", "fx/count", 0.2))
    f = Crossfade(small, TARGET, 1.0, old, new)
    assert f.mappings() == [(old[0], 1.0), (new[0], 0.0), (new[1], 0.0)]
    f.step(0.5)
    assert f.mappings() == [(old[0], 0.5), (new[0], 0.5), (new[1], 0.5)]
    f.step(0.2)
    w = dict((m.source, wt) for m, wt in f.mappings())
    assert 0.0 < w["sound"] < 0.5 < w["presence"] < 1.0 and w["sound"] + w["presence"] == pytest.approx(1.0)
    f.step(0.3)
    assert f.mappings() == [(old[0], 0.0), (new[0], 1.0), (new[1], 1.0)]


def test_crossfade_between_shipped_presets_lands_exactly():
    tree = declare_all()
    lib = PresetLibrary(SHIPPED, tree)
    off = []
    for a, b in itertools.permutations(SHIPPED_NAMES, 2):
        tree.reset()
        tree.update_bases(lib.load(a).params)
        target = dict(lib.load(b).params)
        f = Crossfade(tree, target, 2.0)
        for _ in range(1000):
            if f.done:
                break
            f.step(1 / 60)
        off += [(a, b, p, tree.base(p), v) for p, v in target.items() if tree.base(p) != v]
    assert off == []


# -- mood mapping curves ------------------------------------------------------

RANGE2 = ParamSpec("fx/r", FLOAT, 1.0, "", 1.0, 3.0)  # span 2


@pytest.mark.parametrize("curve, level, x", [
    ("linear", 0.0, 0.0), ("linear", 0.5, 0.5), ("linear", 1.0, 1.0),
    ("smooth", 0.25, 0.15625), ("smooth", 0.5, 0.5), ("smooth", 1.0, 1.0),
    ("square", 0.5, 0.25), ("square", 1.0, 1.0),
    ("sqrt", 0.25, 0.5), ("sqrt", 1.0, 1.0),
    ("linear", 1.7, 1.0), ("linear", -0.3, 0.0), ("sqrt", -1.0, 0.0),  # levels outside 0..1 clamp
])
def test_offset_curves(curve, level, x):
    m = MoodMapping("sound", "fx/r", 0.5, curve)
    assert m.offset(level, RANGE2) == pytest.approx(0.5 * x * 2.0)


def test_offset_threshold_and_sign():
    m = MoodMapping("presence", "fx/r", -0.25, "linear", threshold=0.2)
    assert m.offset(0.0, RANGE2) == 0.0 and m.offset(0.2, RANGE2) == 0.0
    assert m.offset(0.6, RANGE2) == pytest.approx(-0.25 * 0.5 * 2.0)
    assert m.offset(1.0, RANGE2) == pytest.approx(-0.5)
    smooth = MoodMapping("presence", "fx/r", 1.0, "smooth", threshold=0.5)
    assert smooth.offset(0.75, RANGE2) == pytest.approx(1.0)  # half way past the threshold -> smooth(0.5)
    assert smooth.offset(0.49, RANGE2) == 0.0


def test_offset_is_monotonic_for_every_curve():
    levels = [i / 100 for i in range(101)]
    for curve in CURVES:
        m = MoodMapping("sound", "fx/r", 1.0, curve, 0.1)
        vals = [m.offset(v, RANGE2) for v in levels]
        assert vals == sorted(vals) and vals[0] == 0.0 and vals[-1] == pytest.approx(2.0), curve
        assert all(math.isfinite(v) for v in vals)


# -- scope, bounds and the save worker ------------------------------------------

def test_saved_look_holds_only_look_scope_values(lib):
    bases = lib.tree.bases()
    bases["field/sim_every"] = 2
    bases["field/particles"] = 8388608
    text = lib.save("mine", bases).read_text()
    for path in ("field/sim_every", "field/particles", "show/master", "leds/master"):
        assert f'"{path}"' not in text
    assert '"field/harmony"' in text


def test_history_is_bounded(lib):
    for i in range(presets_mod.MAX_HISTORY + 5):
        lib.save("mine", some_bases(lib.tree, i / 100))
    assert len(list((lib.root / ".history").glob("mine-*.toml"))) == presets_mod.MAX_HISTORY


def test_preset_count_and_size_are_bounded(lib, monkeypatch):
    monkeypatch.setattr(presets_mod, "MAX_PRESETS", 3)
    for name in ("a", "b", "c"):
        lib.save(name, some_bases(lib.tree))
    with pytest.raises(PresetError, match="already holds 3 presets"):
        lib.save("d", some_bases(lib.tree))
    lib.save("a", some_bases(lib.tree, 0.1))  # overwriting one is still fine
    with pytest.raises(PresetError, match="more than 65536"):
        lib.save("b", some_bases(lib.tree), description="x" * 70000)


def test_save_worker_merges_same_name_requests_and_reports_each():
    import threading
    from installation.presets import SaveWorker
    gate = threading.Event()
    written, answers = [], []
    worker = SaveWorker(max_pending=2)
    started = threading.Event()
    worker.submit("block", lambda: (started.set(), gate.wait()))  # hold the worker so the next requests queue up
    assert started.wait(5.0)
    for i in range(50):
        worker.submit("mine", lambda i=i: written.append(i), answers.append)
    worker.submit("other", lambda: written.append("other"))
    with pytest.raises(PresetError, match="busy"):
        worker.submit("third", lambda: None)
    gate.set()
    assert worker.flush(5.0)
    worker.close()
    assert written == [49, "other"] and answers == [None] * 50 and worker.merged == 49


def test_venue_params_round_trip_and_refuse_look_values(tmp_path):
    from installation.presets import load_venue_params, save_venue_params, venue_params_path
    tree = declare_all()
    assert venue_params_path(Path("/x/hall.toml")) == Path("/x/hall.params.toml")
    tree.set_base("leds/master", 0.5)
    tree.set_base("show/blackout", True)
    path = save_venue_params(tmp_path / "hall.params.toml", tree.bases(), tree)
    values = load_venue_params(path, tree)
    assert values["leds/master"] == 0.5 and "show/blackout" not in values and "field/harmony" not in values
    assert load_venue_params(tmp_path / "none.params.toml", tree) == {}
    path.write_text('[params]\n"field/harmony" = 0.5\n')
    with pytest.raises(PresetError, match="field/harmony: a look parameter, not a venue one"):
        load_venue_params(path, tree)
