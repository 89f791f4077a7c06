"""A network link that goes down and comes back under the running piece.

The piece runs inside a network namespace we create (no default route there: nothing can leak),
joined to ours by a veth pair; the receivers listen on our end.  Link down -> every output backs
off (health degraded), link up -> frames arrive again by themselves (health ok).  Needs root and
iproute2; skips with the reason otherwise.  The namespace and the pair are always removed.
"""

from __future__ import annotations

import time

import pytest

from faults_support import Receivers, output_state, wait_lit, write_venue
from tests.support.netns import ip, veth_netns

START_S = 40.0
OURS, THEIRS = "10.213.29.1", "10.213.29.2"


@pytest.fixture
def netns():
    """Namespace ``tfault<pid>`` joined to ours by a veth pair: (namespace, its end of the pair)."""
    with veth_netns("tfault", "tf", OURS, THEIRS) as made:
        yield made


def _ok(doc):
    return doc.get("status") == "ok" and all(output_state(doc, n) == "ok" for n in ("wall", "rim", "net"))


def test_link_down_backs_off_and_link_up_lights_again(netns, tmp_path, start_piece):
    ns, dev = netns
    rx = Receivers(host=OURS)
    try:
        venue = write_venue(tmp_path / "venue", OURS, rx.ports)
        piece = start_piece(venue, prefix=("ip", "netns", "exec", ns), netns=ns)
        assert rx.all_lit(10, START_S), piece.log()
        assert piece.wait_health(_ok, 10), (piece.last_health, piece.log())

        ip("-n", ns, "link", "set", dev, "down")  # the cable is pulled
        doc = piece.wait_health(lambda d: all(output_state(d, n) == "backoff" for n in ("wall", "rim", "net")), 10)
        assert doc, (piece.last_health, piece.log())
        assert doc["status"] == "degraded"
        assert set(doc["unhealthy"]) >= {"output/wall", "output/rim", "output/net"}
        assert "unreachable" in str(doc["outputs"]["wall"]["last_error"]).lower(), doc["outputs"]["wall"]
        # nothing gets through while the link is down, and the piece keeps making frames
        time.sleep(0.3)
        quiet_from = {k: r.total for k, r in rx.rx.items()}
        frames_down = doc["frames"]
        doc = piece.wait_health(lambda d: d["frames"] > frames_down + 30, 5)
        assert doc and doc["status"] == "degraded", piece.last_health
        assert {k: r.total for k, r in rx.rx.items()} == quiet_from

        t_up = time.monotonic()
        ip("-n", ns, "link", "set", dev, "up")  # ... and plugged back in
        assert rx.all_lit(10, 20, after=t_up), piece.log()
        doc = piece.wait_health(_ok, 15)
        assert doc, (piece.last_health, piece.log())
        assert all(doc["outputs"][n]["errors"] >= 1 for n in ("wall", "rim", "net"))
        lit = rx["wall"].lit_in_window(1.0)
        assert lit >= 10, lit
        assert wait_lit(rx["rim"], 10, 3) and wait_lit(rx["net"], 10, 3)
        assert piece.proc.poll() is None
    finally:
        rx.close()
