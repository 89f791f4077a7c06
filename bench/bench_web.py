"""What serving the web surfaces costs the frame loop, and how fast a change reaches a LISTEN client.

    python bench/bench_web.py [--seconds 5] [--phases five,abuse,flood,binary] [--flooders 8]

One process runs the real engine (llvmpipe, 160x90, 8192 particles) at 60 fps with the LED-less frame
loop of run_live, the OSC server and the web control server (page API, OSCQuery, health).  Clients run
in ANOTHER process (their own CPU is not the server's).  Phases, each ``--seconds`` long:

1. baseline: the engine alone (no bridge, no server);
2. served, idle: bridge + server, no clients;
3. five clients: five "phones" polling /api/state, /health and the thumbnail once a second (what the
   page does) and five OSCQuery LISTEN clients following every parameter, while an OSC sender moves
   show/master 20 times a second;
4. abuse: 1,000 half-open connections held open plus a loop of plain /health requests as fast as one
   client process can send them;
5. ws flood: ``--flooders`` (8) WebSocket clients sending OSCQuery LISTEN / IGNORE text messages for
   show/master (no token needed) as fast as they can, then "after flood": the same length with the
   clients gone, to show whether the frame loop recovers (it did not, for minutes, before session 22);
6. binary flood: the same number of clients sending 65,000-byte binary frames, then "after binary".

``--phases`` picks which of 3-6 run (baseline and "served, no clients" always do).  The flood phases
also count the messages the clients got into their sockets (much of it waits in kernel buffers: the
server reads it after they have gone) and how many the server closed (1008).

Per phase: fps, mean engine frame ms and the ratio to the baseline, and the engine thread's own serving
cost (time inside the bridge's on_frame: publishing snapshot, changes, thumbnail) per frame.  Then the
OSC -> LISTEN latency (p50/p95) measured in the client process from send to receipt.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import socket
import statistics
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _flood(port: int, seconds: float, mode: str, n: int, result: dict) -> None:
    """``n`` WebSocket clients send pre-masked frames (LISTEN/IGNORE texts, or 65,000-byte binaries) as fast
    as the server takes them, for ``seconds``; a reader per client drains the replies and spots a 1008 close."""
    import os
    import struct
    import threading

    from tests.control.wsclient import WsClient

    mask = b"\x11\x22\x33\x44"

    def frame(opcode: int, payload: bytes) -> bytes:
        k = len(payload)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | k]) if k < 126 else bytes([0x80 | 126]) + struct.pack("!H", k))
        key = (mask * (k // 4 + 1))[:k]
        return head + mask + (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(k, "big")

    if mode == "flood":
        one = [frame(0x1, json.dumps({"COMMAND": c, "DATA": "/tapestry/show/master"}).encode())
               for c in ("LISTEN", "IGNORE")]
        batch, per_batch = (one[0] * 3 + one[1]) * 16, 64  # mostly LISTEN, now and then IGNORE
    else:
        batch, per_batch = frame(0x2, os.urandom(65000)), 1
    stop = time.monotonic() + seconds
    result.update(sent=0, closed_1008=0, closed=0, connect_errors=0)
    lock = threading.Lock()

    def client() -> None:
        ws = None
        for _ in range(20):  # the abuse phase's sockets may still hold slots for a moment
            try:
                ws = WsClient(port, "/")
                break
            except (OSError, ConnectionError):
                time.sleep(0.1)
        if ws is None:
            with lock:
                result["connect_errors"] += 1
            return
        s = ws.sock
        s.settimeout(max(0.1, stop - time.monotonic()))
        seen = {"1008": False}

        def reader() -> None:
            tail = b""
            try:
                while chunk := s.recv(65536):
                    tail = tail[-8:] + chunk
                    if b"\x88" in tail and b"\x03\xf0" in tail:  # close frame, code 1008
                        seen["1008"] = True
            except OSError:
                pass
        threading.Thread(target=reader, daemon=True).start()
        sent, closed = 0, False
        while (left := stop - time.monotonic()) > 0:
            try:
                s.settimeout(left)
                s.sendall(batch)
                sent += per_batch
            except TimeoutError:  # the server still reading slowly when the time is up
                break
            except OSError:  # closed by the server
                closed = True
                break
        time.sleep(0.2)
        with lock:
            result["sent"] += sent
            result["closed"] += closed
            result["closed_1008"] += seen["1008"]
        s.close()  # gone, without a close frame: what it left in the socket is the server's to read

    threads = [threading.Thread(target=client) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)


def _clients(port: int, osc_port: int, token: str, seconds: float, mode: str, out, flooders: int = 8) -> None:
    """Client process: ``five`` (phones + LISTEN + OSC sender, reports latencies), ``abuse``, or a WebSocket
    ``flood`` / ``binary`` flood."""
    import threading

    from pythonosc.osc_message import OscMessage
    from pythonosc.udp_client import SimpleUDPClient

    from tests.control.wsclient import WsClient

    stop = time.monotonic() + seconds
    base = f"http://127.0.0.1:{port}"
    result: dict = {"requests": 0, "errors": 0, "latency_ms": []}

    def phone() -> None:
        while time.monotonic() < stop:
            for path in ("/api/state", "/health", "/api/thumbnail.jpg"):
                try:
                    req = urllib.request.Request(base + path, headers={"X-Tapestry-Token": token})
                    with urllib.request.urlopen(req, timeout=5) as r:
                        r.read()
                    result["requests"] += 1
                except Exception:  # noqa: BLE001 - counted
                    result["errors"] += 1
            time.sleep(1.0)

    if mode in ("flood", "binary"):
        _flood(port, seconds, mode, flooders, result)
    elif mode == "five":
        listeners = []
        with urllib.request.urlopen(base + "/", timeout=5) as r:
            tree = json.loads(r.read())
        paths = []

        def walk(node):
            if "TYPE" in node and node.get("ACCESS", 0) & 1:
                paths.append(node["FULL_PATH"])
            for child in (node.get("CONTENTS") or {}).values():
                walk(child)
        walk(tree)
        for _ in range(5):
            ws = WsClient(port, "/")
            for p in paths:
                ws.send_json({"COMMAND": "LISTEN", "DATA": p})
            listeners.append(ws)
        time.sleep(0.5)
        sent: dict[float, float] = {}

        def listen(ws, record: bool) -> None:
            ws.sock.settimeout(0.5)
            while time.monotonic() < stop + 0.5:
                try:
                    op, payload = ws.recv()
                except OSError:
                    continue
                if op == 2 and record:
                    msg = OscMessage(payload)
                    if msg.address == "/tapestry/show/master":
                        key = round(float(msg.params[0]), 4)
                        if key in sent:
                            result["latency_ms"].append((time.perf_counter() - sent.pop(key)) * 1e3)

        threads = [threading.Thread(target=phone) for _ in range(5)]
        threads += [threading.Thread(target=listen, args=(ws, i == 0)) for i, ws in enumerate(listeners)]
        for t in threads:
            t.start()
        osc = SimpleUDPClient("127.0.0.1", osc_port)
        i = 0
        while time.monotonic() < stop:
            value = round(0.5 + 0.4 * ((i * 37) % 100) / 100, 4)
            i += 1
            if value in sent:
                continue
            sent[value] = time.perf_counter()
            osc.send_message("/tapestry/show/master", value)
            time.sleep(0.05)
        for t in threads:
            t.join(10)
    else:
        held = []
        for _ in range(1000):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            held.append(s)
        while time.monotonic() < stop:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
                s.sendall(f"GET /health HTTP/1.1\r\nX-Tapestry-Token: {token}\r\nConnection: close\r\n\r\n".encode())
                reply = b""
                while chunk := s.recv(65536):
                    reply += chunk
                s.close()
                if reply.startswith(b"HTTP/1.1 200"):
                    result["requests"] += 1
                elif reply.startswith(b"HTTP/1.1 429"):
                    result["rate_limited"] = result.get("rate_limited", 0) + 1
                else:
                    result["errors"] += 1
            except OSError:
                result["errors"] += 1
        for s in held:
            s.close()
    out.put(result)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--phases", default="five,abuse,flood,binary",
                    help="comma-separated, of five, abuse, flood, binary (default: all, in that order)")
    ap.add_argument("--flooders", type=int, default=8, help="WebSocket clients in the flood phases")
    args = ap.parse_args()
    modes = [m.strip() for m in args.phases.split(",") if m.strip()]
    unknown = set(modes) - {"five", "abuse", "flood", "binary"}
    if unknown:
        ap.error(f"unknown phase(s): {', '.join(sorted(unknown))}")

    from installation.clock import RealtimeClock
    from installation.control.bridge import EngineBridge
    from installation.control.osc import OscConfig, OscServer
    from installation.control.web import WebConfig, WebControl
    from installation.engine import Engine, EngineOptions, declare_all
    from installation.gfx.context import headless_context
    from installation.health import HealthBoard, HealthServer
    from installation.sensing import PARAMS as SENSING_PARAMS

    ctx = headless_context()
    tree = declare_all(extra=SENSING_PARAMS)
    engine = Engine(ctx, EngineOptions(size=(160, 90), particles=8192), tree=tree)
    board = HealthBoard()
    clock = RealtimeClock(60)

    def run(seconds: float, bridge=None) -> dict:
        n0, t0 = engine.frame_count, time.perf_counter()
        ms = []
        serve = 0.0
        while time.perf_counter() - t0 < seconds:
            engine.frame(clock.next_frame())
            ms.append(engine._frame_ms[-1])
            board.record_frame(ms[-1])
            if engine.frame_count % 30 == 0:
                board.update(engine.status())
        if bridge is not None:
            serve = bridge.cost_s
            bridge.cost_s = 0.0
        frames = engine.frame_count - n0
        return {"fps": frames / (time.perf_counter() - t0), "frame_ms": statistics.fmean(ms),
                "p99": sorted(ms)[int(0.99 * (len(ms) - 1))], "serve_ms": serve * 1e3 / max(frames, 1)}

    run(1.0)  # warm-up
    base = run(args.seconds)

    class TimedBridge(EngineBridge):
        cost_s = 0.0

        def on_frame(self, eng) -> None:
            t = time.perf_counter()
            super().on_frame(eng)
            self.cost_s += time.perf_counter() - t

    bridge = TimedBridge()
    bridge.attach(engine)
    osc = OscServer(tree, engine.commands, OscConfig(port=0))
    osc.start()
    tree.listen(osc.publish_change)
    token = "bench-token"
    web = WebControl(WebConfig(enabled=True, port=0, token=token), tree, engine.commands, bridge,
                     HealthServer(board).routes(), osc.address[1])
    assert web.start()
    idle = run(args.seconds, bridge)

    results = {}
    spawn = mp.get_context("spawn")
    q = spawn.Queue()
    phases = {}
    server_stats = {}
    for mode in modes:
        before = dict(web.server.stats())
        proc = spawn.Process(target=_clients, args=(web.port, osc.address[1], token,
                                                    args.seconds + 1.0, mode, q, args.flooders))
        proc.start()
        time.sleep(1.5 if mode == "five" else 1.0)  # clients connected / flood under way
        phases[mode] = run(args.seconds, bridge)
        results[mode] = q.get(timeout=120)
        proc.join(30)
        if mode in ("flood", "binary"):  # the clients have gone: does the frame loop recover?
            phases[mode + " after"] = run(args.seconds, bridge)
        after = web.server.stats()
        server_stats[mode] = {"rate_limited": after.get("rate_limited", 0) - before.get("rate_limited", 0),
                              "websockets_open": after.get("websockets_open", 0)}
    stats = web.server.stats()
    web.stop()
    osc.stop()
    engine.close()
    engine.release()

    print("bench_web (same process; other helpers were loading this 2-core machine: compare ratios)")
    print(f"{'phase':<34}{'fps':>7}{'frame ms':>10}{'p99':>8}{'x base':>8}{'serve ms/frame':>16}")
    n = args.flooders
    names = {"five": "5 phones + 5 LISTEN + OSC 20/s", "abuse": "abuse: 1000 half-open + /health loop",
             "flood": f"ws flood: {n} LISTEN/IGNORE", "flood after": "after flood (clients gone)",
             "binary": f"ws flood: {n} x 65,000 B binary", "binary after": "after binary (clients gone)"}
    rows = [("baseline: engine alone", base), ("served, no clients", idle)]
    rows += [(names[k], r) for k, r in phases.items()]
    for name, r in rows:
        print(f"{name:<34}{r['fps']:>7.1f}{r['frame_ms']:>10.2f}{r['p99']:>8.2f}"
              f"{r['frame_ms'] / base['frame_ms']:>8.2f}{r['serve_ms']:>16.3f}")
    if "five" in results:
        lat = sorted(results["five"]["latency_ms"])
        if lat:
            print(f"OSC -> LISTEN latency over {len(lat)} changes: p50 {lat[len(lat) // 2]:.1f} ms, "
                  f"p95 {lat[int(0.95 * (len(lat) - 1))]:.1f} ms, max {lat[-1]:.1f} ms")
    parts = []
    if "five" in results:
        parts.append(f"five-client requests {results['five']['requests']} (errors {results['five']['errors']}, "
                     f"server throttled {server_stats['five']['rate_limited']})")
    if "abuse" in results:
        parts.append(f"abuse /health answered {results['abuse']['requests']}, "
                     f"{results['abuse'].get('rate_limited', 0)} told 429, errors {results['abuse']['errors']}")
    print("; ".join(parts + [f"server: {stats['evicted_idle']} silent connections dropped for talking ones, "
                             f"{stats['refused_full']} refused at the cap, {stats['timeouts']} timed out"]))
    for mode in ("flood", "binary"):
        if mode in results:
            r, st = results[mode], server_stats[mode]
            print(f"{mode}: {n} clients got {r['sent']} messages into their sockets"
                  f" ({r['sent'] / (args.seconds + 1.0):.0f}/s; kernel buffers hold MBs),"
                  f" {r['closed']} closed by the server"
                  f" ({r['closed_1008']} with 1008), {r['connect_errors']} could not connect;"
                  f" server throttled {st['rate_limited']} frames/requests,"
                  f" {st['websockets_open']} WebSockets still open after the 'after' phase")
    return 0


if __name__ == "__main__":
    sys.exit(main())
