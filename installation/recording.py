"""Headless recording: the tapestry to an H.264 MP4 (PyAV's bundled libx264) or a PNG sequence.

Both are frame sinks: the engine hands them the tapestry each frame; they
read it back, pass it through the photosensitive flash limiter (as the
lights are), scale it to the output size and write it.  No system ffmpeg is
needed.  Encoding is bit-exact (``flags=+bitexact``, fixed x264 settings) so
the same frames give the same file on the same machine.
"""

from __future__ import annotations

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


def read_rgb(tapestry: moderngl.Texture, size: tuple[int, int], safety: FrameFlashLimiter | None = None,
             dt: float | None = None) -> np.ndarray:
    """The tapestry as an (H, W, 3) uint8 RGB array at ``size`` (row 0 = top), flash-limited if given."""
    w, h = tapestry.size
    rgba = np.frombuffer(tapestry.read(), np.uint8).reshape(h, w, 4)
    if safety is not None:
        rgba = safety.limit(rgba, dt)
    return _resize(np.ascontiguousarray(rgba[..., :3]), size)


class VideoWriter:
    """Writes frames to an H.264 MP4 (yuv420p, BT.709, constant frame rate).

    As a frame sink it scales and converts the tapestry to YUV on the GPU and
    encodes on its own thread, so the next frame renders while this one is
    encoded.  Frames stay in order, so the file is the same every time.
    """

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float, crf: int = 18,
                 preset: str = "veryfast") -> None:
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
        self._stream.options = {"crf": str(crf), "preset": preset, "flags": "+bitexact",
                                "x264-params": "colorprim=bt709:transfer=bt709:colormatrix=bt709"}
        self._stream.codec_context.time_base = 1 / rate
        self.frames = 0
        self.safety = FrameFlashLimiter(fps)  # the same photosensitive limit as the lights; no off switch
        self._gpu = self.size[0] % 8 == 0      # the GPU converter writes 8-pixel blocks
        self._yuv_buf = None
        self._src_tex = None
        self._queue: queue.Queue = queue.Queue(maxsize=3)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._encode_loop, name="video-encoder", daemon=True)
        self._thread.start()

    def consume(self, engine, tapestry: moderngl.Texture) -> None:
        """Frame sink: read the tapestry back, flash-limit it, convert on the GPU, queue for encoding."""
        w, h = tapestry.size
        rgba = np.frombuffer(tapestry.read(), np.uint8).reshape(h, w, 4)
        limited = self.safety.limit(rgba, engine.last_dt)
        if not self._gpu:
            self.write(_resize(np.ascontiguousarray(limited[..., :3]), self.size))
            return
        src = tapestry
        if limited is not rgba:  # the limiter held or slowed a change: convert what it let through
            if self._src_tex is None or self._src_tex.size != (w, h):
                self._src_tex = engine.ctx.texture((w, h), 4)
                self._src_tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
            self._src_tex.write(np.ascontiguousarray(limited).tobytes())
            src = self._src_tex
        self._put(self._gpu_yuv(engine.ctx, engine.shaders, src))

    def _gpu_yuv(self, ctx, shaders, src: moderngl.Texture) -> np.ndarray:
        W, H = self.size
        if self._yuv_buf is None:
            self._yuv_buf = ctx.buffer(reserve=W * H * 3 // 2)
        prog = shaders.compute("video_yuv.glsl")
        prog["u_src"].value = 0
        prog["u_out"].value = (W, H)
        src.use(0)
        self._yuv_buf.bind_to_storage_buffer(3)
        prog.run((W // 8 + 7) // 8, (H // 2 + 7) // 8)
        ctx.memory_barrier()
        return np.frombuffer(self._yuv_buf.read(), np.uint8).reshape(H * 3 // 2, W)

    def write(self, rgb: np.ndarray) -> None:
        """Queue one (H, W, 3) RGB frame for encoding."""
        self._put(np.ascontiguousarray(rgb))

    def _put(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise RecordingError(f"writing {self.path} failed: {self._error}")
        self._queue.put(frame)

    def _encode_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # drain: the writer already reports the failure
            try:
                fmt = "yuv420p" if item.ndim == 2 else "rgb24"
                frame = av.VideoFrame.from_ndarray(item, format=fmt)
                frame.pts = self.frames
                self.frames += 1
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
            except Exception as exc:  # a full disk, an encoder error: reported by the next write/close
                self._error = exc

    def close(self) -> None:
        """Encode what is queued, flush the encoder and finish the file."""
        if self._container is None:
            return
        self._queue.put(None)
        self._thread.join()
        try:
            if self._error is None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None
            for obj in (self._yuv_buf, self._src_tex):
                if obj is not None:
                    obj.release()
        if self._error is not None:
            raise RecordingError(f"writing {self.path} failed: {self._error}")


def _resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = rgb.shape[:2]
    if (w, h) == tuple(size):
        return rgb
    return cv2.resize(rgb, tuple(size), interpolation=cv2.INTER_LINEAR if size[0] >= w else cv2.INTER_AREA)


class PngSequenceWriter:
    """Writes frames as ``frame_000001.png`` … into a directory."""

    def __init__(self, directory: str | Path, size: tuple[int, int], fps: float = 30.0) -> None:
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordingError(f"cannot create {self.dir}: {exc}") from exc
        self.size = (int(size[0]), int(size[1]))
        self.frames = 0
        self.safety = FrameFlashLimiter(fps)

    def consume(self, engine, tapestry: moderngl.Texture) -> None:
        """Frame sink: read the tapestry, flash-limit it and write the next PNG."""
        self.write(read_rgb(tapestry, self.size, self.safety, engine.last_dt))

    def write(self, rgb: np.ndarray) -> None:
        """Write one (H, W, 3) RGB frame."""
        self.frames += 1
        path = self.dir / f"frame_{self.frames:06d}.png"
        if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise RecordingError(f"could not write {path} (disk full or not writable?)")

    def close(self) -> None:
        """Nothing to flush."""


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
