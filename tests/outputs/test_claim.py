"""One program at a time per LED controller (installation/outputs/claim.py), as an installer meets it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from installation.outputs.base import OutputConfig
from installation.outputs.claim import ControllerClaim, ControllersBusy
from tests.hardware.test_test_leds import LAYOUT, VENUE, Capture

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hardware" / "test_leds.py"


def test_a_controller_claimed_once_is_refused_with_who_holds_it(tmp_path):
    art = OutputConfig("a", "artnet", "10.0.0.5", 6454)
    first = ControllerClaim([art, OutputConfig("b", "ddp", "10.0.0.6")], directory=tmp_path)
    with pytest.raises(ControllersBusy) as e:
        ControllerClaim([OutputConfig("x", "artnet", "10.0.0.5")], directory=tmp_path)   # default port: same one
    assert "artnet 10.0.0.5:6454 is already driven by pid" in str(e.value) and str(os.getpid()) in str(e.value)
    # a different controller, or a disabled output, is nobody's business
    ControllerClaim([OutputConfig("y", "artnet", "10.0.0.7")], directory=tmp_path).release()
    ControllerClaim([OutputConfig("z", "artnet", "10.0.0.5", enabled=False)], directory=tmp_path).release()
    first.release()
    ControllerClaim([art], directory=tmp_path).release()   # given back


def test_a_refused_claim_holds_nothing(tmp_path):
    held = ControllerClaim([OutputConfig("b", "ddp", "10.0.0.6")], directory=tmp_path)
    with pytest.raises(ControllersBusy):
        ControllerClaim([OutputConfig("a", "artnet", "10.0.0.5"), OutputConfig("b", "ddp", "10.0.0.6")],
                        directory=tmp_path)
    ControllerClaim([OutputConfig("a", "artnet", "10.0.0.5")], directory=tmp_path).release()   # not left claimed
    held.release()


def test_a_program_killed_outright_leaves_nothing_claimed(tmp_path):
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]);"
            "from installation.outputs.base import OutputConfig;"
            "from installation.outputs.claim import ControllerClaim;"
            "c = ControllerClaim([OutputConfig('a', 'artnet', '10.0.0.5')], directory=sys.argv[2]);"
            "print('held', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(ControllersBusy):
            ControllerClaim([OutputConfig("a", "artnet", "10.0.0.5")], directory=tmp_path)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    ControllerClaim([OutputConfig("a", "artnet", "10.0.0.5")], directory=tmp_path).release()


def test_two_test_patterns_on_the_same_leds_cannot_run_at_once(tmp_path):
    """The review's case: `test_leds.py white` and `test_leds.py off` together made every region flash 7 times a
    second on the wire.  The second is refused with one clear line naming the first; once that has ended, it runs."""
    cap = Capture()
    try:
        (tmp_path / "l.toml").write_text(LAYOUT)
        (tmp_path / "v.toml").write_text(VENUE.format(port=cap.port))
        cmd = [sys.executable, str(SCRIPT), "--venue", str(tmp_path / "v.toml")]
        first = subprocess.Popen(cmd + ["white", "--seconds", "30"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, text=True)
        try:
            deadline = time.monotonic() + 20
            while not cap.packets and time.monotonic() < deadline:
                time.sleep(0.05)
            assert cap.packets, "the first program never lit the LEDs"
            r = subprocess.run(cmd + ["off", "--seconds", "0.2"], capture_output=True, text=True, timeout=30,
                               stdin=subprocess.DEVNULL)
            lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
            assert r.returncode == 2 and len(lines) == 1, r.stdout + r.stderr
            assert f"artnet 127.0.0.1:{cap.port} is already driven by pid {first.pid}" in lines[0]
            assert "test_leds.py" in lines[0] and "Traceback" not in r.stderr
        finally:
            first.send_signal(signal.SIGINT)
            first.wait(20)
        r = subprocess.run(cmd + ["off", "--seconds", "0.2"], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        cap.close()


def test_every_program_claims_in_the_same_place_whatever_its_tmp(monkeypatch):
    """The service runs with a private /tmp (PrivateTmp=yes) and its own TMPDIR may differ from a login's:
    the claims live in /run/lock, which the unit may write, so the show and test_leds.py see each other."""
    from installation.outputs.claim import default_directory
    monkeypatch.delenv("TAPESTRY_CLAIMS_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", "/nonexistent/elsewhere")
    d = default_directory()
    assert d == Path("/run/lock/tapestry-controllers") or not Path("/run/lock").is_dir()
    unit = (ROOT / "hardware" / "tapestry.service").read_text()
    writable = [w.lstrip("-") for line in unit.splitlines() if line.startswith("ReadWritePaths=")
                for w in line.split("=", 1)[1].split()]
    assert any(str(d).startswith(w.rstrip("/") + "/") for w in writable), writable


def test_sacn_multicast_is_claimed_per_universe(tmp_path):
    """Multicast sACN goes to each universe's group whatever `host` says: two venues on different universes
    share nothing, the same universe is refused however the host is written."""
    a = OutputConfig("a", "sacn", "127.0.0.1", options={"multicast": True})
    b = OutputConfig("b", "sacn", "10.0.0.9", options={"multicast": True})
    first = ControllerClaim([(a, [1, 2])], directory=tmp_path)
    ControllerClaim([(b, [3])], directory=tmp_path).release()
    with pytest.raises(ControllersBusy, match="sacn multicast universe 2"):
        ControllerClaim([(b, [2])], directory=tmp_path)
    first.release()


def test_a_claim_that_cannot_be_made_is_one_clear_error(tmp_path):
    """A lock file that cannot be opened (here a directory in its place; for another user a folder they may
    not write) is refused with a line naming it, not a traceback."""
    (tmp_path / "artnet_10.0.0.5_6454.lock").mkdir()
    with pytest.raises(ControllersBusy, match="cannot claim artnet 10.0.0.5:6454"):
        ControllerClaim([OutputConfig("a", "artnet", "10.0.0.5")], directory=tmp_path)


def test_a_link_planted_in_the_shared_directory_is_never_followed(tmp_path):
    """Anyone may write the shared directory: a symbolic or hard link named like a claim must not make a
    program truncate, chmod or write a file it points at (review: it emptied a user's presets file)."""
    shared = tmp_path / "claims"
    victim = tmp_path / "presets.toml"
    victim.write_text("precious = 1\n")
    victim.chmod(0o600)
    shared.mkdir(mode=0o1777)
    shared.chmod(0o1777)
    (shared / "artnet_10.0.0.5_6454.lock").symlink_to(victim)
    with pytest.raises(ControllersBusy, match="cannot claim artnet 10.0.0.5:6454"):
        ControllerClaim([OutputConfig("a", "artnet", "10.0.0.5")], directory=shared)
    os.link(victim, shared / "ddp_10.0.0.6_4048.lock")
    with pytest.raises(ControllersBusy, match="not a plain claim file"):
        ControllerClaim([OutputConfig("b", "ddp", "10.0.0.6")], directory=shared)
    assert victim.read_text() == "precious = 1\n" and (victim.stat().st_mode & 0o777) == 0o600


def test_a_shared_directory_others_could_empty_or_a_linked_one_is_refused(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)   # writable by all, not sticky: anyone could delete a held claim's file
    with pytest.raises(ControllersBusy, match="may be emptied by others"):
        ControllerClaim([OutputConfig("a", "artnet", "10.0.0.5")], directory=loose)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ControllersBusy, match="not a directory"):
        ControllerClaim([OutputConfig("a", "artnet", "10.0.0.5")], directory=tmp_path / "linked")
    made = tmp_path / "fresh" / "claims"
    ControllerClaim([OutputConfig("a", "artnet", "10.0.0.5")], directory=made).release()
    assert (made.stat().st_mode & 0o7777) == 0o1777


def test_a_fifo_planted_as_a_claim_is_refused_at_once(tmp_path):
    """Opening a FIFO waits for a writer for ever: a planted one would hang the show at its start."""
    shared = tmp_path / "claims"
    shared.mkdir()
    shared.chmod(0o1777)
    os.mkfifo(shared / "artnet_10.0.0.9_6454.lock", 0o644)
    t0 = time.monotonic()
    with pytest.raises(ControllersBusy, match="not a plain claim file"):
        ControllerClaim([OutputConfig("a", "artnet", "10.0.0.9")], directory=shared)
    assert time.monotonic() - t0 < 5
