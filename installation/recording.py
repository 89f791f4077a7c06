"""Headless recording: the tapestry to an H.264 MP4 (PyAV's bundled libx264) or a PNG sequence.

Both are frame sinks: the engine hands them the tapestry each frame; they
read it back, pass it through the photosensitive flash limiter (as the
lights are), scale it to the output size and write it.  No system ffmpeg is
needed.  Encoding is bit-exact (``flags=+bitexact``, fixed x264 settings) so
the same frames give the same file on the same machine.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import cv2
import moderngl
import numpy as np

from .safety import FrameFlashLimiter

try:  # importing av is slow-ish and only video output needs it
    import av
except ImportError:  # pragma: no cover - requirements.txt installs it
    av = None


class RecordingError(RuntimeError):
    """The output cannot be written (bad path, full disk, no encoder); the message says which."""


# BT.709, limited ("TV") range, for 8-bit RGB: rows give Y, Cb, Cr = M @ (R, G, B, 1).
_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB
_BT709 = np.array([
    [219 / 255 * _KR, 219 / 255 * _KG, 219 / 255 * _KB, 16.0],
    [224 / 255 * -_KR / (2 * (1 - _KB)), 224 / 255 * -_KG / (2 * (1 - _KB)), 224 / 255 * 0.5, 128.0],
    [224 / 255 * 0.5, 224 / 255 * -_KG / (2 * (1 - _KR)), 224 / 255 * -_KB / (2 * (1 - _KR)), 128.0],
], np.float32)


def yuv420(rgb: np.ndarray, size: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """An (h, w, 3|4) uint8 RGB(A) image as planar YUV 4:2:0 (BT.709, limited range) at ``size``.

    The colour conversion runs at the image's own resolution (the tapestry is smaller than the
    video), then each plane is scaled straight into its place: Y to ``size``, Cb and Cr to half
    of it.  Returns the (H * 3 / 2, W) array that ``av.VideoFrame.from_ndarray(...,
    format="yuv420p")`` takes (``out``, when given one of that shape, is reused).
    """
    w, h = int(size[0]), int(size[1])
    if out is None or out.shape != (h * 3 // 2, w):
        out = np.empty((h * 3 // 2, w), np.uint8)
    # Drop alpha with cvtColor: a numpy [..., :3] copy measured 2 ms at 640x360, this 0.02 ms.
    rgb = cv2.cvtColor(rgb, cv2.COLOR_RGBA2RGB) if rgb.shape[2] == 4 else np.ascontiguousarray(rgb)
    ycc = cv2.transform(rgb, _BT709)   # rounded and saturated to uint8
    q = h * w // 4
    flat = out.reshape(-1)
    planes = (out[:h], flat[h * w:h * w + q].reshape(h // 2, w // 2), flat[h * w + q:].reshape(h // 2, w // 2))
    for k, plane in enumerate(planes):
        src = cv2.extractChannel(ycc, k)
        if src.shape == plane.shape:
            plane[...] = src
        else:
            up = plane.shape[1] >= src.shape[1]
            cv2.resize(src, (plane.shape[1], plane.shape[0]), dst=plane,
                       interpolation=cv2.INTER_LINEAR if up else cv2.INTER_AREA)
    return out


# x264 settings by name: "quick" (the default) is ultrafast with CABAC, 3 B-frames and the
# deblocking filter back on. On this piece's 720p30 renders it takes ~40% of veryfast's CPU
# (veryfast alone would take half of a 2-core machine) at about veryfast's PSNR for the same CRF;
# files come out 1.5x (turbulent presets) to 3x (calm ones) larger. Any x264 preset name
# (ultrafast .. veryslow) is passed through as it is, for smaller files when time does not matter.
X264_PRESETS = ("quick", "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")
_QUICK = ("ultrafast", "cabac=1:bframes=3:deblock=1:")


# The writer thread (and the encoder threads it starts, which inherit it) runs this much below the
# engine: on a machine whose cores the GL driver also computes on (Mesa llvmpipe) the engine is a
# render's critical path, and the writer has slack to fill the engine's gaps. Measured: 1.07-1.11x
# faster renders at 1280x720 (bench/RESULTS.md). Writing never starves: a full queue stops the engine.
WRITER_NICE = 10


def _below_engine_priority() -> None:
    """Lower the calling thread's CPU priority by :data:`WRITER_NICE` (Linux, where nice is per thread)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + WRITER_NICE, 19))
    except OSError:  # a sandbox that forbids it: the same frames, a little slower
        pass


def _start_cv2_pool() -> None:
    """Make OpenCV start its worker threads now, on the calling (engine) thread.

    OpenCV starts its pool on the first parallel call, and the pool's threads inherit that
    thread's priority. Left to the writer's first frame, they would keep its nice for the rest of
    the process, including the engine's own OpenCV work (camera analysis in `render --camera`).
    """
    cv2.resize(np.zeros((360, 640), np.uint8), (1280, 720))


#: how long closing a writer waits for the frames still queued (a few at most) to be written
CLOSE_WAIT_S = 30.0


class _WriterThread:
    """A frame sink whose work runs on its own thread, in order.

    On the engine thread :meth:`consume` only reads the tapestry back and queues it with its frame
    time (a short queue: a writer that falls behind holds the engine back rather than eating memory).
    The writer thread flash-limits each frame (the same photosensitive limit as the lights; no off
    switch) and hands it to :meth:`_write_frame`.  A failure there is reported by the next
    :meth:`write` / :meth:`close` as a :class:`RecordingError`.  The writer thread runs below the
    engine's priority (:data:`WRITER_NICE`).
    """

    def __init__(self, fps: float, name: str) -> None:
        _start_cv2_pool()
        self.frames = 0
        self.safety = FrameFlashLimiter(fps)
        self._queue: queue.Queue = queue.Queue(maxsize=3)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def consume(self, engine, tapestry: moderngl.Texture) -> None:
        """Frame sink: read the tapestry back and queue it (with its frame time) for the writer thread."""
        w, h = tapestry.size
        self._put(np.frombuffer(tapestry.read(), np.uint8).reshape(h, w, 4), engine.last_dt)

    def write(self, rgb: np.ndarray, dt: float | None = None) -> None:
        """Queue one (H, W, 3) RGB or (H, W, 4) RGBA frame of any size; it is flash-limited and scaled."""
        if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
            raise ValueError(f"{type(self).__name__}.write: expected an (H, W, 3|4) uint8 image, "
                             f"got {rgb.shape} {rgb.dtype}")
        if rgb.shape[2] == 3:
            rgb = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2RGBA)
        self._put(np.ascontiguousarray(rgb), dt)

    def _put(self, rgba: np.ndarray, dt: float | None = None) -> None:
        while True:   # waits while the writer is behind, never for a writer that has gone
            if self._error is not None:
                raise RecordingError(f"writing {self._target()} failed: {self._error}")
            if not self._thread.is_alive():
                raise RecordingError(f"writing {self._target()} failed: the writer thread ended")
            try:
                self._queue.put((rgba, dt), timeout=0.5)
                return
            except queue.Full:
                continue

    def _loop(self) -> None:
        try:
            _below_engine_priority()
            while True:
                item = self._queue.get()
                if item is None:
                    return
                if self._error is not None:
                    continue  # drain: the writer already reports the failure
                try:
                    rgba, dt = item
                    self._write_frame(self.safety.limit(rgba, dt))
                    self.frames += 1
                except Exception as exc:  # a full disk, an encoder error: reported by the next write/close
                    self._error = exc
        except BaseException as exc:  # whatever ends the thread is reported by the next write/close, never waited on
            self._error = self._error or exc

    def close(self) -> None:
        """Write what is queued, then finish the output (idempotent); raises if anything failed."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + CLOSE_WAIT_S
        while self._thread.is_alive():   # the end mark, once the writer has room for it
            try:
                self._queue.put(None, timeout=0.5)
                break
            except queue.Full:
                if time.monotonic() > deadline:
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():   # stuck in the encoder or the disk: say so rather than hang the piece
            self._error = self._error or TimeoutError(f"the writer did not finish within {CLOSE_WAIT_S:g} s")
            raise RecordingError(f"writing {self._target()} failed: {self._error}")
        try:
            self._finish()
        except Exception as exc:  # flushing the encoder, closing the file
            self._error = self._error or exc
        if self._error is not None:
            raise RecordingError(f"writing {self._target()} failed: {self._error}")

    def _write_frame(self, rgba: np.ndarray) -> None:  # pragma: no cover - each writer has its own
        raise NotImplementedError

    def _finish(self) -> None:
        """After the last frame (writer thread stopped)."""

    def _target(self) -> str:
        raise NotImplementedError


class VideoWriter(_WriterThread):
    """Writes frames to an H.264 MP4 (yuv420p, BT.709, constant frame rate).

    As a frame sink it only reads the tapestry back on the engine thread; the
    flash limiter, the colour conversion (at the tapestry's resolution, then
    each plane scaled to the video's), and the encoding run on the writer's
    own thread, in order, so the next frame renders meanwhile and the file is
    the same every time.
    """

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float, crf: int = 18,
                 preset: str = "quick") -> None:
        if preset not in X264_PRESETS:
            raise RecordingError(f"unknown x264 preset {preset!r}; one of {', '.join(X264_PRESETS)}")
        if av is None:
            raise RecordingError("PyAV is not installed: pip install -r requirements.txt")
        self.path = Path(path)
        self.size = (int(size[0]) // 2 * 2, int(size[1]) // 2 * 2)  # yuv420p needs even sizes
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), mode="w", options={"fflags": "+bitexact"})
        except (OSError, av.error.FFmpegError) as exc:
            raise RecordingError(f"cannot write {self.path}: {exc}") from exc
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = self.size
        self._stream.pix_fmt = "yuv420p"
        x264_preset, tuning = _QUICK if preset == "quick" else (preset, "")
        self._stream.options = {"crf": str(crf), "preset": x264_preset, "flags": "+bitexact",
                                "x264-params": tuning + "colorprim=bt709:transfer=bt709:colormatrix=bt709"}
        self._stream.codec_context.time_base = 1 / rate
        self._yuv: np.ndarray | None = None  # the writer thread's frame buffer (the encoder copies it)
        super().__init__(fps, "video-encoder")

    def _write_frame(self, rgba: np.ndarray) -> None:
        self._yuv = yuv420(rgba, self.size, self._yuv)
        frame = av.VideoFrame.from_ndarray(self._yuv, format="yuv420p")
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def _finish(self) -> None:
        try:
            if self._error is None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
        finally:
            self._container.close()
            # Drop the encoder now, not when this writer is collected: x264's threads end with it.
            self._stream = self._container = None

    def _target(self) -> str:
        return str(self.path)


def _resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = rgb.shape[:2]
    if (w, h) == tuple(size):
        return rgb
    return cv2.resize(rgb, tuple(size), interpolation=cv2.INTER_LINEAR if size[0] >= w else cv2.INTER_AREA)


class PngSequenceWriter(_WriterThread):
    """Writes frames as ``frame_000001.png`` … into a directory (scaled and encoded on its own thread)."""

    def __init__(self, directory: str | Path, size: tuple[int, int], fps: float = 30.0) -> None:
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordingError(f"cannot create {self.dir}: {exc}") from exc
        self.size = (int(size[0]), int(size[1]))
        super().__init__(fps, "png-writer")

    def _write_frame(self, rgba: np.ndarray) -> None:
        path = self.dir / f"frame_{self.frames + 1:06d}.png"
        bgr = cv2.cvtColor(_resize(rgba, self.size), cv2.COLOR_RGBA2BGR)
        if not cv2.imwrite(str(path), bgr):
            raise RecordingError(f"could not write {path} (disk full or not writable?)")

    def _target(self) -> str:
        return str(self.dir)


class Progress:
    """A one-line progress bar with rate and ETA on a terminal (plain lines otherwise)."""

    def __init__(self, total: int, stream=sys.stderr, label: str = "render") -> None:
        self.total = max(int(total), 1)
        self.stream = stream
        self.label = label
        self.start = time.perf_counter()
        self._last = 0.0
        self._tty = hasattr(stream, "isatty") and stream.isatty()

    def update(self, done: int, force: bool = False) -> None:
        """Show ``done`` of ``total`` (throttled to a few updates a second)."""
        now = time.perf_counter()
        if not force and now - self._last < (0.1 if self._tty else 2.0) and done < self.total:
            return
        self._last = now
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        frac = done / self.total
        bar = "#" * int(frac * 30) + "-" * (30 - int(frac * 30))
        eta_s = f"{eta:5.1f}s" if eta != float("inf") else "  ?  "
        line = f"{self.label} [{bar}] {done}/{self.total} {frac:6.1%} {rate:6.1f} fps ETA {eta_s}"
        if self._tty:
            self.stream.write("\r" + line + ("\n" if done >= self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
