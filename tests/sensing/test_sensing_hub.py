"""SensorHub on real threads: a camera that stalls and comes back, real files, recording and replay."""

from __future__ import annotations

import csv
import json
import logging
import threading
import time

import av
import numpy as np
import pytest

from installation.params import ParamTree
from installation.sensing import PARAMS, OfflineSensors, SensorHub, run_sense
from installation.sensing.camera import FrameSource
from sensing_media import CLASSROOM, WALK, claps, frames, need, noise, write_wav


def wait_for(cond, limit=10.0, step=0.01):
    """Poll ``cond`` until true or ``limit`` seconds pass; returns its last value (no timing asserted)."""
    end = time.monotonic() + limit
    while True:
        v = cond()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


class StallingCamera(FrameSource):
    """Stands in for the physical camera only: real footage, then a stall until released, then a driver timeout."""

    name = "fake-camera"

    def __init__(self, clip, deliver: int) -> None:
        self.clip = clip
        self.deliver = deliver
        self.opens = 0
        self.sent = 0
        self.release = threading.Event()
        self.stalled = threading.Event()

    def open(self) -> None:
        self.opens += 1
        self.sent = 0

    def read(self):
        if self.opens == 1 and self.sent >= self.deliver:
            self.stalled.set()
            self.release.wait(10.0)
            return None  # like V4L2's select() timing out
        f = self.clip[self.sent % len(self.clip)]
        self.sent += 1
        time.sleep(0.01)
        return f


def test_stalled_camera_is_noticed_decays_to_calm_and_is_reopened():
    tree = ParamTree.from_specs(PARAMS)
    tree.set_base("sensing/camera/stale_s", 0.2)
    tree.set_base("sensing/camera/calm_s", 0.2)
    # An empty room, then people walking in (the walk-in clip backwards): present when the camera stalls.
    room = list(frames(WALK)[13:]) * 10 + list(reversed(frames(WALK)))
    cam = StallingCamera(room, deliver=120)
    hub = SensorHub(None, None, tree, camera_source=cam)
    hub.start()
    try:
        assert wait_for(cam.stalled.is_set)
        fresh, _ = hub.latest()
        assert fresh is not None and fresh.presence > 0
        assert wait_for(lambda: hub.status()["camera"]["state"] == "stale")
        decayed = wait_for(lambda: (lambda c: c if c is not None and c.presence < 0.5 * fresh.presence else None)(
            hub.latest()[0]))
        assert decayed is not None, "a stale camera's measurement decays towards calm"
        assert wait_for(lambda: hub.latest()[0] is None), "and fades out completely"
        st = hub.status()["camera"]
        assert st["age"] > 0.2 and st["frames"] >= 120
        cam.release.set()  # the driver times out: the hub reopens the camera
        assert wait_for(lambda: cam.opens >= 2 and hub.status()["camera"]["state"] == "running")
        assert wait_for(lambda: hub.latest()[0] is not None)
        assert "stopped delivering" in hub.status()["camera"]["error"]
    finally:
        cam.release.set()
        hub.stop()
    assert hub.status()["camera"]["state"] == "stopped"


class FailingCamera(FrameSource):
    name = "unplugged"

    def __init__(self) -> None:
        self.tries = 0

    def open(self) -> None:
        self.tries += 1
        raise OSError("no such device")

    def read(self):
        return None


def test_unplugged_camera_is_retried_with_backoff_and_never_blocks_latest():
    cam = FailingCamera()
    hub = SensorHub(None, None, camera_source=cam)
    hub.start()
    try:
        assert wait_for(lambda: cam.tries >= 2, limit=5.0)
        assert hub.latest() == (None, None)
        st = hub.status()["camera"]
        assert st["state"] == "reopening" and "no such device" in st["error"]
    finally:
        hub.stop()
    assert cam.tries <= 4  # backoff: 0.5 s, 1 s, 2 s ... not a busy loop


def test_hub_with_files_records_and_the_recording_replays_identically(tmp_path):
    wav = write_wav(tmp_path / "room.wav", noise(3, -60) + claps(3, 2))
    rec = tmp_path / "sensors.jsonl"
    hub = SensorHub(str(need(WALK)), str(wav), record_to=str(rec))
    hub.start()
    seen_cam, seen_aud = [], []
    try:
        def got_enough():
            c, a = hub.latest()
            if c is not None and (not seen_cam or c is not seen_cam[-1]):
                seen_cam.append(c)
            if a is not None and (not seen_aud or a is not seen_aud[-1]):
                seen_aud.append(a)
            return len(seen_cam) >= 15 and len(seen_aud) >= 20
        assert wait_for(got_enough, limit=20.0)
        st = hub.status()
        assert st["camera"]["state"] == "running" and st["camera"]["fps"] > 0
        assert st["audio"]["state"] == "running" and st["audio"]["samplerate"] == 48000
    finally:
        hub.stop()
    lines = [json.loads(x) for x in rec.read_text().splitlines()]
    assert sum("camera" in x for x in lines) >= 15 and sum("audio" in x for x in lines) >= 20
    assert max(a.onset_rate for a in seen_aud) > 0  # the claps came through the live path

    replay = OfflineSensors(sensors_file=str(rec))
    for c in seen_cam:
        got_c, _ = replay.at(c.t)
        assert got_c == c
    for a in seen_aud[-5:]:
        assert replay.at(a.t)[1] == a
    again = OfflineSensors(sensors_file=str(rec))
    ts = np.linspace(0, replay.duration, 50)
    assert [again.at(t) for t in ts] == [replay.at(t) for t in ts]


def test_offline_sensors_are_deterministic_and_restart_when_time_goes_back(tmp_path):
    wav = write_wav(tmp_path / "room.wav", noise(4, -60) + claps(4, 2))
    ts = [i / 30 for i in range(120)]
    a = OfflineSensors(camera_file=str(need(WALK)), audio_file=str(wav), fps=30)
    b = OfflineSensors(camera_file=str(WALK), audio_file=str(wav), fps=30)
    ra = [a.at(t) for t in ts]
    rb = [b.at(t) for t in ts]
    assert ra == rb
    assert a.at(1.0) == ra[30]  # earlier time: analysis restarts from zero, same answer
    assert all(c is not None and au is not None for c, au in ra[1:])
    assert ra[-1][1].onset_rate > 0.5
    # The 23-frame clip loops at its own 12.5 fps.
    assert a.camera_fps == pytest.approx(12.5)


def test_offline_sensors_report_bad_files_clearly(tmp_path):
    with pytest.raises(OSError, match="nope.gif"):
        OfflineSensors(camera_file=str(tmp_path / "nope.gif"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"camera": {"t": 0, "presence": 0.5, "motion": 0, "speed": 0, "people": []}}\n'
                   'not json\n{"audio": {"t": 1}}\n')
    s = OfflineSensors(sensors_file=str(bad))
    assert s.at(0.5)[0].presence == 0.5 and s.at(0.5)[1] is None
    # A file holding no record at all is the wrong file, not an empty afternoon.
    notes = tmp_path / "notes.txt"
    notes.write_text("# my notes\n\n[1, 2]\n{\"t\": 0, \"presence\": 0.5}\n")
    with pytest.raises(ValueError, match=r"notes.txt: no camera or audio record in 3 .*notes.txt:1"):
        OfflineSensors(sensors_file=str(notes))


def test_a_recording_with_many_bad_lines_names_a_few_and_counts_the_rest(tmp_path, caplog):
    rec = tmp_path / "cut.jsonl"
    good = '{"camera": {"t": %d, "presence": 0.5, "motion": 0, "speed": 0, "people": []}}\n'
    rec.write_text("".join(good % i for i in range(3)) + "garbled\n" * 50 + '{"camera": {"t": 9, "pres')
    with caplog.at_level(logging.WARNING, logger="installation.sensing.sources"):
        s = OfflineSensors(sensors_file=str(rec))
    assert s.at(2.5)[0].presence == 0.5
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 4 and "cut.jsonl:4" in warned[0] and "51 malformed sensor records" in warned[-1], warned


def test_sense_command_writes_rows_and_a_preview(tmp_path, capsys):
    wav = write_wav(tmp_path / "room.wav", noise(2, -60) + claps(2, 2))
    out = tmp_path / "sense.csv"
    mp4 = tmp_path / "preview.mp4"
    rc = run_sense(str(need(WALK)), str(wav), str(out), str(mp4), roi="0,0,1,0,1,1,0,1")
    assert rc == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(frames(WALK))
    assert {"t", "presence", "motion", "people", "level_dbfs", "onset_rate", "intensity"} <= set(rows[0])
    # the bands a preset can map are there to tune with too: claps (broadband) light voice and air
    assert {"bass", "voice", "air"} <= set(rows[0])
    for band in ("bass", "voice", "air"):
        values = [float(r[band]) for r in rows if r[band] != "nan"]
        assert values and max(values) > 0.5, (band, values)
    assert max(float(r["presence"]) for r in rows) > 0.01
    assert "presence" in capsys.readouterr().out
    with av.open(str(mp4)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264"
        n = sum(1 for _ in c.decode(video=0))
    assert n == len(frames(WALK))


def test_sense_preview_shows_what_the_person_detector_sees(tmp_path):
    """`sense --preview` on the seated classroom (in view from the first frame): the technician sees the
    detector's boxes (magenta) over the audience the background alone would miss."""
    from installation.sensing import detector
    try:
        detector.load()
    except detector.DetectorUnavailable as e:
        pytest.skip(str(e))
    mp4 = tmp_path / "preview.mp4"
    assert run_sense(str(need(CLASSROOM)), None, str(tmp_path / "s.csv"), str(mp4)) == 0
    with av.open(str(mp4)) as c:
        img = next(iter(c.decode(video=0))).to_ndarray(format="bgr24").astype(int)
    magenta = (img[..., 0] - img[..., 1] > 80) & (img[..., 2] - img[..., 1] > 80)   # after H.264 4:2:0
    assert magenta.sum() > 100


def test_sense_tells_the_technician_about_a_monochrome_or_slow_camera(tmp_path):
    """`sense` ends with the camera's size, rate and colour, and says what docs/sensing.md has on a grey (night or
    infrared) camera and a slow stream: the walk-in clip as shot (colour, 12.5 fps) has no notes; the same frames
    grey at 4 fps, written by a real MPEG-4 encoder (its chroma rounding 1-3 levels from grey), have both."""
    import io

    import cv2

    def clip_file(name, images, fps):
        path = tmp_path / name
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (images[0].shape[1], images[0].shape[0]))
        for f in images:
            w.write(f)
        w.release()
        return str(path)

    def sense(camera):
        log = io.StringIO()
        assert run_sense(camera, None, str(tmp_path / "s.csv"), out=log) == 0
        return log.getvalue()

    text = sense(str(need(WALK)))
    assert "camera 480x270, 12.5 fps, colour" in text and "note:" not in text, text
    # A colour camera starting up sends a few black frames: no colour to see there, and no night mode.
    walk = list(frames(WALK))
    text = sense(clip_file("dark-start.mp4", [np.zeros_like(walk[0])] * 3 + walk, 12.5))
    assert "fps, colour\n" in text and "note:" not in text, text
    grey = [cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) for f in walk]
    text = sense(clip_file("grey.mp4", grey, 4))
    assert "camera 480x270, 4.0 fps, monochrome" in text, text
    assert "A monochrome camera" in text and "A slow or heavily compressed stream" in text, text


def test_sense_command_refuses_bad_arguments(tmp_path):
    out = tmp_path / "x.csv"
    assert run_sense(str(need(WALK)), None, str(out), roi="1,2,3") == 2
    assert run_sense(None, None, str(out)) == 2
    assert run_sense(str(tmp_path / "missing.gif"), None, str(out)) == 1


@pytest.mark.parametrize("kw, message", [
    ({"roi": "0,0,5,0,5,5,0,5"}, "corner 2 (5, 0) is outside -1..2"),   # was clamped to 2 and measured
    ({"preview_mp4": "p.txt"}, "--preview p.txt: give a .mp4"),           # was a PyAV traceback
    ({"preview_mp4": "no/such/p.mp4"}, "no folder 'no/such'"),            # was a PyAV traceback
    ({"seconds": float("nan")}, "--seconds nan: give a length above 0"),  # a live device never stopped
])
def test_sense_refuses_a_bad_roi_preview_or_length_before_measuring(tmp_path, kw, message):
    import io
    out, csv_path = io.StringIO(), tmp_path / "x.csv"
    assert run_sense(str(need(WALK)), None, str(csv_path), out=out, **kw) == 2
    assert out.getvalue().strip().splitlines() == [out.getvalue().strip()] and message in out.getvalue()
    assert not csv_path.exists()


def test_hub_refuses_a_recording_name_it_cannot_replay(tmp_path):
    with pytest.raises(ValueError, match="jsonl"):
        SensorHub(None, None, record_to=str(tmp_path / "night.csv"))


def test_hub_refuses_a_recording_it_could_not_write_before_anything_starts(tmp_path):
    """A missing folder was found only when the sensors started, after the whole show was built: a traceback."""
    with pytest.raises(ValueError, match="no folder .*nope"):
        SensorHub(None, None, record_to=str(tmp_path / "nope" / "night.jsonl"))
    (tmp_path / "d.jsonl").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        SensorHub(None, None, record_to=str(tmp_path / "d.jsonl"))
