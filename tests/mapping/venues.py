"""Venues for the mapping tests, written into a temporary folder: the truth, and what the installer measured.

2,000 LEDs on a 4 m x 2.25 m wall: ten horizontal strips of 60 (Art-Net, GRB), a
30 x 20 serpentine matrix (sACN) and a net of 20 hanging strands of 40 (DDP,
free-form points from a CSV).  The *true* venue is where the LEDs really are
and how they are really wired; the *given* one is the installer's tape-measure
version: every position a few centimetres off, one strip (``strip-4``) wired
the other way round than its layout says, one (``strip-7``) really RGB where
the layout says GRB.  Both patch the same bytes, so the same packets drive both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

W, H = 4.0, 2.25


def _truth(n_strands: int = 20, per_strand: int = 40) -> dict:
    strips = [((0.12, 0.12 + 0.1 * i), (1.92, 0.14 + 0.1 * i)) for i in range(10)]
    net = []
    gap = 3.56 / max(n_strands - 1, 1)
    sway = min(0.04, 0.25 * gap)          # strands swing, but do not cross each other
    for s in range(n_strands):
        x0 = 0.22 + s * gap
        for k in range(per_strand):
            y = 1.18 + k * (0.95 / (per_strand - 1))
            net.append((x0 + sway * np.sin(1.3 * s + 4.0 * y), y, 0.0))
    return {"strips": strips, "matrix": ((2.2, 0.12), (1.7 / 29, 0.9 / 19)), "net": np.array(net)}


def write_venue(folder: Path, ports: dict[str, int], given: bool, seed: int = 3,
                strands: int = 20, per_strand: int = 40) -> Path:
    """Write layouts + venue into ``folder``; ``ports``: output name -> UDP port on 127.0.0.1.

    ``given``: the installer's (wrong) version; else the truth.  Returns the venue path.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = _truth(strands, per_strand)

    def jit(v, s=0.03):
        return np.asarray(v, float) + (rng.normal(0, s, np.shape(v)) if given else 0.0)

    lines = ['name = "mapping test wall"', "", "[canvas]", 'units = "m"', f"width = {W}", f"height = {H}", ""]
    for i, (a, b) in enumerate(t["strips"]):
        a, b = jit(a), jit(b)
        rev = (i == 3) and not given          # strip-4 really runs from its end
        order = "RGB" if (i == 6 and not given) else "GRB"   # strip-7 is really RGB
        lines += ["[[fixtures]]", f'name = "strip-{i + 1}"', 'type = "strip"',
                  f"start = [{a[0]:.4f}, {a[1]:.4f}]", f"end = [{b[0]:.4f}, {b[1]:.4f}]", "count = 60",
                  "[fixtures.patch]", 'controller = "wall"', f"order = \"{order}\"",
                  f"reversed = {'true' if rev else 'false'}", ""]
    (o, sp) = t["matrix"]
    o = jit(o)
    sp = np.asarray(sp) * (1.02 if given else 1.0)
    lines += ["[[fixtures]]", 'name = "panel"', 'type = "matrix"', f"origin = [{o[0]:.4f}, {o[1]:.4f}]",
              "columns = 30", "rows = 20", f"spacing = [{sp[0]:.5f}, {sp[1]:.5f}]",
              "[fixtures.patch]", 'controller = "panel-node"', "universe = 1", 'order = "RGB"', ""]
    net = t["net"].copy()
    if given:
        net[:, :2] += rng.normal(0, 0.02, (len(net), 2))
        net[:, :2] = np.clip(net[:, :2], 0.0, [W, H])
    csv = folder / "net.csv"
    csv.write_text("x,y,z\n" + "".join(f"{x:.4f},{y:.4f},{z:.4f}\n" for x, y, z in net))
    lines += ["[[fixtures]]", 'name = "net"', 'type = "points"', 'csv = "net.csv"', "size = 0.03",
              "[fixtures.patch]", 'controller = "net-wled"', "offset = 0", 'order = "RGB"', ""]
    (folder / "wall.toml").write_text("\n".join(lines))
    venue = ['name = "mapping test"', 'layouts = ["wall.toml"]', ""]
    for name, proto in (("wall", "artnet"), ("panel-node", "sacn"), ("net-wled", "ddp")):
        venue += ["[[outputs]]", f'name = "{name}"', f'protocol = "{proto}"', 'host = "127.0.0.1"',
                  f"port = {ports[name]}", "fps = 60", ""]
    venue += ["[[power]]", 'name = "main"', "amps = 60.0", 'fixtures = ["strip-*", "panel", "net"]', ""]
    path = folder / "venue.toml"
    path.write_text("\n".join(venue))
    return path
