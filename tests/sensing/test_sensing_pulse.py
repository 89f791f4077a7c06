"""The microphone through a real PortAudio device: PulseAudio's null sink, a sine source, a server that dies.

Skips only when pulseaudio is not installed (CI installs it: apt ``pulseaudio``).
"""

from __future__ import annotations

import shutil
import tempfile
import time

import pytest

from installation.params import ParamTree
from installation.sensing import PARAMS
from installation.sensing.microphone import MicCapture
from tests.support.pulse import Pulse

pytestmark = pytest.mark.skipif(shutil.which("pulseaudio") is None or shutil.which("pactl") is None,
                                reason="pulseaudio/pactl not installed (apt install pulseaudio)")

@pytest.fixture
def pulse(monkeypatch):
    root = tempfile.mkdtemp(prefix="tapestry-pa-")  # short path: unix socket names are limited
    p = Pulse(root)
    p.start()
    monkeypatch.setenv("PULSE_SERVER", p.env["PULSE_SERVER"])
    try:
        yield p
    finally:
        p.stop()
        shutil.rmtree(root, ignore_errors=True)


def read_until(mic: MicCapture, cond, limit: float = 10.0):
    """Read like the engine does (every ~10 ms) until ``cond(frame)``; returns the last frame."""
    end = time.monotonic() + limit
    f = None
    while time.monotonic() < end:
        f = mic.read()
        if f is not None and cond(f):
            return f
        time.sleep(0.01)
    return f


def test_microphone_through_portaudio_pulse_device_survives_a_server_restart(pulse):
    tree = ParamTree.from_specs(PARAMS)
    mic = MicCapture("pulse", tree, backoff=(0.1, 0.4))  # chosen by name, not index; short backoff for the test
    mic.start()
    try:
        quiet = read_until(mic, lambda f: f.t > 0.5)
        assert quiet is not None and mic.state == "running" and mic.device_name == "pulse"
        assert quiet.loudness == 0 and quiet.onset_rate == 0  # the null sink's monitor is silent

        # Play the 440 Hz tone into the sink: the monitor now hears it.
        assert pulse.pactl("load-module", "module-loopback", "source=tone", "sink=virt",
                           "latency_msec=20").returncode == 0
        start = read_until(mic, lambda f: f.loudness > 0.5)
        tone = read_until(mic, lambda f: f.t > start.t + 1.0)  # past the switch-on click
        assert tone.loudness > 0.5 and tone.voice > 0.5 and tone.air < 0.2
        assert tone.level_dbfs > -40

        # The device vanishes (server dies): noticed, reopened with backoff after PortAudio re-initialises.
        opens = mic.opens
        pulse.stop()
        end = time.monotonic() + 10
        while mic.state == "running" and time.monotonic() < end:
            time.sleep(0.02)
        assert mic.state == "reopening", mic.last_error
        pulse.start()
        end = time.monotonic() + 20
        while not (mic.opens > opens and mic.state == "running" and mic.age() < 0.5) and time.monotonic() < end:
            time.sleep(0.05)
        assert mic.opens > opens and mic.state == "running", mic.last_error
        back = read_until(mic, lambda f: f.t > 0 and mic.age() < 0.5)
        assert back is not None
    finally:
        assert mic.stop(3.0)


def test_sense_command_live_on_the_pulse_device(pulse, tmp_path, capsys):
    import csv

    from installation.sensing import run_sense

    assert pulse.pactl("load-module", "module-loopback", "source=tone", "sink=virt",
                       "latency_msec=20").returncode == 0
    out = tmp_path / "live.csv"
    assert run_sense(None, "pulse", str(out), seconds=2.5) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) > 30  # 30 rows a second without a camera
    heard = [r for r in rows if r["level_dbfs"] != "nan"]
    assert heard and max(float(r["level_dbfs"]) for r in heard) > -40
    assert "sense:" in capsys.readouterr().out
