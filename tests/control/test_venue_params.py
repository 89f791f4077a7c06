"""The venue's params file as a technician meets it in a live run (run.py, real GL, real OSC over UDP): the
calibration is loaded at start-up, loading a look keeps it, /tapestry/venue/save writes it, and a file that
names a look parameter stops the start-up with one line."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from installation import app
from installation.control.wire import encode_message, parse_packet
from installation.engine import declare_all
from installation.presets import load_venue_params
from tests.support.udp import free_port

ROOT = Path(__file__).resolve().parents[2]


def venue_copy(tmp: Path) -> Path:
    for name in ("demo-venue.toml", "strip-wall.toml", "hanging-net.toml", "net-points.csv"):
        if (ROOT / "hardware" / name).exists():
            shutil.copy(ROOT / "hardware" / name, tmp / name)
    return tmp / "demo-venue.toml"


def test_a_look_parameter_in_the_venue_params_file_stops_the_start_up(tmp_path):
    venue = venue_copy(tmp_path)
    (tmp_path / "demo-venue.params.toml").write_text('[params]\n"field/harmony" = 0.5\n')
    r = subprocess.run([sys.executable, "run.py", "--venue", str(venue), "--headless", "--seconds", "1",
                        "--osc-port", "0", "--presets", str(ROOT / "presets")], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "field/harmony: a look parameter, not a venue one" in last and "Traceback" not in r.stderr


def test_live_run_keeps_the_calibration_through_a_look_and_saves_it(tmp_path):
    venue = venue_copy(tmp_path)
    shutil.copytree(ROOT / "presets", tmp_path / "presets")
    (tmp_path / "demo-venue.params.toml").write_text('[params]\n"leds/master" = 0.5\n'
                                                     '"sensing/camera/roi/x0" = 0.125\n')
    port = free_port()
    proc = subprocess.Popen([sys.executable, "run.py", "--venue", str(venue), "--headless", "--seconds", "60",
                             "--osc-port", str(port), "--presets", str(tmp_path / "presets")], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)

    def send(address, *args):
        s.sendto(encode_message(address, *args), ("127.0.0.1", port))

    def wait(address, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, _ = s.recvfrom(65536)
            except socket.timeout:
                continue
            for m in parse_packet(data):
                if m.address == address:
                    return m.args
        raise AssertionError(f"no {address}")

    try:
        deadline = time.monotonic() + 90
        got = None
        while got is None and time.monotonic() < deadline:  # the show is up once it answers
            send("/tapestry/get", "leds/master")
            try:
                got = wait("/tapestry/value", timeout=1.0)
            except AssertionError:
                pass
        assert got == ("leds/master", 0.5)                  # the calibration, loaded at start-up
        send("/tapestry/field/harmony", 0.25)
        send("/tapestry/preset/save", "artist_look")
        assert wait("/tapestry/preset/saved") == ("artist_look",)
        send("/tapestry/leds/master", 0.75)                 # the technician calibrates after the save
        send("/tapestry/field/harmony", 0.875)
        send("/tapestry/preset/load", "artist_look", 0.0)
        assert wait("/tapestry/preset/loaded") == ("artist_look",)
        send("/tapestry/get", "field/harmony")
        assert wait("/tapestry/value") == ("field/harmony", 0.25)
        send("/tapestry/get", "leds/master")
        assert wait("/tapestry/value") == ("leds/master", 0.75)  # not undone by the look
        send("/tapestry/venue/save")
        wait("/tapestry/venue/saved")
    finally:
        proc.terminate()
        proc.wait(30)
        s.close()
    saved = load_venue_params(tmp_path / "demo-venue.params.toml", declare_all(extra=app._sensing_params()))
    assert saved["leds/master"] == 0.75 and saved["sensing/camera/roi/x0"] == 0.125
    assert "field/harmony" not in saved
