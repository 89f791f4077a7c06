"""The parameter model as a user meets it: what values are accepted, refused or clamped, and how the tree
behaves (bases, listeners, modulation, overrides, all-or-nothing updates, the docs table)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from installation.params import BOOL, CHOICE, FLOAT, INT, ParamError, ParamSpec, ParamTree, floats

GAIN = ParamSpec("fx/gain", FLOAT, 0.5, "Gain", 0.0, 2.0, "ratio")
COUNT = ParamSpec("fx/count", INT, 4, "How many", 1, 10)
ON = ParamSpec("fx/on", BOOL, True, "Enabled")
MODE = ParamSpec("fx/mode", CHOICE, "calm", "Mode", choices=("calm", "wild", "still"))
SIZE = ParamSpec("fx/size", INT, 1024, "Buffer size", 16, 4096, "items", live=False)
ALL = (GAIN, COUNT, ON, MODE, SIZE)


@pytest.fixture
def tree() -> ParamTree:
    return ParamTree.from_specs(ALL)


# -- declarations ---------------------------------------------------------

@pytest.mark.parametrize("kwargs, words", [
    (dict(path="a/b", kind="complex", default=0, description=""), "unknown kind"),
    (dict(path="", kind=FLOAT, default=0, description="", lo=0, hi=1), "bad parameter path"),
    (dict(path="/a", kind=FLOAT, default=0, description="", lo=0, hi=1), "bad parameter path"),
    (dict(path="a/", kind=FLOAT, default=0, description="", lo=0, hi=1), "bad parameter path"),
    (dict(path="a b", kind=FLOAT, default=0, description="", lo=0, hi=1), "bad parameter path"),
    (dict(path="a/b", kind=FLOAT, default=0, description=""), "lo <= hi"),
    (dict(path="a/b", kind=INT, default=0, description="", lo=3, hi=1), "lo <= hi"),
    (dict(path="a/b", kind=CHOICE, default="x", description="", choices=("a", "b")), "not in"),
    (dict(path="a/b", kind=FLOAT, default=5.0, description="", lo=0, hi=1), "outside 0 .. 1"),
])
def test_bad_declarations_refused(kwargs, words):
    with pytest.raises(ParamError, match=words):
        ParamSpec(**kwargs)


def test_int_default_is_coerced_to_int():
    spec = ParamSpec("a/n", INT, 3.0, "n", 0, 10)
    assert spec.default == 3 and type(spec.default) is int


def test_duplicate_declaration_refused():
    with pytest.raises(ParamError, match="fx/gain declared twice"):
        ParamTree.from_specs([GAIN, GAIN])
    t = ParamTree.from_specs([GAIN])
    with pytest.raises(ParamError, match="declared twice"):
        t.declare([ParamSpec("fx/gain", FLOAT, 0.0, "other", 0.0, 1.0)])


def test_floats_helper():
    specs = floats("fx", [("a", 0.5, 0.0, 1.0, "ratio", "A"), ("b", 2.0, 1.0, 3.0, "s", "B")])
    assert [(s.path, s.kind, s.default, s.lo, s.hi, s.unit, s.description) for s in specs] == [
        ("fx/a", FLOAT, 0.5, 0.0, 1.0, "ratio", "A"), ("fx/b", FLOAT, 2.0, 1.0, 3.0, "s", "B")]


def test_lookup(tree):
    assert len(tree) == 5 and "fx/gain" in tree and "fx/nope" not in tree
    assert tree.paths() == sorted(s.path for s in ALL)
    assert [s.path for s in tree.specs()] == tree.paths()
    assert tree.spec("fx/mode") is MODE
    assert tree["fx/gain"] == tree.get("fx/gain") == tree.base("fx/gain") == 0.5
    for call in (lambda: tree["fx/nope"], lambda: tree.base("fx/nope"), lambda: tree.spec("fx/nope"),
                 lambda: tree.set_base("fx/nope", 1), lambda: tree.validate("fx/nope", 1)):
        with pytest.raises(ParamError, match="unknown parameter 'fx/nope'"):
            call()


# -- coercion per kind ----------------------------------------------------

def test_float_clamps_or_refuses():
    assert GAIN.coerce(3.0) == 2.0
    assert GAIN.coerce(-1) == 0.0
    assert GAIN.coerce(1) == 1.0 and type(GAIN.coerce(1)) is float
    assert GAIN.coerce(2.0, clamp=False) == 2.0  # the bounds themselves are inside
    with pytest.raises(ParamError, match=r"fx/gain: 3 is outside 0 \.\. 2 ratio"):
        GAIN.coerce(3.0, clamp=False)
    with pytest.raises(ParamError, match=r"fx/gain: -0.5 is outside"):
        GAIN.coerce(-0.5, clamp=False)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("clamp", [True, False])
def test_non_finite_refused_naming_path_and_range(bad, clamp):
    with pytest.raises(ParamError) as exc:
        GAIN.coerce(bad, clamp=clamp)
    msg = str(exc.value)
    assert "fx/gain" in msg and "0 .. 2 ratio" in msg and "not a finite number" in msg
    with pytest.raises(ParamError, match=r"fx/count.*1 \.\. 10"):
        COUNT.coerce(bad, clamp=clamp)


@pytest.mark.parametrize("bad", ["0.5", None, True, False, [1], {"a": 1}, b"1"])
def test_numbers_refuse_other_types(bad):
    with pytest.raises(ParamError, match=r"fx/gain: expected a number in 0 \.\. 2 ratio"):
        GAIN.coerce(bad)


def test_int_rounds_and_clamps():
    assert COUNT.coerce(4.4) == 4 and type(COUNT.coerce(4.4)) is int
    assert COUNT.coerce(4.6) == 5
    assert COUNT.coerce(99) == 10 and COUNT.coerce(-3.7) == 1
    assert type(COUNT.coerce(99)) is int
    with pytest.raises(ParamError, match=r"fx/count: 11 is outside 1 \.\. 10"):
        COUNT.coerce(11, clamp=False)


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), (1, True), (0, False), (1.0, True), (0.0, False),
    ("true", True), ("false", False), ("TRUE", True), ("False", False), ("1", True), ("0", False),
    ("on", True), ("off", False), ("On", True),
])
def test_bool_forms(value, expected):
    assert ON.coerce(value) is expected


@pytest.mark.parametrize("bad", [2, -1, 0.5, "yes", "", None, math.nan, [True]])
def test_bool_refuses(bad):
    with pytest.raises(ParamError, match=r"fx/on: expected true/false \(0/1\)"):
        ON.coerce(bad)


@pytest.mark.parametrize("value, expected", [("calm", "calm"), ("still", "still"), (0, "calm"), (1, "wild"),
                                             (2, "still"), (2.0, "still")])
def test_choice_by_name_or_index(value, expected):
    assert MODE.coerce(value) == expected


@pytest.mark.parametrize("bad", ["Calm", "chaos", 3, -1, 1.5, True, None, math.nan])
def test_choice_refuses(bad):
    with pytest.raises(ParamError, match="fx/mode: expected one of calm, wild, still"):
        MODE.coerce(bad)


def test_range_text():
    assert GAIN.range_text() == "0 .. 2 ratio"
    assert COUNT.range_text() == "1 .. 10"
    assert ParamSpec("a/x", FLOAT, 0.25, "", 0.005, 0.5).range_text() == "0.005 .. 0.5"
    assert ON.range_text() == "true/false (0/1)"
    assert MODE.range_text() == "one of calm, wild, still"
    assert GAIN.continuous and not COUNT.continuous and not ON.continuous and not MODE.continuous


# -- normalize / denormalize ---------------------------------------------

def test_normalize_denormalize_fixed_points():
    assert GAIN.normalize(0.0) == 0.0 and GAIN.normalize(2.0) == 1.0 and GAIN.normalize(0.5) == 0.25
    assert GAIN.denormalize(0.25) == 0.5
    assert GAIN.denormalize(-3) == 0.0 and GAIN.denormalize(7) == 2.0  # faders clamp
    assert COUNT.denormalize(0.5) == 6 and type(COUNT.denormalize(0.5)) is int  # 1 + 4.5 -> rounds
    assert ON.normalize(True) == 1.0 and ON.denormalize(0.49) is False and ON.denormalize(0.5) is True
    assert [MODE.normalize(c) for c in MODE.choices] == [0.0, 0.5, 1.0]
    assert [MODE.denormalize(x) for x in (0.0, 0.24, 0.26, 0.74, 0.76, 1.0)] == \
        ["calm", "calm", "wild", "wild", "still", "still"]
    flat = ParamSpec("a/flat", FLOAT, 1.0, "", 1.0, 1.0)
    assert flat.normalize(1.0) == 0.0 and flat.denormalize(0.7) == 1.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, "0.5", None, True])
def test_denormalize_refuses_non_numbers(bad):
    with pytest.raises(ParamError, match="fx/gain/norm: expected a number 0 .. 1"):
        GAIN.denormalize(bad)


@given(st.floats(0.0, 2.0))
def test_float_round_trip(v):
    assert GAIN.denormalize(GAIN.normalize(v)) == pytest.approx(v, abs=1e-12)


@given(st.floats(0.0, 1.0))
def test_norm_round_trip(x):
    assert GAIN.normalize(GAIN.denormalize(x)) == pytest.approx(x, abs=1e-12)


def test_discrete_round_trips_exactly():
    for n in range(1, 11):
        assert COUNT.denormalize(COUNT.normalize(n)) == n
    for b in (True, False):
        assert ON.denormalize(ON.normalize(b)) is b
    for c in MODE.choices:
        assert MODE.denormalize(MODE.normalize(c)) == c


# -- the tree: bases and listeners ---------------------------------------

def test_set_base_coerces_and_returns_stored_value(tree):
    assert tree.set_base("fx/gain", 5) == 2.0
    assert tree.base("fx/gain") == tree["fx/gain"] == 2.0
    assert tree.set_base("fx/mode", 1) == "wild" and tree["fx/mode"] == "wild"
    assert tree.set_base("fx/on", "off") is False and tree["fx/on"] is False
    with pytest.raises(ParamError, match="outside"):
        tree.set_base("fx/gain", 5, clamp=False)
    assert tree.base("fx/gain") == 2.0  # a refused value changes nothing


def test_validate_changes_nothing(tree):
    heard = []
    tree.listen(lambda p, v: heard.append((p, v)))
    assert tree.validate("fx/gain", 9) == 2.0
    assert tree.validate("fx/count", 2.6) == 3
    with pytest.raises(ParamError):
        tree.validate("fx/gain", 9, clamp=False)
    assert tree.base("fx/gain") == 0.5 and tree["fx/count"] == 4 and heard == []


def test_listeners_fire_only_on_change(tree):
    heard = []
    unlisten = tree.listen(lambda p, v: heard.append((p, v)))
    tree.set_base("fx/gain", 0.5)          # same as the default
    tree.set_base("fx/gain", 1.0)
    tree.set_base("fx/gain", 1)            # same value, other type
    tree.set_base("fx/gain", 7.0)          # clamps to 2.0: a change
    tree.set_base("fx/gain", 3.0)          # clamps to 2.0 again: no change
    tree.set_base("fx/mode", "calm")       # same
    tree.set_base("fx/mode", 2)
    tree.set_base("fx/on", "on")           # same (default True)
    assert heard == [("fx/gain", 1.0), ("fx/gain", 2.0), ("fx/mode", "still")]
    with pytest.raises(ParamError):
        tree.set_base("fx/gain", math.nan)
    assert len(heard) == 3
    unlisten()
    unlisten()  # idempotent
    tree.set_base("fx/gain", 0.1)
    assert len(heard) == 3


def test_several_listeners_and_reset(tree):
    a, b = [], []
    tree.listen(lambda p, v: a.append(p))
    tree.listen(lambda p, v: b.append(p))
    tree.set_base("fx/count", 9)
    tree.set_base("fx/mode", "wild")
    tree.reset()
    assert tree.bases() == {s.path: s.default for s in ALL}
    assert a == b == ["fx/count", "fx/mode", "fx/count", "fx/mode"]


def test_bases_is_a_snapshot(tree):
    snap = tree.bases()
    assert snap == {"fx/count": 4, "fx/gain": 0.5, "fx/mode": "calm", "fx/on": True, "fx/size": 1024}
    assert list(snap) == tree.paths()
    snap["fx/gain"] = 1.9
    assert tree.base("fx/gain") == 0.5
    tree.set_base("fx/gain", 1.5)
    assert snap["fx/gain"] == 1.9
    tree.modulate("fx/gain", 0.3)
    tree.resolve()
    assert tree.bases()["fx/gain"] == 1.5  # modulation never leaks into what a preset saves


# -- modulation and overrides --------------------------------------------

def test_modulation_adds_clamps_and_is_cleared(tree):
    tree.set_base("fx/gain", 1.0)
    tree.modulate("fx/gain", 0.25)
    tree.modulate("fx/gain", 0.25)
    assert tree["fx/gain"] == 1.0  # nothing changes until resolve
    tree.resolve()
    assert tree["fx/gain"] == 1.5 and tree.base("fx/gain") == 1.0
    tree.modulate("fx/gain", 10.0)
    tree.resolve()
    assert tree["fx/gain"] == 2.0          # clamped to hi
    tree.clear_modulation()
    tree.modulate("fx/gain", -10.0)
    tree.resolve()
    assert tree["fx/gain"] == 0.0          # clamped to lo
    tree.clear_modulation()
    tree.resolve()
    assert tree["fx/gain"] == 1.0


def test_modulation_survives_base_change_within_frame(tree):
    tree.modulate("fx/gain", 0.5)
    tree.resolve()
    tree.set_base("fx/gain", 1.0)
    assert tree["fx/gain"] == 1.5


def test_int_modulation_rounds(tree):
    tree.modulate("fx/count", 2.4)
    tree.resolve()
    assert tree["fx/count"] == 6 and type(tree["fx/count"]) is int
    tree.modulate("fx/count", 100)
    tree.resolve()
    assert tree["fx/count"] == 10


def test_non_finite_modulation_ignored(tree):
    tree.modulate("fx/gain", math.nan)
    tree.modulate("fx/gain", math.inf)
    tree.modulate("fx/gain", 0.25)
    tree.resolve()
    assert tree["fx/gain"] == 0.75


@pytest.mark.parametrize("path", ["fx/on", "fx/mode"])
def test_discrete_params_refuse_modulation(tree, path):
    with pytest.raises(ParamError, match=f"{path}: only numeric parameters take modulation"):
        tree.modulate(path, 1.0)


def test_override(tree):
    heard = []
    tree.listen(lambda p, v: heard.append(p))
    tree.override("fx/mode", "wild")
    tree.override("fx/on", 0)
    tree.resolve()
    assert tree["fx/mode"] == "wild" and tree["fx/on"] is False
    assert tree.base("fx/mode") == "calm" and heard == []
    tree.override("fx/gain", 9)            # numbers too, coerced (clamped)
    tree.modulate("fx/gain", 0.1)
    tree.resolve()
    assert tree["fx/gain"] == 2.0          # the override wins over modulation
    with pytest.raises(ParamError, match="fx/mode"):
        tree.override("fx/mode", "chaos")
    tree.clear_modulation()
    tree.resolve()
    assert tree["fx/mode"] == "calm" and tree["fx/on"] is True and tree["fx/gain"] == 0.5


# -- update_bases ---------------------------------------------------------

def test_update_bases_sets_all(tree):
    heard = []
    tree.listen(lambda p, v: heard.append((p, v)))
    tree.update_bases({"fx/gain": 1.25, "fx/mode": "still", "fx/count": 4})
    assert tree.base("fx/gain") == 1.25 and tree["fx/mode"] == "still"
    assert heard == [("fx/gain", 1.25), ("fx/mode", "still")]  # fx/count unchanged: silent


@pytest.mark.parametrize("bad", [{"fx/gain": 1.0, "fx/mode": "chaos"},
                                 {"fx/gain": 1.0, "fx/nope": 1},
                                 {"fx/gain": 1.0, "fx/count": math.nan}])
def test_update_bases_all_or_nothing(tree, bad):
    heard = []
    tree.listen(lambda p, v: heard.append(p))
    before = tree.bases()
    with pytest.raises(ParamError):
        tree.update_bases(bad)
    assert tree.bases() == before and heard == []


def test_update_bases_strict_refuses_out_of_range(tree):
    before = tree.bases()
    with pytest.raises(ParamError, match="fx/count: 20 is outside 1 .. 10"):
        tree.update_bases({"fx/gain": 1.0, "fx/count": 20}, clamp=False)
    assert tree.bases() == before
    tree.update_bases({"fx/gain": 1.0, "fx/count": 20})
    assert tree.base("fx/count") == 10


# -- docs table -------------------------------------------------------------

def test_table_rows(tree):
    rows = tree.table()
    assert rows == [
        ("/tapestry/fx/count", "int", "1 .. 10", "4", "How many"),
        ("/tapestry/fx/gain", "float", "0 .. 2 ratio", "0.5", "Gain"),
        ("/tapestry/fx/mode", "choice", "one of calm, wild, still", "calm", "Mode"),
        ("/tapestry/fx/on", "bool", "true/false (0/1)", "true", "Enabled"),
        ("/tapestry/fx/size", "int", "16 .. 4096 items", "1024", "Buffer size (takes effect on restart)"),
    ]
    assert tree.table(root="/x/")[0][0] == "/x/fx/count"
    tree.set_base("fx/gain", 1.0)
    assert tree.table()[1][3] == "0.5"  # the table documents defaults, not the live state
    assert ParamTree.from_specs([ParamSpec("a/b", FLOAT, 2.0, "", 0, 4)]).table()[0][3] == "2"


def test_full_tree_table_is_well_formed():
    from installation.engine import declare_all
    t = declare_all()
    rows = t.table()
    assert len(rows) == len(t) > 20
    assert len({r[0] for r in rows}) == len(rows)
    for addr, kind, rng, default, desc in rows:
        assert addr.startswith("/tapestry/") and kind in ("float", "int", "bool", "choice")
        assert rng and default and desc.strip(), addr
    for spec in t.specs():  # every default is inside its own range, so presets can return to it
        assert spec.coerce(spec.default, clamp=False) == spec.default


# -- scope ------------------------------------------------------------------

def test_scope_is_declared_and_checked(tree):
    assert GAIN.scope == "look"  # the default: most values are the artist's
    with pytest.raises(ParamError, match="unknown scope 'room'"):
        ParamSpec("a/b", FLOAT, 0.0, "", 0, 1, scope="room")
    t = ParamTree.from_specs([GAIN, ParamSpec("cal/roi", FLOAT, 0.0, "", 0, 1, scope="venue"),
                              *floats("q", [("size", 1.0, 0.0, 2.0, "", "")], scope="machine")])
    assert t.bases("look") == {"fx/gain": 0.5} and t.bases("venue") == {"cal/roi": 0.0}
    assert t.bases("machine") == {"q/size": 1.0} and len(t.bases()) == 3
    assert t.in_scope("cal/roi", "venue") and not t.in_scope("cal/roi", "look") and not t.in_scope("nope", "look")


def test_every_declared_parameter_has_the_scope_its_job_says():
    """Calibration of the room is venue scope, quality settings machine scope, the artist's field, render and
    mood the look. A parameter added elsewhere must say its scope: `look` is the dataclass default, and a look
    value outside field/, render/ and mood/ would silently enter every saved preset, so it fails here."""
    from installation import app
    from installation.engine import declare_all
    t = declare_all(extra=app._sensing_params())
    machine = {"field/particles", "field/sim_every", "sensing/camera/width", "sensing/camera/detect_hz",
               "sensing/camera/detect_body", "sensing/audio/hop_ms"}
    for spec in t.specs():
        if spec.path in machine:
            assert spec.scope == "machine", spec.path
        elif spec.path.startswith(("field/", "render/", "mood/")):
            assert spec.scope == "look", spec.path
        elif spec.path.startswith(("sensing/", "show/", "leds/")):
            assert spec.scope == "venue", spec.path
        else:
            assert spec.scope != "look", f"{spec.path}: declare its scope (venue or machine?)"
    assert {p for p in t.paths() if p.startswith("sensing/camera/roi/")} <= set(t.bases("venue"))


def test_run_py_params_shows_the_scope():
    import subprocess
    import sys
    from pathlib import Path
    out = subprocess.run([sys.executable, "run.py", "params"], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "| Scope |" in out
    row = next(line for line in out.splitlines() if "`/tapestry/field/sim_every`" in line)
    assert "| machine |" in row
    assert "| venue |" in next(line for line in out.splitlines() if "`/tapestry/sensing/camera/roi/x0`" in line)


def test_an_int_too_big_for_a_double_is_out_of_range_not_an_internal_error():
    """A JSON body may carry any integer (``/api/set {"value": 1000...0}``): float() of it overflows.
    It is a finite number far outside the range: clamped, or refused naming the range, never OverflowError."""
    huge = 10 ** 400
    assert GAIN.coerce(huge) == 2.0 and GAIN.coerce(-huge) == 0.0
    assert COUNT.coerce(huge) == 10 and type(COUNT.coerce(huge)) is int
    with pytest.raises(ParamError, match=r"fx/gain: a 1329-bit integer is outside 0 \.\. 2 ratio"):
        GAIN.coerce(huge, clamp=False)
    for spec in (MODE, ON):
        with pytest.raises(ParamError, match=rf"{spec.path}: expected .*, got a 1329-bit integer"):
            spec.coerce(huge)
    assert GAIN.denormalize(huge) == 2.0 and GAIN.denormalize(-huge) == 0.0
    assert MODE.denormalize(huge) == "still"
