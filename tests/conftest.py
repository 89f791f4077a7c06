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
