"""The particle simulation: particles in an SSBO, stepped by compute shaders.

Each frame: the ambient curl flow and the attractors' pull are evaluated on
a coarse grid (``field_flow.glsl``), then the particles step and splat their
light into the renderer's light buffer (``field_step.glsl``): streaming along
a filament or orbiting a node, pushed by the flow, torn loose by malfunction,
pulled back by harmony, bent by attractors.  With ``field/sim_every`` N the
particles are cut into N slices and one slice steps each frame, over the time
since its own last step; the renderer keeps each slice's light until that
slice steps again, so every particle is drawn every frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import moderngl
import numpy as np

from ..gfx.shaders import ShaderLibrary
from ..params import FLOAT, INT, LOOK, MACHINE, ParamSpec, ParamTree, floats
from .network import FILAMENT_BASE, MAX_ROUTES, Network, NetworkState

MAX_ATTRACTORS = 16  # must match shaders/field_flow.glsl
PARTICLE_FLOATS = 8  # a particle unpacked: kin (x, y, vx, vy) + tag (s, lane, route, life)
LIFE_RANGE = 64.0    # stored life is snorm16 of +-LIFE_RANGE seconds (field/life tops out at 30 s x 1.5)
FLOW_GRID = (96, 54)

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("field/particles", INT, 262_144, "Number of particles in the field", 1_024, 8_388_608,
              "particles", live=False, scope=MACHINE),
    ParamSpec("field/harmony", FLOAT, 0.7, "Orderly flow: particles hold to their filaments", 0.0, 1.0, "ratio",
              scope=LOOK),
    ParamSpec("field/malfunction", FLOAT, 0.0,
              "Symbiogen malfunction: filaments tear into turbulence and the colour runs hot", 0.0, 1.0, "ratio",
              scope=LOOK),
    *floats("field/flow", [
        ("speed", 0.22, 0.0, 1.5, "canvas h/s", "Speed at which nutrients stream along filaments"),
        ("curl", 0.5, 0.0, 5.0, "canvas h/s²", "Strength of the ambient curl-noise flow"),
        ("scale", 2.5, 0.3, 12.0, "cells/h", "Size of the flow's eddies (more cells, smaller eddies)"),
        ("evolve", 0.06, 0.0, 2.0, "1/s", "How fast the ambient flow changes"),
    ], scope=LOOK),
    *floats("field/filaments", [
        ("tension", 6.0, 0.0, 30.0, "1/s", "Pull of a particle back onto its filament"),
        ("width", 0.012, 0.0, 0.1, "canvas h", "Lateral spread of a filament"),
        ("packets", 0.5, 0.0, 1.0, "ratio", "Nutrient packets: brighter stretches that travel along the "
         "filaments with the stream (0 = an even glow); turbulence breaks them up, and they fade out as "
         "the stream passes 0.6 canvas h/s (they would flicker)"),
    ], scope=LOOK),
    ParamSpec("field/nodes/share", FLOAT, 0.22, "Share of particles that orbit the clusters", 0.0, 0.9, "ratio",
              scope=LOOK),
    ParamSpec("field/life", FLOAT, 7.0, "Mean life of a particle before it respawns", 0.5, 30.0, "s", scope=LOOK),
    ParamSpec("field/attractors/gain", FLOAT, 1.0, "How strongly visitors bend the flow", 0.0, 5.0, "ratio",
              scope=LOOK),
    ParamSpec("field/sim_every", INT, 1, "Step each particle every Nth frame, a 1/N slice of them each frame "
              "(every particle is still drawn every frame; cheaper on a slow machine)", 1, 4, "frames",
              scope=MACHINE),
)


def packet_strength(packets: float, speed: float) -> float:
    """``field/filaments/packets`` as drawn: faded out as the stream passes 0.6 canvas heights a second.
    A packet passes an LED speed / PACKET_SPACING times a second; from about 3 a second that is a
    flicker for the flash limiter to hold back, not a stream."""
    return float(packets) * min(1.0, max(0.0, (0.9 - float(speed)) / 0.3))


HUE_STRIDE = 16  # one particle in 16 (a different one each frame) paints the colour grid
PACKET_SPACING = 0.3  # canvas heights between nutrient packets on a filament


@dataclass(frozen=True)
class SplatTarget:
    """Where the step pass adds light (one uint per pixel, fixed point) and the sparse hue grid."""

    buffer: moderngl.Buffer
    size: tuple[int, int]
    gain: float
    hue_grid: moderngl.Buffer | None = None
    grid_size: tuple[int, int] = (0, 0)
    slices: int = 1  # how many slices' light the renderer keeps (must match the field's)


@dataclass(frozen=True)
class Attractor:
    """A point that bends the flow: positive strength pulls, negative pushes (canvas coords, y down)."""

    x: float
    y: float
    strength: float
    radius: float = 0.12


class ParticleField:
    """Owns the particle SSBO and the flow grid; ``step`` advances the simulation one frame."""

    def __init__(self, ctx: moderngl.Context, shaders: ShaderLibrary, tree: ParamTree,
                 aspect: float, seed: int) -> None:
        self.ctx = ctx
        self.shaders = shaders
        self.tree = tree
        self.aspect = float(aspect)
        self.seed = int(seed) & 0xFFFFFFFF
        self.count = int(tree["field/particles"])
        self.network = Network(tree, aspect, seed)
        self.frame = 0
        self.time = 0.0
        self.flow_time = 0.0
        self.packet_phase = 0.0   # distance the packets have travelled, modulo their spacing (float64 here)
        self.state: NetworkState = self.network.state(0.0)
        self.particles = ctx.buffer(self._initial_particles())
        self.flow = ctx.texture(FLOW_GRID, 4, dtype="f2")
        self.flow.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.flow.repeat_x = self.flow.repeat_y = False
        self.routes = ctx.buffer(reserve=3 * MAX_ROUTES * 16)  # ends, ctrl, info (see field_common.glsl)
        self._routes_of: NetworkState | None = None
        self._attractors = np.zeros((MAX_ATTRACTORS, 4), np.float32)
        self._attractor_count = 0
        self.round_started = True  # whether the last step() began a round of slices (and painted colour)
        self.rounds = 0            # rounds begun: which particle of each HUE_STRIDE group paints colour
        self._since = [0.0]        # per slice: time since it last stepped (field/sim_every slices)

    def _initial_particles(self) -> bytes:
        # Every particle starts as a newborn (negative life) on a seeded route: its first step
        # places it there, so the first frame already looks like the steady state.
        rng = np.random.default_rng([self.seed, 0x5EED])
        st = self.state
        n = self.count
        data = np.zeros((n, PARTICLE_FLOATS), np.float32)
        petals = st.petals
        on_petal = (rng.random(n) < self.tree["field/nodes/share"]) & (petals > 0) | (st.filaments == 0)
        data[:, 6] = np.where(on_petal, rng.integers(0, max(petals, 1), n),
                              FILAMENT_BASE + rng.integers(0, max(st.filaments, 1), n))
        data[:, 4] = rng.random(n) * 0.95
        lane = rng.uniform(-1, 1, n)
        data[:, 5] = lane * np.abs(lane)
        data[:, 7] = -self.tree["field/life"] * rng.uniform(0.1, 1.5, n)
        return pack_particles(data, self.aspect)

    def set_attractors(self, attractors: list[Attractor]) -> None:
        """Positions and strengths (from where visitors stand) for the next steps."""
        att = attractors[:MAX_ATTRACTORS]
        self._attractors[:] = 0
        for i, a in enumerate(att):
            self._attractors[i] = (a.x * self.aspect, a.y, a.strength, a.radius)
        self._attractor_count = len(att)

    @property
    def slices(self) -> int:
        """How many slices the particles step in (``field/sim_every``): one slice a frame."""
        return max(1, min(int(self.tree["field/sim_every"]), self.count))

    def step(self, dt: float, splat: SplatTarget) -> None:
        """Advance the simulation by ``dt`` seconds and splat the light of the particles that stepped.

        With ``field/sim_every`` N > 1 one slice of the particles (a 1/N share) steps each frame,
        over the time since that slice's last step; the sparse colour grid is painted on the first
        frame of each round of N.
        """
        tree = self.tree
        self.frame += 1
        self.time += dt
        n = self.slices
        if splat.slices != n:
            raise ValueError(f"the renderer keeps {splat.slices} slices of light, the field steps in {n}: "
                             "ask the renderer for splat_target(count, field.slices)")
        if len(self._since) != n:  # sim_every changed: every slice starts from this frame
            self._since = [0.0] * n
        self._since = [t + dt for t in self._since]
        phase = (self.frame - 1) % n  # the first frame starts a round
        step_dt, self._since[phase] = self._since[phase], 0.0
        self.round_started = phase == 0
        self.rounds += self.round_started
        self.flow_time += dt * tree["field/flow/evolve"]
        # integrated here, not speed x time in the shader: a speed change must not jump the packets, and
        # wrapped, so float32 keeps its precision after months of running
        self.packet_phase = (self.packet_phase + dt * tree["field/flow/speed"]) % PACKET_SPACING
        self.state = st = self.network.state(self.time)

        if self.round_started:  # the flow grid changes slowly: once a round of slices is enough
            flow = self.shaders.compute("field_flow.glsl")
            _set(flow, u_aspect=self.aspect, u_scale=tree["field/flow/scale"], u_time=self.flow_time,
                 u_turbulence=tree["field/malfunction"], u_attractor_count=self._attractor_count)
            _write(flow, "u_attractors", self._attractors)
            self.flow.bind_to_image(0, read=False, write=True)
            self.shaders.dispatch(flow, (FLOW_GRID[0] + 7) // 8, (FLOW_GRID[1] + 7) // 8)

        first, end = self.count * phase // n, self.count * (phase + 1) // n
        cs = self.shaders.compute("field_step.glsl")
        self.bind_network(cs, st)
        _set(cs, u_dt=float(step_dt), u_first=first, u_end=end, u_frame=self.frame, u_seed=self.seed,
             u_speed=tree["field/flow/speed"], u_curl=tree["field/flow/curl"],
             u_tension=tree["field/filaments/tension"], u_width=tree["field/filaments/width"],
             u_harmony=tree["field/harmony"], u_malfunction=tree["field/malfunction"],
             u_node_share=tree["field/nodes/share"], u_life=tree["field/life"],
             u_attract=tree["field/attractors/gain"], u_flow=0, u_size=splat.size, u_gain=splat.gain,
             u_packets=packet_strength(tree["field/filaments/packets"], tree["field/flow/speed"]),
             u_packet_phase=self.packet_phase, u_packet_spacing=PACKET_SPACING,
             u_damp=math.exp(-step_dt * (0.6 + 1.4 * tree["field/harmony"] * (1.0 - 0.85 * tree["field/malfunction"]))))
        self.flow.use(0)
        self.particles.bind_to_storage_buffer(0)
        splat.buffer.bind_to_storage_buffer(1)
        self.shaders.dispatch(cs, (end - first + 255) // 256)
        self.ctx.memory_barrier()
        if self.round_started:
            self._paint_hue(splat)

    def _paint_hue(self, splat: SplatTarget) -> None:
        tree, st = self.tree, self.state
        if splat.hue_grid is not None and splat.gain > 0:
            hue = self.shaders.compute("field_hue.glsl")
            self.bind_network(hue, st)
            _set(hue, u_grid=splat.grid_size, u_stride=HUE_STRIDE, u_offset=self.rounds % HUE_STRIDE,
                 u_speed=tree["field/flow/speed"], u_malfunction=tree["field/malfunction"])
            splat.hue_grid.bind_to_storage_buffer(2)
            self.shaders.dispatch(hue, (self.count // HUE_STRIDE + 256) // 256)
            self.ctx.memory_barrier()

    def bind_network(self, prog, st: NetworkState | None = None) -> None:
        """Bind the route table (uniform buffer 0) and counts for a program that includes field_common.glsl."""
        st = st or self.state
        _set(prog, u_count=self.count, u_aspect=self.aspect, u_petals=st.petals, u_filaments=st.filaments)
        if self._routes_of is not st:  # upload once per frame, whoever asks first
            self.routes.write(np.concatenate([st.route_ends, st.route_ctrl, st.route_info]).tobytes())
            self._routes_of = st
        self.routes.bind_to_uniform_block(0)

    def read(self) -> np.ndarray:
        """Particles as an (N, 8) float32 array (x, y, vx, vy, s, lane, route, life): for tests and stats."""
        return unpack_particles(self.particles.read(), self.aspect)

    def coherence(self) -> float:
        """Flow coherence -1..1: mean alignment of filament particles' velocity with their filament.

        Near 1 when the network flows in harmony, near 0 when malfunction tears it into turbulence.
        """
        p = self.read()
        st = self.state
        p = p[(p[:, 6] >= FILAMENT_BASE) & (p[:, 7] > 0)]
        if len(p) == 0:
            return 0.0
        r = p[:, 6].astype(int)
        s = np.clip(p[:, 4], 0, 1)[:, None]
        a, b, c = st.route_ends[r, :2], st.route_ends[r, 2:], st.route_ctrl[r, :2]
        tan = 2 * (1 - s) * (c - a) + 2 * s * (b - c)
        tan /= np.linalg.norm(tan, axis=1, keepdims=True) + 1e-9
        v = p[:, 2:4]
        speed = np.linalg.norm(v, axis=1)
        moving = speed > 1e-4
        if not moving.any():
            return 0.0
        return float(np.mean(np.sum(v[moving] * tan[moving], axis=1) / speed[moving]))

    def release(self) -> None:
        """Free GPU memory."""
        self.particles.release()
        self.flow.release()
        self.routes.release()


def pack_particles(p: np.ndarray, aspect: float) -> bytes:
    """(N, 8) float particles -> the shaders' 16-byte layout (``shaders/lib/field_common.glsl``).

    Rounds as GLSL's ``packUnorm2x16`` / ``packSnorm2x16`` / ``packHalf2x16`` do.
    """
    def unorm(v, top=65535.0):
        return np.rint(np.clip(v, 0.0, 1.0) * np.float32(top)).astype(np.uint32)

    def snorm(v):
        return np.rint(np.clip(v, -1.0, 1.0) * 32767.0).astype(np.int16).view(np.uint16).astype(np.uint32)

    def half(v):
        return np.asarray(v, np.float16).view(np.uint16).astype(np.uint32)

    p = np.nan_to_num(np.asarray(p, np.float32))
    q = np.empty((len(p), 4), np.uint32)
    q[:, 0] = unorm(p[:, 0] / np.float32(aspect)) | (unorm(p[:, 1]) << 16)
    q[:, 1] = half(p[:, 2]) | (half(p[:, 3]) << 16)
    q[:, 2] = unorm(p[:, 4], 16777215.0) | ((p[:, 6].astype(np.uint32) & 0xFF) << 24)
    q[:, 3] = snorm(p[:, 5]) | (snorm(p[:, 7] / np.float32(LIFE_RANGE)) << 16)
    return q.tobytes()


def unpack_particles(raw: bytes, aspect: float) -> np.ndarray:
    """The shaders' 16-byte particles -> an (N, 8) float32 array (x, y, vx, vy, s, lane, route, life)."""
    q = np.frombuffer(raw, np.uint32).reshape(-1, 4)
    lo, hi = (q & 0xFFFF).astype(np.uint16), (q >> 16).astype(np.uint16)
    out = np.empty((len(q), PARTICLE_FLOATS), np.float32)
    out[:, 0] = lo[:, 0] / 65535.0 * aspect
    out[:, 1] = hi[:, 0] / 65535.0
    out[:, 2] = lo[:, 1].view(np.float16)
    out[:, 3] = hi[:, 1].view(np.float16)
    out[:, 4] = (q[:, 2] & 0xFFFFFF) / 16777215.0
    out[:, 5] = np.maximum(lo[:, 3].view(np.int16) / 32767.0, -1.0)
    out[:, 6] = q[:, 2] >> 24
    out[:, 7] = np.maximum(hi[:, 3].view(np.int16) / 32767.0, -1.0) * LIFE_RANGE
    return out


def _set(prog, **values) -> None:
    """Set uniforms that the compiler kept (an unused uniform is optimised away, not an error)."""
    for name, value in values.items():
        member = prog.get(name, None)
        if member is not None:
            member.value = value


def _write(prog, name: str, array: np.ndarray) -> None:
    member = prog.get(name, None)
    if member is not None:
        member.write(np.ascontiguousarray(array, np.float32).tobytes())
