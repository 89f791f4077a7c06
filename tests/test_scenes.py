"""Scenes (cue list, mood triggers, loop) and opening hours, from venue TOML."""

import datetime as dt
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from installation.clock import FixedStepClock
from installation.scenes import (
    Cue, FadeToPreset, MoodTrigger, SceneEntered, SceneError, SceneList, SceneRunner, load_venue, parse_schedule,
    venue_from_dict,
)

ARC = """
[scenes]
loop = true
fade_s = 4

[[scenes.cue]]
name = "harmony"
duration_s = 60

[[scenes.cue]]
name = "tension"
preset = "tension-dark"
fade_s = 10
duration_s = 120
  [[scenes.cue.when]]
  mood = "intensity"
  above = 0.7
  for_s = 20
  go = "restoration"

[[scenes.cue]]
name = "breakdown"
duration_s = 30

[[scenes.cue]]
name = "restoration"
duration_s = 45
next = "symbiosis"

[[scenes.cue]]
name = "symbiosis"
duration_s = 90

[schedule]
timezone = "Europe/Berlin"
fade_in_s = 600
fade_out_s = 900
closed_level = 0.1
holidays = ["2026-12-25", 2026-12-26]
  [schedule.hours]
  daily = "10:00-18:00"
  fri = ["10:00-13:00", "14:00-22:00"]
  sat = "20:00-02:00"
  sun = "closed"
"""


@pytest.fixture
def venue(tmp_path):
    p = tmp_path / "venue.toml"
    p.write_text(ARC)
    return load_venue(p)


def run(runner, until, fps=10, mood=None):
    """Drive the runner with a fixed-step clock; returns [(t, action)]."""
    clock = FixedStepClock(fps)
    out = []
    t = 0.0
    while t < until:
        dt_ = clock.next_frame()
        t = clock.time
        m = mood(t) if callable(mood) else mood
        out += [(round(t, 3), a) for a in runner.update(t, dt_, m)]
    return out


def test_arc_plays_by_duration_and_loops(venue):
    events = [(t, a.name) for t, a in run(SceneRunner(venue.scenes), 400) if isinstance(a, SceneEntered)]
    assert [n for _, n in events] == ["harmony", "tension", "breakdown", "restoration", "symbiosis", "harmony"]
    assert [t for t, _ in events][:3] == [0.1, 60.1, 180.1]


def test_presets_and_fades_come_from_the_cues(venue):
    actions = [a for _, a in run(SceneRunner(venue.scenes), 61)]
    assert actions == [SceneEntered("harmony", "start"), FadeToPreset("harmony", 4.0),
                       SceneEntered("tension", "duration"), FadeToPreset("tension-dark", 10.0)]


def test_mood_trigger_needs_the_condition_to_hold(venue):
    # intensity high from t=70 but dips at t=80..80.2: the 20 s hold starts again, fires at ~100.2
    def mood(t):
        return {"intensity": 0.9 if t >= 70 and not 80 <= t < 80.2 else 0.2}
    events = [(t, a) for t, a in run(SceneRunner(venue.scenes), 130, mood=mood) if isinstance(a, SceneEntered)]
    assert [a.name for _, a in events] == ["harmony", "tension", "restoration"]
    t, a = events[2]
    assert 100.0 <= t <= 100.3 and "intensity above 0.7 for 20 s" in a.reason


def test_mood_as_object_and_missing_values():
    class Mood:
        intensity = float("nan")

    trig = MoodTrigger(go="x", above=0.5)
    assert not trig.holds(Mood()) and not trig.holds({}) and not trig.holds(None)
    assert MoodTrigger(go="x", key="presence", below=0.2).holds({"presence": 0.1})


def test_runner_is_deterministic(venue):
    def mood(t):
        return {"intensity": (t % 37) / 37}
    assert run(SceneRunner(venue.scenes), 600, mood=mood) == run(SceneRunner(venue.scenes), 600, mood=mood)


def test_go_jumps_on_next_update_and_refuses_unknown(venue):
    r = SceneRunner(venue.scenes)
    r.update(0.0, 0.0, None)
    r.go("symbiosis")
    assert r.update(1.0, 1.0, None) == [SceneEntered("symbiosis", "go"), FadeToPreset("symbiosis", 4.0)]
    assert r.time_in_scene == 0.0
    with pytest.raises(ValueError, match="unknown scene 'nowhere'.*harmony"):
        r.go("nowhere")


def test_without_loop_the_last_cue_holds():
    scenes = SceneList((Cue("a", "a", duration_s=1.0), Cue("b", "b", duration_s=1.0)), loop=False)
    r = SceneRunner(scenes)
    names = [a.name for _, a in run(r, 10) if isinstance(a, SceneEntered)]
    assert names == ["a", "b"] and r.finished and r.current == "b"


def test_a_long_frame_follows_the_exact_timeline():
    scenes = SceneList(tuple(Cue(n, n, duration_s=1.0) for n in "abc"), loop=True)
    r = SceneRunner(scenes)
    r.update(0.0, 0.0)
    assert r.update(2.5, 2.5) == [SceneEntered("c", "duration"), FadeToPreset("c", 5.0)]
    assert r.time_in_scene == pytest.approx(0.5)


def test_cue_without_duration_waits_for_a_trigger():
    scenes = SceneList((Cue("idle", "idle", triggers=(MoodTrigger("busy", above=0.5),)), Cue("busy", "busy")))
    r = SceneRunner(scenes)
    assert [a.name for _, a in run(r, 100, mood={"intensity": 0.1}) if isinstance(a, SceneEntered)] == ["idle"]
    r.update(101.0, 0.1, {"intensity": 0.8})
    assert r.current == "busy"


@pytest.mark.parametrize("toml, message", [
    ('[scenes]\n', "scenes.cue: needs at least one"),
    ('[scenes]\n[[scenes.cue]]\nname = "a"\nfade_s = "slow"\n', "scenes.cue[a].fade_s: expected a number >= 0"),
    ('[scenes]\n[[scenes.cue]]\nname = "a"\nduration_s = 0\n', "scenes.cue[a].duration_s: expected a number > 0"),
    ('[scenes]\n[[scenes.cue]]\nname = "../a"\n', "scenes.cue[../a].name: expected a name"),
    ('[scenes]\n[[scenes.cue]]\nfade_s = 1\n', "scenes.cue[#1].name: is required"),
    ('[scenes]\n[[scenes.cue]]\nname = "a"\nnext = "b"\n', "next = 'b' is not a cue"),
    ('[scenes]\n[[scenes.cue]]\nname = "a"\ndurration_s = 3\n', "unknown key(s) durration_s"),
    ('[scenes]\nloop = "yes"\n[[scenes.cue]]\nname = "a"\n', "scenes.loop: expected true or false"),
    ('[scenes]\n[[scenes.cue]]\nname = "a"\n[[scenes.cue]]\nname = "a"\n', "unique"),
    ('[scenes]\n[[scenes.cue]]\nname = "a"\n[[scenes.cue.when]]\ngo = "a"\n', "when[1].above: a trigger needs"),
    ('[scenes]\n[[scenes.cue]]\nname = "a"\n[[scenes.cue.when]]\nabove = 0.5\ngo = "z"\n', "when.go = 'z'"),
    ('[scenes]\n[[scenes.cue]]\nname = "a"\n[[scenes.cue.when]]\nabove = 0.5\ngo = "a"\n', "its own cue"),
    ('[scenes]\n[[scenes.cue]]\nname = "a"\n[[scenes.cue.when]]\nabove = nan\ngo = "a"\n', "when[1].above"),
    ('[schedule]\n[schedule.hours]\nmon = "9-17"\n', "schedule.hours.mon: expected HH:MM"),
    ('[schedule]\n[schedule.hours]\ndaily = "10:00-10:00"\n', "schedule.hours.daily: '10:00-10:00' opens and closes"),
    ('[schedule]\n[schedule.hours]\nmon = "25:00-26:00"\n', "schedule.hours.mon: '25:00' is not a time"),
    ('[schedule]\n[schedule.hours]\nfunday = "10:00-11:00"\n', "schedule.hours: unknown key(s) funday"),
    ('[schedule]\n', "schedule.hours: the venue is never open"),
    ('[schedule]\ntimezone = "Mars/Olympus"\n[schedule.hours]\ndaily = "10:00-11:00"\n', "schedule.timezone"),
    ('[schedule]\nholidays = ["christmas"]\n[schedule.hours]\ndaily = "10:00-11:00"\n', "schedule.holidays"),
    ('[schedule]\nclosed_level = 2\n[schedule.hours]\ndaily = "10:00-11:00"\n', "schedule.closed_level"),
    ('[scenes\n', "not valid TOML"),
])
def test_validation_errors_name_file_and_key(tmp_path, toml, message):
    p = tmp_path / "venue.toml"
    p.write_text(toml)
    with pytest.raises(SceneError) as exc:
        load_venue(p)
    assert str(exc.value).startswith(str(p))
    assert message in str(exc.value)


def test_missing_file_is_a_scene_error(tmp_path):
    with pytest.raises(SceneError, match="cannot read"):
        load_venue(tmp_path / "nope.toml")


def test_venue_without_sections():
    v = venue_from_dict({"outputs": {}})
    assert v.scenes is None and v.schedule is None


# -- opening hours -----------------------------------------------------------

def local(s):
    return dt.datetime.fromisoformat(s)  # naive: venue local time


def test_schedule_levels_and_ramps(venue):
    s = venue.schedule
    # 2026-11-23 is a Monday: daily 10:00-18:00, fade in 10 min, fade out 15 min, idle level 0.1
    assert s.level(local("2026-11-23 09:59")) == pytest.approx(0.1)
    assert s.level(local("2026-11-23 10:00")) == pytest.approx(0.1)
    assert s.level(local("2026-11-23 10:05")) == pytest.approx(0.1 + 0.9 * 0.5)
    assert s.level(local("2026-11-23 10:10")) == pytest.approx(1.0)
    assert s.level(local("2026-11-23 17:00")) == pytest.approx(1.0)
    assert 0.1 < s.level(local("2026-11-23 17:50")) < 1.0
    assert s.level(local("2026-11-23 18:00")) == pytest.approx(0.1)
    assert s.level(local("2026-11-23 23:00")) == pytest.approx(0.1)
    assert s.is_open(local("2026-11-23 12:00")) and not s.is_open(local("2026-11-23 18:00"))


def test_ramps_are_smooth_and_monotonic(venue):
    s = venue.schedule
    t0 = local("2026-11-23 10:00")
    levels = [s.level(t0 + dt.timedelta(seconds=10 * i)) for i in range(61)]
    assert all(b >= a for a, b in zip(levels, levels[1:]))
    assert max(b - a for a, b in zip(levels, levels[1:])) < 0.05


def test_split_day_overnight_closed_day_and_holiday(venue):
    s = venue.schedule
    # Friday 2026-11-27: lunch closure dims, evening until 22:00
    assert s.level(local("2026-11-27 13:30")) == pytest.approx(0.1)
    assert s.level(local("2026-11-27 21:00")) == pytest.approx(1.0)
    # Saturday 20:00 - Sunday 02:00 runs past midnight without a dip
    assert s.level(local("2026-11-29 00:00")) == pytest.approx(1.0)
    assert s.level(local("2026-11-29 01:00")) == pytest.approx(1.0)
    assert s.level(local("2026-11-29 02:00")) == pytest.approx(0.1)
    # Sunday closed, Christmas (a Friday) closed, the 26th (a date literal in TOML) too
    assert s.level(local("2026-11-29 12:00")) == pytest.approx(0.1)
    assert s.level(local("2026-12-25 12:00")) == pytest.approx(0.1)
    assert s.level(local("2026-12-26 21:00")) == pytest.approx(0.1)
    assert s.level(local("2026-12-24 12:00")) == pytest.approx(1.0)


def test_aware_datetimes_are_converted_to_the_venue_zone(venue):
    utc = dt.datetime(2026, 11, 23, 16, 30, tzinfo=dt.timezone.utc)  # 17:30 in Berlin
    assert venue.schedule.level(utc) == pytest.approx(venue.schedule.level(local("2026-11-23 17:30")))
    late = dt.datetime(2026, 11, 23, 17, 30, tzinfo=dt.timezone.utc)  # 18:30 in Berlin: closed
    assert venue.schedule.level(late) == pytest.approx(0.1)


def test_all_day_every_day_never_dips_at_midnight():
    s = parse_schedule({"hours": {"daily": "00:00-24:00"}, "fade_in_s": 60, "fade_out_s": 60})
    for h in range(24):
        assert s.level(local(f"2026-11-23 {h:02d}:00")) == 1.0
    assert s.level(local("2026-11-23 23:59:59")) == 1.0


def test_documented_example_parses():
    # the example in docs/scenes.md stays valid
    doc = Path(__file__).resolve().parent.parent / "docs" / "scenes.md"
    block = re.search(r"```toml\n(.*?)```", doc.read_text(), re.S).group(1)
    v = venue_from_dict(tomllib.loads(block), "docs/scenes.md")
    assert v.scenes is not None and v.schedule is not None


# -- properties ----------------------------------------------------------------

@given(st.lists(st.tuples(st.floats(0.0, 5.0), st.one_of(st.none(), st.floats(allow_nan=True))), max_size=300))
@settings(max_examples=150, deadline=None, database=None)
def test_runner_stays_on_a_cue_and_emits_whole_transitions(steps):
    scenes = SceneList((
        Cue("a", "pa", duration_s=3.0, triggers=(MoodTrigger("c", above=0.7, for_s=2.0),)),
        Cue("b", "pb", duration_s=1.0, min_s=0.5, triggers=(MoodTrigger("a", below=0.1),)),
        Cue("c", "pc", next="a", duration_s=2.0),
    ), loop=False)
    r = SceneRunner(scenes)
    t = 0.0
    for dt_, intensity in steps:
        t += dt_
        actions = r.update(t, dt_, {"intensity": intensity})
        assert actions == [] or (len(actions) == 2 and isinstance(actions[0], SceneEntered)
                                 and actions[1] == FadeToPreset("p" + actions[0].name, 5.0))
        assert r.current in ("a", "b", "c") and 0.0 <= r.time_in_scene


@given(st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 12, 31)))
@settings(max_examples=300, deadline=None, database=None)
def test_schedule_level_is_bounded_and_continuous(now):
    s = parse_schedule({"hours": {"daily": "10:00-18:00", "sat": "20:00-02:00", "fri": ["09:00-09:30", "10:00-23:00"]},
                        "fade_in_s": 600, "fade_out_s": 900, "closed_level": 0.1, "holidays": ["2026-12-25"]})
    a, b = s.level(now), s.level(now + dt.timedelta(seconds=10))
    assert 0.1 <= a <= 1.0 and 0.1 <= b <= 1.0
    assert abs(a - b) <= 0.9 * 1.5 * 10 / 600 + 1e-9  # smoothstep's steepest slope over the shortest fade
