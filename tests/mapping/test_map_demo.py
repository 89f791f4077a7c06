"""The shipped demo venue (strip wall with every other strip reversed, a 3D hanging net on DDP, an RGBW rim on
sACN), not tuned on: mapped as it is, nothing is flagged that is not wrong, and what cannot be written is said."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from installation.mapping.cli import MapOptions, map_venue, report
from installation.venue import check_layout, load_venue
from tests.mapping.synthcam import SyntheticCamera
from tests.support.udp import DmxReceiver

HW = Path(__file__).resolve().parents[2] / "hardware"


def _demo_copy(folder: Path, ports: dict[str, int]) -> Path:
    for f in ("demo-venue.toml", "strip-wall.toml", "hanging-net.toml", "net-points.csv"):
        shutil.copy2(HW / f, folder / f)
    text = (folder / "demo-venue.toml").read_text()
    out, name = [], None
    for line in text.splitlines():
        m = re.match(r'^\s*name\s*=\s*"([^"]+)"', line)
        if m:
            name = m.group(1)
        out.append(line)
        if re.match(r"^\s*host\s*=", line) and name in ports:
            out.append(f"port = {ports[name]}")        # an OS-chosen loopback port, not the well-known one
    (folder / "demo-venue.toml").write_text("\n".join(out) + "\n")
    return folder / "demo-venue.toml"


def test_demo_venue_maps_without_false_alarms(tmp_path):
    rx = {n: DmxReceiver(keep=64) for n in ("wall", "net-wled", "rim-node")}
    try:
        path = _demo_copy(tmp_path, {n: r.port for n, r in rx.items()})
        venue = load_venue(path)
        cam = SyntheticCamera(venue, rx, size=(1280, 720))      # the layout is the truth here
        corners = " ".join(f"{x:.2f},{y:.2f}" for x, y in cam.canvas_corners_px())
        res = map_venue(path, cam, MapOptions(corners=corners, hold_s=0.05, quiet=True))
        text = "\n".join(report(res, venue))
        assert res.limiter_altered == 0
        assert not any(r.reversed for r in res.fixtures), text          # reversed = true in the layout is right
        assert not any(r.order_seen for r in res.fixtures), text        # GRB, RGB and the RGBW rim all fit
        found = np.isfinite(res.canvas).all(axis=1)
        assert found.mean() >= 0.98, text
        err = np.hypot((res.canvas[found, 0] - venue.layout.positions[found, 0]) * 16 / 9,
                       res.canvas[found, 1] - venue.layout.positions[found, 1])
        assert np.mean(err <= 0.005) >= 0.98
        # the net's layout has a 3D projection: said, not silently skipped; the strip wall is rewritten
        assert any("hanging-net.toml: has a 3D projection" in n for n in res.notes)
        assert any(Path(p).name == "strip-wall.toml" for p, _ in res.written)
        assert (tmp_path / "hanging-net.toml").read_text() == (HW / "hanging-net.toml").read_text()
        assert check_layout(path).splitlines()[-1] == "OK"
    finally:
        for r in rx.values():
            r.close()
