"""Fixtures for the sensing tests."""

import cv2
import pytest


@pytest.fixture(autouse=True)
def one_opencv_thread():
    """On two busy cores OpenCV's thread pool only adds waiting for these small frames."""
    n = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(n)
