"""Fixtures for the output tests: loopback UDP receivers that drain in a thread."""

from __future__ import annotations

import os
import socket
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for p in (ROOT, HERE):  # so `pytest tests/outputs` works from anywhere
    if p not in sys.path:
        sys.path.insert(0, p)

from outputs_support import Receiver  # noqa: E402


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def free_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
