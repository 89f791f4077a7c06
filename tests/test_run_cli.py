"""run.py as a user runs it: real processes, real signals."""

import json
import re
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}


def run(*args, timeout=120):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=ROOT)


def test_presets_lists_the_story_with_descriptions():
    r = run("presets")
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines()]
    for name in ("harmony", "tension", "breakdown", "restoration", "symbiosis"):
        assert name in names
    assert all(len(line.split(None, 1)) == 2 for line in r.stdout.splitlines())


def test_params_prints_the_osc_address_map():
    r = run("params")
    assert r.returncode == 0, r.stderr
    assert "/tapestry/field/malfunction" in r.stdout and "/tapestry/show/master" in r.stdout


def test_render_writes_an_mp4_with_progress(tmp_path):
    out = tmp_path / "clip.mp4"
    r = run("render", "--preset", "symbiosis", "--seconds", "0.5", "--fps", "10", "--size", "160x90",
            "--particles", "4096", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 1000
    assert "ETA" in r.stderr and "real time" in r.stderr


def test_render_with_an_unknown_preset_says_which_exist(tmp_path):
    r = run("render", "--preset", "nope", "--seconds", "0.2", "--out", str(tmp_path / "x.mp4"))
    assert r.returncode == 2
    assert "nope" in r.stderr and "harmony" in r.stderr and "Traceback" not in r.stderr


def free_port() -> int:
    """A port the OS chooses (never a show's well-known one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_on_os_ports(tmp_path: Path) -> Path:
    """The demo venue with its outputs (and so its built-in loopback receivers) on OS-chosen ports."""
    text = (ROOT / "hardware" / "demo-venue.toml").read_text()
    text = text.replace('layouts = ["strip-wall.toml", "hanging-net.toml"]',
                        f'layouts = ["{ROOT}/hardware/strip-wall.toml", "{ROOT}/hardware/hanging-net.toml"]')
    socks = []
    while 'host = "127.0.0.1" ' in text:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        text = text.replace('host = "127.0.0.1" ', f'port = {s.getsockname()[1]}\nhost = "127.0.0.1"\n#', 1)
    for s in socks:
        s.close()
    out = tmp_path / "demo.toml"
    out.write_text(text)
    return out


def test_the_suite_runs_beside_a_live_show(a_live_show_holds_its_ports):
    """conftest holds a live show's default ports for the whole session (those a real show or another
    program held at the start stay with it): no test can bind them, so every test that passes ran beside
    a show without touching it."""
    from tests.conftest import SHOW_PORTS
    kinds = dict((port, kind) for kind, port in SHOW_PORTS)
    for port in a_live_show_holds_its_ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kinds[port] == "udp" else socket.SOCK_STREAM)
        with s, pytest.raises(OSError):
            s.bind(("127.0.0.1", port))


def test_headless_run_off_a_terminal_writes_no_status_lines_and_status_reports_it(tmp_path):
    """Under systemd stdout is not a terminal: no per-second line (86,000 journal lines a day); the state
    is in `run.py status` (exit 0 healthy, --json for machines) and the log gets only changes and summaries."""
    health = free_port()
    p = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--headless", "--particles", "8192",
                          "--size", "160x90", "--osc-port", "0", "--health-port", str(health),
                          "--venue", str(demo_on_os_ports(tmp_path))],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=ROOT)
    try:
        deadline = time.monotonic() + 90
        doc = None
        while time.monotonic() < deadline:
            r = run("status", "--url", f"http://127.0.0.1:{health}/health", "--json", timeout=30)
            if r.returncode != 2:
                doc = json.loads(r.stdout)
                if doc.get("frames", 0) > 30:
                    break
            time.sleep(1)
        assert doc is not None and doc["status"] == "ok" and r.returncode == 0, (doc, r.stderr)
        # the demo venue's outputs are heard by the built-in loopback receivers: working, no refusals
        assert [o["state"] for o in doc["leds"]["outputs"]] == ["ok", "ok", "ok"]
        assert doc["scene"] == "harmony"
        text = run("status", "--url", f"http://127.0.0.1:{health}/health")
        assert text.returncode == 0 and "status    OK" in text.stdout and "{" not in text.stdout
        time.sleep(10)  # ten more seconds of steady running: a per-second line would show here
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=30)
        assert p.returncode == 0
    finally:
        if p.poll() is None:
            p.kill()
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert not any(" fps | frame " in ln for ln in lines), lines
    assert not any("Connection refused" in ln for ln in lines), lines
    # start-up lines plus the stop; over 10 minutes only two summaries would come on top
    assert len(lines) < 20, lines


@pytest.mark.parametrize("args, message", [
    (("--fps", "0"), "--fps 0"),
    (("--seconds", "-1"), "--seconds -1"),
    (("--size", "641x361"), "even sides"),
    (("--sensors", "README.md"), "not a sensor recording"),   # a wrong file given: no render without its sensors
    (("--audio", "README.md"), "README.md: not a sound file"),   # a wrong file given: was a wave.Error traceback
    (("--seed", "-1"), "--seed -1: give a whole number 0 or more"),   # was a numpy traceback
])
def test_render_refuses_bad_inputs_in_one_line(tmp_path, args, message):
    out = tmp_path / "x.mp4"
    r = run("render", *args, "--out", str(out))
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (("--seconds", "nan"), "--seconds nan: give a length above 0"),      # ran forever
    (("--seconds", "0"), "--seconds 0: give a length above 0"),          # ran forever
    (("--fps", "0", "--no-leds"), "--fps 0: give frames per second"),    # a traceback from the clock
    (("--watchdog", "0"), "--watchdog 0"),                               # a traceback from the watchdog
    (("--osc-port", "70000"), "--osc-port 70000: give a port"),          # a traceback from the OSC config
    (("--health-port", "-5"), "--health-port -5: give a port"),          # ran with a traceback and no /health
    (("--particles", "0"), "--particles 0: give a number of particles"),  # ran the default 262,144
    (("--seed", "-5"), "--seed -5: give a whole number 0 or more"),      # a numpy traceback
    (("--log-level", "LOUD"), "--log-level LOUD: give DEBUG"),           # a traceback from the logging setup
    (("--record-sensors", "night.jsonl"), "no camera or microphone to record"),   # ran, recording nothing
    (("--audio", "a.wav", "--record-sensors", "no/such/night.jsonl"), "no folder 'no/such'"),   # a late traceback
])
def test_live_refuses_bad_numbers_in_one_line_before_starting(tmp_path, args, message):
    ports = {"--osc-port": "0", "--health-port": "0"}
    for opt in args[::2]:
        ports.pop(opt, None)
    r = run("--headless", "--size", "160x90", "--venue", str(demo_on_os_ports(tmp_path)), "--seconds", "1",
            *(x for kv in ports.items() for x in kv), *args, timeout=60)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("tapestry: ") and message in lines[0], \
        r.stderr


@pytest.mark.parametrize("particles", ["0", "-1", "100000000"])
def test_render_refuses_a_particle_count_out_of_range(tmp_path, particles):
    """--particles 0 rendered the default 262,144 and -1 rendered 1,024, saying nothing."""
    out = tmp_path / "x.mp4"
    r = run("render", "--particles", particles, "--seconds", "0.1", "--size", "160x90", "--out", str(out))
    assert r.returncode == 2 and f"--particles {particles}: give a number of particles in 1,024..8,388,608" \
        in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists()


def test_render_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.png").write_bytes(b"x")
    r = run("render", "--seconds", "0.2", "--out", str(tmp_path) + "/")
    assert r.returncode == 2 and "not empty" in r.stderr and (tmp_path / "keep.png").read_bytes() == b"x"


def test_render_ctrl_c_leaves_a_playable_partial_and_one_line(tmp_path):
    import cv2
    out = tmp_path / "long.mp4"
    p = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "render", "--seconds", "600", "--fps", "10",
                          "--size", "160x90", "--particles", "4096", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (out.exists() and out.stat().st_size > 2000):
            time.sleep(0.5)
        time.sleep(2)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130 and "Traceback" not in err and "interrupted: wrote" in err, err
    cap = cv2.VideoCapture(str(out))
    ok, frame = cap.read()
    assert ok and frame.shape[:2] == (90, 160)


def test_venue_check_exits_2_on_any_section_error(tmp_path):
    bad = tmp_path / "v.toml"
    bad.write_text((ROOT / "hardware" / "demo-venue.toml").read_text().replace("layouts = [\"", "layouts = [\"../../"
                   + str(ROOT / "hardware") + "/").replace("[scenes]", "[scenes]\nfade = 3"))
    r = run("venue", "check", str(bad))
    assert r.returncode == 2 and "scenes.fade: unknown key" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    r = run("layouts", "check", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "cannot read" in r.stderr
    assert run("venue", "check", str(ROOT / "hardware" / "demo-venue.toml")).returncode == 0
    r = run("venue", "check", str(ROOT / "hardware" / "strip-wall.toml"))   # said OK; the show then refused it
    assert r.returncode == 2 and "a layout file ([[fixtures]]), not a venue" in r.stderr, r.stdout + r.stderr


def test_install_service_refuses_a_unit_that_would_not_start():
    r = run("install-service", "--dry-run", "--venue", "/nope.toml", "--user", "nobody")
    assert r.returncode == 2 and "/nope.toml" in r.stderr and "[Service]" not in r.stdout
    r = run("install-service", "--dry-run", "--user", "nosuchuser-tapestry")
    assert r.returncode == 2 and "no such user" in r.stderr


def test_layouts_check_counts_leds():
    r = run("layouts", "check", str(ROOT / "hardware" / "demo-venue.toml"))
    assert r.returncode == 0, r.stderr
    assert "LED" in r.stdout or "led" in r.stdout


def test_status_without_a_running_piece_says_so():
    r = run("status", "--url", "http://127.0.0.1:9/health")
    assert r.returncode == 2  # unreachable (1 is degraded, 0 healthy)
    assert "Traceback" not in r.stderr and r.stderr.strip()


def test_install_service_dry_run_prints_a_notify_unit_with_a_watchdog():
    r = run("install-service", "--dry-run", "--user", "nobody")
    assert r.returncode == 0, r.stderr
    assert "Type=notify" in r.stdout and "WatchdogSec=" in r.stdout and "run.py" in r.stdout


def test_docs_address_map_matches_the_parameter_tree():
    # docs/osc.md is what artists build TouchOSC layouts from: it must list every declared path.
    r = run("params")
    doc = (ROOT / "docs" / "osc.md").read_text()
    paths = [line.split("`")[1] for line in r.stdout.splitlines() if line.startswith("| `/tapestry/")]
    missing = [p for p in paths if p not in doc]
    assert paths and not missing, f"run `python run.py params --update-docs`: {missing}"


def test_render_with_an_unknown_preset_creates_no_file(tmp_path):
    out = tmp_path / "x.mp4"
    r = run("render", "--preset", "nope", "--seconds", "0.2", "--out", str(out))
    assert r.returncode == 2 and not out.exists()


def test_a_failed_start_tears_down_what_it_built(tmp_path):
    """A bad preset after the venue's receivers, signal handlers and GL were set up: the start fails with
    one StartupError and leaves nothing behind (ports free again, Ctrl-C handler restored)."""
    from installation import app
    venue = demo_on_os_ports(tmp_path)
    import tomllib
    ports = [o["port"] for o in tomllib.loads(venue.read_text())["outputs"]]
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(app.StartupError, match="nope"):
        app.run_live(app.LiveArgs(venue=venue, preset="nope", headless=True, size=(160, 90), particles=4096,
                                  osc_port=0, health_port=0))
    assert signal.getsignal(signal.SIGINT) is before
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))  # the built-in receivers closed their sockets


def _options_without_help(text: str) -> list[str]:
    """The options listed in an argparse ``--help`` text that have no description."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() in ("options:", "optional arguments:"))
    bare = []
    body = lines[start + 1:]
    for i, line in enumerate(body):
        if not line.startswith("  -"):
            continue
        described = len(re.split(r"\s{2,}", line.strip(), maxsplit=1)) == 2
        follows = i + 1 < len(body) and body[i + 1].startswith("   ") and not body[i + 1].startswith("  -")
        if not (described or follows):
            bare.append(line.strip())
    return bare


@pytest.mark.parametrize("script", ["run.py", "hardware/test_leds.py"])
def test_every_option_of_every_command_says_what_it_is_for(script):
    """A technician or installer reading ``SCRIPT COMMAND --help`` learns what each option takes."""
    def helptext(*args):
        r = subprocess.run([sys.executable, str(ROOT / script), *args, "--help"], capture_output=True, text=True,
                           timeout=60, env=ENV, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        return r.stdout

    top = helptext()
    commands = re.search(r"\{([a-z,-]+)\}", top).group(1).split(",")
    assert len(commands) >= 5, commands
    missing = {c or script: _options_without_help(helptext(c) if c else top) for c in [None] + commands}
    assert not any(missing.values()), {c: m for c, m in missing.items() if m}
