#!/usr/bin/env python3
"""Benchmark of the LED path at 50,000 LEDs / 300 Art-Net universes, 60 fps, to loopback receivers.

    python bench/bench_leds.py [--venue hardware/large-venue.toml] [--frames 240] [--fps 60]

Prints per frame: sample ms (GPU dispatch + readback), colour-pipeline ms, send ms on the
frame thread (hand-off to the outputs), encode+send ms measured on the outputs' own threads,
and packets/s; beside it, in the same run:
  (a) a bare `sendto` loop of the same prebuilt packets (the floor for the network part);
  (b) the pipeline a user would write by hand: full-frame readback (texture.read()), numpy
      fancy indexing at the nearest texel, a numpy gamma table, and stupidArtnet per universe.
and the ratios.  Needs `pip install stupidArtnet` for (b) (skipped with a note otherwise).
"""

from __future__ import annotations

import argparse
import dataclasses
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


class Sink:
    """A loopback UDP receiver drained by a thread (counts packets; contents ignored)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets = 0
        self.stop = False
        self.buf = bytearray(2048)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                self.sock.recv_into(self.buf)
                self.packets += 1
            except socket.timeout:
                pass

    def close(self):
        self.stop = True
        self.thread.join(1)
        self.sock.close()


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
    """The show's LED path: LedSampler + ColorPipeline + outputs (encode/transmit timed on their threads)."""

    def __init__(self, ctx, venue, texs, fps, sink):
        outs_cfg = [dataclasses.replace(o, port=sink.port, fps=float(fps) * 2) for o in venue.outputs]
        self.venue = dataclasses.replace(venue, outputs=tuple(outs_cfg))
        self.outputs = build_outputs(self.venue)
        self.acc = []
        for o in self.outputs:
            a = [0.0]
            self.acc.append(a)
            for name in ("_encode", "_transmit"):
                fn = getattr(o, name)

                def timed(*args, _fn=fn, _a=a):
                    t = time.perf_counter()
                    try:
                        return _fn(*args)
                    finally:
                        _a[0] += time.perf_counter() - t
                setattr(o, name, timed)
        self.leds = LedPipeline(ctx, self.venue, ParamTree.from_specs(PARAMS), outputs=self.outputs)
        self.texs, self.fps, self.sink = texs, fps, sink
        for i in range(10):  # warm up (compile, first packets)
            self.leds.process(texs[i % len(texs)])
        time.sleep(0.3)
        self.r = dict(sample=[], color=[], send=[], total=[], enc_s=0.0, frames_sent=0, packets=0, received=0,
                      elapsed=0.0)

    def run(self, frames: int) -> None:
        leds, outputs, r = self.leds, self.outputs, self.r
        enc0 = sum(a[0] for a in self.acc)
        f0 = sum(o.status()["frames"] for o in outputs)
        p0, r0 = sum(o.status()["packets"] for o in outputs), self.sink.packets
        period = 1.0 / self.fps
        t_next = t_start = time.perf_counter()
        for i in range(frames):
            tex = self.texs[i % len(self.texs)]
            t0 = time.perf_counter()
            cols = leds.sampler.sample(tex)
            t1 = time.perf_counter()
            buf = leds.color.process(cols)
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
        r["frames_sent"] += (sum(o.status()["frames"] for o in outputs) - f0) / len(outputs)
        r["packets"] += sum(o.status()["packets"] for o in outputs) - p0
        r["received"] += self.sink.packets - r0

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
    times = []
    for _ in range(frames):
        t = time.perf_counter()
        for p in pkts:
            s.sendto(p, dest)
        times.append((time.perf_counter() - t) * 1e3)
        time.sleep(0.002)
    s.close()
    return dict(total=times, packets=len(pkts))


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
    try:
        hand = ByHand(venue, texs, a.fps, sink)
    except ImportError:
        hand = None
    # interleave short blocks of both so a busy machine weighs on both alike
    block = 30
    for k in range(0, a.frames, block):
        ours.run(min(block, a.frames - k))
        if hand is not None:
            hand.run(min(block, a.frames - k))
    r = ours.r
    print("\nTapestry LED path (ms per frame, min / median / p95):")
    print(f"  sample (dispatch + readback)  {trio(r['sample'])}")
    print(f"  colour pipeline               {trio(r['color'])}")
    print(f"  send() on the frame thread    {trio(r['send'])}")
    print(f"  = frame-thread total          {trio(r['total'])}")
    enc_ms = r["enc_s"] * 1e3 / max(r["frames_sent"], 1)
    print(f"  encode+send, outputs' threads {enc_ms:6.2f}   (mean, sum over {len(venue.patch.controllers)} "
          f"outputs, per frame sent)")
    print(f"  packets/s sent {r['packets'] / r['elapsed']:,.0f}   received {r['received'] / r['elapsed']:,.0f}")
    ours_total = med(r["total"])
    ours_cpu = ours_total + enc_ms
    ra = bare_sendto(venue, a.frames, sink)
    print(f"\n(a) bare sendto of the same {ra['packets']} prebuilt packets: {med(ra['total']):6.2f} ms per frame "
          f"(outputs' encode+send / bare = {enc_ms / med(ra['total']):.2f}x)")
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
        hand.close()
    goal = "met" if ours_total <= 3.0 else "NOT met on this machine"
    print(f"\ngoal: LED path <= 3 ms/frame at {venue.layout.count} LEDs on the frame thread: median {ours_total:.2f} ms, "
          f"min {lo(r['total']):.2f} ms ({goal})")
    ours.close()
    sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
