#!/usr/bin/env python3
"""Benchmark of the LED path at 50,000 LEDs / 300 Art-Net universes, 60 fps, to loopback receivers.

    python bench/bench_leds.py [--venue hardware/large-venue.toml] [--frames 240] [--fps 60]

Prints per frame: sample ms (GPU dispatch: sampling, gamma, white balance, master + readback),
colour-pipeline ms (power limit, safety, dithering, packing), send ms on the frame thread
(hand-off to the outputs), encode+send ms measured on the outputs' own threads (wall and
thread CPU), and packets/s -- once without a safety hook and once with the photosensitive
flash limiter the engine always installs; beside it, in the same run:
  (a) a bare `sendto` loop of the same prebuilt packets (the floor for the network part), alone,
  (a') and the same loop standing in for the outputs while the frame loop runs (like for like);
  (b) the pipeline a user would write by hand: full-frame readback (texture.read()), numpy
      fancy indexing at the nearest texel, a numpy gamma table, and stupidArtnet per universe.
and the ratios.  Needs `pip install stupidArtnet` for (b) (skipped with a note otherwise).
The receivers run in a separate process, one UDP socket per controller (as on a network).
The machine's load average is printed: medians on a busy 2-core machine are mostly other work.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
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


def _drain(ports_out, count, stop) -> None:
    """The receiver process: one socket per controller, report the ports, count packets until told to stop."""
    import selectors
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(len(ports_out)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
        socks.append(sock)
        ports_out[i] = sock.getsockname()[1]
    buf = bytearray(2048)
    n = 0
    while not stop.is_set():
        for key, _ in sel.select(0.2):
            sock = key.fileobj
            while True:
                try:
                    sock.recv_into(buf)
                except BlockingIOError:
                    break
                n += 1
            count.value = n
    for sock in socks:
        sock.close()


class Sink:
    """Loopback UDP receivers, one per controller, in their own process (count packets; contents ignored).

    A process, not a thread: the real receivers are LED controllers on the network, so their
    work must not compete with the frame thread for this process's GIL (a receiver thread
    taking ~18,000 packets/s would, and would weigh on every pipeline measured here).  One
    socket per controller, as on a real network: ten senders into one socket would contend on
    its receive queue, which no venue does.
    """

    def __init__(self, n: int):
        mp = multiprocessing.get_context("spawn")
        self._ports = mp.Array("i", n, lock=False)
        self._count = mp.Value("q", 0, lock=False)
        self._stop = mp.Event()
        self.proc = mp.Process(target=_drain, args=(self._ports, self._count, self._stop), daemon=True)
        self.proc.start()
        end = time.monotonic() + 10
        while not all(self._ports) and time.monotonic() < end:
            time.sleep(0.01)
        if not all(self._ports):
            raise RuntimeError("receiver process did not start")
        self.ports = list(self._ports)

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

    def __init__(self, ctx, venue, texs, fps, sink, safety: bool = False, bare: bool = False):
        port = {c.name: p for c, p in zip(venue.patch.controllers, sink.ports)}
        outs_cfg = [dataclasses.replace(o, port=port[o.name], fps=float(fps) * 2) for o in venue.outputs]
        self.venue = dataclasses.replace(venue, outputs=tuple(outs_cfg))
        self.bare = BareAll(self.venue, sink) if bare else None
        self.outputs = [self.bare] if bare else build_outputs(self.venue)
        self.acc = []
        for o in ([] if bare else self.outputs):
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
        if bare:  # one stand-in for every controller
            self.leds._handoff.slices = [slice(None)]
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
        if self.bare is not None:
            self.acc = [[self.bare.wall_s, self.bare.cpu_s]]
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
        if self.bare is not None:
            self.acc = [[self.bare.wall_s, self.bare.cpu_s]]
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


def prebuilt_packets(venue, sink) -> list[tuple[bytes, tuple[str, int]]]:
    """One ArtDmx packet per universe of the venue, built once (data zero), with its controller's address."""
    from installation.outputs.artnet import artdmx_header
    pkts = []
    for c, port in zip(venue.patch.controllers, sink.ports):
        for addr, off, n in c.spans:
            n2 = n + (n & 1)
            pkts.append((artdmx_header(addr, n2, 1) + bytes(n2), ("127.0.0.1", port)))
    return pkts


class BareAll:
    """(a') The floor in the frame loop's own conditions: stands in for all the outputs on the hand-off
    thread and sends the prebuilt packets with a plain sendto loop (no encoding, no sender threads)."""

    name = "bare"

    def __init__(self, venue, sink):
        self.pkts = prebuilt_packets(venue, sink)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.frames = self.packets = 0
        self.cpu_s = self.wall_s = 0.0

    def send(self, buf) -> None:
        t, c = time.perf_counter(), time.thread_time()
        sendto = self.sock.sendto
        for p, dest in self.pkts:
            sendto(p, dest)
        self.cpu_s += time.thread_time() - c
        self.wall_s += time.perf_counter() - t
        self.frames += 1
        self.packets += len(self.pkts)

    def status(self) -> dict:
        return {"frames": self.frames, "packets": self.packets}

    def close(self, final=None) -> None:
        self.sock.close()


def bare_sendto(venue, frames, sink):
    """(a) The same number of prebuilt ArtDmx packets per frame through a plain sendto loop, alone."""
    pkts = prebuilt_packets(venue, sink)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    times, cpu = [], []
    for _ in range(frames):
        t, c = time.perf_counter(), time.thread_time()
        for p, dest in pkts:
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
        for base, c, port in zip(pm.base, pm.controllers, sink.ports):
            for addr, off, n in c.spans:
                n2 = n + (n & 1)
                self.senders.append((StupidArtnet("127.0.0.1", addr, n2, fps, port=port), base + off, n2))
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
    sink = Sink(len(venue.patch.controllers))
    nuni = sum(len(c.spans) for c in venue.patch.controllers)
    print(f"{venue.layout.count} LEDs, {len(venue.patch.controllers)} controllers, {nuni} universes, "
          f"texture {W}x{H}, {a.frames} frames at {a.fps:g} fps; GL: {ctx.info['GL_RENDERER']}; "
          f"switch interval {sys.getswitchinterval() * 1e3:g} ms; load average {os.getloadavg()[0]:.2f}")
    ours = Ours(ctx, venue, texs, a.fps, sink)
    safe = Ours(ctx, venue, texs, a.fps, sink, safety=True)
    floor = Ours(ctx, venue, texs, a.fps, sink, bare=True)
    try:
        hand = ByHand(venue, texs, a.fps, sink)
    except ImportError:
        hand = None
    # interleave short blocks of all three so a busy machine weighs on them alike
    block = 30
    for k in range(0, a.frames, block):
        ours.run(min(block, a.frames - k))
        safe.run(min(block, a.frames - k))
        floor.run(min(block, a.frames - k))
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
    print(f"(a') the same sendto loop in place of the outputs, on the hand-off thread while the frame loop runs: "
          f"{floor.enc_cpu_ms():.2f} ms thread CPU per frame ({floor.enc_ms():.2f} wall)")
    print(f"    outputs' encode+send / bare in the same conditions: {ours.enc_cpu_ms() / floor.enc_cpu_ms():.2f}x "
          f"thread CPU")
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
    floor.close()
    ours.close()
    sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
