#!/usr/bin/env python3
"""Benchmark of the LED path at 50,000 LEDs / 300 Art-Net universes, 60 fps, to loopback receivers.

    python bench/bench_leds.py [--venue hardware/large-venue.toml] [--frames 240] [--fps 60]

Prints per frame: sample ms (GPU dispatch: sampling, gamma, white balance, master + readback),
colour-pipeline ms (power limit, safety, dithering, packing), send ms on the frame thread
(hand-off to the outputs), encode+send ms measured on the outputs' own threads (wall and
thread CPU), and packets/s -- once without a safety hook and once with the photosensitive
flash limiter the engine always installs; beside it, in the same run:
  (a) a bare `sendto` loop of the same prebuilt packets (the floor for the network part);
  (b) the pipeline a user would write by hand: full-frame readback (texture.read()), numpy
      fancy indexing at the nearest texel, a numpy gamma table, and stupidArtnet per universe.
and the ratios.  Needs `pip install stupidArtnet` for (b) (skipped with a note otherwise).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from installation.color import PARAMS  # noqa: E402
from installation.gfx.context import headless_context  # noqa: E402
from installation.leds import LedPipeline, build_outputs  # noqa: E402
from installation.params import ParamTree  # noqa: E402
from installation.venue import load_venue  # noqa: E402

W, H = 640, 360


def _drain(port_out, count, stop) -> None:
    """The receiver process: bind, report the port, count packets until told to stop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    port_out.value = sock.getsockname()[1]
    buf = bytearray(2048)
    n = 0
    while not stop.is_set():
        try:
            sock.recv_into(buf)
            n += 1
            count.value = n
        except socket.timeout:
            pass
    sock.close()


class Sink:
    """A loopback UDP receiver in its own process (counts packets; contents ignored).

    A process, not a thread: the real receivers are LED controllers on the network, so their
    work must not compete with the frame thread for this process's GIL (a receiver thread
    taking ~18,000 packets/s would, and would weigh on every pipeline measured here).
    """

    def __init__(self):
        mp = multiprocessing.get_context("spawn")
        self._port = mp.Value("i", 0, lock=False)
        self._count = mp.Value("q", 0, lock=False)
        self._stop = mp.Event()
        self.proc = mp.Process(target=_drain, args=(self._port, self._count, self._stop), daemon=True)
        self.proc.start()
        end = time.monotonic() + 10
        while not self._port.value and time.monotonic() < end:
            time.sleep(0.01)
        if not self._port.value:
            raise RuntimeError("receiver process did not start")
        self.port = self._port.value

    @property
    def packets(self) -> int:
        return self._count.value

    def close(self):
        self._stop.set()
        self.proc.join(2)


def textures(ctx, n: int = 8):
    """A few moving smooth patterns (uploaded before timing; the engine renders these on the GPU)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = []
    for k in range(n):
        ph = k / n * 2 * np.pi
        img = np.zeros((H, W, 4), np.uint8)
        img[..., 0] = (127.5 + 127.5 * np.sin(xx / 37.0 + ph)).astype(np.uint8)
        img[..., 1] = (127.5 + 127.5 * np.sin(yy / 23.0 - ph)).astype(np.uint8)
        img[..., 2] = (127.5 + 127.5 * np.sin((xx + yy) / 51.0 + 2 * ph)).astype(np.uint8)
        img[..., 3] = 255
        out.append(ctx.texture((W, H), 4, img.tobytes()))
    return out


def pace(t_next: float, period: float) -> float:
    delay = t_next - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    return max(t_next + period, time.perf_counter())


def lo(xs):
    return min(xs) if xs else float("nan")


def trio(xs):
    """min / median / p95: the minimum is the cost without interference from other processes."""
    return f"{lo(xs):6.2f} / {med(xs):6.2f} / {p95(xs):6.2f}"


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def p95(xs):
    return float(np.percentile(xs, 95)) if xs else float("nan")


class Ours:
    """The show's LED path: LedPipeline (sampler + colour pipeline) + outputs, encode/transmit timed on
    the outputs' threads (wall and thread CPU time).  ``safety``: install the photosensitive flash
    limiter the engine always installs (installation.engine.Engine.attach_leds)."""

    def __init__(self, ctx, venue, texs, fps, sink, safety: bool = False):
        outs_cfg = [dataclasses.replace(o, port=sink.port, fps=float(fps) * 2) for o in venue.outputs]
        self.venue = dataclasses.replace(venue, outputs=tuple(outs_cfg))
        self.outputs = build_outputs(self.venue)
        self.acc = []
        for o in self.outputs:
            a = [0.0, 0.0]  # wall, thread CPU
            self.acc.append(a)
            for name in ("_encode", "_transmit"):
                fn = getattr(o, name)

                def timed(*args, _fn=fn, _a=a):
                    t, c = time.perf_counter(), time.thread_time()
                    try:
                        return _fn(*args)
                    finally:
                        _a[0] += time.perf_counter() - t
                        _a[1] += time.thread_time() - c
                setattr(o, name, timed)
        self.leds = LedPipeline(ctx, self.venue, ParamTree.from_specs(PARAMS), outputs=self.outputs)
        if safety:
            from installation.safety import FlashLimiter
            n = self.leds.layout.count
            limiter = FlashLimiter(np.full(n, 1.0 / n), fps)
            self.leds.safety = lambda rgb: limiter.limit(rgb, 1.0 / fps)
        self.texs, self.fps, self.sink = texs, fps, sink
        for i in range(10):  # warm up (compile, first packets)
            self.leds.process(texs[i % len(texs)])
        time.sleep(0.3)
        self.r = dict(sample=[], color=[], send=[], total=[], enc_s=0.0, enc_cpu_s=0.0, frames_sent=0, packets=0,
                      received=0, elapsed=0.0, handoff_s=0.0, handed=0)

    def run(self, frames: int) -> None:
        leds, outputs, r = self.leds, self.outputs, self.r
        enc0 = sum(a[0] for a in self.acc)
        cpu0 = sum(a[1] for a in self.acc)
        h0 = leds._handoff.busy_s
        f0 = sum(o.status()["frames"] for o in outputs)
        p0, r0 = sum(o.status()["packets"] for o in outputs), self.sink.packets
        period = 1.0 / self.fps
        t_next = t_start = time.perf_counter()
        for i in range(frames):
            tex = self.texs[i % len(self.texs)]
            t0 = time.perf_counter()
            leds.sample(tex)
            t1 = time.perf_counter()
            buf = leds.color.process_levels()
            t2 = time.perf_counter()
            leds.send(buf)
            t3 = time.perf_counter()
            r["sample"].append((t1 - t0) * 1e3)
            r["color"].append((t2 - t1) * 1e3)
            r["send"].append((t3 - t2) * 1e3)
            r["total"].append((t3 - t0) * 1e3)
            t_next = pace(t_next, period)
        time.sleep(0.1)  # let the output threads finish the last frame
        r["elapsed"] += time.perf_counter() - t_start
        r["enc_s"] += sum(a[0] for a in self.acc) - enc0
        r["enc_cpu_s"] += sum(a[1] for a in self.acc) - cpu0
        r["handoff_s"] += leds._handoff.busy_s - h0
        r["handed"] += frames
        r["frames_sent"] += (sum(o.status()["frames"] for o in outputs) - f0) / len(outputs)
        r["packets"] += sum(o.status()["packets"] for o in outputs) - p0
        r["received"] += self.sink.packets - r0

    def report(self, title: str) -> None:
        r, n_out = self.r, len(self.outputs)
        print(f"\n{title} (ms per frame, min / median / p95):")
        print(f"  sample (dispatch + readback)  {trio(r['sample'])}")
        print(f"  colour pipeline               {trio(r['color'])}")
        print(f"  send() on the frame thread    {trio(r['send'])}   (slot write)")
        print(f"  = frame-thread total          {trio(r['total'])}")
        print(f"  hand-off thread (Output.send x {n_out}) {r['handoff_s'] * 1e3 / max(r['handed'], 1):6.2f} thread CPU "
              f"(mean per frame; off the frame thread)")
        print(f"  encode+send, outputs' threads {self.enc_ms():6.2f} wall, {self.enc_cpu_ms():6.2f} thread CPU   "
              f"(mean, sum over {n_out} outputs, per frame sent)")
        print(f"  packets/s sent {r['packets'] / r['elapsed']:,.0f}   received {r['received'] / r['elapsed']:,.0f}")

    def enc_ms(self) -> float:
        return self.r["enc_s"] * 1e3 / max(self.r["frames_sent"], 1)

    def enc_cpu_ms(self) -> float:
        return self.r["enc_cpu_s"] * 1e3 / max(self.r["frames_sent"], 1)

    def close(self):
        self.leds.close("blackout")


def bare_sendto(venue, frames, sink):
    """(a) The same number of prebuilt ArtDmx packets per frame through a plain sendto loop."""
    from installation.outputs.artnet import artdmx_header
    pkts = []
    for c in venue.patch.controllers:
        for addr, off, n in c.spans:
            n2 = n + (n & 1)
            pkts.append(artdmx_header(addr, n2, 1) + bytes(n2))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = ("127.0.0.1", sink.port)
    times, cpu = [], []
    for _ in range(frames):
        t, c = time.perf_counter(), time.thread_time()
        for p in pkts:
            s.sendto(p, dest)
        cpu.append((time.thread_time() - c) * 1e3)
        times.append((time.perf_counter() - t) * 1e3)
        time.sleep(0.002)
    s.close()
    return dict(total=times, cpu=cpu, packets=len(pkts))


class ByHand:
    """(b) Full readback, nearest-texel fancy indexing, numpy gamma table, stupidArtnet per universe."""

    def __init__(self, venue, texs, fps, sink):
        from stupidArtnet import StupidArtnet
        lay = venue.layout
        self.xi = np.clip((lay.positions[:, 0] * W).astype(np.int64), 0, W - 1)
        self.yi = np.clip((lay.positions[:, 1] * H).astype(np.int64), 0, H - 1)
        self.lut = (255.0 * (np.arange(256) / 255.0) ** 2.2 + 0.5).astype(np.uint8)
        pm = venue.patch
        self.wire = np.zeros(pm.total, np.uint8)  # every pixel's place on the wire, precomputed once
        self.dest = pm.dest[:, :3]
        self.senders = []
        for base, c in zip(pm.base, pm.controllers):
            for addr, off, n in c.spans:
                n2 = n + (n & 1)
                self.senders.append((StupidArtnet("127.0.0.1", addr, n2, fps, port=sink.port), base + off, n2))
        self.texs, self.fps, self.sink = texs, fps, sink
        self.r = dict(total=[], readback=[], received=0, elapsed=0.0)

    def run(self, frames: int) -> None:
        r, wire = self.r, self.wire
        r0 = self.sink.packets
        period = 1.0 / self.fps
        t_next = t_start = time.perf_counter()
        for i in range(frames):
            tex = self.texs[i % len(self.texs)]
            t0 = time.perf_counter()
            img = np.frombuffer(tex.read(), np.uint8).reshape(H, W, 4)
            t1 = time.perf_counter()
            wire[self.dest] = self.lut[img[self.yi, self.xi, :3]]
            for sa, off, n in self.senders:
                sa.set(bytearray(wire[off:off + n].tobytes()))
                sa.show()
            t2 = time.perf_counter()
            r["total"].append((t2 - t0) * 1e3)
            r["readback"].append((t1 - t0) * 1e3)
            t_next = pace(t_next, period)
        time.sleep(0.1)
        r["elapsed"] += time.perf_counter() - t_start
        r["received"] += self.sink.packets - r0

    def close(self):
        for sa, _, _ in self.senders:
            sa.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venue", default=str(ROOT / "hardware" / "large-venue.toml"))
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--switch-interval", type=float, default=None,
                    help="sys.setswitchinterval seconds (Python's default 0.005): how long another thread may "
                         "hold the GIL before the frame thread gets it back")
    a = ap.parse_args()
    if a.switch_interval:
        sys.setswitchinterval(a.switch_interval)
    venue = load_venue(a.venue)
    ctx = headless_context()
    texs = textures(ctx)
    sink = Sink()
    nuni = sum(len(c.spans) for c in venue.patch.controllers)
    print(f"{venue.layout.count} LEDs, {len(venue.patch.controllers)} controllers, {nuni} universes, "
          f"texture {W}x{H}, {a.frames} frames at {a.fps:g} fps; GL: {ctx.info['GL_RENDERER']}; "
          f"switch interval {sys.getswitchinterval() * 1e3:g} ms")
    ours = Ours(ctx, venue, texs, a.fps, sink)
    safe = Ours(ctx, venue, texs, a.fps, sink, safety=True)
    try:
        hand = ByHand(venue, texs, a.fps, sink)
    except ImportError:
        hand = None
    # interleave short blocks of all three so a busy machine weighs on them alike
    block = 30
    for k in range(0, a.frames, block):
        ours.run(min(block, a.frames - k))
        safe.run(min(block, a.frames - k))
        if hand is not None:
            hand.run(min(block, a.frames - k))
    r = ours.r
    ours.report("Tapestry LED path, no safety hook")
    safe.report("Tapestry LED path with the photosensitive flash limiter (as the engine runs it)")
    ours_total = med(r["total"])
    ours_cpu = ours_total + ours.enc_cpu_ms()
    ra = bare_sendto(venue, a.frames, sink)
    print(f"\n(a) bare sendto of the same {ra['packets']} prebuilt packets: {med(ra['total']):6.2f} ms wall, "
          f"{med(ra['cpu']):6.2f} ms thread CPU per frame (median)")
    print(f"    outputs' encode+send / bare: {ours.enc_cpu_ms() / med(ra['cpu']):.2f}x thread CPU, "
          f"{ours.enc_ms() / med(ra['total']):.2f}x wall (wall includes waiting for the GIL and the cores)")
    if hand is None:
        print("\n(b) skipped: pip install stupidArtnet")
    else:
        rb = hand.r
        hb = med(rb["total"])
        print(f"\n(b) by hand (texture.read + fancy indexing + gamma table + stupidArtnet x {len(hand.senders)}): "
              f"{trio(rb['total'])} ms per frame (readback alone {med(rb['readback']):.2f}); "
              f"received {rb['received'] / rb['elapsed']:,.0f} packets/s")
        print(f"    end to end on the frame thread, median: by hand / Tapestry = {hb / ours_total:.2f}x"
              f"   (min: {lo(rb['total']) / lo(r['total']):.2f}x)")
        print(f"    all CPU incl. output threads, median:   by hand / Tapestry = {hb / ours_cpu:.2f}x")
        print(f"    with the flash limiter, median:         by hand / Tapestry = {hb / med(safe.r['total']):.2f}x"
              f"   (min: {lo(rb['total']) / lo(safe.r['total']):.2f}x)")
        hand.close()
    goal = "met" if ours_total <= 3.0 else "NOT met on this machine"
    print(f"\ngoal: LED path <= 3 ms/frame at {venue.layout.count} LEDs on the frame thread: median {ours_total:.2f} ms, "
          f"min {lo(r['total']):.2f} ms ({goal}); with the flash limiter median {med(safe.r['total']):.2f} ms, "
          f"min {lo(safe.r['total']):.2f} ms")
    safe.close()
    ours.close()
    sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
