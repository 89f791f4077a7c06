"""What discovery and alerts cost the frame thread: a stand-in frame loop, alone and with them running.

The frame loop does a few ms of numpy work per frame (elementwise, on a tapestry-sized array) at 60 fps, records each frame on a HealthBoard
and refreshes its snapshot once a second (as app.py does).  Phase A: nothing else.  Phase B, in
the same process: Discovery polling 10 Art-Net nodes every second (a node simulator in a
subprocess answering each poll with 8 ArtPollReplies) and Alerts reading the board every second
and POSTing to a local webhook (one output flaps, so alerts are really sent).  Phase C: B plus a
junk flood (~20,000 datagrams/s, some of them forged ArtPollReplies) at the discovery socket from
another subprocess.  Prints each phase's frame work time (p50, p99, max), the ratios to A, and
the CPU time our threads used (from /proc: robust against other load on the machine).  Ports are OS-chosen on loopback.

    python3 bench/bench_oversight.py [--seconds 6]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from installation.alerts import AlertConfig, Alerts  # noqa: E402
from installation.health import HealthBoard  # noqa: E402
from installation.outputs.discovery import Discovery, DiscoveryConfig, Expected  # noqa: E402

NODES = """
import socket, sys
sys.path.insert(0, sys.argv[1])
from installation.outputs.discovery import artpollreply_packet
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1], flush=True)
replies = [artpollreply_packet("127.0.0.1", f"node-{i}", outputs=[4 * i + k for k in range(4)], bind_index=i + 1)
           for i in range(8)]
while True:
    d, a = s.recvfrom(2048)
    if d[8:10] == b"\\x00\\x20":
        for r in replies:
            s.sendto(r, a)
"""

FLOOD = """
import os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
junk = [os.urandom(n) for n in (12, 239, 600, 1400)] + [b"Art-Net\\x00\\x00\\x21" + os.urandom(229)]
end = time.monotonic() + float(sys.argv[2])
i = 0
while time.monotonic() < end:
    s.sendto(junk[i % len(junk)], ("127.0.0.1", int(sys.argv[1])))
    i += 1
    if i % 200 == 0:
        time.sleep(0.01)   # ~20,000 datagrams/s
print(i)
"""


def frame_loop(board: HealthBoard, seconds: float, flap: bool) -> np.ndarray:
    rng = np.random.default_rng(1)
    a = rng.random((288, 512), dtype=np.float32)   # a tapestry-sized array
    times = []
    period = 1 / 60
    next_t = time.perf_counter()
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(3):
            a = np.tanh(a * 1.0001 + 1e-4)
        board.record_frame(5.0)
        if n % 60 == 0:
            state = "backoff" if flap and (n // 120) % 2 else "ok"
            board.update({"fps": 60.0, "outputs": [{"name": "wall", "state": state}]})
        times.append((time.perf_counter() - t0) * 1000)
        n += 1
        next_t += period
        time.sleep(max(0.0, next_t - time.perf_counter()))
    return np.array(times)


def thread_cpu_s(names: tuple[str, ...]) -> float:
    """CPU seconds (user + system) used so far by this process's threads with these names (Linux /proc)."""
    tids = {t.native_id for t in threading.enumerate() if t.name in names}
    total = 0
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])   # utime, stime (fields 14, 15 of stat)
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


OURS = ("discovery", "alerts-watch", "alerts-send")


def summary(ms: np.ndarray) -> tuple[float, float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(ms.max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=6.0)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    frame_loop(HealthBoard(), 1.0, False)   # warm up
    base = frame_loop(HealthBoard(), args.seconds, False)

    posts = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            posts.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    nodes = subprocess.Popen([sys.executable, "-c", NODES, root], stdout=subprocess.PIPE, text=True)
    port = int(nodes.stdout.readline())
    board = HealthBoard()
    expected = [Expected(f"panel-{i}", "artnet", "127.0.0.1", port, tuple(range(32))) for i in range(10)]
    disc = Discovery(expected, DiscoveryConfig(interval_s=1.0, artnet_port=0, poll_loopback=True, sacn_listen=False),
                     publish=lambda d: board.set_section("controllers", d)).start()
    alerts = Alerts(AlertConfig(webhook=f"http://127.0.0.1:{http.server_address[1]}/hook", min_interval_s=0.0,
                                degraded_for_s=0.5, on=("outputs",)), board.report, check_s=1.0).start()
    try:
        c0 = thread_cpu_s(OURS)
        quiet = frame_loop(board, args.seconds, True)
        c1 = thread_cpu_s(OURS)
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(disc.artnet_bound_port), str(args.seconds + 1)],
                                 stdout=subprocess.PIPE, text=True)
        busy = frame_loop(board, args.seconds, True)
        c2 = thread_cpu_s(OURS)
        flooded = flood.communicate(timeout=30)[0].strip()
    finally:
        alerts.stop()
        report = disc.report()
        disc.stop()
        nodes.kill()
        nodes.wait()
        http.shutdown()
    (b50, b99, bmax) = summary(base)
    print(f"frames per phase: {len(base)}, {len(quiet)}, {len(busy)}")
    print(f"A alone                    frame work ms  p50 {b50:.3f}  p99 {b99:.3f}  max {bmax:.3f}")
    for label, ms in (("B discovery + alerts", quiet), ("C B + junk flood", busy)):
        o50, o99, omax = summary(ms)
        print(f"{label:<26} frame work ms  p50 {o50:.3f}  p99 {o99:.3f}  max {omax:.3f}   "
              f"ratio to A: p50 {o50 / b50:.2f}x  p99 {o99 / b99:.2f}x")
    print(f"CPU used by the discovery + alerts threads: B {100 * (c1 - c0) / args.seconds:.1f} % of a core, "
          f"C {100 * (c2 - c1) / args.seconds:.1f} % of a core")
    print(f"discovery: {report['polls']} polls, {report['replies']} replies read, state {report['state']}; "
          f"junk datagrams sent at it in C: {flooded}; alerts POSTed: {len(posts)} (sent {alerts.sent})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
