"""Microphone: PortAudio capture into a ring buffer, analysis on read.

The PortAudio callback only copies samples into a :class:`Ring`; the
engine's call to read (:meth:`MicCapture.read`) runs :class:`AudioAnalyzer`
over whatever arrived since the last read, so a sound reaches the mood
within one engine frame of its block arriving.  A WAV file can stand in for
the device (:class:`WavFeeder`): it calls the very same callback.

Analysis per hop (``sensing/audio/hop_ms``, window twice the hop, Hann):
level in dBFS, band energies (bass, voice, air), spectral flux for onsets.
A noise-floor tracker per measure rises slowly (``floor_rise_db_per_min``)
and falls fast (``floor_fall_s``), a running low percentile, so a steady
ventilation hum reads as quiet and nothing is auto-gained: loudness is dB
above the floor over a fixed range (``range_db``).
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import wave
from typing import Callable

import numpy as np

from installation.params import MACHINE, VENUE, ParamSpec, ParamTree, floats

from .frames import AudioFrame

log = logging.getLogger(__name__)

P = "sensing/audio"

PARAMS: tuple[ParamSpec, ...] = tuple([
    ParamSpec(f"{P}/hop_ms", "float", 10.0, "analysis step; the window is twice as long", 2.0, 50.0, "ms",
              live=False, scope=MACHINE)] + floats(P, [
    ("floor_rise_db_per_min", 3.0, 0.1, 600.0, "dB/min", "how fast the noise floor climbs towards a louder room"),
    ("floor_fall_s", 0.5, 0.01, 60.0, "s", "time constant with which the noise floor falls to a quieter room"),
    ("floor_min_dbfs", -90.0, -140.0, -20.0, "dBFS", "lowest noise floor (digital silence stays below it)"),
    ("margin_db", 3.0, 0.0, 30.0, "dB", "level above the floor that still reads as quiet"),
    ("spread_k", 3.0, 0.0, 10.0, "x", "the quiet margin grows to this many times the room's own level flutter "
     "above its floor (narrow-band room tone and hum flutter by several dB)"),
    ("spread_s", 5.0, 0.1, 600.0, "s", "time constant of the flutter estimate"),
    ("range_db", 40.0, 3.0, 100.0, "dB", "level above floor + margin that reads as full loudness (fixed: no auto-gain)"),
    ("band_range_db", 30.0, 3.0, 100.0, "dB", "band energy above its own floor that reads as 1"),
    ("level_s", 0.05, 0.0, 2.0, "s", "smoothing of the reported level"),
    ("onset_k", 2.5, 1.0, 20.0, "x", "spectral flux must exceed this many times its recent mean to be an onset"),
    ("onset_min_flux", 0.5, 0.0, 20.0, "dB", "smallest mean rise in log spectrum (per bin) that can be an onset"),
    ("onset_min_db", 10.0, 0.0, 60.0, "dB", "an onset must be this far above the noise floor"),
    ("onset_refractory_s", 0.08, 0.0, 1.0, "s", "shortest gap between two onsets"),
    ("onset_window_s", 3.0, 0.2, 60.0, "s", "time constant of the onset-rate estimate"),
    ("stale_s", 1.0, 0.1, 30.0, "s", "no samples for this long marks the microphone stale"),
], scope=VENUE))

START_GRACE_S = 3.0  # longest wait for a freshly opened stream's first block
BANDS = {"bass": (30.0, 250.0), "voice": (300.0, 3400.0), "air": (5000.0, 16000.0)}
_EPS = 1e-12
#: a hop this quiet is zeros (a muted input, a dropout), not a room: a quiet room through a quiet microphone
#: reads -95 dBFS and its bass band lower still, so floor_min_dbfs is no such line
_DIGITAL_SILENCE_DB = -110.0
_QUIET_DB = 10.0  # a level within this of its floor is the room's own flutter, not an event


class FloorTracker:
    """Slow-rising, fast-falling tracker of a level in dB (a running low percentile).

    No single moment at the start sets it: it starts from the 10th percentile of the first ``SETTLE_S`` of
    levels (a recorder's fade-in or a codec's first samples, 20 dB under the room, set it for minutes, as it
    then climbs at a few dB a minute).  After nothing but digital silence (``ceil`` set), no higher than
    ``SETTLE_CEIL_DBFS`` at first: what is heard first may be an event (a tone played into a silent input,
    applause as a muted channel opens), not the room; while the level stays up the floor then climbs at
    ``CATCH_UP_DB_S`` to that first second's percentile (a loud room it started in, the piece restarted in a
    busy afternoon), and an event that ends lets it go back to tracking.  Digital silence is kept away from
    it by :class:`AudioAnalyzer`.
    """

    SETTLE_S = 1.0
    SETTLE_CEIL_DBFS = -40.0   # louder than any room at rest through a sanely set gain
    CATCH_UP_DB_S = 1.0

    def __init__(self) -> None:
        self.value: float | None = None
        self.ceil = math.inf   # SETTLE_CEIL_DBFS once the first level came after a stretch of digital silence
        self.target: float | None = None   # the first second's percentile the ceiling held the floor under
        self._first: list[float] | None = []   # the levels of the first SETTLE_S; None once settled
        self._first_s = 0.0

    def update(self, level: float, dt: float, rise_db_per_s: float, fall_s: float, lo: float) -> float:
        """Advance by ``dt`` seconds towards ``level``; returns the floor (never under ``lo``)."""
        if self._first is not None:
            self._first.append(level)
            self._first_s += dt
            settled = float(np.percentile(self._first, 10))
            self.value = max(min(settled, self.ceil), lo)
            if self._first_s >= self.SETTLE_S:
                self._first = None
                self.target = settled if settled > self.value else None
            return self.value
        if level < self.value:
            self.value += (level - self.value) * (1.0 - math.exp(-dt / fall_s))
            self.target = None   # it went quiet: what came first was an event, and the floor tracks as usual
        elif self.target is not None:
            self.value = min(self.value + min(level - self.value, self.CATCH_UP_DB_S * dt), self.target)
            if self.value >= self.target:
                self.target = None
        else:
            self.value += min(level - self.value, rise_db_per_s * dt)
        self.value = max(self.value, lo)
        return self.value


class AudioAnalyzer:
    """Deterministic analysis of a mono float sample stream into :class:`AudioFrame` records.

    Feed any number of samples with :meth:`feed`; complete hops are analysed,
    the remainder waits for the next call.  Settings come from ``tree``
    (``sensing/audio/*``).
    """

    def __init__(self, samplerate: float, tree: ParamTree | None = None) -> None:
        self.tree = tree if tree is not None else ParamTree.from_specs(PARAMS)
        self.sr = float(samplerate)
        self.hop = max(16, int(round(self.sr * float(self.tree[f"{P}/hop_ms"]) / 1000.0)))
        self.n = 2 * self.hop
        self.window = np.hanning(self.n).astype(np.float32)
        freqs = np.fft.rfftfreq(self.n, 1.0 / self.sr)
        nyq = self.sr / 2
        self._bands = {}
        for name, (lo, hi) in BANDS.items():
            sel = (freqs >= lo) & (freqs < min(hi, nyq))
            self._bands[name] = sel if sel.any() else None
        # Window power normalisation so a full-scale sine reads about -3 dBFS, like its RMS.
        self._wnorm = float(np.sum(self.window ** 2))
        self._buf = np.zeros(self.n, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._samples = 0  # samples consumed into hops
        self._prev_logmag: np.ndarray | None = None
        self._flux_mean = 0.0
        self._last_onset = -1e9
        self._rate = 0.0
        self._level = -120.0
        self._pw = 0.0
        self._bp: dict[str, float] = dict.fromkeys(BANDS, 0.0)
        self._started = False
        self._resume = False   # digital silence came since the last real hop (see feed)
        self._silent_start = False   # digital silence came before the first real hop
        self._floor = FloorTracker()
        self._band_floor = {k: FloorTracker() for k in BANDS}
        # Mean excess of the level over its floor while the room is near quiet (dB): the room's own flutter.
        self._spread = 0.0
        self._band_spread = dict.fromkeys(BANDS, 0.0)
        self.onsets = 0
        self.last: AudioFrame | None = None

    @property
    def time(self) -> float:
        """Seconds of audio analysed so far."""
        return self._samples / self.sr

    def feed(self, samples: np.ndarray, t: float | None = None) -> AudioFrame | None:
        """Analyse ``samples`` (mono float, -1..1); returns the newest frame or ``None`` if no hop completed.

        ``t`` is the time stamp to give the frame (default: audio time analysed).
        """
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self._pending.size:
            x = np.concatenate([self._pending, x])
        nh = x.size // self.hop
        self._pending = x[nh * self.hop:].copy()
        if nh == 0:
            return None
        tr = self.tree
        hop_dt = self.hop / self.sr
        # Frames: previous tail + new hops, built with a strided view.
        stream = np.concatenate([self._buf[self.hop:], x[: nh * self.hop]])
        self._buf = stream[-self.n:].copy()
        idx = np.arange(nh)[:, None] * self.hop + np.arange(self.n)[None, :]
        frames = stream[idx]
        spec = np.fft.rfft(frames * self.window, axis=1)
        power = (spec.real ** 2 + spec.imag ** 2) * (2.0 / (self._wnorm * self.n))
        hop_power = np.mean(frames[:, self.hop:] ** 2, axis=1)  # the newest hop of each frame
        levels = 10.0 * np.log10(hop_power + _EPS)  # unsmoothed, for onsets
        logmag = 10.0 * np.log10(power + 1e-10)

        rise = float(tr[f"{P}/floor_rise_db_per_min"]) / 60.0
        fall = float(tr[f"{P}/floor_fall_s"])
        lo = float(tr[f"{P}/floor_min_dbfs"])
        k = float(tr[f"{P}/onset_k"])
        min_flux = float(tr[f"{P}/onset_min_flux"])
        min_db = float(tr[f"{P}/onset_min_db"])
        refractory = float(tr[f"{P}/onset_refractory_s"])
        win = float(tr[f"{P}/onset_window_s"])
        level_s = float(tr[f"{P}/level_s"])
        a_level = 1.0 if level_s <= 0 else 1.0 - math.exp(-hop_dt / level_s)
        a_flux = 1.0 - math.exp(-hop_dt / 0.5)
        a_spread = 1.0 - math.exp(-hop_dt / float(tr[f"{P}/spread_s"]))
        decay = math.exp(-hop_dt / win)

        band_p = {}
        for name, sel in self._bands.items():
            band_p[name] = power[:, sel].sum(axis=1) if sel is not None else np.zeros(nh)
        for i in range(nh):
            # Smoothed powers (level_s) feed both the reported values and the floors, so the
            # hop-to-hop jitter of a steady noise does not read as sound above its floor.
            if float(levels[i]) <= _DIGITAL_SILENCE_DB:
                # Digital silence (a stream opening, a muted input, a dropout): reported as it is, but it is
                # not the room: the floors and the flutter learn nothing from it, and the smoothing starts
                # afresh from the first real hop after it (its decay through every level down to silence,
                # and its climb back, taught the floor a room 30 dB quieter than the one that came back).
                if self._started:
                    self._pw += a_level * (float(hop_power[i]) - self._pw)
                    for name in BANDS:
                        self._bp[name] += a_level * (float(band_p[name][i]) - self._bp[name])
                self._resume = True
                self._silent_start = self._silent_start or not self._started
                floor = self._floor.value if self._floor.value is not None else lo
            else:
                if not self._started and self._silent_start:   # a silent input that comes alive
                    for tracker in (self._floor, *self._band_floor.values()):
                        tracker.ceil = FloorTracker.SETTLE_CEIL_DBFS
                if not self._started or self._resume:
                    self._pw = float(hop_power[i])
                    self._bp = {name: float(band_p[name][i]) for name in BANDS}
                    self._started, self._resume = True, False
                else:
                    self._pw += a_level * (float(hop_power[i]) - self._pw)
                    for name in BANDS:
                        self._bp[name] += a_level * (float(band_p[name][i]) - self._bp[name])
                lvl = 10.0 * math.log10(self._pw + _EPS)
                floor = self._floor.update(lvl, hop_dt, rise, fall, lo)
                if lvl - floor < _QUIET_DB and self._floor.target is None:  # only the near-quiet room teaches its
                    # flutter, never applause, nor a room the floor is still climbing to
                    self._spread += a_spread * (max(0.0, lvl - floor) - self._spread)
                for name in BANDS:
                    bl = 10.0 * math.log10(self._bp[name] + _EPS)
                    bf = self._band_floor[name].update(bl, hop_dt, rise, fall, lo)
                    if bl - bf < _QUIET_DB and self._band_floor[name].target is None:
                        self._band_spread[name] += a_spread * (max(0.0, bl - bf) - self._band_spread[name])
            # Spectral flux: mean positive rise of the log spectrum since the previous hop.
            cur = logmag[i]
            flux = 0.0 if self._prev_logmag is None else float(np.mean(np.maximum(cur - self._prev_logmag, 0.0)))
            self._prev_logmag = cur
            self._samples += self.hop
            now = self._samples / self.sr
            self._rate *= decay
            if (flux > max(min_flux, k * self._flux_mean) and float(levels[i]) > floor + min_db
                    and now - self._last_onset >= refractory):
                self._last_onset = now
                self._rate += 1.0 / win
                self.onsets += 1
            self._flux_mean += a_flux * (flux - self._flux_mean)

        floor = self._floor.value if self._floor.value is not None else lo   # None: only silence heard yet
        self._level = 10.0 * math.log10(self._pw + _EPS)
        margin = float(tr[f"{P}/margin_db"])
        rng = float(tr[f"{P}/range_db"])
        brng = float(tr[f"{P}/band_range_db"])
        k_sp = float(tr[f"{P}/spread_k"])
        loud = min(1.0, max(0.0, (self._level - floor - max(margin, k_sp * self._spread)) / rng))
        bands = {}
        for name in BANDS:
            cur_db = 10.0 * math.log10(self._bp[name] + _EPS)
            bm = max(margin, k_sp * self._band_spread[name])
            bf = self._band_floor[name].value
            bands[name] = min(1.0, max(0.0, (cur_db - (lo if bf is None else bf) - bm) / brng))
        self.last = AudioFrame(self.time if t is None else t, float(self._level), float(floor), loud,
                               bands["bass"], bands["voice"], bands["air"], float(self._rate))
        return self.last


class Ring:
    """Single-writer ring buffer of mono float samples.

    The PortAudio callback calls :meth:`write` (a copy, nothing else); the
    reader keeps a cursor and calls :meth:`read`.  ``written`` only grows, so
    a reader that fell more than the capacity behind skips to the newest data.
    """

    def __init__(self, capacity: int) -> None:
        self.buf = np.zeros(int(capacity), np.float32)
        self.written = 0
        self.last_write = 0.0  # monotonic time of the last block

    def write(self, block: np.ndarray, now: float | None = None) -> None:
        """Append a mono block (called on the audio thread)."""
        n = block.shape[0]
        cap = self.buf.size
        if n > cap:
            self.written += n - cap  # older samples are overwritten anyway
            block = block[-cap:]
            n = cap
        start = self.written % cap
        first = min(n, cap - start)
        self.buf[start:start + first] = block[:first]
        if first < n:
            self.buf[: n - first] = block[first:]
        self.written += n
        self.last_write = time.monotonic() if now is None else now

    def read(self, cursor: int) -> tuple[np.ndarray, int]:
        """Samples written since ``cursor`` (at most the capacity) and the new cursor."""
        end = self.written
        cap = self.buf.size
        start = max(cursor, end - cap)
        n = end - start
        if n <= 0:
            return np.zeros(0, np.float32), end
        s = start % cap
        if s + n <= cap:
            return self.buf[s:s + n].copy(), end
        return np.concatenate([self.buf[s:], self.buf[: n - (cap - s)]]), end


def find_input_device(sd, name: str | None):
    """Index of the first input device whose name contains ``name`` (case-insensitive).

    ``None``/``""``/``"default"`` pick PortAudio's default input.  Raises
    ``OSError`` listing the available inputs if nothing matches.
    """
    devices = sd.query_devices()
    inputs = [(i, d) for i, d in enumerate(devices) if d.get("max_input_channels", 0) > 0]
    if name in (None, "", "default"):
        idx = sd.default.device[0]
        if idx is not None and idx >= 0:
            return int(idx)
        if inputs:
            return inputs[0][0]
        raise OSError("no audio input device found")
    for i, d in inputs:
        if name.lower() in d["name"].lower():
            return i
    names = ", ".join(repr(d["name"]) for _, d in inputs) or "none"
    raise OSError(f"no audio input device matching {name!r} (inputs: {names})")


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """Mono float32 samples and sample rate of a PCM WAV file (8/16/24/32-bit); ``ValueError`` naming the
    file when it is not one (``wave.Error`` and ``EOFError`` reached the user as tracebacks)."""
    try:
        with wave.open(str(path), "rb") as w:
            sr, ch, sw, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"{path}: not a PCM WAV file ({str(exc) or 'empty or cut short'})") from None
    if sr <= 0 or ch <= 0:
        raise ValueError(f"{path}: not a usable WAV file ({sr} Hz, {ch} channels)")
    if sw == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif sw == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif sw == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        v = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8) | (b[:, 2].astype(np.int32) << 16))
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif sw == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(f"{path}: unsupported sample width {sw} bytes")
    return x.reshape(-1, ch).mean(axis=1).astype(np.float32), sr


#: names that are sound files, not input devices (any existing file is one too): what ``--audio`` reads
AUDIO_FILE_EXTS = (".wav", ".wave", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".aif", ".aiff",
                   ".caf", ".wma", ".mp4", ".mov", ".mkv", ".webm")


def is_audio_file(spec) -> bool:
    """Whether ``spec`` names a sound file standing in for the microphone (a known sound or video extension,
    or any existing file), not an input device's name (``"USB"``, ``"default"``)."""
    if not spec or str(spec) == "default":   # the keyword for the system's input, whatever lies in the folder
        return False
    s = str(spec)
    return s.lower().endswith(AUDIO_FILE_EXTS) or os.path.isfile(s)


def read_audio(path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and sample rate of a sound file: a PCM WAV read as it is, anything else decoded
    by FFmpeg through PyAV (a float WAV as DAWs and Audacity write, FLAC, MP3, AAC/M4A from a phone, Opus, a
    video's soundtrack); ``OSError`` for a missing file, ``ValueError`` naming one that holds no sound."""
    if not os.path.exists(str(path)):
        raise OSError(f"audio file {path} does not exist")
    if str(path).lower().endswith((".wav", ".wave")):
        try:
            return read_wav(path)
        except ValueError:
            pass   # not PCM (a float or compressed WAV): FFmpeg reads it
    return _decode_audio(path)


def _decode_audio(path) -> tuple[np.ndarray, int]:
    """The first sound stream of any file FFmpeg reads, its channels averaged (as :func:`read_wav` does)."""
    import av  # noqa: PLC0415 - only for sound files that are not PCM WAV

    chunks: list[np.ndarray] = []
    rate = 0
    try:
        with av.open(str(path)) as box:
            stream = next((st for st in box.streams if st.type == "audio"), None)
            if stream is None:
                raise ValueError(f"{path}: no sound in it (no audio stream)")
            resampler, shape = None, None

            def mono(frames):   # packed (interleaved) float: one plane whatever the channel count (PyAV's
                # planar to_ndarray crashes the process from 8 channels: a 7.1 film soundtrack)
                return [f.to_ndarray().reshape(-1, len(f.layout.channels)).mean(axis=1) for f in frames]

            bad = {"count": 0, "first": None}
            for frame in _frames(box, stream, path, bad):
                key = (frame.format.name, frame.layout.name, frame.sample_rate)
                if resampler is None or key != shape:   # a stream that changes rate or layout midway
                    if resampler is not None:
                        chunks += mono(resampler.resample(None))
                    rate = rate or frame.sample_rate
                    resampler, shape = av.AudioResampler(format="flt", layout=frame.layout.name, rate=rate), key
                chunks += mono(resampler.resample(frame))
            if resampler is not None:
                chunks += mono(resampler.resample(None))
    except av.FFmpegError as exc:
        raise ValueError(f"{path}: not a sound file FFmpeg can read ({exc})") from None
    if (not chunks or rate <= 0) and bad["count"]:
        raise ValueError(f"{path}: not a sound file FFmpeg can read (none of its {bad['count']} packets decode: "
                         f"{bad['first']})")
    if not chunks or rate <= 0:
        raise ValueError(f"{path}: no sound in it (an empty audio stream)")
    return np.concatenate(chunks).astype(np.float32), int(rate)


def _frames(box, stream, path, bad: dict):
    """The decoded frames of ``stream``, packet by packet: a packet FFmpeg cannot decode (two MP3s joined end
    to end, the second's tag mid-file) is skipped with one warning, not the whole file refused; ``bad`` counts
    them (``count``) and keeps the first error (``first``)."""
    import av  # noqa: PLC0415

    for packet in box.demux(stream):
        try:
            frames = packet.decode()
        except (av.error.InvalidDataError, av.error.UndefinedError) as exc:
            bad["count"] += 1
            if bad["first"] is None:
                bad["first"] = exc
                log.warning("%s: skipped a packet FFmpeg cannot decode (%s)", path, exc)
            continue
        yield from frames
    if bad["count"] > 1:
        log.warning("%s: skipped %d packets FFmpeg cannot decode in all", path, bad["count"])


def _forgo_portaudio_shutdown(sd) -> None:
    """Skip sounddevice's clean-up at exit: a stream close is stuck inside PortAudio.

    Seen when the sound server goes away while a stream closes (ALSA's pulse plugin then waits on
    itself). sounddevice's exit handler would close the same stream again and wait for ever, so
    the piece could not exit for systemd to restart it; the OS frees the device instead.
    """
    handler = getattr(sd, "_exit_handler", None)
    if handler is not None:
        atexit.unregister(handler)
        log.warning("microphone: PortAudio is stuck closing a stream; it will not be shut down at exit")


class MicCapture:
    """A PortAudio input stream (or a WAV file standing in for it) feeding a :class:`Ring`.

    ``device`` is a name substring (``"pulse"``, ``"USB"``), ``"default"``,
    or a sound file (:func:`is_audio_file`).  A supervisor thread opens the stream and
    reopens it with backoff when it fails or stops delivering; PortAudio is
    re-initialised before each reopen because its device list is fixed at
    initialisation.  :meth:`read` (engine thread) analyses what arrived.
    """

    def __init__(self, device: str | None, tree: ParamTree | None = None, samplerate: float | None = None,
                 blocksize_ms: float = 5.0, backoff=(0.5, 8.0), sd_module=None, latency="low") -> None:
        self.device = device
        self.tree = tree if tree is not None else ParamTree.from_specs(PARAMS)
        self.is_file = is_audio_file(device)
        self.samplerate = samplerate
        self.blocksize_ms = blocksize_ms
        self.latency = latency
        self.backoff = backoff
        self._sd = sd_module
        self.ring: Ring | None = None
        self.analyzer: AudioAnalyzer | None = None
        self._cursor = 0
        self._stream = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reopen = threading.Event()
        self.state = "off"
        self.last_error = ""
        self.opens = 0
        self.blocks = 0
        self.device_name = str(device)
        self._t0 = time.monotonic()

    # -- callback: copy only ---------------------------------------------
    def callback(self, indata, frames, time_info, status) -> None:
        """PortAudio callback: copy the block (first channel) into the ring; nothing else."""
        ring = self.ring
        if ring is not None:
            ring.write(indata[:, 0] if indata.ndim == 2 else indata)
            self.blocks += 1

    # -- lifecycle --------------------------------------------------------
    def start(self, t0: float | None = None) -> None:
        """Start the supervisor thread (opens the device)."""
        self._t0 = time.monotonic() if t0 is None else t0
        self._stop.clear()
        self.state = "starting"
        self._thread = threading.Thread(target=self._run, name=f"mic:{self.device}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> bool:
        """Close the stream and stop the supervisor within ``timeout``; True if it ended."""
        self._stop.set()
        self._reopen.set()
        th = self._thread
        if th is not None:
            th.join(timeout)
            if th.is_alive():
                log.warning("microphone %s: supervisor did not end within %.1f s", self.device, timeout)
                _forgo_portaudio_shutdown(self._sd)
                return False
        self.state = "stopped"
        return True

    def _setup(self, sr: float) -> None:
        if self.analyzer is None or self.analyzer.sr != sr:
            self.ring = Ring(int(sr * 2))
            self.analyzer = AudioAnalyzer(sr, self.tree)
            self._cursor = 0

    def _run(self) -> None:
        delay = self.backoff[0]
        first = True
        while not self._stop.is_set():
            try:
                self._open(reinit=not first)
                self.opens += 1
                self.state = "running"
            except Exception as e:
                self._fail(f"open failed: {e}")
                first = False
                self._stop.wait(delay)
                delay = min(self.backoff[1], delay * 2)
                continue
            first = False
            opened_at = time.monotonic()
            # Watch the stream: stale blocks or an inactive stream trigger a reopen.
            while not self._stop.is_set():
                self._reopen.wait(0.1)
                if self._reopen.is_set():
                    self._reopen.clear()
                    break
                stale = float(self.tree[f"{P}/stale_s"])
                if self.ring.last_write < opened_at:
                    # No block since this open: ALSA's pulse plugin at latency='low' sometimes needs
                    # a second or two to deliver the first one; reopening then would only start over.
                    stale = max(stale, START_GRACE_S)
                last = max(self.ring.last_write, opened_at)  # blocks from before a reopen do not count
                active = self._active()
                if not active or time.monotonic() - last > stale:
                    self._fail("stream stopped delivering" if active else "stream ended")
                    break
                delay = self.backoff[0]
            self._close()
            if not self._stop.is_set():
                self._stop.wait(delay)
                delay = min(self.backoff[1], delay * 2)
        self._close()

    def _active(self) -> bool:
        s = self._stream
        if s is None:
            return False
        if isinstance(s, WavFeeder):
            return s.alive()
        try:
            return bool(s.active)
        except Exception:
            return False

    def _open(self, reinit: bool) -> None:
        if self.is_file:
            samples, sr = read_audio(self.device)
            self._setup(float(sr))
            self._stream = WavFeeder(samples, sr, self.callback, block=max(1, int(sr * self.blocksize_ms / 1000)))
            self._stream.start()
            self.device_name = str(self.device)
            return
        sd = self._sd
        if sd is None:
            import sounddevice as sd  # noqa: PLC0415 - optional at import time
            self._sd = sd
        if reinit:
            # PortAudio enumerates devices once at initialisation: rebuild to see a re-plugged device.
            sd._terminate()
            sd._initialize()
        idx = find_input_device(sd, self.device)
        info = sd.query_devices(idx)
        sr = float(self.samplerate or info["default_samplerate"])
        self._setup(sr)
        blocksize = max(16, int(sr * self.blocksize_ms / 1000))
        stream = sd.InputStream(device=idx, channels=1, samplerate=sr, dtype="float32", latency=self.latency,
                                blocksize=blocksize, callback=self.callback)
        stream.start()
        self._stream = stream
        self.device_name = info["name"]
        log.info("microphone: opened %r at %.0f Hz", info["name"], sr)

    def _close(self) -> None:
        s, self._stream = self._stream, None
        if s is not None:
            try:
                if isinstance(s, WavFeeder):
                    s.stop()
                else:
                    s.abort()
                    s.close()
            except Exception as e:
                log.debug("microphone: close failed: %s", e)

    def _fail(self, msg: str) -> None:
        if msg != self.last_error or self.state != "reopening":
            log.warning("microphone %s: %s; retrying with backoff", self.device, msg)
        self.last_error = msg
        self.state = "reopening"

    # -- engine side --------------------------------------------------------
    def read(self) -> AudioFrame | None:
        """Analyse samples that arrived since the last read; newest frame or ``None`` if none yet."""
        ring, an = self.ring, self.analyzer
        if ring is None or an is None:
            return None
        samples, self._cursor = ring.read(self._cursor)
        if samples.size:
            an.feed(samples, t=ring.last_write - self._t0)
        return an.last

    def age(self) -> float:
        """Seconds since the last block arrived (inf before the first)."""
        ring = self.ring
        if ring is None or ring.written == 0:
            return math.inf
        return time.monotonic() - ring.last_write


class WavFeeder:
    """Plays a WAV file into a callback in real time, looping, like a PortAudio stream would."""

    def __init__(self, samples: np.ndarray, samplerate: int, callback: Callable, block: int) -> None:
        self.samples = samples.astype(np.float32)
        self.sr = samplerate
        self.callback = callback
        self.block = block
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start feeding blocks on a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="wav-feeder", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        """True while the feeder thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop feeding (bounded wait)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)

    def _run(self) -> None:
        pos, n = 0, self.samples.size
        if n == 0:
            return
        t_next = time.monotonic()
        period = self.block / self.sr
        while not self._stop.is_set():
            idx = (np.arange(pos, pos + self.block) % n)
            self.callback(self.samples[idx][:, None], self.block, None, None)
            pos = (pos + self.block) % n
            t_next += period
            self._stop.wait(max(0.0, t_next - time.monotonic()))
