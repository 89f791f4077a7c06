"""A private PulseAudio daemon for tests and benches: a null sink ``virt`` (its monitor is the default
source) and a 440 Hz sine source ``tone``, on its own socket, with no D-Bus and no user config."""

from __future__ import annotations

import os
import subprocess
import time

from tests.support.procs import stop_process

CONF = """\
load-module module-native-protocol-unix auth-anonymous=1 socket={sock}
load-module module-null-sink sink_name=virt
load-module module-sine-source source_name=tone frequency=440
set-default-source virt.monitor
"""


class Pulse:
    """A private PulseAudio daemon in a temporary directory (its own socket, no D-Bus, no user config)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.sock = os.path.join(root, "native")
        self.conf = os.path.join(root, "pa.conf")
        with open(self.conf, "w") as f:
            f.write(CONF.format(sock=self.sock))
        self.env = dict(os.environ, HOME=root, XDG_RUNTIME_DIR=root, XDG_CONFIG_HOME=root,
                        PULSE_SERVER=f"unix:{self.sock}")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["pulseaudio", "-n", "-F", self.conf, "--daemonize=no", "--exit-idle-time=-1",
                                      "--use-pid-file=no", "--disallow-exit"], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.pactl("info").returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("pulseaudio did not come up")

    def pactl(self, *args) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None
