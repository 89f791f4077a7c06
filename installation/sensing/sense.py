"""``python run.py sense``: run the sensing on a camera/microphone (or files) and write what it measures.

One CSV row per camera frame (or 30 rows a second without a camera); an
optional MP4 preview shows the camera view with the foreground, the ROI and
the tracked people drawn over it, for tuning thresholds and the ROI.
"""

from __future__ import annotations

import csv
import logging
import math
import sys
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from installation.params import ParamTree

from .camera import CameraAnalyzer, analysis_size, has_colour, is_file_source, parse_roi, roi_points, set_roi
from .frames import AudioFrame, CameraFrame
from .microphone import is_audio_file

log = logging.getLogger(__name__)

COLUMNS = ("t", "presence", "motion", "speed", "people", "level_dbfs", "floor_dbfs", "loudness", "bass", "voice",
           "air", "onset_rate", "intensity")


def _row(t: float, cam: CameraFrame | None, aud: AudioFrame | None, intensity: float) -> list:
    nan = float("nan")
    return [f"{t:.4f}",
            *(f"{v:.5f}" for v in ((cam.presence, cam.motion, cam.speed) if cam else (nan, nan, nan))),
            len(cam.people) if cam else "",
            *(f"{v:.3f}" for v in ((aud.level_dbfs, aud.floor_dbfs, aud.loudness, aud.bass, aud.voice, aud.air,
                                    aud.onset_rate) if aud else (nan,) * 7)),
            f"{intensity:.4f}"]


class CameraCheck:
    """What a technician should know about the camera a ``sense`` run saw: its frame size, its frame rate
    and whether it delivers colour, with what docs/sensing.md says where that limits the analysis (a
    monochrome camera; a slow stream).  ``see`` each frame; ``lines`` at the end.

    Colour is judged as the analysis judges it (camera.py ``has_colour``), on the frame scaled to the
    analysis size (camera.py ``analysis_size``).  Frames too dark to show colour (a camera starting up, a lens
    cap) say nothing either way, and a few grey frames among colour ones are no night mode."""

    #: frame rates under this leave a visitor's walk in a handful of frames (docs/sensing.md)
    SLOW_FPS = 8.0
    #: median grey level under which a frame is too dark to show colour
    DARK = 16
    #: share of the frames looked at that must be grey before a colour camera is said to switch to grey
    MIXED = 0.1

    def __init__(self, width: int = 160) -> None:
        self.width = max(16, int(width))
        self.frames = 0
        self.colour = 0
        self.looked = 0
        self.size: tuple[int, int] | None = None
        self.t0: float | None = None
        self.t1 = 0.0

    def see(self, frame: np.ndarray, t: float) -> None:
        """Note one camera frame taken at ``t`` (seconds)."""
        self.frames += 1
        self.size = (frame.shape[1], frame.shape[0])
        self.t0 = t if self.t0 is None else self.t0
        self.t1 = t
        if self.looked < 30 or self.frames % 30 == 0:   # a few frames tell; then now and then (a day/night switch)
            h, w = analysis_size(frame.shape[0], frame.shape[1], self.width)
            small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
            grey = small if small.ndim == 2 else cv2.cvtColor(small[..., :3], cv2.COLOR_BGR2GRAY)
            if float(np.median(grey)) >= self.DARK:
                self.looked += 1
                self.colour += has_colour(small)

    def lines(self, fps: float | None = None) -> list[str]:
        """The summary and its notes; ``fps``: the source's own rate (a file's, or the capture thread's),
        else measured from the frames' times."""
        if not self.frames:
            return []
        if not fps and self.frames > 1 and self.t1 > self.t0:
            fps = (self.frames - 1) / (self.t1 - self.t0)
        grey = self.looked > 0 and self.colour == 0
        mixed = self.looked > 0 and not grey and self.looked - self.colour >= max(3, self.MIXED * self.looked)
        rate = f"{fps:.1f} fps" if fps else "frame rate unknown"
        kind = ("too dark to tell colour" if not self.looked else "monochrome" if grey
                else "colour and monochrome" if mixed else "colour")
        out = [f"sense: camera {self.size[0]}x{self.size[1]}, {rate}, {kind}"]
        if grey or mixed:
            out.append("sense: note: " + ("every" if grey else "some") + " frame was grey (a night or infrared "
                       "mode?): there the analysis compares brightness alone, and the person detector may take "
                       "pale furniture for a person; give the room light enough for colour or lock the camera's "
                       "day mode (docs/sensing.md, 'A monochrome camera')")
        if fps and fps < self.SLOW_FPS:
            out.append(f"sense: note: {fps:.1f} frames a second is slow: a visitor's steps are a few frames "
                       f"apart and its compression flickers; {self.SLOW_FPS:g} or more is better "
                       "(docs/sensing.md, 'A slow or heavily compressed stream')")
        return out


class PreviewWriter:
    """H.264 MP4 of the camera view with measurements drawn (PyAV, libx264)."""

    def __init__(self, path: str, fps: float, width: int = 640) -> None:
        import av  # noqa: PLC0415 - only needed for previews

        self.path = path
        self.fps = Fraction(fps).limit_denominator(1000)
        self.width = width - width % 2
        self._av = av
        self._container = av.open(str(path), "w")
        self._stream = None
        self.frames = 0

    def write(self, image: np.ndarray, analyzer: CameraAnalyzer | None, cam: CameraFrame | None,
              aud: AudioFrame | None, intensity: float) -> None:
        """Draw the overlay on a copy of ``image`` (BGR) and encode it."""
        h0, w0 = image.shape[:2]
        h = int(round(h0 * self.width / w0))
        h -= h % 2
        img = cv2.resize(image, (self.width, h), interpolation=cv2.INTER_AREA)
        if analyzer is not None and analyzer.debug.get("fg") is not None:
            fg = cv2.resize(analyzer.debug["fg"].astype(np.uint8), (self.width, h), interpolation=cv2.INTER_NEAREST)
            red = img.copy()
            red[fg.astype(bool)] = (0.5 * red[fg.astype(bool)] + np.array([0, 0, 127.5])).astype(np.uint8)
            img = red
            pts = np.array([[x * self.width, y * h] for x, y in roi_points(analyzer.tree)], np.int32)
            cv2.polylines(img, [pts], True, (0, 220, 255), 1, cv2.LINE_AA)
            for tk in analyzer.debug.get("detections") or ():   # the person detector's live finds (magenta)
                x0, y0, x1, y1 = (int(v * s) for v, s in zip(tk.box, (self.width, h, self.width, h)))
                cv2.rectangle(img, (x0, y0), (x1, y1), (255, 0, 255), 1, cv2.LINE_AA)
                cv2.putText(img, f"{tk.score:.2f}", (x0 + 2, max(y0 + 12, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                            (255, 0, 255), 1, cv2.LINE_AA)
            if cam is not None:
                Hinv = np.linalg.inv(analyzer._H)
                for p in cam.people:
                    q = Hinv @ np.array([p.x, p.y, 1.0])
                    u, v = q[0] / q[2] * self.width, q[1] / q[2] * h
                    q2 = Hinv @ np.array([p.x + p.vx * 0.5, p.y + p.vy * 0.5, 1.0])
                    u2, v2 = q2[0] / q2[2] * self.width, q2[1] / q2[2] * h
                    r = max(3, int(p.size * 0.5 * self.width))
                    cv2.circle(img, (int(u), int(v)), r, (80, 255, 80), 1, cv2.LINE_AA)
                    cv2.line(img, (int(u), int(v)), (int(u2), int(v2)), (80, 255, 80), 1, cv2.LINE_AA)
        lines = []
        if cam is not None:
            lines.append(f"t {cam.t:6.2f}s presence {cam.presence:.3f} motion {cam.motion:.4f} "
                         f"people {len(cam.people)}")
        if aud is not None:
            lines.append(f"level {aud.level_dbfs:6.1f} floor {aud.floor_dbfs:6.1f} dBFS onsets {aud.onset_rate:.2f}/s")
        lines.append(f"intensity {intensity:.3f}")
        band = img[: 8 + 18 * len(lines)]
        band[:] = (band * 0.45).astype(np.uint8)  # darken behind the text so it reads on any picture
        for i, text in enumerate(lines):
            cv2.putText(img, text, (6, 18 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.rectangle(img, (6, h - 12), (6 + int((self.width - 12) * intensity), h - 6), (255, 200, 80), -1)
        if self._stream is None:
            self._stream = self._container.add_stream("libx264", rate=self.fps)
            self._stream.width, self._stream.height = self.width, h
            self._stream.pix_fmt = "yuv420p"
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
        for pkt in self._stream.encode(frame):
            self._container.mux(pkt)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self._stream is not None:
            for pkt in self._stream.encode():
                self._container.mux(pkt)
        self._container.close()


def _make_tree(roi) -> ParamTree:
    from installation.mood import PARAMS as MOOD_PARAMS  # noqa: PLC0415 - avoid an import cycle

    from . import PARAMS  # noqa: PLC0415

    tree = ParamTree.from_specs(PARAMS + MOOD_PARAMS)
    if roi is not None:
        _set_checked_roi(tree, roi)
    return tree


def _set_checked_roi(tree: ParamTree, roi) -> None:
    """Set ``--roi`` on ``tree``; ``ValueError`` for a corner outside what the ROI parameters hold (their
    bases clamp: ``--roi 0,0,5,0,5,5,0,5`` measured with the corners quietly moved to 2)."""
    pts = parse_roi(roi) if isinstance(roi, str) else tuple(roi)
    spec = tree.spec("sensing/camera/roi/x0")
    for i, (x, y) in enumerate(pts):
        if not (spec.lo <= x <= spec.hi and spec.lo <= y <= spec.hi):
            raise ValueError(f"--roi {roi!r}: corner {i + 1} ({x:g}, {y:g}) is outside {spec.lo:g}..{spec.hi:g} "
                             f"(0..1 is the camera image)")
    set_roi(tree, pts)


def _check_outputs(preview_mp4, seconds) -> str | None:
    """What is wrong with ``--preview`` or ``--seconds``, in one line, or None (a bad preview path was a PyAV
    traceback once the first frame was measured; ``--seconds nan`` never stopped a live device)."""
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        return f"--seconds {seconds:g}: give a length above 0 (or leave it out to stop with Ctrl-C)"
    if preview_mp4:
        p = Path(preview_mp4)
        if p.suffix.lower() not in (".mp4", ".m4v", ".mov"):
            return f"--preview {preview_mp4}: give a .mp4 file"
        if p.is_dir() or not p.parent.is_dir():
            return f"--preview {preview_mp4}: " + ("is a folder" if p.is_dir() else f"no folder {str(p.parent)!r}")
    return None


def run_sense(camera, audio, out_csv, preview_mp4=None, roi=None, seconds: float | None = None,
              tree: ParamTree | None = None, out=None) -> int:
    """Run the sensing and write one CSV row per camera frame; returns an exit status.

    ``camera``: video file, device index, /dev path, stream URL or ``None``;
    ``audio``: a sound file (WAV, FLAC, MP3, M4A...), input device name substring, ``"default"`` or
    ``None``.  Files are processed offline, once through, as fast as the
    machine goes; live devices run until Ctrl-C (or ``seconds``).  ``roi``:
    ``"x0,y0,x1,y1,x2,y2,x3,y3"`` (canvas corners TL, TR, BR, BL in the
    image, 0..1).  Exit status 0 on success, 1 when a source fails, 2 for bad
    arguments.
    """
    from installation.mood import MoodModel  # noqa: PLC0415

    out = sys.stdout if out is None else out
    if camera is None and audio is None:
        print("sense: give --camera and/or --audio", file=out)
        return 2
    bad = _check_outputs(preview_mp4, seconds)
    if bad:
        print(f"sense: {bad}", file=out)
        return 2
    try:
        if tree is None:
            tree = _make_tree(roi)
        elif roi is not None:
            _set_checked_roi(tree, roi)
    except ValueError as e:
        print(f"sense: {e}", file=out)
        return 2
    offline = (camera is None or is_file_source(camera)) and (audio is None or is_audio_file(audio))
    try:
        f = open(out_csv, "w", newline="", encoding="utf-8")
    except OSError as e:
        print(f"sense: cannot write {out_csv}: {e}", file=out)
        return 2
    try:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        model = MoodModel(tree)
        if offline:
            return _offline(camera, audio, tree, model, writer, preview_mp4, out)
        return _live(camera, audio, tree, model, writer, preview_mp4, seconds, out)
    finally:
        f.close()


def _offline(camera, audio, tree, model, writer, preview_mp4, out) -> int:
    from .sources import OfflineSensors  # noqa: PLC0415

    try:
        sensors = OfflineSensors(camera_file=camera, audio_file=audio, tree=tree, loop=False)
    except (OSError, ValueError, EOFError) as e:
        print(f"sense: {e}", file=out)
        return 1
    fps = sensors.camera_fps if camera is not None else 30.0
    n = len(sensors._frames) if camera is not None else int(math.ceil(sensors.duration * fps))
    preview = PreviewWriter(preview_mp4, fps) if (preview_mp4 and camera is not None) else None
    if preview_mp4 and camera is None:
        print("sense: --preview needs a camera; skipped", file=out)
    t_prev = 0.0
    next_report = 0.0
    check = CameraCheck(int(tree["sensing/camera/width"]))
    try:
        for k in range(n):
            t = k / fps
            cam, aud = sensors.at(t)
            image = sensors.frame_at(t) if camera is not None else None
            if image is not None:
                check.see(image, t)
            mood = model.update(cam, aud, t - t_prev)
            t_prev = t
            writer.writerow(_row(t, cam, aud, mood.intensity))
            if preview is not None:
                preview.write(sensors.frame_at(t), sensors._cam, cam, aud, mood.intensity)
            if t >= next_report or k == n - 1:
                _progress(out, t, k + 1, n, cam, aud, mood.intensity)
                next_report += 1.0
    finally:
        if preview is not None:
            preview.close()
    print(f"sense: {n} rows" + (f", preview {preview_mp4} ({preview.frames} frames)" if preview else ""), file=out)
    for line in check.lines(fps):
        print(line, file=out)
    return 0


def _progress(out, t, k, n, cam, aud, intensity) -> None:
    parts = [f"t={t:7.2f}s", f"row {k}" + (f"/{n}" if n else "")]
    if cam is not None:
        parts.append(f"presence {cam.presence:.3f} motion {cam.motion:.4f} people {len(cam.people)}")
    if aud is not None:
        parts.append(f"level {aud.level_dbfs:6.1f} dBFS onsets {aud.onset_rate:.2f}/s")
    parts.append(f"intensity {intensity:.3f}")
    print("  ".join(parts), file=out, flush=True)


def _live(camera, audio, tree, model, writer, preview_mp4, seconds, out) -> int:
    from .hub import SensorHub  # noqa: PLC0415

    hub = SensorHub(camera, audio, tree)
    hub.start()
    preview = None
    rows = 0
    last_cam = None
    t_prev = 0.0
    next_tick = 0.0
    next_report = 1.0
    check = CameraCheck(int(tree["sensing/camera/width"]))
    try:
        while seconds is None or hub.now() < seconds:
            time.sleep(0.005)
            cam, aud = hub.latest()
            t = hub.now()
            new_cam = cam is not None and cam is not last_cam and (hub._slot is not None and cam is hub._slot[0])
            if camera is not None and not new_cam:
                if t >= next_report:
                    print(f"t={t:7.2f}s  waiting for camera: {hub.status().get('camera')}", file=out, flush=True)
                    next_report += 1.0
                continue
            if camera is None and t < next_tick:
                continue
            next_tick = t + 1.0 / 30.0
            last_cam = cam
            mood = model.update(cam, aud, t - t_prev)
            t_prev = t
            writer.writerow(_row(t, cam, aud, mood.intensity))
            rows += 1
            frame = hub._camera.analyzer.debug.get("frame") if hub._camera is not None else None
            if frame is not None and cam is not None:
                check.see(frame, cam.t)
            if preview_mp4 and hub._camera is not None:
                if frame is not None:
                    if preview is None:
                        preview = PreviewWriter(preview_mp4, 30.0)
                    preview.write(frame, hub._camera.analyzer, cam, aud, mood.intensity)
            if t >= next_report:
                _progress(out, t, rows, 0, cam, aud, mood.intensity)
                next_report += 1.0
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
        if preview is not None:
            preview.close()
    print(f"sense: {rows} rows", file=out)
    st = hub.status()
    for line in check.lines((st.get("camera") or {}).get("fps")):   # the capture's own rate, not the rows'
        print(line, file=out)
    failed = [k for k, v in st.items() if isinstance(v, dict) and v.get("opens") == 0]
    if failed:
        print(f"sense: never opened: {', '.join(failed)} ({st})", file=out)
        return 1
    return 0
