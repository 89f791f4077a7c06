"""Compute dispatches: the same results as moderngl's run, with the other Python threads kept running."""

import logging
import threading
import time
from types import SimpleNamespace

import moderngl
import numpy as np
import pytest

from installation.gfx.dispatch import ComputeDispatch

# Heavy enough that a dispatch takes a few hundred ms on llvmpipe (and well under that on a GPU).
BUSY = """#version 430
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer B { float x[]; };
uniform int u_rounds;
void main() {
    uint i = gl_GlobalInvocationID.x;
    float v = float(i) * 0.001;
    for (int k = 0; k < u_rounds; k++) v = sin(v) * 1.0001 + 0.1;
    x[i] = v;
}
"""


def run_into(ctx, how, prog, groups: int) -> np.ndarray:
    buf = ctx.buffer(reserve=groups * 64 * 4)
    buf.bind_to_storage_buffer(0)
    how(prog, groups)
    ctx.finish()
    out = np.frombuffer(buf.read(), np.float32).copy()
    buf.release()
    return out


def test_dispatch_computes_exactly_what_moderngl_run_does(ctx):
    prog = ctx.compute_shader(BUSY)
    prog["u_rounds"] = 20
    dispatch = ComputeDispatch(ctx)
    assert dispatch.releases_gil
    ours = run_into(ctx, dispatch, prog, 32)
    theirs = run_into(ctx, lambda p, g: p.run(g), prog, 32)
    assert np.array_equal(ours, theirs) and np.isfinite(ours).all()
    prog.release()


def test_other_python_threads_run_while_a_dispatch_computes(ctx):
    prog = ctx.compute_shader(BUSY)
    prog["u_rounds"] = 1000
    dispatch = ComputeDispatch(ctx)
    beats: list[float] = []
    stop = threading.Event()

    def heartbeat():  # what the writer, OSC and sensor threads do: a little Python, often
        while not stop.is_set():
            beats.append(time.perf_counter())
            time.sleep(0.002)

    th = threading.Thread(target=heartbeat)
    th.start()
    time.sleep(0.05)
    t0 = time.perf_counter()
    run_into(ctx, dispatch, prog, 4096)
    t1 = time.perf_counter()
    stop.set()
    th.join()
    during = [t0] + [b for b in beats if t0 <= b <= t1] + [t1]
    longest_gap = max(b - a for a, b in zip(during, during[1:]))
    if t1 - t0 < 0.1:
        pytest.skip(f"a {(t1 - t0) * 1e3:.0f} ms dispatch on this GL is too short to tell")
    assert longest_gap < 0.5 * (t1 - t0), f"the heartbeat stopped for {longest_gap * 1e3:.0f} ms of a " \
                                          f"{(t1 - t0) * 1e3:.0f} ms dispatch"
    prog.release()


def test_without_a_function_loader_it_falls_back_to_moderngl_and_says_so(ctx, caplog):
    prog = ctx.compute_shader(BUSY)
    prog["u_rounds"] = 20
    with caplog.at_level(logging.INFO, logger="installation.gfx.dispatch"):
        fallback = ComputeDispatch(SimpleNamespace(mglo=SimpleNamespace()))
    assert not fallback.releases_gil
    assert any("hold the Python GIL" in r.getMessage() for r in caplog.records)
    assert np.array_equal(run_into(ctx, fallback, prog, 8), run_into(ctx, ComputeDispatch(ctx), prog, 8))
    prog.release()


def test_a_released_program_is_refused_not_run_in_another_ones_place(ctx):
    prog = ctx.compute_shader(BUSY)
    prog.release()
    with pytest.raises(moderngl.Error, match="released"):
        ComputeDispatch(ctx)(prog, 1)
