"""Presence as a person standing in the room sees it, on scenarios built from real frames.

Each test is something a visitor or technician notices: the room reads empty
soon after the last visitor leaves, whatever came before (light steps, a
visitor in view at start-up, a long crowd); a visitor who walks in reads
present at once; a still, seated audience stays present for ten minutes and
is gone soon after leaving; a light change leaves an empty room empty.  The
analyser before issue 13 failed all but the entry test (it latched onto a
wrong background for ten minutes).
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np
import pytest

from installation.sensing import scenarios as S
from installation.sensing.camera import CameraAnalyzer
from sensing_media import CLASSROOM, MEDIA, WALK, need

EMPTY = S.EMPTY_MAX


@pytest.fixture(scope="module")
def walk():
    """The walk-in clip, its real empty frames and people cut from its present frames."""
    clip = S.load_clip(need(WALK))
    view, _ = S.empty_view(clip)
    return clip, view, S.cutouts(clip, view)


def slow_camera_tree():
    """Defaults, but the person detector at 0.25 Hz: these scenarios run a 1-4 fps camera over many minutes,
    where the default 2 Hz would run the detector on every frame (~30 s of test); it stays in the loop."""
    from installation.params import ParamTree
    from installation.sensing import PARAMS
    tree = ParamTree.from_specs(PARAMS)
    tree.update_bases({"sensing/camera/detect_hz": 0.25})
    return tree


def readings(sc: S.Scenario, tree=None):
    """Run a fresh analyser over a scenario: presence, people counts, labels per frame."""
    a = CameraAnalyzer(tree)
    pres, cnt, labs = [], [], []
    for f, t, lab in S.play(sc):
        r = a.process(f, t)
        pres.append(r.presence)
        cnt.append(len(r.people))
        labs.append(lab)
    return np.array(pres), np.array(cnt), np.array(labs)


def visits(walk, light=None, seed=0) -> S.Scenario:
    clip, view, cuts = walk
    segs = [S.empty_segment(view, 6.0)]
    for _ in range(2):
        segs += [S.clip_segment(clip, reverse=True), S.person_segment(view, cuts[0], 6.0), S.clip_segment(clip),
                 S.empty_segment(view, 10.0)]
    return S.Scenario("visits", clip.fps, segs, light=light, seed=seed)


@pytest.mark.parametrize("light", ["as shot", "drift", "steps", "flicker", "fine flicker", "own light"])
def test_room_reads_empty_within_3s_of_every_exit_and_present_within_1s_of_every_entry(walk, light):
    """Flicker: mains banding on a rolling shutter (before the row correction the noise estimate took the
    bands for noise, raised the threshold and lost the still visitor: AUC 0.74 for 3 bands of 6 %, 0.58
    for 12 of 9 %)."""
    lf = {"as shot": None, "drift": S.drift(period_s=70.0), "steps": S.steps(), "flicker": S.flicker(),
          "fine flicker": S.flicker(amp=0.09, bands=12), "own light": S.own_light()}[light]
    sc = visits(walk, lf, seed=4)
    pres, cnt, labs = readings(sc)
    r = S.score(pres, cnt, labs, sc.fps, 0.0)
    assert len(r.to_empty) == 2 and len(r.to_present) == 2
    assert max(r.to_empty) <= 3.0, r.to_empty
    assert max(r.to_present) <= 1.0, r.to_present
    assert r.auc >= (0.99 if light == "as shot" else 0.95), r.auc
    assert r.false_people_per_min <= 2.0


@pytest.mark.parametrize("bgr", [(30, 40, 255), (90, 90, 250)])
def test_a_saturated_coat_whose_red_clips_is_not_taken_for_a_clipped_wall(walk, bgr):
    """A red coat's red channel at 255 (grey about 100) on the palest wall of the walk-in room: the clipped-wall
    rule once took any pixel with a channel at 250 for the wall and dropped the whole coat (0 % foreground)."""
    clip, view, _ = walk
    f0 = view[0]
    h, w = f0.shape[:2]
    grey = cv2.cvtColor(f0, cv2.COLOR_BGR2GRAY).astype(np.float32)
    bw, bh = int(0.12 * w), int(0.45 * h)
    sums = cv2.blur(grey, (bw, bh))[bh // 2:h - bh // 2, bw // 2:w - bw // 2]
    y0, x0 = np.unravel_index(int(np.argmax(sums)), sums.shape)
    rng = np.random.default_rng(1)
    a = CameraAnalyzer()
    shares, pres = [], []
    for i in range(60):
        t = i / clip.fps
        f = view[i % len(view)].copy()
        if t >= 2.0:
            block = np.clip(np.array(bgr, np.float32) + rng.normal(0, 6, (bh, bw, 1)), 0, 255)
            block[..., 2] = np.maximum(block[..., 2], bgr[2])  # the clipped channel stays clipped
            f[y0:y0 + bh, x0:x0 + bw] = block.astype(np.uint8)
        r = a.process(f, t)
        if t >= 2.0:
            fg = a.debug["fg"]
            sy = slice(int(y0 * fg.shape[0] / h) + 1, int((y0 + bh) * fg.shape[0] / h) - 1)
            sx = slice(int(x0 * fg.shape[1] / w) + 1, int((x0 + bw) * fg.shape[1] / w) - 1)
            shares.append(float(fg[sy, sx].mean()))
            pres.append(r.presence)
    assert min(shares) > 0.9, min(shares)
    assert min(pres) > EMPTY


@pytest.mark.parametrize("light", ["auto-exposure x2.5", "steps and auto-exposure x2"])
def test_a_white_room_the_auto_exposure_clips_reads_empty_after_the_visitor_leaves(walk, light):
    """A dark coat in view makes the camera brighten the frame until the pale room clips (x2.5: 87 % of the
    walk-in room at 255).  A clipped wall keeps its brightness, not the light's: before clipped pixels were
    taken as lower bounds, the cells they filled read a smaller step than the rest, and the wall's edges
    (a window, a pillar) stayed foreground after the visitor left: never empty again, AUC 0.59-0.66."""
    lf = {"auto-exposure x2.5": S.steps(every_s=1e9, person_gain=2.5),
          "steps and auto-exposure x2": S.steps(person_gain=2.0)}[light]
    sc = visits(walk, lf, seed=4)
    pres, cnt, labs = readings(sc)
    r = S.score(pres, cnt, labs, sc.fps, 0.0)
    assert max(r.to_empty) <= 3.0, r.to_empty
    assert max(r.to_present) <= 1.0, r.to_present
    assert r.auc >= 0.95, r.auc


def test_a_camera_knocked_while_a_visitor_stands_keeps_them_and_empties_after(walk):
    """Knocked on its mount during each visit (the view moves by 2.5 % of the frame, then back 1.5 %): before
    the background moved with the view, every edge of the room stood out as people and no exit read empty
    again (44 false people a minute on the bench)."""
    sc = visits(walk)
    t, held = 0.0, []
    for sg in sc.segments:
        if sg.name == "person":
            held.append(t + sg.seconds / 2)
        t += sg.seconds
    sc.light = S.knock(held, [(-0.025, 0.012), (-0.01, -0.008)])
    pres, cnt, labs = readings(sc)
    r = S.score(pres, cnt, labs, sc.fps, 0.0)
    assert max(r.to_empty) <= 3.0, r.to_empty
    assert r.auc >= 0.95, r.auc
    assert r.false_people_per_min <= 2.0


def test_a_camera_knocked_in_the_empty_room_reads_empty_again_at_once(walk):
    clip, view, _ = walk
    sc = S.Scenario("knock", clip.fps, [S.empty_segment(view, 20.0)], light=S.knock([8.0], [(0.02, 0.012)]), seed=7)
    pres, cnt, _ = readings(sc)
    t = np.arange(len(pres)) / sc.fps
    assert pres[t < 8.0].max() <= EMPTY
    late = t >= 8.0 + 0.5  # the knock's own frames read as motion everywhere until it is measured
    assert pres[late].max() <= EMPTY, (pres[late].max(), t[late][pres[late].argmax()])
    assert cnt[late].max() == 0


@pytest.mark.parametrize("turn", [3.0, -5.0])
def test_a_camera_rolled_on_its_mount_reads_empty_again_within_a_second(walk, turn):
    """A roll about the lens slides nothing that phase correlation sees: before the ECC fit, the empty room
    rolled 3-6 degrees read 0.48-0.64 for as long as it was watched (until absorb_s, an hour)."""
    clip, view, _ = walk
    light = S.knock([8.0], [(0.0, 0.0)], margin=0.1, turns=[turn])
    sc = S.Scenario("roll", clip.fps, [S.empty_segment(view, 20.0)], light=light, seed=7)
    pres, cnt, _ = readings(sc)
    t = np.arange(len(pres)) / sc.fps
    assert pres[t < 8.0].max() <= EMPTY
    late = t >= 8.0 + 1.5
    assert pres[late].max() <= EMPTY, (pres[late].max(), t[late][pres[late].argmax()])
    assert cnt[late].max() == 0


@pytest.mark.parametrize("name", ["face-demographics-walking.gif", "face-demographics-walking-and-pause.gif"])
def test_people_filling_the_frame_are_not_taken_for_a_knocked_camera(name, caplog):
    """Two and three people walking up to the camera fill much of the frame; the view does not move, so the
    background must not (the phase correlation finds shifts of up to 2.9 px there, weak and inconsistent)."""
    clip = S.load_clip(need(MEDIA / name))
    a = CameraAnalyzer()
    with caplog.at_level(logging.INFO, logger="installation.sensing.camera"):
        for i, f in enumerate(clip.frames):
            a.process(f, i / clip.fps)
    assert not [r for r in caplog.records if "view moved" in r.getMessage()]


def test_visitor_in_view_at_start_up_leaves_an_empty_room(walk):
    clip, view, cuts = walk
    sc = S.Scenario("start-up", clip.fps, [S.person_segment(view, cuts[len(cuts) // 2], 4.0),
                                           S.empty_segment(view, 20.0)], seed=5)
    pres, cnt, _ = readings(sc)
    t = np.arange(len(pres)) / sc.fps
    after = t >= 4.0 + 3.0
    assert pres[after].max() <= EMPTY, pres[after].max()
    assert cnt[after].max() == 0


def test_seated_audience_stays_present_ten_minutes_and_is_gone_within_3s_of_leaving(walk):
    clip, view, cuts = walk
    fps = 4.0  # a slow camera keeps ten minutes quick to analyse; the model works in seconds, not frames
    seated = max(cuts, key=lambda c: float(c[1].sum()))
    sc = S.Scenario("seated", fps, [S.empty_segment(view, 5.0), S.person_segment(view, seated, 600.0, sway_px=1.0),
                                    S.empty_segment(view, 15.0)], seed=6)
    pres, cnt, labs = readings(sc, slow_camera_tree())
    t = np.arange(len(pres)) / fps
    seated_t = (t >= 6.0) & (t < 605.0)
    assert pres[seated_t].min() > EMPTY, (pres[seated_t].min(), t[seated_t][pres[seated_t].argmin()])
    assert cnt[seated_t].min() >= 1
    gone = t >= 605.0 + 3.0
    assert pres[gone].max() <= EMPTY, pres[gone].max()


@pytest.mark.parametrize("kind", ["exposure steps", "lamp at one side", "daylight drift"])
def test_light_change_leaves_an_empty_room_empty(walk, kind):
    clip, view, _ = walk
    light = {"exposure steps": S.steps(every_s=5.0), "daylight drift": S.drift(period_s=30.0, lo=0.5, hi=1.3),
             "lamp at one side": S.steps(every_s=4.0)}[kind]
    sc = S.Scenario(kind, clip.fps, [S.empty_segment(view, 40.0)], light=light, seed=7)
    pres, cnt, _ = readings(sc)
    assert pres.max() <= EMPTY, (kind, pres.max(), int(pres.argmax()) / sc.fps)
    assert cnt.sum() == 0


# Hard-edged spots (positions and sizes as fractions of the 480x270 frame) that the analyser before the
# inside-correlation rule held as a person for as long as they shone: white on the wall and the floor, a gel.
SPOTS = {
    "white spot on the wall": (285 / 480, 39 / 270, 21 / 480, (1.82, 1.82, 1.82)),
    "white spot on the floor": (390 / 480, 169 / 270, 25 / 480, (1.83, 1.83, 1.83)),
    "dim white pool on the floor": (291 / 480, 197 / 270, 41 / 480, (1.57, 1.57, 1.57)),
    "magenta gel on the wall": (330 / 480, 78 / 270, 28 / 480, (1.29, 0.80, 1.13)),
}


@pytest.mark.parametrize("name", list(SPOTS))
def test_a_hard_edged_spot_left_on_leaves_an_empty_room_empty(walk, name):
    """A spot or projector cue switched on in the empty room and left on: at most a moment (settle_s and
    the sinking) reads present, then the room is empty for as long as it shines."""
    clip, view, _ = walk
    cx, cy, r, bgr = SPOTS[name]
    sc = S.Scenario(name, clip.fps, [S.empty_segment(view, 20.0)], light=S.spot(cx, cy, r, bgr, on_s=2.0), seed=3)
    pres, _, _ = readings(sc)
    t = np.arange(len(pres)) / sc.fps
    assert pres[t < 2.0].max() <= EMPTY
    late = t >= 2.0 + 2.0
    assert pres[late].max() <= EMPTY, (name, float(np.mean(pres[late] > EMPTY)))


def test_an_hour_of_crowd_then_the_room_empties_within_3s(walk):
    """Visitors (cut from real frames) at changing places for 40 minutes at 1 frame/s, then nobody."""
    clip, view, cuts = walk
    cuts = sorted(cuts, key=lambda c: -float(c[1].sum()))[:3]  # whole visitors, not slivers at the door's edge
    rng = np.random.default_rng(11)
    w = view[0].shape[1]
    plan = [(int(rng.integers(0, len(cuts))), int(rng.integers(0, int(0.7 * w))), int(rng.integers(1, 3)))
            for _ in range(2400)]

    def crowd(i, r):
        base = S._pingpong(view, i)
        k, dx, n = plan[i]
        out = S.paste(base, cuts[k], dx=dx)
        if n > 1:
            out = S.paste(out, cuts[(k + 1) % len(cuts)], dx=(dx + w // 3) % int(0.7 * w))
        return out

    sc = S.Scenario("crowd", 1.0, [S.Segment(2400.0, crowd, lambda i: 1, "crowd"), S.empty_segment(view, 12.0)])
    pres, cnt, _ = readings(sc, slow_camera_tree())
    assert np.mean(pres[:2400] > EMPTY) > 0.98
    assert pres[2400 + 3:].max() <= EMPTY, pres[2400:].round(3).tolist()


def test_scoring_counts_what_a_user_sees():
    """The score's own arithmetic, on hand-made readings: AUC, exits, entries, false people."""
    fps = 10.0
    labs = np.array([0] * 20 + [-1] * 5 + [1] * 30 + [-1] * 5 + [0] * 40)
    pres = np.where(labs == 1, 0.3, 0.0)
    pres[55:60 + 25] = 0.2  # empties 3 s after the exit frame (55)
    pres[40:45] = 0.1  # a weak patch while present: below some empty frames, so AUC < 1
    cnt = np.zeros_like(labs)
    cnt[70:72] = 1  # one false person in the empty room
    r = S.score(pres, cnt, labs, fps, 1.0)
    assert r.to_present == [pytest.approx(0.5)] and r.to_empty == [pytest.approx(3.0)]
    assert 0.0 < r.auc < 1.0
    assert r.false_people_per_min == pytest.approx(10.0)  # one in 6 s of labelled-empty room
    assert math.isnan(S.auc([0.1, 0.2], [1, 1]))


def test_the_bench_holds_people_who_never_leave_ten_minutes_and_builds_no_stay_for_a_room_that_empties(walk):
    """The bench's *stay* scenario: a class that never leaves is played on for ten minutes from its own frames,
    back and forth without a cut, every frame labelled present; a clip whose room empties gets none."""
    clip = S.load_clip(need(CLASSROOM))
    stay = [sc for sc in S.standard(clip) if sc.name == "stay"]
    assert len(stay) == 1 and stay[0].seconds >= len(clip.frames) / clip.fps + 600.0
    m = len(clip.frames)
    # The clip as shot, then from its last frame back to its first and on again: every step is one the clip
    # itself takes (no cut), and every frame is labelled present.
    want = list(range(m)) + [(m - 1 - p if p < m else p - m + 1) for p in (i % (2 * m - 2) for i in range(3 * m))]
    got = []
    for k, (f, _t, lab) in enumerate(S.play(stay[0])):
        assert lab == 1
        if k < len(want):
            got.append(next(j for j, g in enumerate(clip.frames) if f is g or np.array_equal(f, g)))
    assert got == want
    assert k + 1 == pytest.approx(stay[0].seconds * clip.fps, abs=2)
    assert not [sc for sc in S.standard(walk[0]) if sc.name == "stay"]
    # A room that empties, even where the clip gives no empty view, is no stay.
    part = S.Clip(clip.name, clip.frames, clip.fps, np.where(np.arange(m) < 2, 0, 1).astype(np.int8))
    assert S.empty_view(part)[0] is None and not [sc for sc in S.standard(part) if sc.name == "stay"]


@pytest.mark.parametrize("fps", [1.0, 2.0])
def test_a_slow_camera_keeps_a_visitor_whose_arrival_steps_the_exposure(walk, fps):
    """A network camera at 1-2 frames a second: the visitor appears whole between two frames, the
    auto-exposure steps with them (a dark coat), and they stand still.  They stay present: a rule tried for
    spotlights ("appeared whole on one frame whose light changed, unmoved since" is light) lost them on
    95 % of their frames, and is not in."""
    clip, view, cuts = walk
    sc = S.Scenario("slow", fps, [S.empty_segment(view, 6.0), S.person_segment(view, cuts[3], 20.0),
                                  S.empty_segment(view, 6.0)],
                    light=lambda f, t, present: S._scale(f, np.full(3, 1.25, np.float32)) if present else f, seed=9)
    pres, _, labs = readings(sc)
    assert np.mean(pres[labs == 1] > EMPTY) >= 0.95
    assert pres[-int(3 * fps):].max() <= EMPTY


def test_a_visitor_who_arrives_as_a_lamp_switches_stays_present(walk):
    """The second visit of the *steps* scenario: the visitor walks in as a lamp switches on and stands.  For
    a frame their outline matched the room's lines and they were taken for the light; sunk into the
    background at once, they then stood unseen for their whole stay (without the person detector: every
    held frame empty).  Just after a light step, a blob taken for light while it still moves is now left
    out, and sunk only once it has looked like light three frames running."""
    from installation.params import ParamTree
    from installation.sensing import PARAMS
    clip, _, _ = walk
    tree = ParamTree.from_specs(PARAMS)
    tree.update_bases({"sensing/camera/detect_hz": 0.0})
    sc = S.standard(clip, ("steps",))[0]
    a = CameraAnalyzer(tree)
    pres, t = [], []
    for f, ti, _ in S.play(sc):
        if ti > 36.0:
            break
        pres.append(a.process(f, ti).presence)
        t.append(ti)
    pres, t = np.array(pres), np.array(t)
    held = (t >= 28.5) & (t < 33.5)  # the second visitor, standing
    assert np.mean(pres[held] > EMPTY) >= 0.95, np.round(pres[held], 3).tolist()


def no_detector_tree(**values):
    """Defaults with the person detector off (background subtraction alone), plus ``values``."""
    from installation.params import ParamTree
    from installation.sensing import PARAMS
    tree = ParamTree.from_specs(PARAMS)
    tree.update_bases({"sensing/camera/detect_hz": 0.0, **{f"sensing/camera/{k}": v for k, v in values.items()}})
    return tree


def test_a_still_visitor_as_bright_as_the_wall_but_not_its_colour_stays_present(walk):
    """A visitor whose clothes match the wall behind them in brightness, not in colour: a real cut-out
    recoloured pixel by pixel to the grey of the empty room behind it (its colour kept).  Grey alone sees
    nobody (every held frame empty before colour was used); the colour difference keeps them present, and
    ``chroma_threshold`` 0 (colour off) shows it is the colour that does."""
    import cv2
    clip, view, cuts = walk
    pix, alpha = cuts[3]
    plate = np.median(np.stack(view), axis=0).astype(np.uint8)
    grey_wall = cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY).astype(np.float32) + 1.0
    grey_person = cv2.cvtColor(pix, cv2.COLOR_BGR2GRAY).astype(np.float32) + 1.0
    matched = np.clip(pix.astype(np.float32) * (grey_wall / grey_person)[..., None], 0, 255).astype(np.uint8)
    sc = S.Scenario("same grey", clip.fps, [S.empty_segment(view, 6.0), S.person_segment(view, (matched, alpha), 10.0),
                                            S.empty_segment(view, 5.0)], seed=3)
    pres, _, labs = readings(sc, no_detector_tree())
    assert np.mean(pres[labs == 1] > EMPTY) >= 0.95
    assert pres[labs == 0].max() <= EMPTY
    grey_only, _, _ = readings(sc, no_detector_tree(chroma_threshold=0.0))
    assert np.mean(grey_only[labs == 1] > EMPTY) <= 0.05


@pytest.mark.parametrize("light", ["flicker", "drift"])
def test_every_still_visitor_stays_present_under_flicker_and_daylight_drift(walk, light):
    """Each person cut from the walk-in clip, standing 12 s in the empty room, detector off.  Grey alone
    split a visitor in a blue shirt against the white wall into slivers under the smallest blob: under
    flicker 3 of the 11 read present on 75-80 % of their frames, under drift one on 87 %."""
    clip, view, cuts = walk
    lf = {"flicker": S.flicker(), "drift": S.drift(period_s=34.0)}[light]
    for i, cut in enumerate(cuts):
        sc = S.Scenario(light, clip.fps, [S.empty_segment(view, 6.0), S.person_segment(view, cut, 12.0),
                                          S.empty_segment(view, 4.0)], light=lf, seed=i)
        pres, _, labs = readings(sc, no_detector_tree())
        assert np.mean(pres[labs == 1] > EMPTY) >= 0.97, (i, np.mean(pres[labs == 1] > EMPTY))
        assert pres[-int(2 * clip.fps):].max() <= EMPTY, i


def busy_wall(view, cut, source, size: int = 48):
    """The empty room with a busy wall round a visitor's place: the ``size``-px patch of a real frame
    (``source``) with the most edges, tiled over the visitor's box widened by their width on each side,
    half their height above and a third below."""
    import cv2
    h, w = view[0].shape[:2]
    f = cv2.resize(source, (w, h))
    g = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(np.float32)
    e = cv2.boxFilter(np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1)), -1,
                      (size, size))
    half = size // 2
    y, x = np.unravel_index(np.argmax(e[half:h - half, half:w - half]), (h - 2 * half, w - 2 * half))
    tile = np.tile(f[y:y + size, x:x + size], (h // size + 1, w // size + 1, 1))[:h, :w]
    ys, xs = np.nonzero(cut[1] > 0.5)
    bw, bh = xs.max() - xs.min(), ys.max() - ys.min()
    m = np.zeros((h, w, 1), np.float32)
    m[max(0, ys.min() - bh // 2):ys.max() + bh // 3, max(0, xs.min() - bw):xs.max() + bw] = 1.0
    return [np.clip(v * (1.0 - m) + tile * m, 0, 255).astype(np.uint8) for v in view]


def test_the_place_a_visitor_left_in_front_of_a_busy_wall_empties(walk):
    """Each person cut from the walk-in clip, in view at start-up in front of a busy wall (the busiest
    patch of a real warehouse frame: racking), leaves after 3 s; detector off.  The outline-edge ghost
    test took the wall's own edges for the outline of someone standing there and held the place they left
    as a person for as long as the run lasted, for all eleven.  The seam test empties it within 3 s for
    ten of them (the eleventh's seam is in the unsure band, where the edges decide).  A visitor who walks
    in and stands there reads present: an analyser that saw nobody would pass the first part."""
    clip, view, cuts = walk
    source = S.load_clip(need(WALK.parent / "worker-zone-detection.gif")).frames[0]
    emptied = []
    for i, cut in enumerate(cuts):
        wall = busy_wall(view, cut, source)
        sc = S.Scenario("busy wall", clip.fps, [S.person_segment(wall, cut, 3.0), S.empty_segment(wall, 6.0)],
                        seed=i)
        pres, _, _ = readings(sc, no_detector_tree())
        t = np.arange(len(pres)) / sc.fps
        emptied.append(bool(pres[t >= 6.0].max() <= EMPTY))
        if i % 4 == 0:
            sc = S.Scenario("busy wall", clip.fps, [S.empty_segment(wall, 2.0), S.person_segment(wall, cut, 6.0),
                                                    S.empty_segment(wall, 1.0)], seed=i)
            pres, _, labs = readings(sc, no_detector_tree())
            assert np.mean(pres[labs == 1] > EMPTY) >= 0.95, (i, np.mean(pres[labs == 1] > EMPTY))
    assert sum(emptied) >= 10, emptied


def test_a_still_visitor_stays_present_when_a_spot_is_switched_on_over_them(walk):
    """Each person cut from the walk-in clip stands in the empty room; 4 s later a hard-edged white spot
    (x1.5) is switched on over them (every other one: over half of them) and left on; they leave 6 s later;
    detector off.  The spot and the visitor made one blob whose gradients were the spot's: it was taken for
    light and the visitor sank with it within half a second (all eleven).  Someone kept before the light
    came is now judged by their own part of the blob, and the background under them takes the light as
    the room round them does: they stay present, and the room, lit, reads empty once they have left."""
    clip, view, cuts = walk
    h, w = view[0].shape[:2]
    kept, late = [], []
    for i, cut in enumerate(cuts):
        ys, xs = np.nonzero(cut[1] > 0.5)
        bh = ys.max() - ys.min()
        cy = (ys.min() + ys.max()) / 2
        x, r = ((xs.min() + xs.max()) / 2, 0.7 * bh) if i % 2 == 0 else (xs.max(), 0.35 * bh)
        sc = S.Scenario("spot on", clip.fps, [S.empty_segment(view, 2.0), S.person_segment(view, cut, 10.0),
                                              S.empty_segment(view, 6.0)],
                        light=S.spot(x / w, cy / h, r / w, (1.5, 1.5, 1.5), on_s=6.0), seed=i)
        pres, _, labs = readings(sc, no_detector_tree())
        t = np.arange(len(pres)) / sc.fps
        kept.append(round(float(np.mean(pres[(t >= 6.0) & (labs == 1)] > EMPTY)), 2))
        late.append(round(float(pres[t >= 12.0 + 3.0].max()), 3))
    assert sum(k >= 0.95 for k in kept) >= 10, kept
    assert max(late) <= EMPTY, late


def test_a_small_visitor_of_whom_less_shows_once_still_stays_counted(walk):
    """A small, distant visitor whose jeans are the grey of the floor: in a real plaza clip (vtest.avi, one
    person cut from it standing 12 s) the foreground found 29-48 px of them while they walked and 22-24 px,
    only their jacket, once they stood, under ``min_blob`` (29 px): the visitor read empty for as long as
    they stood.  Here the top of the largest real cut-out, cut so that its outline is 1.6 times
    ``min_blob`` for 2 s, then 1.0 times for 10 s (of which the foreground finds about 0.7); detector off.
    A tracked person with no full-sized blob near now stays counted while at least half ``min_blob`` and
    0.3 of the most they showed lately shows; the smaller part alone, never seen larger, is still no
    person (so it is the track that keeps them)."""
    clip, view, cuts = walk
    pix, alpha = max(cuts, key=lambda c: float(c[1].sum()))
    h, w = alpha.shape
    min_px = 0.002 * 160 * round(160 * h / w) * (w / 160.0) ** 2  # min_blob at the analysis width, here
    rows = np.cumsum((alpha > 0.5).sum(axis=1))

    def top(share):
        a = alpha.copy()
        a[int(np.searchsorted(rows, share * min_px)):] = 0.0
        return pix, a

    sc = S.Scenario("part", clip.fps, [S.empty_segment(view, 3.0), S.person_segment(view, top(1.6), 2.0),
                                       S.person_segment(view, top(1.0), 10.0), S.empty_segment(view, 5.0)], seed=1)
    pres, cnt, _ = readings(sc, no_detector_tree())
    t = np.arange(len(pres)) / sc.fps
    standing = (t >= 6.0) & (t < 15.0)
    assert np.mean(pres[standing] > EMPTY) >= 0.95, np.round(pres[standing], 3).tolist()
    assert np.mean(cnt[standing] == 1) >= 0.95
    assert pres[t >= 15.0 + 3.0].max() <= EMPTY
    alone = S.Scenario("part alone", clip.fps, [S.empty_segment(view, 3.0), S.person_segment(view, top(1.0), 10.0)],
                       seed=1)
    pres, cnt, _ = readings(alone, no_detector_tree())
    assert cnt.max() == 0 and pres.max() <= EMPTY


def test_a_patch_of_wall_a_dimmer_fades_up_is_not_a_person(walk):
    """A patch of the walk-in room's wall (40 x 15 px of 480 x 270) brightens by 30 grey levels over 6 s, as a
    lamp on a dimmer or the sun on a wall does, and stays so; nobody is in the room.  Each frame differs from
    the last by under a grey level, so nothing moves; its outline is its own (the ghost test keeps it), and
    the analyser before this rule counted one person there from 5 s into the fade until the end.  A blob in
    which nothing moved for BIRTH_QUIET_S starts no person (the same rule ends the grey camera's flicker
    blips: docs/sensing.md)."""
    clip, view, _ = walk

    def fade(i, rng):
        f = S._pingpong(view, i).astype(np.float32)
        f[40:55, 200:240] += 30.0 * min(1.0, max(0.0, (i / clip.fps - 20.0) / 6.0))
        return np.clip(f, 0, 255).astype(np.uint8)

    sc = S.Scenario("fade", clip.fps, [S.Segment(36.0, fade, lambda i: 0, "fade")], seed=1)
    pres, cnt, _ = readings(sc)
    assert cnt.sum() == 0, np.nonzero(cnt)[0][:5] / sc.fps
    assert pres.max() <= EMPTY
