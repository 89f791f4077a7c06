"""The 16-byte particle: the shaders and the Python side pack it the same way, bit for bit, and it
keeps enough precision for the field (positions to 1/100 px, s to 1e-7 of a route, life to 2 ms)."""

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

# The shaders' own packing of plain floats (what every step does), to compare with numpy's.
PACK = """#version 430
layout(local_size_x = 64) in;
#include "lib/field_common.glsl"
layout(std430, binding = 1) readonly buffer Raw { vec4 raw[]; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= uint(u_count)) return;
    store_particle(i, Particle(raw[2u * i], raw[2u * i + 1u]));
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
    # The edges: the canvas's borders, both ends of a route, the outer lanes, the longest lives.
    p[:8, 0] = (0.0, ASPECT, 0.0, ASPECT, 1e-4, ASPECT - 1e-4, 0.5, 1.0)
    p[:8, 1] = (0.0, 1.0, 1.0, 0.0, 1e-4, 1.0 - 1e-4, 0.5, 0.25)
    p[:8, 4] = (0.0, 1.0, 0.5, 1e-7, 1.0 - 1e-7, 0.25, 0.75, 0.999)
    p[:8, 5] = (-1.0, 1.0, 0.0, -0.5, 0.5, 1e-5, -1e-5, 0.999)
    p[:8, 6] = (0, 255, 1, 254, 128, 7, 64, 200)
    p[:8, 7] = (-45.0, 45.0, 0.0, -1e-3, 1e-3, 30.0, -30.0, 7.0)
    return p


def gpu(ctx, tmp_path, shader: str, packed: bytes, raw: np.ndarray | None = None) -> bytes:
    """Run ``shader`` over the particles in ``packed`` (and plain floats in ``raw``); return them."""
    shutil.copytree(SHADERS / "lib", tmp_path / "lib", dirs_exist_ok=True)
    (tmp_path / "t.glsl").write_text(shader)
    lib = ShaderLibrary(ctx, tmp_path)
    prog = lib.compute("t.glsl")
    n = len(packed) // 16
    buf = ctx.buffer(packed)
    buf.bind_to_storage_buffer(0)
    extra = ctx.buffer(np.ascontiguousarray(raw, np.float32).tobytes()) if raw is not None else None
    if extra is not None:
        extra.bind_to_storage_buffer(1)
    prog["u_count"] = n
    prog["u_aspect"] = ASPECT
    lib.dispatch(prog, (n + 63) // 64)
    ctx.finish()
    out = buf.read()
    for obj in (buf, extra):
        if obj is not None:
            obj.release()
    lib.release()
    return out


def test_numpy_packs_exactly_as_the_shaders_do(ctx, tmp_path):
    p = particles(4096)
    ours = pack_particles(p, ASPECT)
    assert gpu(ctx, tmp_path, PACK, bytes(len(ours)), p) == ours


def test_a_particle_loaded_and_stored_by_the_shaders_keeps_every_bit(ctx, tmp_path):
    packed = pack_particles(particles(4096), ASPECT)
    assert gpu(ctx, tmp_path, ROUND_TRIP, packed) == packed


def test_what_is_kept_is_close_enough_for_the_field():
    p = particles(20000)
    q = unpack_particles(pack_particles(p, ASPECT), ASPECT)
    px = 1 / 360                                          # a pixel of the llvmpipe tapestry
    assert np.abs(q[:, 0:2] - p[:, 0:2]).max() < px / 50
    assert np.allclose(q[:, 2:4], p[:, 2:4], rtol=1e-3, atol=1e-4)
    assert np.abs(q[:, 4] - p[:, 4]).max() < 1e-7          # s: a slow stream on a long route still moves
    assert np.abs(q[:, 5] - p[:, 5]).max() < 1e-4
    assert np.array_equal(q[:, 6], p[:, 6])
    assert np.abs(q[:, 7] - p[:, 7]).max() <= LIFE_RANGE / 32767
    # The sign of life tells a newborn (<= 0) from the living; only the last 2 ms of a life may round to 0.
    clear = np.abs(p[:, 7]) >= LIFE_RANGE / 32767
    assert np.array_equal(q[clear, 7] > 0, p[clear, 7] > 0)
