"""Unreachable peers, names that resolve late, hung lookups: backoff, log once, never block, bounded close."""

from __future__ import annotations

import logging
import socket
import threading
import time

import numpy as np

from installation.outputs import OutputConfig, Span, create_output
from tests.support.udp import Receiver


def make(protocol, port, host="127.0.0.1", fps=100.0, **options):
    spans = [Span(1, 0, 510), Span(2, 510, 510)] if protocol != "osc" else [Span("/a", 0, 510)]
    return create_output(OutputConfig(name="r", protocol=protocol, host=host, port=port, fps=fps, options=options),
                         spans)


def pump(o, seconds, n=1020):
    """Send changing frames at ~100 fps; return the slowest send() call."""
    worst = 0.0
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        t = time.perf_counter()
        o.send(np.full(n, i % 256, np.uint8))
        worst = max(worst, time.perf_counter() - t)
        i += 1
        time.sleep(0.01)
    return worst


def warnings(caplog, text):
    return [r for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


def test_refused_backs_off_logs_once_then_recovers(free_port, caplog):
    caplog.set_level(logging.INFO, logger="installation.outputs")
    o = make("sacn", free_port)
    worst = pump(o, 0.6)
    # A retry after the backoff reads "ok" until its own refusal comes back: look for the backoff a while
    # (a single look at 0.6 s fell between the two on a loaded CI machine).
    deadline = time.monotonic() + 3
    while o.status()["state"] != "backoff" and time.monotonic() < deadline:
        worst = max(worst, pump(o, 0.05))
    st = o.status()
    assert st["state"] == "backoff" and st["errors"] >= 1 and "refused" in st["last_error"].lower()
    assert len(warnings(caplog, "refused")) == 1
    assert worst < 0.05  # generous bound: send() only hands the frame over
    rx = Receiver(free_port)  # the node comes up
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and o.status()["state"] != "ok":
            pump(o, 0.1)
        assert o.status()["state"] == "ok"
        assert rx.wait_for(lambda p: len(p) >= 2)
        assert any("transmitting again" in r.getMessage() for r in caplog.records)
    finally:
        o.close()
        rx.close()
    assert len(warnings(caplog, "refused")) == 1


def test_name_that_resolves_later(receiver, monkeypatch):
    real = socket.getaddrinfo
    calls = {"n": 0}

    def fake(host, *a, **k):
        if host == "wall-node.venue.test":
            calls["n"] += 1
            if calls["n"] <= 2:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            host = "127.0.0.1"
        return real(host, *a, **k)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    o = make("artnet", receiver.port, host="wall-node.venue.test")
    try:
        pump(o, 0.05)
        assert receiver.wait_for(lambda p: False, timeout=0.05) is False
        assert o.status()["state"] == "backoff" and "gaierror" in o.status()["last_error"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not receiver.packets:
            pump(o, 0.05)
        assert receiver.packets and calls["n"] >= 3
    finally:
        o.close()


def test_hung_lookup_never_blocks_send_and_close_is_bounded(monkeypatch):
    release = threading.Event()
    real = socket.getaddrinfo

    def hang(host, *a, **k):
        if host == "hung.venue.test":
            release.wait(10)  # a resolver that does not answer
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *a, **k)

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    o = make("ddp", 4048, host="hung.venue.test")
    try:
        worst = pump(o, 0.2)
        assert worst < 0.05
        t = time.perf_counter()
        o.close(final=np.zeros(1020, np.uint8))
        assert time.perf_counter() - t < 3.0
        o.close()  # idempotent
    finally:
        release.set()


def test_close_after_failures_still_sends_goodbye_when_peer_returns(receiver):
    o = make("sacn", receiver.port, fps=1000)
    o.send(np.ones(1020, np.uint8))
    assert receiver.wait_for(lambda p: len(p) >= 2)
    o.close(final=np.zeros(1020, np.uint8))
    assert receiver.wait_for(lambda ps: len([p for p in ps if p[112] & 0x40]) >= 6)
    terminated = [p for p in receiver.packets if p[112] & 0x40]
    assert len(terminated) == 6 and all(p[126:] == bytes(510) for p in terminated)
