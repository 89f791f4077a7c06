"""OSC, scenes and hot reload wired to the real Engine on a headless GL context, as run.py wires them:
a python-osc client talks UDP to the server, the test thread runs engine frames (the engine thread)."""

import shutil
import time
from pathlib import Path

import pytest

from installation.clock import FixedStepClock
from installation.control.osc import OscConfig, OscServer
from installation.engine import Engine, EngineOptions
from installation.scenes import Cue, MoodTrigger, SceneList, SceneRunner
from installation.watch import FileWatcher
from tests.control.conftest import Client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def live(ctx, tmp_path):
    shutil.copytree(ROOT / "presets", tmp_path / "presets")
    shutil.copytree(ROOT / "shaders", tmp_path / "shaders")
    scenes = SceneRunner(SceneList((
        Cue("harmony", "harmony", fade_s=0.0, triggers=(MoodTrigger("tension", above=2.0),)),  # never fires
        Cue("tension", "tension", fade_s=0.0, duration_s=1000.0),
        Cue("breakdown", "breakdown", fade_s=0.0),
    )))
    opts = EngineOptions(size=(160, 90), particles=4096, presets=tmp_path / "presets", shaders=tmp_path / "shaders")
    from installation import app
    from installation.engine import declare_all
    eng = Engine(ctx, opts, tree=declare_all(extra=app._sensing_params()), scenes=scenes)  # as run.py builds it
    server = OscServer(eng.params, eng.commands, OscConfig(port=0)).start()
    eng.params.listen(server.publish_change)
    clock = FixedStepClock(30)
    eng.frame(clock.next_frame())  # the scene runner starts (and loads its first cue) before any OSC
    client = Client(server.address)

    def pump(until, what, limit=600):
        """Run engine frames until ``until()``; the frame count is the bound, not time."""
        for _ in range(limit):
            eng.frame(clock.next_frame())
            client._receive_nowait()
            if until():
                return
            time.sleep(0.001)  # give the server thread a moment
        raise AssertionError(f"never happened: {what}")

    yield eng, server, client, pump, tmp_path
    client.close()
    server.stop()
    eng.close()
    eng.release()


def _has(client, address, pred=lambda a: True):
    return any(a == address and pred(args) for a, args in client.inbox)


def test_osc_sets_master_and_blackout_on_the_engine(live):
    eng, server, client, pump, _ = live
    client.send("/tapestry/master", 0.5)
    pump(lambda: eng.master_level() == pytest.approx(0.5), "master at 0.5")
    client.send("/tapestry/blackout", True)
    pump(lambda: eng.master_level() == 0.0, "blackout")
    client.send("/tapestry/field/flow/speed", float("nan"))
    pump(lambda: _has(client, "/tapestry/error"), "NaN refused")


def test_presets_load_and_save_through_the_engine(live):
    eng, server, client, pump, tmp = live
    client.send("/tapestry/preset/load", "tension", 0.0)
    pump(lambda: _has(client, "/tapestry/preset/loaded", lambda a: a == ["tension"]), "loaded reply")
    assert eng.preset_name == "tension"
    client.send("/tapestry/preset/load", "nonexistent")
    pump(lambda: _has(client, "/tapestry/error"), "unknown preset refused")
    client.send("/tapestry/preset/save", "harmony")
    pump(lambda: _has(client, "/tapestry/error", lambda a: "harmony" in a[0]), "shipped preset protected")
    client.send("/tapestry/preset/save", "evening_1")
    pump(lambda: _has(client, "/tapestry/preset/saved"), "saved reply")
    assert (tmp / "presets" / "evening_1.toml").exists()
    client.send("/tapestry/preset/list")
    pump(lambda: _has(client, "/tapestry/presets/end"), "preset list")
    names = [n for a, args in client.inbox if a == "/tapestry/presets" for n in args]
    assert "evening_1" in names and "harmony" in names


def test_scene_go_runs_the_scene_runner_and_its_preset(live):
    eng, server, client, pump, _ = live
    client.send("/tapestry/scene/go", "breakdown")
    pump(lambda: _has(client, "/tapestry/scene/current", lambda a: a == ["breakdown"]), "scene reply")
    pump(lambda: eng.scenes.current == "breakdown" and eng.preset_name == "breakdown", "scene breakdown")
    client.send("/tapestry/scene/go", "nowhere")
    pump(lambda: _has(client, "/tapestry/error", lambda a: "nowhere" in a[0]), "unknown scene refused")


def test_subscriber_gets_engine_changes_and_heartbeat(live):
    eng, server, client, pump, _ = live
    listener = Client(server.address)
    try:
        client.send("/tapestry/subscribe", listener.port)
        pump(lambda: listener._receive_nowait() or _has(listener, "/tapestry/show/master"), "snapshot")
        client.send("/tapestry/master", 0.25)
        pump(lambda: listener._receive_nowait() or _has(listener, "/tapestry/show/master", lambda a: a == [0.25]),
             "change feedback")
        server.heartbeat(eng.status())
        pump(lambda: listener._receive_nowait() or _has(listener, "/tapestry/heartbeat"), "heartbeat")
        fps, frame_ms, intensity = next(args for a, args in listener.inbox if a == "/tapestry/heartbeat")
        assert frame_ms > 0 and 0.0 <= intensity <= 1.0
    finally:
        listener.close()


def test_file_watcher_events_reach_the_engine(live, monkeypatch):
    eng, server, client, pump, tmp = live
    seen = []
    original = eng.file_changed
    monkeypatch.setattr(eng, "file_changed", lambda ev: (seen.append(ev), original(ev)))
    watcher = FileWatcher([tmp / "presets", tmp / "shaders"], eng.commands, interval_s=0.05,
                          suffixes=(".toml", ".glsl"))
    with watcher:
        p = tmp / "presets" / "harmony.toml"
        p.write_text(p.read_text() + "\n# touched\n")
        pump(lambda: any(e.path == p for e in seen), "FileChanged applied on the engine thread", limit=3000)


def test_a_saved_look_keeps_the_room_and_the_machine_out(live):
    """The issue's case: save a look, the technician then sets the camera ROI and leds/master, load the look:
    the calibration stays; the saved file holds no venue or machine value (field/sim_every, field/particles)."""
    eng, server, client, pump, tmp = live
    client.send("/tapestry/field/sim_every", 2)            # what a software-GL machine sets
    client.send("/tapestry/field/harmony", 0.375)
    pump(lambda: eng.params.base("field/harmony") == 0.375, "look set")
    client.send("/tapestry/preset/save", "artist_look")
    pump(lambda: _has(client, "/tapestry/preset/saved", lambda a: a == ["artist_look"]), "saved reply")
    text = (tmp / "presets" / "artist_look.toml").read_text()
    assert '"field/harmony" = 0.375' in text
    for path in ("field/sim_every", "field/particles", "show/master", "leds/master", "sensing/camera/roi/x0"):
        assert f'"{path}"' not in text
    client.send("/tapestry/sensing/camera/roi/x0", 0.25)
    client.send("/tapestry/leds/master", 0.625)
    client.send("/tapestry/field/harmony", 0.875)
    pump(lambda: eng.params.base("field/harmony") == 0.875, "changes after the save")
    client.send("/tapestry/preset/load", "artist_look", 0.0)
    pump(lambda: eng.params.base("field/harmony") == pytest.approx(0.375), "look loaded")
    assert eng.params.base("sensing/camera/roi/x0") == 0.25
    assert eng.params.base("leds/master") == 0.625
    assert eng.params.base("field/sim_every") == 2


def test_shipped_presets_cannot_be_overwritten_from_the_network(live):
    """/tapestry/field/particles 8388608 then /tapestry/preset/save/force harmony: refused, the file unchanged."""
    eng, server, client, pump, tmp = live
    before = (tmp / "presets" / "harmony.toml").read_text()
    client.send("/tapestry/field/particles", 8388608)
    client.send("/tapestry/preset/save/force", "harmony")
    pump(lambda: _has(client, "/tapestry/error", lambda a: "shipped" in a[0]), "refusal")
    assert (tmp / "presets" / "harmony.toml").read_text() == before
    assert not (tmp / "presets" / ".history").exists()


def test_a_storm_of_same_name_saves_is_written_off_the_frame_thread_and_merged(live):
    eng, server, client, pump, tmp = live
    for i in range(90):  # 180 datagrams: within the rate limit's burst, so every save reaches the engine
        client.send("/tapestry/field/harmony", i / 256)
        client.send("/tapestry/preset/save", "storm_look")
    pump(lambda: sum(1 for a, args in client.inbox if a == "/tapestry/preset/saved") == 90, "every save answered",
         limit=3000)
    eng.saver.flush()
    assert eng.saver.written + eng.saver.merged == 90 and eng.saver.written >= 1
    assert eng.presets.load("storm_look").params["field/harmony"] == 89 / 256
    assert len(list((tmp / "presets" / ".history").glob("storm_look-*.toml"))) <= 10


def test_venue_save_writes_the_calibration_next_to_the_venue(live):
    from installation.presets import load_venue_params
    eng, server, client, pump, tmp = live
    client.send("/tapestry/venue/save")
    pump(lambda: _has(client, "/tapestry/error"), "no venue file: refused")
    eng.venue_params = tmp / "room.params.toml"
    client.send("/tapestry/sensing/camera/roi/y3", 0.8)
    client.send("/tapestry/blackout", 1)
    client.send("/tapestry/venue/save")
    pump(lambda: _has(client, "/tapestry/venue/saved"), "venue saved")
    saved = load_venue_params(tmp / "room.params.toml", eng.params)
    assert saved["sensing/camera/roi/y3"] == pytest.approx(0.8)
    assert "show/blackout" not in saved and "field/harmony" not in saved
