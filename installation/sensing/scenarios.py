"""Labelled camera scenarios built honestly from real footage, and how presence is scored on them.

The clips beside the repository are seconds long; a venue runs for hours.
This module builds the longer situations a room goes through out of the
clips' real frames (docs/sensing.md says how each is made):

* **labels**: ``NAME.labels.txt`` beside a clip, ``present FIRST LAST`` /
  ``empty FIRST LAST`` a line (0-based, inclusive; ``#`` comments); frames
  not listed are not scored.
* **empty view**: the clip's own labelled-empty frames when it has them
  (real sensor noise, played back and forth so the loop has no seam), else
  the median of its first, middle and last frames where people moved on
  between them, held with a little Gaussian sensor noise.  A clip whose
  people stay (a seated class, a crowd) gives no empty view; it is said,
  not faked.
* **visits**: empty view, the clip as shot, empty view again, repeated:
  entries and exits are cuts (a person appears/vanishes between frames).
* **person cut-outs**: a person's pixels (difference from the empty view,
  cleaned) pasted with a feathered edge onto the empty view: in and out,
  held still for minutes (a seated audience), present at start-up.
* **light**: slow drift (gain 0.55..1.25 and a warm/cool swing of the red
  and blue channels), sudden steps (the whole frame; one side of the
  room, as a lamp), and auto-exposure tied to a visitor (a dark coat makes
  the camera brighten the frame while they are in view).
* **stay**: for a clip whose people never leave (no empty view, no frame
  labelled empty), the clip as shot, then the clip from its last present
  frame back to its first and on, back and forth for ten minutes: real
  people who stay, as a seated audience does.
* **knock**: the camera knocked on its mount (the view moves by a few
  pixels, real pixels coming in at the edges) while a visitor is in view.

A scenario is a list of segments; :func:`play` yields ``(frame, t, label)``
lazily (label 1 present, 0 empty, -1 not scored), so minutes of footage never
sit in memory.  :func:`score` turns an analyser's readings into the figures
the bench prints and the tests check.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from .sources import read_video

VIDEO_EXT = (".gif", ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
EMPTY_MAX = 0.05  # presence at or below this reads as an empty room
CLEAR_S = 1.0  # seconds after each entry/exit left out of the AUC, like the hand labels do
STAY_S = 600.0  # how long the *stay* scenario holds a clip's people: "at least 10 minutes" (issue 13)


@dataclass
class Clip:
    """A real clip with its per-frame hand labels (1 present, 0 empty, -1 not scored)."""

    name: str
    frames: list
    fps: float
    labels: np.ndarray


def read_labels(path, n: int) -> np.ndarray:
    """Per-frame labels of a clip of ``n`` frames from a labels file; ``ValueError`` naming the bad line."""
    out = np.full(n, -1, np.int8)
    for k, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"(present|empty)\s+(\d+)\s+(\d+)", line)
        if not m or int(m[2]) > int(m[3]):
            raise ValueError(f"{path}:{k}: expected 'present FIRST LAST' or 'empty FIRST LAST', got {line!r}")
        out[int(m[2]): min(n, int(m[3]) + 1)] = 1 if m[1] == "present" else 0
    return out


def load_clip(path, fallback_fps: float = 10.0, max_frames: int = 20000) -> Clip:
    """A clip and the labels file beside it (``OSError``/``ValueError`` with a one-line reason)."""
    path = Path(path)
    lab = path.with_name(path.name.rsplit(".", 1)[0] + ".labels.txt")
    if not lab.exists():
        raise OSError(f"{path}: no labels file {lab.name} beside it")
    frames, fps = read_video(path, max_frames)
    return Clip(path.name.rsplit(".", 1)[0], frames, fps or fallback_fps,
                read_labels(lab, len(frames)))


def find_clips(*dirs) -> list[Path]:
    """Every video in ``dirs`` that has a labels file beside it, sorted by name."""
    out = []
    for d in dirs:
        for p in sorted(Path(d).iterdir()):
            if p.suffix.lower() in VIDEO_EXT and p.with_name(p.name.rsplit(".", 1)[0] + ".labels.txt").exists():
                out.append(p)
    return out


# -- the empty view and people cut from it ---------------------------------

def _grey(f: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(np.int16)


def empty_view(clip: Clip) -> tuple[list | None, str]:
    """Frames of the clip's empty room, and how they were made; ``(None, reason)`` if it has none.

    Labelled-empty frames are used as they are; otherwise the median of the
    first, middle and last frames, refused where the room does not show in
    two of them or where present frames do not differ from it (people who
    never moved would be baked into it).
    """
    empty = [f for f, lab in zip(clip.frames, clip.labels) if lab == 0]
    if len(empty) >= 3:
        return empty, f"{len(empty)} labelled-empty frames, played back and forth"
    # Three frames far apart in time: where people move on, each pixel shows the room in two of them.
    n = len(clip.frames)
    pick = [clip.frames[i] for i in (0, n // 2, n - 1)]
    plate = np.median(np.stack(pick), axis=0).astype(np.uint8)
    g = [_grey(f) for f in pick]
    agree = (np.abs(g[0] - g[1]) < 15) | (np.abs(g[1] - g[2]) < 15) | (np.abs(g[0] - g[2]) < 15)
    if agree.mean() < 0.995:
        return None, f"{100 * (1 - agree.mean()):.1f}% of the view shows no room twice in three frames far apart"
    greys = [_grey(f) for f in clip.frames]
    pg = _grey(plate)
    shares = [float(np.mean(np.abs(g - pg) > 25)) for g, lab in zip(greys, clip.labels) if lab == 1]
    low = float(np.mean(np.asarray(shares) < 0.005)) if shares else 1.0
    if low > 0.1:
        return None, (f"people who stay put are part of the room's most common look: {100 * low:.0f}% of the "
                      f"present frames differ from it in under 0.5% of the view")
    return [plate], ("per-pixel median of the first, middle and last frames (people moved on between them), "
                     "held with sensor noise (sigma 2 grey levels)")


def cutouts(clip: Clip, view: list, min_share: float = 0.004) -> list[tuple[np.ndarray, np.ndarray]]:
    """People cut from the clip's present frames: (BGR pixels, feathered alpha 0..1) at full frame size."""
    plate = np.median(np.stack(view), axis=0).astype(np.int16)
    k = max(3, (clip.frames[0].shape[0] // 18) | 1)  # about 15 px at 270 rows: joins head, shirt and legs
    out = []
    for f, lab in zip(clip.frames, clip.labels):
        if lab != 1:
            continue
        # Any colour channel, not grey alone: a blue shirt against a white wall can match it in grey and
        # would leave a head and a skirt floating (a visitor who is half there).
        m = (np.abs(f.astype(np.int16) - plate).max(axis=2) > 25).astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(m, contours, -1, 1, thickness=cv2.FILLED)  # a whole body, holes filled
        if m.mean() < min_share:
            continue
        alpha = cv2.GaussianBlur(m.astype(np.float32), (5, 5), 0)
        out.append((f, alpha))
    return out


# -- segments ---------------------------------------------------------------

@dataclass
class Segment:
    """``seconds`` of footage: ``frame(i, rng)`` gives the i-th BGR frame, ``label`` its truth."""

    seconds: float
    frame: Callable[[int, np.random.Generator], np.ndarray]
    label: Callable[[int], int]
    name: str = ""


def _pingpong(frames: list, i: int) -> np.ndarray:
    n = len(frames)
    if n == 1:
        return frames[0]
    p = i % (2 * n - 2)
    return frames[p if p < n else 2 * n - 2 - p]


def _noisy(f: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    return np.clip(f.astype(np.float32) + rng.normal(0.0, sigma, f.shape).astype(np.float32), 0, 255).astype(np.uint8)


def empty_segment(view: list, seconds: float) -> Segment:
    """The empty room for ``seconds``: real empty frames back and forth, or the held median with noise."""
    if len(view) > 1:
        return Segment(seconds, lambda i, rng: _pingpong(view, i), lambda i: 0, "empty")
    return Segment(seconds, lambda i, rng: _noisy(view[0], rng), lambda i: 0, "empty")


def clip_segment(clip: Clip, reverse: bool = False) -> Segment:
    """The clip as shot (or backwards: people walking out become people walking in)."""
    idx = list(range(len(clip.frames)))[::-1] if reverse else list(range(len(clip.frames)))
    return Segment(len(idx) / clip.fps, lambda i, rng: clip.frames[idx[min(i, len(idx) - 1)]],
                   lambda i: int(clip.labels[idx[min(i, len(idx) - 1)]]), "clip")


def stay_segment(clip: Clip, seconds: float) -> Segment:
    """The clip from its first to its last present frame, back and forth for ``seconds``, starting backwards
    from the last (so it goes on from where the clip ends without a cut): its people staying on, moving as
    they did."""
    on = np.nonzero(clip.labels == 1)[0]
    frames = clip.frames[on[0]: on[-1] + 1][::-1]
    return Segment(seconds, lambda i, rng: _pingpong(frames, i), lambda i: 1, "stay")


def paste(base: np.ndarray, cut: tuple[np.ndarray, np.ndarray], dx: int = 0, gain: float = 1.0) -> np.ndarray:
    """``base`` with the cut-out person pasted, shifted ``dx`` pixels sideways."""
    pix, alpha = cut
    if dx:
        M = np.float32([[1, 0, dx], [0, 1, 0]])
        pix = cv2.warpAffine(pix, M, (pix.shape[1], pix.shape[0]), borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(alpha, M, (alpha.shape[1], alpha.shape[0]))
    a = alpha[..., None]
    return np.clip(base * (1 - a) + pix.astype(np.float32) * gain * a, 0, 255).astype(np.uint8)


def person_segment(view: list, cut, seconds: float, sway_px: float = 1.0) -> Segment:
    """A person cut from a real frame held in the empty room for ``seconds`` (a seated visitor who barely moves)."""
    return Segment(seconds, lambda i, rng: paste(_pingpong(view, i) if len(view) > 1 else _noisy(view[0], rng), cut,
                                                 dx=int(round(sway_px * math.sin(i * 0.37)))),
                   lambda i: 1, "person")


# -- light ---------------------------------------------------------------------

def drift(period_s: float = 60.0, lo: float = 0.55, hi: float = 1.25, warm: float = 0.12):
    """Gallery daylight: gain swinging lo..hi and a warm/cool swing of red against blue."""
    def light(f: np.ndarray, t: float, present: bool) -> np.ndarray:
        g = lo + (hi - lo) * (0.5 + 0.5 * math.sin(2 * math.pi * t / period_s))
        c = warm * math.sin(2 * math.pi * t / (1.7 * period_s) + 1.0)
        return _scale(f, np.array([g * (1 - c), g, g * (1 + c)], np.float32))
    return light


def steps(every_s: float = 9.0, person_gain: float = 1.25):
    """Sudden light: exposure steps of the whole frame, a lamp on one side, and auto-exposure tied to a visitor."""
    def light(f: np.ndarray, t: float, present: bool) -> np.ndarray:
        k = int(t // every_s) % 4
        g = (1.0, 0.7, 1.3, 1.0)[k] * (person_gain if present else 1.0)
        out = _scale(f, np.array([g, g, g], np.float32))
        if k == 3:  # a lamp switched on at the right: +35 % fading across the frame
            w = f.shape[1]
            ramp = np.clip((np.arange(w, dtype=np.float32) / w - 0.3) / 0.4, 0, 1) * 0.35 + 1.0
            out = np.clip(out.astype(np.float32) * ramp[None, :, None], 0, 255).astype(np.uint8)
        return out
    return light


def flicker(amp: float = 0.06, bands: float = 3.0, drift_hz: float = 0.7):
    """Mains flicker on a rolling shutter: ``bands`` soft horizontal bands of +-``amp`` drifting down the frame
    (the lamps' 100/120 Hz beating with a frame rate that is not a divisor of it)."""
    def light(f: np.ndarray, t: float, present: bool) -> np.ndarray:
        y = np.arange(f.shape[0], dtype=np.float32) / f.shape[0]
        rows = 1.0 + amp * np.sin(2 * np.pi * (bands * y - drift_hz * t))
        return np.clip(f.astype(np.float32) * rows[:, None, None], 0, 255).astype(np.uint8)
    return light


def own_light(strength: float = 0.45):
    """The piece's own light on the room: a coloured glow from the lower right (where the tapestry hangs),
    pulsing and turning through the hues, up to +``strength`` at its centre."""
    reaches: dict = {}  # per frame size: how far the glow reaches each pixel (the same every frame)

    def light(f: np.ndarray, t: float, present: bool) -> np.ndarray:
        h, w = f.shape[:2]
        reach = reaches.get((h, w))
        if reach is None:
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            reach = reaches[(h, w)] = np.clip(
                1.0 - np.hypot((xx - 0.91 * w) / (0.65 * w), (yy - 0.97 * h) / (0.81 * h)), 0, 1)
        hue = 0.5 + 0.5 * np.sin(0.9 * t + np.array([0.0, 2.1, 4.2], np.float32))
        k = 1.0 + strength * reach[..., None] * (0.6 + 0.4 * math.sin(2.3 * t)) * hue[None, None, :]
        return np.clip(f.astype(np.float32) * k, 0, 255).astype(np.uint8)
    return light


def spot(cx: float, cy: float, r: float, bgr=(1.7, 1.7, 1.7), soft: float = 0.002, on_s: float = 2.0):
    """A spot or projector cue switched on at ``on_s`` and left on: a disc at (``cx``, ``cy``), radius ``r``
    (fractions of the frame's width / height / width), each channel scaled by ``bgr`` inside it, with a rim
    ``soft`` (fraction of the width) wide: 0.002 is about 1 px at 480 px, a hard-edged spot or a gel."""
    masks: dict = {}

    def light(f: np.ndarray, t: float, present: bool) -> np.ndarray:
        if t < on_s:
            return f
        h, w = f.shape[:2]
        m = masks.get((h, w))
        if m is None:
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            d = np.hypot(xx - cx * w, yy - cy * h) - r * w
            m = masks[(h, w)] = np.clip(0.5 - d / max(soft * w, 1e-3), 0, 1)[..., None]
        return np.clip(f.astype(np.float32) * (1.0 + m * (np.asarray(bgr, np.float32) - 1.0)), 0, 255) \
            .astype(np.uint8)
    return light


def knock(times, shifts, margin: float = 0.04, turns=None):
    """A camera knocked on its mount: the view is the frame less ``margin`` (a fraction of its width and
    height) on every side, moved by ``shifts[i]`` (fractions of width, height, from the centre) and rolled by
    ``turns[i]`` degrees (about the frame's centre; none if not given) from ``times[i]`` (s) on.  Real pixels
    come into view at the edges, as on a real camera (a roll wants a margin wide enough for its corners);
    every frame is the same size (smaller than the clip's by the margins)."""
    marks = sorted(zip(times, shifts, turns if turns is not None else [0.0] * len(times)))

    def light(f: np.ndarray, t: float, present: bool) -> np.ndarray:
        h, w = f.shape[:2]
        mx, my = int(round(margin * w)), int(round(margin * h))
        sx, sy, turn = 0.0, 0.0, 0.0
        for at, shift, tu in marks:
            if t >= at:
                (sx, sy), turn = shift, tu
        if turn:
            f = cv2.warpAffine(f, cv2.getRotationMatrix2D((w / 2.0, h / 2.0), turn, 1.0), (w, h),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        ox = min(2 * mx, max(0, mx + int(round(sx * w))))
        oy = min(2 * my, max(0, my + int(round(sy * h))))
        return np.ascontiguousarray(f[oy:oy + h - 2 * my, ox:ox + w - 2 * mx])
    return light


def _scale(f: np.ndarray, bgr: np.ndarray) -> np.ndarray:
    return np.clip(f.astype(np.float32) * bgr, 0, 255).astype(np.uint8)


@dataclass
class Scenario:
    """Named segments played at ``fps``, with an optional light function ``light(frame, t, present)``."""

    name: str
    fps: float
    segments: list
    light: Callable | None = None
    how: str = ""
    seed: int = 0
    clear_s: float = CLEAR_S  # seconds after each entry/exit left out of the AUC (0: the hand labels already do)

    @property
    def seconds(self) -> float:
        """Length of the scenario."""
        return sum(s.seconds for s in self.segments)


def play(sc: Scenario) -> Iterator[tuple[np.ndarray, float, int]]:
    """``(frame, t, label)`` for every frame of the scenario, made on demand (deterministic: seeded noise)."""
    rng = np.random.default_rng(sc.seed)
    k = 0
    for seg in sc.segments:
        n = max(1, int(round(seg.seconds * sc.fps)))
        for i in range(n):
            f = seg.frame(i, rng)
            lab = seg.label(i)
            t = k / sc.fps
            if sc.light is not None:
                f = sc.light(f, t, lab == 1)
            yield f, t, lab
            k += 1


# -- scoring ---------------------------------------------------------------------

def auc(scores, labels) -> float:
    """Area under the ROC curve of ``scores`` separating label 1 from 0 (ties count half); NaN if a class is missing."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels)
    pos, neg = s[y == 1], s[y == 0]
    if not pos.size or not neg.size:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(allv.size, np.float64)
    sv = allv[order]
    # average ranks for ties
    i = 0
    while i < sv.size:
        j = i
        while j + 1 < sv.size and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    rp = ranks[: pos.size].sum()
    return float((rp - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


@dataclass
class Score:
    """What a user notices, from one run over a scenario."""

    auc: float
    to_empty: list  # seconds from each exit until presence stays <= EMPTY_MAX (inf: never)
    to_present: list  # seconds from each entry until presence first exceeds EMPTY_MAX (inf: never)
    false_people_per_min: float  # people appearing in a labelled-empty room, per minute of it
    empty_minutes: float
    ms_per_frame: float
    frames: int


def events(labels) -> tuple[list[int], list[int]]:
    """Frame indices of entries (first non-empty frame after an empty run) and exits (first after a present run)."""
    lab = list(labels)
    entries, exits = [], []
    state = None  # last scored label
    run_start = 0
    for i, v in enumerate(lab):
        if v == -1:
            continue
        if state is not None and v != state:
            # the change happened at the start of the unscored run before i (or at i)
            j = i
            while j - 1 > run_start and lab[j - 1] == -1:
                j -= 1
            (entries if v == 1 else exits).append(j)
        state = v
        run_start = i
    return entries, exits


def score(presence, people_counts, labels, fps: float, ms: float, clear_s: float = CLEAR_S) -> Score:
    """Score one run: ``presence``/``people_counts``/``labels`` per frame at ``fps``; ``ms`` per frame.

    ``clear_s`` seconds after each entry and exit are left out of the AUC.
    """
    p = np.asarray(presence, np.float64)
    lab = np.asarray(labels)
    n = len(p)
    entries, exits = events(lab)
    clear = np.zeros(n, bool)
    for e in entries + exits:
        clear[e: e + int(round(clear_s * fps))] = True
    use = (lab >= 0) & ~clear
    a = auc(p[use], lab[use])
    changes = sorted(entries + exits) + [n]
    to_empty = []
    for e in exits:
        end = next(c for c in changes if c > e)
        seg = p[e:end]
        above = np.nonzero(seg > EMPTY_MAX)[0]
        to_empty.append(0.0 if not above.size else (math.inf if above[-1] == len(seg) - 1 else (above[-1] + 1) / fps))
    to_present = []
    for e in entries:
        end = next(c for c in changes if c > e)
        above = np.nonzero(p[e:end] > EMPTY_MAX)[0]
        to_present.append(above[0] / fps if above.size else math.inf)
    cnt = np.asarray(people_counts)
    empty = lab == 0
    births = np.maximum(0, np.diff(np.concatenate([[0], cnt])))
    minutes = float(empty.sum()) / fps / 60.0
    fpm = float(births[empty].sum()) / minutes if minutes > 0 else float("nan")
    return Score(a, to_empty, to_present, fpm, minutes, ms, n)


# -- the standard set ------------------------------------------------------------

KINDS = ("as shot", "visits", "drift", "steps", "flicker", "own light", "knock", "start-up", "stay")


def standard(clip: Clip, kinds=KINDS) -> list[Scenario]:
    """The scenarios the bench runs for one labelled clip (those its footage allows; notes say why not)."""
    out = []
    fps = clip.fps
    if "as shot" in kinds:
        out.append(Scenario("as shot", fps, [clip_segment(clip)], how="the clip alone, as filmed", clear_s=0.0))
    view, how = empty_view(clip)
    if view is None:
        if "stay" in kinds and np.any(clip.labels == 1) and not np.any(clip.labels == 0):
            out.append(Scenario("stay", fps, [clip_segment(clip), stay_segment(clip, STAY_S)], clear_s=0.0,
                                how=f"the clip, then its present frames back and forth for {STAY_S / 60:g} minutes"))
        return out + [Scenario("visits", fps, [], how=f"not built: {how}")]
    ends_empty = clip.labels[-1] == 0
    cuts = cutouts(clip, view)

    def visit() -> list:
        if ends_empty:  # filmed as people leaving: backwards they walk in, then (held) they leave as shot
            segs = [clip_segment(clip, reverse=True)]
            if cuts:
                segs.append(person_segment(view, cuts[0], 6.0))
            return segs + [clip_segment(clip)]
        return [clip_segment(clip)]

    def visits() -> list:
        segs = [empty_segment(view, 6.0)]
        for _ in range(3):
            segs += visit() + [empty_segment(view, 10.0)]
        return segs

    base = f"empty view ({how}) 6 s, then 3 x (the clip, 10 s empty)"
    if "visits" in kinds:
        out.append(Scenario("visits", fps, visits(), how=base))
    if "drift" in kinds:
        n = sum(s.seconds for s in visits())
        out.append(Scenario("drift", fps, visits(), light=drift(period_s=n), seed=1,
                            how=base + "; gain 0.55..1.25 and a +-12 % warm/cool swing across it"))
    if "steps" in kinds:
        out.append(Scenario("steps", fps, visits(), light=steps(), seed=2,
                            how=base + "; exposure x0.7 / x1.3 / a lamp at one side every 9 s, and x1.25 "
                            "auto-exposure while a visitor is in view"))
    if "flicker" in kinds:
        out.append(Scenario("flicker", fps, visits(), light=flicker(), seed=4,
                            how=base + "; mains flicker: three +-6 % bands drifting down the frame"))
    if "own light" in kinds:
        out.append(Scenario("own light", fps, visits(), light=own_light(), seed=5,
                            how=base + "; the piece's own glow from the lower right, pulsing and changing hue"))
    if "knock" in kinds:
        segs = visits()
        t, held, shown = 0.0, [], []
        for sg in segs:
            (held if sg.name == "person" else shown if sg.name == "clip" else []).append(t + sg.seconds / 2)
            t += sg.seconds
        mids = held if len(held) >= 3 else shown[-2:]
        # Both knocks leave the view left of where it started, so a visitor at the frame's left edge (the
        # walk-in room's door) stays in view: a knock that pushes the visitor out of the picture is no test
        # of the analysis.
        out.append(Scenario("knock", fps, segs, light=knock(mids[-2:], [(-0.025, 0.012), (-0.01, -0.008)]),
                            seed=6, how=base + "; the camera knocked by 2.5 % / 1.2 % of the frame and later by "
                            "1.5 % / 2 % back, in the middle of the last two showings of a visitor"))
    if "start-up" in kinds and cuts:
        out.append(Scenario("start-up", fps, [person_segment(view, cuts[len(cuts) // 2], 4.0),
                                              empty_segment(view, 10.0)] + visit() + [empty_segment(view, 10.0)],
                            seed=3, how="a visitor (cut from a real frame) in view when the camera starts, "
                            "gone after 4 s; then a visit"))
    return out
