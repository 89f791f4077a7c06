"""A mapped 2,000-LED venue, shared by the mapping tests (one real run: LEDs over loopback UDP, a synthetic camera)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from installation.venue import Venue, load_venue
from tests.mapping.synthcam import SyntheticCamera
from tests.mapping.venues import write_venue
from tests.support.udp import DmxReceiver

OUTPUTS = ("wall", "panel-node", "net-wled")


@dataclass
class World:
    """The truth, the installer's venue, the camera watching, and who is who."""

    folder: Path
    receivers: dict
    true: Venue
    given_path: Path
    given: Venue               # as loaded before mapping
    camera: SyntheticCamera
    g2t: np.ndarray            # given LED index -> the true LED that lights for it
    occluded: np.ndarray       # per given LED index

    def truth(self) -> np.ndarray:
        """True canvas position of each given LED index."""
        return self.true.layout.positions[self.g2t].astype(np.float64)

    def reveal(self, given_index) -> None:
        """Make these LEDs visible (the anchors an installer picks are LEDs the camera can see)."""
        for i in given_index:
            self.camera.occluded[self.g2t[i]] = False
        self.occluded = self.camera.occluded[self.g2t]

    def close(self) -> None:
        for r in self.receivers.values():
            r.close()


def make_world(folder: Path, seed: int = 1, strands: int = 20, per_strand: int = 40, size=(1280, 720)) -> World:
    """Receivers on OS-chosen ports, the true and given venues, a camera with 10 % of LEDs occluded."""
    rx = {n: DmxReceiver(keep=64) for n in OUTPUTS}
    ports = {n: r.port for n, r in rx.items()}
    tv = load_venue(write_venue(folder / "true", ports, given=False, strands=strands, per_strand=per_strand))
    gpath = write_venue(folder / "given", ports, given=True, strands=strands, per_strand=per_strand)
    gv = load_venue(gpath)
    # the true LED that lights for each given index: the one whose bytes the given patch writes
    byte_to_true = {int(b): j for j, row in enumerate(tv.patch.dest[:, :3]) for b in row}
    g2t = np.array([byte_to_true[int(b)] for b in gv.patch.dest[:, 0]])
    n = tv.layout.count
    rng = np.random.default_rng(seed)
    occ_true = np.zeros(n, bool)
    occ_true[rng.choice(n, n // 10, replace=False)] = True
    cam = SyntheticCamera(tv, rx, size=size, occluded=occ_true)
    return World(folder, rx, tv, gpath, gv, cam, g2t, occ_true[g2t])


def anchors_for(world: World) -> tuple[list[str], list[int]]:
    """Four LEDs far apart, with their true places in metres (what an installer measures precisely)."""
    lay = world.given.layout
    picks = [("strip-1", 0), ("panel", 29), ("net", 39), ("net", lay.fixtures[lay.fixture("net")].count - 1)]
    out, idx = [], []
    truth = world.truth()
    for name, k in picks:
        i = int(lay.first[lay.fixture(name)]) + k
        x, y = truth[i] * np.array([4.0, 2.25])
        out.append(f"{name}:{k}={x:.4f},{y:.4f}")
        idx.append(i)
    return out, idx


@pytest.fixture(scope="package")
def mapped(tmp_path_factory):
    """One mapping run of the 2,000-LED venue with anchors; yields (world, result, old layout text)."""
    from installation.mapping.cli import MapOptions, map_venue

    folder = tmp_path_factory.mktemp("map2000")
    world = make_world(folder)
    anchors, idx = anchors_for(world)
    world.reveal(idx)
    old_text = (world.given_path.parent / "wall.toml").read_text()
    old_csv = (world.given_path.parent / "net.csv").read_text()
    opts = MapOptions(anchors=tuple(anchors), hold_s=0.05, average=2, write_roi=True, quiet=True,
                      png=folder / "camera-map.png")
    try:
        res = map_venue(world.given_path, world.camera, opts)
        yield world, res, old_text, old_csv
    finally:
        world.close()
