"""Fixtures for every suite under tests/; the shared helpers themselves live in ``tests.support``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:  # so `pytest tests/...` imports installation and tests.support from anywhere
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="module")
def ctx():
    """One headless GL context per test module, released after its last test."""
    from installation.gfx.context import headless_context

    c = headless_context()
    yield c
    c.release()


#: The ports a live show on this machine uses: OSC control 9000, health 9091 (TCP), and the LED
#: protocols' standard ports Art-Net 6454, sACN 5568, DDP 4048 (UDP).
SHOW_PORTS = (("udp", 9000), ("tcp", 9091), ("udp", 6454), ("udp", 5568), ("udp", 4048))


@pytest.fixture(scope="session", autouse=True)
def controller_claims_of_its_own(tmp_path_factory):
    """The suite's programs claim controllers (installation/outputs/claim.py) among themselves, in a
    directory of their own: a show running beside the suite neither blocks a test nor is blocked by one."""
    import os

    old = os.environ.get("TAPESTRY_CLAIMS_DIR")
    os.environ["TAPESTRY_CLAIMS_DIR"] = str(tmp_path_factory.mktemp("claims"))
    yield
    if old is None:
        os.environ.pop("TAPESTRY_CLAIMS_DIR", None)
    else:
        os.environ["TAPESTRY_CLAIMS_DIR"] = old


@pytest.fixture(scope="session", autouse=True)
def a_live_show_holds_its_ports():
    """The suite runs as if a show were running beside it: the show's ports are held for the whole
    session (those something else already holds stay with it).  A test that binds or starts the piece
    on a default port then fails ("address in use") instead of disturbing a real show."""
    import socket

    held = []
    for kind, port in SHOW_PORTS:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            if kind == "tcp":
                s.listen(1)
            held.append(s)
        except OSError:
            s.close()
    yield [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
