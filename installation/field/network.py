"""The Nutrient Network's topology on the CPU: nodes (clusters) and the routes particles follow.

Every route is a quadratic Bezier: **filaments** run between two nodes,
**petals** loop out of a node and back (they make the glowing clusters).
Deterministic from a seed: the same seed and the same parameters give the
same network and the same drift, frame for frame.  Recomputed cheaply each
frame (tens of routes) and handed to the compute shaders as uniform arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..params import FLOAT, INT, LOOK, ParamSpec, ParamTree

MAX_NODES = 32
MAX_EDGES = 96
PETALS = 5       # petal routes per node
MAX_ROUTES = 256  # must match shaders/lib/field_common.glsl

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("field/nodes/count", INT, 9, "Number of nutrient clusters (nodes) in the network",
              2, MAX_NODES, scope=LOOK),
    ParamSpec("field/nodes/links", INT, 3, "Filaments grown from each node to its nearest neighbours",
              1, 6, scope=LOOK),
    ParamSpec("field/nodes/drift", FLOAT, 0.04, "How far drifting nodes wander", 0.0, 0.25, "canvas h", scope=LOOK),
    ParamSpec("field/nodes/drift_rate", FLOAT, 0.05, "How fast drifting nodes wander", 0.0, 1.0, "Hz", scope=LOOK),
    ParamSpec("field/nodes/size", FLOAT, 0.045, "Radius of a nutrient cluster", 0.005, 0.15, "canvas h", scope=LOOK),
    ParamSpec("field/nodes/pulse", FLOAT, 0.15, "Breathing rate of the clusters' energy", 0.0, 2.0, "Hz", scope=LOOK),
    ParamSpec("field/filaments/bow", FLOAT, 0.18, "How much filaments curve away from a straight line", 0.0, 0.6,
              "ratio", scope=LOOK),
)


@dataclass(frozen=True)
class NetworkState:
    """This frame's network, packed for the shaders (route arrays padded to MAX_ROUTES)."""

    nodes: np.ndarray       # (node_count, 4): x, y, radius, energy
    edges: np.ndarray       # (filaments, 2) node indices
    route_ends: np.ndarray  # (MAX_ROUTES, 4) float32: ax, ay, bx, by
    route_ctrl: np.ndarray  # (MAX_ROUTES, 4) float32: bow x, bow y, fragility, hue
    route_info: np.ndarray  # (MAX_ROUTES, 4) float32: loops, speed factor / length, speed factor, brightness
    filaments: int
    routes: int


class Network:
    """Generates node positions and filaments from a seed; ``state(t)`` gives the frame's routes."""

    def __init__(self, tree: ParamTree, aspect: float, seed: int) -> None:
        self.tree = tree
        self.aspect = float(aspect)
        self.seed = int(seed)
        self._key: tuple | None = None

    def _build(self, count: int, links: int) -> None:
        rng = np.random.default_rng([self.seed, 0x4E75])
        a = self.aspect
        pts: list[np.ndarray] = []
        min_d = 0.55 / np.sqrt(count)
        for attempt in range(count * 400):
            if len(pts) == count:
                break
            p = np.array([rng.uniform(0.05 * a, 0.95 * a), rng.uniform(0.06, 0.94)])  # near the edges too: LEDs are there
            if all(np.hypot(*(p - q)) >= min_d for q in pts):
                pts.append(p)
            elif attempt % 200 == 199:
                min_d *= 0.9  # crowded: relax the spacing rather than loop for ever
        self._base = np.array(pts)
        self._size = rng.uniform(0.6, 1.4, count)
        self._drifts = rng.uniform(0, 1, count) < 0.5           # half the nodes wander
        self._phase = rng.uniform(0, 2 * np.pi, (count, 3))
        self._freq = rng.uniform(0.6, 1.4, (count, 3))
        d = np.hypot(*(self._base[:, None, :] - self._base[None, :, :]).transpose(2, 0, 1))
        edges = set()
        for i in range(count):
            for j in np.argsort(d[i])[1:links + 1]:
                edges.add((min(i, int(j)), max(i, int(j))))
        self.edges = np.array(sorted(edges)[:MAX_EDGES], dtype=np.int32).reshape(-1, 2)
        ne = len(self.edges)
        self._bow = rng.uniform(-1, 1, ne)
        self._fragility = rng.uniform(0.05, 0.95, ne)
        self._hue = rng.uniform(0, 1, ne) * 0.35
        self._petal_angle = (rng.uniform(0, 2 * np.pi, count)[:, None] + np.arange(PETALS) * (2 * np.pi / PETALS)
                             + rng.uniform(-0.4, 0.4, (count, PETALS)))
        self._petal_reach = rng.uniform(1.1, 2.6, (count, PETALS))
        self._petal_span = rng.uniform(1.4, 2.8, (count, PETALS))
        self._petal_hue = 0.55 + 0.2 * rng.uniform(0, 1, count)

    def state(self, t: float) -> NetworkState:
        """The network at time ``t`` (seconds of the piece's clock)."""
        tree = self.tree
        count, links = int(tree["field/nodes/count"]), int(tree["field/nodes/links"])
        if self._key != (count, links):
            self._build(count, links)
            self._key = (count, links)
        amp, rate = tree["field/nodes/drift"], tree["field/nodes/drift_rate"]
        w = 2 * np.pi * rate * self._freq
        off = np.stack([np.sin(w[:, 0] * t + self._phase[:, 0]), np.cos(w[:, 1] * t + self._phase[:, 1])], 1)
        pos = self._base + amp * off * self._drifts[:, None]
        energy = 0.5 + 0.5 * np.sin(2 * np.pi * tree["field/nodes/pulse"] * self._freq[:, 2] * t + self._phase[:, 2])
        radius = tree["field/nodes/size"] * self._size * (0.85 + 0.3 * energy)
        nodes = np.concatenate([pos, radius[:, None], energy[:, None]], 1).astype(np.float32)

        ends = np.zeros((MAX_ROUTES, 4), np.float32)
        ctrl = np.zeros((MAX_ROUTES, 4), np.float32)
        info = np.zeros((MAX_ROUTES, 4), np.float32)
        e = self.edges
        nf = len(e)
        if nf:
            pa, pb = pos[e[:, 0]], pos[e[:, 1]]
            vec = pb - pa
            normal = np.stack([-vec[:, 1], vec[:, 0]], 1)
            ends[:nf, :2], ends[:nf, 2:] = pa, pb
            ctrl[:nf, :2] = (pa + pb) / 2 + normal * (tree["field/filaments/bow"] * self._bow)[:, None]
            ctrl[:nf, 2] = self._fragility
            ctrl[:nf, 3] = self._hue
            info[:nf] = (0.0, 1.0, 1.0, 1.0)  # speed / length is filled in below, for every route
        # Petals: out of the node along one angle, round the bow point, back along another.
        ang = self._petal_angle + 0.3 * t * (self._freq[:, 2:3] - 1.0)
        r = radius[:, None]
        span, reach = self._petal_span, self._petal_reach * r
        out = pos[:, None, :] + 0.15 * r[..., None] * np.stack([np.cos(ang), np.sin(ang)], -1)
        back = pos[:, None, :] + 0.15 * r[..., None] * np.stack([np.cos(ang + span), np.sin(ang + span)], -1)
        mid = ang + span / 2
        tip = pos[:, None, :] + reach[..., None] * np.stack([np.cos(mid), np.sin(mid)], -1)
        npet = min(count * PETALS, MAX_ROUTES - nf)
        sl = slice(nf, nf + npet)
        ends[sl, :2] = out.reshape(-1, 2)[:npet]
        ends[sl, 2:] = back.reshape(-1, 2)[:npet]
        ctrl[sl, :2] = tip.reshape(-1, 2)[:npet]
        ctrl[sl, 2] = 2.0  # petals never tear
        ctrl[sl, 3] = np.repeat(self._petal_hue, PETALS)[:npet]
        info[sl] = np.stack([np.ones(npet), np.full(npet, 0.8), np.full(npet, 0.8),
                             np.repeat(0.8 + 0.4 * energy, PETALS)[:npet]], 1)
        # Arc length of each Bezier (its control polygon, close enough): the shader advances s by
        # speed / length so every route streams at the same speed along the canvas.
        n = nf + npet
        length = (np.hypot(*(ctrl[:n, :2] - ends[:n, :2]).T) + np.hypot(*(ends[:n, 2:] - ctrl[:n, :2]).T))
        info[:n, 1] = info[:n, 2] / np.maximum(length, 0.05)
        return NetworkState(nodes, e, ends, ctrl, info, nf, n)
