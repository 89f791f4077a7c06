"""SensorHub: live camera and microphone behind one non-blocking ``latest()``.

The camera runs on its own capture thread and writes a latest-value slot
(one tuple assignment, atomic in CPython: no locks).  The microphone's
PortAudio callback fills a ring buffer; ``latest()`` analyses what arrived
since the previous call on the engine thread (a fraction of a millisecond),
so a sound reaches the mood within one engine frame.  A camera frame older
than ``sensing/camera/stale_s`` is noticed and its last measurement decays
to calm while the source is reopened with backoff.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import threading
import time
from pathlib import Path

from installation.params import ParamTree

from . import PARAMS
from .camera import CameraAnalyzer, CameraCapture, CvSource, FrameSource, calm
from .frames import AudioFrame, CameraFrame
from .microphone import MicCapture

log = logging.getLogger(__name__)


def check_record_path(path) -> None:
    """``ValueError`` unless ``path`` names a JSON-lines file (``*.jsonl``) in a folder that exists and can
    be written (the file is opened only when the sensors start, after the whole show is built)."""
    if not str(path).endswith((".jsonl", ".json")):
        raise ValueError(f"record_to {str(path)!r}: sensor recordings are JSON lines; name the file *.jsonl")
    p = Path(path)
    folder = p.parent
    if not folder.is_dir():
        raise ValueError(f"record_to {str(path)!r}: there is no folder {str(folder)!r} to write it in")
    if p.is_dir():
        raise ValueError(f"record_to {str(path)!r}: is a folder; name a file in it")
    if not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ValueError(f"record_to {str(path)!r}: cannot write there (permission denied)")


class Recorder:
    """Writes sensor records to a JSONL file on its own thread (never blocks the caller).

    One line per record: ``{"camera": {...}}`` or ``{"audio": {...}}`` with
    the record's time ``t`` in seconds since the hub started.  When the queue
    is full (disk stalled) records are dropped and counted.
    """

    def __init__(self, path: str) -> None:
        check_record_path(path)
        self.path = str(path)
        self._q: queue.Queue = queue.Queue(maxsize=4096)
        self.dropped = 0
        self.written = 0
        self._f = open(self.path, "w", encoding="utf-8")
        self._thread = threading.Thread(target=self._run, name="sensor-recorder", daemon=True)
        self._thread.start()

    def put(self, kind: str, rec) -> None:
        """Queue one record (``kind`` is ``camera`` or ``audio``)."""
        try:
            self._q.put_nowait((kind, rec))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                break
            kind, rec = item
            self._f.write(json.dumps({kind: rec.to_dict()}) + "\n")
            self.written += 1
        self._f.close()

    def close(self, timeout: float = 2.0) -> None:
        """Flush and close within ``timeout`` seconds."""
        try:
            self._q.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)


class SensorHub:
    """Live sensors: camera and/or microphone, read without ever waiting.

    ``camera``: device index, ``/dev/...`` path, video file or stream URL
    (``None`` for none).  ``audio``: input device name substring, ``"default"``,
    a sound file standing in for the device (:func:`~installation.sensing.microphone.is_audio_file`), or
    ``None``.  ``tree`` holds the ``sensing/*`` parameters (a private tree with defaults if ``None``).
    ``record_to`` writes every measurement to a JSONL file for replay with
    :class:`~installation.sensing.sources.OfflineSensors`.
    """

    def __init__(self, camera: str | int | None, audio: str | None, tree: ParamTree | None = None,
                 record_to: str | None = None, camera_source: FrameSource | None = None) -> None:
        if tree is None:
            tree = ParamTree.from_specs(PARAMS)
        self.tree = tree
        self.camera_spec = camera
        self.audio_spec = audio
        if record_to:
            check_record_path(record_to)
        self.record_to = record_to
        self._t0 = time.monotonic()
        self._slot: tuple[CameraFrame, float] | None = None  # (frame, arrival monotonic)
        self._camera: CameraCapture | None = None
        if camera is not None or camera_source is not None:
            source = camera_source if camera_source is not None else CvSource(camera)
            # The person detector (~12 ms a run) gets its own thread: the capture thread never waits for it.
            self._camera = CameraCapture(source, CameraAnalyzer(tree, opinion="thread"), self._publish, t0=self._t0)
        self._mic: MicCapture | None = MicCapture(audio, tree) if audio is not None else None
        self._recorder: Recorder | None = None
        self._last_audio: AudioFrame | None = None
        self._started = False

    def _publish(self, frame: CameraFrame, arrival: float) -> None:
        self._slot = (frame, arrival)  # single assignment: the engine sees old or new, never half
        rec = self._recorder
        if rec is not None:
            rec.put("camera", frame)

    def start(self) -> None:
        """Open the devices on their own threads; returns at once."""
        if self._started:
            return
        self._started = True
        self._t0 = time.monotonic()
        if self.record_to:
            self._recorder = Recorder(self.record_to)
        if self._camera is not None:
            self._camera.t0 = self._t0
            self._camera.start()
        if self._mic is not None:
            self._mic.start(self._t0)

    def now(self) -> float:
        """Seconds since :meth:`start` (the time base of all records)."""
        return time.monotonic() - self._t0

    def latest(self) -> tuple[CameraFrame | None, AudioFrame | None]:
        """The newest measurements; never blocks.

        A stale camera frame (no new frame for ``sensing/camera/stale_s``)
        is returned decayed towards calm (time constant ``calm_s``), and
        ``None`` once it has faded; a stale microphone gives ``None``.
        """
        cam = None
        slot = self._slot
        if slot is not None:
            frame, arrival = slot
            over = time.monotonic() - arrival - float(self.tree["sensing/camera/stale_s"])
            if over <= 0:
                cam = frame
            else:
                calm_s = float(self.tree["sensing/camera/calm_s"])
                cam = calm(frame, over, calm_s, t=self.now()) if over < 5.0 * calm_s else None
        aud = None
        mic = self._mic
        if mic is not None:
            try:
                aud = mic.read()
            except Exception as e:  # bad samples must never stop the frame loop
                log.warning("microphone analysis failed: %s", e)
                aud = None
            if aud is not None and mic.age() > float(self.tree["sensing/audio/stale_s"]):
                aud = None
            if aud is not None and aud is not self._last_audio and self._recorder is not None:
                self._recorder.put("audio", aud)
            self._last_audio = aud if aud is not None else self._last_audio
        return cam, aud

    def status(self) -> dict:
        """Per sensor: state, age of the newest data (s), fps / blocks, last error."""
        out = {}
        if self._camera is not None:
            c = self._camera
            slot = self._slot
            age = (time.monotonic() - slot[1]) if slot is not None else math.inf
            state = c.state
            if state == "running" and age > float(self.tree["sensing/camera/stale_s"]):
                state = "stale"
            out["camera"] = {"state": state, "source": c.source.name, "age": age, "fps": round(c.fps, 2),
                             "frames": c.frames, "opens": c.opens, "analysis_ms": round(c.analysis_ms, 3),
                             "error": c.last_error}
        if self._mic is not None:
            m = self._mic
            age = m.age()
            state = m.state
            if state == "running" and age > float(self.tree["sensing/audio/stale_s"]):
                state = "stale"
            out["audio"] = {"state": state, "device": m.device_name, "age": age,
                            "samplerate": m.analyzer.sr if m.analyzer else None, "blocks": m.blocks,
                            "opens": m.opens, "error": m.last_error}
        if self._recorder is not None:
            out["recording"] = {"path": self._recorder.path, "written": self._recorder.written,
                                "dropped": self._recorder.dropped}
        return out

    def stop(self, timeout: float = 2.0) -> None:
        """Stop capture and recording; returns within about ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        if self._camera is not None:
            self._camera.stop(max(0.1, (deadline - time.monotonic()) / 2))
        if self._mic is not None:
            self._mic.stop(max(0.1, (deadline - time.monotonic()) / 2))
        if self._recorder is not None:
            self._recorder.close(max(0.1, deadline - time.monotonic()))
            self._recorder = None
        self._started = False


def _sensors_schema():
    from ..schema import Key, Section
    return Section("sensors", "The live sensors (docs/sensing.md); --camera / --audio on the command line win.", keys=(
        Key("camera", (str, int), None, "camera: device index, /dev path, video file or stream URL"),
        Key("audio", str, None, "microphone: device name, 'default', or a sound file (WAV, FLAC, MP3, M4A...)"),
    ))


SENSORS_SCHEMA = _sensors_schema()
