"""OSC server figures: valid messages accepted per second, and what a junk flood costs a 60 fps frame loop.

    python bench/bench_osc.py [--seconds 3] [--junk-rate 10000] [--rounds 3]

Prints:
1. parse + validate + enqueue rate of ``handle_datagram`` (no socket), messages/s;
2. valid messages/s accepted over loopback UDP from a sender process, with an engine thread draining;
3. a 60 fps numpy work loop that drains the command queue every frame: frame work time (mean, p99) and
   late frames while another process sends JUNK_RATE datagrams/s of junk (malformed, pattern addresses,
   fader storms) to the server, against the same sender aimed at a socket nobody reads (so the sender's own
   CPU use is in both), and the ratio;
4. the time to refuse a pattern address, against python-osc's dispatcher matching it;
5. fader flood (issue 15): 20 ``/norm`` faders as separate datagrams at 60 Hz from another process for 1 s
   (1,200 datagrams/s against the default 500/s limit), all ending at 0.25: how many parameters end at 0.25,
   the server's held/merged counters, and the frame loop's work during the flood against no sender;
6. save storm (issue 15): the real Engine (headless GL, 160x90, 4,096 particles) paced at 60 fps while
   ``/tapestry/preset/save`` of one name arrives at 200/s: frames per second and frame time with saves written
   on the save worker (the code as it is) against the same saves written on the frame thread (the old path,
   ``engine.save_preset(name)`` from a command), against no saves — all in one process;
7. reflection (issue 15): bytes back per byte sent for a sender that sends ``/tapestry/list``,
   ``/tapestry/preset/list``-style requests, bad addresses and ``/tapestry/subscribe``, when its address is not
   believed (``trusted = []``, as a forged LAN source is) against a trusted one (what every sender got before).
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


def _faders(addr, seconds: float, counter) -> None:
    """Sender process: 20 faders, one datagram each, 60 times a second; the last round is 0.25 everywhere."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    frames = int(seconds * 60)
    t0 = time.perf_counter()
    n = 0
    for frame in range(frames):
        x = 0.25 if frame == frames - 1 else 0.5 + 0.4 * ((frame % 10) / 10)
        for i in range(20):
            s.sendto(encode_message(f"/tapestry/field/layer/p{i:03d}/norm", x), addr)
            n += 1
        time.sleep(max(0.0, t0 + (frame + 1) / 60 - time.perf_counter()))
    counter.value = n
    s.close()


def bench_fader_flood(seconds: float = 1.0) -> None:
    tree = make_tree()
    q: queue.Queue = queue.Queue(maxsize=1024)
    target = _Target(tree)
    server = OscServer(tree, q, OscConfig(port=0)).start()  # defaults: 500 datagrams/s, burst 200
    try:
        quiet, _, _ = frame_loop(q, target, seconds + 0.5)
        counter = mp.Value("q", 0)
        p = mp.Process(target=_faders, args=(server.address, seconds, counter))
        p.start()
        work, late, drained = frame_loop(q, target, seconds + 0.5)  # the flood, then half a second to settle
        p.join()
        settle, _, _ = frame_loop(q, target, 0.5)
        st = server.stats()
    finally:
        server.stop()
    at_last = sum(1 for i in range(20) if tree.base(f"field/layer/p{i:03d}") == 0.25)
    print(f"5. fader flood: 20 /norm faders at 60 Hz for {seconds:g} s ({counter.value / seconds:,.0f} datagrams/s"
          f" offered, limit 500/s): {at_last}/20 parameters end at 0.25; rate_limited {st['rate_limited']}, "
          f"held {st['held']}, merged while held {st['held_merged']}, dropped {st['held_dropped']}")
    print(f"   frame work during the flood: mean {statistics.mean(work):.2f} ms, p99 {np.percentile(work, 99):.2f} ms"
          f" vs no sender mean {statistics.mean(quiet):.2f} ms, p99 {np.percentile(quiet, 99):.2f} ms "
          f"(ratio {statistics.mean(work) / statistics.mean(quiet):.2f}x, p99 "
          f"{np.percentile(work, 99) / np.percentile(quiet, 99):.2f}x); late frames {late}/{len(work)}")


class _SyncSave:
    """The old path, for comparison: save on the frame thread, file I/O and fsync included."""

    def __init__(self, name: str) -> None:
        self.name = name

    def apply(self, engine) -> None:
        engine.save_preset(self.name)


def _save_storm_round(eng, clock, seconds: float, make_cmd, rate: float) -> tuple[list[float], float]:
    period = 1.0 / 60
    frame_ms = []
    next_t = t0 = time.perf_counter()
    sent = 0
    while time.perf_counter() - t0 < seconds:
        now = time.perf_counter()
        if make_cmd is not None:
            due = int((now - t0) * rate)
            while sent < due:
                eng.commands.put_nowait(make_cmd())
                sent += 1
        start = time.perf_counter()
        eng.frame(clock.next_frame())
        done = time.perf_counter()
        frame_ms.append((done - start) * 1000)
        next_t += period
        if done < next_t:
            time.sleep(next_t - done)
        else:
            next_t = done
    return frame_ms, len(frame_ms) / (time.perf_counter() - t0)


def bench_save_storm(seconds: float = 3.0, rate: float = 200.0) -> None:
    import shutil
    import tempfile

    from installation import app
    from installation.clock import FixedStepClock
    from installation.control.commands import SavePreset
    from installation.engine import Engine, EngineOptions, declare_all
    from installation.gfx.context import headless_context

    root = Path(__file__).resolve().parent.parent
    tmp = Path(tempfile.mkdtemp(prefix="bench-osc-"))
    shutil.copytree(root / "presets", tmp / "presets")
    ctx = headless_context()
    eng = Engine(ctx, EngineOptions(size=(160, 90), particles=4096, presets=tmp / "presets"),
                 tree=declare_all(extra=app._sensing_params()))
    clock = FixedStepClock(60)
    replies = []
    try:
        _save_storm_round(eng, clock, 1.0, None, 0)  # warm up
        rows = {}
        for label, make in (("no saves", None),
                            ("saves on the save worker (now)",
                             lambda: SavePreset(name="storm_look", reply=lambda *a: replies.append(a))),
                            ("saves on the frame thread (old)", lambda: _SyncSave("storm_look"))):
            ms, fps = _save_storm_round(eng, clock, seconds, make, rate)
            eng.saver.flush()
            rows[label] = (fps, statistics.mean(ms), float(np.percentile(ms, 99)))
        written, merged = eng.saver.written, eng.saver.merged
    finally:
        eng.close()
        eng.release()
        ctx.release()
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows["no saves"]
    print(f"6. save storm: real Engine 160x90, 4,096 particles, paced at 60 fps, /tapestry/preset/save of one name "
          f"at {rate:g}/s for {seconds:g} s per round:")
    for label, (fps, mean, p99) in rows.items():
        print(f"   {label:<32}: {fps:5.1f} fps, frame mean {mean:.2f} ms, p99 {p99:.2f} ms "
              f"(x{mean / base[1]:.2f} mean, x{p99 / base[2]:.2f} p99 of no saves)")
    print(f"   save worker: {written} files written for {written + merged} requests ({merged} merged); "
          f"{sum(1 for r in replies if r[0] == '/tapestry/preset/saved')} saved replies")


def bench_reflection(rounds: int = 200) -> None:
    from installation.control.osc import OscConfig as Cfg
    requests = [encode_message("/tapestry/list"), encode_message("/tapestry/status"),
                encode_message("/tapestry/nothing/here", 1.0), encode_message("/tapestry/subscribe")]
    rows = {}
    for label, trusted in (("trusted (as before)", ("127.0.0.0/8",)), ("not believed (now)", ())):
        tree = make_tree()
        q: queue.Queue = queue.Queue(maxsize=4096)
        target = _Target(tree)
        target.status = lambda: {"fps": 60.0, "frame_ms": 5.0, "mood": {"intensity": 0.5}}
        server = OscServer(tree, q, Cfg(port=0, trusted=trusted, rate=1e9, burst=1e9)).start()
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.bind(("127.0.0.1", 0))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        c.settimeout(0.3)
        sent = got = 0
        try:
            for i in range(rounds):
                for r in requests:
                    c.sendto(r, server.address)
                    sent += len(r)
                while not q.empty():
                    q.get_nowait().apply(target)
                time.sleep(0.001)
            deadline = time.perf_counter() + 2.0
            while time.perf_counter() < deadline:
                while not q.empty():
                    q.get_nowait().apply(target)
                try:
                    got += len(c.recvfrom(65536)[0])
                except socket.timeout:
                    if q.empty():
                        break
            rows[label] = (sent, got, server.stats()["withheld"])
        finally:
            server.stop()
            c.close()
    print(f"7. reflection: {rounds} rounds of /list, /status, a bad address and /subscribe from one sender:")
    for label, (sent, got, withheld) in rows.items():
        print(f"   {label:<20}: sent {sent:,} bytes, got back {got:,} bytes ({got / sent:.1f}x); "
              f"replies withheld {withheld:,}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--junk-rate", type=float, default=10000.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=("flood", "saves", "reflection"), default=None,
                    help="run only the fader-flood (5), save-storm (6) or reflection (7) case")
    args = ap.parse_args()
    if args.only == "reflection":
        bench_reflection()
        return
    if args.only == "flood":
        bench_fader_flood()
        return
    if args.only == "saves":
        bench_save_storm(args.seconds)
        return
    rate = bench_handle(args.seconds / 2)
    print(f"1. handle_datagram (parse + validate + enqueue, no socket): {rate:,.0f} messages/s")
    handled, sent, st = bench_udp(args.seconds)
    print(f"2. over loopback UDP from another process: {handled:,.0f} valid messages/s accepted "
          f"(sender offered {sent:,.0f}/s; the rest dropped by the kernel buffer; coalesced {st['coalesced']:,})")
    bench_frames(args.seconds, args.junk_rate, args.rounds)
    bench_pattern()
    bench_fader_flood()
    bench_save_storm(args.seconds)
    bench_reflection()


if __name__ == "__main__":
    main()
