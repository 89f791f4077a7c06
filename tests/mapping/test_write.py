"""Writing a mapping into layout files: only the keys that change, comments kept, backups, and a full restore
when the result would not load."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from installation.mapping.fit import FixtureResult
from installation.mapping.write import append_view, write_camera_section, write_layouts
from installation.venue import VenueError, load_venue

LAYOUT = """# the installer's notes stay
name = "bits"
[canvas]
units = "m"
width = 4.0
height = 2.0

[[fixtures]]
name = "bar"            # the bar over the door
type = "strip"
start = [0.5, 0.5]
end = [3.5, 0.5]
spacing = 0.5           # 7 LEDs
[fixtures.patch]
controller = "node"
universe = 0

[[fixtures]]
name = "dots"
type = "points"
points = [[1.0, 1.0],
          [2.0, 1.5],
          [3.0, 1.0]]
[fixtures.patch]
controller = "node"

[[fixtures]]
name = "arc"
type = "polyline"
points = [[0.5, 1.8], [2.0, 1.6], [3.5, 1.8]]
spacing = 0.25
[fixtures.patch]
controller = "node"

[[fixtures]]
name = "grid"
type = "matrix"
origin = [0.2, 1.2]
columns = 3
rows = 2
spacing = 0.2
[fixtures.patch]
controller = "node"
"""

VENUE = """name = "bits"
layouts = ["bits.toml"]

[[outputs]]
name = "node"
protocol = "artnet"
host = "127.0.0.1"
port = 9
enabled = false

[camera]
# the installer's camera note stays
lens_k1 = 0.0
"""


@pytest.fixture
def venue(tmp_path):
    (tmp_path / "bits.toml").write_text(LAYOUT)
    (tmp_path / "venue.toml").write_text(VENUE)
    return load_venue(tmp_path / "venue.toml")


def _results(venue, bar_start=(0.2, 0.3), bar_end=(0.8, 0.3), dots=None, mirror=False):
    lay = venue.layout
    out = []
    for fi, f in enumerate(lay.fixtures):
        pos = lay.positions[lay.led_range(fi)].astype(np.float64).copy()
        r = FixtureResult(f.name, f.kind, f.count, pos, [])
        if f.kind == "strip":
            r.start, r.end = np.array(bar_start), np.array(bar_end)
        elif f.kind == "polyline":
            r.positions = pos + np.array([0.0, -0.05])   # the whole arc hangs 10 cm higher (0.05 of 2 m)
            r.positions[3] = np.nan
            r.missing = [3]
        elif f.kind == "points":
            r.positions = np.array(dots, np.float64)
            r.missing = [int(i) for i in np.flatnonzero(~np.isfinite(r.positions).all(axis=1))]
        else:
            gx = np.array([0, 1, 2, 2, 1, 0])
            gy = np.array([0, 0, 0, 1, 1, 1])
            r.grid = (gx, gy)
            r.origin = np.array([0.3 if mirror else 0.1, 0.6])
            r.spacing = np.array([-0.05 if mirror else 0.05, 0.1])
            r.mirrored = (mirror, False)
        out.append(r)
    return out


def test_strips_matrices_and_points_are_rewritten_in_place(venue, tmp_path):
    res = _results(venue, dots=[[0.3, 0.4], [np.nan, np.nan], [0.7, 0.45]], mirror=True)
    written, notes = write_layouts(venue, res, "T1")
    text = (tmp_path / "bits.toml").read_text()
    assert "# the installer's notes stay" in text and '# the bar over the door' in text
    top = tomllib.loads(text)
    bar, dots, arc, grid = top["fixtures"]
    assert bar["start"] == [0.8, 0.6] and bar["end"] == [3.2, 0.6]
    assert "spacing" not in bar and bar["count"] == 7          # the patch cannot change with the length
    assert dots["csv"] == "bits-dots.csv" and "points" not in dots
    csv = (tmp_path / "bits-dots.csv").read_text().splitlines()
    assert csv[1] == "x,y,z,seen" and csv[3] == "2,1.5,0,0"    # not seen: the old place, flagged
    assert grid["start_corner"] == "top-right" and grid["origin"] == pytest.approx([0.8, 1.2])
    assert arc["points"] == [pytest.approx([0.5, 1.7], abs=1e-3), pytest.approx([2.0, 1.5], abs=1e-3),
                             pytest.approx([3.5, 1.7], abs=1e-3)] and arc["count"] == 13 and "spacing" not in arc
    after = load_venue(tmp_path / "venue.toml")
    assert np.allclose(after.layout.positions[0], [0.2, 0.3]) and after.layout.count == 7 + 3 + 13 + 6
    assert (tmp_path / "bits.toml.T1.bak").read_text() == LAYOUT


def test_a_result_that_would_not_load_restores_every_file(venue, tmp_path):
    """A bar fitted off the canvas (a bad anchor, say) must not leave half-written files."""
    res = _results(venue, bar_start=(0.2, 0.3), bar_end=(1.9, 0.3), dots=[[0.3, 0.4], [0.5, 0.5], [0.7, 0.45]])
    with pytest.raises(VenueError, match="every file restored"):
        write_layouts(venue, res, "T2")
    assert (tmp_path / "bits.toml").read_text() == LAYOUT
    assert not (tmp_path / "bits-dots.csv").exists()


def test_camera_section_is_updated_not_duplicated(venue, tmp_path):
    roi = [0.1, 0.1, 0.9, 0.1, 0.9, 0.9, 0.1, 0.9]
    write_camera_section(venue, roi, -0.08, (1280, 720), "T3")
    write_camera_section(load_venue(tmp_path / "venue.toml"), roi, -0.09, (1280, 720), "T4")
    text = (tmp_path / "venue.toml").read_text()
    assert text.count("[camera]") == 1
    cam = tomllib.loads(text)["camera"]
    assert "# the installer's camera note stays" in text and cam["roi"] == roi and cam["lens_k1"] == -0.09
    # what the show's start-up hands to the presence camera
    from installation.mapping.write import camera_roi
    from installation.sensing.camera import parse_roi
    assert parse_roi(camera_roi(load_venue(tmp_path / "venue.toml").sections)) == ((0.1, 0.1), (0.9, 0.1),
                                                                                   (0.9, 0.9), (0.1, 0.9))


def test_views_are_appended(venue, tmp_path):
    p, n1 = append_view(venue, {"camera": "a"})
    _, n2 = append_view(venue, {"camera": "b"})
    data = json.loads(Path(p).read_text())
    assert (n1, n2) == (1, 2) and [v["camera"] for v in data["views"]] == ["a", "b"]
    assert [v["id"] for v in data["views"]] == [1, 2]


def test_a_camera_that_sees_nothing_stops_with_a_clear_message(tmp_path):
    from installation.mapping.cli import MapError, MapOptions, map_venue
    from tests.mapping.conftest import make_world
    w = make_world(tmp_path, strands=2, per_strand=10, size=(320, 180))
    w.camera.occluded[:] = True                         # lens cap on
    try:
        with pytest.raises(MapError, match="no LED lit up"):
            map_venue(w.given_path, w.camera, MapOptions(hold_s=0.0, settle_s=0.3, quiet=True))
        assert not list(w.given_path.parent.glob("*.bak"))
    finally:
        w.close()


def test_a_fixture_that_does_not_fit_its_shape_is_not_rewritten(venue, tmp_path):
    """A matrix wired along columns where the layout says rows fits no grid: said, and its keys left alone."""
    res = _results(venue, dots=[[0.3, 0.4], [0.5, 0.5], [0.7, 0.45]])
    res[3].rms = 0.04
    _, notes = write_layouts(venue, res, "T5")
    grid = tomllib.loads((tmp_path / "bits.toml").read_text())["fixtures"][3]
    assert grid["origin"] == [0.2, 1.2] and any("grid: the LEDs seen do not lie on" in n for n in notes)
