"""`run.py map` on 2,000 LEDs seen by a synthetic camera (k1 = -0.1, noise 4 grey levels, blur, 10 % occluded),
driven by the real packets of the venue's outputs (loopback receivers)."""

from __future__ import annotations

import json
import math
import tomllib

import numpy as np

from installation.mapping.patterns import bits_for, safe_levels, sequence
from installation.safety import FlashLimiter
from installation.sensing.camera import homography, parse_roi
from installation.venue import check_layout, load_venue

ASPECT = 4.0 / 2.25


def _err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in canvas heights."""
    return np.hypot((a[:, 0] - b[:, 0]) * ASPECT, a[:, 1] - b[:, 1])


def test_visible_leds_are_placed_within_half_a_percent_of_the_canvas_height(mapped):
    world, res, _, _ = mapped
    visible = ~world.occluded
    found = np.isfinite(res.canvas).all(axis=1)
    assert found[visible].mean() >= 0.98
    err = _err(res.canvas, world.truth())
    good = visible & found & (err <= 0.005)
    assert good.sum() >= 0.98 * visible.sum(), f"only {good.sum()} of {visible.sum()} visible LEDs within 0.5 %"


def test_every_occluded_led_is_reported_missing_not_guessed(mapped):
    world, res, _, _ = mapped
    missing = set(res.missing.tolist())
    assert set(np.flatnonzero(world.occluded).tolist()) <= missing
    assert len(missing) <= world.occluded.sum() + 0.02 * (~world.occluded).sum()
    view = json.loads(res.views_file.read_text())["views"][-1]
    assert set(view["missing"]) == missing
    assert not set(view["found"]["index"]) & missing


def test_the_reversed_strip_and_the_colour_swap_are_reported(mapped):
    _, res, _, _ = mapped
    by = {r.name: r for r in res.fixtures}
    assert [r.name for r in res.fixtures if r.reversed] == ["strip-4"]
    assert {r.name: r.order_seen for r in res.fixtures if r.order_seen} == {"strip-7": "RGB"}
    assert not by["panel"].order_unclear and by["panel"].order_seen is None


def test_the_written_layout_passes_layouts_check_and_holds_the_true_positions(mapped):
    world, res, old_text, old_csv = mapped
    check = check_layout(world.given_path)
    assert check.splitlines()[-1] == "OK", check
    after = load_venue(world.given_path)
    truth = world.truth()
    lay = after.layout
    # strips and the matrix are refitted as a whole, so even their hidden LEDs land right
    for name in [f"strip-{i}" for i in range(1, 11)] + ["panel"]:
        sl = lay.led_range(lay.fixture(name))
        assert np.percentile(_err(lay.positions[sl], truth[sl]), 98) <= 0.005, name
    # the net is written LED by LED: seen ones where the camera saw them, the others where they were
    sl = lay.led_range(lay.fixture("net"))
    seen = ~world.occluded[sl]
    assert np.mean(_err(lay.positions[sl][seen], truth[sl][seen]) <= 0.005) >= 0.98
    before = world.given.layout.positions[sl]
    assert np.allclose(lay.positions[sl][~seen], before[~seen], atol=1e-4)
    # the installer's files are kept
    baks = {p.name.split(".")[0] + "." + p.name.split(".")[1]: p for p in world.given_path.parent.glob("*.bak")}
    assert baks["wall.toml"].read_text() == old_text
    assert baks["net.csv"].read_text() == old_csv


def test_the_roi_homography_is_within_half_a_percent_at_the_canvas_corners(mapped):
    world, res, _, _ = mapped
    cam = world.camera
    venue_roi = tomllib.loads(world.given_path.read_text())["camera"]["roi"]
    pts = parse_roi(",".join(str(v) for v in venue_roi))     # what sensing/camera reads
    H = homography(pts)
    w, h = cam.size
    corners = (cam.canvas_corners_px() + 0.5) / np.array([w, h])
    p = np.c_[corners, np.ones(4)] @ H.T
    p = p[:, :2] / p[:, 2:3]
    assert np.all(_err(p, np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)) <= 0.005)


def test_at_most_two_log2_n_plus_six_patterns_and_the_limiter_altered_none(mapped):
    world, res, _, _ = mapped
    n = world.given.layout.count
    assert res.patterns <= 2 * math.ceil(math.log2(n)) + 6
    assert res.limiter_frames >= res.patterns and res.limiter_altered == 0


def test_patterns_stay_under_the_flash_thresholds_even_at_one_pattern_per_frame():
    """The codes are low-contrast: no cadence makes them flash (a fresh limiter sees every change at 60 fps)."""
    from installation.safety import GENERAL_DELTA, RED_DELTA
    n = 2000
    seq = sequence(n, safe_levels(GENERAL_DELTA, RED_DELTA))
    lim = FlashLimiter(np.full(n, 1.0 / n), 60.0)
    for _ in range(3):
        for p in seq:
            out = lim.limit(p.levels, 1 / 60)
            assert np.array_equal(out, p.levels), p.name
    assert lim.frames_limited == 0 and len(seq) == 5 + 2 * bits_for(n)


def test_the_limiter_is_really_in_the_mapping_path(tmp_path):
    """A full-white strobe sent the same way as the patterns is held back: the limiter is live, not decoration."""
    from installation.mapping.drive import PatternPlayer
    from tests.mapping.conftest import make_world

    world = make_world(tmp_path, strands=2, per_strand=10)
    try:
        player = PatternPlayer(world.given, fps=60)
        n = world.given.layout.count
        for k in range(40):
            player.show(np.full((n, 3), float(k % 2), np.float32), 0.0, "strobe")
        player.close()
        assert player.watch.altered > 0
    finally:
        world.close()


def test_the_camera_view_png_and_the_views_file(mapped):
    world, res, _, _ = mapped
    import cv2
    img = cv2.imread(str(world.folder / "camera-map.png"))
    assert img is not None and img.shape[1] >= world.camera.size[0]
    data = json.loads(res.views_file.read_text())
    assert data["format"] == "tapestry-led-map" and data["leds"] == 2000
    v = data["views"][-1]
    assert len(v["found"]["index"]) == len(v["found"]["image_px"]) == len(v["found"]["canvas"])
    assert abs(v["lens_k1"] - (-0.1)) < 0.02
