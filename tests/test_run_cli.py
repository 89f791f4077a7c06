"""run.py as a user runs it: real processes, real signals."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def test_headless_live_run_prints_status_and_stops_cleanly_on_sigterm():
    p = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--no-leds", "--particles", "8192",
                          "--size", "160x90", "--osc-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=ENV, cwd=ROOT)
    try:
        line = ""
        deadline = time.monotonic() + 60
        while "fps" not in line and time.monotonic() < deadline:
            line = p.stdout.readline()
        assert "fps" in line and "particles" in line and "mood" in line and "sensors none" in line
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()


def test_layouts_check_counts_leds():
    r = run("layouts", "check", str(ROOT / "hardware" / "demo-venue.toml"))
    assert r.returncode == 0, r.stderr
    assert "LED" in r.stdout or "led" in r.stdout


def test_status_without_a_running_piece_says_so():
    r = run("status", "--url", "http://127.0.0.1:9/health")
    assert r.returncode == 1
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
