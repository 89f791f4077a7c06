"""Shared helpers for the sensing tests: the real footage beside the repository, synthetic audio."""

from __future__ import annotations

import functools
import os
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest

MEDIA = Path(os.environ.get("TAPESTRY_MEDIA") or Path(__file__).parents[2] / "../shared/media")
WALK = MEDIA / "people-walking-in.gif"
CLASSROOM = MEDIA / "classroom-seated.gif"
WALK_FPS = 12.5
CLASSROOM_FPS = 50.0 / 3.0
HEAD_TURN = Path(__file__).parent / "media" / "head-turn.mp4"   # kept in the repository: media/README.md
HEAD_TURN_FPS = 12.5
SIGNER = Path(__file__).parent / "media" / "signer.mkv"   # kept in the repository: media/README.md
SIGNER_FPS = 30.0


def need(path: Path) -> Path:
    """The media file, or skip naming what is missing (CI clones shared/ beside the repo)."""
    if not path.exists():
        pytest.skip(f"test media {path.resolve()} missing: clone shared/ beside the repository")
    return path


@functools.lru_cache(maxsize=4)
def frames(path: Path) -> tuple[np.ndarray, ...]:
    """All BGR frames of a clip (read once per test session)."""
    cap = cv2.VideoCapture(str(need(path)))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        f.setflags(write=False)
        out.append(f)
    cap.release()
    assert out, f"{path}: no frames"
    return tuple(out)


SR = 48000


def rng(seed: int = 1) -> np.random.Generator:
    return np.random.default_rng(seed)


def noise(seconds: float, dbfs: float, seed: int = 1) -> np.ndarray:
    """White noise at an RMS of ``dbfs``."""
    return (rng(seed).standard_normal(int(SR * seconds)) * 10 ** (dbfs / 20)).astype(np.float32)


def band_noise(seconds: float, lo: float, hi: float, dbfs: float, seed: int = 2) -> np.ndarray:
    """Noise limited to lo..hi Hz at an RMS of ``dbfs``."""
    n = int(SR * seconds)
    spec = np.fft.rfft(rng(seed).standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[(f < lo) | (f > hi)] = 0
    y = np.fft.irfft(spec, n)
    return (y / np.sqrt(np.mean(y ** 2)) * 10 ** (dbfs / 20)).astype(np.float32)


def speech_bursts(seconds: float, dbfs: float = -20.0, on: float = 0.3, period: float = 0.8,
                  lo: float = 300.0, hi: float = 3000.0) -> np.ndarray:
    """Speech-band (``lo``..``hi`` Hz) noise bursts ("syllables"): ``on`` seconds every ``period``, 20 ms ramps."""
    x = band_noise(seconds, lo, hi, dbfs)
    ph = (np.arange(x.size) / SR) % period
    ramp = 0.02
    env = np.clip(np.minimum(ph / ramp, (on - ph) / ramp), 0.0, 1.0)
    return (x * (0.5 - 0.5 * np.cos(np.pi * env))).astype(np.float32)


def claps(seconds: float, rate: float = 2.0, peak: float = 0.5, seed: int = 3) -> np.ndarray:
    """Hand claps: 30 ms broadband bursts decaying in 5 ms, ``rate`` per second."""
    out = np.zeros(int(SR * seconds), np.float32)
    g = rng(seed)
    n = int(0.03 * SR)
    for k in range(int(seconds * rate)):
        s = int((k / rate + 0.1) * SR)
        if s + n <= out.size:
            out[s:s + n] += (g.standard_normal(n) * peak * np.exp(-np.arange(n) / (0.005 * SR))).astype(np.float32)
    return out


def write_wav(path: Path, x: np.ndarray, sr: int = SR) -> Path:
    """16-bit mono WAV."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path
