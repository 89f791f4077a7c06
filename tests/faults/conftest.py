"""Fixtures for the fault-injection suite: loopback receivers, a small venue, the running piece."""

from __future__ import annotations

import pytest

from faults_support import Piece, Receivers, write_venue


@pytest.fixture
def receivers():
    """Art-Net ('wall'), sACN ('rim') and DDP ('net') receivers on 127.0.0.1, closed afterwards."""
    rx = Receivers()
    yield rx
    rx.close()


@pytest.fixture
def venue(tmp_path, receivers):
    """A four-strip venue whose outputs point at ``receivers``."""
    return write_venue(tmp_path / "venue", "127.0.0.1", receivers.ports)


@pytest.fixture
def start_piece(tmp_path):
    """``start_piece(venue, **kw)`` -> a running :class:`Piece`; every piece is stopped afterwards."""
    pieces = []

    def start(venue_path, **kw):
        p = Piece(venue_path, tmp_path / f"piece{len(pieces)}.log", **kw)
        pieces.append(p)
        return p

    yield start
    for p in pieces:
        p.stop()
