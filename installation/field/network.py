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

from ..params import FLOAT, LOOK, ParamSpec, ParamTree

MAX_NODES = 32
PETALS = 5       # petal routes per node
MAX_ROUTES = 256  # must match shaders/lib/field_common.glsl
FILAMENT_BASE = MAX_NODES * PETALS   # route slots: petals of node i at i*PETALS.., filaments from here on
MAX_EDGES = MAX_ROUTES - FILAMENT_BASE
CANDIDATES = 12  # best-candidate sampling: the farthest of this many random points becomes the next node

PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("field/nodes/count", FLOAT, 9.0, "Number of nutrient clusters (nodes) in the network; a fraction "
              "fades the last cluster in, so a crossfade grows or shrinks the network node by node",
              2.0, float(MAX_NODES), "nodes", scope=LOOK),
    ParamSpec("field/nodes/links", FLOAT, 3.0, "Filaments grown from each node to its nearest neighbours; a "
              "fraction fades the next filament in", 1.0, 6.0, "filaments", scope=LOOK),
    ParamSpec("field/nodes/drift", FLOAT, 0.04, "How far drifting nodes wander", 0.0, 0.25, "canvas h", scope=LOOK),
    ParamSpec("field/nodes/drift_rate", FLOAT, 0.05, "How fast drifting nodes wander", 0.0, 1.0, "Hz", scope=LOOK),
    ParamSpec("field/nodes/size", FLOAT, 0.045, "Radius of a nutrient cluster", 0.005, 0.15, "canvas h", scope=LOOK),
    ParamSpec("field/nodes/pulse", FLOAT, 0.15, "Breathing rate of the clusters' energy", 0.0, 2.0, "Hz", scope=LOOK),
    ParamSpec("field/filaments/bow", FLOAT, 0.18, "How much filaments curve away from a straight line", 0.0, 0.6,
              "ratio", scope=LOOK),
)


REACH = 0.18    # no canvas edge may lie farther than this (canvas h) from the nearest of the first COVERED nodes
COVERED = 9     # field/nodes/count's default and the fewest nodes a shipped preset lights
REDRAWS = 16    # node lists drawn from one seed at most, looking for one that reaches every edge


def spread_nodes(rng: np.random.Generator, aspect: float, n: int = MAX_NODES) -> np.ndarray:
    """``n`` node positions (canvas units, x in [0, aspect]) by best-candidate sampling: each is the farthest
    from those before it of CANDIDATES random points, so the first ``k`` are spread for every ``k``."""
    a = float(aspect)
    pts = np.zeros((n, 2))
    for k in range(n):   # near the edges too: LEDs are there
        cand = np.stack([rng.uniform(0.05 * a, 0.95 * a, CANDIDATES), rng.uniform(0.06, 0.94, CANDIDATES)], 1)
        if k:
            far = np.hypot(*(cand[:, None, :] - pts[None, :k, :]).transpose(2, 0, 1)).min(1)
            pts[k] = cand[int(np.argmax(far))]
        else:
            pts[k] = cand[0]
    return pts


def edge_reach(pts: np.ndarray, aspect: float) -> float:
    """How far (canvas h) the canvas edge farthest from every node lies from its nearest node: the band
    along that edge is where only stray light falls (particles leaving the canvas die)."""
    return float(max(pts[:, 0].min(), aspect - pts[:, 0].max(), pts[:, 1].min(), 1.0 - pts[:, 1].max()))


@dataclass(frozen=True)
class NetworkState:
    """This frame's network, packed for the shaders (route arrays of MAX_ROUTES slots).

    Slots are stable from frame to frame, so a particle keeps following the same filament or petal while
    the network morphs: the petals of node ``i`` are slots ``i*PETALS ..``, filaments hold a slot from
    :data:`FILAMENT_BASE` on for as long as they exist.  A slot's brightness (``route_info[:, 3]``) carries
    its node's or filament's weight, so both fade in and out instead of switching.
    """

    nodes: np.ndarray       # (active nodes, 4): x, y, radius (x weight), energy
    edges: np.ndarray       # (filaments, 2) node indices, in slot order (unused slots left out)
    route_ends: np.ndarray  # (MAX_ROUTES, 4) float32: ax, ay, bx, by
    route_ctrl: np.ndarray  # (MAX_ROUTES, 4) float32: bow x, bow y, fragility, hue
    route_info: np.ndarray  # (MAX_ROUTES, 4) float32: loops, speed factor / length, speed factor, brightness
    petals: int             # petal slots in use: [0, petals)
    filaments: int          # filament slots in use: [FILAMENT_BASE, FILAMENT_BASE + filaments)

    @property
    def routes(self) -> int:
        """One past the highest slot in use."""
        return FILAMENT_BASE + self.filaments if self.filaments else self.petals


class Network:
    """Nodes and filaments from a seed; ``state(t)`` gives the frame's routes.

    The nodes are one fixed list per seed, placed by best-candidate sampling so that its first ``n`` are
    spread over the canvas for every ``n``; ``field/nodes/count`` says how many of them are lit (a fraction
    fades the next one in) and ``field/nodes/links`` how many nearest neighbours each joins, counted with
    the neighbours' weights, so both morph continuously during a crossfade instead of rebuilding the network.
    """

    def __init__(self, tree: ParamTree, aspect: float, seed: int) -> None:
        self.tree = tree
        self.aspect = float(aspect)
        self.seed = int(seed)
        self._slots: dict[tuple[int, int], int] = {}   # filament (i, j) -> its slot while it exists
        self._key: tuple[float, float] | None = None
        self._topology: tuple = ()
        self._build()

    def _build(self) -> None:
        rng = np.random.default_rng([self.seed, 0x4E75])
        a, n = self.aspect, MAX_NODES
        pts = spread_nodes(rng, a)
        # A spread that leaves a canvas edge far from every node leaves the LEDs along it dark all day
        # (seed 20261203: no node above y 0.30, the demo venue's rim strip at 0.04 of full level): draw
        # again from the same seed until the first COVERED nodes reach every edge, else keep the closest.
        for j in range(1, REDRAWS):
            if edge_reach(pts[:COVERED], a) <= REACH:
                break
            alt = spread_nodes(np.random.default_rng([self.seed, 0x4E75, j]), a)
            if edge_reach(alt[:COVERED], a) < edge_reach(pts[:COVERED], a):
                pts = alt
        self._base = pts
        self._size = rng.uniform(0.6, 1.4, n)
        self._drifts = rng.uniform(0, 1, n) < 0.5           # half the nodes wander
        self._phase = rng.uniform(0, 2 * np.pi, (n, 3))
        self._freq = rng.uniform(0.6, 1.4, (n, 3))
        d = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1))
        np.fill_diagonal(d, np.inf)
        self._dist = d
        # per filament (pair of nodes), fixed whatever else exists: symmetric matrices
        self._bow = np.triu(rng.uniform(-1, 1, (n, n)), 1)
        self._fragility = np.triu(rng.uniform(0.05, 0.95, (n, n)), 1)
        self._hue = np.triu(rng.uniform(0, 1, (n, n)) * 0.35, 1)
        self._petal_angle = (rng.uniform(0, 2 * np.pi, n)[:, None] + np.arange(PETALS) * (2 * np.pi / PETALS)
                             + rng.uniform(-0.4, 0.4, (n, PETALS)))
        self._petal_reach = rng.uniform(1.1, 2.6, (n, PETALS))
        self._petal_span = rng.uniform(1.4, 2.8, (n, PETALS))
        self._petal_hue = 0.55 + 0.2 * rng.uniform(0, 1, n)

    def weights(self, count: float, links: float) -> tuple[np.ndarray, np.ndarray]:
        """Node weights (MAX_NODES,) and filament weights (MAX_NODES, MAX_NODES, upper triangle) for a
        possibly fractional ``count`` and ``links``; 0/1 at whole numbers (the ``links`` nearest neighbours)."""
        count = float(np.clip(count, 2.0, MAX_NODES))
        w = np.clip(count - np.arange(MAX_NODES), 0.0, 1.0)
        m = int(np.ceil(count - 1e-9))
        d = self._dist[:m, :m]
        # rank[i, j]: how many (weighted) nodes are closer to i than j is
        rank = ((d[:, None, :] < d[:, :, None]) * w[None, None, :m]).sum(2)
        s = w[None, :m] * np.clip(float(links) - rank, 0.0, 1.0)
        e = np.maximum(s * w[:m, None], (s * w[:m, None]).T)
        out = np.zeros((MAX_NODES, MAX_NODES))
        out[:m, :m] = np.triu(e, 1)
        return w, out

    def _assign(self, e: np.ndarray) -> list[tuple[int, int, int]]:
        """(slot, i, j) of every filament with a weight: a filament keeps its slot while it lasts, a new one
        takes the lowest free slot (a particle on a slot never finds itself on another filament)."""
        ii, jj = np.nonzero(e > 1e-4)
        pairs = sorted(zip(ii.tolist(), jj.tolist()), key=lambda p: (-e[p], p))[:MAX_EDGES]
        live = set(pairs)
        self._slots = {p: k for p, k in self._slots.items() if p in live}
        used = set(self._slots.values())
        free = (k for k in range(MAX_EDGES) if k not in used)
        for p in sorted(live - self._slots.keys()):
            self._slots[p] = next(free)
        return sorted((k, i, j) for (i, j), k in self._slots.items())

    def state(self, t: float) -> NetworkState:
        """The network at time ``t`` (seconds of the piece's clock)."""
        tree = self.tree
        key = (float(tree["field/nodes/count"]), float(tree["field/nodes/links"]))
        if key != self._key:     # the topology changes only while count or links move (a crossfade)
            w, e = self.weights(*key)
            slots = self._assign(e)
            edges = np.array([(i, j) for _, i, j in slots], np.int32).reshape(-1, 2)
            k = FILAMENT_BASE + np.array([s[0] for s in slots], np.intp)
            ew = e[edges[:, 0], edges[:, 1]]
            self._topology = (w, slots, edges, k, ew, self._bow[edges[:, 0], edges[:, 1]],
                              self._fragility[edges[:, 0], edges[:, 1]], self._hue[edges[:, 0], edges[:, 1]])
            self._key = key
        w, slots, edges, k, ew, bow, fragility, hue = self._topology
        m = int(np.count_nonzero(w > 0))
        amp, rate = tree["field/nodes/drift"], tree["field/nodes/drift_rate"]
        wf = 2 * np.pi * rate * self._freq[:m]
        off = np.stack([np.sin(wf[:, 0] * t + self._phase[:m, 0]), np.cos(wf[:, 1] * t + self._phase[:m, 1])], 1)
        pos = self._base[:m] + amp * off * self._drifts[:m, None]
        energy = 0.5 + 0.5 * np.sin(2 * np.pi * tree["field/nodes/pulse"] * self._freq[:m, 2] * t
                                    + self._phase[:m, 2])
        radius = tree["field/nodes/size"] * self._size[:m] * (0.85 + 0.3 * energy)
        nodes = np.concatenate([pos, (radius * w[:m])[:, None], energy[:, None]], 1).astype(np.float32)

        ends = np.zeros((MAX_ROUTES, 4), np.float32)
        ctrl = np.zeros((MAX_ROUTES, 4), np.float32)
        info = np.zeros((MAX_ROUTES, 4), np.float32)
        nf = slots[-1][0] + 1 if slots else 0
        if slots:
            pa, pb = pos[edges[:, 0]], pos[edges[:, 1]]
            vec = pb - pa
            normal = np.stack([-vec[:, 1], vec[:, 0]], 1)
            ends[k, :2], ends[k, 2:] = pa, pb
            ctrl[k, :2] = (pa + pb) / 2 + normal * (tree["field/filaments/bow"] * bow)[:, None]
            ctrl[k, 2] = fragility
            ctrl[k, 3] = hue
            info[k, 1:3] = 1.0
            info[k, 3] = ew
        # Petals: out of the node along one angle, round the bow point, back along another; a node fading
        # in grows its cluster from a small bud.
        ang = self._petal_angle[:m] + 0.3 * t * (self._freq[:m, 2:3] - 1.0)
        r = radius[:, None]
        span = self._petal_span[:m]
        reach = self._petal_reach[:m] * r * (0.35 + 0.65 * w[:m, None])
        out = pos[:, None, :] + 0.15 * r[..., None] * np.stack([np.cos(ang), np.sin(ang)], -1)
        back = pos[:, None, :] + 0.15 * r[..., None] * np.stack([np.cos(ang + span), np.sin(ang + span)], -1)
        mid = ang + span / 2
        tip = pos[:, None, :] + reach[..., None] * np.stack([np.cos(mid), np.sin(mid)], -1)
        npet = m * PETALS
        sl = slice(0, npet)
        ends[sl, :2] = out.reshape(-1, 2)
        ends[sl, 2:] = back.reshape(-1, 2)
        ctrl[sl, :2] = tip.reshape(-1, 2)
        ctrl[sl, 2] = 2.0  # petals never tear
        ctrl[sl, 3] = np.repeat(self._petal_hue[:m], PETALS)
        info[sl] = np.stack([np.ones(npet), np.full(npet, 0.8), np.full(npet, 0.8),
                             np.repeat((0.8 + 0.4 * energy) * w[:m], PETALS)], 1)
        # Arc length of each Bezier (its control polygon, close enough): the shader advances s by
        # speed / length so every route streams at the same speed along the canvas.
        for part in (slice(0, npet), slice(FILAMENT_BASE, FILAMENT_BASE + nf)):
            length = (np.hypot(*(ctrl[part, :2] - ends[part, :2]).T) + np.hypot(*(ends[part, 2:] - ctrl[part, :2]).T))
            info[part, 1] = info[part, 2] / np.maximum(length, 0.05)
        return NetworkState(nodes, edges, ends, ctrl, info, npet, nf)
