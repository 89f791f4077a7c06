"""Files standing in for devices: deterministic offline sensing and replay of recordings.

:class:`OfflineSensors` serves ``python run.py render --camera FILE --audio
FILE`` and ``--sensors FILE``: it runs the same analysis as the live hub, but
frame by frame on demand, with no threads and no wall clock, so the same
files and times give the same measurements.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
from pathlib import Path

import cv2
import numpy as np

from installation.params import ParamTree

from .camera import CameraAnalyzer
from .frames import AudioFrame, CameraFrame
from .microphone import AudioAnalyzer, read_audio

log = logging.getLogger(__name__)

#: malformed lines of a recording named one by one before the rest are only counted (see read_recording)
WARN_LINES = 3


def read_video(path, max_frames: int = 100000) -> tuple[list[np.ndarray], float]:
    """All frames (BGR) of a video/GIF file and its frame rate (0 if unknown).

    Raises ``OSError`` naming the file if it cannot be read or has no frames.
    """
    if not Path(path).exists():
        raise OSError(f"camera file {path} does not exist")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise OSError(f"camera file {path}: OpenCV cannot open it")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    frames = []
    while len(frames) < max_frames:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    if not frames:
        raise OSError(f"camera file {path}: no frames")
    return frames, (fps if 1.0 <= fps <= 240.0 else 0.0)


def read_recording(path) -> tuple[list[CameraFrame], list[AudioFrame]]:
    """Camera and audio records of a JSONL sensor recording, each sorted by time.

    Each line is ``{"camera": {...}}`` or ``{"audio": {...}}`` (see
    :class:`~installation.sensing.hub.Recorder`).  Malformed lines are
    skipped, the first few named by file and line in a warning and the rest
    counted in one more (a recording cut short by a power cut ends in half a
    line).  A file with no camera or audio record at all is not a recording
    (a wrong file given): ``ValueError`` naming it and its first bad line.
    """
    cams: list[CameraFrame] = []
    auds: list[AudioFrame] = []
    bad: list[str] = []
    bad_lines = 0
    lines = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            lines += 1
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or not ("camera" in rec or "audio" in rec):
                    raise ValueError("neither a camera nor an audio record")
                if "camera" in rec:
                    cams.append(CameraFrame.from_dict(rec["camera"]))
                else:
                    auds.append(AudioFrame.from_dict(rec["audio"]))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                bad_lines += 1
                if len(bad) < WARN_LINES:   # a wrong 100 MB file has a million bad lines: name a few, count them
                    bad.append(f"{path}:{n}: {e}")
    if not cams and not auds:
        first = f"; {bad[0]}" if bad else ""
        raise ValueError(f"{path}: no camera or audio record in {lines} non-empty lines, not a sensor recording "
                         f"(run.py --record-sensors makes one){first}")
    for b in bad:
        log.warning("skipped a malformed sensor record: %s", b)
    if bad_lines > len(bad):
        log.warning("%s: skipped %d malformed sensor records in all (of %d lines)", path, bad_lines, lines)
    cams.sort(key=lambda r: r.t)
    auds.sort(key=lambda r: r.t)
    return cams, auds


class OfflineSensors:
    """Deterministic sensors from files: a camera video, a sound file, or a recording.

    ``at(t)`` returns the measurements at time ``t`` seconds: a video is
    analysed frame by frame at its own frame rate (``fps`` when the file does
    not say), looping when ``loop`` is true; a sound file is analysed up to ``t``
    (silence after its end); a recording (``sensors_file``, JSONL from
    :class:`~installation.sensing.hub.SensorHub`) returns the latest record
    at or before ``t``.  Asking for an earlier time restarts the analysis
    from the beginning, so results never depend on call history.
    """

    def __init__(self, camera_file=None, audio_file=None, sensors_file=None, fps: float = 30,
                 tree: ParamTree | None = None, loop: bool = True) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self.tree = tree
        self.loop = loop
        self._frames: list[np.ndarray] = []
        self.camera_fps = float(fps)
        if camera_file is not None:
            self._frames, vfps = read_video(camera_file)
            self.camera_fps = vfps or float(fps)
        self._samples = None
        self.samplerate = 0
        if audio_file is not None:
            self._samples, self.samplerate = read_audio(audio_file)
        self._rec_cam: list[CameraFrame] = []
        self._rec_aud: list[AudioFrame] = []
        if sensors_file is not None:
            self._rec_cam, self._rec_aud = read_recording(sensors_file)
        self._rec_cam_t = [r.t for r in self._rec_cam]
        self._rec_aud_t = [r.t for r in self._rec_aud]
        self._has_camera = bool(self._frames) or bool(self._rec_cam)
        self._has_audio = self._samples is not None or bool(self._rec_aud)
        self.reset()

    @property
    def duration(self) -> float:
        """Length of the longest input in seconds (one pass of the video)."""
        d = 0.0
        if self._frames:
            d = max(d, len(self._frames) / self.camera_fps)
        if self._samples is not None:
            d = max(d, self._samples.size / self.samplerate)
        for recs in (self._rec_cam, self._rec_aud):
            if recs:
                d = max(d, recs[-1].t)
        return d

    def reset(self) -> None:
        """Restart all analysis from time 0."""
        self._cam = CameraAnalyzer(self.tree) if self._frames else None
        self._aud = AudioAnalyzer(self.samplerate, self.tree) if self._samples is not None else None
        self._next_frame = 0
        self._cam_last: CameraFrame | None = None
        self._aud_pos = 0
        self._t = -math.inf

    def frame_at(self, t: float) -> np.ndarray | None:
        """The camera image shown at time ``t`` (for previews), or ``None``."""
        if not self._frames:
            return None
        k = int(math.floor(t * self.camera_fps + 1e-9))
        return self._frames[self._index(k)] if self._index(k) is not None else None

    def _index(self, k: int) -> int | None:
        n = len(self._frames)
        if k < 0:
            return None
        if k >= n:
            return k % n if self.loop else None
        return k

    def at(self, t: float) -> tuple[CameraFrame | None, AudioFrame | None]:
        """Measurements at time ``t`` (seconds): same inputs and times give the same outputs."""
        t = float(t)
        if t < self._t:
            self.reset()
        self._t = t
        return (self._camera_at(t) if self._has_camera else None,
                self._audio_at(t) if self._has_audio else None)

    def _camera_at(self, t: float) -> CameraFrame | None:
        if self._rec_cam:
            i = bisect.bisect_right(self._rec_cam_t, t) - 1
            return self._rec_cam[i] if i >= 0 else None
        last_k = int(math.floor(t * self.camera_fps + 1e-9))
        while self._next_frame <= last_k:
            k = self._next_frame
            idx = self._index(k)
            self._next_frame += 1
            if idx is None:
                break  # a non-looping video has ended: keep its last measurement
            self._cam_last = self._cam.process(self._frames[idx], k / self.camera_fps)
        return self._cam_last

    def _audio_at(self, t: float) -> AudioFrame | None:
        if self._rec_aud:
            i = bisect.bisect_right(self._rec_aud_t, t) - 1
            return self._rec_aud[i] if i >= 0 else None
        end = int(math.floor(t * self.samplerate + 1e-9))
        if end > self._aud_pos:
            n = self._samples.size
            chunk = self._samples[self._aud_pos:min(end, n)]
            if end > n:  # after the file: the room has gone quiet
                chunk = np.concatenate([chunk, np.zeros(end - max(self._aud_pos, n), np.float32)])
            self._aud.feed(chunk)
            self._aud_pos = end
        return self._aud.last
