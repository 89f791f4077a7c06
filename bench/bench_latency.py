#!/usr/bin/env python3
"""Sound -> light latency, end to end, on the live piece as `python run.py` runs it.

What runs: a private PulseAudio daemon with a null sink (`virt`, its monitor the default source);
the real live piece (`run.py --headless --audio pulse`) on the demo venue
(`hardware/demo-venue.toml`: its layouts, outputs, power, scenes) with only the output ports moved
to loopback receivers of this benchmark.  The piece's microphone is PortAudio's `pulse` device
reading the monitor, through `installation/sensing` (MicCapture -> AudioAnalyzer) -> mood ->
preset mapping -> field + render -> LED sampling, colour, power and flash limits -> outputs.
A tone burst is played into the sink through PortAudio (a second client of the same daemon).

Times (all `time.monotonic()`, one clock for every process on the machine):
  played   this process's PortAudio output callback hands over the first loud block
  heard    a reference listener -- the piece's own MicCapture class on the same `pulse` device, in
           this process -- receives the first loud block: when a real microphone's samples reach
           PortAudio.  "Sound onset" below is this moment.
  light    the first LED packet that reflects the louder sound arrives at the DDP receiver
           ('net-wled': the hanging net, 480 LEDs, one packet per frame).
Criterion (the same for the baseline): a packet's level is the sum of its DMX bytes; the step is
the median level 0.15..0.35 s after the event minus the median over the 0.1 s before it; "light"
is the first packet after the event whose level is past half of that step.  A trial whose step
is not clearly above the packet-to-packet noise (and at least 3 %) is counted as "no step".
In `harmony` (the demo's first scene) sound raises the mood's intensity, which raises
render/exposure: that is the brightness change measured.

Baselines in the same run, same piece, same criterion:
  OSC -> light   `/tapestry/show/master` 0.8 -> 1.0 sent to the piece's OSC port: the frame and
                 LED path alone (no audio, no mood), from datagram sent to LED packet.
  audio path     played -> heard: PulseAudio + PortAudio alone, no piece involved.

    python3 bench/bench_latency.py [--trials 12] [--osc-trials 10]

Needs pulseaudio + pactl (apt: pulseaudio pulseaudio-utils; `scripts/install.sh --test`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "tests" / "faults"):
    sys.path.insert(0, str(_p))

from faults_support import Piece, Receivers  # noqa: E402  (the piece as a process; loopback DMX receivers)
from installation.control.wire import encode_message  # noqa: E402

DEMO = ROOT / "hardware" / "demo-venue.toml"
PROBE = "net-wled"  # the output whose packets are judged (DDP: a whole frame in one packet)
RECEIVER = {"wall": "wall", "net-wled": "net", "rim-node": "rim"}  # demo output -> Receivers name (same protocol)
PRE_S = 0.10
AFTER_S = (0.15, 0.35)
BURST_S = 0.4
TONE_HZ = 1000.0
LOUD = 0.02  # a block whose peak passes this is "loud" (the null sink's monitor is digital silence)
BUDGET_MS = 45.0  # shared/REFERENCE.md: microphone -> LED at most 45 ms (ITU-R BT.1359), never above 90


# -- the piece ---------------------------------------------------------------------------------------

def bench_venue(folder: Path, ports: dict[str, int]) -> Path:
    """The demo venue with every output sent to ``ports[name]`` on loopback (layouts by absolute path)."""
    text = DEMO.read_text(encoding="utf-8")
    layouts = 'layouts = ["strip-wall.toml", "hanging-net.toml"]'
    assert layouts in text, "the demo venue's layouts line changed; update bench_venue"
    text = text.replace(layouts, "layouts = [" + ", ".join(
        f'"{DEMO.parent / n}"' for n in ("strip-wall.toml", "hanging-net.toml")) + "]")
    for name, port in ports.items():
        key = f'name = "{name}"'
        assert key in text, f"the demo venue has no output {name!r}; update bench_venue"
        text = text.replace(key, f"{key}\nport = {port}", 1)
    path = folder / "venue.toml"
    path.write_text(text, encoding="utf-8")
    return path


class LivePiece(Piece):
    """``run.py --headless --venue V --audio pulse`` with the live defaults (size, particles, watchdog)."""

    def start(self) -> None:
        cmd = [sys.executable, str(ROOT / "run.py"), "--headless", "--venue", str(self.venue), "--audio", "pulse",
               "--osc-port", str(self.osc_port), "--health-port", str(self.health_port)]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env, cwd=ROOT)


# -- sound in, sound heard ---------------------------------------------------------------------------

class Player:
    """A PortAudio output stream into the default sink: silence, or a tone burst on request."""

    def __init__(self, sd, sr: int = 48000) -> None:
        self.sr = sr
        self._left = 0
        self._phase = 0
        self.played: float | None = None
        self.stream = sd.OutputStream(device="pulse", channels=1, samplerate=sr, dtype="float32", latency=0.04,
                                      callback=self._callback)
        self.stream.start()

    def burst(self, seconds: float) -> None:
        self.played = None
        self._left = int(seconds * self.sr)

    def _callback(self, out, frames, time_info, status) -> None:
        if self._left <= 0:
            out[:] = 0
            return
        if self.played is None:
            self.played = time.monotonic()
        n = np.arange(self._phase, self._phase + frames)
        out[:, 0] = 0.5 * np.sin(2 * np.pi * TONE_HZ * n / self.sr)
        out[min(frames, self._left):, 0] = 0
        self._phase += frames
        self._left -= frames

    def close(self) -> None:
        self.stream.abort()
        self.stream.close()


class Listener:
    """The piece's own microphone capture (MicCapture, same device and stream settings) in this process,
    noting when the first loud block of a burst arrives."""

    def __init__(self) -> None:
        from installation.params import ParamTree
        from installation.sensing import PARAMS
        from installation.sensing.microphone import MicCapture
        self.mic = MicCapture("pulse", ParamTree.from_specs(PARAMS))
        self._copy = self.mic.callback
        self.mic.callback = self._callback  # MicCapture opens its stream with callback=self.callback
        self.heard: float | None = None
        self.mic.start()

    def arm(self) -> None:
        self.heard = None

    def _callback(self, indata, frames, time_info, status) -> None:
        t = time.monotonic()
        self._copy(indata, frames, time_info, status)
        if self.heard is None and float(np.abs(indata).max()) > LOUD:
            self.heard = t

    def close(self) -> None:
        self.mic.stop(2.0)


# -- judging packets ----------------------------------------------------------------------------------

def levels(rx, since: float) -> list[tuple[float, int]]:
    """(arrival, sum of DMX bytes) of the probe's frame packets (DDP offset 0) since ``since``."""
    return [(p.t, int(np.frombuffer(p.data, np.uint8).sum())) for p in rx.since(since) if p.address == 0]


def step_latency(series: list[tuple[float, int]], t0: float) -> tuple[float | None, str]:
    """Seconds from ``t0`` to the first packet past half of the step in level (see the module doc)."""
    before = [v for t, v in series if t0 - PRE_S <= t < t0]
    after = [v for t, v in series if t0 + AFTER_S[0] <= t < t0 + AFTER_S[1]]
    if len(before) < 2 or len(after) < 3:
        return None, "too few packets"
    lo, hi = statistics.median(before), statistics.median(after)
    noise = max(before) - min(before)
    if hi - lo < max(0.03 * lo, 2.0 * noise):
        return None, f"no step ({lo:.0f} -> {hi:.0f}, noise {noise:.0f})"
    mid = lo + (hi - lo) / 2
    for t, v in series:
        if t >= t0 and v >= mid:
            return t - t0, f"{100.0 * (hi - lo) / max(lo, 1):+.0f} %"
    return None, "never past half"


def summary(xs: list[float]) -> tuple[float, float, float]:
    """median, p95, max in ms."""
    if not xs:
        return (float("nan"),) * 3
    ms = np.asarray(xs) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 95)), float(ms.max())


# -- the run ------------------------------------------------------------------------------------------

def wait_ready(piece: LivePiece, rx, timeout: float) -> bool:
    doc = piece.wait_health(lambda d: d.get("frames", 0) > 0 and
                            (d.get("sensors") or {}).get("audio", {}).get("state") == "running", timeout)
    return doc is not None and rx.wait_for(lambda ps: sum(1 for p in ps if p.nonzero) >= 30, 10)


def osc_trials(piece: LivePiece, rx, n: int) -> tuple[list[float], list[str]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lat, notes = [], []
    try:
        for _ in range(n):
            sock.sendto(encode_message("/tapestry/show/master", 0.8), ("127.0.0.1", piece.osc_port))
            time.sleep(0.6)
            t0 = time.monotonic()
            sock.sendto(encode_message("/tapestry/show/master", 1.0), ("127.0.0.1", piece.osc_port))
            time.sleep(AFTER_S[1] + 0.3)
            dt, note = step_latency(levels(rx, t0 - 1.0), t0)
            if dt is not None:
                lat.append(dt)
            notes.append(note)
    finally:
        sock.close()
    return lat, notes


def sound_trials(player: Player, listener: Listener, rx, n: int, gap_s: float):
    heard_light, played_light, played_heard, notes = [], [], [], []
    for _ in range(n):
        time.sleep(gap_s)  # the mood's release (sound 0.6 s, intensity 1 s, excitement ~3 s)
        listener.arm()
        player.burst(BURST_S)
        time.sleep(BURST_S + 0.3)
        if player.played is None or listener.heard is None:
            notes.append("burst not heard")
            continue
        dt, note = step_latency(levels(rx, listener.heard - 1.0), listener.heard)
        notes.append(note)
        played_heard.append(listener.heard - player.played)
        if dt is not None:
            heard_light.append(dt)
            played_light.append(dt + listener.heard - player.played)
    return heard_light, played_light, played_heard, notes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=12, help="tone bursts (about 4.7 s each)")
    ap.add_argument("--osc-trials", type=int, default=10, help="OSC master steps for the baseline (1.2 s each)")
    ap.add_argument("--gap", type=float, default=4.0, help="quiet seconds before each burst")
    args = ap.parse_args()
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        print("bench_latency: needs pulseaudio and pactl (apt install pulseaudio pulseaudio-utils); nothing measured",
              file=sys.stderr)
        return 2
    from tests.support.pulse import Pulse  # the tests' private PulseAudio daemon (null sink `virt`)

    t_start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="tapestry-lat-"))  # short path: unix socket names are limited
    pulse = Pulse(str(tmp))
    receivers = None
    piece = player = listener = None
    try:
        pulse.start()
        os.environ["PULSE_SERVER"] = pulse.env["PULSE_SERVER"]  # before PortAudio starts in this process
        import sounddevice as sd
        receivers = Receivers()
        venue = bench_venue(tmp, {out: receivers.ports[name] for out, name in RECEIVER.items()})
        piece = LivePiece(venue, tmp / "piece.log", env={"PULSE_SERVER": pulse.env["PULSE_SERVER"]})
        rx = receivers[RECEIVER[PROBE]]
        if not wait_ready(piece, rx, 90):
            print("the piece did not start lighting the LEDs with the microphone running:\n" + piece.log(),
                  file=sys.stderr)
            return 1
        time.sleep(2.0)  # start-up transients (the first scene's fade, trails filling)
        player, listener = Player(sd), Listener()
        t_trials = time.monotonic()
        osc_lat, osc_notes = osc_trials(piece, rx, args.osc_trials)
        heard_light, played_light, played_heard, notes = sound_trials(player, listener, rx, args.trials, args.gap)
        doc = piece.health() or {}
        gaps = np.diff([t for t, _ in levels(rx, t_trials)]) * 1e3  # context for the tail: frames not sent
        if piece.proc.poll() is not None:
            print("the piece exited during the benchmark:\n" + piece.log(), file=sys.stderr)
            return 1
    finally:
        for obj in (player, listener):
            if obj is not None:
                obj.close()
        if piece is not None:
            piece.stop()
        if receivers is not None:
            receivers.close()
        pulse.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    base = summary(osc_lat)[0]
    fm = doc.get("frame_ms") or {}
    print(f"sound -> light latency: the live piece (run.py, demo venue, {doc.get('particles', '?')} particles) on "
          f"this machine at {doc.get('fps', float('nan')):.1f} fps (frame ms p50 {fm.get('p50')}, "
          f"p95 {fm.get('p95')})")
    print("microphone: PulseAudio null sink monitor -> PortAudio 'pulse' device (real device path); LEDs judged "
          f"at the DDP receiver of '{PROBE}' (480 LEDs)")
    if gaps.size:
        print(f"LED frames during the trials: median interval {np.median(gaps):.1f} ms, p99 "
              f"{np.percentile(gaps, 99):.1f} ms, longest {gaps.max():.1f} ms")
    print()
    print(f"{'path':<52} {'n':>3} {'median':>7} {'p95':>7} {'max':>7}  {'x OSC->light':>12}")
    rows = [("sound at the PortAudio input -> LED packet", heard_light),
            ("tone into the sink (player) -> LED packet", played_light),
            ("baseline: OSC show/master -> LED packet", osc_lat),
            ("baseline: player -> PortAudio input (audio alone)", played_heard)]
    for label, xs in rows:
        med, p95, mx = summary(xs)
        print(f"{label:<52} {len(xs):>3} {med:7.1f} {p95:7.1f} {mx:7.1f}  {med / base:12.2f}")
    print("sound at the input -> LED, every trial (ms): " + " ".join(f"{1e3 * x:.0f}" for x in sorted(heard_light)))
    med = summary(heard_light)[0]
    print(f"(ms; budget in shared/REFERENCE.md: microphone -> LED <= {BUDGET_MS:.0f} ms, never above 90: "
          f"median sound -> light is {med / BUDGET_MS:.2f}x the budget)")
    misses = [n for n in notes if not n.startswith(("+", "-"))]
    print(f"steps seen: sound {', '.join(n for n in notes if n.startswith(('+', '-'))) or 'none'}; "
          f"OSC {', '.join(n for n in osc_notes if n.startswith(('+', '-'))) or 'none'}")
    if misses or len(osc_lat) < len(osc_notes):
        print("trials without a measurable step (left out): "
              + "; ".join(misses + [n for n in osc_notes if not n.startswith(("+", "-"))]))
    print(f"took {time.monotonic() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
