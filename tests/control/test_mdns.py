"""mDNS advertisement, only inside a network namespace: the piece's advertiser runs in the namespace,
our browser listens on our end of the veth pair, so no multicast reaches a real network."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.netns import veth_netns
from tests.support.procs import stop_process

ROOT = Path(__file__).resolve().parents[2]
OURS, THEIRS = "10.213.11.1", "10.213.11.2"

CHILD = """
import sys, time, logging
logging.basicConfig(level=logging.INFO)
sys.path.insert(0, sys.argv[1])
from installation.control.mdns import Advertiser
a = Advertiser("Tapestry", sys.argv[2], 8123, 9123)
print("started", a.start(), flush=True)
time.sleep(30)
"""


@pytest.fixture
def netns():
    with veth_netns("tqmd", "tm", OURS, THEIRS) as made:
        yield made


def test_oscjson_and_osc_services_are_found_by_a_browser(netns):
    zeroconf = pytest.importorskip("zeroconf")
    ns, _ = netns
    child = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", CHILD, str(ROOT), THEIRS],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    zc = zeroconf.Zeroconf(interfaces=[OURS], ip_version=zeroconf.IPVersion.V4Only)
    try:
        assert child.stdout.readline().strip() == "started True"
        found = {}
        end = time.monotonic() + 15
        while time.monotonic() < end and len(found) < 2:
            for kind in ("_oscjson._tcp.local.", "_osc._udp.local."):
                if kind not in found:
                    info = zc.get_service_info(kind, f"Tapestry.{kind}", timeout=1000)
                    if info is not None:
                        found[kind] = info
        assert set(found) == {"_oscjson._tcp.local.", "_osc._udp.local."}
        assert found["_oscjson._tcp.local."].port == 8123 and found["_osc._udp.local."].port == 9123
        assert THEIRS in found["_oscjson._tcp.local."].parsed_addresses()
    finally:
        zc.close()
        stop_process(child)


def test_loopback_is_not_advertised():
    from installation.control.mdns import Advertiser
    assert Advertiser("Tapestry", "127.0.0.1", 1, 2).start() is False
