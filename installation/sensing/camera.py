"""Camera: frame sources, the capture thread and the per-frame analysis.

The analysis (:class:`CameraAnalyzer`) is a pure, deterministic function of
the frames and their times fed to it; the capture thread
(:class:`CameraCapture`) only pulls frames from a source, runs the analysis
and publishes the latest :class:`CameraFrame`.  docs/sensing.md explains the
model for a technician; in short (all on a small image, grey and in colour,
``sensing/camera/width`` pixels wide, or high for a camera mounted upright):

* **Exposure as a field of cell ratios.** The frame is divided into a grid
  of cells; each cell's median ratio frame/background is its light change.
  The median over cells is the global gain (a visitor covering less than
  half the cells cannot move it); each cell may deviate from it by at most
  ``cell_dev`` (colour-temperature swings, a lamp on one side), smoothed
  across neighbouring cells, so a dark coat entering does not read as light
  and an auto-exposure step does not read as people.  Each row's remaining
  median ratio is taken out too (at most ``ROW_DEV``): mains flicker on a
  rolling shutter draws bands across the rows, finer than the cells.
* **Foreground** is where the compensated frame differs from the background
  by more than ``threshold`` or ``noise_k`` times the frame's own robust
  noise level, whichever is larger, or in colour (blue-green, red-green) by
  more than ``chroma_threshold`` or its own noise level: clothes as bright
  as the wall behind them.  Each colour channel's own light change is
  taken out per cell first (a colour-temperature swing is light), and
  clipped pixels say nothing about colour.
* **Every still blob is questioned.** A foreground blob with no motion for
  ``settle_s`` is kept only if the *current* frame changes across its
  outline more than the background does (``seam_ratio``; local means on
  either side, so a busy wall's own edges do not count): a person, seated
  or standing, does; the place a visitor left (the background still shows
  them, the frame shows the floor continuing) and a light change (soft, or
  the same edges as the background) do not, and sink into the background within
  ``forget_s``.  This is what keeps the model from latching: a wrong
  background is undone within seconds, whatever made it wrong.  A blob
  whose gradients follow the background's is light and left out at once
  (a still blob also when its inside alone does: a hard-edged spot's rim
  is an outline the background lacks).  Inside a blob taken for light as a
  whole, someone kept unbroken for a second up to the previous frame is
  judged by their own part of it: a spot switched on over a still visitor
  sinks, the visitor stays, and the background under them takes the light
  as the room round them does;
  just after a light step, one that still moves is sunk only after
  ``HASTY_FRAMES`` such frames (a visitor walking in as a lamp switches can
  match a door frame's lines for one).
* **A knocked camera** (``_register``): when the frame is the background
  slid by 0.75 pixel or more (phase correlation, checked by the pixels the
  move fixes against those it breaks, on three frames running), or turned
  0.75 degrees or more about the lens (an ECC fit, twice a second at most,
  judged the same way), the background moves with the view instead of
  reading every edge of the room as people.
* **Learning by state.** Empty pixels follow the frame over ``learn_s``;
  moving pixels never learn; kept still blobs are absorbed only over
  ``absorb_s`` (default one hour).
* **People** are the blobs left (at least ``min_blob`` of the view), with
  centroid or feet mapped through the ROI homography into canvas
  coordinates and matched greedily to the previous frame's tracks; a
  tracked person with no full-sized blob near stays counted while their
  blob is at least half that size and 0.3 of its largest area lately.
  A new blob inside the body box of a sure detection that already holds as
  many people as detections are there is a part of someone (arms, a head:
  one person close to the camera is not several).
  ``presence`` is the occupied share of the ROI, but at least
  ``person_floor`` per person counted, so one distant visitor reads clearly.
* **A second opinion** (second_opinion.py, detector.py, body_detector.py):
  single-frame person detectors run ``detect_hz`` times a second: a pose
  detector anchored on faces, and, at start-up, a body detector that finds
  people from any side (visitors seen from behind) in the whole frame, at
  ``body_score`` (see ``BODY_START_S``).  Their detections live
  ``detect_hold_s`` after last seen.  A still blob the tests above would
  forget is kept while most of it lies inside a live detection's body box
  (a still visitor through a lamp step); a live detection that no counted
  blob covers is a person of its own, at its hip point (a visitor who was
  in view, still, when the camera started).  A detection whose box (and, for
  a sure whole-frame find, its head's square: a head turning) shows no motion and no
  foreground kept on its own merits for ``fixture_s`` is a
  fixture (a picture, a statue): its place is remembered, and a detection
  there counts only while something moves in front of it (plus 2 s).
  A whole-frame find where the room shows itself as the background has
  long known it (see ``_settled``: a table the detector scores 0.5, seen
  again as a visitor in front of it leaves) is a fixture from the start.
  Each run also looks close up (squares ``detect_close_up`` of the
  frame's height, score ``detect_close_score``) where motion that nothing
  explains gathered over the last seconds (a visitor in view at start-up
  sways, and the background already holds them), and again where a small
  live detection was: a person a fifth of the frame tall is too small for
  the whole frame's 224x224 input.  A close-up's find is someone new only
  where that motion lies inside its body box, and counts while something
  moves there, plus ``CLOSE_QUIET_S`` (10 s; 3 s for a find under 0.9).
  People found on the frame the background started from are in the
  background: once a later run finds nobody there, foreground in their box
  that has stopped moving is the place they left, sunk at once (see
  ``_heal_ghosts``), not after ``settle_s``.
  Without the detector runtime the analysis is background subtraction alone.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from installation.mapping.geometry import Lens
from installation.params import BOOL, MACHINE, VENUE, ParamSpec, ParamTree, floats

from .detector import iou
from .frames import CameraFrame, Person
from .second_opinion import DetectionTracks, make_opinion, same_person

log = logging.getLogger(__name__)

P = "sensing/camera"
HASTY_FRAMES = 3  # just after a light step: frames running a moving blob must look like light to be sunk fast
# Chroma's robust noise level: 1.4826 x the median difference, as for grey, and half as much again: the
# larger of two channel differences, each carrying two channels' noise (and H.264's coarser colour).
CHROMA_NOISE = 1.4826 * 1.5
# The inside test for light (CameraAnalyzer._inside_follows): tiles of TILE px at the analysis width; a tile
# whose gradients correlate under TILE_CORR with the background's does not follow it, and such tiles may hold
# at most TILE_OFF of the inside's gradient energy (0.15 lost a visitor standing in their own soft shadow).
TILE = 6
TILE_CORR = 0.5
TILE_OFF = 0.05
# The ghost test (CameraAnalyzer._seam_ratio): window sizes of its two scales, in pixels at the default analysis
# width (160); a change across an outline under SEAM_FLOOR times the foreground threshold counts as that much
# (noise, not an outline); a ratio at or above SEAM_UNSURE * seam_ratio but under seam_ratio is unsure, and
# there the outline's edges decide (edge_ratio).
SEAM_PX = (5, 9)
SEAM_FLOOR = 0.5
SEAM_UNSURE = 0.85
# Someone kept up to the previous frame, in a blob now taken for light (CameraAnalyzer._kept_in_light), is still
# there if their part of the frame correlates at least STAY with the previous frame's gradients (a visitor under
# a spot just switched on: 0.73-1.0; the place a visitor left, on the frame they leave: 0.3-0.77; on later
# frames an empty place follows the previous frame too, and what keeps it from being rescued is that its
# gradients follow the background's).
STAY = 0.6
KEPT_S = 1.0  # ... and was kept unbroken for at least this long (s) before (a visitor; not a moving coloured spot)
# A tracked person stays counted while their blob is at least KEEP_BLOB times min_blob (hysteresis): standing
# still, a visitor in jeans the grey of the floor may show only their jacket ...
KEEP_BLOB = 0.5
KEEP_SHRINK = 0.55  # ... and while that is at least 0.55^2 = 0.3 of the largest area they had lately,
PEAK_S = 5.0  # ... that largest area forgotten over this time constant (s)
# The pose detector's body box ends at the forehead: the top of the head of someone close to the camera (hair
# over a matching wall) makes a blob just above it, up to 0.07 of the box's height; for the parts rule
# (_people) the box reaches HEAD_TOP of its height higher.
HEAD_TOP = 0.1
# A new blob where no pixel has moved for BIRTH_QUIET_S (s) starts no track unless one ended within track_dist
# in the last LOST_S (s); a track so started that lasts under REARM_S (s) ends at that track's time: see _people.
BIRTH_QUIET_S = 3.0
LOST_S = 10.0
REARM_S = 1.0
WIDTH = 160  # the analysis width by default (sensing/camera/width); pixel sizes here are stated at it
CLIP = 250.0  # a colour channel this bright (0..255) may be clipped: its chroma says nothing
# A pale surface clipped (a channel at CLIP and grey at least CLIP_GREY: a white wall the auto-exposure drives
# into clipping, not a saturated red coat whose red channel clips at grey 100) only says the light there is at
# least this bright; it keeps its own brightness, not the light's.  It enters the light field as the unclipped
# pixels' median ratio (or its own, if higher) where at least CLIP_FREE of the frame is unclipped.
CLIP_GREY = 225.0
CLIP_FREE = 0.1
ROW_DEV = 0.15  # most a row's light may differ from its cells' (flicker bands; see _light)
# Close-ups for the detector (see _close_ups): motion that neither a blob of a person's size nor a live
# detection explains is remembered, in pixel-seconds, with time constant STIR_S (s); a place is looked at
# once it gathered STIR_MIN (s) times min_blob's area (an eighth of it moving for a tenth of a second), four
# times as dense as elsewhere (a light change moves pixels everywhere at once); at most STIR_LOOKS such
# places a run, a place looked at not again for LOOK_AGAIN_S (a blinking screen must not take every turn),
# and at most MAX_CLOSE_UPS close-ups a run in all (small live detections are looked at again first).
STIR_S = 2.0
STIR_MIN = 0.012
STIR_LOOKS = 2
LOOK_AGAIN_S = 5.0
MAX_CLOSE_UPS = 3
# A whole-frame find is the room itself, not a visitor (see _settled), where at most SETTLED_FG of its box is
# foreground, nothing moves there, and the background under at least SETTLED_HELD of it has held what it shows
# (nothing sunk into it fast) since SETTLED_S before the find's track began: a table that a dim light makes
# the detector score 0.5, found again as a visitor in front of it walks away.
SETTLED_FG = 0.05
SETTLED_HELD = 0.9
SETTLED_S = 10.0
# A person the detector found on the frame the background started from is in the background (see _heal_ghosts):
# from the first later run that finds nobody there, for GHOST_HEAL_S, foreground in their box that has not moved
# for GHOST_STILL_S is the place they left and is sunk at once, not after settle_s (moving pixels, a passer-by,
# wait for the usual tests).  The window is short so that a visitor who comes to stand in that place later, and
# whom the detectors miss, is judged by the usual tests.  Boxes are watched for GHOST_WATCH_S after the start.
GHOST_STILL_S = 0.2
GHOST_HEAL_S = 2.0
GHOST_WATCH_S = 30.0
# The body detector runs on frames up to BODY_START_S after the background started (so that the first run,
# answered on its own thread while later frames arrive, has it on), then only while such people are watched.
BODY_START_S = 1.0
# A camera knocked, or its mount settling (CameraAnalyzer._register): where at least SHIFT_FG of the last frame
# was foreground, the frame is phase-correlated with the background; a shift of at least SHIFT_MIN pixels (at
# the default analysis width, scaled with it), with a peak of at least SHIFT_RESP, is the view's if moving the
# background by it makes at least SHIFT_FIXED of the frame agree with it that did not, and SHIFT_EXPLAINS times
# as much as it makes disagree that agreed; found on SHIFT_FRAMES frames running, each within SHIFT_AGREE pixels
# (at any analysis width: the estimate is that good) of the frame's before, the background moves with the view
# by the last.  A visitor in view (not in the background) counts on neither
# side, so a knock while someone stands close to the camera (a weak peak, 0.25) still passes; people moving
# never pass (moving the background only breaks the room's agreement: at most 0.7 times as much fixed as
# broken where two and three people fill the frame).
SHIFT_FG = 0.02
SHIFT_MIN = 0.75
SHIFT_RESP = 0.1
SHIFT_FIXED = 0.01
SHIFT_EXPLAINS = 3.0
SHIFT_FRAMES = 3
SHIFT_AGREE = 0.5
# A camera rolled about its lens (phase correlation sees no slide): where at least ROLL_FG of the last frame was
# foreground, an ECC fit of a turn and a slide (at 80x45), at most once every ROLL_EVERY_S; a fit
# that turns the view at least ROLL_MIN_DEG (a 1.5-degree roll settles by itself within a second; the one false
# fit seen, on the worker-zone clip, turned 0.17), judged as a shift is, found ROLL_TIMES tries running with the
# frame's corners placed within ROLL_AGREE pixels (at the default analysis width) of the try before, moves the
# background.
ROLL_MIN_DEG = 0.75
ROLL_FG = 0.05
ROLL_SPREAD = 0.4  # ... and that foreground in at least this share of a 4x4 grid (a roll stirs every edge; a
# visitor stands in a few cells, and the fit would run twice a second whenever someone is in view)
ROLL_EVERY_S = 0.5
ROLL_TIMES = 2
ROLL_AGREE = 1.0

# Canvas corners in the order the ROI points are given: TL, TR, BR, BL.
CANVAS_CORNERS = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))

PARAMS: tuple[ParamSpec, ...] = tuple(
    [ParamSpec(f"{P}/detect_hz", "float", 2.0, "how often the person detector (the second opinion) runs; "
               "0 turns it off (about 12 ms a run on one core, 12 more a close-up; in the first second and while "
               "start-up people are watched, 35 more for the body detector)", 0.0, 30.0, "Hz", scope=MACHINE),
     ParamSpec(f"{P}/detect_body", BOOL, True, "at start-up, run the body detector beside the pose detector in "
               "the whole frame: it finds people seen from behind who are there when the camera starts (about 35 "
               "ms a run on one core, in the first second and while such people are watched)", scope=MACHINE),
     ParamSpec(f"{P}/width", "int", WIDTH, "width of the image the analysis works on (height follows the "
               "aspect ratio; for a camera mounted upright, its height); smaller is faster and less noisy", 48, 640,
               "px", live=False, scope=MACHINE)]
    + floats(P, [
        ("threshold", 16.0, 2.0, 120.0, "grey levels", "difference from the background (0..255 scale) that "
         "counts as a person (raised automatically where the picture is noisier)"),
        ("chroma_threshold", 24.0, 0.0, 255.0, "levels", "difference in colour (blue minus green, red minus "
         "green, 0..255 scale) that counts as a person: clothes as bright as the wall but not its colour; 0 "
         "turns colour off (grey alone, as for a mono camera)"),
        ("noise_k", 4.0, 1.0, 20.0, "x", "a difference must also exceed this many times the frame's robust noise "
         "level"),
        ("motion_threshold", 10.0, 1.0, 80.0, "grey levels", "frame-to-frame difference that counts as motion"),
        ("cell_dev", 0.25, 0.0, 1.0, "ratio", "how far one cell's light change may differ from the whole frame's "
         "(colour-temperature swings, a lamp on one side)"),
        ("learn_s", 20.0, 1.0, 3600.0, "s", "time constant with which empty background follows the picture"),
        ("absorb_s", 3600.0, 10.0, 86400.0, "s", "time constant with which something kept still (a seated "
         "audience, a moved bench) sinks into the background"),
        ("settle_s", 0.8, 0.1, 30.0, "s", "a foreground blob with no motion for this long is questioned: kept if "
         "it has its own outline, else forgotten"),
        ("forget_s", 0.15, 0.01, 30.0, "s", "time constant with which a questioned blob that fails (the place a "
         "visitor left, a light change) sinks into the background"),
        ("seam_ratio", 1.05, 0.5, 10.0, "x", "a still blob is kept if the picture changes across its outline "
         "(local means, inside against outside) this many times as much as the background does there"),
        ("edge_ratio", 1.05, 0.5, 10.0, "x", "where the seam test is unsure, a still blob is kept if the "
         "picture's edges along its outline are this many times the background's there"),
        ("light_corr", 0.7, 0.0, 1.0, "", "a still blob whose inner gradients follow the background's this "
         "closely (normalised correlation) is a light change, not a person"),
        ("edge_min", 3.0, 0.0, 100.0, "grey levels/px", "weakest mean outline edge a kept still blob may have"),
        ("min_blob", 0.002, 0.0, 0.2, "ratio", "smallest blob (share of the watched area) counted as a person"),
        ("person_floor", 0.08, 0.0, 1.0, "ratio", "presence is at least this much per person counted, so one "
         "distant visitor reads clearly above an empty room"),
        ("track_dist", 0.2, 0.01, 1.0, "canvas", "furthest a person may move between frames and keep their track"),
        ("velocity_s", 0.3, 0.0, 5.0, "s", "smoothing time constant of people's velocities"),
        ("detect_score", 0.5, 0.05, 0.99, "", "person detector: lowest score that counts as a person"),
        ("detect_close_up", 0.4, 0.0, 1.0, "frame heights", "side of the square close-up the person detector "
         "also looks at where something stirs that nothing explains, and where a small detection was "
         "(a still visitor in view at start-up, too small for the whole frame); 0 turns close-ups off"),
        ("detect_close_score", 0.8, 0.05, 0.99, "", "person detector in a close-up: lowest score that counts "
         "(above detect_score: close-ups of empty rooms and things score up to about 0.8)"),
        ("body_score", 0.45, 0.05, 0.99, "", "body detector (finds people from any side, backs too, in the "
         "whole frame): lowest score that counts as a person (people score 0.4-0.7, empty rooms 0.1-0.25, a car "
         "seen from above 0.39)"),
        ("detect_hold_s", 1.0, 0.1, 30.0, "s", "a person detection lives this long after the detector last saw "
         "it (covers a missed run)"),
        ("fixture_s", 300.0, 1.0, 86400.0, "s", "a detected person whose place shows no motion for this long is "
         "a picture or a statue: ignored until something moves there"),
        ("stale_s", 1.0, 0.1, 30.0, "s", "a camera frame older than this marks the camera stale"),
        ("calm_s", 3.0, 0.1, 120.0, "s", "time constant with which a stale camera's last measurement decays to "
         "calm"),
        # ROI: where the four canvas corners (TL, TR, BR, BL) lie in the camera image, 0..1 of its width/height.
        ("roi/x0", 0.0, -1.0, 2.0, "image", "camera-image x of the canvas top-left corner"),
        ("roi/y0", 0.0, -1.0, 2.0, "image", "camera-image y of the canvas top-left corner"),
        ("roi/x1", 1.0, -1.0, 2.0, "image", "camera-image x of the canvas top-right corner"),
        ("roi/y1", 0.0, -1.0, 2.0, "image", "camera-image y of the canvas top-right corner"),
        ("roi/x2", 1.0, -1.0, 2.0, "image", "camera-image x of the canvas bottom-right corner"),
        ("roi/y2", 1.0, -1.0, 2.0, "image", "camera-image y of the canvas bottom-right corner"),
        ("roi/x3", 0.0, -1.0, 2.0, "image", "camera-image x of the canvas bottom-left corner"),
        ("roi/y3", 1.0, -1.0, 2.0, "image", "camera-image y of the canvas bottom-left corner"),
        ("lens_k1", 0.0, -1.0, 1.0, "", "the camera's radial lens distortion (k1 as `run.py map` measures it; "
         "negative for barrel): the ROI and people's canvas positions are corrected for it"),
    ], scope=VENUE)
    + [ParamSpec(f"{P}/cells", "int", 8, "exposure grid: cells across (rows follow the aspect ratio)", 2, 32,
                 live=False, scope=VENUE),
       ParamSpec(f"{P}/close_px", "int", 2, "radius of the closing that fills people's outlines into blobs",
                 0, 8, "px", scope=VENUE),
       ParamSpec(f"{P}/max_people", "int", 16, "most people reported (largest blobs win)", 0, 64, scope=VENUE),
       ParamSpec(f"{P}/anchor", "choice", "centroid", "which point of a blob is its position: centroid, or feet "
                 "(bottom centre; use with a floor-plane ROI)", choices=("centroid", "feet"),
                 scope=VENUE)]
)


def roi_points(tree: ParamTree) -> tuple[tuple[float, float], ...]:
    """The four ROI points (TL, TR, BR, BL) in normalised camera-image coordinates."""
    return tuple((float(tree[f"{P}/roi/x{i}"]), float(tree[f"{P}/roi/y{i}"])) for i in range(4))


def parse_roi(text: str) -> tuple[tuple[float, float], ...]:
    """Parse ``"x0,y0,x1,y1,x2,y2,x3,y3"`` (TL, TR, BR, BL in 0..1 of the image) into four points.

    Raises ``ValueError`` with a message naming the problem.
    """
    try:
        nums = [float(v) for v in str(text).replace(";", ",").replace(" ", ",").split(",") if v]
    except ValueError:
        raise ValueError(f"--roi {text!r}: expected 8 numbers x0,y0,x1,y1,x2,y2,x3,y3") from None
    if len(nums) != 8 or not all(math.isfinite(v) for v in nums):
        raise ValueError(f"--roi {text!r}: expected 8 finite numbers (TL, TR, BR, BL corners), got {len(nums)}")
    pts = tuple((nums[2 * i], nums[2 * i + 1]) for i in range(4))
    homography(pts)  # refuses degenerate quads
    return pts


def set_roi(tree: ParamTree, points) -> None:
    """Write four (x, y) ROI points into the tree's ``sensing/camera/roi/*`` bases."""
    pts = parse_roi(points) if isinstance(points, str) else tuple(points)
    tree.update_bases({f"{P}/roi/{a}{i}": float(pts[i][j]) for i in range(4) for j, a in enumerate("xy")})


def homography(points) -> np.ndarray:
    """3x3 matrix mapping normalised camera-image coordinates to canvas coordinates.

    ``points`` are where the canvas corners TL, TR, BR, BL lie in the image.
    """
    src = np.array(points, dtype=np.float32).reshape(4, 2)
    area = 0.5 * abs(float(np.dot(src[:, 0], np.roll(src[:, 1], 1)) - np.dot(src[:, 1], np.roll(src[:, 0], 1))))
    if area < 1e-4:
        raise ValueError(f"ROI {src.tolist()} is degenerate (area {area:.2g})")
    return cv2.getPerspectiveTransform(src, np.array(CANVAS_CORNERS, dtype=np.float32)).astype(np.float64)


_K3 = np.ones((3, 3), np.uint8)


def _ellipse(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _channels(img: np.ndarray) -> np.ndarray:
    """The sum over an (h, w, 3) float32 image's channels, as (h, w) (numpy's sum over a last axis of 3 is
    slow; a matrix product is not)."""
    h, w = img.shape[:2]
    return (img.reshape(h * w, 3) @ np.ones(3, np.float32)).reshape(h, w)


def _blob_corr(lab: np.ndarray, n: int, ab: np.ndarray, aa: np.ndarray, bb: np.ndarray) -> np.ndarray:
    """Per blob (labels ``lab``, 0..n-1, one per pixel): the normalised correlation of two gradient fields
    from their per-pixel products (``ab`` = a.b, ``aa`` = |a|^2, ``bb`` = |b|^2)."""
    dot = np.bincount(lab, weights=ab, minlength=n)
    na = np.bincount(lab, weights=aa, minlength=n)
    nb = np.bincount(lab, weights=bb, minlength=n)
    return dot / np.sqrt(np.maximum(na * nb, 1e-6))


def _medians(a: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=-1)``, the same values for finite input, by sorting: for the short rows of a cell
    or a picture row (55-220 values) numpy's sort is two to three times faster than the partition
    ``np.median`` uses."""
    s = np.sort(a, axis=-1)
    k = s.shape[-1]
    return s[..., k // 2] if k % 2 else (s[..., k // 2 - 1] + s[..., k // 2]) * 0.5


def analysis_size(h0: int, w0: int, width: int) -> tuple[int, int]:
    """(height, width) of the image the analysis works on for a ``h0`` x ``w0`` frame: ``width`` wide, or, for a
    frame taller than wide (a camera mounted upright), ``width`` high, so it costs what a landscape frame does;
    never larger than the frame."""
    w = min(width if h0 <= w0 else max(1, round(width * w0 / h0)), w0)
    return max(1, round(h0 * w / w0)), w


def _scale(h: int, w: int) -> float:
    """Pixel sizes stated at the default analysis width (``WIDTH``) scaled to an ``h`` x ``w`` analysis image: by
    its longer side, which is the width for a landscape frame and the height for an upright one."""
    return max(h, w) / WIDTH


def _box_px(box, h: int, w: int) -> tuple[int, int, int, int]:
    """A normalised (x0, y0, x1, y1) box in pixels of an h x w image, rounded outwards and clipped to it (a box
    moved with a knocked view may lie partly outside, and a negative start would wrap a slice round)."""
    return (min(w, max(0, int(math.floor(box[0] * w)))), min(h, max(0, int(math.floor(box[1] * h)))),
            min(w, max(0, int(math.ceil(box[2] * w)))), min(h, max(0, int(math.ceil(box[3] * h)))))


def _turn_deg(m: np.ndarray) -> float:
    """The turn (degrees) of a 2x3 rigid transform."""
    return math.degrees(math.atan2(float(m[1, 0]), float(m[0, 0])))


def has_colour(bgr: np.ndarray) -> bool:
    """Whether a BGR frame holds colour: an infrared or mono camera delivers three channels equal within a
    video codec's rounding (up to 3 levels apart; MPEG-4 part 2), and has no colour to compare.  Colour is
    at least 1 % of the pixels with a channel more than 3 levels from green (a grey car park seen by a colour
    camera: 23 %)."""
    if bgr.ndim != 3 or bgr.shape[2] < 3 or bgr.size == 0:
        return False
    if bgr.dtype != np.uint8:
        bgr = np.clip(bgr, 0, 255).astype(np.uint8)
    g = bgr[..., 1]
    apart = (cv2.absdiff(bgr[..., 0], g) > 3) | (cv2.absdiff(bgr[..., 2], g) > 3)
    return np.count_nonzero(apart) >= 0.01 * apart.size


def _sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y gradients (grey levels per pixel: Sobel 3x3 scaled to a plain difference)."""
    return (cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3, scale=0.125),
            cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3, scale=0.125))


@dataclass
class _Track:
    x: float
    y: float
    vx: float
    vy: float
    size: float
    born: int
    peak: float = 0.0  # the largest size lately (decays over PEAK_S): what a fragment is measured against
    t0: float = 0.0  # when it started (s)
    lost_at: float | None = None  # started by the track that ended then, without moving (see _people)


class CameraAnalyzer:
    """Turns BGR (or grey) frames into :class:`CameraFrame` records.

    Deterministic: the same frames with the same times give the same records
    (with ``opinion="thread"`` the detector's answers arrive when its thread
    finishes, so only the live capture uses that).  Reads its settings from
    ``tree`` (``sensing/camera/*``) on every frame, so ROI and thresholds can
    be tuned live.  ``debug`` holds the last foreground mask, ROI polygon and
    live detections for previews.

    ``opinion``: how the person detector is asked (second_opinion.py):
    ``"inline"`` (default), ``"thread"``, ``None`` (never), or an object with
    ``offer(frame, t, hz)`` and ``close()``.  The detector is loaded on the
    first frame with ``detect_hz`` > 0; where it cannot run, one warning is
    logged and the analysis goes on without it.
    """

    def __init__(self, tree: ParamTree | None = None, opinion="inline") -> None:
        self.tree = tree if tree is not None else ParamTree.from_specs(PARAMS)
        self._opinion_kind = opinion if isinstance(opinion, str) else None
        self.opinion = None if isinstance(opinion, str) else opinion
        self.reset()

    def close(self) -> None:
        """Stop the detector's thread, if any."""
        if self.opinion is not None:
            self.opinion.close()

    def _ask(self, frame: np.ndarray, t: float):
        """The detector's results ready at ``t`` (``[]`` when it is off, not due or unavailable)."""
        hz = float(self.tree[f"{P}/detect_hz"])
        if hz <= 0:
            return []
        if self.opinion is None and self._opinion_kind in ("inline", "thread"):
            self.opinion = make_opinion(self._opinion_kind, body=bool(self.tree[f"{P}/detect_body"]))
            self._opinion_kind = None  # tried once: no warning per frame
        if self.opinion is None:
            return []
        det = getattr(self.opinion, "det", None)
        if det is not None:
            det.min_score = float(self.tree[f"{P}/detect_score"])
            det.body_score = float(self.tree[f"{P}/body_score"])
            # The body detector is a start-up tool: it looks for the people the background starts with (nothing
            # else finds someone seen from behind who stands still), and then only while one it found may still
            # be there.  Later, background subtraction sees whoever walks in, and a body find it does not back
            # is no visitor: under an exposure step the body detector scored a bar table's base 0.51-0.59 in
            # the empty one-by-one room, which read as a person until the next visitor came.
            det.body_on = bool(self.tree[f"{P}/detect_body"]) and (t - self._t_bg0 < BODY_START_S
                                                                    or bool(self._bg_people))
        return self.opinion.offer(frame, t, hz, lambda: self._close_ups(*frame.shape[:2], t))

    def _close_ups(self, fh: int, fw: int, t: float) -> list[tuple[tuple[int, int, int, int], float]]:
        """Where the detector should also look close up this run, as ``(region in frame pixels, min score)``:
        again at live detections too small to be sure of in the whole frame, then at the places where most
        motion that nothing explains gathered lately (someone the background already holds, swaying)."""
        tr = self.tree
        side_r = float(tr[f"{P}/detect_close_up"])
        if side_r <= 0 or self._stir is None:
            return []
        side = int(min(fh, fw, max(16, round(side_r * fh))))

        def region(cx: float, cy: float) -> tuple[int, int, int, int]:
            x0 = int(round(min(max(cx * fw - side / 2, 0), fw - side)))
            y0 = int(round(min(max(cy * fh - side / 2, 0), fh - side)))
            return (x0, y0, x0 + side, y0 + side)

        out = [region((tk.box[0] + tk.box[2]) / 2, (tk.box[1] + tk.box[3]) / 2) for tk in self._dets.live()
               if (tk.box[3] - tk.box[1]) * fh < side][: MAX_CLOSE_UPS - 1]
        h, w = self._stir.shape
        k = max(3, int(round(side * h / fh)))
        sums = cv2.boxFilter(self._stir, -1, (k, k), normalize=False, borderType=cv2.BORDER_CONSTANT)
        recent = t - self._looked < LOOK_AGAIN_S
        sums[recent] = 0.0
        # "Elsewhere" is the view's diffuse motion (a light change): not the places just looked at or chosen
        # this run, which gather motion of their own (a screen, a passer-by's legs at the edge, would
        # otherwise raise the bar for a still visitor's sway across the room).
        rest = float(self._stir.sum()) - float(self._stir[recent].sum())
        rest_px = self._roi_area - int(np.count_nonzero(recent & self._roi_mask))
        need = self._stir_need()
        for _ in range(min(STIR_LOOKS, MAX_CLOSE_UPS - len(out))):
            i = int(np.argmax(sums))
            val = float(sums.flat[i])
            elsewhere = max(0.0, rest - val) / max(1, rest_px - k * k)
            if val < need or val <= 4.0 * elsewhere * k * k:
                break
            rest, rest_px = rest - val, rest_px - k * k
            cy, cx = divmod(i, w)
            win = (slice(max(0, cy - k), cy + k + 1), slice(max(0, cx - k), cx + k + 1))
            sums[win] = 0.0   # the next place must not overlap this one
            u, v = (cx + 0.5) / w, (cy + 0.5) / h
            if not any(r[0] <= u * fw < r[2] and r[1] <= v * fh < r[3] for r in out):
                out.append(region(u, v))
                self._looked[max(0, cy - k // 2): cy + k // 2 + 1, max(0, cx - k // 2): cx + k // 2 + 1] = t
        score = float(tr[f"{P}/detect_close_score"])
        return [(r, score) for r in out]

    # -- geometry ------------------------------------------------------
    def _undistort(self, uv: np.ndarray) -> np.ndarray:
        """Normalised image points (M, 2) as a lens without distortion would show them; NaN beyond the fold
        of a strong barrel lens (k1 < -0.148 folds the image corners back inwards: they have no place)."""
        if self._lens is None:
            return uv
        lens = self._lens
        w, h = lens.size
        px = uv * (w, h) - 0.5
        out = (lens.undistort(px) + 0.5) / (w, h)
        if lens.k1 < 0:
            r = np.hypot(*((px - lens.centre) / lens.scale).T)
            out[r >= 0.995 * lens.fold] = np.nan
        return out

    def _inside_fold(self, uv: np.ndarray, k1: float) -> np.ndarray:
        """ROI corners pulled radially just inside a strong barrel lens's fold (where the picture has no
        undistorted place), with one warning; the lens correction is kept for everything inside."""
        lens = self._lens
        if lens is None or k1 >= 0:
            return uv
        w, h = lens.size
        p = (uv * (w, h) - 0.5 - lens.centre) / lens.scale
        r = np.hypot(p[:, 0], p[:, 1])
        r_in = 0.99 * lens.fold
        if (r < r_in).all():
            return uv
        log.warning("sensing/camera/roi: a corner lies past the fold of the lens (lens_k1 %g): pulled inside it", k1)
        p *= np.minimum(1.0, r_in / np.maximum(r, 1e-9))[:, None]
        return (p * lens.scale + lens.centre + 0.5) / (w, h)

    def _update_roi(self, h: int, w: int) -> None:
        pts = roi_points(self.tree)
        k1 = float(self.tree[f"{P}/lens_k1"])
        key = (pts, k1, h, w)
        if key == self._roi_key:
            return
        self._lens = Lens(k1, (w, h)) if k1 != 0.0 else None
        try:
            corners = self._undistort(self._inside_fold(np.array(pts, np.float64), k1))
            if not np.isfinite(corners).all():
                raise ValueError(f"a corner has no place without the lens (lens_k1 {k1:g})")
            self._H = homography(corners)
        except ValueError as e:
            log.warning("sensing/camera/roi: %s; using the whole image, lens uncorrected", e)
            pts, self._lens = CANVAS_CORNERS, None
            self._H = homography(pts)
        if self._lens is None:
            poly = np.array([[x * w, y * h] for x, y in pts], dtype=np.float32)
            mask = np.zeros((h, w), np.uint8)
            cv2.fillConvexPoly(mask, np.round(poly).astype(np.int32), 1)
            mask = mask.astype(bool)
        else:   # the canvas's outline is curved in a distorted picture: test every pixel
            if self._grid_key != (k1, h, w):   # the lens and size change rarely, the ROI may move every frame
                uv = (np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).reshape(-1, 2) + 0.5) / (w, h)
                self._grid = np.c_[self._undistort(uv), np.ones(h * w)]
                self._grid_key = (k1, h, w)
            q = self._grid @ self._H.T
            with np.errstate(invalid="ignore"):
                c = q[:, :2] / q[:, 2:3]
                mask = ((c >= 0.0) & (c <= 1.0)).all(axis=1).reshape(h, w)   # NaN (past the fold): outside
        self._roi_mask = mask
        self._roi_area = max(1, int(self._roi_mask.sum()))
        self._roi_key = key
        self.debug["roi"] = pts

    def to_canvas(self, u: float, v: float) -> tuple[float, float]:
        """Map a normalised camera-image point to canvas coordinates (lens corrected, then the ROI homography)."""
        if self._lens is not None:
            u, v = self._undistort(np.array([[u, v]], np.float64))[0]
        p = self._H @ np.array([u, v, 1.0])
        return float(p[0] / p[2]), float(p[1] / p[2])

    def reset(self) -> None:
        """Forget the background, tracks and history (as on a fresh start)."""
        self._shape: tuple[int, int] | None = None
        self._bg: np.ndarray | None = None
        self._bg3: np.ndarray | None = None  # the background in colour (BGR), for colour differences
        self._c3ok: np.ndarray | None = None  # where the colour background shows the room (see process)
        self._t_colour = -math.inf  # when the last colour frame was analysed in colour
        self._prev: np.ndarray | None = None
        self._last_motion: np.ndarray | None = None
        self._last_turn: np.ndarray | None = None  # when each pixel's colour last changed frame to frame
        self._chroma_prev: tuple[np.ndarray, np.ndarray] | None = None
        self._fg: np.ndarray | None = None
        self._kept_since: np.ndarray | None = None
        self._t_prev: float | None = None
        self._tracks: list[_Track] = []
        self._lost: list[tuple[_Track, float]] = []  # tracks ended lately, and when (see _people)
        self._serial = 0
        self._roi_key = None
        self._roi_mask: np.ndarray | None = None
        self._roi_area = 1
        self._H = np.eye(3)
        self._lens: Lens | None = None
        self._grid_key = None
        self._grid: np.ndarray | None = None   # every pixel, undistorted (homogeneous), for the ROI mask
        self._gain: float | None = None
        self._t_step = -math.inf  # when the whole frame's light last stepped
        self._dets = DetectionTracks()
        self._stir: np.ndarray | None = None  # motion nothing explains, pixel-seconds, decaying (see _close_ups)
        self._looked: np.ndarray | None = None  # when a close-up was last centred near each pixel
        self._bg_since: np.ndarray | None = None  # since when the background has held what it shows (see _settled)
        self._t_bg0 = -math.inf  # time of the frame the background started from
        self._bg_people: list[list] = []  # [box, gone since, last seen] of people found then (see _note_bg_people)
        self._tiles: np.ndarray | None = None
        self._hann: np.ndarray | None = None  # the phase correlation's window (see _register)
        self._raw_share = 0.0  # share of the last frame that was foreground before any test
        self._raw_spread = 0.0  # share of a 4x4 grid of the last frame with foreground in it
        self._shifts: list[tuple[float, float]] = []  # the view's shift against the background, frames running
        self._rolls: list[np.ndarray] = []  # turns of the view found by ECC, tries running (see _register)
        self._t_roll = -math.inf
        self._moves = 0  # moves of the background with the view since the last log line
        self._t_move_log = -math.inf
        self.debug: dict = {}

    # -- per frame -----------------------------------------------------
    def _small(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The frame at the analysis width (for a frame taller than wide, a camera mounted upright: its height
        at that size, so it costs what a landscape frame does): grey, and BGR (None for a grey camera, or one
        whose three channels are equal), as float32."""
        h0, w0 = frame.shape[:2]
        h, w = analysis_size(h0, w0, int(self.tree[f"{P}/width"]))
        small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA) if (w, h) != (w0, h0) else frame
        if small.ndim == 3 and small.shape[2] == 4:
            small = cv2.cvtColor(small, cv2.COLOR_BGRA2BGR)
        if small.ndim == 3 and small.shape[2] == 3:
            grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
            if has_colour(small):
                return grey.astype(np.float32), small.astype(np.float32)
            small = grey
        return small.reshape(h, w).astype(np.float32), None

    def _inside_follows(self, fg, labels, n, stats, dot_px, g2c, g2b, lc: float) -> np.ndarray:
        """Per blob: its inside (two pixels in from its outline) follows the background's gradients, closely
        (correlation >= ``lc``) and evenly (tiles holding more than ``TILE_OFF`` of its gradient energy do
        not fall under ``TILE_CORR``).

        A hard-edged spot or projector cue has a rim that the background lacks, which pulls the whole
        blob's correlation down (0.2-0.5), while its inside keeps the room's texture (0.85-0.95); a
        person's inside has structure of its own.  Evenly: a visitor standing in a pool of light or in
        their own shadow makes one blob with it, and the pool's inside follows the room while theirs
        does not.  Only blobs whose inside is a quarter of their area or more (and 12 px): a small or
        thin blob is mostly outline."""
        inner = cv2.erode(fg, _K3, iterations=2).astype(bool)
        lab_i = labels[inner]
        h, w = fg.shape
        tiles = self._tile_index(h, w)[inner]
        nt = (h + TILE - 1) // TILE * ((w + TILE - 1) // TILE)
        key = lab_i.astype(np.int64) * nt + tiles
        size = n * nt
        dot_t = np.bincount(key, weights=dot_px[inner], minlength=size)
        c_t = np.bincount(key, weights=g2c[inner], minlength=size)
        b_t = np.bincount(key, weights=g2b[inner], minlength=size)
        cnt = np.bincount(lab_i, minlength=n)
        dot, c, b = (x.reshape(n, nt).sum(axis=1) for x in (dot_t, c_t, b_t))
        corr = dot / np.sqrt(np.maximum(c * b, 1e-6))
        corr_t = dot_t / np.sqrt(np.maximum(c_t * b_t, 1e-6))
        # each tile's share of the inside's gradient energy, the frame's and the background's alike
        share_t = 0.5 * (c_t.reshape(n, nt) / np.maximum(c, 1e-6)[:, None]
                         + b_t.reshape(n, nt) / np.maximum(b, 1e-6)[:, None])
        off = np.where(corr_t.reshape(n, nt) < TILE_CORR, share_t, 0.0).sum(axis=1)
        roomy = cnt >= np.maximum(12, 0.25 * stats[:, cv2.CC_STAT_AREA])
        return roomy & (corr >= lc) & (off <= TILE_OFF)

    def _kept_in_light(self, cur, fg, labels, n, stats, cand, dot_px, g2c, g2b, lc: float, t: float) \
            -> np.ndarray | None:
        """Pixels kept as someone for ``KEPT_S`` up to the previous frame, inside a blob now taken for light
        (``cand``), whose own gradients do not follow the background's (correlation under ``lc``) and do
        follow the previous frame's (``STAY``).

        A spot or lamp switched on over or beside a still visitor makes one blob with them whose gradients
        are the light's, and would sink them with it.  The light is judged by the whole blob; who was there
        before it by their own part.  In an empty room nobody was kept, so a light there is judged as
        before; a coloured spot that moves or changes hue may be kept on one frame and taken for light on
        the next, which is why only what was kept unbroken for a while counts.  None where there are none."""
        if self._fg is None or not cand.any():
            return None
        prev = (t - self._kept_since >= KEPT_S) & fg.astype(bool) & cand[labels]
        if not prev.any():
            return None
        lab = labels[prev]
        m = np.bincount(lab, minlength=n)
        corr = _blob_corr(lab, n, dot_px[prev], g2c[prev], g2b[prev])
        # Still there: their part of the frame follows the previous frame's gradients (the light scales
        # them); where they have just left, it shows the room instead.
        cx, cy = _sobel(cur)
        px, py = _sobel(self._prev)
        stay = _blob_corr(lab, n, (cx * px + cy * py)[prev], (cx * cx + cy * cy)[prev], (px * px + py * py)[prev])
        ok = cand & (m >= 12) & (corr < lc) & (stay >= STAY)
        ok[0] = False
        return prev & ok[labels] if ok.any() else None

    def _gain_round(self, cur, bg, cur3, bg3, over, kept) -> tuple[np.ndarray, np.ndarray | None]:
        """The light's gain (frame over background) at the pixels ``over``, taken from the room round them
        (every pixel not ``kept``): a normalised Gaussian average of the room's gains, close first, wider
        where the room is far.  Grey, and per colour channel where ``cur3`` is given."""
        h, w = cur.shape
        ys, xs = np.nonzero(over)
        s = max(1.0, 2.0 * _scale(h, w))
        pad = int(6 * 4 * s)
        y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + pad + 1)
        x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + pad + 1)
        room = (~kept[y0:y1, x0:x1]).astype(np.float32)
        inner = over[y0:y1, x0:x1]

        def spread(ratio):
            out = np.ones(ratio.shape, np.float32)
            out_set = np.zeros(ratio.shape, bool)
            for sig in (s, 4 * s):
                num = cv2.GaussianBlur(ratio * room, (0, 0), sig)
                den = cv2.GaussianBlur(room, (0, 0), sig)
                ok = (den > 0.05) & ~out_set
                out[ok] = num[ok] / den[ok]
                out_set |= ok
            return out[inner]

        g = spread(((cur[y0:y1, x0:x1] + 4.0) / (bg[y0:y1, x0:x1] + 4.0)).astype(np.float32))
        g3 = None
        if cur3 is not None:
            r3 = ((cur3[y0:y1, x0:x1] + 4.0) / (bg3[y0:y1, x0:x1] + 4.0)).astype(np.float32)
            g3 = np.stack([spread(np.ascontiguousarray(r3[..., c])) for c in range(3)], axis=-1)
        return g, g3

    def _seam_ratio(self, cur, bg, fg, edge, lab_e, n, which, floor: float) -> np.ndarray:
        """Per blob: how much more the frame than the background changes across the blob's outline, the
        smaller of two scales (``SEAM_PX`` at the default analysis width, scaled with it).

        At each outline pixel the mean of the picture over the blob's side of a small window is compared
        with its mean over the other side; outside the blob frame and background agree, so the picture
        that changes more there is the one showing something else than the room.  A visitor's clothes
        differ from the wall round them; the place a visitor left shows the wall, continuing its
        surroundings, while the background still shows the visitor.  Local means, not edges: on a busy
        wall (shelves, patterns) the room's own edges along the outline outweigh a still visitor's, and
        an edge test takes the visitor for a ghost and the place they left for a person.  The smaller
        ratio of the two scales: a pattern coarser than the small window averages out in the large one.
        A change across the outline under ``floor`` (grey levels) is noise: a compressed or noisy frame
        steps by a few levels where the learnt background is smooth, and that alone must not make a
        leftover of the place someone left "its own".  Only for the blobs ``which`` marks (the others
        get inf)."""
        h, w = fg.shape
        ys, xs = np.nonzero(edge)  # the order of ``edge``'s boolean index, as ``lab_e``
        sel = which[lab_e]
        ys, xs, lab_e = ys[sel], xs[sel], lab_e[sel]
        ratio = np.full(n, np.inf)
        if not len(ys):
            return ratio
        cnt = np.maximum(np.bincount(lab_e, minlength=n), 1)
        # Window sums at those outline pixels only, from integral images over the box round them (windows
        # clipped at the frame's border).
        radii = [max(1, int(round(px * _scale(h, w))) // 2) for px in SEAM_PX]
        m = max(radii)
        ty, tx = max(int(ys.min()) - m, 0), max(int(xs.min()) - m, 0)
        by_, bx = min(int(ys.max()) + m + 1, h), min(int(xs.max()) + m + 1, w)
        cur, bg = cur[ty:by_, tx:bx], bg[ty:by_, tx:bx]
        ins = fg[ty:by_, tx:bx].astype(np.float32)
        ys, xs, h, w = ys - ty, xs - tx, by_ - ty, bx - tx
        # One integral image of every plane (inside mask; frame, frame inside; background, background inside),
        # so each window's four corners are gathered once for all of them.
        c = 1 if cur.ndim == 2 else cur.shape[2]
        stack = np.empty((h, w, 1 + 4 * c), np.float32)
        stack[..., 0] = ins
        for k, img in ((1, cur), (1 + 2 * c, bg)):
            img = img.reshape(h, w, c)
            stack[..., k:k + c] = img
            np.multiply(img, ins[..., None], out=stack[..., k + c:k + 2 * c])
        integ = cv2.integral(stack, sdepth=cv2.CV_64F).reshape(-1, stack.shape[2])
        wi = w + 1
        for r in radii:
            y0, y1 = np.maximum(ys - r, 0), np.minimum(ys + r + 1, h)
            x0, x1 = np.maximum(xs - r, 0), np.minimum(xs + r + 1, w)
            sums = integ[y1 * wi + x1] - integ[y0 * wi + x1] - integ[y1 * wi + x0] + integ[y0 * wi + x0]
            di = sums[:, 0]
            do = (y1 - y0) * (x1 - x0) - di
            if cur.ndim == 3:
                di, do = di[:, None], do[:, None]
            steps = []
            for k in (1, 1 + 2 * c):
                s_all, s_in = sums[:, k:k + c], sums[:, k + c:k + 2 * c]
                if cur.ndim == 2:
                    s_all, s_in = s_all[:, 0], s_in[:, 0]
                d = np.abs(s_in / np.maximum(di, 1e-6) - (s_all - s_in) / np.maximum(do, 1e-6))
                if d.ndim == 2:
                    d = d.mean(axis=1)
                steps.append(np.bincount(lab_e, weights=d, minlength=n) / cnt)
            ratio = np.minimum(ratio, np.maximum(steps[0], floor) / np.maximum(steps[1], floor))
        ratio[~which] = np.inf
        return ratio

    def _tile_index(self, h: int, w: int) -> np.ndarray:
        """Each pixel's tile (``TILE`` x ``TILE`` pixels, row-major), cached per frame size."""
        if self._tiles is None or self._tiles.shape != (h, w):
            yy, xx = np.mgrid[0:h, 0:w]
            self._tiles = (yy // TILE) * ((w + TILE - 1) // TILE) + xx // TILE
        return self._tiles

    def _cells_of(self, h: int, w: int) -> tuple[int, int, int, int]:
        """The exposure grid: cells down and across, and each cell's height and width in pixels."""
        gx = max(2, min(int(self.tree[f"{P}/cells"]), w // 4))
        gy = max(2, min(h // 4, round(gx * h / w)))
        return gy, gx, h // gy, w // gx

    def _cell_field(self, ratio: np.ndarray, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A ratio image, (h, w) or (h, w, 3), as a smooth field robust to people (``size`` (w, h) if given,
        else the image's): each cell's median, held within ``cell_dev`` of the median over cells (returned
        too, one per channel) and smoothed across neighbouring cells."""
        h, w = ratio.shape[:2]
        gy, gx, ch, cw = self._cells_of(*(ratio.shape[:2] if size is None else size[::-1]))
        if size is not None:  # a subsampled image: its cells hold the same share of it
            ch, cw = h // gy, w // gx
        r = ratio[: gy * ch, : gx * cw].reshape(gy, ch, gx, cw, -1)
        k = r.shape[4]
        cells = _medians(r.transpose(0, 2, 4, 1, 3).reshape(gy, gx, k, ch * cw))
        g = np.median(cells.reshape(-1, k), axis=0)
        dev = float(self.tree[f"{P}/cell_dev"])
        cells = np.clip(cells, g * (1.0 - dev), g * (1.0 + dev)).astype(np.float32)
        if ratio.ndim == 2:
            cells = cells[..., 0]
        if min(gx, gy) >= 3:
            cells = cv2.medianBlur(cells, 3)  # a cell a visitor fills follows its neighbours
        return cv2.resize(cells, size or (w, h), interpolation=cv2.INTER_LINEAR), g

    def _light(self, cur: np.ndarray, bg: np.ndarray, clip_px: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """The light change frame/background as a smooth field, robust to people (see module doc), and the
        global gain.  ``clip_px``: pixels clipped on the camera, whose ratio is only a lower bound."""
        full = (cur + 4.0) / (bg + 4.0)
        if clip_px is not None and clip_px.any():
            free = full[::2, ::2][~clip_px[::2, ::2]]  # every other pixel each way: the median is as good
            if free.size >= CLIP_FREE * full[::2, ::2].size:
                # An exposure step that clips a white wall: the wall's ratio (255 over its old level) would
                # pull the cells it fills below the step, and the rest of those cells (a window, the floor)
                # would read as brightened, as foreground.
                full = np.where(clip_px, np.maximum(full, float(np.median(free))), full)
        field, g = self._cell_field(full)
        g = float(g[0])
        # Mains flicker on a rolling shutter: bands across the rows, finer than the cells.  Each row's median
        # residual ratio follows them, smoothed over 3 rows (no smoothing follows each row's noise, and tipped
        # a still visitor's outline test; more blurs away bands a few rows apart); the clamp bounds what a
        # visitor filling most of a row can pull.
        rows = _medians(full / field).astype(np.float32)
        rows = cv2.blur(np.clip(rows, 1.0 - ROW_DEV, 1.0 + ROW_DEV)[:, None], (1, 3))[:, 0]
        field *= rows[:, None]
        return field, g

    def _tint(self, cur3: np.ndarray, bg3: np.ndarray, field: np.ndarray) -> np.ndarray:
        """The BGR frame in the background's light and colour: the grey ``field`` taken out, then each
        channel's own change, per cell like the light (a colour-temperature swing, a tinted cue)."""
        h, w = field.shape
        # Every other pixel each way: a colour cast is as smooth as the light, and a quarter of the pixels
        # still give each cell's median over a hundred samples (at the default width), at a quarter of the cost.
        q = (cur3[::2, ::2] + 4.0) / ((bg3[::2, ::2] + 4.0) * field[::2, ::2, None])
        tint, _ = self._cell_field(q, (w, h))
        return (cur3 + 4.0) / (field[..., None] * tint) - 4.0

    def process(self, frame: np.ndarray, t: float) -> CameraFrame:
        """Analyse one frame taken at time ``t`` (seconds, increasing)."""
        tr = self.tree
        cur, cur3 = self._small(frame)
        h, w = cur.shape
        if self._shape != (h, w):
            self.reset()
            if self.opinion is not None and hasattr(self.opinion, "rearm"):
                self.opinion.rearm()   # a run on the frame the background starts from (see _note_bg_people)
            self._shape = (h, w)
            self._bg = cur.copy()
            self._prev = cur.copy()
            self._last_motion = np.full((h, w), -np.inf, np.float32)
            self._last_turn = np.full((h, w), -np.inf, np.float32)
            self._chroma_prev = None
            self._fg = np.zeros((h, w), bool)
            self._hasty_run = np.zeros((h, w), np.int16)  # frames running a pixel was taken for moving light
            self._kept_since = np.full((h, w), np.inf)  # since when a pixel has been kept unbroken (s)
            self._stir = np.zeros((h, w), np.float32)
            self._looked = np.full((h, w), -np.inf)
            self._bg_since = np.full((h, w), t)
            self._t_bg0 = t
            self._t_prev = t
        elif self._raw_share >= SHIFT_FG:
            self._register(cur, cur3, t)
        else:
            self._shifts, self._rolls = [], []  # "frames running": a quiet frame ends a run
        chroma = float(tr[f"{P}/chroma_threshold"])
        if chroma <= 0:
            self._bg3 = None  # colour turned off: grey alone
        elif cur3 is not None and (self._bg3 is None or t - self._t_colour > float(tr[f"{P}/learn_s"])):
            # The colour background starts from this frame (the first, colour turned back on, or colour
            # back after a long grey spell: a day/night camera).  Where someone is kept in view now, it shows
            # them, not the room: there its colour and colour edges are not trusted (grey decides) until
            # the place has been empty.
            self._bg3 = cur3.copy()
            self._c3ok = ~cv2.dilate(self._fg.astype(np.uint8), _ellipse(3)).astype(bool)
        if cur3 is not None and self._bg3 is not None:
            self._t_colour = t
        self._update_roi(h, w)
        dt = max(0.0, t - self._t_prev) if self._t_prev is not None else 0.0
        self._t_prev = t
        # A colour camera's grey-looking frame (black, or colour dropped for a moment) is analysed in grey,
        # and the colour background is kept for the frames that follow.
        bg, bg3 = self._bg, (self._bg3 if cur3 is not None else None)

        # Clipped on the camera (any channel at CLIP): no colour said there.  Pale and clipped (see CLIP_GREY):
        # the room there is at least this bright, no more said.  With its neighbours: a pixel at the analysis
        # width that straddles a clipped wall and a pillar's edge is partly clipped, darker than the step made
        # it, though under CLIP.
        clipped = (np.maximum(np.maximum(cur3[..., 0], cur3[..., 1]), cur3[..., 2]) if cur3 is not None
                   else cur) >= CLIP
        pale = clipped & (cur >= CLIP_GREY) if cur3 is not None else clipped
        clip_px = cv2.dilate(pale.view(np.uint8), _K3).view(bool) if pale.any() else pale
        field, gain = self._light(cur, bg, clip_px)
        # the light stepped since the last frame (a lamp, an exposure step): its "motion" is not people's
        light_step = self._gain is not None and abs(gain / max(self._gain, 1e-6) - 1.0) > 0.02
        self._gain = gain
        if light_step:
            self._t_step = t
        cur = (cur + 4.0) / field - 4.0  # the frame in the background's light

        diff = np.abs(cur - bg)
        # A clipped pixel darker than the background (in its light) is the room clipped, not something there:
        # it is left out of the foreground, and the background there learns nothing from it (below).
        clip_dark = clip_px & (cur < bg)
        diff[clip_dark] = 0.0
        noise = 1.4826 * float(np.median(diff))  # robust: people cover less than half the view
        # The threshold is meant in the brighter picture's grey levels: a background learnt in a dim hour
        # holds every contrast compressed by the dimming, so compare there with a threshold scaled alike.
        thr = max(float(tr[f"{P}/threshold"]) / math.sqrt(max(1.0, gain)), float(tr[f"{P}/noise_k"]) * noise)
        raw = diff > thr
        if bg3 is not None:
            # Colour: clothes as bright as the wall behind them but not its colour.  Chroma (blue-green,
            # red-green) differences, after each channel's light change is taken out, with their own
            # robust noise level.  Not where a channel clips: a wall turned white by an exposure step has
            # changed colour, and nobody is there.
            cur3 = self._tint(cur3, bg3, field)
            cu, cv_ = cur3[..., 0] - cur3[..., 1], cur3[..., 2] - cur3[..., 1]
            bu, bv = bg3[..., 0] - bg3[..., 1], bg3[..., 2] - bg3[..., 1]
            dc = np.maximum(np.abs(cu - bu), np.abs(cv_ - bv))
            dc[clipped | ~self._c3ok] = 0.0
            thr_c = max(chroma / math.sqrt(max(1.0, gain)),
                        float(tr[f"{P}/noise_k"]) * CHROMA_NOISE * float(np.median(dc[::2, ::2])))
            raw |= dc > thr_c
            if self._chroma_prev is not None:
                # Colour changing frame to frame: someone whose clothes are the wall's grey moves only here.
                pu, pv = self._chroma_prev
                turned = (np.maximum(np.abs(cu - pu), np.abs(cv_ - pv)) > thr_c) & ~clipped
                self._last_turn[cv2.medianBlur(turned.view(np.uint8), 3).view(bool)] = t
            self._chroma_prev = (cu, cv_)
        else:
            self._chroma_prev = None
        raw = raw.astype(np.uint8)
        raw = cv2.morphologyEx(raw, cv2.MORPH_OPEN, _K3)  # single-pixel speckle is noise, not people
        r = int(tr[f"{P}/close_px"])
        fg = cv2.morphologyEx(raw, cv2.MORPH_CLOSE, _ellipse(r)) if r > 0 else raw

        moving = (np.abs(cur - self._prev) > float(tr[f"{P}/motion_threshold"])).astype(np.uint8)
        moving = cv2.medianBlur(moving, 3).astype(bool)  # drop single-pixel sensor noise
        self._last_motion[moving] = t

        # Question every still blob: its own outline, or the background's (a ghost) / none (light)?
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        # Motion that neither a blob of a person's size nor a live detection explains (someone the background
        # already holds, swaying), remembered for the detector's close-ups.
        self._stir *= math.exp(-dt / STIR_S)
        if not light_step and dt > 0:
            big = stats[:, cv2.CC_STAT_AREA] >= max(1.0, float(tr[f"{P}/min_blob"]) * self._roi_area)
            big[0] = False
            explained = cv2.dilate(big[labels].astype(np.uint8), _K3).astype(bool)
            for tk in self._dets.live():
                x0, y0, x1, y1 = _box_px(tk.box, h, w)
                explained[y0:y1, x0:x1] = True
            self._stir[moving & ~explained & self._roi_mask] += min(dt, 1.0)
        forget = np.zeros(n, bool)
        merit = np.zeros(n, bool)   # still blobs kept by their own outline (not by having moved lately)
        over = None  # someone kept last frame, inside a blob now taken for light (see _kept_in_light)
        hasty = np.zeros(n, bool)   # blobs taken for light while they still move: not sunk fast (below)
        if n > 1:
            settle = float(tr[f"{P}/settle_s"])
            recent = (t - self._last_motion) < settle
            stirring = np.bincount(labels[recent], minlength=n)
            still = stirring <= np.maximum(2, 0.005 * stats[:, cv2.CC_STAT_AREA])
            still[0] = False
            edge = cv2.morphologyEx(fg, cv2.MORPH_GRADIENT, _K3).astype(bool)
            if bg3 is None:
                cx, cy = _sobel(cur)
                bx, by = _sobel(bg)
                gc, gb = cv2.magnitude(cx, cy), cv2.magnitude(bx, by)
                dot_px = cx * bx + cy * by
            else:
                # In colour, each channel's gradients (root mean square over the three: a grey level per pixel
                # in a neutral room): coloured light scales each channel's by its own factor, so they still
                # follow the background's, and clothes the wall's grey have edges of their own.
                cx, cy = _sobel(cur3)
                bx, by = _sobel(bg3)
                gc = np.sqrt(_channels(cx * cx + cy * cy) * (1.0 / 3.0))
                gb = np.sqrt(_channels(bx * bx + by * by) * (1.0 / 3.0))
                dot_px = _channels(cx * bx + cy * by) * (1.0 / 3.0)
                if not self._c3ok.all():  # grey where the colour background shows a visitor, not the room
                    gx_, gy_ = _sobel(cur)
                    hx_, hy_ = _sobel(bg)
                    bad = ~self._c3ok
                    gc[bad] = cv2.magnitude(gx_, gy_)[bad]
                    gb[bad] = cv2.magnitude(hx_, hy_)[bad]
                    dot_px[bad] = (gx_ * hx_ + gy_ * hy_)[bad]
            lab_e = labels[edge]
            # The outline ring belongs to the blob it touches (the inner half carries the label).
            dil = cv2.dilate(labels.astype(np.float32), _K3)[edge].astype(np.int64)
            lab_e = np.where(lab_e > 0, lab_e, dil)
            cnt = np.bincount(lab_e, minlength=n).astype(np.float64)
            ec = np.bincount(lab_e, weights=gc[edge], minlength=n) / np.maximum(cnt, 1)
            # Light keeps the room's structure: gradients inside the blob point the same way as the
            # background's (a person's or a ghost's do not).
            g2c, g2b = gc * gc, gb * gb
            corr = _blob_corr(labels.ravel(), n, dot_px.ravel(), g2c.ravel(), g2b.ravel())
            lc = float(tr[f"{P}/light_corr"])
            light = corr >= lc
            if still.any():
                light |= still & self._inside_follows(fg, labels, n, stats, dot_px, g2c, g2b, lc)
            # The ghost test (still blobs only): which picture does the blob's inside continue across its
            # outline?  Within SEAM_UNSURE of even the seam says little (clothes as bright as the wall, on
            # a mono camera): there the outline's edges decide, the frame's against the background's.
            seam = np.zeros(n)
            own = np.zeros(n, bool)
            if still.any():
                seam = self._seam_ratio(*((cur, bg) if bg3 is None or not self._c3ok.all() else (cur3, bg3)),
                                        fg, edge, lab_e, n, still, SEAM_FLOOR * thr)
                sr = float(tr[f"{P}/seam_ratio"])
                eb = np.bincount(lab_e, weights=gb[edge], minlength=n) / np.maximum(cnt, 1)
                own = ((seam >= sr) | ((seam >= SEAM_UNSURE * sr) & (ec >= float(tr[f"{P}/edge_ratio"]) * eb))) \
                    & (ec >= float(tr[f"{P}/edge_min"]))
            forget = (still & ~own) | light
            if t - self._t_step < settle:  # only just after a light step (see HASTY_FRAMES)
                hasty = light & ~still
            merit = still & own & ~light
            forget[0] = False
            over = self._kept_in_light(cur, fg, labels, n, stats, (corr >= lc) & forget, dot_px, g2c, g2b, lc, t)
            self.debug["blobs"] = [(int(i), int(stats[i, cv2.CC_STAT_AREA]), round(float(ec[i]), 1),
                                    round(float(seam[i]), 2), round(float(corr[i]), 2))
                                   for i in np.nonzero(still)[0]]
        live = self._second_opinion(frame, t, labels, n, merit, forget, fg, moving, h, w, light_step)
        keep = ~forget
        keep[0] = False
        fg_kept = keep[labels] & fg.astype(bool)
        forgetting = forget[labels]
        heal = self._heal_ghosts(fg_kept, t, h, w)
        if heal is not None:
            fg_kept &= ~heal
        relight = None
        if over is not None:
            over &= forgetting  # blobs the detector kept whole need no rescue
            if over.any():
                fg_kept |= over
                forgetting &= ~over
                relight = self._gain_round(cur, bg, cur3 if bg3 is not None else None, bg3, over, fg_kept)

        # Learning by state.
        a_learn = 1.0 - math.exp(-dt / float(tr[f"{P}/learn_s"]))
        a_absorb = 1.0 - math.exp(-dt / float(tr[f"{P}/absorb_s"]))
        a_forget = 1.0 - math.exp(-dt / float(tr[f"{P}/forget_s"]))
        # A kept blob's halo (soft edges under the threshold) learns no faster than the blob: else the
        # background grows the visitor's outline and the still visitor would fail their own edge test.
        near = cv2.dilate(fg_kept.astype(np.uint8), _ellipse(3)).astype(bool)
        rate = np.where(near, a_absorb, a_learn).astype(np.float32)
        rate[forgetting] = a_forget
        self._bg_since[forgetting] = t   # a blob sunk into the background: it may now hold a visitor
        # Just after a light step, a blob taken for light while it still moves is left out of presence but
        # not sunk fast until it has been taken for light HASTY_FRAMES frames running: a visitor walking in
        # as the lamp switched, whose outline matched the room's lines for one frame (a door frame behind
        # them), would otherwise be half the background by the next frame and stand there unseen.  Light
        # matches frame after frame and is sunk then.  Not under steady light: a spot sweeping the room,
        # left unsunk, stops matching, is kept as something moving, and held as a person once it stops.
        hasty_px = (hasty & forget)[labels]
        if relight is not None:
            hasty_px &= ~over
        self._hasty_run = np.where(hasty_px, np.minimum(self._hasty_run + 1, HASTY_FRAMES), 0).astype(np.int16)
        rate[hasty_px & (self._hasty_run < HASTY_FRAMES)] = a_learn
        rate[moving & ~forgetting] = 0.0
        rate[clip_dark] = 0.0
        if heal is not None:
            rate[heal] = 1.0
            self._bg_since[heal] = t
        bg += rate * (cur - bg)
        if bg3 is not None:
            bg3 += rate[..., None] * (cur3 - bg3)
            self._c3ok |= ~near  # a place no longer near anyone kept: the colour background there follows the room
        if relight is not None:
            # The background under them takes the light as the room round them does (at the same pace), so
            # they stand out against the room as now lit, not as it was.
            r, r3 = relight
            bg[over] = (bg[over] + 4.0) * (1.0 + a_forget * (r - 1.0)) - 4.0
            if r3 is not None:
                bg3[over] = (bg3[over] + 4.0) * (1.0 + a_forget * (r3 - 1.0)) - 4.0

        self._prev = cur
        self._raw_share = float(np.count_nonzero(fg)) / fg.size
        cells = cv2.resize(fg.astype(np.float32), (4, 4), interpolation=cv2.INTER_AREA)
        self._raw_spread = float(np.mean(cells > 0.01))
        self._kept_since = np.where(fg_kept, np.minimum(self._kept_since, t), np.inf)
        self._fg = fg_kept
        roi = self._roi_mask
        share = float(np.count_nonzero(fg_kept & roi)) / self._roi_area
        motion = float(np.count_nonzero(moving & roi)) / self._roi_area
        people = self._people(fg_kept & roi, h, w, dt, live, t)
        presence = min(1.0, max(share, float(tr[f"{P}/person_floor"]) * len(people)))
        speed = float(np.mean([math.hypot(p.vx, p.vy) for p in people])) if people else 0.0
        self.debug.update(fg=fg_kept, raw=fg.astype(bool), moving=moving, forgetting=forgetting, gain=gain,
                          threshold=thr, frame=frame, detections=live)
        return CameraFrame(t, presence, motion, speed, people)

    def _register(self, cur: np.ndarray, cur3: np.ndarray | None, t: float) -> None:
        """Move the background with the view when the camera was knocked (see SHIFT_*, ROLL_*).

        A bump of a couple of pixels puts every edge of the room in the foreground, still, with outlines of
        its own: without this the empty room read as people until the background absorbed it (a 2.7-pixel
        bump at the analysis width: 0.16-0.88 presence for as long as it was watched).  The moved
        background keeps what it knew (a still visitor stays seen); the strips the view newly shows are
        taken from the frame."""
        h, w = cur.shape
        if self._hann is None or self._hann.shape != (h, w):
            self._hann = cv2.createHanningWindow((w, h), cv2.CV_32F)
        gain = float(np.mean(cur)) / max(float(np.mean(self._bg)), 1.0)  # the light may have changed too
        (dx, dy), resp = cv2.phaseCorrelate(self._bg, cur, self._hann)
        if resp >= SHIFT_RESP and math.hypot(dx, dy) >= SHIFT_MIN * _scale(h, w):
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            if self._explains(m, cur, gain):
                if self._shifts and math.hypot(dx - self._shifts[-1][0], dy - self._shifts[-1][1]) > SHIFT_AGREE:
                    self._shifts = []
                self._shifts.append((dx, dy))
                if len(self._shifts) >= SHIFT_FRAMES:
                    self._shifts = []
                    self._move_background(m, cur, cur3, gain, t)
                return
        self._shifts = []
        # A roll about the lens slides nothing: phase correlation finds no shift.  An ECC fit of a turn and
        # a slide, at most once every ROLL_EVERY_S where much of the frame stands out.
        if self._raw_share < ROLL_FG or self._raw_spread < ROLL_SPREAD or t - self._t_roll < ROLL_EVERY_S:
            return
        self._t_roll = t
        # At half the analysis width: a quarter of the cost, and a turn is as well measured.
        half = (max(8, w // 2), max(8, h // 2))
        try:
            _, inv = cv2.findTransformECC(cv2.resize(cur, half, interpolation=cv2.INTER_AREA),
                                          cv2.resize(self._bg, half, interpolation=cv2.INTER_AREA),
                                          np.eye(2, 3, dtype=np.float32), cv2.MOTION_EUCLIDEAN,
                                          (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4), None, 5)
        except cv2.error:  # did not converge: a frame that is not the room slid
            self._rolls = []
            return
        inv[0, 2] *= w / half[0]
        inv[1, 2] *= h / half[1]
        m = cv2.invertAffineTransform(inv).astype(np.float32)
        corners = np.float32([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]])
        # A slide is the phase correlation's to find; this path is for turns only.
        if abs(_turn_deg(m)) < ROLL_MIN_DEG or not self._explains(m, cur, gain):
            self._rolls = []
            return
        if self._rolls and float(np.max(np.hypot(*(corners @ (m - self._rolls[-1]).T).T))) > ROLL_AGREE * _scale(h, w):
            self._rolls = []
        self._rolls.append(m)
        if len(self._rolls) >= ROLL_TIMES:
            self._rolls = []
            self._move_background(m, cur, cur3, gain, t)

    def _explains(self, m: np.ndarray, cur: np.ndarray, gain: float) -> bool:
        """Whether moving the background by the affine ``m`` (background to frame) makes at least SHIFT_FIXED of
        the frame agree with it that did not, and SHIFT_EXPLAINS times what it makes disagree."""
        h, w = cur.shape
        moved = cv2.warpAffine(self._bg, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        thr = float(self.tree[f"{P}/threshold"])
        before = np.abs(cur - gain * self._bg) > thr
        after = np.abs(cur - gain * moved) > thr
        fixed = np.count_nonzero(before & ~after) / before.size
        broken = np.count_nonzero(after & ~before) / before.size
        return fixed >= SHIFT_FIXED and fixed >= SHIFT_EXPLAINS * broken

    def _move_background(self, m: np.ndarray, cur: np.ndarray, cur3: np.ndarray | None, gain: float,
                         t: float) -> None:
        """Warp the background and what is kept per place of it by the affine ``m`` (background to frame)."""
        h, w = cur.shape
        # The strips the view newly shows (and their edge pixels, interpolated with the border) come from
        # the frame, in the background's light: nothing is known of them.
        seen = cv2.warpAffine(np.ones((h, w), np.float32), m, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0.0) >= 0.999
        moved = cv2.warpAffine(self._bg, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self._bg = np.where(seen, moved, (cur + 4.0) / max(gain, 1e-3) - 4.0).astype(np.float32)
        if self._bg3 is not None:
            bg3 = cv2.warpAffine(self._bg3, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            if cur3 is not None:
                gain3 = cur3.mean(axis=(0, 1)) / np.maximum(self._bg3.mean(axis=(0, 1)), 1.0)
                new3 = (cur3 + 4.0) / np.maximum(gain3, 1e-3) - 4.0
            else:
                new3 = bg3
            self._bg3 = np.where(seen[..., None], bg3, new3).astype(np.float32)
            c3ok = cv2.warpAffine(self._c3ok.view(np.uint8), m, (w, h), flags=cv2.INTER_NEAREST,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=1)
            self._c3ok = c3ok.view(bool) | ~seen
        since = cv2.warpAffine(self._bg_since, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        self._bg_since = np.where(seen, since, t)
        # Boxes follow the view's slide at the frame's centre (a turn of a few degrees moves a box's corners
        # less than the matching tolerates).
        cx, cy = m @ np.float32([w / 2.0, h / 2.0, 1.0])
        dx, dy = float(cx - w / 2.0), float(cy - h / 2.0)
        self._dets.shift(dx / w, dy / h)
        self._bg_people = [[(b[0] + dx / w, b[1] + dy / h, b[2] + dx / w, b[3] + dy / h), g, s]
                           for b, g, s in self._bg_people]
        self._moves += 1
        if t - self._t_move_log >= 60.0:  # a camera shaken all day logs once a minute, not every move
            log.info("camera view moved by %.1f, %.1f px at the analysis width, turned %.1f deg: background moved "
                     "with it (%d such moves since the last line)", dx, dy, _turn_deg(m), self._moves)
            self._moves, self._t_move_log = 0, t

    def _second_opinion(self, frame, t, labels, n, merit, forget, fg, moving, h, w, light_step=False) -> list:
        """Fold in the detector's answers; keep still blobs inside live detections (clears ``forget`` for
        those blobs).  ``merit``: per blob, still and kept by its own outline; ``light_step``: the light
        changed since the last frame, so nothing moving now says someone is there.  Returns the live tracks."""
        tr = self.tree
        # A close-up's find is someone new only where motion nothing explains gathered inside its body box
        # (the close-up may take in a pole or a sign beside the motion that called for it).
        results = self._ask(frame, t)
        self._note_bg_people(results, t)
        self._dets.merge(results, t, float(tr[f"{P}/detect_hold_s"]),
                         admit=lambda d: self._stirred(d.box, h, w),
                         settled=lambda box, since: self._settled(box, since, fg, moving, h, w),
                         unchanged=lambda box, since: self._unchanged(box, since, fg, h, w))
        if not self._dets.remembers():
            return []
        own_px = merit[labels] & fg.astype(bool)
        # A light change moves pixels everywhere at once: only motion concentrated in a box (four times as
        # dense as in the rest of the view) is someone there.
        moved_all = int(np.count_nonzero(moving & self._roi_mask))

        def active_in(box) -> bool:
            x0, y0, x1, y1 = _box_px(box, h, w)
            area = max(1, (x1 - x0) * (y1 - y0))
            moved = 0 if light_step else np.count_nonzero(moving[y0:y1, x0:x1])
            elsewhere = max(0, moved_all - moved) / max(1, self._roi_area - area)
            return bool((moved > max(3, 0.002 * area) and moved / area > 4.0 * elsewhere)
                        or np.count_nonzero(own_px[y0:y1, x0:x1]) > 0.02 * area)

        self._dets.activity(t, active_in, float(tr[f"{P}/fixture_s"]))
        live = self._dets.live()
        if live and n > 1 and forget.any():
            inside = np.zeros((h, w), bool)
            for tk in live:
                x0, y0, x1, y1 = _box_px(tk.box, h, w)
                inside[y0:y1, x0:x1] = True
            share = np.bincount(labels[inside], minlength=n) / np.maximum(np.bincount(labels.ravel(), minlength=n), 1)
            rescue = forget & (share >= 0.5)
            rescue[0] = False
            forget &= ~rescue  # kept: a person the detector sees, whatever the light test said
        return live

    def _note_bg_people(self, results, t: float) -> None:
        """Remember the whole-frame finds of the run on the frame the background started from (they are in
        the background), each as ``[box, gone since, last seen]``: when a run last found someone in that place
        (overlap at least 0.5), and when a run first found nobody overlapping it (back to ``None`` when a run
        finds someone there again)."""
        if t - self._t_bg0 > GHOST_WATCH_S:
            self._bg_people = []
            return
        for tf, dets in results:
            if tf == self._t_bg0:
                self._bg_people += [[d.box, None, tf] for d in dets if not d.close]
                continue
            for entry in self._bg_people:
                box = entry[0]
                hip = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
                if any(same_person(d, box, hip) for d in dets):
                    entry[1] = None
                    if any(iou(d.box, box) >= 0.5 for d in dets):
                        entry[2] = tf
                elif entry[1] is None:
                    entry[1] = tf
        self._bg_people = [e for e in self._bg_people if e[1] is None or t - e[1] <= GHOST_HEAL_S]

    def _heal_ghosts(self, fg_kept: np.ndarray, t: float, h: int, w: int) -> np.ndarray | None:
        """Pixels of the places start-up people left: kept foreground inside the box of someone found on the
        frame the background started from whom the detector has not found there since a run up to
        ``GHOST_HEAL_S`` ago, not moving for ``GHOST_STILL_S``, and kept since a time between when they were
        last seen in that place and that run (the place they left shows from when they left; someone who
        stood beside them before, or came after, is left to the usual tests).  ``None`` when there are none."""
        heal = None
        for box, gone, seen in self._bg_people:
            if gone is None:
                continue
            x0, y0, x1, y1 = _box_px(box, h, w)
            since = self._kept_since[y0:y1, x0:x1]
            part = fg_kept[y0:y1, x0:x1] & (since >= seen) & (since <= gone) \
                & ((t - self._last_motion[y0:y1, x0:x1]) >= GHOST_STILL_S)
            if part.any():
                if heal is None:
                    heal = np.zeros((h, w), bool)
                heal[y0:y1, x0:x1] |= part
        return heal

    def _settled(self, box, since: float, fg, moving, h: int, w: int) -> bool:
        """Whether ``box`` (normalised) shows the room as the background has long known it: next to no
        foreground or motion in it now, and a background there that has held what it shows since ``SETTLED_S``
        before ``since``.  A visitor the detector finds is foreground, or moving, or was sunk into the
        background lately (a lamp step, a start-up visitor's first frames); a table or a coat stand the
        detector scores as a person, seen again when a visitor in front of it leaves, is none of these."""
        x0, y0, x1, y1 = _box_px(box, h, w)
        area = max(1, (x1 - x0) * (y1 - y0))
        if np.count_nonzero(fg[y0:y1, x0:x1]) > SETTLED_FG * area \
                or np.count_nonzero(moving[y0:y1, x0:x1]) > max(3, 0.002 * area):
            return False
        return np.count_nonzero(self._bg_since[y0:y1, x0:x1] <= since - SETTLED_S) >= SETTLED_HELD * area

    def _unchanged(self, box, since: float, fg, h: int, w: int) -> bool:
        """Whether ``box`` (normalised) shows what it showed at ``since``: no more motion in it since then
        than ``active_in`` calls someone there (see _second_opinion), and next to no foreground now."""
        x0, y0, x1, y1 = _box_px(box, h, w)
        area = max(1, (x1 - x0) * (y1 - y0))
        return (np.count_nonzero(self._last_motion[y0:y1, x0:x1] >= since) <= max(3, 0.002 * area)
                and np.count_nonzero(fg[y0:y1, x0:x1]) <= SETTLED_FG * area)

    def _stirred(self, box, h: int, w: int) -> bool:
        """Whether motion nothing explains gathered inside ``box`` (normalised) lately (see _close_ups)."""
        x0, y0, x1, y1 = _box_px(box, h, w)
        return float(self._stir[y0:y1, x0:x1].sum()) >= self._stir_need()

    def _changed(self, px: np.ndarray) -> float:
        """When anything last changed frame to frame at the pixels ``px``: grey motion, or a colour change."""
        return max(float(self._last_motion[px].max()), float(self._last_turn[px].max()))

    def _stir_need(self) -> float:
        """Pixel-seconds of unexplained motion that call for a close-up (see STIR_MIN)."""
        return STIR_MIN * float(self.tree[f"{P}/min_blob"]) * self._roi_area

    def _people(self, mask: np.ndarray, h: int, w: int, dt: float, dets=(), t: float | None = None) \
            -> tuple[Person, ...]:
        tr = self.tree
        n, lab, stats, cents = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        min_area = float(tr[f"{P}/min_blob"]) * self._roi_area
        feet = tr[f"{P}/anchor"] == "feet"
        blobs = []  # (area, x, y, size, only continues a track, image point, a detection no blob covers)
        counted = []  # image boxes and centroids of the blobs counted as people
        for i in range(1, n):
            area = int(stats[i, cv2.CC_STAT_AREA])
            if area < max(1.0, KEEP_BLOB * min_area):
                continue
            small = area < max(1.0, min_area)
            l, tp = stats[i, cv2.CC_STAT_LEFT], stats[i, cv2.CC_STAT_TOP]
            if not small:
                counted.append(((l / w, tp / h, (l + stats[i, cv2.CC_STAT_WIDTH]) / w,
                                 (tp + stats[i, cv2.CC_STAT_HEIGHT]) / h),
                                ((cents[i, 0] + 0.5) / w, (cents[i, 1] + 0.5) / h)))
            if feet:
                u = (stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] / 2) / w
                v = (stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT]) / h
            else:
                u, v = (cents[i, 0] + 0.5) / w, (cents[i, 1] + 0.5) / h
            x, y = self.to_canvas(u, v)
            if -0.05 <= x <= 1.05 and -0.05 <= y <= 1.05:
                blobs.append((area, min(1.0, max(0.0, x)), min(1.0, max(0.0, y)),
                              math.sqrt(area / self._roi_area), small,
                              ((cents[i, 0] + 0.5) / w, (cents[i, 1] + 0.5) / h), False, i))
        # A live detection no counted blob covers is a person of its own, at its hip point.  One found only close
        # up is someone the background cannot see: any counted blob overlapping its box stands for them (a
        # close-up's body circle can be placed beside the visitor it found).
        def inside(c, b) -> bool:
            return b[0] <= c[0] <= b[2] and b[1] <= c[1] <= b[3]

        def clamped(tk) -> tuple[float, float]:
            # A visitor close to the camera has their hip below the picture (the model places it there): they
            # stand at the picture's edge, not outside the watched area.
            return min(max(tk.hip[0], 0.0), 1.0), min(max(tk.hip[1], 0.0), 1.0)

        for tk in dets:
            b = tk.box
            if b[2] <= b[0] or b[3] <= b[1]:
                continue   # a body circle wholly outside the picture, clipped to nothing
            hx, hy = clamped(tk)
            if any(inside(c, b) or inside((hx, hy), bb)
                   or (tk.close and bb[0] < b[2] and b[0] < bb[2] and bb[1] < b[3] and b[1] < bb[3])
                   for bb, c in counted):
                continue
            x, y = self.to_canvas(hx, hy)
            if -0.05 <= x <= 1.05 and -0.05 <= y <= 1.05:
                area = (b[2] - b[0]) * (b[3] - b[1]) * h * w
                blobs.append((area, min(1.0, max(0.0, x)), min(1.0, max(0.0, y)),
                              min(1.0, math.sqrt(area / self._roi_area)), False, (hx, hy), True, 0))
        blobs.sort(key=lambda b: -b[0])
        blobs = blobs[: int(tr[f"{P}/max_people"])]

        # Greedy nearest-neighbour matching, closest pairs first.  A blob under min_blob only continues a
        # track (part of a visitor whose clothes match the floor, standing still): one with no full-sized blob
        # within track_dist (else it is a fragment of that blob's person: a head split from its body would
        # be a second person), and at least KEEP_SHRINK of the track's largest size lately (linear: sizes are
        # square roots of areas; else it is the remnant of something much larger, a ghost sinking round it
        # over a few frames).
        max_d = float(tr[f"{P}/track_dist"])
        crowded = [any(not b[4] and math.hypot(b[1] - tk.x, b[2] - tk.y) <= max_d for b in blobs)
                   for tk in self._tracks]
        pairs = sorted((math.hypot(b[1] - tk.x, b[2] - tk.y), bi, ti)
                       for bi, b in enumerate(blobs) for ti, tk in enumerate(self._tracks)
                       if not b[4] or (not crowded[ti] and b[3] >= KEEP_SHRINK * tk.peak * math.exp(-dt / PEAK_S)))
        used_b, used_t, new_tracks = set(), set(), []
        vs = float(tr[f"{P}/velocity_s"])
        a = 1.0 if vs <= 0 else 1.0 - math.exp(-dt / vs)
        for d, bi, ti in pairs:
            if d > max_d or bi in used_b or ti in used_t:
                continue
            used_b.add(bi)
            used_t.add(ti)
            _, x, y, size, _, _, _, _ = blobs[bi]
            tk = self._tracks[ti]
            if dt > 0:
                tk.vx += a * ((x - tk.x) / dt - tk.vx)
                tk.vy += a * ((y - tk.y) / dt - tk.vy)
            tk.x, tk.y, tk.size = x, y, size
            tk.peak = max(size, tk.peak * math.exp(-dt / PEAK_S))
            new_tracks.append(tk)
        # Someone close to the camera moving their arms, or whose clothes match the wall in places, breaks into
        # several full-sized blobs (a signer a step from the camera read as 2-7 people).  A new blob is a part
        # of someone when it lies inside the body box of a sure whole-frame detection (its track found at 0.9
        # or more in the last DetectionTracks.SURE_S: a signer's score dips to 0.89 as she moves) where as
        # many people are counted already as there are detections with their hip in that box.  A person whom
        # nothing detects, first seen inside the box of someone close to the camera (or whose track broke there
        # for a frame), is not told from a part of them (docs/sensing.md).
        whole = [tk for tk in dets if not tk.close]
        sure = [((tk.box[0], tk.box[1] - HEAD_TOP * (tk.box[3] - tk.box[1]), tk.box[2], tk.box[3]),
                 sum(inside(clamped(o), tk.box) for o in whole))
                for tk in whole if tk.best >= DetectionTracks.CLOSE_SURE]

        def part(c) -> bool:
            return any(inside(c, b) and sum(inside(o, b) for o in held) >= room for b, room in sure)

        # A blob where nothing changed (in grey or in colour) for BIRTH_QUIET_S is not someone who just came:
        # it is a person only where a track ended less than LOST_S ago (a still visitor whose blob broke for a
        # few frames) or inside a live detection's box.  Else it is the room: a strip of wall that a grey
        # camera's flicker bands lift over the threshold for 2-3 frames, a patch of wall a dimmer fades up, a
        # visitor's shadow or reflection beside them; each passed the ghost test and counted as someone.
        # A track so started that ends within REARM_S ends at its forebear's time: a blob blinking near where
        # someone left, a few frames every few seconds, does not keep the way open for ever.
        if t is not None:
            ended = [(tk, tk.lost_at if tk.lost_at is not None and t - tk.t0 < REARM_S else t)
                     for ti, tk in enumerate(self._tracks) if ti not in used_t]
            self._lost = [(tk, t_end) for tk, t_end in self._lost if t - t_end <= LOST_S] + ended
        held = [blobs[bi][5] for bi in used_b]
        for bi, (_, x, y, size, small, c, found, li) in enumerate(blobs):
            if bi not in used_b and not small:
                if not found and part(c):
                    continue
                lost_at = None
                if (not found and t is not None and not any(inside(c, tk.box) for tk in dets)
                        and t - self._changed(lab == li) >= BIRTH_QUIET_S):
                    near = [t_end for tk, t_end in self._lost if math.hypot(x - tk.x, y - tk.y) <= max_d]
                    if not near:
                        continue
                    lost_at = min(near)
                held.append(c)
                self._serial += 1
                new_tracks.append(_Track(x, y, 0.0, 0.0, size, self._serial, size, t or 0.0, lost_at))
        new_tracks.sort(key=lambda tk: tk.born)
        self._tracks = new_tracks
        return tuple(Person(tk.x, tk.y, tk.size, tk.vx, tk.vy) for tk in new_tracks)


def calm(frame: CameraFrame, age_over: float, calm_s: float, t: float | None = None) -> CameraFrame:
    """``frame`` decayed towards calm, ``age_over`` seconds after it went stale."""
    k = math.exp(-max(0.0, age_over) / max(1e-6, calm_s))
    people = frame.people if k > 0.5 else ()
    return CameraFrame(frame.t if t is None else t, frame.presence * k, frame.motion * k, frame.speed * k,
                       tuple(Person(p.x, p.y, p.size, p.vx * k, p.vy * k) for p in people))


# -- sources -----------------------------------------------------------

class FrameSource:
    """Narrow seam between the capture thread and a camera.

    ``open`` raises ``OSError`` when the source cannot be opened; ``read``
    returns a BGR frame or ``None`` when the source stopped delivering;
    ``pace`` is the seconds to wait between frames (files), else 0.
    """

    name = "camera"
    pace = 0.0

    def open(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def read(self) -> np.ndarray | None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release the device; safe to call twice."""


def is_file_source(spec) -> bool:
    """True if ``spec`` names a video/image file (not a device index, /dev path or URL)."""
    if spec is None or isinstance(spec, int):
        return False
    s = str(spec)
    return not (s.isdigit() or s.startswith("/dev/") or "://" in s)


class CvSource(FrameSource):
    """An OpenCV ``VideoCapture``: device index, /dev path, video file or network stream.

    Files are paced at their own frame rate and loop when ``loop`` is true.
    """

    def __init__(self, spec, loop: bool = True, fallback_fps: float = 30.0) -> None:
        self.spec = int(spec) if isinstance(spec, str) and spec.isdigit() else spec
        self.name = str(spec)
        self.loop = loop
        self.is_file = is_file_source(spec)
        self.fallback_fps = fallback_fps
        self._cap = None

    def open(self) -> None:
        """Open the source; ``OSError`` naming the source if it cannot."""
        self.close()
        if self.is_file and not os.path.exists(str(self.spec)):
            raise OSError(f"camera file {self.spec} does not exist")
        if isinstance(self.spec, int) or str(self.spec).startswith("/dev/"):
            cap = cv2.VideoCapture(self.spec, cv2.CAP_V4L2)
        elif self.is_file:
            cap = cv2.VideoCapture(str(self.spec))
        else:
            cap = cv2.VideoCapture(str(self.spec), cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 3000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 2000])
        if not cap.isOpened():
            cap.release()
            raise OSError(f"cannot open camera {self.name}")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS) if self.is_file else 0.0
        self.pace = 1.0 / (fps if 1.0 <= fps <= 240.0 else self.fallback_fps) if self.is_file else 0.0

    def read(self) -> np.ndarray | None:
        """Next frame, or ``None`` if the source stopped (a file rewinds when looping)."""
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        if not ok and self.is_file and self.loop:
            self._cap.release()
            self._cap = cv2.VideoCapture(str(self.spec))
            ok, frame = self._cap.read()
        return frame if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class CameraCapture:
    """Capture thread: pulls frames, analyses them, publishes the latest record.

    ``publish(frame, arrival_monotonic)`` is called from this thread with each
    new :class:`CameraFrame`.  A source that fails to open or stops
    delivering is reopened with exponential backoff (0.5 s doubling to 8 s).
    """

    def __init__(self, source: FrameSource, analyzer: CameraAnalyzer,
                 publish: Callable[[CameraFrame, float], None], t0: float | None = None,
                 now: Callable[[], float] = time.monotonic, backoff=(0.5, 8.0)) -> None:
        self.source = source
        self.analyzer = analyzer
        self.publish = publish
        self._now = now
        self.t0 = now() if t0 is None else t0
        self.backoff = backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = "off"
        self.last_error = ""
        self.opens = 0
        self.frames = 0
        self.fps = 0.0
        self.analysis_ms = 0.0

    def start(self) -> None:
        """Start the daemon capture thread."""
        self._stop.clear()
        self.state = "starting"
        self._thread = threading.Thread(target=self._run, name=f"camera:{self.source.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> bool:
        """Ask the thread (and the analyzer's detector thread) to stop and wait at most ``timeout``; True if
        the capture thread ended."""
        self._stop.set()
        th = self._thread
        if th is not None:
            th.join(timeout)
            self.analyzer.close()
            if th.is_alive():
                log.warning("camera %s: capture thread still blocked in the driver after %.1f s; left as daemon",
                            self.source.name, timeout)
                return False
        self.state = "stopped"
        return True

    def _run(self) -> None:
        delay = self.backoff[0]
        while not self._stop.is_set():
            try:
                self.source.open()
                self.opens += 1
            except Exception as e:  # a driver can raise anything; never kill the thread
                self._failed(f"open failed: {e}")
                self._stop.wait(delay)
                delay = min(self.backoff[1], delay * 2)
                continue
            self.state = "running"
            last = None
            read_error = ""
            next_due = self._now()
            while not self._stop.is_set():
                try:
                    frame = self.source.read()
                except Exception as e:
                    frame = None
                    read_error = f"read failed: {e}"
                if frame is None:
                    break
                delay = self.backoff[0]
                arrival = self._now()
                try:
                    t0 = time.perf_counter()
                    rec = self.analyzer.process(frame, arrival - self.t0)
                    self.analysis_ms = 1000.0 * (time.perf_counter() - t0)
                except Exception as e:
                    if self.last_error != f"analysis failed: {e}":
                        log.exception("camera %s: analysis failed", self.source.name)
                    self.last_error = f"analysis failed: {e}"
                    continue
                self.frames += 1
                if last is not None:
                    inst = 1.0 / max(1e-6, arrival - last)
                    self.fps = inst if self.fps == 0 else 0.9 * self.fps + 0.1 * inst
                last = arrival
                self.publish(rec, arrival)
                if self.source.pace > 0:
                    next_due = max(next_due + self.source.pace, self._now() - self.source.pace)
                    self._stop.wait(max(0.0, next_due - self._now()))
            self.source.close()
            if not self._stop.is_set():
                self._failed(read_error or "source stopped delivering frames")
                self._stop.wait(delay)
                delay = min(self.backoff[1], delay * 2)
        self.source.close()

    def _failed(self, msg: str) -> None:
        if msg != self.last_error or self.state != "reopening":
            log.warning("camera %s: %s; retrying with backoff", self.source.name, msg)
        self.last_error = msg
        self.state = "reopening"
