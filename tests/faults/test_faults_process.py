"""The whole piece as a process (``run.py --headless --venue ...``) under faults: a receiver that dies
and comes back, SIGTERM (alone, with an output backing off, with end_state hold), SIGKILL and a
restart, SIGHUP, sensors missing at start-up, the systemd notify socket going away.  Light is judged
by what loopback receivers decode; health by ``GET /health``.  Counts over windows, never timings.
"""

from __future__ import annotations

import signal
import socket
import time


from faults_support import appear, output_state, wait_lit, write_venue, write_video, write_wav

START_S = 40.0  # generous: GL start-up on a loaded CI machine


def _ok(doc: dict) -> bool:
    return doc.get("status") == "ok" and all(output_state(doc, n) == "ok" for n in ("wall", "rim", "net"))


def test_a_receiver_that_dies_and_comes_back(receivers, venue, start_piece):
    """Art-Net receiver closed -> 'wall' backs off (health degraded, the others keep lighting);
    re-bound on the same port -> frames arrive again and health returns to ok."""
    piece = start_piece(venue)
    assert receivers.all_lit(10, START_S), piece.log()
    assert piece.wait_health(_ok, 10), (piece.last_health, piece.log())

    wall = receivers["wall"]
    wall.close()  # the node goes away: its port answers ICMP port-unreachable
    doc = piece.wait_health(lambda d: output_state(d, "wall") == "backoff", 10)
    assert doc, (piece.last_health, piece.log())
    assert doc["status"] == "degraded" and "output/wall" in doc["unhealthy"]
    assert "refused" in str(doc["outputs"]["wall"].get("last_error", "")).lower()
    # the light keeps flowing on the other controllers while one is down
    frames_before = doc["frames"]
    lit_rim = receivers["rim"].lit_in_window(1.0)
    assert lit_rim >= 10, lit_rim
    assert wait_lit(receivers["net"], 10, 3)

    t_back = time.monotonic()
    wall.reopen()  # the node comes back on the same address
    assert wait_lit(wall, 10, 15, after=t_back), piece.log()
    doc = piece.wait_health(_ok, 15)
    assert doc, (piece.last_health, piece.log())
    assert doc["frames"] > frames_before and doc["outputs"]["wall"]["errors"] >= 1
    # steady again: both universes of the wall lit within one window
    t0 = time.monotonic()
    time.sleep(1.0)
    got = {p.address for p in wall.since(t0) if p.nonzero}
    assert got == {0, 1}, got
    assert piece.proc.poll() is None


def test_sigterm_sends_the_final_blackout_and_stream_terminated(receivers, venue, start_piece):
    """SIGTERM mid-run: exit 0 within seconds; every receiver's last frame is all zero; sACN ends with
    three Stream_Terminated packets per universe."""
    piece = start_piece(venue)
    assert receivers.all_lit(20, START_S), piece.log()
    assert piece.wait_health(_ok, 10), (piece.last_health, piece.log())

    piece.signal(signal.SIGTERM)
    assert piece.wait(10) == 0, piece.log()
    time.sleep(0.2)  # the last datagrams drain into the receivers

    wall = receivers["wall"].snapshot()
    for universe in (0, 1):
        last = [p for p in wall if p.address == universe][-1]
        assert not last.nonzero and len(last.data) >= 90, (universe, last)
    net = receivers["net"].snapshot()
    assert not net[-1].nonzero and len(net[-1].data) == 90, net[-1]

    rim = receivers["rim"].snapshot()
    tail = rim[-3:]
    assert all(p.terminated for p in tail), [hex(p.options) for p in rim[-5:]]
    assert not any(p.terminated for p in rim[:-3]), "Stream_Terminated only at the very end"
    assert all(not p.nonzero for p in tail)
    before = rim[-4]
    assert not before.terminated and not before.nonzero, "the blackout frame precedes the goodbye"
    # sequence numbers keep counting through the goodbye (receivers drop out-of-order packets)
    seqs = [p.seq for p in rim[-4:]]
    assert all((b - a) % 256 == 1 for a, b in zip(seqs, seqs[1:])), seqs
    assert any(p.nonzero for p in rim), "the show was lit before it stopped"


def test_sigkill_mid_frame_then_a_restart_lights_again(receivers, venue, start_piece):
    """SIGKILL: the process dies at once (nothing can be sent: the last frame stays as it was, no
    goodbye); starting it again (what systemd Restart=always does) lights every receiver again."""
    piece = start_piece(venue)
    assert receivers.all_lit(10, START_S), piece.log()

    piece.signal(signal.SIGKILL)
    assert piece.wait(5) == -signal.SIGKILL
    time.sleep(0.3)
    counts = {k: r.total for k, r in receivers.rx.items()}
    time.sleep(1.0)
    assert {k: r.total for k, r in receivers.rx.items()} == counts, "a killed process sends nothing"
    assert not any(p.terminated for p in receivers["rim"].snapshot()), "no goodbye after SIGKILL"
    assert piece.health(0.5) is None

    t_restart = time.monotonic()
    piece.start()
    assert receivers.all_lit(10, START_S, after=t_restart), piece.log()
    doc = piece.wait_health(_ok, 10)
    assert doc, (piece.last_health, piece.log())
    lit = receivers["wall"].lit_in_window(1.0)
    assert lit >= 10, lit


def test_sigterm_while_a_receiver_is_down_still_exits_promptly(receivers, venue, start_piece):
    """Two faults at once: SIGTERM while 'wall' is backing off.  Exit 0 within seconds (closing an
    unreachable output does not hang), and the reachable controllers still get the blackout."""
    piece = start_piece(venue)
    assert receivers.all_lit(10, START_S), piece.log()
    receivers["wall"].close()
    assert piece.wait_health(lambda d: output_state(d, "wall") == "backoff", 10), (piece.last_health, piece.log())

    piece.signal(signal.SIGTERM)
    assert piece.wait(10) == 0, piece.log()
    time.sleep(0.2)
    assert not receivers["net"].snapshot()[-1].nonzero
    rim = receivers["rim"].snapshot()
    assert all(p.terminated and not p.nonzero for p in rim[-3:])


def test_end_state_hold_keeps_the_last_frame_lit(tmp_path, receivers, start_piece):
    """``[end_state] mode = "hold"``: on SIGTERM the final frame is the last picture (lit), then the
    sACN goodbye carries it too."""
    venue = write_venue(tmp_path / "hold", "127.0.0.1", receivers.ports, end_state="hold")
    piece = start_piece(venue)
    assert receivers.all_lit(10, START_S), piece.log()
    piece.signal(signal.SIGTERM)
    assert piece.wait(10) == 0, piece.log()
    time.sleep(0.2)
    wall = receivers["wall"].snapshot()
    assert all([p for p in wall if p.address == u][-1].nonzero for u in (0, 1))
    assert receivers["net"].snapshot()[-1].nonzero
    rim = receivers["rim"].snapshot()
    assert all(p.terminated and p.nonzero for p in rim[-3:])
    assert rim[-1].data == rim[-4].data, "the goodbye repeats the held frame"


def test_sighup_ends_the_show_like_sigterm(receivers, venue, start_piece):
    piece = start_piece(venue)
    assert receivers.all_lit(10, START_S), piece.log()
    piece.signal(signal.SIGHUP)
    assert piece.wait(10) == 0, piece.log()
    time.sleep(0.2)
    assert not receivers["net"].snapshot()[-1].nonzero
    assert all(p.terminated for p in receivers["rim"].snapshot()[-3:])


def test_sensors_missing_at_start_then_plugged_in(tmp_path, receivers, venue, start_piece):
    """Camera and microphone absent when the piece starts (files standing in for devices): it starts
    anyway, lights the room breathing on its own with health degraded (both sensors reopening); when
    they appear they are picked up by themselves and health returns to ok."""
    cam, mic = tmp_path / "camera.avi", tmp_path / "mic.wav"
    piece = start_piece(venue, extra=("--camera", str(cam), "--audio", str(mic)))
    assert receivers.all_lit(10, START_S), piece.log()
    doc = piece.wait_health(lambda d: {"sensor/camera", "sensor/audio"} <= set(d.get("unhealthy", ())), 10)
    assert doc, (piece.last_health, piece.log())
    assert doc["sensors"]["camera"]["state"] == "reopening" and doc["live_sensors"] == []
    assert receivers["wall"].lit_in_window(1.0) >= 10

    appear(write_video(tmp_path / "src.avi"), cam)
    appear(write_wav(tmp_path / "src.wav"), mic)
    doc = piece.wait_health(lambda d: d["status"] == "ok" and sorted(d.get("live_sensors", ())) ==
                            ["audio", "camera"], 20)
    assert doc, (piece.last_health, piece.log())
    assert doc["sensors"]["camera"]["state"] == "running" and doc["sensors"]["audio"]["state"] == "running"
    assert receivers["wall"].lit_in_window(1.0) >= 10
    assert piece.proc.poll() is None


def _notify_socket(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(0.2)
    return s


def _read_notes(sock, until, timeout):
    """Datagrams from the piece until one contains ``until`` (or the timeout); returns all of them."""
    got, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            continue
        if until in got[-1]:
            break
    return got


def test_systemd_notify_socket_vanishes_and_returns(tmp_path, receivers, venue, start_piece):
    """Under systemd (Type=notify, WatchdogSec): READY=1 then WATCHDOG=1 pings from the frame loop.
    The notify socket going away (systemd re-executing itself) does not disturb the light; when it
    is back the pings resume; SIGTERM says STOPPING=1."""
    path = tmp_path / "notify.sock"
    sock = _notify_socket(path)
    try:
        piece = start_piece(venue, env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
        notes = _read_notes(sock, "WATCHDOG=1", START_S)
        assert any("READY=1" in n for n in notes) and "WATCHDOG=1" in notes[-1], (notes, piece.log())
        sock.close()
        path.unlink()  # gone: every notification fails now
        assert receivers.all_lit(30, 5, after=time.monotonic()), piece.log()
        assert piece.wait_health(_ok, 5), piece.last_health
        sock = _notify_socket(path)  # back
        notes = _read_notes(sock, "WATCHDOG=1", 5)
        assert notes and "WATCHDOG=1" in notes[-1], notes
        assert piece.log().count("systemd notification failed") == 1, "logged once, not per ping"
        piece.signal(signal.SIGTERM)
        assert piece.wait(10) == 0, piece.log()
        assert any("STOPPING=1" in n for n in _read_notes(sock, "STOPPING=1", 2))
    finally:
        sock.close()
