"""Third-party receivers decode what we send: the `sacn` library, tshark's dissectors, liblo's oscdump."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import numpy as np
import pytest

from installation.outputs import OutputConfig, Span, create_output
from tests.support.procs import stop_process
from tests.support.udp import Receiver


def make(protocol, port, spans, **options):
    return create_output(OutputConfig(name="recv-test", protocol=protocol, port=port, fps=100, options=options), spans)


def test_sacn_library_receives_data_and_termination(free_port):
    sacn = pytest.importorskip("sacn")
    port = free_port
    rx = sacn.sACNreceiver(bind_address="127.0.0.1", bind_port=port)
    got: dict[int, list] = {1: [], 2: []}
    availability: list[tuple[int, str]] = []
    done = threading.Event()

    @rx.listen_on("universe", universe=1)
    def _u1(packet):
        got[1].append((packet.dmxData, packet.priority, packet.sourceName, packet.sequence))

    @rx.listen_on("universe", universe=2)
    def _u2(packet):
        got[2].append(packet.dmxData)
        done.set()

    @rx.listen_on("availability")
    def _avail(universe, changed):
        availability.append((universe, changed))

    rx.start()
    try:
        o = make("sacn", port, [Span(1, 0, 510), Span(2, 510, 12)], priority=150, source_name="Tapestry test")
        buf = np.random.default_rng(5).integers(0, 256, 522, dtype=np.uint8)
        o.send(buf)
        assert done.wait(3)
        o.close()
        end = time.monotonic() + 2
        while time.monotonic() < end and (1, "timeout") not in availability:
            time.sleep(0.01)
    finally:
        rx.stop()
    data, priority, name, _ = got[1][0]
    assert tuple(data[:510]) == tuple(buf[:510]) and priority == 150 and name == "Tapestry test"
    assert tuple(got[2][0][:12]) == tuple(buf[510:])
    assert (1, "timeout") in availability and (2, "timeout") in availability  # Stream_Terminated understood


def _tshark_capture(port_filter: str, send, decode_args: list[str], fields: list[str]) -> list[list[str]]:
    """Capture on lo while `send()` runs, then decode with the given fields (bounded in time)."""
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed (apt-get install tshark)")
    if os.geteuid() != 0:
        pytest.skip("capturing on lo needs root")
    with tempfile.TemporaryDirectory() as tmp:
        pcap = os.path.join(tmp, "cap.pcap")
        os.chmod(tmp, 0o777)  # dumpcap may drop privileges
        cap = subprocess.Popen([tshark, "-i", "lo", "-f", port_filter, "-w", pcap, "-a", "duration:15"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            start = time.monotonic()
            line = ""
            while time.monotonic() - start < 10 and "Capturing on" not in line:
                line = cap.stderr.readline()
                if not line and cap.poll() is not None:
                    break
            if "Capturing on" not in line:
                pytest.skip(f"tshark could not capture on lo: {line.strip()}")
            time.sleep(1.0)  # dumpcap reports ready a moment before it truly captures
            send()
            time.sleep(0.5)
        finally:
            stop_process(cap)
        out = subprocess.run([tshark, "-r", pcap, *decode_args, "-T", "fields", *sum((["-e", f] for f in fields), []),
                              "-E", "separator=|"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return [ln.split("|") for ln in out.stdout.splitlines() if ln.strip()]


def _os_ports(n: int) -> list[int]:
    """``n`` distinct UDP ports the OS chooses (free at the time of asking)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_tshark_decodes_artnet_sacn_osc_ddp_without_malformed(free_port):
    # OS-chosen ports, never the standard ones a live show on this machine uses: Art-Net is decoded by
    # "decode as", sACN and OSC by their heuristics, DDP from the payload
    art_port, sacn_port, ddp_port = _os_ports(3)
    osc_port = free_port
    buf = np.random.default_rng(7).integers(0, 256, 3 * 510, dtype=np.uint8)

    def send():
        # something must listen, or the kernel answers "port unreachable" and the outputs back off
        sinks = []
        try:
            for p in (art_port, sacn_port, ddp_port, osc_port):
                sinks.append(Receiver(p))
        except OSError as e:
            for r in sinks:
                r.close()
            pytest.skip(f"standard port busy: {e}")
        outs = [
            make("artnet", art_port, [Span(u, (u - 0x101) * 510, 510) for u in (0x101, 0x102, 0x103)], sync=True),
            make("sacn", sacn_port, [Span(u, (u - 7) * 510, 510) for u in (7, 8, 9)], priority=120, sync_universe=50),
            make("ddp", ddp_port, [Span(0, 0, 1530)]),
            make("osc", osc_port, [Span("/tapestry/blob", 0, 510)]),
            make("osc", osc_port, [Span("/tapestry/floats", 0, 6)], type="floats"),
        ]
        for o in outs:
            o.send(buf)
        time.sleep(0.2)
        for o in outs:
            o.close(final=np.zeros(buf.size, np.uint8))
        for r in sinks:
            r.close()

    rows = _tshark_capture(
        f"udp port {art_port} or udp port {sacn_port} or udp port {ddp_port} or udp port {osc_port}", send,
        ["-d", f"udp.port=={art_port},artnet", "--enable-heuristic", "acn", "-o", "acn.dmx_enable:TRUE",
         "--enable-heuristic", "osc_udp"],
        ["udp.dstport", "artnet.header.opcode", "artnet.output.universe", "artnet.output.length",
         "acn.dmx.universe", "acn.dmx.priority", "_ws.malformed", "osc.message.header.path",
         "osc.message.blob.size", "osc.message.float", "udp.payload"])
    assert rows, "nothing captured"
    assert not [r for r in rows if r[6]], f"malformed packets: {rows}"
    by_port = lambda p: [r for r in rows if r[0] == str(p)]  # noqa: E731
    art, sacn, ddp, osc = by_port(art_port), by_port(sacn_port), by_port(ddp_port), by_port(osc_port)
    assert {int(r[2], 0) for r in art if r[2]} == {0x101, 0x102, 0x103}, art
    assert all(int(r[3]) == 510 for r in art if r[3])
    assert any(r[1] and int(r[1], 0) == 0x5200 for r in art), f"no ArtSync decoded: {art}"
    assert {int(r[4]) for r in sacn if r[4]} == {7, 8, 9}, sacn
    assert {r[5] for r in sacn if r[4]} == {"120"}
    # DDP: no dissector (tshark's "ddp" is AppleTalk), so read the header from the payload
    heads = [bytes.fromhex(r[10].replace(":", ""))[:10] for r in ddp]
    assert heads[:2] == [b"\x40\x01\x0b\x01\x00\x00\x00\x00\x05\xa0", b"\x41\x01\x0b\x01\x00\x00\x05\xa0\x00\x5a"]
    assert {r[7] for r in osc} == {"/tapestry/blob", "/tapestry/floats"}, osc
    assert {r[8] for r in osc if r[7] == "/tapestry/blob"} == {"510"}
    floats = [r[9] for r in osc if r[7] == "/tapestry/floats"][0].split(",")
    assert [round(float(f) * 255) for f in floats] == list(buf[:6])


def test_oscdump_receives_blob_and_floats(free_port):
    oscdump = shutil.which("oscdump")
    if oscdump is None:
        pytest.skip("oscdump is not installed (apt-get install liblo-tools)")
    port = free_port
    proc = subprocess.Popen([oscdump, "-L", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        time.sleep(0.3)  # let oscdump bind
        blob = make("osc", port, [Span("/tapestry/strip/1", 0, 3)])
        floats = make("osc", port, [Span("/tapestry/strip/2", 3, 2)], type="floats")
        buf = np.array([1, 2, 255, 0, 255], np.uint8)
        end = time.monotonic() + 3
        while time.monotonic() < end and len([ln for ln in lines if "/tapestry/" in ln]) < 2:
            blob.send(buf)
            floats.send(buf)
            time.sleep(0.1)
        blob.close()
        floats.close()
    finally:
        proc.terminate()
        proc.wait(5)
        reader.join(2)
    text = "".join(lines)
    assert "/tapestry/strip/1 b [3b 0x1 0x2 0xff]" in text, text
    assert "/tapestry/strip/2 ff 0.000000 1.000000" in text, text
