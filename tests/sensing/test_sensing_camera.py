"""Camera analysis on real footage: presence, motion, people, robustness to light, ROI."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from installation.params import ParamTree
from installation.sensing import PARAMS
from installation.sensing.camera import CameraAnalyzer, homography, parse_roi, set_roi
from sensing_media import CLASSROOM, CLASSROOM_FPS, WALK, WALK_FPS, frames


def quick_tree() -> ParamTree:
    """The sensing defaults in a tree of the test's own."""
    return ParamTree.from_specs(PARAMS)


def _empty_room(a: CameraAnalyzer, seconds: float, gain=lambda t: 1.0) -> tuple[float, list]:
    """Feed the empty tail of the walk-in clip (it ends on an empty room) for ``seconds``; returns t and records.

    Played back and forth, so the loop has no seam (a jump the model would rightly call motion).
    """
    tail = frames(WALK)[14:]
    empty = tail + tail[-2:0:-1]
    recs, k = [], 0
    while k / WALK_FPS < seconds:
        t = k / WALK_FPS
        f = empty[k % len(empty)]
        g = gain(t)
        if g != 1.0:
            f = cv2.convertScaleAbs(f, alpha=g)
        recs.append(a.process(f, t))
        k += 1
    return k / WALK_FPS, recs


def _walk_in(a: CameraAnalyzer, t0: float) -> list:
    """The clip backwards: people walk in through the door at the far left (it was filmed as them leaving)."""
    return [a.process(f, t0 + i / WALK_FPS) for i, f in enumerate(reversed(frames(WALK)))]


def test_presence_rises_when_people_walk_in():
    a = CameraAnalyzer()
    t, empty = _empty_room(a, 60.0)
    base = max(r.presence for r in empty[-100:])
    walk = _walk_in(a, t)
    end = walk[-1]
    assert end.presence > max(0.01, 3 * base), (base, [round(r.presence, 4) for r in walk])
    assert max(r.motion for r in walk) > 5 * max(r.motion for r in empty[-100:])
    # The newcomers are at the left of the picture, near the door.
    assert end.people and min(p.x for p in end.people) < 0.25
    assert all(0 <= p.x <= 1 and 0 <= p.y <= 1 and p.size > 0 for p in end.people)


def test_visitor_standing_still_for_a_minute_is_not_absorbed():
    a = CameraAnalyzer(quick_tree())
    t, _ = _empty_room(a, 20.0)
    walk = _walk_in(a, t)
    arrived = walk[-1].presence
    still = frames(WALK)[0]  # the visitors at the door, now standing still
    t = walk[-1].t
    recs = [a.process(still, t + (i + 1) / WALK_FPS) for i in range(int(60 * WALK_FPS))]
    assert recs[-1].presence > 0.8 * arrived, (arrived, recs[-1].presence)
    assert recs[-1].motion < 0.2 * recs[-1].presence  # still: presence without motion
    assert len(recs[-1].people) >= 1


def test_seated_class_in_view_at_start_up_is_not_a_crowd_of_ghosts():
    """A class already seated when the camera starts is part of the first background (a known limit, see
    docs/sensing.md): what must not happen is the looping seam and fidgets turning into many false people."""
    a = CameraAnalyzer()
    clip = frames(CLASSROOM)
    k, counts = 0, []
    for _ in range(10):
        for f in clip:
            r = a.process(f, k / CLASSROOM_FPS)
            counts.append(len(r.people))
            k += 1
    assert np.mean(counts[len(clip):]) < 3.0
    assert r.motion < 0.05


@pytest.mark.parametrize("kind", ["exposure step", "slow light change"])
def test_empty_room_stays_empty_through_light_changes(kind):
    a = CameraAnalyzer(quick_tree())
    t, recs = _empty_room(a, 20.0)
    base = float(np.mean([r.presence for r in recs[-50:]]))
    if kind == "exposure step":
        gain = lambda s: 1.0 if s < 25.0 else 0.7  # auto-exposure darkens the picture by 30 %
    else:
        gain = lambda s: 1.0 - 0.35 * min(1.0, max(0.0, (s - 20.0) / 60.0))  # daylight fading by a third in a minute
    _, after = _empty_room(_Continue(a, t), 70.0, gain=lambda s: gain(s + t))
    worst = max(r.presence for r in after)
    assert worst < base + 0.01, (base, worst)


class _Continue:
    """Feeds an analyzer with times shifted by ``t0`` (continues a sequence)."""

    def __init__(self, a, t0):
        self.a, self.t0 = a, t0

    def process(self, f, t):
        return self.a.process(f, t + self.t0)


def test_roi_maps_people_into_canvas_coordinates():
    tree = quick_tree()
    full_tree = quick_tree()
    for tr in (tree, full_tree):
        tr.set_base("sensing/camera/person_floor", 0.0)  # compare the occupied share itself
    a_full = CameraAnalyzer(full_tree)
    a_left = CameraAnalyzer(tree)
    set_roi(tree, "0,0, 0.5,0, 0.5,1, 0,1")  # the canvas is the left half of the picture
    for a in (a_full, a_left):
        t, _ = _empty_room(a, 15.0)
        end = _walk_in(a, t)[-1]
        a.end = end
    pf, pl = a_full.end.people[0], a_left.end.people[0]
    assert pl.x == pytest.approx(2 * pf.x, abs=0.02)
    assert pl.y == pytest.approx(pf.y, abs=0.02)
    # Presence is the share of the ROI, which is half the picture.
    assert a_left.end.presence == pytest.approx(2 * a_full.end.presence, rel=0.15)


def test_homography_maps_corners_and_refuses_degenerate_quads():
    pts = ((0.1, 0.2), (0.9, 0.1), (1.0, 0.9), (0.0, 1.0))
    H = homography(pts)
    for (u, v), (x, y) in zip(pts, ((0, 0), (1, 0), (1, 1), (0, 1))):
        p = H @ np.array([u, v, 1.0])
        assert (p[0] / p[2], p[1] / p[2]) == pytest.approx((x, y), abs=1e-6)
    with pytest.raises(ValueError, match="degenerate"):
        parse_roi("0,0,1,0,1,0,0,0")
    with pytest.raises(ValueError, match="8"):
        parse_roi("0,0,1,0")
    with pytest.raises(ValueError, match="8 numbers"):
        parse_roi("a,b,c,d,e,f,g,h")


def test_analysis_is_deterministic_and_frame_size_independent_of_input_scale():
    clip = frames(WALK)
    runs = []
    for _ in range(2):
        a = CameraAnalyzer()
        runs.append([a.process(f, i / WALK_FPS) for i, f in enumerate(clip)])
    assert runs[0] == runs[1]
    # Upscaled footage (a 1280x720 camera) gives nearly the same measurements.
    a = CameraAnalyzer()
    big = [a.process(cv2.resize(f, (1280, 720)), i / WALK_FPS) for i, f in enumerate(clip)]
    for r1, r2 in zip(runs[0], big):
        assert r2.presence == pytest.approx(r1.presence, abs=0.01)


@pytest.mark.parametrize("channels", ["bgra", "one channel", "three equal channels"])
def test_frames_with_alpha_or_one_channel_are_read_like_colour_or_grey(channels):
    """A capture backend delivering BGRA (or single-channel frames of shape (h, w, 1), or an infrared camera's
    three equal channels): the same readings as its BGR (or grey) frames, people walking in included, not a
    crash of the camera thread (nor colour's cost paid for no colour)."""
    conv = {"bgra": lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2BGRA),
            "one channel": lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)[..., None],
            "three equal channels": lambda f: cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY),
                                                           cv2.COLOR_GRAY2BGR)}[channels]
    plain = {"bgra": lambda f: f}.get(channels, lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
    shots = [(f, i / WALK_FPS) for i, f in enumerate(list(frames(WALK)[14:]) + list(reversed(frames(WALK))))]
    a, b = CameraAnalyzer(opinion=None), CameraAnalyzer(opinion=None)
    got = [a.process(conv(f), t).presence for f, t in shots]
    want = [b.process(plain(f), t).presence for f, t in shots]
    assert got == want
    assert got[-1] > 0.05


@pytest.mark.parametrize("event", ["black frames", "colour off and on"])
def test_a_still_visitor_survives_black_frames_and_colour_toggled_live(event):
    """People walk in and stand; then half a second of pure black frames (a blackout cue, a lens cap: they
    have no colour), or an operator turns colour off and on again.  The colour background must not restart
    from a frame showing the visitors and then take them for the room: before, they read empty for good."""
    tree = quick_tree()
    a = CameraAnalyzer(tree, opinion=None)
    t, _ = _empty_room(a, 20.0)
    walk = frames(WALK)
    _walk_in(a, t)
    t += len(walk) / WALK_FPS
    still = walk[0]
    pres = []
    for i in range(int(13 * WALK_FPS)):
        ti = t + i / WALK_FPS
        f = still
        if 5 * WALK_FPS <= i < 5.5 * WALK_FPS and event == "black frames":
            f = np.zeros_like(still)
        if event == "colour off and on":
            tree.set_base("sensing/camera/chroma_threshold", 0.0 if 5 * WALK_FPS <= i < 6 * WALK_FPS else 24.0)
        r = a.process(f, ti)
        if i >= 7 * WALK_FPS:
            pres.append(r.presence)
    assert min(pres) > 0.05, np.round(pres, 3).tolist()


def test_a_box_partly_outside_the_frame_is_clipped_not_wrapped():
    """Boxes move with a knocked view and may leave the frame: a slice from a negative start would come out empty."""
    from installation.sensing.camera import _box_px
    assert _box_px((-0.02, 0.2, 0.06, 0.6), 90, 160) == (0, 18, 10, 54)
    assert _box_px((0.9, 0.5, 1.2, 1.1), 90, 160) == (144, 45, 160, 90)


def test_colour_is_told_from_a_grey_camera_whatever_the_frame_holds():
    """A grey camera's frames (equal channels, or a codec's rounding a few levels off) are grey; a colour room
    is colour; odd frames (empty, one channel, float, bool) give an answer, not an exception."""
    from installation.sensing.camera import has_colour
    rng = np.random.default_rng(3)
    grey = np.repeat(rng.integers(0, 256, (90, 160, 1), dtype=np.uint8), 3, axis=2)
    assert not has_colour(grey)
    off = rng.integers(-3, 4, grey.shape)
    off[..., 1] = 0   # blue and red up to 3 levels from green (an MPEG-4 grey clip's chroma rounding)
    rounding = np.clip(grey.astype(np.int16) + off, 0, 255).astype(np.uint8)
    assert not has_colour(rounding)
    tinted = grey.copy()
    tinted[:20, :, 2] = np.clip(tinted[:20, :, 2].astype(int) + 30, 0, 255)
    assert has_colour(tinted)
    for odd in (np.zeros((0, 0, 3), np.uint8), grey[..., 0], grey.astype(bool), grey.astype(np.float32),
                tinted.astype(np.float64), np.dstack([tinted, grey[..., :1]])):
        assert has_colour(odd) in (True, False)
    assert has_colour(tinted.astype(np.float64)) and has_colour(np.dstack([tinted, grey[..., :1]]))
