"""Enttec DMX USB Pro over a pseudo-terminal standing in for the serial device."""

from __future__ import annotations

import logging
import os
import select
import time

import numpy as np
import pytest

from installation.outputs import OutputConfig, Span, create_output


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(slave)
    os.close(master)


def read_frames(fd, want, timeout=3.0):
    """Read and decode Enttec packets (label, payload) from the master side."""
    data = b""
    frames = []
    end = time.monotonic() + timeout
    while time.monotonic() < end and len(frames) < want:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            data += os.read(fd, 4096)
        while len(data) >= 5:
            assert data[0] == 0x7E, data[:8]
            n = data[2] | data[3] << 8
            if len(data) < 5 + n:
                break
            assert data[4 + n] == 0xE7
            frames.append((data[1], data[4:4 + n]))
            data = data[5 + n:]
    return frames


def make(device, spans, fps=44.0):
    return create_output(OutputConfig(name="dmx", protocol="enttec", fps=fps, options={"device": device}), spans)


def test_frames_arrive_on_the_serial_line(pty_pair):
    master, path = pty_pair
    o = make(path, [Span(0, 3, 6), Span(0, 0, 3)])
    buf = np.arange(1, 10, dtype=np.uint8)
    o.send(buf)
    frames = read_frames(master, 1)
    o.close(final=np.zeros(9, np.uint8))
    frames += read_frames(master, 1)
    label, payload = frames[0]
    assert label == 6 and payload == b"\x00" + bytes([4, 5, 6, 7, 8, 9, 1, 2, 3])  # spans in patch order
    assert frames[-1] == (6, bytes(10))  # the final blackout


def test_fps_capped_at_44():
    o = make("/dev/null", [Span(0, 0, 3)], fps=44)
    assert o.fps <= 44
    o2 = create_output(OutputConfig(name="x", protocol="enttec", fps=120, options={"device": "/dev/null"}),
                       [Span(0, 0, 3)])
    assert o2.fps == 44


def test_missing_device_backs_off_then_recovers_when_plugged(tmp_path, pty_pair, caplog):
    master, real_path = pty_pair
    link = tmp_path / "ttyUSB-enttec"
    o = make(str(link), [Span(0, 0, 4)])
    try:
        end = time.monotonic() + 0.4
        i = 0
        while time.monotonic() < end:
            o.send(np.full(4, i % 256, np.uint8))
            i += 1
            time.sleep(0.02)
        assert o.status()["state"] == "backoff"
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        os.symlink(real_path, link)  # plugged in
        frames = []
        end = time.monotonic() + 6
        while time.monotonic() < end and not frames:
            o.send(np.full(4, 7, np.uint8))
            frames = read_frames(master, 1, timeout=0.1)
        assert frames and frames[0][1] == b"\x00\x07\x07\x07\x07"
    finally:
        o.close()


def test_stuck_device_never_blocks_send_and_close_is_bounded(pty_pair):
    master, path = pty_pair  # nobody reads the master: the pty buffer fills and writes block
    o = make(path, [Span(0, 0, 512)])
    worst = 0.0
    for i in range(120):
        t = time.perf_counter()
        o.send(np.full(512, i, np.uint8))
        worst = max(worst, time.perf_counter() - t)
        time.sleep(0.01)
    t = time.perf_counter()
    o.close(final=np.zeros(512, np.uint8))
    assert time.perf_counter() - t < 3.0 and worst < 0.05
