"""The camera seam: intrinsics validation, projection, and the frame checks every driver runs."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.camera import (
    CameraError,
    CameraIntrinsics,
    Frame,
    FrameFormatError,
    check_frame,
)

K = CameraIntrinsics(4, 3, 10.0, 11.0, 1.5, 1.0, "plumb_bob", (0.1, 0.0, 0.0, 0.0, 0.0))


def frame(color=None, depth=None, stamp=1.0, scale=0.001) -> Frame:
    color = np.zeros((3, 4, 3), np.uint8) if color is None else color
    return Frame(color, depth, stamp, 7, "sim_time", scale if depth is not None else None)


def test_matrix_and_projection() -> None:
    assert np.array_equal(K.matrix, [[10, 0, 1.5], [0, 11, 1.0], [0, 0, 1]])
    assert np.allclose(K.project(np.array([0.0, 0.0, 2.0])), [1.5, 1.0])
    assert np.allclose(K.project(np.array([0.2, -0.1, 2.0])), [2.5, 0.45])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"width": 0}, "width"),
        ({"height": 2.5}, "height"),
        ({"fx": -1.0}, "fx"),
        ({"cy": float("nan")}, "cy"),
        ({"distortion_model": "fisheye9"}, "unknown distortion model"),
        ({"distortion_model": "equidistant", "distortion_coeffs": (0.1, 0.2)}, "takes 4"),
    ],
)
def test_bad_intrinsics_name_the_field(kw: dict, match: str) -> None:
    base = dict(width=4, height=3, fx=10.0, fy=10.0, cx=1.5, cy=1.0)
    with pytest.raises(ValueError, match=match):
        CameraIntrinsics(**{**base, **kw})


def test_a_good_frame_passes_unchanged() -> None:
    f = frame(depth=np.ones((3, 4), np.uint16))
    assert check_frame(f, K, "cam") is f


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (frame(color=np.zeros((4, 3, 3), np.uint8)), "color frame"),
        (frame(color=np.zeros((3, 4, 3), np.float32)), "color frame"),
        (frame(color=np.zeros((3, 4), np.uint8)), "color frame"),
        (frame(depth=np.ones((3, 5), np.uint16)), "depth frame"),
        (frame(depth=np.ones((3, 4), np.float32)), "depth frame"),
        (frame(depth=np.ones((3, 4), np.uint16), scale=0.0), "depth_scale_m"),
        (frame(stamp=float("inf")), "stamp"),
    ],
)
def test_wrong_frames_raise_a_camera_error_naming_the_camera(bad: Frame, match: str) -> None:
    with pytest.raises(FrameFormatError, match=match) as info:
        check_frame(bad, K, "wrist_cam")
    assert "wrist_cam" in str(info.value) and isinstance(info.value, CameraError)
