"""An interface that goes away and comes back: backoff on ENETUNREACH, then recovery by itself.

The output runs in a network namespace we create (no default route there), the receiver in
ours, joined by a veth pair.  Skips without root or iproute2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.support.netns import ip, veth_netns
from tests.support.udp import Receiver

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = r"""
import json, logging, sys, time
import numpy as np
from installation.outputs import OutputConfig, Span, create_output
warnings = []
class H(logging.Handler):
    def emit(self, r):
        if r.levelno >= logging.WARNING:
            warnings.append(r.getMessage())
logging.getLogger("installation.outputs").addHandler(H())
o = create_output(OutputConfig(name="ns", protocol="artnet", host=sys.argv[1], port=int(sys.argv[2]), fps=50),
                  [Span(0, 0, 510)])
end = time.monotonic() + float(sys.argv[3])
i = 0
while time.monotonic() < end:
    t = time.perf_counter()
    o.send(np.full(510, i % 256, np.uint8))
    took = time.perf_counter() - t
    st = o.status()
    print(json.dumps({"state": st["state"], "err": st["last_error"], "send_s": took, "warnings": len(warnings)}),
          flush=True)
    i += 1
    time.sleep(0.02)
    if sys.stdin in __import__("select").select([sys.stdin], [], [], 0)[0] and sys.stdin.readline().strip() == "stop":
        break
o.close()
print(json.dumps({"done": True, "warnings": warnings}), flush=True)
"""


@pytest.fixture
def netns():
    """Namespace ``tapout<pid>`` joined to ours by a veth pair: (namespace, its end of the pair)."""
    with veth_netns("tapout", "tp", "10.213.7.1", "10.213.7.2") as made:
        yield made


def test_interface_down_backoff_then_recovers(netns):
    ns, dev = netns
    rx = Receiver(host="10.213.7.1")
    child = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", CHILD, "10.213.7.1", str(rx.port), "12"],
                             cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": ROOT})
    states = []

    def read_until(pred, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = child.stdout.readline()
            if not line:
                return False
            rec = json.loads(line)
            states.append(rec)
            if pred(rec):
                return True
        return False

    try:
        assert rx.wait_for(lambda p: len(p) >= 1, timeout=5), child.stderr.read() if child.poll() else "no packets"
        ip("-n", ns, "link", "set", dev, "down")  # the interface goes away
        assert read_until(lambda r: r.get("state") == "backoff", 5), states[-3:]
        assert "unreachable" in states[-1]["err"].lower()
        read_until(lambda r: False, 0.4)  # a while in backoff: still logged once
        before = len(rx.packets)
        ip("-n", ns, "link", "set", dev, "up")  # ... and comes back
        assert read_until(lambda r: r.get("state") == "ok", 8), states[-3:]
        assert rx.wait_for(lambda p: len(p) > before, timeout=3)
        child.stdin.write("stop\n")
        child.stdin.flush()
        assert read_until(lambda r: r.get("done"), 5)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(5)
        rx.close()
    assert max(r["send_s"] for r in states if "send_s" in r) < 0.05
    assert len([w for w in states[-1]["warnings"] if "unreachable" in w.lower()]) == 1, states[-1]
