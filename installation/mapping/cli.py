"""``python run.py map``: drive the patterns, watch them, find every LED, write the layouts.

:func:`map_venue` is the whole run for a frame source (a live camera, or in
tests a synthetic one); :func:`run_map` is the command line around it (opening
the camera or clip, messages, exit status).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from installation.outputs.claim import ControllersBusy
from installation.venue import Venue, VenueError, check_layout, load_venue

from .decode import Detections, decode
from .drive import PatternPlayer
from .fit import FixtureResult, fit_fixtures
from .geometry import CANVAS_CORNERS, CameraModel, Lens, estimate_k1, fit_homography
from .patterns import Pattern, bits_for, safe_levels, sequence
from .sources import LiveCamera, SourceError, clip_scenes, is_clip
from .write import MAX_SHAPE_RMS, append_view, write_camera_section, write_layouts


PICK = "pick"   # --corners pick: click the corners on the camera's view in a browser


class MapError(ValueError):
    """A mapping run that cannot go on; the message is for the installer."""


class MapArgError(MapError):
    """A bad argument (``--corners``, ``--anchor``): bad input, exit status 2, before any pattern is lit."""


@dataclass
class MapOptions:
    """How to map: anchors, lens, cadence, what to write."""

    corners: str | None = None          # "u,v u,v u,v u,v": canvas TL, TR, BR, BL in the camera image
    anchors: tuple[str, ...] = ()       # "FIXTURE:INDEX[=X,Y]" (X, Y in the layout file's units)
    k1: float | None = None             # lens distortion; None: estimated from straight fixtures
    hold_s: float = 0.4                 # each pattern stays this long before the camera looks
    average: int = 2                    # camera frames averaged per pattern (at least 2)
    settle_s: float = 2.0               # longest extra wait for the camera to show a new pattern
    fps: float = 30.0
    write: bool = True                  # write the layouts
    write_roi: bool = False             # write [camera] roi into the venue
    png: Path | None = None             # the camera view with the found LEDs drawn
    camera_name: str = "camera"
    quiet: bool = False


@dataclass
class MapResult:
    """Everything a run found (for the report, tests and the benchmark)."""

    n: int
    patterns: int
    detections: Detections
    model: CameraModel
    canvas: np.ndarray                  # (N, 2) canvas positions, NaN = missing
    fixtures: list[FixtureResult]
    limiter_frames: int = 0
    limiter_altered: int = 0
    written: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    views_file: Path | None = None
    roi: list[float] | None = None
    timing: dict = field(default_factory=dict)

    @property
    def missing(self) -> np.ndarray:
        """Indices of the LEDs not seen."""
        return np.flatnonzero(~np.isfinite(self.canvas).all(axis=1))


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, quiet: bool = False):
        self.total, self.quiet, self.k = total, quiet, 0

    def step(self, label: str) -> None:
        """One pattern done."""
        self.k += 1
        if self.quiet:
            return
        w = 30
        done = int(w * self.k / self.total)
        sys.stderr.write(f"\rmapping [{'#' * done}{'.' * (w - done)}] {self.k}/{self.total} {label:<16}")
        if self.k == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _key(p: Pattern):
    return p.name if p.bit < 0 else ("bit", p.bit, p.inverse)


def _changed(a: np.ndarray, b: np.ndarray, level: float) -> int:
    """Pixels whose grey level differs by more than ``level`` between two frames."""
    return int(np.count_nonzero(np.abs(a.mean(axis=2) - b.mean(axis=2)) > level))


def capture(venue: Venue, source, opts: MapOptions, outputs=None) -> tuple[dict, PatternPlayer, list[Pattern]]:
    """Show every pattern through the venue's safe pipeline and grab the camera's view of each.

    After ``hold_s`` the camera is asked until its picture has changed from the previous pattern's and
    holds still (a camera's latency is not known in advance), at most ``settle_s`` more.
    """
    player = PatternPlayer(venue, fps=opts.fps, outputs=outputs)
    player.unsettled = []
    seq = sequence(venue.layout.count, safe_levels(*player.thresholds))
    bar = Progress(len(seq), opts.quiet)
    frames = {}
    level = 30.0
    lit = 0            # pixels the all-on pattern changed: the scale of a real change
    prev = None
    try:
        for p in seq:
            player.show(p.levels, opts.hold_s, p.name)
            f = source.grab().astype(np.float32)
            if prev is None:      # the dark frame: the camera's noise sets what counts as a change
                g = source.grab().astype(np.float32)
                end = time.monotonic() + opts.settle_s
                # what the LEDs showed before (the show, a test pattern) may still be in the camera's pipe
                while _changed(f, g, 30.0) > max(10, 1e-4 * g.shape[0] * g.shape[1]) and time.monotonic() < end:
                    f, g = g, source.grab().astype(np.float32)
                    player.show(p.levels, 0.0, p.name)
                noise = float(np.std(g.mean(axis=2) - f.mean(axis=2))) / np.sqrt(2.0)
                level = max(6.0 * noise, 12.0)
                f = (f + g) / 2
            else:
                need = 5 if p.name == "white" else max(5, int(0.02 * lit))
                end = time.monotonic() + opts.settle_s
                while True:
                    g = source.grab().astype(np.float32)
                    player.show(p.levels, 0.0, p.name)
                    moved = _changed(prev, g, level)
                    if moved >= need and _changed(f, g, level) <= 0.25 * moved:   # new, and holding still
                        f = (f + g) / 2
                        break
                    if time.monotonic() > end:
                        if p.name == "white":
                            raise MapError("no LED lit up in the camera's picture: is it pointed at the LEDs, "
                                           "the lens uncovered, are the outputs reaching the controllers?")
                        player.unsettled.append(p.name)
                        break     # keep what it sees; decoding judges each LED on its own
                    f = g
                if p.name == "white":
                    lit = _changed(prev, f, level)
            acc, k = f * 2, 2
            for _ in range(max(0, opts.average - 2)):
                acc += source.grab().astype(np.float32)
                k += 1
                player.show(p.levels, 0.0, p.name)   # keep the frames coming while the camera exposes
            prev = acc / k
            # code frames are only read as grey: a third of the memory at 20,000 LEDs and 4 megapixels
            frames[_key(p)] = prev.mean(axis=2) if p.bit >= 0 else prev
            bar.step(p.name)
    finally:
        player.close()
    return frames, player, seq


def _parse_corners(text: str, size: tuple[int, int]) -> np.ndarray:
    try:
        nums = [float(v) for v in text.replace(";", " ").replace(",", " ").split()]
    except ValueError:
        raise MapArgError(f"--corners {text!r}: expected 8 numbers, the canvas corners TL, TR, BR, BL as x,y") from None
    if len(nums) != 8 or not all(math.isfinite(v) for v in nums):
        raise MapArgError(f"--corners {text!r}: expected 8 numbers (4 corners x,y), got {len(nums)}")
    pts = np.array(nums, np.float64).reshape(4, 2)
    if np.all(pts <= 2.0):   # 0..1 of the image, like sensing/camera/roi
        pts = pts * np.array(size, np.float64) - 0.5
    return pts


def _parse_anchor(text: str, venue: Venue) -> tuple[int, np.ndarray | None]:
    """"FIXTURE:INDEX[=X,Y]" -> (LED index, canvas position or None for the layout's)."""
    where, _, at = text.partition("=")
    name, _, idx = where.rpartition(":")
    lay = venue.layout
    try:
        fi = lay.fixture(name)
        k = int(idx)
    except (KeyError, ValueError):
        raise MapArgError(f"--anchor {text!r}: expected FIXTURE:INDEX[=X,Y] with a fixture of the venue "
                       f"({', '.join(f.name for f in lay.fixtures[:6])}...)") from None
    f = lay.fixtures[fi]
    if not 0 <= k < f.count:
        raise MapArgError(f"--anchor {text!r}: {name} has LEDs 0..{f.count - 1}")
    pos = None
    if at:
        try:
            xy = np.array([float(v) for v in at.split(",")], np.float64)
        except ValueError:
            xy = np.zeros(0)
        if xy.shape != (2,) or not np.isfinite(xy).all():
            raise MapArgError(f"--anchor {text!r}: the position after '=' must be X,Y in the layout's units")
        cs = lay.canvas_size if f.file is None else _canvas_units(f.file)
        pos = xy / np.asarray(cs, np.float64)
    return int(lay.first[fi]) + k, pos


def _corner_leds(venue: Venue, fi: int) -> list[int]:
    """The LEDs at the corners of fixture ``fi`` in the layout: the ends of a strip, the corners of a
    matrix or of a cloud of points (the ones furthest toward each canvas corner)."""
    lay = venue.layout
    sl = lay.led_range(fi)
    p = lay.positions[sl].astype(np.float64)
    if lay.fixtures[fi].kind in ("strip", "polyline"):
        picks = [0, len(p) - 1]
    else:
        picks = [int(np.argmin(p[:, 0] + p[:, 1])), int(np.argmax(p[:, 0] - p[:, 1])),
                 int(np.argmax(p[:, 0] + p[:, 1])), int(np.argmin(p[:, 0] - p[:, 1]))]
    return [sl.start + k for k in dict.fromkeys(picks)]


def _anchors(opts: MapOptions, venue: Venue) -> list[tuple[int, np.ndarray | None]]:
    """Every anchor LED of ``--anchor``: FIXTURE:INDEX[=X,Y], or a bare FIXTURE for its corner LEDs."""
    out = []
    for a in opts.anchors:
        if ":" not in a and "=" not in a:
            try:
                fi = venue.layout.fixture(a)
            except KeyError:
                raise MapArgError(f"--anchor {a!r}: no such fixture; give FIXTURE or FIXTURE:INDEX[=X,Y] "
                                  f"({', '.join(f.name for f in venue.layout.fixtures[:6])}...)") from None
            out += [(i, None) for i in _corner_leds(venue, fi)]
        else:
            out.append(_parse_anchor(a, venue))
    if opts.anchors and len(out) < 4:
        raise MapArgError(f"--anchor: give at least 4 anchor LEDs (got {len(out)})")
    return out


def _canvas_units(path: Path) -> tuple[float, float]:
    import tomllib
    try:
        top = tomllib.loads(Path(path).read_text(encoding="utf-8")) if Path(path).suffix != ".json" else {}
    except (OSError, ValueError):
        return (1.0, 1.0)
    c = top.get("canvas", {}) or {}
    if c.get("units", "canvas") == "canvas":
        return (1.0, 1.0)
    return (float(c["width"]), float(c["height"]))


def _straight_lines(venue: Venue, det: Detections) -> list[np.ndarray]:
    """Camera positions of LEDs that lie on straight lines: strips, and a matrix's rows and columns."""
    lay = venue.layout
    px = det.position_of()
    lines = []
    for fi, f in enumerate(lay.fixtures):
        sl = lay.led_range(fi)
        p = px[sl]
        if f.kind == "strip":
            lines.append(p[np.isfinite(p).all(axis=1)])
        elif f.kind == "matrix":
            old = lay.positions[sl]
            for axis in (0, 1):
                keys = np.round(old[:, axis], 6)
                for v in np.unique(keys):
                    q = p[(keys == v) & np.isfinite(p).all(axis=1)]
                    if len(q) >= 4:
                        lines.append(q)
    return [ln for ln in lines if len(ln) >= 4]


def solve(venue: Venue, frames: dict, opts: MapOptions, n_patterns: int) -> MapResult:
    """From the captured frames to canvas positions and per-fixture results (nothing written)."""
    lay = venue.layout
    n = lay.count
    t0 = time.perf_counter()
    det = decode(frames, n)
    t1 = time.perf_counter()
    if det.index.size == 0:
        raise MapError("no LED was seen: is the camera pointed at the LEDs, the lens uncovered, the exposure low "
                       "enough that a dim LED is not lost in the room light?")
    size = det.image_size
    notes = []
    k1 = opts.k1
    if k1 is None:
        k1 = estimate_k1(_straight_lines(venue, det), size)
        if k1 is None:
            k1 = 0.0
            notes.append("no straight fixtures seen to measure the lens: assumed distortion-free (give --k1)")
        else:
            notes.append(f"lens distortion k1 = {k1:.4f} (from the straight strips and matrix lines)")
    if det.ambiguous.size:
        notes.append(f"{det.ambiguous.size} LEDs showed in two places about equally bright (a reflection?) and "
                     f"are reported missing: {_ranges(det.ambiguous.tolist()[:20])}"
                     f"{' ...' if det.ambiguous.size > 20 else ''}")
    lens = Lens(float(k1), size)
    px = det.position_of()
    if opts.corners:
        img = _parse_corners(opts.corners, size)
        H, _ = fit_homography(img, CANVAS_CORNERS, lens)
        notes.append("canvas fixed by the four marked corners")
    elif opts.anchors:
        idx, canvas_pts = [], []
        for i, pos in _anchors(opts, venue):
            if not np.isfinite(px[i]).all():
                name = lay.fixtures[int(np.searchsorted(lay.first, i, side="right")) - 1].name
                raise MapError(f"--anchor: LED {i} ({name}) was not seen by the camera; choose another")
            idx.append(i)
            canvas_pts.append(pos if pos is not None else lay.positions[i].astype(np.float64))
        H, _ = fit_homography(px[idx], np.array(canvas_pts), lens)
        notes.append(f"canvas fixed by {len(idx)} anchor LEDs")
    else:
        if det.index.size < 8:
            raise MapError("too few LEDs seen to fit the view to the old layout: mark the canvas with --corners")
        H, inl = fit_homography(det.px, lay.positions[det.index].astype(np.float64), lens, robust=True)
        notes.append(f"canvas fixed by fitting the view to the old layout ({int(inl.sum())} of {inl.size} LEDs "
                     f"agree); mark --corners or --anchor if the whole layout may be off")
    model = CameraModel(lens, H)
    canvas = np.full((n, 2), np.nan)
    canvas[det.index] = model.to_canvas(det.px)
    outside = np.flatnonzero(np.isfinite(canvas).all(axis=1) & ((canvas < -0.01) | (canvas > 1.01)).any(axis=1))
    if outside.size:
        notes.append(f"{outside.size} LEDs lie outside the canvas (e.g. LED {int(outside[0])}); placed on its edge")
    canvas = np.where(np.isfinite(canvas), np.clip(canvas, 0.0, 1.0), np.nan)
    rgb = {int(i): det.rgb[k] for k, i in enumerate(det.index)}
    results = fit_fixtures(lay, canvas, rgb)
    swapped = [r for r in results if r.order_seen]
    clear = [r for r in results if not r.order_unclear]
    if len(clear) > 1 and len(swapped) == len(clear):
        notes.append("every fixture looks colour-swapped the same way: check the camera's colours "
                     "(BGR vs RGB) before rewiring anything")
        for r in swapped:
            r.order_seen = None
    t2 = time.perf_counter()
    res = MapResult(n=n, patterns=n_patterns, detections=det, model=model, canvas=canvas, fixtures=results,
                    notes=notes)
    res.timing = {"decode_s": t1 - t0, "fit_s": t2 - t1}
    return res


def _ranges(idx) -> str:
    idx = list(idx)
    out, i = [], 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        out.append(str(idx[i]) if i == j else f"{idx[i]}-{idx[j]}")
        i = j + 1
    return ", ".join(out)


def report(res: MapResult, venue: Venue) -> list[str]:
    """The lines printed after a run."""
    shown = (f"flash limiter: {res.limiter_altered} of {res.limiter_frames} frames altered" if res.limiter_frames
             else "patterns from a recording (its dry run reported the flash limiter)")
    lines = [f"{venue.name}: {res.n - res.missing.size} of {res.n} LEDs found in {res.patterns} patterns; {shown}"]
    for r in res.fixtures:
        s = f"  {r.name} ({r.kind}): {r.found}/{r.count} seen"
        if r.missing:
            s += f"; missing (not seen, not guessed): {_ranges(r.missing)}"
        if r.kind in ("strip", "matrix") and (r.start is not None or r.origin is not None):
            s += f"; off its fitted shape by {100 * r.rms:.2f} % of the canvas height (rms)"
        lines.append(s)
        if r.kind in ("strip", "matrix") and r.rms > MAX_SHAPE_RMS:
            lines.append(f"  WARNING {r.name}: its LEDs do not lie on a {r.kind} in wiring order; check its wiring "
                         f"(start_corner, direction, serpentine); it is not rewritten")
        if r.reversed:
            lines.append(f"  WARNING {r.name}: wired reversed -- its LED 0 is at the layout's end; the new "
                         f"start/end follow the wiring")
        if any(r.mirrored):
            lines.append(f"  WARNING {r.name}: data enters from another corner than the layout says; "
                         f"start_corner rewritten")
        if r.order_seen:
            lines.append(f"  WARNING {r.name}: colour order looks like {r.order_seen}, the patch says "
                         f"{venue.layout.fixtures[venue.layout.fixture(r.name)].patch.order} "
                         f"(red showed as another colour); fix `order` in the layout")
        elif r.order_unclear and r.found:
            lines.append(f"  note {r.name}: colour order could not be judged (colours too weak in the camera)")
        lines += [f"  note {n}" for n in r.notes]
    lines += [f"note: {n}" for n in res.notes]
    return lines


def map_venue(venue_path: Path | str, source, opts: MapOptions, outputs=None, frames: dict | None = None) -> MapResult:
    """A whole mapping run of the venue at ``venue_path`` with frame ``source`` (``grab()``).

    ``frames``: already captured scenes (a clip) instead of driving the LEDs.  Writes what ``opts``
    ask for; raises :class:`MapError` / :class:`VenueError` with a message for the installer.
    """
    venue = load_venue(venue_path)
    n = venue.layout.count
    # bad marks are found before the LEDs run for a minute, not after
    if opts.corners == PICK:
        raise MapArgError("--corners pick needs a camera or a clip to show")
    if opts.corners:
        _parse_corners(opts.corners, (100, 100))
    _anchors(opts, venue)
    t0 = time.perf_counter()
    if frames is None:
        frames, player, seq = capture(venue, source, opts, outputs)
        frames_sent, altered = player.watch.frames, player.watch.altered
        unsettled = player.unsettled
    else:
        seq = sequence(n, safe_levels(0.1, 0.0625))   # only the order and names matter here
        frames_sent = altered = 0
        unsettled = []
    t1 = time.perf_counter()
    res = solve(venue, frames, opts, len(seq))
    res.limiter_frames, res.limiter_altered = frames_sent, altered
    res.timing["capture_s"] = t1 - t0
    if unsettled:
        res.notes.append(f"the camera's picture did not settle for {len(unsettled)} patterns ({', '.join(unsettled[:4])}"
                         f"{' ...' if len(unsettled) > 4 else ''}); a longer --hold may help")
    if altered:
        res.notes.append(f"the flash limiter altered {altered} frames; the patterns may be misread")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    res.roi = res.model.roi()
    det = res.detections
    view = {"time": stamp, "camera": opts.camera_name, "image_size": list(det.image_size),
            "lens_k1": res.model.lens.k1, "homography": res.model.H.tolist(), "roi": res.roi,
            "found": {"index": det.index.tolist(), "image_px": np.round(det.px, 3).tolist(),
                      "canvas": np.round(res.canvas[det.index], 6).tolist()},
            "missing": res.missing.tolist(),
            "reversed": [r.name for r in res.fixtures if r.reversed],
            "colour_order": {r.name: r.order_seen for r in res.fixtures if r.order_seen}}
    if opts.png is not None:
        from .overlay import camera_view_png
        camera_view_png(Path(opts.png), frames["white"], frames["dark"], det, res.model, venue.layout, res.missing)
    if opts.write:
        res.views_file, _ = append_view(venue, view)
        written, notes = write_layouts(venue, res.fixtures, stamp)
        res.written += written
        res.notes += notes
        if opts.write_roi:
            b = write_camera_section(load_venue(venue.path), res.roi, res.model.lens.k1, det.image_size, stamp)
            res.written.append((venue.path, b))
    res.timing["total_s"] = time.perf_counter() - t0
    return res


def preview_window(title: str):
    """The preview window for ``--dry-run --preview``; :class:`MapArgError` where there is no screen."""
    try:
        from installation.preview import PreviewWindow
        return PreviewWindow((960, 540), title)
    except Exception as exc:   # pyglet: no display, no GLX, a context too old
        raise MapArgError(f"--preview needs a screen (DISPLAY={os.environ.get('DISPLAY', '')!r}): "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def dry_run(venue_path: Path | str, opts: MapOptions, png: Path | None = None, outputs=None,
            preview: bool = False) -> list[str]:
    """Show the patterns on the venue's LEDs (no camera, nothing written) and draw them into ``png``;
    ``preview``: also in a window, each LED at its layout position as it goes out."""
    venue = load_venue(venue_path)
    win = preview_window(f"Tapestry map: {venue.name} patterns") if preview else None
    try:
        player = PatternPlayer(venue, fps=opts.fps, outputs=outputs, ctx=win.ctx if win else None)
    except BaseException:
        if win is not None:
            win.close()
        raise
    tick = None
    if win is not None:
        try:
            win.attach_leds(player.pipe, player.pipe.sampler.shaders)
        except BaseException:
            player.close()
            win.close()
            raise

        def tick():
            win.draw_led_frame()
            if win.closed:
                raise KeyboardInterrupt   # Esc or the window closed: stop as Ctrl-C does
    seq = sequence(venue.layout.count, safe_levels(*player.thresholds))
    bar = Progress(len(seq), opts.quiet)
    try:
        for p in seq:
            player.show(p.levels, opts.hold_s, p.name, tick)
            bar.step(p.name)
    finally:
        player.close()
        if win is not None:
            win.close()
    lines = [f"{venue.name}: {venue.layout.count} LEDs, {len(seq)} patterns ({bits_for(venue.layout.count)} "
             f"Gray-code bits with inverses, dark, all-on, red, green, blue), {opts.hold_s:g} s each",
             f"flash limiter: {player.watch.altered} of {player.watch.frames} frames altered"]
    if png is not None:
        from .overlay import patterns_png
        patterns_png(Path(png), venue.layout, seq)
        lines.append(f"patterns drawn: {png}")
    return lines


def snapshot(venue_path: Path | str, source, path: Path, opts: MapOptions, outputs=None) -> Path:
    """Every LED on at the pattern level (through the safe pipeline), one camera frame with a pixel grid
    written to ``path``: the installer reads the canvas corners off it for ``--corners``."""
    from .overlay import snapshot_png
    return snapshot_png(path, view(venue_path, source, opts, outputs))


def view(venue_path: Path | str, source, opts: MapOptions, outputs=None) -> np.ndarray:
    """One camera frame with every LED on at the pattern level (through the safe pipeline)."""
    venue = load_venue(venue_path)
    player = PatternPlayer(venue, fps=opts.fps, outputs=outputs)
    try:
        white = sequence(venue.layout.count, safe_levels(*player.thresholds))[1]
        player.show(white.levels, max(opts.hold_s, 0.5), white.name)
        return source.grab()
    finally:
        player.close()


def pick_corners(frame: np.ndarray, listen: str, out=print, timeout_s: float | None = None) -> str:
    """Serve ``frame`` on ``listen`` (HOST:PORT) until the installer has clicked the four canvas corners;
    returns them as a ``--corners`` value.  Ctrl-C gives up (KeyboardInterrupt)."""
    from .picker import CornerPicker, PickError, as_argument
    host, _, port = listen.rpartition(":")
    try:
        picker = CornerPicker(frame, host or "127.0.0.1", int(port))
    except ValueError as exc:
        raise MapError(f"--pick-listen {listen!r}: {exc if isinstance(exc, PickError) else 'expected HOST:PORT'}") \
            from None
    try:
        url = picker.start()
        where = f" (or http://<this machine's address>:{picker.port}/ from a tablet)" if host in ("0.0.0.0", "::") else ""
        out(f"open {url}{where} and click the canvas corners: top-left, top-right, bottom-right, bottom-left")
        sys.stdout.flush()      # the installer (or a script) needs the address now, not at exit
        pts = picker.wait(timeout_s)
    finally:
        picker.close()
    if pts is None:
        raise MapError("no corners were marked in time")
    corners = as_argument(pts)
    out(f'corners marked; next time give --corners "{corners}"')
    return corners


def _check_outputs(png_dir: str | None, snapshot_to: str | None) -> None:
    """:class:`MapArgError` before any pattern is lit when a picture could not be written at the end: a
    --png-dir that is not a folder (a whole mapping run ended in a traceback and wrote nothing), a
    --snapshot in a missing folder or not a .png/.jpg."""
    if png_dir is not None and not Path(png_dir).is_dir():
        raise MapArgError(f"--png-dir {png_dir}: not a folder (give an existing folder)")
    if snapshot_to is not None:
        snap = Path(snapshot_to)
        if snap.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            raise MapArgError(f"--snapshot {snapshot_to}: give a .png or .jpg file")
        if snap.is_dir() or not snap.parent.is_dir():
            raise MapArgError(f"--snapshot {snapshot_to}: " + ("is a folder" if snap.is_dir() else
                                                               f"no folder {snap.parent}"))


def run_map(venue: str, camera: str | None, dry: bool, opts: MapOptions, png_dir: str | None = None,
            snapshot_to: str | None = None, pick_listen: str = "127.0.0.1:0", preview: bool = False) -> int:
    """The command line: returns the exit status (0 done, 1 mapping failed, 2 bad input, 130 Ctrl-C).

    ``opts.corners == "pick"``: the camera's view is served on ``pick_listen`` and the corners are
    clicked in a browser before the patterns run."""
    out = print
    try:
        _check_outputs(png_dir, snapshot_to)
        if dry:
            png = Path(png_dir or Path(venue).parent) / (Path(venue).stem + "-patterns.png")
            for ln in dry_run(venue, opts, png, preview=preview):
                out(ln)
            return 0
        if camera is None:
            out("tapestry map: give --camera (a device index such as 0, or a recorded clip), or --dry-run")
            return 2
        v = load_venue(venue)
        if opts.corners and opts.corners != PICK:   # bad arguments are found before the camera is opened
            _parse_corners(opts.corners, (100, 100))
        _anchors(opts, v)
        opts.camera_name = camera
        opts.png = Path(png_dir or v.path.parent) / (v.path.stem + "-camera-map.png")
        if is_clip(camera):
            n_pat = 5 + 2 * bits_for(v.layout.count)
            scenes = clip_scenes(camera, n_pat)
            seq = sequence(v.layout.count, safe_levels(0.1, 0.0625))
            frames = {_key(p): s for p, s in zip(seq, scenes)}
            if opts.corners == PICK:
                opts.corners = pick_corners(scenes[1], pick_listen, out)
            res = map_venue(venue, None, opts, frames=frames)
        elif not camera.isdigit() and not camera.startswith("/dev/"):
            raise SourceError(f"--camera {camera!r}: not a camera index (0, 1 ...), a /dev path or an existing "
                              f"video file")
        else:
            src = LiveCamera(camera)
            try:
                if snapshot_to:
                    out(f"camera view with a pixel grid: {snapshot(venue, src, Path(snapshot_to), opts)}")
                    return 0
                if opts.corners == PICK:
                    opts.corners = pick_corners(view(venue, src, opts), pick_listen, out)
                res = map_venue(venue, src, opts)
            finally:
                src.close()
    except (VenueError, SourceError, MapError, ControllersBusy) as exc:
        out(f"tapestry map: {exc}")
        return 1 if isinstance(exc, MapError) and not isinstance(exc, MapArgError) else 2
    except KeyboardInterrupt:
        out("tapestry map: stopped (Ctrl-C); nothing written")
        return 130
    except OSError as exc:   # a picture that cannot be written (a full disk, a folder removed meanwhile)
        out(f"tapestry map: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1
    for ln in report(res, v):
        out(ln)
    if opts.png:
        out(f"camera view with every found LED: {opts.png}")
    if res.views_file:
        out(f"views: {res.views_file}")
    for path, bak in res.written:
        out(f"wrote {path}" + (f" (previous version: {bak})" if bak else ""))
    if opts.write_roi:
        out("presence camera ROI (sensing/camera/roi/x0..y3): " + ",".join(f"{v:.4f}" for v in res.roi))
    if opts.write:
        check = check_layout(v.path)
        out("layouts check: " + check.splitlines()[-1])
        if not check.endswith("OK"):
            return 1
    return 0


def run_from_args(args) -> int:
    """``run.py map`` after argparse."""
    from installation.app import DEFAULT_VENUE
    if args.hold < 0 or not math.isfinite(args.hold) or args.average < 1:
        print("tapestry map: --hold must be >= 0 seconds and --average >= 1")
        return 2
    if args.k1 is not None and not (math.isfinite(args.k1) and -1.0 < args.k1 < 1.0):
        print(f"tapestry map: --k1 {args.k1}: expected a number between -1 and 1")
        return 2
    opts = MapOptions(corners=args.corners, anchors=tuple(args.anchor), k1=args.k1, hold_s=args.hold,
                      average=args.average, write=not args.no_write, write_roi=args.write_roi, quiet=args.quiet)
    if args.preview and not args.dry_run:
        print("tapestry map: --preview goes with --dry-run (a mapping run looks through the camera)")
        return 2
    return run_map(str(args.venue or DEFAULT_VENUE), args.camera, args.dry_run, opts, args.png_dir, args.snapshot,
                   args.pick_listen, args.preview)
