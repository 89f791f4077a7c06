"""OSC server figures: valid messages accepted per second, and what a junk flood costs a 60 fps frame loop.

    python bench/bench_osc.py [--seconds 3] [--junk-rate 10000] [--rounds 3]

Prints:
1. parse + validate + enqueue rate of ``handle_datagram`` (no socket), messages/s;
2. valid messages/s accepted over loopback UDP from a sender process, with an engine thread draining;
3. a 60 fps numpy work loop that drains the command queue every frame: frame work time (mean, p99) and
   late frames while another process sends JUNK_RATE datagrams/s of junk (malformed, pattern addresses,
   fader storms) to the server, against the same sender aimed at a socket nobody reads (so the sender's own
   CPU use is in both), and the ratio;
4. the time to refuse a pattern address, against python-osc's dispatcher matching it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from installation.control.osc import OscConfig, OscServer  # noqa: E402
from installation.control.wire import encode_bundle, encode_message  # noqa: E402
from installation.params import ParamSpec, ParamTree, floats  # noqa: E402


def make_tree() -> ParamTree:
    specs = floats("field/layer", [(f"p{i:03d}", 0.5, 0.0, 1.0, "", f"parameter {i}") for i in range(200)])
    specs.append(ParamSpec("show/master", "float", 1.0, "Master brightness", 0.0, 1.0))
    specs.append(ParamSpec("show/blackout", "bool", False, "All dark"))
    return ParamTree.from_specs(specs)


class _Target:
    def __init__(self, tree: ParamTree) -> None:
        self.params = tree


def valid_messages(n: int) -> list[bytes]:
    return [encode_message(f"/tapestry/field/layer/p{i % 200:03d}", (i % 1000) / 1000.0) for i in range(n)]


def junk_packets() -> list[bytes]:
    storm = [encode_message(f"/tapestry/field/layer/p{i % 200:03d}", 2.0 + i) for i in range(50)]
    return [b"\x00" * 8, b"/t\xff\x00,\x00\x00\x00", b"#bundle\x00" + bytes(8) + b"\x00\x00\x00\x40",
            encode_message("/**********************Z", 1.0), encode_message("/tapestry/nothing", 1.0),
            encode_message("/tapestry/show/master", float("nan")),
            encode_bundle([encode_message("/x")] * 60, timetag=(2**32 - 1) << 32), b"x" * 3000] + storm


def _blast(addr, seconds: float, rate: float | None, kind: str, counter) -> None:
    """Sender process: valid messages as fast as possible, or junk paced at ``rate`` datagrams/s."""
    packets = valid_messages(2000) if kind == "valid" else junk_packets()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if rate is not None:
            due = int((now - t0) * rate)
            if n >= due:
                time.sleep(0.001)
                continue
            batch = min(due - n, 200)
        else:
            batch = 200
        for _ in range(batch):
            try:
                s.sendto(packets[n % len(packets)], addr)
            except OSError:
                pass
            n += 1
    counter.value = n
    s.close()


def bench_handle(seconds: float) -> float:
    tree = make_tree()
    q: queue.Queue = queue.Queue(maxsize=1024)
    server = OscServer(tree, q, OscConfig(port=0, rate=1e12, burst=1e12))
    msgs = valid_messages(2000)
    target = _Target(tree)
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for m in msgs:
            server.handle_datagram(m, ("127.0.0.1", 5000))
        n += len(msgs)
        while not q.empty():
            q.get_nowait().apply(target)
    return n / (time.perf_counter() - t0)


def bench_udp(seconds: float) -> tuple[float, float, dict]:
    tree = make_tree()
    q: queue.Queue = queue.Queue(maxsize=1024)
    target = _Target(tree)
    server = OscServer(tree, q, OscConfig(port=0, rate=1e12, burst=1e12)).start()
    stop = threading.Event()

    def engine():
        while not stop.is_set():
            try:
                q.get(timeout=0.01).apply(target)
            except queue.Empty:
                pass

    t = threading.Thread(target=engine, daemon=True)
    t.start()
    counter = mp.Value("q", 0)
    before = server.stats()
    p = mp.Process(target=_blast, args=(server.address, seconds, None, "valid", counter))
    t0 = time.perf_counter()
    p.start()
    p.join()
    time.sleep(0.2)  # let the server finish what is in its socket buffer
    elapsed = time.perf_counter() - t0
    after = server.stats()
    stop.set()
    t.join()
    server.stop()
    handled = after["messages"] - before["messages"]
    return handled / elapsed, counter.value / elapsed, after


def frame_loop(q: queue.Queue, target, seconds: float, fps: float = 60.0) -> tuple[list[float], int, int]:
    """A paced frame loop: drain the queue, then a fixed numpy workload; returns per-frame work ms."""
    rng = np.random.default_rng(1)
    img = rng.random((360, 640, 3), dtype=np.float32)  # a frame's worth of colour work at the live size
    lut = np.linspace(0.0, 1.0, 4096, dtype=np.float32) ** 2.2
    period = 1.0 / fps
    work, late, drained = [], 0, 0
    next_t = time.perf_counter()
    end = next_t + seconds
    while next_t < end:
        start = time.perf_counter()
        while True:
            try:
                cmd = q.get_nowait()
            except queue.Empty:
                break
            cmd.apply(target)
            drained += 1
        out = np.clip(img * 0.97 + 0.01, 0.0, 1.0)
        out = lut[(out * 4095).astype(np.int32)]  # gamma LUT
        img = np.roll(out, 1, axis=1) * 0.5 + img * 0.5
        done = time.perf_counter()
        work.append((done - start) * 1000)
        next_t += period
        if done > next_t:
            late += 1
            next_t = done
        else:
            time.sleep(next_t - done)
    return work, late, drained


def _round(q: queue.Queue, target, addr, seconds: float, junk_rate: float) -> tuple[list[float], int, int, int]:
    counter = mp.Value("q", 0)
    p = mp.Process(target=_blast, args=(addr, seconds + 0.5, junk_rate, "junk", counter))
    p.start()
    time.sleep(0.25)
    work, late, drained = frame_loop(q, target, seconds)
    p.join()
    return work, late, drained, counter.value


def bench_frames(seconds: float, junk_rate: float, rounds: int) -> None:
    """Alternate rounds of the frame loop while a sender process sends junk either to a socket nobody reads
    (baseline: the same CPU taken by the sender) or to the server; medians over the rounds."""
    tree = make_tree()
    q: queue.Queue = queue.Queue(maxsize=1024)
    target = _Target(tree)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    server = OscServer(tree, q, OscConfig(port=0)).start()  # the venue defaults: 500/s, burst 200
    quiet, _, _ = frame_loop(q, target, seconds)
    base, flood = [], []
    try:
        s0 = server.stats()
        drained = sent = 0
        for _ in range(rounds):
            w, late, _, _ = _round(q, target, sink.getsockname(), seconds, junk_rate)
            base.append((statistics.mean(w), float(np.percentile(w, 99)), late, len(w)))
            w, late, d, n = _round(q, target, server.address, seconds, junk_rate)
            flood.append((statistics.mean(w), float(np.percentile(w, 99)), late, len(w)))
            drained += d
            sent += n
        s1 = server.stats()
    finally:
        server.stop()
        sink.close()

    def med(rows, i):
        return statistics.median(r[i] for r in rows)

    got = s1["datagrams"] - s0["datagrams"]
    print(f"3. 60 fps numpy loop draining the command queue; frame work time (drain + numpy), "
          f"median of {rounds} rounds of {seconds:g} s:")
    print(f"   no sender at all        : mean {statistics.mean(quiet):.2f} ms, p99 {np.percentile(quiet, 99):.2f} ms")
    for label, rows in (("junk to an unread socket", base), ("junk to the OSC server  ", flood)):
        print(f"   {label}: mean {med(rows, 0):.2f} ms, p99 {med(rows, 1):.2f} ms, "
              f"late frames {sum(r[2] for r in rows)}/{sum(r[3] for r in rows)}")
    print(f"   ratio server/baseline: mean {med(flood, 0) / med(base, 0):.2f}x, p99 {med(flood, 1) / med(base, 1):.2f}x"
          f"  (junk sent {sent / (rounds * (seconds + 0.5)):.0f} datagrams/s; the server read {got} datagrams,"
          f" {drained} commands reached the loop)")
    print("   server counters: " + ", ".join(
        f"{k} {s1[k] - s0[k]}" for k in ("rate_limited", "malformed", "refused", "oversize", "accepted", "coalesced")))


def bench_pattern(stars: int = 12) -> None:
    """A pattern address against our exact lookup and against python-osc 1.10's regex dispatcher (same tree)."""
    from pythonosc.dispatcher import Dispatcher

    address = "/" + "*" * stars + "Z"
    tree = make_tree()
    server = OscServer(tree, queue.Queue(), OscConfig(port=0, rate=1e12, burst=1e12))
    packet = encode_message(address, 1.0)
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        server.handle_datagram(packet, ("127.0.0.1", 5000))
    ours = (time.perf_counter() - t0) / n
    server._out.clear()
    d = Dispatcher()
    for path in tree.paths():
        d.map("/tapestry/" + path, lambda *a: None)
    t0 = time.perf_counter()
    list(d.handlers_for_address(address))
    theirs = time.perf_counter() - t0
    print(f"4. pattern address {address!r} ({len(packet)} bytes): refused in {ours * 1e6:.1f} us here; "
          f"python-osc 1.10 Dispatcher takes {theirs * 1e3:,.0f} ms to match it ({theirs / ours:,.0f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--junk-rate", type=float, default=10000.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rate = bench_handle(args.seconds / 2)
    print(f"1. handle_datagram (parse + validate + enqueue, no socket): {rate:,.0f} messages/s")
    handled, sent, st = bench_udp(args.seconds)
    print(f"2. over loopback UDP from another process: {handled:,.0f} valid messages/s accepted "
          f"(sender offered {sent:,.0f}/s; the rest dropped by the kernel buffer; coalesced {st['coalesced']:,})")
    bench_frames(args.seconds, args.junk_rate, args.rounds)
    bench_pattern()


if __name__ == "__main__":
    main()
