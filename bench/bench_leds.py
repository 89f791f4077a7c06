#!/usr/bin/env python3
"""Benchmark of the LED path at 50,000 LEDs / 300 Art-Net universes, 60 fps, to loopback receivers.

    python bench/bench_leds.py [--venue hardware/large-venue.toml] [--frames 240] [--fps 60]

Prints per frame the whole LED path as the engine runs it, stage by stage (LedPipeline.stages:
correct = GPU dispatch for sampling, gamma, white balance, master + readback, on the frame thread;
then on the pipeline's worker thread: power; quantize; flash (the photosensitive limiter, always
on); pack; send = the slot write), the frame thread's whole share (the process() call), the
same stages all inline on the frame thread (worker=False, as scripts and renders run them),
the encode+send ms measured on the outputs' own threads (wall and thread CPU), and
packets/s -- on content moving at the piece's pace (nothing to limit: the usual case), and on a
worst case (every LED swinging fully at 7.5 Hz, so the limiter acts on every frame); beside
them, in the same run:
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
from installation.leds import LedFrame, LedPipeline, _build_outputs  # noqa: E402  (the pipeline's own outputs, to time them)
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
    """``n`` phases of moving smooth patterns (uploaded before timing; the engine renders these on the GPU).
    Played one per frame: 8 phases make every LED swing fully at 7.5 Hz at 60 fps (a strobe), 240 a
    4 s cycle (the piece's pace)."""
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
    """The show's LED path: LedPipeline (every stage, flash and power limits included) + outputs, each stage
    timed on the frame thread, encode/transmit timed on the outputs' threads (wall and thread CPU)."""

    def __init__(self, ctx, venue, texs, fps, sink, bare: bool = False, worker: bool = False):
        port = {c.name: p for c, p in zip(venue.patch.controllers, sink.ports)}
        outs_cfg = [dataclasses.replace(o, port=port[o.name], fps=float(fps) * 2) for o in venue.outputs]
        self.venue = dataclasses.replace(venue, outputs=tuple(outs_cfg))
        self.bare = BareAll(self.venue, sink) if bare else None
        self.outputs = [self.bare] if bare else _build_outputs(self.venue)
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
        self.worker = worker
        self.leds = LedPipeline(ctx, self.venue, ParamTree.from_specs(PARAMS), fps=fps, outputs=self.outputs,
                                worker=worker)
        if bare:  # one stand-in for every controller
            self.leds._handoff.slices = [slice(None)]
        self.leds.prepare((W, H))
        self.texs, self.fps, self.sink = texs, fps, sink
        for i in range(10):  # warm up (compile, first packets)
            self.leds.process(texs[i % len(texs)], 1.0 / fps)
        time.sleep(0.3)
        self.r = dict(total=[], enc_s=0.0, enc_cpu_s=0.0, frames_sent=0, packets=0, worker_total=[],
                      received=0, elapsed=0.0, handoff_s=0.0, handed=0, done=0,
                      **{st.name: [] for st in self.leds.stages})
        self.k = 10
        if worker:   # time each stage where it runs: correct on the frame thread, the rest on the worker
            self.leds.stages = tuple(self._timed(st) for st in self.leds.stages)

    def _timed(self, stage):
        r = self.r

        def run(f, _st=stage):
            t = time.perf_counter()
            _st(f)
            ms = (time.perf_counter() - t) * 1e3
            r[_st.name].append(ms)
            if _st.name != "correct":
                if _st.name == "power":
                    r["worker_total"].append(0.0)
                r["worker_total"][-1] += ms
        run.name = stage.name
        return run

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
        stages = leds.stages
        d0 = leds.status()["worker"]["done"] if self.worker else 0
        t_next = t_start = time.perf_counter()
        for _ in range(frames):
            tex = self.texs[self.k % len(self.texs)]
            self.k += 1
            if self.worker:   # as the engine calls it: the frame thread's whole share is this call
                t0 = time.perf_counter()
                leds.process(tex, period)
                r["total"].append((time.perf_counter() - t0) * 1e3)
                t_next = pace(t_next, period)
                continue
            f = LedFrame(tex, period, leds.color.levels)   # what LedPipeline.process does, stage by stage
            t0 = t = time.perf_counter()
            for st in stages:
                st(f)
                t1 = time.perf_counter()
                r[st.name].append((t1 - t) * 1e3)
                t = t1
            r["total"].append((t - t0) * 1e3)
            t_next = pace(t_next, period)
        time.sleep(0.1)  # let the output threads finish the last frame
        r["elapsed"] += time.perf_counter() - t_start
        if self.worker:
            r["done"] += leds.status()["worker"]["done"] - d0
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
        for st in self.leds.stages:
            where = ("frame thread" if st.name == "correct" else "worker") if self.worker else ""
            print(f"  {st.name:<16}{where:<14}{trio(r[st.name])}")
        if self.worker:
            print(f"  = worker total                {trio(r['worker_total'])}   (off the frame thread; "
                  f"{r['handed'] - r['done']} of {r['handed']} frames replaced by a newer one before it "
                  f"took them: LEDs at {self.fps * r['done'] / max(r['handed'], 1):.0f} of {self.fps:g} fps)")
            print(f"  = frame-thread total          {trio(r['total'])}   (process(): GPU pass + hand-off)")
        else:
            print(f"  = frame-thread total          {trio(r['total'])}")
        print(f"  frames the flash limiter changed: {self.leds.flash_limiter.frames_limited}")
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
        self.leds.release()


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


def engine_ab(venue, rounds: int, frames: int) -> None:
    """Whole live frames (engine at this GL's live defaults + the venue's LEDs, paced at 60 fps on a
    real-time clock as run.py runs), CPU stages on the worker vs inline, alternating rounds in one
    process: the frame rate the show keeps and the frame thread's time per frame."""
    from installation.app import live_defaults
    from installation.clock import RealtimeClock
    from installation.engine import Engine, EngineOptions, declare_all
    ctx = headless_context()
    size, every = live_defaults(ctx)
    runs = {}
    for worker in (True, False):
        eng = Engine(ctx, EngineOptions(size=size, particles=262_144), tree=declare_all())
        eng.params.set_base("field/sim_every", every)
        # outputs=[]: every stage runs, nothing is sent (the network part is measured above)
        eng.attach_leds(LedPipeline(ctx, venue, eng.params, fps=60, outputs=[], worker=worker), fps=60)
        for _ in range(20):
            eng.frame(1 / 60)
        runs[worker] = eng
    res = {True: [], False: []}
    fps = {True: [], False: []}
    for _ in range(rounds):
        for worker, eng in runs.items():
            clock = RealtimeClock(60)
            t0 = time.perf_counter()
            for _ in range(frames):
                t = time.perf_counter()
                eng.frame(clock.next_frame())
                res[worker].append((time.perf_counter() - t) * 1e3)
            fps[worker].append(frames / (time.perf_counter() - t0))
    print(f"\nengine + {venue.layout.count} LEDs, {size[0]}x{size[1]}, 262,144 particles, sim_every {every}, "
          f"paced at 60 fps, {rounds} alternating rounds of {frames} frames:")
    for worker in (True, False):
        print(f"  {'CPU stages on the worker' if worker else 'every stage inline      '}  frame ms "
              f"{trio(res[worker])}   fps {statistics.mean(fps[worker]):5.1f}")
        st = runs[worker].leds.status()
        if worker:
            print(f"    worker: {st['worker']['done']} frames done, {st['worker']['dropped']} replaced")
    print(f"  frame ms median, worker / inline: {med(res[True]) / med(res[False]):.2f}x")
    for eng in runs.values():
        eng.close()
        eng.release()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venue", default=str(ROOT / "hardware" / "large-venue.toml"))
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--switch-interval", type=float, default=None,
                    help="sys.setswitchinterval seconds (Python's default 0.005): how long another thread may "
                         "hold the GIL before the frame thread gets it back")
    ap.add_argument("--engine", action="store_true",
                    help="only the whole live frame (engine + LEDs) with the CPU stages on the worker vs inline")
    a = ap.parse_args()
    if a.engine:
        engine_ab(load_venue(a.venue), rounds=4, frames=150)
        return 0
    if a.switch_interval:
        sys.setswitchinterval(a.switch_interval)
    venue = load_venue(a.venue)
    ctx = headless_context()
    slow_texs = textures(ctx, 240)
    strobe_texs = textures(ctx, 8)
    sink = Sink(len(venue.patch.controllers))
    nuni = sum(len(c.spans) for c in venue.patch.controllers)
    print(f"{venue.layout.count} LEDs, {len(venue.patch.controllers)} controllers, {nuni} universes, "
          f"texture {W}x{H}, {a.frames} frames at {a.fps:g} fps; GL: {ctx.info['GL_RENDERER']}; "
          f"switch interval {sys.getswitchinterval() * 1e3:g} ms; load average {os.getloadavg()[0]:.2f}")
    ours = Ours(ctx, venue, slow_texs, a.fps, sink, worker=True)
    worst = Ours(ctx, venue, strobe_texs, a.fps, sink, worker=True)
    inline = Ours(ctx, venue, slow_texs, a.fps, sink)
    worst_inline = Ours(ctx, venue, strobe_texs, a.fps, sink)
    floor = Ours(ctx, venue, slow_texs, a.fps, sink, bare=True)
    try:
        hand = ByHand(venue, slow_texs, a.fps, sink)
    except ImportError:
        hand = None
    # interleave short blocks of all of them so a busy machine weighs on them alike
    block = 30
    for k in range(0, a.frames, block):
        n = min(block, a.frames - k)
        ours.run(n)
        worst.run(n)
        inline.run(n)
        worst_inline.run(n)
        floor.run(n)
        if hand is not None:
            hand.run(n)
    r = ours.r
    ours.report("Tapestry LED path as the engine runs it, content at the piece's pace")
    worst.report("The same on a worst case: every LED swinging fully at 7.5 Hz (the flash limiter acts every frame)")
    inline.report("Every stage inline on the frame thread (worker=False: scripts, renders), piece's pace")
    worst_inline.report("Every stage inline, worst case")
    ours_total = med(r["total"])
    print(f"\nframe thread, worker / inline, median: {ours_total / med(inline.r['total']):.2f}x at the piece's pace, "
          f"{med(worst.r['total']) / med(worst_inline.r['total']):.2f}x on the worst case")
    ours_cpu = ours_total + med(r["worker_total"]) + ours.enc_cpu_ms()
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
        print(f"\n(b) by hand (texture.read + fancy indexing + gamma table + stupidArtnet x {len(hand.senders)}; "
              f"no power or flash limit): {trio(rb['total'])} ms per frame (readback alone {med(rb['readback']):.2f}); "
              f"received {rb['received'] / rb['elapsed']:,.0f} packets/s")
        print(f"    end to end on the frame thread, median: by hand / Tapestry = {hb / ours_total:.2f}x"
              f"   (min: {lo(rb['total']) / lo(r['total']):.2f}x)")
        print(f"    all CPU incl. worker and output threads, median: by hand / Tapestry = {hb / ours_cpu:.2f}x")
        print(f"    inline path on the frame thread, median: by hand / Tapestry inline = "
              f"{hb / med(inline.r['total']):.2f}x")
        print(f"    worst case (limiter acting), median:    by hand / Tapestry = {hb / med(worst.r['total']):.2f}x")
        hand.close()
    goal = "met" if ours_total <= 3.0 else "NOT met on this machine now"
    print(f"\ngoal: whole LED path (flash and power limits included) <= 3 ms/frame at {venue.layout.count} LEDs on the "
          f"frame thread: median {ours_total:.2f} ms, min {lo(r['total']):.2f} ms ({goal}); worst case median "
          f"{med(worst.r['total']):.2f} ms, min {lo(worst.r['total']):.2f} ms")
    worst.close()
    inline.close()
    worst_inline.close()
    floor.close()
    ours.close()
    sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
