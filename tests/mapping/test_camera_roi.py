"""The presence camera and the LED mapping share one calibrated canvas, lens distortion included."""

import cv2
import numpy as np

from installation.mapping.geometry import CameraModel, Lens
from installation.params import ParamTree
from installation.sensing.camera import PARAMS, CameraAnalyzer, set_roi


def _model(src, k1: float, size=(1280, 720)) -> CameraModel:
    """A camera of ``size`` whose undistorted picture shows the canvas corners TL, TR, BR, BL at ``src`` (px)."""
    H = cv2.getPerspectiveTransform(np.asarray(src, np.float32),
                                    np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)).astype(np.float64)
    return CameraModel(Lens(k1, size), H)


def _analyzer(model: CameraModel, k1: float) -> CameraAnalyzer:
    tree = ParamTree.from_specs(PARAMS)
    roi = model.roi()
    set_roi(tree, [(roi[2 * i], roi[2 * i + 1]) for i in range(4)])
    tree.update_bases({"sensing/camera/lens_k1": k1})
    a = CameraAnalyzer(tree)
    w, h = model.lens.size
    a.process(np.full((h, w, 3), 90, np.uint8), 0.0)   # the ROI is set up for the camera's picture
    return a


def test_a_point_on_the_canvas_is_where_the_mapping_put_it_with_a_barrel_lens():
    """k1 = -0.1 (the issue's synthetic camera): every canvas point seen by the presence camera lands within
    0.5 % of the canvas where the LED mapping's camera model put it; with the lens ignored it was ~3 % off."""
    size = (1280, 720)
    model = _model([[210.0, 120.0], [1090.0, 95.0], [1120.0, 640.0], [170.0, 610.0]], -0.1, size)
    canvas = np.stack(np.meshgrid(np.linspace(0.05, 0.95, 7), np.linspace(0.05, 0.95, 7)), -1).reshape(-1, 2)
    uv = (model.to_image(canvas) + 0.5) / size

    def worst(a):
        got = np.array([a.to_canvas(u, v) for u, v in uv])
        return float(np.abs(got - canvas).max())

    assert worst(_analyzer(model, -0.1)) < 0.005
    assert worst(_analyzer(model, 0.0)) > 0.01   # what the plain homography did


def test_the_watched_area_follows_the_curved_canvas_outline():
    """With the lens corrected, a pixel just outside the canvas's curved edge is not watched, one just inside is."""
    size = (1280, 720)
    model = _model([[200.0, 100.0], [1080.0, 100.0], [1080.0, 620.0], [200.0, 620.0]], -0.1, size)
    a = _analyzer(model, -0.1)
    mask = a._roi_mask
    h, w = mask.shape
    for cx, cy, inside in ((0.5, 0.02, True), (0.5, -0.03, False), (0.02, 0.5, True), (-0.03, 0.5, False)):
        px = model.to_image(np.array([[cx, cy]]))[0]
        u, v = (px + 0.5) / size
        assert mask[int(v * h), int(u * w)] == inside, (cx, cy)


def test_a_strong_barrel_lens_does_not_fold_the_picture_corners_onto_the_canvas():
    """Past k1 = -0.148 the picture's corners have no undistorted place (the lens folds them back inwards):
    they are not watched and nobody standing there is put on the canvas (review: at k1 = -0.3 they landed in
    its middle, and 768 pixels outside the canvas were watched)."""
    size = (1280, 720)
    model = _model([[40.0, 30.0], [1240.0, 30.0], [1240.0, 690.0], [40.0, 690.0]], -0.3, size)
    a = _analyzer(model, -0.3)
    mask = a._roi_mask
    h, w = mask.shape
    g = np.stack(np.meshgrid(np.linspace(0, 1, 600), np.linspace(0, 1, 600)), -1).reshape(-1, 2)
    uv = (model.to_image(g) + 0.5) / size
    ok = (uv >= 0).all(1) & (uv < 1).all(1)
    truth = np.zeros((h, w), bool)
    truth[(uv[ok, 1] * h).astype(int), (uv[ok, 0] * w).astype(int)] = True
    assert not (mask & ~cv2.dilate(truth.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)).any()
    for u, v in ((0.02, 0.02), (0.98, 0.02), (0.98, 0.98), (0.02, 0.98)):
        x, y = a.to_canvas(u, v)
        assert not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0), (u, v, x, y)


def test_a_lens_too_strong_for_the_roi_leaves_the_camera_seeing(caplog):
    """k1 = -0.2 with the default ROI (the whole picture): its corners lie past the lens's fold. The camera
    says so and pulls them just inside it, keeping the lens correction, instead of a NaN homography that saw
    nobody at all."""
    import logging
    tree = ParamTree.from_specs(PARAMS)
    tree.update_bases({"sensing/camera/lens_k1": -0.2, "sensing/camera/detect_hz": 0.0})
    a = CameraAnalyzer(tree, opinion=None)
    room = np.full((360, 640, 3), 120, np.uint8)
    with caplog.at_level(logging.WARNING):
        for i in range(10):
            a.process(room, i / 10)
    visitor = room.copy()
    visitor[150:300, 300:360] = 30
    seen = max(a.process(visitor, 1.0 + i / 10).presence for i in range(5))
    assert seen > 0.05
    assert any("past the fold" in r.getMessage() for r in caplog.records)
