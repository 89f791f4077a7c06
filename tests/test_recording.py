"""Headless renders: MP4 that OpenCV decodes back, PNG sequences, byte-for-byte determinism."""

import hashlib
import io
from pathlib import Path

import cv2
import numpy as np
import pytest

from installation.app import RenderArgs, StartupError, internal_size, parse_size, render
from installation.recording import Progress, RecordingError, VideoWriter


def small(out, **kw):
    base = dict(out=str(out), preset="tension", seconds=1.0, fps=12, size=(192, 108), seed=4, particles=8192,
                quiet=True)
    return RenderArgs(**{**base, **kw})


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mp4_decodes_with_the_right_frame_count_size_and_fps(tmp_path):
    out = tmp_path / "a.mp4"
    assert render(small(out)) == 0
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 192 and cap.get(cv2.CAP_PROP_FRAME_HEIGHT) == 108
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12)
    n, lit = 0, 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        lit += frame.mean() > 2
    assert n == 12
    assert lit >= 11          # the network is visible from the first frames on


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    render(small(tmp_path / "a.mp4"))
    render(small(tmp_path / "b.mp4"))
    render(small(tmp_path / "c.mp4", seed=5))
    assert sha(tmp_path / "a.mp4") == sha(tmp_path / "b.mp4")
    assert sha(tmp_path / "a.mp4") != sha(tmp_path / "c.mp4")


def test_png_sequence_is_deterministic_and_complete(tmp_path):
    render(small(str(tmp_path / "p1") + "/", seconds=0.5))
    render(small(str(tmp_path / "p2") + "/", seconds=0.5))
    one = sorted((tmp_path / "p1").glob("frame_*.png"))
    two = sorted((tmp_path / "p2").glob("frame_*.png"))
    assert [p.name for p in one] == [f"frame_{i:06d}.png" for i in range(1, 7)]
    assert [sha(p) for p in one] == [sha(p) for p in two]
    assert cv2.imread(str(one[0])).shape == (108, 192, 3)


def test_replayed_camera_bends_the_render_and_is_deterministic(tmp_path):
    media = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "people-walking-in.gif"
    if not media.exists():
        pytest.skip(f"shared media not found at {media}")
    a = small(tmp_path / "cam1.mp4", camera=str(media), seconds=1.5)
    b = small(tmp_path / "cam2.mp4", camera=str(media), seconds=1.5)
    render(a)
    render(b)
    render(small(tmp_path / "none.mp4", seconds=1.5))
    assert sha(tmp_path / "cam1.mp4") == sha(tmp_path / "cam2.mp4")
    assert sha(tmp_path / "cam1.mp4") != sha(tmp_path / "none.mp4")


def test_bad_output_paths_give_clear_errors(tmp_path):
    with pytest.raises(StartupError, match="mp4"):
        render(small(tmp_path / "out.avi"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RecordingError, match="cannot write"):
        VideoWriter(blocker / "sub" / "a.mp4", (64, 64), 30)


def test_progress_shows_rate_and_eta():
    buf = io.StringIO()
    p = Progress(10, stream=buf, label="render")
    p.update(5, force=True)
    p.update(10)
    text = buf.getvalue()
    assert "5/10" in text and "ETA" in text and "10/10" in text


def test_sizes():
    assert parse_size("1280x720") == (1280, 720)
    with pytest.raises(StartupError):
        parse_size("big")
    assert internal_size((1920, 1080)) == (960, 540)
    assert internal_size((640, 360)) == (640, 360)
