"""The camera's second opinion: when to run the person detector, and what it has seen lately.

Background subtraction (camera.py) cannot see a visitor who was already in
view, still, when the camera started, and may forget a still visitor when
the room light steps.  A single-frame person detector (detector.py) does not
depend on the background; :class:`CameraAnalyzer` asks it now and then and
merges its answers into :class:`DetectionTracks`.

Each run looks at the whole frame and then at the close-ups the analyzer
asks for (:func:`look`).  Two ways to ask, one interface (``offer(frame, t,
hz, close_ups)`` returns the results that are ready, each ``(frame time,
detections)``; ``close()``):

* :class:`InlineOpinion` runs the detector inside the analysis call whenever
  the frame time passes the next due time (every ``1/hz`` seconds).  The
  analysis stays a pure function of the frames and their times: ``run.py
  sense``, the benchmark and the tests use it.
* :class:`ThreadedOpinion` hands the newest due frame to its own thread
  through a one-slot queue (a stale frame waiting there is replaced, its
  close-ups passed on to the newer one) and
  collects results from a second queue, so the live capture thread never
  waits for the detector (SensorHub uses it).

:func:`make_opinion` builds either, or returns ``None`` after one warning
when the detector cannot run here (the show goes on without it).
"""

from __future__ import annotations

import logging
import math
import queue
import time
from dataclasses import dataclass, field

import numpy as np

from installation.slot import NewestSlot

from . import detector as D

log = logging.getLogger(__name__)


#: finds whose body boxes overlap this much are the same person (see same_person)
SAME_IOU = 0.3


def same_person(a: D.Detection, box, hip) -> bool:
    """Whether find ``a`` and a find with body ``box`` and ``hip`` are one person: overlapping boxes, one
    box mostly inside the other (a close-up that cut someone tall in half finds a part of them), or one's
    hip inside the other's box."""
    def within(p, b):
        return b[0] <= p[0] <= b[2] and b[1] <= p[1] <= b[3]

    return D.iou(a.box, box) > SAME_IOU or D.inside(a.box, box) or within(a.hip, box) or within(hip, a.box)


def look(det: D.PersonDetector, frame: np.ndarray, close_ups=()) -> tuple[D.Detection, ...]:
    """The people on ``frame``: the whole frame, then each close-up ``(region, min_score)`` (region x0, y0,
    x1, y1 in pixels); a close-up's find of someone already found is left out."""
    dets = list(det.detect(frame))
    for region, score in close_ups:
        for d in det.detect_in(frame, region, score):
            if not any(same_person(d, o.box, o.hip) for o in dets):
                dets.append(d)
    return tuple(dets)


class InlineOpinion:
    """Runs the detector in the caller's thread when due (deterministic in the frame times)."""

    def __init__(self, det: D.PersonDetector) -> None:
        self.det = det
        self._due = -np.inf
        self.calls = 0
        self.seconds = 0.0  # time spent in the detector (for the benchmark)
        self.load_seconds = 0.0  # time make_opinion spent loading it

    def offer(self, frame: np.ndarray, t: float, hz: float, close_ups=None) \
            -> list[tuple[float, tuple[D.Detection, ...]]]:
        """Detections on ``frame`` if a run is due at ``t``, else nothing.  ``close_ups``: called when a run
        is due, gives the close-ups to look at as well (see :func:`look`)."""
        if hz <= 0 or t < self._due:
            return []
        self._due = t + 1.0 / hz
        regions = close_ups() if close_ups is not None else ()
        t0 = time.perf_counter()
        dets = look(self.det, frame, regions)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return [(t, dets)]

    def rearm(self) -> None:
        """Run on the next frame offered, whatever the due time (the analysis started a new background)."""
        self._due = -np.inf

    def close(self) -> None:
        """Nothing to release."""


class _DetectorSlot(NewestSlot):
    """The detector's own thread: ``handle`` each newest frame ``(frame, t, close-ups)`` handed over.

    A newer frame replaces one the thread has not taken, but keeps the replaced one's close-ups (at most
    ``CARRY`` more, none the newer one already asks for): the analyzer marked those places looked at
    and would not ask again for seconds (camera.py, LOOK_AGAIN_S).
    """

    thread_name = "camera-detector"
    CARRY = 2   # the places a run asks for on motion's account (camera.py, STIR_LOOKS)

    def __init__(self, handle) -> None:
        super().__init__()
        self._handle = handle

    def _merge(self, older, newer):
        frame, t, regions = newer
        if older[0].shape != frame.shape:
            return newer   # another camera mode: the old pixels mean other places
        kept = list(regions)
        for r in older[2]:
            if len(kept) >= len(regions) + self.CARRY:
                break
            if not any(D.iou(r[0], k[0]) > 0.5 for k in kept):
                kept.append(r)
        return frame, t, tuple(kept)


class ThreadedOpinion:
    """Runs the detector on its own thread, fed the newest due frame through a one-slot hand-off
    (installation/slot.py): the camera thread never waits for it."""

    def __init__(self, det: D.PersonDetector) -> None:
        self.det = det
        self._due = -np.inf
        self._out: queue.Queue = queue.Queue()
        self._slot = _DetectorSlot(self._detect)
        self.calls = 0
        self.seconds = 0.0
        self.load_seconds = 0.0

    def _detect(self, item) -> None:   # on the detector's thread
        frame, t, regions = item
        t0 = time.perf_counter()
        try:
            dets = look(self.det, frame, regions)
        except Exception as e:  # a bad frame must not end the thread
            log.warning("person detector failed on a frame: %s", e)
            return
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        self._out.put((t, dets))

    def offer(self, frame: np.ndarray, t: float, hz: float, close_ups=None) \
            -> list[tuple[float, tuple[D.Detection, ...]]]:
        """Hand ``frame`` (and the close-ups ``close_ups()`` gives, as for :class:`InlineOpinion`) over if
        due (never waits); return the results finished since the last call."""
        if hz > 0 and t >= self._due:
            self._due = t + 1.0 / hz
            self._slot.put((frame, t, close_ups() if close_ups is not None else ()))
        out = []
        while True:
            try:
                out.append(self._out.get_nowait())
            except queue.Empty:
                return out

    def rearm(self) -> None:
        """Hand over the next frame offered, whatever the due time (the analysis started a new background)."""
        self._due = -np.inf

    def close(self, timeout: float = 1.0) -> None:
        """Stop the thread (waits at most ``timeout`` for a detection in progress); a later offer starts
        a new one."""
        self._slot.stop(timeout)
        self._slot = _DetectorSlot(self._detect)


def make_opinion(kind: str = "inline", min_score: float = 0.5, body: bool = True):
    """An :class:`InlineOpinion` or :class:`ThreadedOpinion` (``kind`` "thread"), or ``None``; ``body``:
    load the body detector now (else on the first run that turns it on).

    ``None`` (after one warning naming why) when the detector cannot run
    here: the camera then works by background subtraction alone.
    """
    t0 = time.perf_counter()
    try:
        det = D.load(min_score=min_score, body=body)
    except D.DetectorUnavailable as e:
        log.warning("%s; the camera works without its second opinion (docs/sensing.md)", e)
        return None
    op = ThreadedOpinion(det) if kind == "thread" else InlineOpinion(det)
    op.load_seconds = time.perf_counter() - t0  # once per start, in the caller's thread (for the benchmark)
    return op


@dataclass
class DetTrack:
    """A person the detector has seen: where, when last, and when last something moved there."""

    box: tuple[float, float, float, float]
    hip: tuple[float, float]
    score: float
    seen: float  # frame time of the last detection
    born: float
    active: float  # last time motion (or foreground kept on its own merits) was inside the box or the head
    fixture: bool = False
    close: bool = False  # seen in close-ups only, never in the whole frame
    head: tuple[float, float, float, float] | None = None   # see head_of and DetectionTracks.activity
    stirred: float = -math.inf  # last frame with activity while a fixture (see DetectionTracks.WAKE_S)
    #: (frame time, score) of its whole-frame finds in the last ``DetectionTracks.SURE_S``
    finds: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.close and not self.finds:
            self.finds = [(self.seen, self.score)]

    @property
    def best(self) -> float:
        """The highest score of its recent whole-frame finds (camera.py's parts rule; 0 for close-ups only)."""
        return max((sc for _, sc in self.finds), default=0.0)


def head_of(d: D.Detection) -> tuple[float, float, float, float] | None:
    """The square the pose detector gives round a whole-frame find's face, cut to its body box; ``None`` for a
    close-up's find.  Its size is all but fixed (a fifth of the detector's square input), so it is head-sized
    only for someone near the camera, where it matters (see :meth:`DetectionTracks.activity`); in a close-up it
    shrinks to a few pixels, where noise would pass for motion.  For a body detector's find it is the body box
    again."""
    if d.close:
        return None
    f, b = d.face, d.box
    x0, y0, x1, y1 = max(f[0], b[0]), max(f[1], b[1]), min(f[2], b[2]), min(f[3], b[3])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


class DetectionTracks:
    """The detector's recent findings, matched across runs by box overlap (or, for a whole-frame find
    that overlaps none, by being within ``STEP`` body widths of a track its run did not see: a walker).

    A track lives ``hold_s`` after it was last detected.  A track whose box
    (and, for a sure whole-frame find, its head: :meth:`activity`) has
    shown no activity for ``fixture_s`` is a *fixture* (a picture, a
    statue, a mannequin): its place is remembered, tracks found there are
    fixtures from the start, and one that activity (a visitor passing in
    front) made count again is a fixture once more after ``REFIX_S`` quiet
    seconds, not ``fixture_s`` (a portrait in a busy room would otherwise
    read as a visitor for ``fixture_s`` after everyone who passed it).  It
    takes activity on two frames within ``WAKE_S`` (or, from a camera
    slower than that, within two frames' time) to make a fixture count
    again: a single frame where a few pixels at a table's edge change and
    stay changed (a grey camera's empty room stepping from one moment to
    another, a compressed stream's blocks) woke it for ``REFIX_S``.  A
    track seen only in close-ups is a fixture after ``CLOSE_QUIET_S`` quiet
    seconds when its last find scored at least ``CLOSE_SURE``, else after
    ``CLOSE_UNSURE_S``: close up the detector is less sure (a pole with a
    sign on it scores 0.83-0.86, as high as some distant visitors), and a
    visitor in view at start-up sways only now and then (a real pedestrian
    standing across a plaza, 0.94-0.98, showed no motion the analysis could
    see for 3 s at a time).  The pole beside a start-up visitor who walks
    away can take over their track: it then counts 3 s after the last
    motion in its box, not 10.  A whole-frame track under ``CLOSE_SURE`` that
    has shown no activity at all since it was found is a fixture after
    ``CLOSE_QUIET_S``: a table that a dim light makes the detector score
    0.5 in an empty room at start-up, where a visitor in view sways.

    A whole-frame find under ``CLOSE_SURE`` that starts a track, or brings
    back one that ended, where an earlier run found nobody, and where nothing
    has changed since that run (``unchanged``, see :meth:`merge`), is a
    fixture from the start: the detector has already looked at the same
    picture ``MISSED_RUNS`` times and said nobody is there, so its find now
    is the flicker of a score on the edge (a bar table scoring 0.49 on one
    run and 0.50 on the next, in a room where nobody has come or gone; the
    same table found where a visitor stood before they left, which would
    bring back their track and its history).  A still visitor in view at
    start-up whom the first runs all missed reads empty until they sway.
    """

    MATCH_IOU = 0.3
    #: tracks that ended (unseen for ``hold_s``) are remembered this long, so a person or picture the detector
    #: finds only now and then keeps the time it has shown no activity instead of starting afresh each time;
    #: a find after a longer gap starts afresh (a new visitor where an old one stood)
    REMEMBER_S = 60.0
    REFIX_S = 2.0
    WAKE_S = 1.0   # a fixture counts again on activity in two frames this close (or two frames' time apart)
    GAPS_KEPT = 9   # frame intervals whose median is the camera's frame time (see WAKE_S)
    SURE_S = 2.0   # a track whose whole-frame finds of this long scored CLOSE_SURE once is sure (see DetTrack.best)
    CLOSE_QUIET_S = 10.0
    CLOSE_SURE = 0.9    # of 15,120 close-ups of people-free pictures, one scored above (a circuit board, 0.92)
    CLOSE_UNSURE_S = 3.0
    MAX_FIXTURES = 16   # places of fixtures remembered (the oldest forgotten first)
    STEP = 1.0   # a whole-frame find this many body widths from a track not seen in its run is that track moved
    RUNS_KEPT = 8   # recent runs whose whole-frame finds are remembered (see _missed_since)
    MISSED_RUNS = 3   # runs in a row that found nobody where a find is, before it counts as already seen empty

    def __init__(self) -> None:
        self.tracks: list[DetTrack] = []
        self.ended: list[DetTrack] = []
        self.fixtures: list[tuple[float, float, float, float]] = []
        self.runs: list[tuple[float, tuple[D.Detection, ...]]] = []   # (frame time, whole-frame finds)
        self._last_t = -math.inf   # the frame time :meth:`activity` last saw
        self._gaps: list[float] = []   # the last GAPS_KEPT intervals between its calls (the camera's frame time)

    def _missed_since(self, d: D.Detection, tf: float) -> float | None:
        """The frame time of the first of the last ``MISSED_RUNS`` runs before ``tf`` when none of them found
        anyone where ``d`` is in the whole frame, else ``None``."""
        last = [(tr, finds) for tr, finds in self.runs if tr < tf][-self.MISSED_RUNS:]
        if len(last) < self.MISSED_RUNS or any(same_person(d, o.box, o.hip) for _, finds in last for o in finds):
            return None
        return last[0][0]

    def merge(self, results, t: float, hold_s: float, admit=None, settled=None, unchanged=None) -> None:
        """Fold detector results in (each ``(frame time, detections)``) and drop tracks unseen for ``hold_s``.

        A close-up's find that would start a track (or bring back an ended one) does so only if
        ``admit(find)`` says so (camera.py: motion nothing explains lies inside its body box); one that is
        part of someone the whole frame found better only keeps that track alive.

        A whole-frame find where ``settled(box, since)`` says the room shows itself as it has since before
        the track began (camera.py: no foreground, no motion, a background that has long held what it
        shows) is a thing of the room: its track is a fixture and its place remembered.  The detector
        alone, where the background has long known what is there, is not a visitor.

        A whole-frame find under ``CLOSE_SURE`` that starts or brings back a track, where ``unchanged(box,
        since)`` says nothing has moved or come into view since an earlier run that found nobody there
        (camera.py), is a fixture too."""
        def room(d, since) -> bool:
            return settled is not None and not d.close and settled(d.box, since)

        def fix(tk) -> None:
            tk.fixture = True
            if not any(D.iou(tk.box, f) >= 0.5 for f in self.fixtures):
                self._remember(tk.box)

        self.ended = [e for e in self.ended if t - e.seen <= self.REMEMBER_S]
        for tf, dets in results:
            used: set[int] = set()
            for d in dets:
                best, bi = self.MATCH_IOU, -1
                for i, tk in enumerate(self.tracks):
                    if i not in used:
                        o = D.iou(d.box, tk.box)
                        if o >= best:
                            best, bi = o, i
                if bi < 0:   # the same person found whole and close up (a part of them, or them within a part)
                    bi = max(((D.iou(d.box, tk.box), i) for i, tk in enumerate(self.tracks)
                              if i not in used and (d.close or tk.close) and not (tk.fixture and not d.close)
                              and same_person(d, tk.box, tk.hip)), default=(0.0, -1))[1]
                # A walker found a step on: the track seen on an earlier run moves.  Not onto a place that has a
                # history of its own (a remembered picture, a track that ended there): a passer-by's track taking
                # over a poster would count for fixture_s.
                if bi < 0 and not d.close and not any(D.iou(d.box, f) >= 0.5 for f in self.fixtures) \
                        and not any(D.iou(d.box, e.box) >= self.MATCH_IOU for e in self.ended) and not room(d, tf):
                    bi = min(((math.dist(d.hip, tk.hip), i) for i, tk in enumerate(self.tracks)
                              if i not in used and not tk.close and not tk.fixture and tk.seen < tf
                              and math.dist(d.hip, tk.hip)
                              <= self.STEP * max(d.box[2] - d.box[0], tk.box[2] - tk.box[0])),
                             default=(0.0, -1))[1]
                if bi >= 0:
                    tk = self.tracks[bi]
                    used.add(bi)
                    if d.close and not tk.close and d.score <= tk.score:
                        tk.seen = max(tk.seen, tf)   # the whole frame's find is better: keep its box
                        continue
                    tk.box, tk.hip, tk.score, tk.seen = d.box, d.hip, d.score, max(tk.seen, tf)
                    tk.head, tk.close = head_of(d), tk.close and d.close
                    if not d.close:
                        tk.finds.append((tf, d.score))
                    if not tk.fixture and room(d, tk.born):   # a leaving visitor's track onto the table
                        fix(tk)
                    continue
                if d.close and admit is not None and not admit(d):
                    continue
                old = max(((D.iou(d.box, e.box), k) for k, e in enumerate(self.ended)
                           if e.close or not d.close), default=(0.0, -1))
                if old[0] >= self.MATCH_IOU:   # seen here before: it keeps its history
                    tk = self.ended.pop(old[1])
                    tk.box, tk.hip, tk.score, tk.seen = d.box, d.hip, d.score, tf
                    tk.finds = [] if d.close else [(tf, d.score)]
                    tk.head, tk.close = head_of(d), tk.close and d.close
                else:
                    fixture = any(D.iou(d.box, f) >= 0.5 for f in self.fixtures)
                    tk = DetTrack(d.box, d.hip, d.score, tf, tf, tf, fixture, d.close, head_of(d))
                # Found again, or anew, on a picture the last MISSED_RUNS runs saw empty (a visitor's track
                # that ended as they left, found again on the bar table where they stood).  Not after a single
                # miss: a still visitor in view at start-up whom the very first run missed looks the same.
                if not tk.fixture and not d.close and d.score < self.CLOSE_SURE and unchanged is not None:
                    since = self._missed_since(d, tf)
                    if since is not None and unchanged(d.box, since):
                        fix(tk)
                if not tk.fixture and room(d, tk.born):
                    fix(tk)
                self.tracks.append(tk)
                used.add(len(self.tracks) - 1)
            self.runs = (self.runs + [(tf, tuple(d for d in dets if not d.close))])[-self.RUNS_KEPT:]
        for tk in self.tracks:
            tk.finds = [f for f in tk.finds if t - f[0] <= self.SURE_S]
        gone = [tk for tk in self.tracks if t - tk.seen > hold_s]
        self.tracks = [tk for tk in self.tracks if t - tk.seen <= hold_s]
        self.ended = [e for e in self.ended + gone if t - e.seen <= self.REMEMBER_S][-32:]

    def activity(self, t: float, active_in, fixture_s: float) -> None:
        """Update each track's last activity; ``active_in(box)`` says whether something moves in a box now.

        Activity makes a track count, at a known picture's place too (someone passing in front of it), once
        it shows on a second frame (``WAKE_S``); such a track is a picture again ``REFIX_S`` after the activity
        stops.  The head (:func:`head_of`) of a whole-frame find scored at least ``CLOSE_SURE`` is asked on its
        own as well: a man filling the frame who only turns his head moved at most 0.19 % of his body box
        between frames, under the test's share of it, and was taken for a picture after ``fixture_s``; in his
        head's square the same turns are activity.
        """
        self.ended = [e for e in self.ended if not active_in(e.box)]   # something moved there: a fresh start
        if t > self._last_t > -math.inf:   # the usual frame time, not one stall's gap
            self._gaps = (self._gaps + [t - self._last_t])[-self.GAPS_KEPT:]
        self._last_t = t
        window = max(self.WAKE_S, 2.5 * float(np.median(self._gaps))) if self._gaps else self.WAKE_S
        for tk in self.tracks:
            if active_in(tk.box) or (tk.head is not None and tk.score >= self.CLOSE_SURE and active_in(tk.head)):
                if tk.fixture and not t - window <= tk.stirred < t:
                    tk.stirred = t   # one frame of it may be the picture's own flicker: wait for a second
                    continue
                tk.active = t
                tk.fixture = False
            elif not tk.fixture:
                known = any(D.iou(tk.box, f) >= 0.5 for f in self.fixtures)
                if known:
                    quiet = self.REFIX_S
                elif tk.close:
                    quiet = min(fixture_s, self.CLOSE_QUIET_S if tk.score >= self.CLOSE_SURE else self.CLOSE_UNSURE_S)
                elif tk.active <= tk.born and tk.score < self.CLOSE_SURE:
                    quiet = min(fixture_s, self.CLOSE_QUIET_S)   # never moved since found, and unsure
                else:
                    quiet = fixture_s
                if t - tk.active >= quiet:
                    tk.fixture = True
                    if not known and not tk.close:   # a close-up's quiet find is not remembered as a picture
                        self._remember(tk.box)

    def shift(self, du: float, dv: float) -> None:
        """Move every track, ended track and remembered fixture place by (``du``, ``dv``) (fractions of the
        frame's width and height): the camera's view moved (camera.py ``_register``), so a table found again
        is still the fixture remembered, not a visitor for ``fixture_s``."""
        def moved(b):
            return (b[0] + du, b[1] + dv, b[2] + du, b[3] + dv)

        for tk in self.tracks + self.ended:
            tk.box = moved(tk.box)
            tk.head = moved(tk.head) if tk.head is not None else None
            tk.hip = (tk.hip[0] + du, tk.hip[1] + dv)
        self.fixtures = [moved(b) for b in self.fixtures]
        self.runs = []   # what a run saw is of the view before the move

    def _remember(self, box) -> None:
        """Remember a fixture's place (the oldest forgotten beyond ``MAX_FIXTURES``)."""
        self.fixtures = (self.fixtures + [box])[-self.MAX_FIXTURES:]

    def remembers(self) -> bool:
        """Anything to keep up to date: live tracks, recently ended ones, or fixture places."""
        return bool(self.tracks or self.ended or self.fixtures)

    def live(self) -> list[DetTrack]:
        """Tracks that count as people now (fixtures left out)."""
        return [tk for tk in self.tracks if not tk.fixture]
