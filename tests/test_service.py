"""sd_notify on a real unix datagram socket, the frame watchdog with real threads, the unit file."""

from __future__ import annotations

import getpass
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from installation.schema import ConfigError
from installation.service import FrameWatchdog, Notifier, ServiceError, install_service, render_unit

REPO = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield path, sock
    sock.close()


def received(sock, timeout=0.0):
    """All datagrams waiting (waiting at most ``timeout`` for the first)."""
    out = []
    sock.settimeout(timeout if timeout > 0 else None)
    if timeout <= 0:
        sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
            sock.setblocking(False)
    except (BlockingIOError, socket.timeout):
        pass
    return out


def test_notifier_speaks_sd_notify(notify_socket):
    path, sock = notify_socket
    clock = FakeClock()
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"}, clock=clock)
    assert n.enabled and n.watchdog_interval_s == 2.0
    assert n.ready()
    assert sock.recv(4096) == b"READY=1"
    assert n.status("playing preset dusk\nsecond line")
    assert sock.recv(4096) == b"STATUS=playing preset dusk second line"
    assert n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert not n.watchdog()                 # rate-limited to WATCHDOG_USEC / 2
    clock.t += 1.9
    assert not n.watchdog()
    clock.t += 0.2
    assert n.watchdog()
    assert n.stopping()
    assert received(sock, 1.0) == ["WATCHDOG=1", "STOPPING=1"]
    n.close()
    assert not n.ready()


def test_notifier_abstract_socket():
    name = f"tapestry-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.ready("up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"
    finally:
        sock.close()


def test_notifier_is_a_no_op_without_systemd(tmp_path):
    n = Notifier({})
    assert not n.enabled
    assert not any([n.ready(), n.status("x"), n.watchdog(), n.stopping()])
    # a socket path nobody listens on: sends fail quietly
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert gone.enabled and not gone.ready()
    # a watchdog armed for another process is not ours
    other = Notifier({"NOTIFY_SOCKET": str(tmp_path / "x"), "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert not other.watchdog()


def test_stalled_loop_triggers_on_stall_and_a_beating_one_does_not():
    stalled = threading.Event()
    calls = []

    def on_stall(seconds):
        calls.append(seconds)
        stalled.set()

    wd = FrameWatchdog(0.5, on_stall=on_stall, poll_s=0.02).start()
    try:
        end = time.monotonic() + 1.2
        while time.monotonic() < end:       # a live loop: 100 fps for 1.2 s, over two timeouts long
            wd.beat()
            time.sleep(0.01)
        assert calls == []
        assert stalled.wait(5.0)            # the loop stops: noticed within timeout (+ margin)
        assert calls[0] >= 0.5
        time.sleep(0.2)
        assert len(calls) == 1              # once per stall
        wd.beat()                           # beats resume: re-armed
        assert wd.since_last_beat < 0.5
    finally:
        wd.stop()


def test_a_stall_logs_where_the_frame_loop_is_stuck(caplog):
    release = threading.Event()
    stalled = threading.Event()

    def slow_preset_read():                 # stands in for whatever call never returns
        release.wait(10)

    def frame_loop(wd):
        wd.beat()
        slow_preset_read()

    wd = FrameWatchdog(0.3, on_stall=lambda s: stalled.set(), poll_s=0.02).start()
    loop = threading.Thread(target=frame_loop, args=(wd,), name="frames")
    try:
        with caplog.at_level(logging.CRITICAL, logger="installation.service"):
            loop.start()
            assert stalled.wait(5.0)
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "frame loop stuck here" in text and "slow_preset_read" in text and "frame_loop" in text
    finally:
        release.set()
        loop.join(5)
        wd.stop()


def test_systemd_pings_come_only_from_beats(notify_socket):
    path, sock = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000"})   # ping every 20 ms
    stalled = threading.Event()
    wd = FrameWatchdog(0.3, on_stall=lambda s: stalled.set(), notifier=notifier, poll_s=0.02).start()
    hung, release = threading.Event(), threading.Event()

    def frame_loop():
        for _ in range(40):
            wd.beat()
            time.sleep(0.01)
        hung.set()
        release.wait(10)                    # the loop hangs

    t = threading.Thread(target=frame_loop, daemon=True)
    t.start()
    try:
        assert hung.wait(10)
        assert stalled.wait(5.0)
        pings = received(sock)
        assert len(pings) >= 3 and set(pings) == {"WATCHDOG=1"}
        assert received(sock, 0.5) == []    # hung loop: no more pings, systemd will act
        assert wd.since_last_beat >= 0.3
    finally:
        release.set()
        wd.stop()
        t.join(2)


def run_script(body, timeout=30):
    lines = [
        "import sys, time",
        f"sys.path.insert(0, {str(REPO)!r})",
        "from installation.service import FrameWatchdog, default_on_stall",
        textwrap.dedent(body).strip(),
        "FrameWatchdog(0.3, on_stall=default_on_stall(blackout=blackout, blackout_timeout_s=0.5)).start()",
        "time.sleep(20)",
        "sys.exit(0)",
    ]
    return subprocess.run([sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True,
                          timeout=timeout)


def test_default_stall_handler_blacks_out_and_exits_70(tmp_path):
    flag = tmp_path / "blackout"
    proc = run_script(f"""
        def blackout():
            open({str(flag)!r}, "w").write("dark")
    """)
    assert proc.returncode == 70, proc.stderr
    assert flag.read_text() == "dark"


def test_default_stall_handler_exits_even_if_blackout_hangs():
    proc = run_script("""
        def blackout():
            time.sleep(60)
    """)
    assert proc.returncode == 70, proc.stderr


def test_default_stall_handler_exits_even_if_logging_is_stuck(tmp_path):
    flag = tmp_path / "blackout"
    proc = run_script(f"""
        import logging, threading
        class Stuck(logging.Handler):
            def emit(self, record):
                time.sleep(60)          # a hung disk: holds the handler lock
        logging.getLogger().addHandler(Stuck())
        threading.Thread(target=lambda: logging.getLogger("frame").warning("x"), daemon=True).start()
        def blackout():
            open({str(flag)!r}, "w").write("dark")
    """)
    assert proc.returncode == 70, proc.stderr
    assert flag.read_text() == "dark"


def test_install_service_dry_run_and_write(tmp_path):
    lines = []
    demo = str(REPO / "hardware" / "demo-venue.toml")
    text = install_service(str(REPO), demo, user="nobody", dry_run=True,
                           python="/opt/venv/bin/python", unit_dir=str(tmp_path), out=lines.append)
    assert not (tmp_path / "tapestry.service").exists()
    assert (f"ExecStart=/opt/venv/bin/python {REPO}/run.py --log-dir /var/log/tapestry "
            f"--venue {demo} --headless") in text
    for key in ("Type=notify", "WatchdogSec=10", "Restart=always", "RestartSec=2", "StartLimitBurst=",
                "StartLimitIntervalSec=", "User=nobody", f"WorkingDirectory={REPO}", "EGL_PLATFORM="):
        assert key in text
    assert not re.search(r"@[A-Z_]+@", text)                     # every placeholder filled
    joined = "\n".join(lines)
    assert "systemctl daemon-reload" in joined and "enable --now tapestry.service" in joined
    install_service(str(REPO), demo, user="nobody", unit_dir=str(tmp_path),
                    python="/opt/venv/bin/python", out=lines.append)
    assert (tmp_path / "tapestry.service").read_text() == text
    with pytest.raises(ValueError):
        render_unit(str(REPO), "my venue.toml", "gallery")
    with pytest.raises(ServiceError, match="no such user"):      # a unit that would crash-loop is refused
        install_service(str(REPO), demo, user="nosuchuser-tapestry", dry_run=True, out=lines.append)
    with pytest.raises(ConfigError, match="nope.toml: cannot read"):
        install_service(str(REPO), str(tmp_path / "nope.toml"), user="nobody", dry_run=True, out=lines.append)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_file_passes_systemd_analyze_verify(tmp_path):
    unit = tmp_path / "tapestry.service"
    unit.write_text(render_unit(str(REPO), "hardware/demo-venue.toml", getpass.getuser(), sys.executable))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [l for l in (proc.stdout + proc.stderr).splitlines() if str(unit) in l or "tapestry" in l]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr
