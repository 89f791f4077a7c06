"""The 16-byte particle: the shaders and the Python side pack it the same way, and it keeps enough
precision for the field (positions to 1/100 px, life to 2 ms)."""

import shutil
from pathlib import Path

import numpy as np

from installation.field.simulation import LIFE_RANGE, pack_particles, unpack_particles
from installation.gfx.shaders import ShaderLibrary

SHADERS = Path(__file__).resolve().parents[2] / "shaders"
ASPECT = 16 / 9

ROUND_TRIP = """#version 430
layout(local_size_x = 64) in;
#include "lib/field_common.glsl"
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= uint(u_count)) return;
    store_particle(i, load_particle(i));
}
"""


def particles(n: int, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.empty((n, 8), np.float32)
    p[:, 0] = rng.uniform(0, ASPECT, n)
    p[:, 1] = rng.uniform(0, 1, n)
    p[:, 2:4] = rng.uniform(-2.5, 2.5, (n, 2))      # the step clamps speed to 2.5
    p[:, 4] = rng.uniform(0, 1, n)
    p[:, 5] = rng.uniform(-1, 1, n)
    p[:, 6] = rng.integers(0, 256, n)
    p[:, 7] = rng.uniform(-45, 45, n)               # field/life up to 30 s, reborn with up to 1.5x
    return p


def test_python_and_shaders_agree_on_every_bit(ctx, tmp_path):
    shutil.copytree(SHADERS / "lib", tmp_path / "lib")
    (tmp_path / "round_trip.glsl").write_text(ROUND_TRIP)
    lib = ShaderLibrary(ctx, tmp_path)
    prog = lib.compute("round_trip.glsl")
    n = 4096
    packed = pack_particles(particles(n), ASPECT)
    buf = ctx.buffer(packed)
    buf.bind_to_storage_buffer(0)
    prog["u_count"] = n
    prog["u_aspect"] = ASPECT
    lib.dispatch(prog, n // 64)
    ctx.finish()
    assert buf.read() == packed   # loaded and stored by the GPU: not one bit moved
    buf.release()
    lib.release()


def test_what_is_kept_is_close_enough_for_the_field():
    p = particles(20000)
    q = unpack_particles(pack_particles(p, ASPECT), ASPECT)
    px = 1 / 360                                          # a pixel of the llvmpipe tapestry
    assert np.abs(q[:, 0:2] - p[:, 0:2]).max() < px / 50
    assert np.allclose(q[:, 2:4], p[:, 2:4], rtol=1e-3, atol=1e-4)
    assert np.abs(q[:, 4:6] - p[:, 4:6]).max() < 1e-4
    assert np.array_equal(q[:, 6], p[:, 6])
    assert np.abs(q[:, 7] - p[:, 7]).max() <= LIFE_RANGE / 32767
    # The sign of life tells a newborn (<= 0) from the living; only the last 2 ms of a life may round to 0.
    clear = np.abs(p[:, 7]) >= LIFE_RANGE / 32767
    assert np.array_equal(q[clear, 7] > 0, p[clear, 7] > 0)
