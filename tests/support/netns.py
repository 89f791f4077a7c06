"""A network namespace joined to ours by a veth pair, for tests that pull a cable under a running sender."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from typing import Iterator

import pytest


def ip(*args, check=True) -> subprocess.CompletedProcess:
    """``ip ARGS`` (iproute2), output captured, bounded in time."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=check)


def cannot_enter(ns: str) -> str | None:
    """Why namespace ``ns`` cannot be entered here (``ip -n`` needs to mount /sys inside it, which
    some sandboxes and chroots refuse), or None when it can."""
    probe = ip("-n", ns, "link", "show", "lo", check=False)
    if probe.returncode != 0:
        return f"cannot enter a network namespace here: {probe.stderr.strip() or 'ip -n failed'}"
    return None


@contextmanager
def veth_netns(ns_prefix: str, veth_prefix: str, ours: str, theirs: str) -> Iterator[tuple[str, str]]:
    """Make namespace ``<ns_prefix><pid>`` (no default route: nothing leaks) and a veth pair
    ``<veth_prefix>a<pid>`` (ours, ``ours``/30) / ``<veth_prefix>b<pid>`` (in the namespace, ``theirs``/30),
    both up; yield ``(namespace, their device)``; always remove both.  Skips without root or iproute2.
    """
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make a network namespace")
    tag = f"{os.getpid() % 100000}"
    ns, a, b = f"{ns_prefix}{tag}", f"{veth_prefix}a{tag}", f"{veth_prefix}b{tag}"
    made = ip("netns", "add", ns, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    reason = cannot_enter(ns)
    if reason:
        ip("netns", "del", ns, check=False)
        pytest.skip(reason)
    try:
        ip("link", "add", a, "type", "veth", "peer", "name", b)
        ip("link", "set", b, "netns", ns)
        ip("addr", "add", f"{ours}/30", "dev", a)
        ip("link", "set", a, "up")
        ip("-n", ns, "addr", "add", f"{theirs}/30", "dev", b)
        ip("-n", ns, "link", "set", b, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        yield ns, b
    finally:
        ip("link", "del", a, check=False)
        ip("netns", "del", ns, check=False)
