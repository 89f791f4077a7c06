"""`run.py map` as an installer runs it: dry run, a recorded clip, a second view, and bad input."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from installation.mapping.cli import MapOptions, map_venue
from installation.mapping.drive import PatternPlayer
from installation.mapping.patterns import safe_levels, sequence
from tests.mapping.conftest import make_world

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, timeout=120):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "map", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture
def small(tmp_path):
    w = make_world(tmp_path, strands=6, per_strand=20, size=(960, 540))   # 600 + 600 + 120 LEDs
    yield w
    w.close()


def test_dry_run_shows_every_pattern_on_the_wire_and_draws_them(small, tmp_path):
    r = _run("--venue", str(small.given_path), "--dry-run", "--hold", "0.02", "--quiet")   # run from the repo
    assert r.returncode == 0, r.stdout + r.stderr
    n = small.given.layout.count
    assert f"{5 + 2 * math.ceil(math.log2(n))} patterns" in r.stdout
    assert re.search(r"flash limiter: 0 of [1-9]\d* frames altered", r.stdout)
    # the PNG goes next to the venue, as --help says, not into the directory it was run from
    assert (small.given_path.parent / "venue-patterns.png").exists() and not (ROOT / "venue-patterns.png").exists()
    assert small.receivers["wall"].total > 0 and small.receivers["net-wled"].total > 0
    # nothing written
    assert not list(small.given_path.parent.glob("*.bak"))


def record_clip(world, clip: Path) -> Path:
    """Record ``world``'s camera while the patterns play (as a phone would): an MP4 for ``map --camera``."""
    cam = world.camera
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, cam.size)
    assert writer.isOpened()
    player = PatternPlayer(world.given, fps=60)
    seq = sequence(world.given.layout.count, safe_levels(*player.thresholds))
    try:
        for _ in range(4):                     # pre-roll: the LEDs dark before the run
            player.show(seq[0].levels, 0.01)
            writer.write(cam.grab())
        for p in seq:
            player.show(p.levels, 0.03, p.name)
            for _ in range(5):
                writer.write(cam.grab())
    finally:
        player.close()
        writer.release()
    return clip


def test_a_recorded_clip_maps_like_a_live_camera(small, tmp_path):
    """Record the camera while the patterns play (as a phone would), then map from the MP4 with the CLI."""
    clip = record_clip(small, tmp_path / "clip.mp4")
    corners = " ".join(f"{x:.2f},{y:.2f}" for x, y in small.camera.canvas_corners_px())
    r = _run("--venue", str(small.given_path), "--camera", str(clip), "--corners", corners,
             "--png-dir", str(tmp_path), "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING strip-4: wired reversed" in r.stdout
    assert "WARNING strip-7: colour order looks like RGB" in r.stdout
    assert "layouts check: OK" in r.stdout
    found = int(r.stdout.split(" of ")[0].split(": ")[-1])
    assert found >= 0.98 * (~small.occluded).sum()
    assert (tmp_path / "venue-camera-map.png").exists()


def test_a_second_view_adds_to_the_first(small):
    cam = small.camera
    corners = " ".join(f"{x:.2f},{y:.2f}" for x, y in cam.canvas_corners_px())
    opts = MapOptions(corners=corners, hold_s=0.03, average=1, quiet=True)
    first = map_venue(small.given_path, cam, opts)
    one = json.loads(first.views_file.read_text())
    # the camera moves: another place, the same LEDs
    cam.H = cam.H @ np.array([[0.95, 0.02, 0.01], [-0.01, 0.97, 0.02], [0, 0, 1.0]])
    from tests.mapping.synthcam import project
    cam.px = project(cam.H, cam.lens, small.true.layout.positions)
    corners = " ".join(f"{x:.2f},{y:.2f}" for x, y in cam.canvas_corners_px())
    second = map_venue(small.given_path, cam, MapOptions(corners=corners, hold_s=0.03, average=1, quiet=True))
    two = json.loads(second.views_file.read_text())
    assert len(two["views"]) == 2 and two["views"][0] == one["views"][0]
    assert two["views"][1]["id"] == 2 and two["views"][1]["homography"] != one["views"][0]["homography"]


def test_preview_without_a_screen_is_one_clear_line(small):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "map", "--venue", str(small.given_path), "--dry-run",
                        "--preview", "--quiet"], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "--preview needs a screen" in lines[0], r.stdout + r.stderr
    assert small.receivers["wall"].total == 0      # nothing was lit


@pytest.mark.parametrize("args, message", [
    (["--venue", "no/such/venue.toml", "--camera", "0"], "cannot read"),
    (["--camera", "no-such-clip.mp4"], "not a camera index"),
    ([], "give --camera"),
    (["--camera", "0", "--hold", "-1"], "--hold"),
    (["--camera", "0", "--k1", "7"], "--k1"),
    (["--camera", "0", "--corners", "1,2 3"], "--corners"),
    (["--camera", "0", "--anchor", "nosuch"], "no such fixture"),
    (["--camera", "0", "--anchor", "strip-1:999"], "--anchor"),
    (["--camera", "0", "--preview"], "--preview goes with --dry-run"),
    (["--camera", "0", "--png-dir", "no/such/dir"], "--png-dir no/such/dir: not a folder"),
    (["--camera", "0", "--snapshot", "view.txt"], "--snapshot view.txt: give a .png"),
    (["--camera", "0", "--snapshot", "no/such/dir/view.png"], "no folder no/such/dir"),
])
def test_bad_input_is_one_clear_line_and_a_failing_status(args, message):
    r = _run(*args, timeout=60)
    assert r.returncode == 2
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_a_png_dir_that_is_not_a_folder_is_refused_before_any_pattern(small, tmp_path):
    """It was a traceback after every pattern had been shown (and, mapping, before anything was written)."""
    (tmp_path / "afile").write_text("x")
    r = _run("--venue", str(small.given_path), "--dry-run", "--hold", "0.02", "--quiet", "--png-dir",
             str(tmp_path / "afile"), timeout=60)
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "--png-dir" in lines[0] and "not a folder" in lines[0], \
        r.stdout + r.stderr
    assert "Traceback" not in r.stderr and small.receivers["wall"].total == 0


def test_bad_anchors_and_corners_say_what_is_wrong(small):
    from installation.mapping.cli import MapError
    cam = small.camera
    for opts, text in ((MapOptions(corners="1,2,3", hold_s=0.0, average=1, quiet=True), "expected 8 numbers"),
                       (MapOptions(anchors=("nope:3",) * 4, hold_s=0.0, average=1, quiet=True), "FIXTURE:INDEX"),
                       (MapOptions(anchors=("strip-1:99",) * 4, hold_s=0.0, average=1, quiet=True), "0..59"),
                       (MapOptions(anchors=("strip-1",), hold_s=0.0, average=1, quiet=True), "at least 4"),
                       (MapOptions(anchors=("nope",), hold_s=0.0, average=1, quiet=True), "no such fixture")):
        with pytest.raises(MapError, match=text):
            map_venue(small.given_path, cam, opts)
    assert not list(small.given_path.parent.glob("*.bak"))


def test_a_glossy_ledge_mirroring_the_leds_does_not_move_or_lose_them(small):
    """The reflection carries the same codes as the LED; it must neither pull the LED nor hide it."""
    cam = small.camera
    cam.reflection = 0.45
    corners = " ".join(f"{x:.2f},{y:.2f}" for x, y in cam.canvas_corners_px())
    res = map_venue(small.given_path, cam, MapOptions(corners=corners, hold_s=0.03, quiet=True, write=False))
    vis = ~small.occluded
    t = small.truth()
    err = np.hypot((res.canvas[:, 0] - t[:, 0]) * 16 / 9, res.canvas[:, 1] - t[:, 1])
    assert np.mean(np.nan_to_num(err[vis], nan=1.0) <= 0.005) >= 0.98
    assert set(np.flatnonzero(small.occluded)) <= set(res.missing.tolist())


def test_snapshot_is_the_lit_piece_with_a_pixel_grid(small, tmp_path):
    from installation.mapping.cli import snapshot
    png = snapshot(small.given_path, small.camera, tmp_path / "view.png", MapOptions(hold_s=0.1, quiet=True))
    img = cv2.imread(str(png))
    assert img.shape[:2] == (small.camera.size[1], small.camera.size[0])
    assert img[:, :, :].max() > 120                       # the LEDs are in it
    assert tuple(img[350, 100]) == (0, 160, 255) != tuple(img[350, 103])   # a grid line at x = 100


def test_people_moving_in_real_footage_behind_the_leds_are_not_taken_for_leds(small):
    """Real store-aisle footage (people browsing) plays behind the LEDs while the patterns change."""
    media = ROOT.parent / "shared" / "media" / "store-aisle-detection.gif"
    if not media.exists():
        pytest.skip(f"{media} not present")
    cam = small.camera
    cam.use_room(str(media))
    corners = " ".join(f"{x:.2f},{y:.2f}" for x, y in cam.canvas_corners_px())
    res = map_venue(small.given_path, cam, MapOptions(corners=corners, hold_s=0.03, quiet=True, write=False))
    vis = ~small.occluded
    t = small.truth()
    err = np.hypot((res.canvas[:, 0] - t[:, 0]) * 16 / 9, res.canvas[:, 1] - t[:, 1])
    found = np.isfinite(res.canvas).all(axis=1)
    assert np.mean(np.nan_to_num(err[vis], nan=1.0) <= 0.005) >= 0.98
    assert not found[small.occluded].any()          # nothing guessed from the moving people
    assert np.all(err[found] <= 0.01)


def test_a_trusted_matrix_alone_fixes_the_canvas(tmp_path):
    """`--anchor panel`: the matrix's corner LEDs where its layout puts them (here the layout is the truth)."""
    w = make_world(tmp_path, strands=6, per_strand=20, size=(960, 540))
    try:
        lay = w.true.layout
        sl = lay.led_range(lay.fixture("panel"))
        w.camera.occluded[sl] = False                  # the installer sees the panel whole
        res = map_venue(w.true.path, w.camera, MapOptions(anchors=("panel",), hold_s=0.03, quiet=True, write=False))
        found = np.isfinite(res.canvas).all(axis=1)
        err = np.hypot((res.canvas[found, 0] - lay.positions[found, 0]) * 16 / 9,
                       res.canvas[found, 1] - lay.positions[found, 1])
        assert np.mean(err <= 0.005) >= 0.98
    finally:
        w.close()
