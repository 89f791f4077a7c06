"""hardware/test_leds.py end to end: run the script against a venue whose outputs point at a loopback
receiver, and check the bytes that arrive (and the calibration write-back with its .bak)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tests.support.udp import Receiver, decode

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hardware" / "test_leds.py"

LAYOUT = """# test layout: comments must survive the write-back
[[fixtures]]
name = "s1"
type = "strip"
start = [0.1, 0.0]
end = [0.1, 1.0]
count = 10
[fixtures.patch]
controller = "art"
universe = 0
order = "GRB"   # WS2812
[fixtures.calibration]
gamma = 2.0     # measured on site
white = [1.0, 1.0, 1.0]

[[fixtures]]
name = "s2"
type = "strip"
start = [0.2, 0.0]
end = [0.2, 1.0]
count = 10
[fixtures.patch]
controller = "art"
universe = 1
order = "BGR"
"""

VENUE = """
layouts = ["l.toml"]
[[outputs]]
name = "art"
protocol = "artnet"
host = "127.0.0.1"
port = {port}
fps = 100
"""


class Capture(Receiver):
    """Records every ArtDmx packet (universe, data) arriving on a loopback port, in order."""

    def parse(self, raw: bytes, t: float) -> tuple[int, bytes] | None:
        p = decode(raw, t)
        return (p.address, p.data) if p is not None and p.proto == "artnet" else None

    def sequence(self, universe: int, pixel: int = 0, width: int = 3) -> list[tuple[int, ...]]:
        """Distinct successive values of one pixel of one universe."""
        out: list[tuple[int, ...]] = []
        for u, data in self.packets:
            if u == universe:
                v = tuple(data[pixel * width:(pixel + 1) * width])
                if not out or out[-1] != v:
                    out.append(v)
        return out


@pytest.fixture
def rig(tmp_path):
    cap = Capture()
    (tmp_path / "l.toml").write_text(LAYOUT)
    (tmp_path / "v.toml").write_text(VENUE.format(port=cap.port))
    yield tmp_path, cap
    cap.close()


def run(tmp_path: Path, *args: str) -> str:
    r = subprocess.run([sys.executable, str(SCRIPT), "--venue", str(tmp_path / "v.toml"), *args],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_order_red_green_blue_in_each_colour_order(rig):
    tmp_path, cap = rig
    out = run(tmp_path, "order", "--seconds", "1.35", "--step", "0.4", "--fps", "40")
    assert out.splitlines()[1:4] == ["order: RED", "order: GREEN", "order: BLUE"]
    # s1 is GRB: red is the 2nd byte of a pixel; s2 is BGR: red is the 3rd byte
    seq1 = cap.sequence(0)
    assert seq1[:3] == [(0, 255, 0), (255, 0, 0), (0, 0, 255)]
    seq2 = cap.sequence(1)
    assert seq2[:3] == [(0, 0, 255), (0, 255, 0), (255, 0, 0)]
    assert seq1[-1] == (0, 0, 0) and seq2[-1] == (0, 0, 0)   # blackout at exit


def test_off_sends_zeros(rig):
    tmp_path, cap = rig
    run(tmp_path, "off", "--seconds", "0.3")
    assert cap.packets and all(not any(data) for _, data in cap.packets)


def test_universe_and_fixture_solo_and_identify(rig):
    tmp_path, cap = rig
    run(tmp_path, "universe", "1", "--seconds", "0.3", "--hold")
    last = {u: d for u, d in cap.packets}
    assert not any(last[0]) and set(last[1][:30]) == {255}
    cap.packets.clear()
    run(tmp_path, "fixture", "s1", "--seconds", "0.3", "--hold")
    last = {u: d for u, d in cap.packets}
    assert set(last[0][:30]) == {255} and not any(last[1])
    out = run(tmp_path, "identify", "--seconds", "0.5", "--step", "0.2")
    assert "identify s1: 10 LEDs on art universe 0 channel 1, GRB" in out and "identify s2" in out


def test_chase_dot_moves_from_start_to_end(rig):
    tmp_path, cap = rig
    run(tmp_path, "chase", "--seconds", "0.3", "--fps", "60")
    heads = []
    for u, data in cap.packets:
        if u == 0 and any(data):
            g = [data[i * 3 + 1] for i in range(10)]   # GRB: R is byte 1; the dot is white
            heads.append(max(range(10), key=lambda i: g[i]))
    assert len(set(heads)) >= 3
    assert all(b >= a for a, b in zip(heads, heads[1:]))   # index only grows: it runs start -> end


def test_white_is_power_limited(rig):
    tmp_path, cap = rig
    v = (tmp_path / "v.toml").read_text() + '\n[[power]]\nname = "psu"\namps = 0.2\nfixtures = ["s*"]\n'
    (tmp_path / "v.toml").write_text(v)
    out = run(tmp_path, "white", "--seconds", "0.3", "--hold")
    assert "psu" in out and "of 0.2 A" in out
    last = {u: d for u, d in cap.packets}
    total = sum(sum(last[u][:30]) for u in (0, 1)) / 255.0   # in full-channel units
    # 20 LEDs, 1 mA idle each, R 16 + G 11 + B 15 mA: under 200 mA means well under full white
    assert 0 < total < 3 * 20


def test_calibration_write_back_keeps_backup_and_comments(rig):
    tmp_path, cap = rig
    before = (tmp_path / "l.toml").read_text()
    out = run(tmp_path, "fixture", "s1", "--set-white", "1", "0.9", "0.8", "--set-gamma", "2.4",
              "--seconds", "0.2", "--write")
    assert "wrote s1" in out
    assert (tmp_path / "l.toml.bak").read_text() == before
    after = (tmp_path / "l.toml").read_text()
    assert "# measured on site" in after and "# test layout" in after and "# WS2812" in after
    data = tomllib.loads(after)
    cal = data["fixtures"][0]["calibration"]
    assert cal["gamma"] == pytest.approx(2.4) and cal["white"] == pytest.approx([1.0, 0.9, 0.8])
    assert "calibration" not in data["fixtures"][1]
    # a fixture without a calibration table gets one
    run(tmp_path, "fixture", "s2", "--set-gamma", "1.8", "--seconds", "0.1", "--write")
    data = tomllib.loads((tmp_path / "l.toml").read_text())
    assert data["fixtures"][1]["calibration"]["gamma"] == pytest.approx(1.8)
    assert data["fixtures"][0]["calibration"]["gamma"] == pytest.approx(2.4)


def test_bad_venue_is_a_clear_error(tmp_path):
    (tmp_path / "v.toml").write_text('layouts = ["missing.toml"]\n')
    r = subprocess.run([sys.executable, str(SCRIPT), "--venue", str(tmp_path / "v.toml"), "off", "--seconds", "0.1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "missing.toml: cannot read" in r.stdout


def test_interactive_keys_adjust_and_write_back(rig):
    """Drive the key interface through a real pseudo-terminal: next, white balance, gamma, write, quit."""
    import os
    import pty
    import time

    tmp_path, cap = rig
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, str(SCRIPT), "--venue", str(tmp_path / "v.toml"), "identify"],
                         stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    os.close(slave)
    try:
        time.sleep(1.0)            # let it start and enter cbreak mode
        for key in "n" + "rr" + "]" + "w" + "q":   # step to s2, red down twice, gamma up, write, quit
            os.write(master, key.encode())
            time.sleep(0.15)
        out, _ = p.communicate(timeout=20)
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out
    assert "identify s2" in out and "wrote s2" in out
    data = tomllib.loads((tmp_path / "l.toml").read_text())
    cal = data["fixtures"][1]["calibration"]
    assert cal["white"] == pytest.approx([0.96, 1.0, 1.0])
    assert cal["gamma"] == pytest.approx(2.3)   # leds/gamma default 2.2 + 0.1
    assert (tmp_path / "l.toml.bak").exists()
    assert data["fixtures"][0]["calibration"]["gamma"] == pytest.approx(2.0)   # s1 untouched


class TimedCapture(Receiver):
    """Every ArtDmx packet with its arrival time: (t, universe, data)."""

    def parse(self, raw: bytes, t: float):
        p = decode(raw, t)
        return (t, p.address, p.data) if p is not None and p.proto == "artnet" else None


def captured_frames(packets, venue) -> tuple[np.ndarray, np.ndarray]:
    """(T, N, 3) linear LED levels and their times, rebuilt from the packets (one frame per burst)."""
    pm = venue.patch
    c = pm.controllers[0]
    spans = {addr: (off, n) for addr, off, n in c.spans}
    buf = np.zeros(pm.total, np.uint8)
    frames, times, last_t = [], [], None
    for t, u, data in sorted(packets, key=lambda p: p[0]):
        if last_t is not None and t - last_t > 0.004 and frames is not None:   # a new burst: the last one is whole
            frames.append(buf.copy())
            times.append(last_t)
        off, n = spans[u]
        buf[pm.base[0] + off:pm.base[0] + off + n] = np.frombuffer(data[:n], np.uint8)
        last_t = t
    frames.append(buf.copy())
    times.append(last_t)
    rgb = np.stack([f[pm.dest[:, :3]] for f in frames]).astype(np.float64) / 255.0
    return rgb, np.asarray(times) - times[0]


@pytest.mark.parametrize("pattern", ["identify", "order", "chase", "gamma", "white", "universe 1", "fixture s2",
                                     "off"])
def test_every_pattern_at_its_fastest_step_stays_under_three_flashes_a_second(tmp_path, pattern):
    """Issue 14: every pattern, a new step every frame (--step 0.01 at 60 fps), captured on the wire by a loopback
    receiver: at most 3 general and 3 red flashes in any second, over the whole and in every region."""
    from installation.safety import venue_region
    from installation.venue import load_venue
    from tests.hardware.flash_count import report

    cap = TimedCapture()
    try:
        (tmp_path / "l.toml").write_text(LAYOUT)
        # a 2 m wide canvas seen from 1 m: a region is a 10-degree field, about 9 % of the canvas wide
        (tmp_path / "v.toml").write_text(VENUE.format(port=cap.port)
                                         + "\n[safety]\nviewing_distance_m = 1.0\ncanvas_width_m = 2.0\n")
        run(tmp_path, *pattern.split(), "--seconds", "2.5", "--step", "0.01", "--fps", "60")
        venue = load_venue(tmp_path / "v.toml")
        frames, times = captured_frames(list(cap.packets), venue)
    finally:
        cap.close()
    assert times[-1] > 2.0                              # a real capture over the whole run
    if pattern in ("identify", "order", "chase"):      # (unchanged frames are not sent again and again)
        assert len(times) > 60
    lay = venue.layout
    r = report(frames, times, lay.areas(), lay.positions, venue_region(venue))
    assert r.ok(), r
    if pattern in ("identify", "order"):
        assert frames.max() > 0.9                      # the patterns still show at full level


def test_a_bad_safety_section_is_a_clear_error(rig):
    tmp_path, cap = rig
    v = tmp_path / "v.toml"
    v.write_text(v.read_text() + "\n[safety]\nviewing_distance_m = -1\n")
    r = subprocess.run([sys.executable, str(SCRIPT), "--venue", str(v), "off", "--seconds", "0.1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "[safety]: viewing_distance_m must be a number of metres" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


@pytest.mark.parametrize("args, message", [
    (("white", "--set-white", "1", "nan", "1", "--write"), "--set-white 1 nan 1: give R G B each in 0..1"),
    (("white", "--set-gamma", "9", "--write"), "--set-gamma 9: give a gamma in 0.5..4"),   # was clamped to 4, written
    (("white", "--level", "5"), "--level 5: give a level in 0..1"),                        # was quietly 1
    (("white", "--fps", "nan"), "--fps nan: give frames per second above 0"),              # blamed the FlashLimiter
    (("white", "--seconds", "nan"), "--seconds nan: give a length above 0"),               # ran forever
])
def test_bad_numbers_are_refused_before_anything_is_lit(rig, args, message):
    tmp_path, cap = rig
    before = (tmp_path / "l.toml").read_text()
    r = subprocess.run([sys.executable, str(SCRIPT), "--venue", str(tmp_path / "v.toml"), *args]
                       + ([] if "--seconds" in args else ["--seconds", "0.1"]),
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert cap.total == 0 and (tmp_path / "l.toml").read_text() == before and not (tmp_path / "l.toml.bak").exists()


def test_a_write_back_that_fails_exits_1(rig):
    """--write that cannot replace the layout file said ERROR and still exited 0."""
    tmp_path, cap = rig
    before = (tmp_path / "l.toml").read_text()
    (tmp_path / "l.toml.tmp").mkdir()          # where the new file is written before it replaces the old one
    r = subprocess.run([sys.executable, str(SCRIPT), "--venue", str(tmp_path / "v.toml"), "fixture", "s2",
                        "--set-gamma", "1.8", "--seconds", "0.1", "--write"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "ERROR" in r.stdout and "l.toml" in r.stdout, r.stdout + r.stderr
    assert (tmp_path / "l.toml").read_text() == before
