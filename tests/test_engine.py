"""The engine end to end on a real headless GL context: presets and crossfades, mood modulation,
commands from other threads, broken presets and shaders at run time, blackout."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from installation.clock import FixedStepClock
from installation.control.commands import LoadPreset, SetParam
from installation.engine import Engine, EngineOptions
from installation.gfx.shaders import ShaderError
from installation.params import LOOK
from installation.presets import PresetError
from installation.sensing.frames import CameraFrame, Person
from installation.watch import FileChanged

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(size=(160, 90), particles=8192)


def engine(ctx, tmp_path=None, **kw):
    opts = EngineOptions(**{**SMALL, **kw})
    if tmp_path is not None:
        shutil.copytree(ROOT / "presets", tmp_path / "presets", dirs_exist_ok=True)
        shutil.copytree(ROOT / "shaders", tmp_path / "shaders", dirs_exist_ok=True)
        opts.presets, opts.shaders = tmp_path / "presets", tmp_path / "shaders"
    return Engine(ctx, opts)


def frames(eng, n, fps=30):
    clock = FixedStepClock(fps)
    for _ in range(n):
        eng.frame(clock.next_frame())
    return np.frombuffer(eng.tapestry.read(), np.uint8)


def test_default_preset_runs_and_lights_the_tapestry(ctx):
    eng = engine(ctx)
    img = frames(eng, 10)
    assert eng.preset_name == "harmony"
    assert img.reshape(-1, 4)[:, :3].mean() > 3
    st = eng.status()
    assert st["particles"] == 8192 and st["preset"] == "harmony"
    assert 0.0 <= st["mood"]["intensity"] <= 1.0
    assert st["sensors"] == []          # no camera, no microphone: breathing on its own


def test_preset_crossfade_eases_floats_and_blends_the_palette_across_the_whole_fade(ctx):
    """The colour table moves from the old palette to the new one in step with every other value of the
    fade (it used to switch at the midpoint and blend over 2 s after it, piling the colour change into
    the fade's second half)."""
    eng = engine(ctx)
    frames(eng, 2)
    assert eng.params.base("field/malfunction") == 0.0
    eng.load_preset("breakdown", 2.0)
    frames(eng, 15)                      # 0.5 s of 2 s
    mid = eng.params.base("field/malfunction")
    assert 0.0 < mid < 0.8
    assert 0.1 < eng.renderer.palette_blend < 0.4 and 0.1 < mid / 0.8 < 0.4
    frames(eng, 30)                      # 1.5 s
    assert 0.6 < eng.renderer.palette_blend < 0.9
    frames(eng, 20)                      # done
    assert eng.renderer.palette_blend == 1.0 and eng.params.base("render/palette") == "abyssal"
    assert eng.params.base("field/malfunction") == pytest.approx(0.8)


def test_the_colours_change_at_an_even_speed_through_a_fade_that_also_heals_the_fever(ctx):
    """Breakdown (fevered colours) into symbiosis (another palette, no fever): the colour table on the GPU
    moves at close to the fade's own pace (1.4x its mean speed at most: saturation and hue move too).
    Blending palettes while the fever also fell multiplied the two, and the colours changed twice as
    fast at the end as on average."""
    eng = engine(ctx, preset="breakdown")
    frames(eng, 2)
    eng.load_preset("symbiosis", 4.0)
    clock = FixedStepClock(30)
    tables = []
    for _ in range(121):
        eng.frame(clock.next_frame())
        tables.append(_lut(eng))
    step = np.array([np.abs(b - a).mean() for a, b in zip(tables, tables[1:])])
    assert step.max() <= 1.5 * step.mean(), (step.max(), step.mean())


def _lut(eng):
    return np.frombuffer(eng.renderer.lut.read(), np.float32).reshape(-1, 4)[:, :3].copy()


def _live_lut(eng):
    """The table the renderer shows once nothing moves: the live palette, fever, shift and saturation."""
    from installation.field.renderer import palette_lut
    t = eng.params
    return palette_lut(t["render/palette"], min(1.0, t["field/malfunction"] * 1.2), t["render/hue_shift"],
                       t["render/saturation"])[:, :3]


def _fade_to_breakdown(ctx, tmp_path, at, n=240):
    """Harmony into breakdown over 4 s at 30 fps, ``at(eng, i)`` before frame i, with a preset "embers"
    (abyssal like breakdown, malfunction 0.2) at hand: the colour table after each frame, and the engine."""
    eng = engine(ctx, tmp_path)
    (tmp_path / "presets" / "embers.toml").write_text(
        'description = "abyssal, mild"\n[params]\n"render/palette" = "abyssal"\n"field/malfunction" = 0.2\n')
    frames(eng, 2)
    eng.load_preset("breakdown", 4.0)
    clock = FixedStepClock(30)
    tables = []
    for i in range(n):
        at(eng, i)
        eng.frame(clock.next_frame())
        tables.append(_lut(eng))
    return np.array([np.abs(b - a).mean() for a, b in zip(tables, tables[1:])]), tables, eng


def test_a_second_fade_during_a_palette_blend_changes_the_colours_without_a_jump(ctx, tmp_path):
    """Harmony into breakdown (abyssal palette), and 2 s in a cue to another abyssal preset with a milder
    malfunction: the colour table keeps moving smoothly to the new fever, with no step when a blend ends."""
    step, _, _ = _fade_to_breakdown(ctx, tmp_path, lambda eng, i: i == 60 and eng.load_preset("embers", 3.0))
    moving = step[step > 1e-5]
    assert step.max() <= 3.0 * moving.mean(), (step.argmax(), step.max(), moving.mean())
    assert step[-30:].max() < 1e-5                      # arrived, and still


@pytest.mark.parametrize("how", ["artist", "cut"])
def test_taking_the_malfunction_over_mid_fade_moves_the_colours_to_it_without_a_jump(ctx, tmp_path, how):
    """Harmony into breakdown, and 1 s in either an artist sets field/malfunction over OSC (the fade lets
    go of it) or a cue cuts (fade 0) to another abyssal preset: the colours go to the fever that now
    holds, smoothly, and stay there (they used to head for breakdown's fever and snap later)."""
    def at(eng, i):
        if i == 30:
            if how == "artist":
                eng.params.set_base("field/malfunction", 0.1)
            else:
                eng.load_preset("embers", 0.0)
    step, tables, eng = _fade_to_breakdown(ctx, tmp_path, at)
    after = step[32:]                          # from just after the change on (a cut may cut)
    assert after.max() <= 3.0 * after[after > 1e-5].mean(), (after.argmax() + 32, after.max())
    np.testing.assert_allclose(tables[-1], _live_lut(eng), atol=2e-3)


def test_a_fade_that_did_not_change_the_palette_leaves_no_blend_length_behind(ctx):
    """Two preset loads in one frame (a double tap: tension over 10 s, then harmony over 3 s): the palette
    never changes, and a palette set directly later still blends over the usual 2 s, not 10."""
    eng = engine(ctx)
    frames(eng, 2)
    eng.load_preset("tension", 10.0)
    eng.load_preset("harmony", 3.0)
    frames(eng, 100)
    assert eng.params.base("render/palette") == "bioluminescent"
    eng.params.set_base("render/palette", "mycelium")
    frames(eng, 30)                      # 1 s of a 2 s blend
    assert 0.4 < eng.renderer.palette_blend < 0.6


def test_a_preset_looks_the_same_whatever_came_before(ctx):
    """Harmony after symbiosis (which sets 4 links and its own node share) is harmony: a look parameter a
    shipped preset leaves out is at its default, not at the previous preset's value."""
    fresh = engine(ctx).params.bases(LOOK)
    eng = engine(ctx, preset="symbiosis")
    assert eng.params.base("field/nodes/links") == 4
    eng.load_preset("restoration", 0.5)
    frames(eng, 20)
    eng.load_preset("harmony", 0.5)
    frames(eng, 20)
    assert eng.params.bases(LOOK) == fresh
    assert eng.params.base("field/nodes/links") == 3


def test_broken_preset_is_refused_and_the_look_is_kept(ctx, tmp_path):
    eng = engine(ctx, tmp_path)
    (tmp_path / "presets" / "bad.toml").write_text('[params]\n"field/harmony" = 7\n')
    before = eng.params.bases()
    with pytest.raises(PresetError) as err:
        eng.load_preset("bad", 0)
    assert "bad.toml" in str(err.value) and "field/harmony" in str(err.value) and "0 .. 1" in str(err.value)
    frames(eng, 3)
    assert eng.params.bases() == before


def test_mood_modulates_values_but_not_bases(ctx):
    # Breakdown heals with presence: a full room lowers the running malfunction, the base stays.
    crowd = CameraFrame(t=0.0, presence=0.5, motion=0.0, speed=0.0,
                        people=(Person(0.3, 0.6, 0.2, 0.0, 0.0),))
    eng = engine(ctx, preset="breakdown")
    eng.sensors = lambda t: (crowd, None)
    frames(eng, 120, fps=10)             # 12 s: presence attack settles
    assert eng.mood.presence > 0.3
    assert eng.params.base("field/malfunction") == pytest.approx(0.8)
    assert eng.params["field/malfunction"] < 0.8 - 0.1
    assert "camera" in eng.status()["sensors"]


def test_commands_from_the_queue_apply_and_bad_ones_reply_with_an_error(ctx):
    eng = engine(ctx)
    replies = []
    eng.commands.put(SetParam(path="show/master", value=0.25))
    eng.commands.put(LoadPreset(name="no-such-preset", fade_s=1.0, reply=lambda *a: replies.append(a)))
    frames(eng, 1)
    assert eng.params["show/master"] == 0.25
    assert replies and replies[0][0] == "/tapestry/error" and "no-such-preset" in replies[0][1]


def test_blackout_darkens_everything_and_the_piece_keeps_running(ctx):
    eng = engine(ctx)
    frames(eng, 5)
    eng.params.set_base("show/blackout", True)
    img = frames(eng, 2)
    assert img.reshape(-1, 4)[:, :3].max() == 0
    eng.params.set_base("show/blackout", False)
    assert frames(eng, 2).reshape(-1, 4)[:, :3].max() > 0


def test_shader_broken_at_start_names_file_and_line(ctx, tmp_path):
    shutil.copytree(ROOT / "shaders", tmp_path / "shaders")
    src = (tmp_path / "shaders" / "field_step.glsl").read_text().split("\n")
    line = next(i for i, l in enumerate(src) if "float order" in l)
    src[line] = "    float order = ;"
    (tmp_path / "shaders" / "field_step.glsl").write_text("\n".join(src))
    with pytest.raises(ShaderError) as err:
        Engine(ctx, EngineOptions(**SMALL, shaders=tmp_path / "shaders"))
    assert f"field_step.glsl:{line + 1}:" in str(err.value)


def test_shader_broken_while_running_keeps_the_last_good_one(ctx, tmp_path):
    eng = engine(ctx, tmp_path)
    frames(eng, 3)
    path = tmp_path / "shaders" / "field_resolve.glsl"
    good = path.read_text()
    path.write_text(good.replace("void main() {", "void main() { undefined_thing();"))
    eng.file_changed(FileChanged(path, path.parent))
    assert any("field_resolve.glsl" in e for e in eng.last_errors)
    img = frames(eng, 3)
    assert img.reshape(-1, 4)[:, :3].mean() > 3     # still drawing with the last good program
    path.write_text(good.replace("sqrt(ldr) * u_master", "vec3(0.0) * u_master"))
    eng.file_changed(FileChanged(path, path.parent))
    assert frames(eng, 1).reshape(-1, 4)[:, :3].max() == 0   # the fixed (here: black) program took over


def test_a_failing_part_is_logged_and_the_frame_loop_goes_on(ctx):
    eng = engine(ctx)
    calls = []

    def explode(_):
        calls.append(1)
        raise RuntimeError("sensor thread gone")

    eng.sensors = explode
    frames(eng, 5)
    assert len(calls) == 5 and eng.frame_count == 5
    assert any("sensor thread gone" in e for e in eng.last_errors)


def test_save_preset_keeps_bases_not_modulated_values(ctx, tmp_path):
    eng = engine(ctx, tmp_path)
    eng.params.set_base("field/harmony", 0.42)
    eng.save_preset("mine")
    saved = eng.presets.load("mine")
    assert saved.params["field/harmony"] == pytest.approx(0.42)
    assert not saved.shipped
    with pytest.raises(PresetError):
        eng.save_preset("harmony")            # shipped: needs force
    eng.save_preset("harmony", force=True)
    assert list((tmp_path / "presets" / ".history").glob("harmony-*.toml"))


def test_a_fader_moved_during_a_crossfade_is_not_taken_back(ctx):
    eng = engine(ctx)
    eng.load_preset("breakdown", 2.0)
    frames(eng, 10)
    eng.commands.put(SetParam(path="field/malfunction", value=0.1))   # the artist disagrees
    frames(eng, 60)
    assert eng.params.base("field/malfunction") == pytest.approx(0.1)
    assert eng.params.base("field/harmony") == pytest.approx(0.25)    # the rest of the fade lands
