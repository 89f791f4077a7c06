"""Benchmark the LED outputs: 300 universes (a ~50,000-LED layout) to loopback receivers.

Prints, per protocol: encode ms (sequence + data into the prebuilt packets), send ms (the
transmit: libc sendmmsg batch, and the plain send() loop), packets/s — beside, in the same run,
(a) the floor: a bare `sendto` loop over the same prebuilt packets, and (b) stupidArtnet
(`pip install stupidArtnet`) sending the same universes; then the ratios.  Finally the threaded
path as the engine uses it: send() at 60 fps, how long send() takes and what arrives.

    python3 bench/bench_outputs.py [--universes 300] [--frames 300]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from installation.outputs import OutputConfig, Span, create_output  # noqa: E402
from installation.outputs.udp import HAVE_SENDMMSG  # noqa: E402

SLOTS = 510  # 170 RGB pixels per universe: a universe never splits a pixel


class Drain:
    """A UDP socket on loopback that a thread empties as fast as it can."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.bytes = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = bytearray(65536)
        while not self._stop:
            try:
                n = self.sock.recv_into(buf)
            except socket.timeout:
                continue
            except OSError:
                return
            self.count += 1
            self.bytes += n

    def close(self) -> None:
        self._stop = True
        self._thread.join(1)
        self.sock.close()


def spans_for(protocol: str, universes: int) -> list[Span]:
    if protocol == "ddp":
        return [Span(0, 0, universes * SLOTS)]  # one long run, cut into 1440-byte packets
    if protocol == "osc":
        return [Span(f"/tapestry/u/{u}", u * SLOTS, SLOTS) for u in range(universes)]
    first = 1 if protocol == "sacn" else 0
    return [Span(first + u, u * SLOTS, SLOTS) for u in range(universes)]


def frames(n: int, size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, size, dtype=np.uint8) for _ in range(n)]


def ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1e3


def bench_protocol(protocol: str, options: dict, universes: int, nframes: int, drain: Drain) -> dict:
    cfg = OutputConfig(name=f"bench-{protocol}", protocol=protocol, port=drain.port, fps=1000, options=options)
    out = create_output(cfg, spans_for(protocol, universes))
    out._open()
    tr = out._transport
    bufs = frames(8, universes * SLOTS)
    everything = np.ones(len(out.spans), dtype=bool)
    floor_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    floor_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    addr = ("127.0.0.1", drain.port)
    enc: list[float] = []
    select: list[float] = []
    timed: dict[str, list[float]] = {"sendmmsg": [], "loop": [], "floor": []}

    def send_mmsg():
        tr.use_sendmmsg = True
        return out._transmit(sel)[0]

    def send_loop():
        tr.use_sendmmsg = False
        return out._transmit(sel)[0]

    def send_floor():
        sendto = floor_sock.sendto
        for p in packets:
            sendto(p, addr)
        return len(packets)

    methods = [("sendmmsg", send_mmsg), ("loop", send_loop), ("floor", send_floor)]
    if not HAVE_SENDMMSG:
        methods = methods[1:]
    for i in range(nframes + 20):
        buf = bufs[i % len(bufs)]
        ts = time.perf_counter()
        out._select(buf, time.monotonic())  # which spans changed (all do: every frame differs)
        out._sent = buf
        t0 = time.perf_counter()
        sel = out._encode(buf, everything)
        t1 = time.perf_counter()
        packets = [bytes(v) for v in out.block.views]  # the floor sends the very same packets
        if i >= 20:  # after warm-up
            enc.append(t1 - t0)
            select.append(t0 - ts)
        # each method in turn first, and each after a pause that lets the receiver catch up (as
        # between frames at 60 fps), so none is measured against another's backlog
        for k in range(len(methods)):
            label, fn = methods[(i + k) % len(methods)]
            time.sleep(0.002)
            t = time.perf_counter()
            fn()
            if i >= 20:
                timed[label].append(time.perf_counter() - t)
    floor_sock.close()
    out._shutdown()
    return {"encode": ms(enc), "select": ms(select), "sendmmsg": ms(timed["sendmmsg"]) if HAVE_SENDMMSG else float("nan"),
            "loop": ms(timed["loop"]), "floor": ms(timed["floor"]), "packets": len(out.block.views) + (
                1 if options.get("sync") or options.get("sync_universe") else 0)}


def bench_stupidartnet(universes: int, nframes: int, drain: Drain) -> float | None:
    try:
        from stupidArtnet import StupidArtnet
    except ImportError:
        return None
    nodes = [StupidArtnet("127.0.0.1", u, SLOTS, 60, port=drain.port) for u in range(universes)]
    bufs = frames(8, universes * SLOTS)
    times = []
    for i in range(nframes + 20):
        buf = bufs[i % len(bufs)]
        slices = [bytearray(buf[u * SLOTS:(u + 1) * SLOTS]) for u in range(universes)]
        time.sleep(0.002)
        t0 = time.perf_counter()
        for node, data in zip(nodes, slices):
            node.set(data)
            node.show()
        t1 = time.perf_counter()
        if i >= 20:
            times.append(t1 - t0)
    for n in nodes:
        n.close()
    return ms(times)


def bench_threaded(universes: int, seconds: float, drain: Drain) -> dict:
    """The engine's view: send() at 60 fps; the sender thread encodes and transmits beside it."""
    cfg = OutputConfig(name="bench-live", protocol="artnet", port=drain.port, fps=60, options={"sync": True})
    out = create_output(cfg, spans_for("artnet", universes))
    bufs = frames(8, universes * SLOTS)
    calls = []
    before = drain.count
    t_end = time.perf_counter() + seconds
    i = 0
    next_t = time.perf_counter()
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        out.send(bufs[i % len(bufs)])
        calls.append(time.perf_counter() - t0)
        i += 1
        next_t += 1 / 60
        time.sleep(max(0.0, next_t - time.perf_counter()))
    out.close()
    time.sleep(0.2)
    st = out.status()
    return {"sent_frames": i, "tx_frames": st["frames"], "dropped": st["dropped"], "errors": st["errors"],
            "send_us_median": statistics.median(calls) * 1e6, "send_us_max": max(calls) * 1e6,
            "received": drain.count - before, "expected": st["packets"]}


def bench_contended(universes: int, seconds: float, drain: Drain, use_sendmmsg: bool) -> dict:
    """send() at 60 fps while the frame loop keeps the GIL busy with Python work half of each frame.

    A send()/sendto() loop on the sender thread must win the GIL back after every datagram;
    one sendmmsg call releases it once per 1024 datagrams.  Measures the transmit's wall time.
    """
    cfg = OutputConfig(name="bench-contended", protocol="artnet", port=drain.port, fps=60)
    out = create_output(cfg, spans_for("artnet", universes))
    out._transport.use_sendmmsg = use_sendmmsg
    tx_times: list[float] = []
    transmit = out._transmit

    def timed_transmit(sel):
        t = time.perf_counter()
        r = transmit(sel)
        tx_times.append(time.perf_counter() - t)
        return r

    out._transmit = timed_transmit
    bufs = frames(8, universes * SLOTS)
    t_end = time.perf_counter() + seconds
    next_t = time.perf_counter()
    i = 0
    while time.perf_counter() < t_end:
        out.send(bufs[i % len(bufs)])
        i += 1
        busy_until = time.perf_counter() + 0.5 / 60
        x = 0
        while time.perf_counter() < busy_until:  # the engine's own Python work
            x += sum(range(200))
        next_t += 1 / 60
        time.sleep(max(0.0, next_t - time.perf_counter()))
    out.close()
    return {"tx_ms_median": statistics.median(tx_times) * 1e3, "tx_ms_p90": sorted(tx_times)[int(len(tx_times) * .9)] * 1e3,
            "frames": out.status()["frames"], "handed": i}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--universes", type=int, default=300)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of the threaded 60 fps run")
    a = ap.parse_args()
    drain = Drain()
    print(f"{a.universes} universes x {SLOTS} bytes ({a.universes * SLOTS // 3} RGB LEDs), {a.frames} frames, "
          f"median per frame; loopback receiver draining in a thread; sendmmsg available: {HAVE_SENDMMSG}")
    rows = [("artnet", {}), ("artnet+sync", {"sync": True}), ("sacn", {}), ("sacn+sync", {"sync_universe": 64000 - 1}),
            ("ddp", {}), ("osc blob", {}), ("osc floats", {"type": "floats"})]
    results = {}
    for label, opts in rows:
        protocol = label.split("+")[0].split()[0]
        results[label] = bench_protocol(protocol, opts, a.universes, a.frames, drain)
    stupid = bench_stupidartnet(a.universes, a.frames, drain)
    hdr = (f"{'protocol':<12} {'packets':>7} {'select ms':>9} {'encode ms':>9} {'sendmmsg ms':>11} {'loop ms':>8} "
           f"{'floor ms':>8} {'mmsg/floor':>10} {'loop/floor':>10} {'all/floor':>9} {'kpkt/s mmsg':>11}")
    print(hdr)
    print("-" * len(hdr))
    for label, r in results.items():
        best = r["sendmmsg"] if HAVE_SENDMMSG else r["loop"]
        print(f"{label:<12} {r['packets']:>7} {r['select']:>9.3f} {r['encode']:>9.3f} {r['sendmmsg']:>11.3f} "
              f"{r['loop']:>8.3f} {r['floor']:>8.3f} {r['sendmmsg'] / r['floor']:>10.2f} {r['loop'] / r['floor']:>10.2f} "
              f"{(r['select'] + r['encode'] + best) / r['floor']:>9.2f} {r['packets'] / best:>11.0f}")
    print("send ratios: the transmit alone vs the bare sendto loop of the same packets; all/floor: select + "
          "encode + sendmmsg (everything the sender thread does per frame) vs that floor")
    art = results["artnet"]
    if stupid is None:
        print("stupidArtnet not installed (pip install stupidArtnet): no comparison")
    else:
        ours = art["select"] + art["encode"] + (art["sendmmsg"] if HAVE_SENDMMSG else art["loop"])
        print(f"stupidArtnet (set+show per universe): {stupid:.3f} ms/frame = {stupid / art['floor']:.2f}x the floor; "
              f"ours (select+encode+send) {ours:.3f} ms = {ours / stupid:.2f}x stupidArtnet's time")
    t = bench_threaded(a.universes, a.seconds, drain)
    print(f"threaded artnet+sync at 60 fps for {a.seconds:g} s: send() median {t['send_us_median']:.0f} us, "
          f"max {t['send_us_max']:.0f} us; frames handed {t['sent_frames']}, transmitted {t['tx_frames']}, "
          f"dropped {t['dropped']}, errors {t['errors']}; packets received {t['received']} of {t['expected']} sent")
    if HAVE_SENDMMSG:
        for flag in (True, False):
            c = bench_contended(a.universes, a.seconds, drain, flag)
            print(f"contended (frame loop busy in Python half of each 60 fps frame), {'sendmmsg' if flag else 'send loop'}: "
                  f"transmit median {c['tx_ms_median']:.2f} ms, p90 {c['tx_ms_p90']:.2f} ms; "
                  f"{c['frames']} of {c['handed']} frames transmitted")
    drain.close()


if __name__ == "__main__":
    main()
