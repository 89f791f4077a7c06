"""Discovery against real third-party peers, inside two network namespaces joined by a veth pair
(fixed ports 6454/5568, broadcast and multicast stay inside them; nothing touches the host's network):

* OLA's Art-Net node (``olad``, Debian package ``ola``) answers our ArtPoll; a controller at an
  address that never answers ARP is reported missing; with broadcast allowed OLA shows as unexpected
  when the venue does not list it; tshark's ``artnet`` dissector reads our polls without complaint.
* The ``sacn`` library's sender (a real E1.31 source) announces its universes; discovery lists it
  and notes the universe it shares with ours; our own universe discovery is read by the ``sacn``
  library's parser on the other side.

Needs root, iproute2; the OLA and tshark parts skip without them.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from installation.outputs.discovery import (DISCOVERY_GROUP, Discovery, DiscoveryConfig, Expected,
                                            parse_universe_discovery)
from tests.support.netns import cannot_enter
from tests.support.procs import stop_process

ROOT = Path(__file__).resolve().parents[2]
A_IP, B_IP, DEAD_IP, BCAST = "10.151.0.1", "10.151.0.2", "10.151.0.9", "10.151.0.255"
OLA_PLUGINS = ("dummy", "e131", "espnet", "ftdidmx", "gpio", "karate", "kinet", "milinst", "opendmx",
               "openpixelcontrol", "osc", "pathport", "renard", "sandnet", "shownet", "spi", "stageprofi",
               "uartdmx", "usbdmx", "usbserial")
CLONE_NEWNET = 0x40000000


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=check)


@pytest.fixture
def two_ns():
    """Namespaces A (us, 10.151.0.1/24) and B (the peers, 10.151.0.2/24) on one veth pair; removed afterwards."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make network namespaces")
    tag = f"{os.getpid() % 100000}"
    a, b = f"dsca{tag}", f"dscb{tag}"
    if ip("netns", "add", a, check=False).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    reason = cannot_enter(a)
    if reason:
        ip("netns", "del", a, check=False)
        pytest.skip(reason)
    try:
        ip("netns", "add", b)
        ip("link", "add", f"dva{tag}", "type", "veth", "peer", "name", f"dvb{tag}")
        ip("link", "set", f"dva{tag}", "netns", a)
        ip("link", "set", f"dvb{tag}", "netns", b)
        for ns, dev, addr in ((a, f"dva{tag}", A_IP), (b, f"dvb{tag}", B_IP)):
            ip("-n", ns, "addr", "add", f"{addr}/24", "brd", "+", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield a, b, f"dva{tag}"
    finally:
        ip("netns", "del", a, check=False)
        ip("netns", "del", b, check=False)


def in_netns(ns: str, fn):
    """Run ``fn()`` on a fresh thread that has joined namespace ``ns``: sockets it opens live there."""
    libc = ctypes.CDLL(None, use_errno=True)
    box: dict = {}

    def run():
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                box["error"] = OSError(ctypes.get_errno(), "setns failed")
                return
        finally:
            os.close(fd)
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            box["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    if "error" in box:
        raise box["error"]
    return box["value"]


def wait_for(pred, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    return None


@contextmanager
def olad_node(ns: str, universes: list[int]):
    """OLA's Art-Net plugin as a node at B_IP in ``ns`` whose Art-Net *output* ports (OLA input ports)
    carry ``universes``; stopped afterwards."""
    if shutil.which("olad") is None:
        pytest.skip("OLA is not installed (apt-get install ola)")
    with tempfile.TemporaryDirectory() as cfg:
        for name in OLA_PLUGINS:
            Path(cfg, f"ola-{name}.conf").write_text("enabled = false\n")
        Path(cfg, "ola-artnet.conf").write_text(textwrap.dedent(f"""\
            enabled = true
            ip = {B_IP}
            short_name = ola-wall
            long_name = OLA wall node
            net = 0
            subnet = 0
            output_ports = 4
            always_broadcast = false
            use_limited_broadcast = false
            use_loopback = false
            """))
        shutil.chown(cfg, "olad")
        for f in Path(cfg).iterdir():
            shutil.chown(f, "olad")
        log = open(Path(cfg, "olad.log"), "w")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "runuser", "-u", "olad", "--", "olad", "-c", cfg,
                                 "--no-register-with-dns-sd", "--no-http", "-l", "2"], stdout=log, stderr=log)
        try:
            def device():
                r = subprocess.run(["ip", "netns", "exec", ns, "ola_dev_info"], capture_output=True, text=True,
                                   timeout=10)
                for line in r.stdout.splitlines():
                    if line.startswith("Device ") and "ArtNet" in line:
                        return line.split()[1].rstrip(":")
                return None
            dev = wait_for(device, 20)
            assert dev, Path(cfg, "olad.log").read_text()[-2000:]
            for port, u in enumerate(universes):
                subprocess.run(["ip", "netns", "exec", ns, "ola_patch", "-d", dev, "-p", str(port), "-i", "-u", str(u)],
                               check=True, capture_output=True, timeout=10)
            yield proc
        finally:
            stop_process(proc)
            log.close()


def run_discovery(ns: str, expected, seconds: float, **cfg) -> dict:
    cfg = DiscoveryConfig(**{"interval_s": 1.0, "missing_after": 2, "sacn_listen": False, **cfg})
    d = in_netns(ns, lambda: Discovery(expected, cfg).start())
    try:
        time.sleep(seconds)
        return d.report()
    finally:
        d.stop()


def test_ola_node_answers_a_dead_controller_is_missing_and_broadcast_finds_the_unlisted(two_ns):
    a, b, a_dev = two_ns
    with olad_node(b, [0, 1]):
        tshark = shutil.which("tshark")
        cap = pcap = None
        if tshark:
            tmp = tempfile.mkdtemp()
            os.chmod(tmp, 0o777)
            pcap = os.path.join(tmp, "artnet.pcap")
            cap = subprocess.Popen(["ip", "netns", "exec", a, tshark, "-i", a_dev, "-f", "udp port 6454 or arp", "-w", pcap,
                                    "-a", "duration:20"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            wait_for(lambda: "Capturing on" in (cap.stderr.readline() or ""), 10)
        doc = run_discovery(a, [Expected("wall", "artnet", B_IP, None, (0, 1)),
                                Expected("floor", "artnet", DEAD_IP, None, (2,))], 4.5, interface=A_IP)
        e = doc["expected"]
        assert e["wall"]["state"] == "ok" and e["wall"]["node"] == "ola-wall", e["wall"]
        assert e["wall"]["node_universes"] == [0, 1]
        assert e["floor"]["state"] == "missing" and DEAD_IP in e["floor"]["reason"], e["floor"]
        assert doc["unexpected"] == [] and doc["missing"] == ["floor"]

        # the venue forgot the node; only a broadcast poll (allowed here) can find it
        doc = run_discovery(a, [Expected("floor", "artnet", DEAD_IP, None, (2,))], 3.5, broadcast=True,
                            broadcast_address=BCAST)
        assert [(u["ip"], u["name"], u["universes"]) for u in doc["unexpected"]] == [(B_IP, "ola-wall", [0, 1])]
        # without broadcast, nothing unlisted is polled
        doc = run_discovery(a, [Expected("floor", "artnet", DEAD_IP, None, (2,))], 2.5)
        assert doc["unexpected"] == []

        if cap is not None:
            stop_process(cap)
            r = subprocess.run([tshark, "-r", pcap, "-T", "fields", "-e", "ip.src", "-e", "ip.dst",
                                "-e", "artnet.header.opcode", "-e", "_ws.malformed", "-e", "arp.dst.proto_ipv4"],
                               capture_output=True, text=True, timeout=60)
            rows = [(line + "\t" * 4).split("\t")[:5] for line in r.stdout.splitlines() if line.strip()]
            polls = [row for row in rows if row[2] == "0x2000"]
            replies = [row for row in rows if row[2] == "0x2100"]
            assert polls and replies, rows
            assert {p[1] for p in polls} == {B_IP, BCAST}
            # none of OUR packets is malformed (newer tshark flags OLA's own ArtPollReply; not ours to judge)
            assert not any(row[3] for row in rows if row[0] == A_IP), rows
            # the poll to the dead controller never left: nothing answered ARP for it
            assert any(row[4] == DEAD_IP for row in rows), rows


SACN_SOURCE = """
import sys, time, sacn
s = sacn.sACNsender(bind_address=sys.argv[1], source_name="console-B")
for u in (1, 5):  # before start(): its first universe discovery (sent at once, then every 10 s) lists them
    s.activate_output(u)
    s[u].destination = sys.argv[2]
s.start()
time.sleep(float(sys.argv[3]))
s.stop()
"""


def test_sacn_sources_are_listed_and_our_universe_discovery_is_read(two_ns):
    pytest.importorskip("sacn")
    a, b, _ = two_ns
    rim = Expected("rim", "sacn", "10.151.0.7", None, (1, 2), multicast=True)

    # a receiver in B joined to the universe-discovery group, to read what we announce
    def listener():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 5568))
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(DISCOVERY_GROUP) + socket.inet_aton(B_IP))
        s.settimeout(0.5)
        return s
    rx = in_netns(b, listener)
    d = in_netns(a, lambda: Discovery([rim], DiscoveryConfig(interval_s=1.0, interface=A_IP)).start())
    src = subprocess.Popen(["ip", "netns", "exec", b, sys.executable, "-c", SACN_SOURCE, B_IP, A_IP, "8"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert d.listens_sacn and d.announces_sacn
        doc = wait_for(lambda: d.report()["sacn_sources"] and d.report(), 12)
        assert doc, (d.report(), src.poll())
        [source] = doc["sacn_sources"]
        assert source["name"] == "console-B" and source["ip"] == B_IP
        assert source["universes"] == [1, 5] and source["shares_our_universes"] == [1]
        assert doc["expected"]["rim"]["state"] == "unverified"
        assert doc["expected"]["rim"]["other_sources"] == [f"console-B ({B_IP})"]
        got = None
        end = time.monotonic() + 12
        while got is None and time.monotonic() < end:
            try:
                data, addr = rx.recvfrom(2048)
            except socket.timeout:
                continue
            page = parse_universe_discovery(data)
            if page and page.source_name == "Tapestry":
                got = (data, addr)
        assert got, "our universe discovery never reached B"
        from sacn.messages.universe_discovery import UniverseDiscoveryPacket
        theirs = UniverseDiscoveryPacket.make_universe_discovery_packet(list(got[0]))
        assert list(theirs.universes) == [1, 2] and theirs.sourceName == "Tapestry" and got[1][0] == A_IP
    finally:
        d.stop()
        rx.close()
        stop_process(src)


class _Hook:
    """A webhook receiver (stdlib HTTP server on an OS-chosen port) recording each POSTed JSON body."""

    def __init__(self) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        self.bodies: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                hook.bodies.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _write_venue(folder: Path, webhook: str) -> Path:
    from tests.faults.faults_support import LAYOUT, STRIP
    folder.mkdir(parents=True, exist_ok=True)
    fixtures = "".join(STRIP.format(name=n, x=x, controller=c, address=f"universe = {u}") for n, x, c, u in (
        ("w1", 0.2, "wall", 0), ("w2", 0.4, "wall", 1), ("f1", 0.7, "floor", 2)))
    (folder / "layout.toml").write_text(LAYOUT.format(fixtures=fixtures))
    venue = folder / "venue.toml"
    venue.write_text(textwrap.dedent(f"""\
        name = "discovery-e2e"
        layout = "layout.toml"
        [[outputs]]
        name = "wall"
        protocol = "artnet"
        host = "{B_IP}"
        fps = 30
        [[outputs]]
        name = "floor"
        protocol = "artnet"
        host = "{DEAD_IP}"
        fps = 30
        [discovery]
        interval_s = 1.0
        missing_after = 2
        [alerts]
        webhook = "{webhook}"
        degraded_for_s = 1.0
        min_interval_s = 0
        on = ["controllers", "outputs"]
        """))
    return venue


def test_live_show_names_the_missing_controller_in_status_and_alerts_once_per_incident(two_ns, tmp_path):
    """run.py in namespace A, OLA's node in B, one controller powered off: /health and `run.py status`
    name it, the venue's webhook gets one alert; when OLA stops, one more alert names the wall."""
    from tests.faults.faults_support import Piece
    a, b, _ = two_ns
    hook = in_netns(a, _Hook)
    piece = None
    try:
        with olad_node(b, [0, 1]) as ola:
            venue = _write_venue(tmp_path / "venue", f"http://127.0.0.1:{hook.port}/hook")
            piece = Piece(venue, tmp_path / "piece.log", prefix=("ip", "netns", "exec", a), netns=a)
            doc = piece.wait_health(lambda d: "controller/floor" in d.get("unhealthy", ())
                                    and d["controllers"]["expected"]["wall"]["state"] == "ok", 90)
            assert doc, (piece.last_health, piece.log())
            assert doc["status"] == "degraded" and "controller/wall" not in doc["unhealthy"]
            r = subprocess.run(["ip", "netns", "exec", a, sys.executable, str(ROOT / "run.py"), "status", "--url",
                                f"http://127.0.0.1:{piece.health_port}/health"], capture_output=True, text=True,
                               timeout=30)
            assert r.returncode == 1, r.stderr                   # 1: degraded (a controller is missing)
            assert "controllers: missing" in r.stdout and "ola-wall" in r.stdout, r.stdout
            assert any(line.split()[:2] == ["floor", "missing"] for line in r.stdout.splitlines()), r.stdout
            assert wait_for(lambda: hook.bodies, 20), piece.log()
            time.sleep(2.5)                                       # more frames, more reports: still one alert
            assert [(e["event"], e["what"]) for p in hook.bodies for e in p["events"]] == \
                [("degraded", "controller/floor")], hook.bodies
            stop_process(ola)                                     # the wall's node loses power mid-show
            assert wait_for(lambda: len(hook.bodies) >= 2, 30), (hook.bodies, piece.log())
            assert [(e["event"], e["what"]) for e in hook.bodies[1]["events"]] == [("degraded", "controller/wall")]
            frames = doc["frames"]
            later = piece.wait_health(lambda d: d["frames"] > frames + 30, 20)
            assert later and later["controllers"]["expected"]["wall"]["state"] == "missing"
    finally:
        if piece is not None:
            piece.stop()
        hook.close()


def test_no_default_route_turns_sacn_discovery_off_with_a_hint_and_the_rest_runs(two_ns):
    """A show network without a gateway: joining the group on 'any' interface fails (ENODEV); discovery
    says what to set, and Art-Net polling goes on; an unresolvable controller name is missing."""
    a, _, _ = two_ns
    cfg = DiscoveryConfig(interval_s=1.0, missing_after=1)
    d = in_netns(a, lambda: Discovery([Expected("rim", "sacn", "10.151.0.7", None, (1,)),
                                       Expected("floor", "artnet", DEAD_IP, None, (2,)),
                                       Expected("wall", "artnet", "wall-node.invalid", None, (0,))], cfg).start())
    try:
        doc = wait_for(lambda: d.report()["expected"]["floor"]["state"] == "missing" and d.report(), 10)
    finally:
        d.stop()
    assert doc, d.report()
    assert any("sACN discovery off" in e and "[discovery] interface" in e for e in doc["errors"]), doc["errors"]
    assert doc["expected"]["rim"]["state"] == "unverified"
    # a host name nobody can resolve (no name server reachable here) is missing, and says why
    assert doc["expected"]["wall"]["state"] == "missing"
    assert "cannot resolve 'wall-node.invalid'" in doc["expected"]["wall"]["reason"]
