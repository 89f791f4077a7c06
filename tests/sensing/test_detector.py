"""The person detector and the camera's second opinion, judged on real frames (issue 13).

What a visitor or technician notices: a seated audience in view when the
camera starts reads present at once; an empty room stays empty under light
changes; a still visitor the detector sees is not lost when a lamp switches
on; a picture of a person stops counting after ``fixture_s``; and without the
detector runtime the camera still works, with one warning.
"""

from __future__ import annotations

import logging
import math
import sys
import time

import cv2
import numpy as np
import pytest

from installation.params import ParamTree
from installation.sensing import PARAMS
from installation.sensing import scenarios as S
from installation.sensing.camera import CameraAnalyzer
from installation.sensing import detector
from installation.sensing.detector import Detection
from sensing_media import (CLASSROOM, CLASSROOM_FPS, HEAD_TURN, HEAD_TURN_FPS, MEDIA, SIGNER, SIGNER_FPS, WALK,
                           WALK_FPS, frames, need)

EMPTY = S.EMPTY_MAX
SIZE = (640, 360)

@pytest.fixture(scope="module")
def det():
    try:
        return detector.load()
    except detector.DetectorUnavailable as e:
        pytest.skip(str(e))


def small(f):
    return cv2.resize(f, SIZE, interpolation=cv2.INTER_LINEAR)


def lit(frame):
    """The empty room under four light changes: darker, brighter, a spotlight, a shadow band."""
    h, w = frame.shape[:2]
    f = frame.astype(np.float32)
    m = np.zeros((h, w), np.float32)
    cv2.ellipse(m, (w // 2, h // 2), (w // 5, h // 4), 0, 0, 360, 1.0, -1)
    m = cv2.GaussianBlur(m, (0, 0), 25)[..., None]
    band = np.ones((h, w), np.float32)
    band[:, w // 3: w // 3 + w // 5] = 0.45
    band = cv2.GaussianBlur(band, (0, 0), 8)[..., None]
    return [np.clip(v, 0, 255).astype(np.uint8) for v in (f * 0.6, f * 1.4, f * (1 + 1.2 * m) + 60 * m, f * band)]


def test_detector_finds_the_seated_audience_on_every_tenth_classroom_frame(det):
    clip = frames(CLASSROOM)
    for i in range(0, len(clip), 10):
        found = det.detect(small(clip[i]))
        assert found, f"frame {i}: nobody found"
        for d in found:
            assert 0.0 <= d.hip[0] <= 1.0 and 0.0 <= d.hip[1] <= 1.0
            assert d.box[0] <= d.hip[0] <= d.box[2] and d.box[1] <= d.hip[1] <= d.box[3]


def test_detector_sees_nobody_in_the_empty_room_under_any_light(det):
    clip = frames(WALK)
    for i in range(13, 23):  # labelled empty
        f = small(clip[i])
        for k, v in enumerate([f] + lit(f)):
            assert det.detect(v) == (), f"frame {i} variant {k}"


def run(frames_and_times, tree=None, opinion="inline"):
    a = CameraAnalyzer(tree, opinion=opinion)
    return a, np.array([a.process(f, t).presence for f, t in frames_and_times])


def test_the_body_detector_finds_visitors_seen_from_behind_that_the_pose_detector_misses(det):
    """The walk-in room's first frame: two people leaving through the door at the left, backs to the camera."""
    if det.body is None:
        pytest.skip("body detector model not loaded")
    f = small(frames(WALK)[0])
    assert det.pose(f) == ()   # face-anchored: no face, no find
    found = det.detect(f)
    assert found and all(d.box[2] < 0.25 and d.hip[0] < 0.15 for d in found), found
    det.body_on = False   # sensing/camera/detect_body off: the pose detector alone
    try:
        assert det.detect(f) == ()
    finally:
        det.body_on = True


def test_visitors_close_to_the_camera_in_view_at_start_up_count_on_the_first_frame(det):
    """Three people a step from the camera (face-demographics-walking-and-pause, frame 0), standing still from
    start-up: the detector finds two, but places their hips below the picture, which read as outside the watched
    area, so the room read empty for as long as they stood.  They stand at its edge."""
    f = small(frames(MEDIA / "face-demographics-walking-and-pause.gif")[0])
    found = det.detect(f)
    assert found and any(d.hip[1] > 1.0 for d in found)   # the model puts their hips below the picture
    a, rng = CameraAnalyzer(), np.random.default_rng(5)
    for i in range(int(3.0 * WALK_FPS)):   # they stand still for 3 s: the background alone never sees them
        held = np.clip(f + rng.normal(0.0, 2.0, f.shape), 0, 255).astype(np.uint8)
        r = a.process(held, i / WALK_FPS)
        assert r.presence > EMPTY and len(r.people) >= 1, (i, r.presence, r.people)


def test_the_body_detector_runs_at_start_up_only(det):
    """It costs about 35 ms a run and a find of it alone is no visitor once the background knows the room: it runs in
    the first second, and on while someone it found then may still be there."""
    if det.body is None:
        pytest.skip("body detector model not loaded")
    walk = frames(WALK)
    a = CameraAnalyzer()
    for i in range(int(3 * WALK_FPS)):   # the empty room from the start
        a.process(small(walk[13 + i % 10]), i / WALK_FPS)
        if i == 0:
            assert a.opinion.det.body_on
    assert not a.opinion.det.body_on
    a = CameraAnalyzer()
    for i, f in enumerate(walk[:19]):   # two people leaving at the start: watched until a run finds them gone
        a.process(small(f), i / WALK_FPS)
        if i == 15:
            assert a.opinion.det.body_on


def test_with_detect_body_off_the_body_model_is_loaded_only_once_it_is_turned_on(det):
    """A machine that turns the body detector off does not pay for loading it; turned on live, it loads then."""
    if det.body is None:
        pytest.skip("body detector model not loaded")
    tree = ParamTree.from_specs(PARAMS)
    tree.update_bases({"sensing/camera/detect_body": False})
    a = CameraAnalyzer(tree)
    walk = frames(WALK)
    a.process(small(walk[0]), 0.0)
    assert a.opinion.det.body is None and a.opinion.det.pose(small(walk[0])) == ()
    tree.update_bases({"sensing/camera/detect_body": True})
    for i in range(1, 8):   # the next run, 0.5 s on, still in the first second
        a.process(small(walk[i]), i / WALK_FPS)
    assert a.opinion.det.body is not None


class Scripted:
    """An opinion whose runs (every 1/hz s) report ``finds(t)``: a detector that sees what the test says."""

    def __init__(self, finds):
        self.finds, self.due = finds, -math.inf

    def offer(self, frame, t, hz, close_ups=None):
        if hz <= 0 or t < self.due:
            return []
        self.due = t + 1.0 / hz
        return [(t, tuple(self.finds(t)))]

    def close(self):
        pass


def _walk_in_visitor():
    """The walk-in room's empty view (640x360) and a visitor cut from its frames, with their normalised box."""
    clip = S.load_clip(need(WALK))
    view, _ = S.empty_view(clip)
    cut = S.cutouts(clip, view)[len(S.cutouts(clip, view)) // 2]
    ys, xs = np.nonzero(cut[1] > 0.5)
    h, w = cut[1].shape
    box = (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h)
    return view, cut, box


def test_the_place_a_start_up_visitor_left_reads_empty_as_soon_as_a_run_finds_them_gone():
    """A visitor found on the first frame (in the background) leaves at 3 s; the next run finds nobody.  Before,
    their place read as a person until the ghost test, settle_s (0.8 s) after it stopped changing.  (Runs 4 times
    a second and finds held 0.3 s, so that the hold of the last find is not what is measured.)"""
    view, cut, box = _walk_in_visitor()
    find = Detection(0.6, box, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), 0.1, box)
    tree = ParamTree.from_specs(PARAMS)
    tree.update_bases({"sensing/camera/detect_hz": 4.0, "sensing/camera/detect_hold_s": 0.3})
    a = CameraAnalyzer(tree, opinion=Scripted(lambda t: [find] if t < 3.0 else []))
    for i in range(int(5.0 * WALK_FPS)):
        t = i / WALK_FPS
        f = S.paste(view[i % len(view)], cut, dx=int(round(math.sin(i * 0.37)))) if t < 3.0 else view[i % len(view)]
        p = a.process(small(f), t).presence
        if t < 3.0:
            assert p > EMPTY, f"t={t:.2f}: the visitor read empty"
        elif t >= 3.3:
            assert p <= EMPTY, f"t={t:.2f}: the place they left reads {p:.2f}"


def test_a_visitor_the_detectors_miss_who_stands_where_a_start_up_visitor_stood_stays_present():
    """The quick sinking of a start-up visitor's place lasts GHOST_HEAL_S: someone who later stands still in that
    place, and whom neither detector finds, is judged by the usual tests and kept."""
    view, cut, box = _walk_in_visitor()
    find = Detection(0.6, box, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), 0.1, box)
    a = CameraAnalyzer(opinion=Scripted(lambda t: [find] if t < 3.0 else []))
    for i in range(int(25.0 * WALK_FPS)):
        t = i / WALK_FPS
        there = t < 3.0 or t >= 6.0
        f = S.paste(view[i % len(view)], cut, dx=int(round(math.sin(i * 0.37)))) if there else view[i % len(view)]
        p = a.process(small(f), t).presence
        if t >= 7.0:
            assert p > EMPTY, f"t={t:.2f}: the visitor standing where the first one stood was lost"


def test_a_visitor_the_detectors_miss_beside_a_start_up_visitor_stays_present_when_the_first_one_leaves():
    """Someone the detectors miss stands beside a start-up visitor (within their box) from 2.5 s; the start-up
    visitor, found on every run, leaves at 8 s.  Only the place they left is sunk fast, not the one beside them
    (a review found the first version erased them: empty from 8.9 s)."""
    view, cut, box = _walk_in_visitor()
    find = Detection(0.6, box, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), 0.1, box)
    a = CameraAnalyzer(opinion=Scripted(lambda t: [find] if t < 8.0 else []))
    for i in range(int(14.0 * WALK_FPS)):
        t = i / WALK_FPS
        f = view[i % len(view)]
        sway = int(round(math.sin(i * 0.37)))
        if t >= 2.5:
            f = S.paste(f, cut, dx=12 + sway, gain=0.7)
        if t < 8.0:
            f = S.paste(f, cut, dx=sway)
        p = a.process(small(f), t).presence
        if t >= 9.0:
            assert p > EMPTY, f"t={t:.2f}: the visitor beside the one who left was lost"


def test_a_missing_or_unlabelled_body_model_is_named_and_the_pose_detector_still_loads(tmp_path, det, caplog,
                                                                                      monkeypatch):
    from installation.sensing import body_detector as B
    with pytest.raises(detector.DetectorUnavailable, match="body detector off: cannot load"):
        B.BodyDetector(tmp_path / "missing.tflite")
    bare = tmp_path / B.MODEL.name
    bare.write_bytes(B.MODEL.read_bytes())   # the model without its label map beside it
    with pytest.raises(detector.DetectorUnavailable, match="cannot read its labels"):
        B.BodyDetector(bare)
    caplog.set_level(logging.WARNING)
    real = B.BodyDetector.__init__
    monkeypatch.setattr(B.BodyDetector, "__init__", lambda self, *a, **k: real(self, bare))
    d = detector.load()
    assert d.body is None and "people seen from behind" in caplog.text
    assert d.detect(small(frames(WALK)[13])) == ()


@pytest.mark.parametrize("w, h, want", [
    (640, 360, [(0, 0, 360), (280, 0, 360)]), (360, 640, [(0, 0, 360), (0, 280, 360)]), (300, 300, [(0, 0, 300)]),
    (1000, 250, [(0, 0, 250), (188, 0, 250), (375, 0, 250), (562, 0, 250), (750, 0, 250)])])
def test_a_wide_or_tall_frame_is_looked_at_in_overlapping_squares(w, h, want):
    from installation.sensing.body_detector import OVERLAP, squares
    got = squares(w, h)
    assert got == want
    for (x0, y0, s), (x1, y1, _) in zip(got, got[1:]):
        assert max(x1 - x0, y1 - y0) <= (1.0 - OVERLAP) * s + 1


def test_visitors_seen_from_behind_at_start_up_read_present_and_the_place_they_left_empty_at_once(det):
    """people-walking-in as shot: the first frame's people are in the background.  Before, frames 0-1 read empty
    (no background to differ from, no detector saw them) and frames 13-16 of the empty room read one person (the
    place the first woman stood, until the ghost test after settle_s): AUC 0.673."""
    if det.body is None:
        pytest.skip("body detector model not loaded")
    clip = [(small(f), i / WALK_FPS) for i, f in enumerate(frames(WALK))]
    _, pres = run(clip)
    assert pres[:11].min() > EMPTY, pres.round(3).tolist()     # labelled present 0-10
    assert pres[13:].max() <= EMPTY, pres.round(3).tolist()    # labelled empty 13-22
    # The same after the camera changed mode (another frame size starts a new background): the detector runs on
    # the frame the new background starts from, not when its old due time comes (a review found it did not).
    other = [(cv2.resize(f, (480, 360)), -0.3 + i * 0.1) for i, f in enumerate(frames(WALK)[:3])]
    _, pres = run(other + clip)
    assert pres[3:3 + 11].min() > EMPTY and pres[3 + 13:].max() <= EMPTY, pres.round(3).tolist()


def test_classroom_reads_present_from_the_first_frame(det):
    """The seated audience is in the first background: subtraction alone misses them (the bug), the detector not."""
    clip = [(small(f), i / CLASSROOM_FPS) for i, f in enumerate(frames(CLASSROOM))]
    _, before = run(clip, opinion=None)
    assert np.mean(before > EMPTY) < 0.5  # issue 13 as reported: 7 % of frames
    _, pres = run(clip)
    assert pres.min() > EMPTY, pres.round(3).tolist()


def test_still_visitors_seen_by_the_detector_are_kept_through_a_lamp_step(det):
    """Three people standing close to the camera when a lamp comes on at one side.  On a mono camera (an
    infrared one in a dark gallery) the light test took part of them for the light (their outlines follow
    the changed light), and without the detector they read empty on about a third of the frames after it
    until clipped pixels were taken as lower bounds of the light (the lamp clips a fifth of the side it
    lights); seen by the detector they stay present either way.  On a colour camera their clothes' colour
    keeps them even without the detector."""
    clip = S.load_clip(need(MEDIA / "face-demographics-walking-and-pause.gif"))
    lamp = S.steps()

    def light(f, t, present):
        return f if t < 2.0 else lamp(f, 27.0, False)  # 27 s into steps(): the lamp at the right, +35 %

    sc = S.Scenario("lamp", clip.fps, [S.clip_segment(clip)], light=light)
    shots = [(f, t) for f, t, _ in S.play(sc)]  # as filmed, 480x270
    # A mono camera delivering the analysis width (160 px) itself: the pixels the grey analysis always saw.
    mono = [(cv2.cvtColor(cv2.resize(f, (160, 90), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY), t)
            for f, t in shots]
    t = np.array([s[1] for s in shots])
    after = (clip.labels == 1) & (t >= 2.0)
    _, alone = run(mono, opinion=None)
    assert alone[after].min() > EMPTY, (alone[after].min(), t[after][alone[after].argmin()])
    _, pres = run(mono)
    assert pres[after].min() > EMPTY, (pres[after].min(), t[after][pres[after].argmin()])
    _, colour = run(shots, opinion=None)
    assert colour[after].min() > EMPTY, (colour[after].min(), t[after][colour[after].argmin()])


def test_a_picture_of_a_person_stops_counting_after_fixture_s_and_counts_again_when_people_move(det):
    """A still photo of the classroom (a poster) reads present at first, empty once fixture_s has passed;
    when the real audience moves there again, they read present."""
    tree = ParamTree.from_specs(PARAMS)
    tree.update_bases({"sensing/camera/fixture_s": 4.0})
    clip = frames(CLASSROOM)
    poster = small(clip[0])
    rng = np.random.default_rng(1)
    fps = 10.0
    shots = [(S._noisy(poster, rng), i / fps) for i in range(int(12 * fps))]
    shots += [(small(f), 12.0 + i / CLASSROOM_FPS) for i, f in enumerate(clip)]
    t = np.array([s[1] for s in shots])
    _, pres = run(shots, tree)
    assert pres[t < 3.0].min() > EMPTY  # a picture reads as a visitor at first (documented)
    assert pres[(t >= 4.0 + 2.0) & (t < 12.0)].max() <= EMPTY
    moving = t >= 12.0 + 1.0
    assert np.mean(pres[moving] > EMPTY) > 0.9


@pytest.mark.parametrize("step", [0.1, -0.3])
def test_a_picture_of_a_person_stops_counting_through_lamp_steps(det, step):
    """The room light stepping every 1.5 s (a lamp, the piece's own light on the walls) moves pixels on the
    picture too; that is not someone there, so the picture still stops counting after fixture_s (review: with
    a 10 % step a minute it read as a visitor for ever)."""
    tree = ParamTree.from_specs(PARAMS)
    tree.update_bases({"sensing/camera/fixture_s": 4.0})
    poster = small(frames(CLASSROOM)[0]).astype(np.float32)
    rng = np.random.default_rng(2)
    fps = 10.0
    shots = []
    for i in range(int(14 * fps)):
        g = 1.0 + (step if int(i / fps / 1.5) % 2 else 0.0)
        shots.append((S._noisy(np.clip(poster * g, 0, 255).astype(np.uint8), rng), i / fps))
    t = np.array([s[1] for s in shots])
    _, pres = run(shots, tree)
    assert pres[t < 3.0].min() > EMPTY
    assert pres[t >= 4.0 + 3.0].max() <= EMPTY


def test_a_visitor_filling_the_frame_who_only_turns_their_head_stays_present(det):
    """A man close to the camera from start-up, still but for slow turns of his head (Intel's head-pose clip,
    played back and forth).  The turns move at most 0.19 % of his body box between frames, under what counts
    as activity there, so he was taken for a picture after fixture_s; in his face box they are activity."""
    tree = ParamTree.from_specs(PARAMS)
    tree.update_bases({"sensing/camera/fixture_s": 15.0})
    clip = [small(f) for f in frames(HEAD_TURN)]
    shots = [(S._pingpong(clip, i), i / HEAD_TURN_FPS) for i in range(int(45 * HEAD_TURN_FPS))]
    t = np.array([s[1] for s in shots])
    _, pres = run(shots, tree)
    assert pres.min() > EMPTY, f"read empty from {t[pres <= EMPTY][0]:.1f} s"


def test_one_person_a_step_from_the_camera_moving_their_arms_is_one_person(det):
    """A man signing a step from the camera (Intel's sign-language clip "eat"), in view from the first frame:
    his arms and the parts of his sweater that match the wall broke him into up to five blobs, each counted as
    a person (presence 0.4 from person_floor alone).  Blobs that come up inside his detection's body box while
    he is counted there are parts of him."""
    a = CameraAnalyzer(opinion="inline")
    counts = [len(a.process(small(f), i / SIGNER_FPS).people) for i, f in enumerate(frames(SIGNER))]
    assert max(counts) == 1 and min(counts) == 1, counts



def test_a_camera_mounted_upright_is_analysed_at_the_size_of_a_landscape_one(det):
    """The signer through a camera mounted upright (his clip cropped to 270x480, as a phone on its side sees
    it): analysed 160 px wide it had 3.2 times the pixels of a landscape frame, about 11 ms a frame against the
    5 ms budget; 160 px high, he still reads present and one person on every frame.  (The top of his head, over
    the pose detector's box, which ends at his forehead, read as a second person on 10 of 47 frames until the
    parts rule's box reached a tenth of its height higher.)"""
    a = CameraAnalyzer(opinion="inline")
    clip = frames(SIGNER)
    h, w = clip[0].shape[:2]
    x0 = (w - 270 * h // 480) // 2
    upright = [f[:, x0:x0 + 270 * h // 480] for f in clip]
    seen = [a.process(f, i / SIGNER_FPS) for i, f in enumerate(upright)]
    assert a.debug["moving"].shape == (160, 90)
    assert min(r.presence for r in seen) > EMPTY
    assert [len(r.people) for r in seen] == [1] * len(seen)


def blob_scene(h, w):
    """An analyzer whose ``_people`` is fed masks by hand (the identity view, the whole ``h`` x ``w`` frame
    watched), and ``mask(*rects)``: a blob per rectangle given as fractions of the frame."""
    a = CameraAnalyzer(opinion="off")
    a._roi_area, a._H, a._lens = h * w, np.eye(3), None

    def mask(*rects):
        m = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in rects:
            m[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)] = True
        return m

    return a, mask


def test_a_new_blob_where_nothing_moved_is_a_person_only_where_someone_was_or_is_found():
    """The birth rule at the blobs' level.  A blob in which no pixel moved for BIRTH_QUIET_S starts no person
    (a patch of wall under a fading light, a flicker band's strip); it does where a person was counted until
    LOST_S ago (a still visitor whose blob broke for a few frames) or inside a live detection's box; and a
    blob that moved is someone new, as before."""
    from installation.sensing.camera import BIRTH_QUIET_S, LOST_S
    from installation.sensing.second_opinion import DetTrack
    h, w = 90, 160
    a, mask = blob_scene(h, w)
    a._last_motion = np.full((h, w), -np.inf, np.float32)
    a._last_turn = np.full((h, w), -np.inf, np.float32)
    wall, visitor = (0.1, 0.1, 0.2, 0.4), (0.6, 0.3, 0.7, 0.9)
    t = 100.0
    assert len(a._people(mask(wall), h, w, 0.1, [], t)) == 0
    a._last_motion[int(0.3 * h):int(0.9 * h), int(0.6 * w):int(0.7 * w)] = t   # the visitor walks in
    assert len(a._people(mask(visitor), h, w, 0.1, [], t)) == 1
    t += BIRTH_QUIET_S + 5.0   # they stand still; their blob breaks for a frame
    assert len(a._people(mask(), h, w, 0.1, [], t)) == 0
    assert len(a._people(mask(visitor), h, w, 0.1, [], t + 0.1)) == 1
    a._people(mask(), h, w, 0.1, [], t + 0.2)   # ... and for longer than LOST_S: until they move again
    assert len(a._people(mask(visitor), h, w, 0.1, [], t + 0.3 + LOST_S)) == 0
    found = DetTrack((0.55, 0.25, 0.75, 0.95), (0.65, 0.7), 0.8, 0.0, 0.0, 0.0)
    assert len(a._people(mask(visitor), h, w, 0.1, [found], t + 0.4 + LOST_S)) == 1
    # The visitor leaves; a blob blinks where they stood, one frame every 4 s: it counts while their track
    # ended less than LOST_S ago, and its own one-frame tracks do not extend that.
    t += 0.5 + LOST_S
    a._people(mask(), h, w, 0.1, [], t)
    seen = []
    for k in range(1, 7):
        seen.append(len(a._people(mask(visitor), h, w, 0.1, [], t + 4.0 * k)))
        a._people(mask(), h, w, 0.1, [], t + 4.0 * k + 0.1)
    assert seen == [1, 1, 0, 0, 0, 0]


def test_a_second_visitor_the_detector_finds_in_the_box_of_someone_close_is_counted():
    """The parts rule at the blobs' level: a close person's sure box covers most of the frame; a second
    visitor walks in inside it.  Found by the detector (their hip in the box), they are someone of their own;
    not found, they are taken for a part of the first (the documented price)."""
    from installation.sensing.second_opinion import DetTrack
    h, w = 90, 160
    a, mask = blob_scene(h, w)

    close = DetTrack((0.05, 0.0, 0.95, 1.0), (0.5, 1.3), 0.95, 0.0, 0.0, 0.0)
    first = (0.25, 0.2, 0.55, 1.0)
    second = (0.75, 0.4, 0.85, 0.9)
    found = DetTrack((0.72, 0.3, 0.88, 1.0), (0.8, 0.8), 0.95, 0.0, 0.0, 0.0)
    assert len(a._people(mask(first), h, w, 0.0, [close])) == 1
    assert len(a._people(mask(first, second), h, w, 0.08, [close, found])) == 2
    a._tracks = []
    a._people(mask(first), h, w, 0.0, [close])
    assert len(a._people(mask(first, second), h, w, 0.08, [close])) == 1


def test_a_close_persons_hair_over_the_box_and_a_score_dipping_under_sure_are_still_parts_of_them():
    """Two real faults of the parts rule on Intel's sign-language clips (not in this repository).  The pose
    detector's box ends at the forehead, so the top of a signer's head over a wall of its grey made a blob just
    above it, counted as a second person (asl-again: 1.42 people on average); and her score dipped from 0.97 to
    0.89 as she signed, under the sure 0.9, so new blobs of her arms counted (asl-book: 1.80).  A detector's
    track found sure stays sure for the rule for SURE_S; its box reaches a tenth of its height over the forehead."""
    from installation.sensing.detector import Detection
    from installation.sensing.second_opinion import DetectionTracks
    h, w = 90, 160
    a, mask = blob_scene(h, w)

    def find(score):
        return Detection(score, (0.08, 0.24, 0.89, 1.0), (0.5, 1.2), 0.3, (0.4, 0.24, 0.6, 0.44))

    tracks = DetectionTracks()
    tracks.merge([(0.0, (find(0.97),))], 0.0, 1.0)
    body, hair, arm = (0.3, 0.4, 0.7, 1.0), (0.45, 0.18, 0.55, 0.235), (0.1, 0.35, 0.25, 0.6)
    assert len(a._people(mask(body), h, w, 0.0, tracks.live())) == 1
    assert len(a._people(mask(body, hair), h, w, 0.08, tracks.live())) == 1
    tracks.merge([(0.5, (find(0.89),))], 0.5, 1.0)
    assert len(a._people(mask(body, arm), h, w, 0.08, tracks.live())) == 1
    # Unsure for longer than SURE_S (someone the detector does not find stepped in front of her): a new blob
    # counts again.
    a._tracks = []
    a._people(mask(body), h, w, 0.0, tracks.live())
    for t in np.arange(1.0, 1.0 + DetectionTracks.SURE_S + 0.6, 0.5):
        tracks.merge([(t, (find(0.7),))], t, 1.0)
    assert len(a._people(mask(body, arm), h, w, 0.08, tracks.live())) == 2
    lone = DetectionTracks()   # found sure, then not found whole for SURE_S (kept alive by a long hold)
    lone.merge([(0.0, (find(0.95),))], 0.0, 30.0)
    lone.merge([], DetectionTracks.SURE_S + 0.5, 30.0)
    assert lone.tracks and lone.tracks[0].best == 0.0
    fresh = DetectionTracks()   # found at 0.89 only: not sure, the arm is someone else (unchanged)
    fresh.merge([(0.0, (find(0.89),))], 0.0, 1.0)
    a._tracks = []
    a._people(mask(body), h, w, 0.0, fresh.live())
    assert len(a._people(mask(body, arm), h, w, 0.08, fresh.live())) == 2


def test_only_a_sure_whole_frame_finds_head_is_asked_for_motion_on_its_own():
    """At the tracks' level: motion in the head's square alone keeps a sure find (0.96) a visitor past
    fixture_s; an unsure one (a table's 0.5, its "face" a patch of its top) is a fixture all the same.  The
    square follows the track: a later find's, moved with the view, cut to the body box, and none from a
    close-up (there it is a few pixels, where noise passes for motion)."""
    from installation.sensing.second_opinion import DetectionTracks
    body, face = (0.2, 0.0, 1.0, 1.0), (0.45, 0.2, 0.6, 0.45)

    def run(score):
        tracks = DetectionTracks()
        d = Detection(score, body, (0.6, 0.9), 0.5, face)
        for k in range(40):
            t = 0.5 * k
            tracks.merge([(t, (d,))], t, 1.0)
            tracks.activity(t, lambda box: box == face and k % 10 == 0, 5.0)
        return tracks

    assert run(0.96).live()
    assert not run(0.5).live()
    tracks = DetectionTracks()
    tracks.merge([(0.0, (Detection(0.96, body, (0.6, 0.9), 0.5, face),))], 0.0, 1.0)
    tracks.merge([(0.5, (Detection(0.96, body, (0.6, 0.9), 0.5, (0.5, 0.25, 0.65, 0.5)),))], 0.5, 1.0)
    assert tracks.tracks[0].head == (0.5, 0.25, 0.65, 0.5)        # the later find's
    tracks.shift(0.1, -0.05)
    assert tracks.tracks[0].head == pytest.approx((0.6, 0.2, 0.75, 0.45))
    tracks.merge([(1.0, (Detection(0.96, (0.1, 0.0, 0.5, 1.0), (0.3, 0.9), 0.3, (0.4, 0.1, 0.6, 0.4)),))],
                 1.0, 1.0)
    assert tracks.tracks[0].head == (0.4, 0.1, 0.5, 0.4)          # cut to the body box
    tracks.merge([(1.5, (Detection(0.97, (0.1, 0.0, 0.5, 1.0), (0.3, 0.9), 0.3, (0.3, 0.2, 0.35, 0.25),
                                   close=True),))], 1.5, 1.0)
    assert tracks.tracks[0].score == 0.97 and tracks.tracks[0].head is None   # a close-up's find


@pytest.mark.parametrize("light", ["steady", "flicker", "steps"])
def test_a_close_up_portrait_of_a_face_stops_counting_after_fixture_s(det, light):
    """The same man's first frame held still (a portrait), with sensor noise, under mains flicker rolling
    down the frame, and through exposure and lamp steps every 3 s: the detector is as sure of his face
    (0.96), but a face that never moves is a picture."""
    tree = ParamTree.from_specs(PARAMS)
    tree.update_bases({"sensing/camera/fixture_s": 4.0})
    portrait = small(frames(HEAD_TURN)[0])
    rng = np.random.default_rng(3)
    roll = {"flicker": S.flicker(), "steps": S.steps(every_s=3.0)}.get(light, lambda f, t, present: f)
    shots = [(roll(S._noisy(portrait, rng), i / 10.0, True), i / 10.0) for i in range(int(12 * 10))]
    t = np.array([s[1] for s in shots])
    _, pres = run(shots, tree)
    assert pres[t < 3.0].min() > EMPTY   # a picture reads as a visitor at first (documented)
    assert pres[t >= 4.0 + 2.0].max() <= EMPTY


@pytest.mark.parametrize("size, path", [((70, 210), "across"), ((20, 25), "in from the edge and back")])
def test_a_picture_is_a_picture_again_soon_after_someone_passes_in_front_of_it(det, size, path):
    """A portrait in a busy room: once it is known as a picture, a visitor passing in front of it counts while
    they pass, and the room reads empty within 3 s after they have gone (not fixture_s after): a tall one
    crossing the view, or a small, distant one coming in from the frame's edge and going back (review: taken
    for the picture moving by itself, it read as a visitor fixture_s longer)."""
    tree = ParamTree.from_specs(PARAMS)
    tree.update_bases({"sensing/camera/fixture_s": 4.0})
    poster = small(frames(CLASSROOM)[0])
    rng = np.random.default_rng(3)
    fps = 10.0
    shots = [(S._noisy(poster, rng), i / fps) for i in range(int(8 * fps))]
    fw, fh = size
    for k in range(int(2 * fps)):   # a dark figure passes in front of the picture, 8..10 s
        f = poster.copy()
        if path == "across":
            x = 40 + 28 * k
        else:                        # from the right edge to the picture's middle and back
            x = 640 - int(260 * (1 - abs(k - 10) / 10))
        f[330 - fh:330, x:min(640, x + fw)] = (40, 35, 30)
        shots.append((S._noisy(f, rng), 8.0 + k / fps))
    shots += [(S._noisy(poster, rng), 10.0 + i / fps) for i in range(int(8 * fps))]
    t = np.array([s[1] for s in shots])
    _, pres = run(shots, tree)
    assert pres[(t >= 6.5) & (t < 8.0)].max() <= EMPTY      # known as a picture
    assert np.mean(pres[(t >= 8.2) & (t < 10.0)] > EMPTY) > 0.8   # the passer-by counts (not when half out)
    assert pres[t >= 10.0 + 3.0].max() <= EMPTY              # empty again within 3 s of them leaving



@pytest.mark.parametrize("fps", [10.0, 1.0])
def test_one_frame_of_flicker_on_a_known_picture_is_not_someone_there(fps):
    """Intel's one-by-one room (not in this repository) through a grey camera: 10 s after a visitor left, the
    picture of the empty room stepped on one frame and 10 pixels at the bar table's edge changed (0.4 % of its
    box), which woke the table, long known as a fixture, and the room read one person for 0.8 s.  Activity on one
    frame leaves a known picture a picture; on two frames close together it counts (someone passing in front
    of it), at a camera's full rate or at one frame a second."""
    from installation.sensing.second_opinion import DetectionTracks
    table = Detection(0.52, (0.39, 0.20, 0.71, 0.75), (0.55, 0.6), 0.2, (0.5, 0.2, 0.6, 0.3))
    tracks = DetectionTracks()
    dt = 1.0 / fps
    frames_at = np.arange(0.0, 20.0, dt)

    def step(t, active):
        tracks.merge([(t, (table,))], t, 1.0)
        tracks.activity(t, lambda b: active, 4.0)
        return bool(tracks.live())

    live = [step(t, False) for t in frames_at[frames_at < 6.0]]
    assert live[0] and not live[-1]   # a picture after fixture_s
    assert not step(6.0, True)        # one frame: its edge flickers
    assert not any(step(t, False) for t in frames_at[(frames_at > 6.0) & (frames_at < 10.0)])
    assert not step(10.0, True)
    assert step(10.0 + dt, True)      # a second frame in a row: someone in front of it
    later = [step(t, False) for t in frames_at[frames_at > 10.0 + dt]]
    assert later[0] and not later[-1]  # a picture again REFIX_S after they have gone
    # Someone in front of it who moves only now and then (every 0.6 s; every other frame at 1 fps) counts too.
    every = max(1, round(0.6 * fps)) if fps > 1 else 2
    woke = [step(20.0 + k * dt, k % every == 0) for k in range(4 * every)]
    assert woke[every] and all(woke[every:]), woke
    # A picture found on the very first frame the tracks see, where one is remembered, is not woken by it.
    fresh = DetectionTracks()
    fresh.fixtures = [table.box]
    fresh.merge([(0.0, (table,))], 0.0, 1.0)
    fresh.activity(0.0, lambda b: True, 4.0)
    assert not fresh.live()
    # Nor by two lone frames of flicker with a stall of the stream between them (review): the window is the
    # camera's usual frame time, not the gap before the frame.
    stalled = DetectionTracks()
    stalled.fixtures = [table.box]
    steady = [k * dt for k in range(int(round(10.0 / dt)))]
    resumed = steady[-1] + 30 * dt
    for t in steady + [resumed]:
        stalled.merge([(t, (table,))], t, 60.0)
        stalled.activity(t, lambda b: t in (steady[-1], resumed), 4.0)
        assert not stalled.live(), t


WORKER = MEDIA / "worker-zone-detection.gif"


def far_hall(k: float = 0.35):
    """The worker-zone hall seen from further away: ``view(frame)`` puts a frame of the clip at ``k`` of the size
    in the middle of a 640x360 picture, the empty hall mirrored round it, so the worker is a fifth of the frame
    tall, as a visitor across a large room is.  Returns ``view``, the empty hall, and the worker standing
    still near the end of the clip as a cut-out (see scenarios.cutouts)."""
    fr = frames(WORKER)
    h, w = fr[0].shape[:2]
    plate = fr[0].copy()   # the hall with nobody: the worker's place at the start from the last frame
    y0, x0, x1 = int(h * 0.42), int(w * 0.45), int(w * 0.78)
    plate[y0:, x0:x1] = fr[-1][y0:, x0:x1]
    W, H = SIZE
    sw, sh = int(W * k), int(H * k)
    top, left = (H - sh) // 2, (W - sw) // 2
    around = cv2.copyMakeBorder(cv2.resize(plate, (sw, sh), interpolation=cv2.INTER_AREA), top, H - sh - top,
                                left, W - sw - left, cv2.BORDER_REFLECT)

    def view(f):
        out = around.copy()
        out[top:top + sh, left:left + sw] = cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA)
        return out

    clip = S.Clip("worker", list(fr), 50.0 / 3.0, np.ones(len(fr), int))
    cut = S.cutouts(clip, [plate])[56]
    return view, plate, cut


def blink(f, i, x, y, size):
    """``f`` with a small screen at (x, y) that blinks white every other pair of frames."""
    if i % 4 < 2:
        f = f.copy()
        f[y:y + size, x:x + size] = 230
    return f


@pytest.mark.parametrize("screen", [None, (40, 60, 20)])
def test_a_small_still_visitor_in_view_at_start_up_reads_present_within_3_s(det, screen):
    """A worker standing still across a large hall when the camera starts (a fifth of the frame tall,
    swaying a pixel or so), then gone.  The background holds them from the first frame, and the whole frame
    is too coarse for the detector to be sure of them (about 0.45): without close-ups they read empty while
    they stand (the bug).  A close-up where their sway stirs finds them (about 0.95): present within 3 s
    (a sub-pixel sway shows on a few frames a second: 1 to 2.5 s with the eight noise seeds tried), and
    empty within 3 s of them leaving.  A screen blinking in a corner, which stirs more than they do, must
    not take every close-up (review: it did, and they read empty)."""
    view, plate, cut = far_hall()
    rng = np.random.default_rng(4)
    fps = 10.0
    shots = []
    for i in range(int(12 * fps)):
        f = view(S.paste(plate, cut, dx=int(round(3 * math.sin(i * 0.37))))) if i < 6 * fps else view(plate)
        shots.append((S._noisy(blink(f, i, *screen) if screen else f, rng), i / fps))
    t = np.array([s[1] for s in shots])
    tree = ParamTree.from_specs(PARAMS)
    tree.update_bases({"sensing/camera/detect_close_up": 0.0})
    _, before = run(shots, tree)
    assert np.mean(before[t < 6.0] > EMPTY) < 0.2, before.round(3).tolist()
    _, pres = run(shots)
    assert pres[(t >= 3.0) & (t < 6.0)].min() > EMPTY, pres.round(3).tolist()
    assert pres[t >= 9.0].max() <= EMPTY, pres.round(3).tolist()


@pytest.mark.parametrize("motion", ["beside", "once"])
def test_a_small_picture_of_a_person_found_close_up_does_not_read_as_a_visitor(det, motion):
    """The same worker as a life-size cut-out (a statue, a poster) across the hall.  Something flickering
    beside it (a screen) calls for close-ups that find the figure, but nothing moves inside its body box: it
    never counts.  Knocked once (swaying for 3 s, then still), it counts while it sways and stops counting
    within CLOSE_QUIET_S (10 s: a visitor standing still is told from a figure by time alone) and a missed
    run of it being still (a pole with a sign, found close up, was otherwise a visitor for fixture_s, five
    minutes)."""
    from installation.sensing.second_opinion import DetectionTracks
    quiet = DetectionTracks.CLOSE_QUIET_S
    view, plate, cut = far_hall()
    rng = np.random.default_rng(5)
    fps = 10.0
    shots = []
    for i in range(int((3.0 + quiet + 3.0) * fps)):
        dx = int(round(3 * math.sin(i * 0.37))) if motion == "once" and i < 3 * fps else 0
        f = view(S.paste(plate, cut, dx=dx))
        if motion == "beside":   # a small screen blinking to the figure's right
            f = blink(f, i, 316, 190, 12)
        shots.append((S._noisy(f, rng), i / fps))
    t = np.array([s[1] for s in shots])
    _, pres = run(shots)
    if motion == "beside":
        assert pres.max() <= EMPTY, pres.round(3).tolist()
    else:
        assert pres[t < 3.0].max() > EMPTY, pres.round(3).tolist()
        assert pres[t >= 3.0 + quiet + 1.5].max() <= EMPTY, pres.round(3).tolist()


def test_a_small_visitor_in_view_at_start_up_who_stops_swaying_stays_present_for_a_while(det):
    """The far hall's worker in view at start-up, swaying for 3 s, then standing still for 6 s (only sensor
    noise moves), then gone.  Found close up while they sway, they must not read empty the moment they stop: a
    real pedestrian standing across the plaza showed no motion the analysis could see for 3 s at a time, and
    with CLOSE_QUIET_S at 3 s read present on 37 % of their stand (review of session 12)."""
    view, plate, cut = far_hall()
    rng = np.random.default_rng(4)
    fps = 10.0
    shots = []
    for i in range(int(14 * fps)):
        dx = int(round(3 * math.sin(i * 0.37))) if i < 3 * fps else 0
        f = view(S.paste(plate, cut, dx=dx)) if i < 9 * fps else view(plate)
        shots.append((S._noisy(f, rng), i / fps))
    t = np.array([s[1] for s in shots])
    _, pres = run(shots)
    assert pres[(t >= 3.0) & (t < 9.0)].min() > EMPTY, pres.round(3).tolist()
    assert pres[t >= 12.0].max() <= EMPTY, pres.round(3).tolist()


def test_a_still_visitor_taller_than_a_close_up_is_one_person(det):
    """The hall nearer (the worker 0.55 of the frame tall, swaying): the whole frame finds them, and a close-up
    would cut them in half and find a part (review: counted as a second person on 34 of 80 frames).  One
    person on every frame, present throughout."""
    view, plate, cut = far_hall(0.6)
    rng = np.random.default_rng(4)
    fps = 10.0
    a = CameraAnalyzer()
    frames_ = [a.process(S._noisy(view(S.paste(plate, cut, dx=int(round(3 * math.sin(i * 0.37))))), rng), i / fps)
               for i in range(int(8 * fps))]
    assert max(len(f.people) for f in frames_) == 1, [len(f.people) for f in frames_]
    assert min(f.presence for f in frames_[10:]) > EMPTY


def test_close_up_finds_do_not_take_over_whole_frame_tracks_or_pictures():
    """Review cases on the detection tracks themselves.  A pole found close up where a passer-by's whole-frame
    track ended does not inherit it (it would count for fixture_s; close up it is a picture after
    CLOSE_QUIET_S quiet); a close-up's find with no unexplained motion in its box starts nothing; a pole taking
    over a start-up visitor's track as they walk away counts only the unsure CLOSE_UNSURE_S; a visitor found
    whole beside a known picture is not merged into the picture's track."""
    from installation.sensing.second_opinion import DetectionTracks
    box = (0.4, 0.2, 0.6, 0.8)
    passer = Detection(0.9, box, (0.5, 0.5), 0.2, (0.45, 0.2, 0.55, 0.3))
    pole = Detection(0.83, box, (0.5, 0.5), 0.2, (0.45, 0.2, 0.55, 0.3), True)
    tracks = DetectionTracks()
    tracks.merge([(0.0, (passer,))], 0.0, 1.0)
    tracks.merge([], 2.0, 1.0)   # the passer-by has gone
    tracks.merge([(2.5, (pole,))], 2.5, 1.0, admit=lambda d: False)
    assert not tracks.tracks    # no motion in its box: nothing starts
    for t in np.arange(3.0, 3.5 + DetectionTracks.CLOSE_QUIET_S + 1.0, 0.5):
        tracks.merge([(t, (pole,))], t, 1.0, admit=lambda d: True)
        tracks.activity(t, lambda b: t < 3.2, 300.0)
    assert len(tracks.tracks) == 1 and tracks.tracks[0].close and tracks.tracks[0].fixture
    assert not tracks.live() and not tracks.fixtures   # and not remembered as a picture

    # A visitor in view at start-up, found close up (0.96), walks away past a pole beside them that scores
    # 0.83 close up and takes over their track: the track counts the unsure 3 s after the last motion in its
    # box, not the 10 s a sure find keeps (an empty room must read empty within 3 s of the last visitor).
    visitor = Detection(0.96, (0.40, 0.2, 0.60, 0.8), (0.50, 0.5), 0.2, (0.45, 0.2, 0.55, 0.3), True)
    pole = Detection(0.83, (0.45, 0.2, 0.65, 0.8), (0.55, 0.5), 0.2, (0.50, 0.2, 0.60, 0.3), True)
    tracks = DetectionTracks()
    for t in np.arange(0.0, 20.0, 0.5):
        tracks.merge([(t, (visitor if t < 8.0 else pole,))], t, 1.0, admit=lambda d: True)
        tracks.activity(t, lambda b: t < 3.0 or 8.0 <= t < 9.0, 300.0)   # sways, stands still, walks out
        if t < 8.0:
            assert tracks.live(), t   # still for up to 5 s: counted
        if t >= 9.0 + DetectionTracks.CLOSE_UNSURE_S:
            assert not tracks.live(), t

    poster = Detection(0.9, (0.1, 0.2, 0.4, 0.8), (0.25, 0.5), 0.15, (0.2, 0.2, 0.3, 0.3))
    tracks = DetectionTracks()
    tracks.merge([(0.0, (poster,))], 0.0, 1.0)
    tracks.activity(0.0, lambda b: False, 4.0)
    tracks.activity(5.0, lambda b: False, 4.0)
    tracks.merge([(5.0, (poster,))], 5.0, 10.0)
    assert tracks.tracks[0].fixture
    near = Detection(0.9, (0.35, 0.2, 0.7, 0.8), (0.38, 0.5), 0.15, (0.45, 0.2, 0.6, 0.3))  # hip in the poster's box
    tracks.merge([(5.5, (near,))], 5.5, 10.0)   # the poster missed this run, a visitor beside it found
    tracks.activity(5.5, lambda b: b[0] > 0.3, 4.0)   # motion in the visitor's box only
    assert len(tracks.tracks) == 2 and len(tracks.live()) >= 1 and tracks.tracks[0].fixture


def test_a_later_visitor_where_an_earlier_one_stood_starts_afresh():
    """Ended finds are remembered briefly (so a picture found now and then keeps its still time), but a
    find at the same place minutes later is a new visitor, not an old track already past fixture_s."""
    from installation.sensing.second_opinion import DetectionTracks
    box = (0.4, 0.2, 0.6, 0.8)
    d = Detection(0.9, box, (0.5, 0.5), 0.2, (0.45, 0.2, 0.55, 0.3))
    tracks = DetectionTracks()
    for t in np.arange(0.0, 60.0, 0.5):   # a still visitor, 60 s, then gone
        tracks.merge([(t, (d,))], t, 1.0)
        tracks.activity(t, lambda b: False, 300.0)
    tracks.merge([], 62.0, 1.0)
    assert not tracks.tracks
    tracks.merge([(65.0, (d,))], 65.0, 1.0)   # found again 5 s later: the same one, 65 s still
    assert tracks.tracks[0].active == 0.0
    tracks.merge([], 70.0, 1.0)
    tracks.merge([(400.0, (d,))], 400.0, 1.0)   # minutes later: someone new
    tracks.activity(400.0, lambda b: False, 300.0)
    assert tracks.tracks[0].active == 400.0 and not tracks.tracks[0].fixture


def test_without_the_detector_runtime_the_camera_works_and_warns_once(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # `import ai_edge_litert...` raises ImportError
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    clip = S.load_clip(WALK)
    view, _ = S.empty_view(clip)
    sc = S.Scenario("visit", WALK_FPS, [S.empty_segment(view, 3.0), S.clip_segment(clip, reverse=True),
                                        S.empty_segment(view, 4.0)], seed=2)
    with caplog.at_level(logging.WARNING):
        a, pres = run([(f, t) for f, t, _ in S.play(sc)])
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "ai-edge-litert" in warnings[0].getMessage(), warnings
    assert a.opinion is None
    assert pres.max() > EMPTY  # the walk-in still reads present by background subtraction
    assert pres[-int(2 * WALK_FPS):].max() <= EMPTY


def test_live_capture_gets_detections_from_the_detector_thread(det):
    """The threaded variant (SensorHub's): results arrive back on later frames; close() ends the thread."""
    a = CameraAnalyzer(opinion="thread")
    clip = [small(f) for f in frames(CLASSROOM)]
    pres = 0.0
    for k in range(400):  # the detector's thread answers within a few frames; bounded so a hang fails
        pres = a.process(clip[k % len(clip)], k / 20.0).presence
        if pres > EMPTY:
            break
        time.sleep(0.01)
    assert pres > EMPTY
    import threading
    th = [t for t in threading.enumerate() if t.name == "camera-detector"]
    a.close()
    assert th and not any(t.is_alive() for t in th)


def test_close_ups_asked_for_on_a_frame_the_detector_thread_never_took_are_still_looked_at():
    """Live, the detector's thread may still be busy when the next frame is due; the newer frame replaces the
    waiting one.  The analyzer marked the waiting frame's close-ups as looked at (no new look there for 5 s),
    so dropping them would leave a still visitor at start-up unseen for seconds more (review): the newer
    frame carries them, with its own first and none twice."""
    import threading
    from installation.sensing.second_opinion import _DetectorSlot
    gate, taken = threading.Event(), []

    def busy(item):
        taken.append(item)
        gate.wait(5)

    slot = _DetectorSlot(busy)
    f = np.zeros((360, 640, 3), np.uint8)
    here, there = ((0, 100, 144, 244), 0.8), ((400, 50, 544, 194), 0.8)
    slot.put((f, 0.0, ()))
    for _ in range(500):   # the thread takes the first frame and stays busy with it
        if taken:
            break
        time.sleep(0.01)
    slot.put((f, 0.5, (here, ((398, 50, 542, 194), 0.8))))   # the second: nearly where `there` is
    slot.put((f, 1.0, (there,)))
    gate.set()
    for _ in range(500):
        if len(taken) == 2:
            break
        time.sleep(0.01)
    slot.stop()
    assert [it[1] for it in taken] == [0.0, 1.0]
    assert taken[1][2] == (there, here)


def test_a_walker_found_a_step_on_each_run_is_one_detection_not_a_trail():
    """The detector runs twice a second; a walker's box moves more than its own overlap between runs, and each
    box used to live ``detect_hold_s`` where it was found, away from the walker's blob by then: one walker read
    two or three people (plaza clips: people over the true count on up to 10 % of present frames).  A find a
    body width or less from a track not seen in its run is that track moved.  Two people found side by side in
    the same run stay two."""
    from installation.sensing.second_opinion import DetectionTracks

    def find(x, score=0.9):
        return Detection(score, (x - 0.06, 0.3, x + 0.06, 0.7), (x, 0.5), 0.06, (x - 0.02, 0.3, x + 0.02, 0.34))

    tracks = DetectionTracks()
    for k in range(8):
        t = 0.5 * k
        tracks.merge([(t, (find(0.2 + 0.08 * k),))], t, 1.0)
        tracks.activity(t, lambda b: True, 300.0)
        assert len(tracks.live()) == 1, (t, tracks.live())
    assert tracks.live()[0].born == 0.0   # one track all along, its history kept

    tracks = DetectionTracks()
    for k in range(4):
        t = 0.5 * k
        tracks.merge([(t, (find(0.3), find(0.42)))], t, 1.0)
        tracks.activity(t, lambda b: True, 300.0)
    assert len(tracks.live()) == 2

    # A passer-by walks past a poster the tracks remember as a picture; one run misses the passer-by and finds
    # the poster a step on from them: the poster is a picture again, not the passer-by moved (which would
    # count it as a visitor for fixture_s).
    poster = find(0.6)
    tracks = DetectionTracks()
    tracks.merge([(0.0, (poster,))], 0.0, 1.0)
    tracks.activity(0.0, lambda b: False, 4.0)
    tracks.activity(5.0, lambda b: False, 4.0)     # quiet for fixture_s: a picture
    assert tracks.fixtures
    tracks.merge([], 7.0, 1.0)                     # and not found for a while (the light, a missed run)
    tracks.merge([(7.5, (find(0.5),))], 7.5, 1.0)    # the passer-by, a step from the poster
    tracks.activity(7.5, lambda b: True, 4.0)
    tracks.merge([(8.0, (find(0.6),))], 8.0, 1.0)    # the passer-by missed, the poster found
    tracks.activity(8.0, lambda b: b[0] < 0.5, 4.0)  # the passer-by moves on, out of the poster's box
    assert [tk.box for tk in tracks.live()] == [find(0.5).box], tracks.tracks


def test_a_table_the_detector_scores_as_a_person_is_not_a_visitor():
    """Issue 13's own kind of footage (a room, visitors one at a time, a bar table in the middle; the Intel
    sample 'one-by-one-person-detection', not in this repository): under a dim light the detector scores the
    table 0.50-0.53.  In an empty room at start-up it counts only until CLOSE_QUIET_S has passed with nothing
    moving there; found again as a visitor in front of it walks away, where the background has long held
    the table, it is the room from the start (before: a visitor for fixture_s, 300 s after every exit), and a
    leaving visitor's track that continues onto it stops counting too.  A still visitor in view at start-up
    (the background only just learnt) still counts."""
    from installation.sensing.second_opinion import DetectionTracks
    table = Detection(0.52, (0.44, 0.43, 0.70, 0.90), (0.57, 0.7), 0.2, (0.5, 0.43, 0.6, 0.5))
    visitor = Detection(0.97, (0.34, 0.10, 0.80, 0.90), (0.57, 0.6), 0.3, (0.5, 0.1, 0.62, 0.2))
    quiet = DetectionTracks.CLOSE_QUIET_S
    held_since = 0.0   # the background under the table has held since the camera started

    def settled(box, since):   # camera.py's _settled for an empty room: no foreground, nothing moving
        return held_since <= since - 10.0

    tracks = DetectionTracks()
    for t in np.arange(1.0, 1.0 + quiet + 1.0, 0.5):   # start-up, empty room
        tracks.merge([(t, (table,))], t, 1.0, settled=settled)
        tracks.activity(t, lambda b: False, 300.0)
        assert bool(tracks.live()) == (t - 1.0 < quiet), t
    # A start-up visitor who sways now and then is not taken for the table.
    sway = DetectionTracks()
    for t in np.arange(1.0, 40.0, 0.5):
        sway.merge([(t, (visitor,))], t, 1.0, settled=settled)
        sway.activity(t, lambda b: t % 8.0 < 0.5, 300.0)
        assert sway.live(), t

    fresh = DetectionTracks()   # a visitor walks in at 30 s (foreground: not settled) and leaves at 50 s
    for t in np.arange(30.0, 50.0, 0.5):
        fresh.merge([(t, (visitor,))], t, 1.0, settled=lambda box, since: False)
        fresh.activity(t, lambda b: True, 300.0)
    fresh.merge([(51.0, (table,))], 51.0, 1.0, settled=settled)   # the table, seen again as they go
    fresh.activity(51.0, lambda b: False, 300.0)
    assert not fresh.live(), [(tk.box, tk.fixture) for tk in fresh.tracks]
    later = DetectionTracks()   # the table found afresh, long after start-up: the room at once
    later.merge([(60.0, (table,))], 60.0, 1.0, settled=settled)
    later.activity(60.0, lambda b: False, 300.0)
    assert not later.live() and later.fixtures
    # Where the background took something in lately (a still visitor sunk by a lamp step), a find counts.
    held_since = 55.0
    again = DetectionTracks()
    again.merge([(60.0, (visitor,))], 60.0, 1.0, settled=settled)
    again.activity(60.0, lambda b: False, 300.0)
    assert again.live()


def test_a_find_on_a_picture_the_detector_already_saw_empty_is_not_a_visitor():
    """A score on the edge: Intel's one-by-one room (not in this repository) with a camera's on-screen clock
    burnt in has its bar table scored 0.50 from 2.5 s on, 0.49 before.  The detector had already looked at the
    same unchanged picture (three runs and more) and found nobody, so the find is the room from the start;
    before, the empty room read one person from that run until CLOSE_QUIET_S (10 s) later.  A visitor who
    walks in, and whom the detector finds only once they stand, counts: they are foreground, not the picture
    the earlier runs saw."""
    view, cut, box = _walk_in_visitor()
    table = Detection(0.5, (0.62, 0.45, 0.86, 0.95), (0.74, 0.7), 0.2, (0.7, 0.45, 0.78, 0.52))
    find = Detection(0.5, box, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), 0.1, box)

    def finds(t):
        return ([table] if t >= 2.5 else []) + ([find] if t >= 16.0 else [])

    a = CameraAnalyzer(opinion=Scripted(finds))
    for i in range(int(20.0 * WALK_FPS)):
        t = i / WALK_FPS
        there = t >= 14.0   # walks in at 14 s (a cut), stands; found from 16 s
        f = S.paste(view[i % len(view)], cut, dx=int(round(math.sin(i * 0.37)))) if there else view[i % len(view)]
        r = a.process(small(f), t)
        if not there:
            assert r.presence <= EMPTY and not r.people, f"t={t:.2f}: the empty room reads {r.presence:.2f}"
        elif t >= 15.0:
            assert r.presence > EMPTY, f"t={t:.2f}: the visitor read empty"
        if t >= 16.5:
            assert [tk.box for tk in a._dets.live()] == [box], "the visitor's detection was taken for the room"
    assert [tk.box for tk in a._dets.tracks if tk.fixture] == [table.box]


def test_a_still_visitor_in_view_at_start_up_whom_only_the_first_run_missed_counts():
    """Seated in view when the camera starts, still but for a small sway every 8 s, the detector the only
    evidence (the background holds them): scored 0.49 on the first run and 0.6 after.  One miss is not the
    detector having seen the picture empty (MISSED_RUNS): they count from the second run on.  With the rule
    after a single miss they read empty from 1 s on 71 % of the frames (a review's experiment)."""
    view, cut, box = _walk_in_visitor()
    find = Detection(0.6, box, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), 0.1, box)
    a = CameraAnalyzer(opinion=Scripted(lambda t: [] if t < 0.25 else [find]))
    for i in range(int(30.0 * WALK_FPS)):
        t = i / WALK_FPS
        dx = int(round(4 * math.sin(i * 0.9))) if t % 8.0 > 7.5 else 0
        r = a.process(small(S.paste(view[0], cut, dx=dx)), t)
        if t >= 1.0:
            assert r.presence > EMPTY, f"t={t:.2f}: the seated visitor read empty"


def test_only_a_find_on_a_picture_three_runs_saw_empty_and_unchanged_is_taken_for_the_room():
    """The rule's conditions one by one, at the tracks' level: three runs in a row that found nobody there,
    nothing changed since the first of them, an unsure whole-frame find.  A track that ended and is found
    again there is held to the same rule (a leaving visitor's track brought back by the table)."""
    from installation.sensing.second_opinion import DetectionTracks
    table = Detection(0.5, (0.44, 0.43, 0.70, 0.90), (0.57, 0.7), 0.2, (0.5, 0.43, 0.6, 0.5))
    sure = Detection(0.95, table.box, table.hip, 0.2, table.face)
    close = Detection(0.5, table.box, table.hip, 0.2, table.face, close=True)

    def run(misses, d, unchanged):
        tracks = DetectionTracks()
        for k in range(misses):
            tracks.merge([(0.5 * k, ())], 0.5 * k, 1.0, unchanged=unchanged)
        tracks.merge([(0.5 * misses, (d,))], 0.5 * misses, 1.0, unchanged=unchanged)
        return tracks

    def still(box, since):
        return True

    room = run(3, table, still)
    assert not room.live() and room.fixtures == [table.box]
    assert run(2, table, still).live()                            # two misses: not yet seen empty
    assert run(3, table, lambda box, since: False).live()         # something moved or came into view since
    assert run(3, sure, still).live()                              # a sure find counts
    assert run(3, close, still).live()                             # a close-up's find: the other rules'
    assert run(3, table, lambda box, since: since == 0.0).fixtures   # unchanged since the first of the three
    # A visitor's track that ended (unseen for hold_s) is found again on the unchanged picture the last three
    # runs saw empty: the table where they stood.
    visitor = Detection(0.87, (0.40, 0.40, 0.72, 0.95), (0.56, 0.7), 0.2, (0.5, 0.4, 0.6, 0.5))
    back = DetectionTracks()
    back.merge([(0.0, (visitor,))], 0.0, 1.0, unchanged=still)
    for k in range(1, 6):
        back.merge([(0.5 * k, ())], 0.5 * k, 1.0, unchanged=still)
    back.merge([(3.0, (table,))], 3.0, 1.0, unchanged=still)
    assert not back.live(), [(tk.box, tk.fixture) for tk in back.tracks]
