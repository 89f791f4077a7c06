#!/usr/bin/env python3
"""Soak benchmark: the whole running piece, unpaced, for a long stretch — does anything grow or stutter?

    python bench/bench_soak.py [--frames 20000] [--size 160x90] [--particles 8192] [--samples 20]

Runs what ``run.py`` runs (minus the window): the engine with the harmony preset and mood
without sensors, the LED pipeline on the demo venue's layouts (strip wall + hanging net: 1,080
LEDs on Art-Net, DDP and sACN) sending to loopback receivers in this process, the flash limiter,
the OSC server (with a client in this process changing the master level a few times a second
and subscribed to feedback), the file watcher on presets/ and shaders/ and the health board.
Frames are stepped at a fixed 1/60 s as fast as the machine goes.

Prints a table at ``--samples`` points: frames, RSS (VmRSS), Python objects (gc), and the frame
time percentiles over the interval; then the summary against the goals:
  - RSS growth per 10k frames (least-squares slope after the warm-up) ~ 0
  - Python object growth per 10k frames ~ 0
  - p99 / median frame time < 2
The defaults take about 2-3 minutes on a 2-core CPU-only machine (llvmpipe).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from installation.app import _sensing_params, parse_size  # noqa: E402
from installation.clock import FixedStepClock  # noqa: E402
from installation.control.osc import OscConfig, OscServer  # noqa: E402
from installation.engine import Engine, EngineOptions, declare_all  # noqa: E402
from installation.gfx.context import headless_context  # noqa: E402
from installation.health import HealthBoard  # noqa: E402
from installation.leds import LedPipeline  # noqa: E402
from installation.venue import load_venue  # noqa: E402
from installation.watch import FileWatcher  # noqa: E402

WARMUP = 500  # frames before measuring: shader compiles, first allocations, caches


class Drain:
    """A loopback UDP receiver that counts datagrams and lit (non-zero data) datagrams."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.packets = self.lit = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                raw = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.packets += 1
            if raw[:8] == b"Art-Net\x00":
                data = raw[18:]
            elif raw[4:13] == b"ASC-E1.17":
                data = raw[126:]
            else:  # DDP
                data = raw[10:]
            self.lit += any(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        self.sock.close()


def drain_child() -> int:
    """``--drain``: receivers in their own process (so they do not take the piece's GIL); prints the
    ports as one JSON line, then the counts when stdin closes."""
    drains = {name: Drain() for name in OUTPUTS}
    print(json.dumps({k: d.port for k, d in drains.items()}), flush=True)
    sys.stdin.read()
    time.sleep(0.2)
    print(json.dumps({k: [d.packets, d.lit] for k, d in drains.items()}), flush=True)
    for d in drains.values():
        d.close()
    return 0


OUTPUTS = ("wall", "net-wled", "rim-node")


class GcTimer:
    """Time spent in the cyclic garbage collector (gc.callbacks), per generation."""

    def __init__(self) -> None:
        self.ms = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self.current_ms = 0.0  # collector time inside the frame being measured
        self._t0 = 0.0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            dt = (time.perf_counter() - self._t0) * 1e3
            g = info.get("generation", 0)
            self.ms[g] += dt
            self.count[g] += 1
            self.current_ms += dt

    def close(self) -> None:
        gc.callbacks.remove(self)


def soak_venue(folder: Path, ports: dict[str, int]) -> Path:
    """The demo venue (same layouts, power and LED limits) with each output at a loopback receiver."""
    text = (ROOT / "hardware" / "demo-venue.toml").read_text()
    hw = ROOT / "hardware"
    text = text.replace('layouts = ["strip-wall.toml", "hanging-net.toml"]',
                        f'layouts = ["{hw / "strip-wall.toml"}", "{hw / "hanging-net.toml"}"]')
    out, rest = [], text
    for name in ("wall", "net-wled", "rim-node"):
        head, sep, rest = rest.partition('host = "127.0.0.1"')
        out.append(head + sep + f"\nport = {ports[name]}")
    path = folder / "soak-venue.toml"
    path.write_text("".join(out) + rest)
    return path


def rss_mb() -> float:
    """Resident set size now (VmRSS), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def slope_per_10k(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y over x, per 10,000 of x."""
    if len(x) < 2 or np.ptp(x) == 0:
        return 0.0
    return float(np.polyfit(x, y, 1)[0] * 10000.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=20000, help="frames after a warm-up of %d" % WARMUP)
    ap.add_argument("--size", default="160x90", help="internal tapestry WIDTHxHEIGHT")
    ap.add_argument("--particles", type=int, default=8192)
    ap.add_argument("--samples", type=int, default=20, help="rows of the table (memory/object samples)")
    ap.add_argument("--preset", default="harmony")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also trace Python allocations and print the sites that grew most (slower)")
    ap.add_argument("--drain", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.drain:
        return drain_child()
    frames = max(args.samples, args.frames)

    child = subprocess.Popen([sys.executable, __file__, "--drain"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    ports = json.loads(child.stdout.readline())
    tmp = tempfile.TemporaryDirectory(prefix="tapestry-soak-")
    venue = load_venue(soak_venue(Path(tmp.name), ports))
    ctx = headless_context()
    tree = declare_all(extra=_sensing_params())
    engine = Engine(ctx, EngineOptions(size=parse_size(args.size), preset=args.preset, particles=args.particles),
                    tree=tree)
    engine.attach_leds(LedPipeline(ctx, venue, tree), fps=60)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    osc_port = probe.getsockname()[1]
    probe.close()
    osc = OscServer(tree, engine.commands, OscConfig(port=osc_port)).start()
    tree.listen(osc.publish_change)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(0.0)
    from pythonosc.osc_message_builder import OscMessageBuilder

    def osc_msg(address: str, *values) -> bytes:
        b = OscMessageBuilder(address=address)
        for v in values:
            b.add_arg(v)
        return b.build().dgram

    watcher = FileWatcher([engine.options.presets, engine.options.shaders], engine.commands,
                          suffixes=(".toml", ".glsl"))
    watcher.start()
    board = HealthBoard()
    clock = FixedStepClock(60.0)

    total = WARMUP + frames
    every = max(1, frames // args.samples)
    # Filled now, not as frames go: untouched zero pages would enter RSS one by one during the run
    # and read as 16 bytes a frame of growth (the first long soaks measured exactly that).
    ms = np.full(total, np.nan)
    gc_ms = np.full(total, 0.0)
    gct = GcTimer()
    rows = []  # (frame, seconds, rss, objects)
    ratios = []  # p99/p50 per interval
    replies = 0
    print(f"soak: {frames} frames (+{WARMUP} warm-up) at {args.size}, {engine.field.count:,} particles, "
          f"{venue.layout.count:,} LEDs on {len(venue.patch.controllers)} controllers, OSC on {osc_port}",
          flush=True)
    snap0 = traced = None
    if args.tracemalloc:
        import tracemalloc
        tracemalloc.start(8)
    load0 = os.getloadavg()[0]
    t_start = time.perf_counter()
    try:
        for i in range(total):
            gct.current_ms = 0.0
            t0 = time.perf_counter()
            engine.frame(clock.next_frame())
            ms[i] = (time.perf_counter() - t0) * 1e3
            gc_ms[i] = gct.current_ms
            board.record_frame(ms[i])
            if i % 1000 == 0:  # a surface subscribed to feedback (renewed well within its 60 s lease)
                client.sendto(osc_msg("/tapestry/subscribe"), ("127.0.0.1", osc_port))
            if i % 20 == 0:  # a controller nudging the master level, ~3 messages per second of show time
                client.sendto(osc_msg("/tapestry/show/master", 0.9 + 0.1 * ((i // 20) % 2)), ("127.0.0.1", osc_port))
                try:
                    while True:
                        client.recv(65536)
                        replies += 1
                except (BlockingIOError, socket.timeout):
                    pass
            if i % 60 == 0:
                st = engine.status()
                board.update({**st, "sensors": {}, "live_sensors": st["sensors"]})
                osc.heartbeat(st)
            if i >= WARMUP and (i - WARMUP) % every == 0 or i == total - 1:
                gc.collect()  # outside the timed frame (gct.current_ms is reset before the next)
                if args.tracemalloc and i >= WARMUP + frames // 4 and snap0 is None:
                    snap0 = tracemalloc.take_snapshot()
                rows.append((i - WARMUP, time.perf_counter() - t_start, rss_mb(), len(gc.get_objects())))
        if snap0 is not None:
            traced = tracemalloc.take_snapshot().compare_to(snap0, "traceback")
    finally:
        took = time.perf_counter() - t_start
        watcher.stop()
        osc.stop()
        client.close()
        engine.close()
        engine.release()
        gct.close()
        time.sleep(0.2)
        child.stdin.close()
        counts = json.loads(child.stdout.readline() or "{}")
        child.wait(5)
        tmp.cleanup()

    meas = ms[WARMUP:]
    print(f"\n{'frame':>7} {'t (s)':>7} {'RSS MB':>8} {'objects':>9} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7}")
    for k, (f, t, rss, objs) in enumerate(rows):
        lo = rows[k - 1][0] if k else 0
        seg = meas[lo:f] if f > lo else meas[max(0, f - every):f + 1]
        p50, p95, p99 = np.percentile(seg, [50, 95, 99])
        if len(seg) >= 100:
            ratios.append(p99 / p50)
        print(f"{f:>7} {t:>7.1f} {rss:>8.1f} {objs:>9} {p50:>7.2f} {p95:>7.2f} {p99:>7.2f} {seg.max():>7.2f}")

    f = np.array([r[0] for r in rows], float)
    rss = np.array([r[2] for r in rows])
    objs = np.array([r[3] for r in rows], float)
    # the first samples still see one-off growth (allocator arenas, lazily built caches): fit the last 3/4
    tail = slice(len(rows) // 4, None)
    p50, p95, p99 = np.percentile(meas, [50, 95, 99])
    rss_rate = slope_per_10k(f[tail], rss[tail])
    obj_rate = slope_per_10k(f[tail], objs[tail])
    st = engine.status()
    print(f"\nload average (1 min) {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
          f"({os.cpu_count()} CPUs; other processes' load shows as jitter)")
    print(f"ran {total} frames in {took:.1f} s ({total / took:.0f} fps unpaced); engine errors: "
          f"{len(st['errors'])}; OSC replies/feedback datagrams: {replies}")
    print("receivers (another process): " + ", ".join(f"{k} {n} packets ({lit} lit)" for k, (n, lit) in counts.items()))
    gm = gc_ms[WARMUP:]
    with_gc = gm > 0
    print(f"gc        collections gen0/1/2 {gct.count[0]}/{gct.count[1]}/{gct.count[2]}, "
          f"{sum(gct.ms):.0f} ms in all; in timed frames: {int(with_gc.sum())} frames, "
          f"mean {gm[with_gc].mean() if with_gc.any() else 0:.2f} ms, max {gm.max():.2f} ms")
    slow = meas > p99
    print(f"slowest 1% ({int(slow.sum())} frames > p99): {int((slow & with_gc).sum())} of them had a gc pass; "
          f"p99 without gc time {np.percentile(meas - gm, 99):.2f} ms")
    print(f"RSS       {rss[0]:.1f} -> {rss[-1]:.1f} MB (+{rss[-1] - rss[0]:.2f}); slope "
          f"{rss_rate:+.3f} MB / 10k frames (last 3/4)   goal ~0")
    print(f"objects   {int(objs[0])} -> {int(objs[-1])} ({int(objs[-1] - objs[0]):+d}); slope "
          f"{obj_rate:+.1f} / 10k frames (last 3/4)   goal ~0")
    print(f"frame ms  p50 {p50:.2f}  p95 {p95:.2f}  p99 {p99:.2f}  max {meas.max():.2f}  "
          f"p99/median {p99 / p50:.2f}   goal < 2")
    if ratios:
        print(f"          p99/median per interval: best {min(ratios):.2f}, median {np.median(ratios):.2f}, "
              f"worst {max(ratios):.2f} (the best interval is the piece with the least outside interference)")
    if traced:
        grew = sum(d.size_diff for d in traced)
        print(f"\ntracemalloc: Python allocations {grew / 1e6:+.3f} MB over the last 3/4; sites that grew most:")
        for d in traced[:8]:
            print(f"  {d.size_diff / 1e3:+9.1f} kB {d.count_diff:+6d} blocks  " +
                  " <- ".join(f"{Path(fr.filename).name}:{fr.lineno}" for fr in list(d.traceback)[:4]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
