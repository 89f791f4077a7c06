"""Fixtures for the output tests: loopback UDP receivers that drain in a thread."""

from __future__ import annotations

import pytest

from tests.support.udp import Receiver, free_port as _free_port


@pytest.fixture
def receiver():
    """A :class:`tests.support.udp.Receiver` on 127.0.0.1 (raw datagrams), closed afterwards."""
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def free_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    return _free_port()
