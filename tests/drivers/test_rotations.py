"""Rotation conversions against scipy's independent implementation, plus hand cases for each
vendor convention (UR rotation vectors, franky xyzw, xArm roll/pitch/yaw)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from drivers.rotations import (
    as_unit_quat,
    integrate_angular_velocity,
    matrix_to_quat,
    quat_mul,
    quat_to_matrix,
    quat_to_rotvec,
    quat_to_rpy,
    rotvec_to_quat,
    rpy_to_quat,
    wxyz_to_xyzw,
    xyzw_to_wxyz,
)


def same_rotation(q1: np.ndarray, q2: np.ndarray, tol: float = 1e-9) -> bool:
    return abs(abs(float(np.dot(q1, q2))) - 1.0) < tol


def random_quats(n: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_hand_cases_of_each_vendor_convention() -> None:
    s = math.sqrt(0.5)
    # UR: 90 degrees about z as a rotation vector.
    assert np.allclose(rotvec_to_quat(np.array([0.0, 0.0, math.pi / 2])), [s, 0, 0, s])
    # xArm: roll = 180 degrees is the tool pointing down, a half turn about x.
    assert same_rotation(rpy_to_quat(math.pi, 0.0, 0.0), np.array([0.0, 1.0, 0.0, 0.0]))
    # xArm: yaw 90 then... R = Rz(90) Ry(90): x axis maps to -z.
    m = quat_to_matrix(rpy_to_quat(0.0, math.pi / 2, math.pi / 2))
    assert np.allclose(m @ [1, 0, 0], [0, 0, -1])
    # franky: (x, y, z, w) order.
    q = np.array([0.1, 0.2, 0.3, 0.9])
    assert np.array_equal(wxyz_to_xyzw(q), [0.2, 0.3, 0.9, 0.1])
    assert np.array_equal(xyzw_to_wxyz(wxyz_to_xyzw(q)), q)


def test_conversions_match_scipy_on_random_rotations() -> None:
    for q in random_quats(300):
        ref = Rotation.from_quat(wxyz_to_xyzw(q))
        assert np.allclose(quat_to_matrix(q), ref.as_matrix(), atol=1e-12)
        assert same_rotation(matrix_to_quat(ref.as_matrix()), q)
        assert np.allclose(quat_to_rotvec(q), ref.as_rotvec(), atol=1e-9)
        assert same_rotation(rotvec_to_quat(ref.as_rotvec()), q)
        roll, pitch, yaw = ref.as_euler("xyz")  # lowercase: fixed axes, R = Rz Ry Rx
        assert np.allclose(quat_to_rpy(q), (roll, pitch, yaw), atol=1e-9)
        assert same_rotation(rpy_to_quat(roll, pitch, yaw), q)


def test_matrix_to_quat_returns_w_non_negative_and_handles_half_turns() -> None:
    for axis in np.eye(3):
        q = matrix_to_quat(Rotation.from_rotvec(axis * math.pi).as_matrix())
        assert q[0] >= 0 and np.allclose(np.abs(q[1:]), axis)


def test_rotvec_edge_cases() -> None:
    tiny = np.array([1e-14, -2e-14, 0.0])
    assert np.allclose(quat_to_rotvec(rotvec_to_quat(tiny)), tiny, atol=1e-20)
    assert np.allclose(quat_to_rotvec(np.array([1.0, 0, 0, 0])), 0.0)
    # A half turn: angle pi whichever sign the quaternion came with.
    assert math.isclose(np.linalg.norm(quat_to_rotvec(np.array([0.0, 0.0, 1.0, 0.0]))), math.pi)
    # The short way round: -q gives the same rotation vector.
    q = rotvec_to_quat(np.array([0.3, -0.2, 0.1]))
    assert np.allclose(quat_to_rotvec(-q), [0.3, -0.2, 0.1])


def test_rpy_at_gimbal_lock_still_round_trips_the_rotation() -> None:
    for pitch in (math.pi / 2, -math.pi / 2):
        q = rpy_to_quat(0.4, pitch, -0.7)
        roll2, pitch2, yaw2 = quat_to_rpy(q)
        assert roll2 == 0.0 and math.isclose(pitch2, pitch, abs_tol=1e-6)
        assert same_rotation(rpy_to_quat(roll2, pitch2, yaw2), q, tol=1e-9)


def test_quat_mul_and_angular_velocity_integration() -> None:
    a, b = random_quats(2, seed=1)
    ref = Rotation.from_quat(wxyz_to_xyzw(a)) * Rotation.from_quat(wxyz_to_xyzw(b))
    assert same_rotation(quat_mul(a, b), xyzw_to_wxyz(ref.as_quat()))
    # 1 rad/s about base z for 0.5 s from identity: half a radian about z.
    q = integrate_angular_velocity(np.array([1.0, 0, 0, 0]), np.array([0.0, 0.0, 1.0]), 0.5)
    assert np.allclose(quat_to_rotvec(q), [0, 0, 0.5])


@pytest.mark.parametrize("bad", [[1, 0, 0], [0, 0, 0, 0], [1, 0, 0, float("nan")], [2.0, 0, 0, 0], "wxyz"])
def test_as_unit_quat_rejects_non_quaternions(bad: object) -> None:
    with pytest.raises(ValueError, match="target quat"):
        as_unit_quat(bad, "target quat")


def test_as_unit_quat_normalises_rounding_noise() -> None:
    q = as_unit_quat([1.0 + 1e-5, 0.0, 0.0, 0.0])
    assert q[0] == 1.0
