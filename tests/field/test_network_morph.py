"""The network morphs instead of being rebuilt: what a visitor sees during a crossfade between presets with
different node counts (issue 12): clusters and filaments fade in one by one where they will stay."""

from __future__ import annotations

import numpy as np

from installation.engine import declare_all
from installation.field.network import FILAMENT_BASE, MAX_NODES, PETALS, Network


def network(count: float, links: float = 3.0, seed: int = 7) -> tuple[Network, object]:
    tree = declare_all()
    tree.set_base("field/nodes/count", count)
    tree.set_base("field/nodes/links", links)
    return Network(tree, 16 / 9, seed), tree


def test_whole_counts_give_the_links_nearest_neighbours():
    net, _ = network(9, 3)
    st = net.state(0.0)
    assert st.petals == 9 * PETALS
    d = np.hypot(*(net._base[:9, None] - net._base[None, :9]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    want = {tuple(sorted((i, int(j)))) for i in range(9) for j in np.argsort(d[i])[:3]}
    assert {tuple(e) for e in st.edges.tolist()} == want
    assert np.all(st.route_info[FILAMENT_BASE:FILAMENT_BASE + st.filaments, 3] == 1.0)


def test_a_growing_count_adds_nodes_without_moving_the_others():
    small, _ = network(9)
    big, _ = network(16)
    assert np.array_equal(small.state(1.0).nodes[:, :2], big.state(1.0).nodes[:9, :2])


def test_a_count_crossfade_changes_little_per_step_and_keeps_every_slot():
    net, tree = network(9.0, 3.0)
    prev = net.state(0.0)
    prev_slots = dict(net._slots)
    worst = 0.0
    for c in np.linspace(9.0, 16.0, 141):          # a 4.7 s fade at 30 fps, in steps of 0.05 nodes
        tree.set_base("field/nodes/count", float(c))
        tree.set_base("field/nodes/links", 3.0 + (c - 9.0) / 7.0)
        st = net.state(0.0)
        # brightness of every slot moves by a small step, never a jump
        worst = max(worst, float(np.abs(st.route_info[:, 3] - prev.route_info[:, 3]).max()))
        # a filament that still exists keeps its slot: its particles stay on it
        for pair, slot in prev_slots.items():
            if pair in net._slots:
                assert net._slots[pair] == slot
        prev, prev_slots = st, dict(net._slots)
    assert worst <= 0.25, worst                   # the old code rebuilt the whole network in one step
    assert prev.petals == 16 * PETALS and len(prev.edges) > 0


def test_the_same_seed_gives_the_same_network_and_nodes_stay_spread():
    a, _ = network(32)
    b, _ = network(32)
    assert np.array_equal(a.state(2.0).route_ends, b.state(2.0).route_ends)
    for n in (4, 9, 16, 32):                       # any prefix of the node list is spread over the canvas
        p = a._base[:n]
        d = np.hypot(*(p[:, None] - p[None]).transpose(2, 0, 1)) + np.eye(n) * 9
        assert d.min() >= 0.25 / np.sqrt(n), (n, d.min())
    assert MAX_NODES * PETALS == FILAMENT_BASE
