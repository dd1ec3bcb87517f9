"""Rotation conversions between the project's convention and the vendors'.

The project speaks unit quaternions (w, x, y, z) in the robot base frame (drivers/safety.py). The
vendor SDKs each speak something else: UR poses carry an axis-angle rotation vector, franky
quaternions are (x, y, z, w), xArm uses roll/pitch/yaw with R = Rz(yaw) @ Ry(pitch) @ Rx(roll)
(rotations about the fixed base axes, x first). Getting one of these wrong turns the tool the
wrong way, so every conversion lives here, in pure numpy, tested against independent references.
"""

from __future__ import annotations

import math

import numpy as np

_UNIT_TOL = 1e-3  # |‖q‖ - 1| above this is a broken quaternion, not float rounding


def as_unit_quat(q: object, what: str = "quaternion") -> np.ndarray:
    """q as a float64 unit quaternion (w, x, y, z); ValueError naming `what` when it is not one."""
    try:
        arr = np.asarray(q, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.full(0, np.nan)
    if arr.shape != (4,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} must be 4 finite numbers (w, x, y, z), got {q!r}")
    norm = float(np.linalg.norm(arr))
    if abs(norm - 1.0) > _UNIT_TOL:
        raise ValueError(f"{what} must be a unit quaternion (w, x, y, z), its norm is {norm:.6g}")
    return arr / norm


def wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    return np.array([q[1], q[2], q[3], q[0]], dtype=np.float64)


def xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    return np.array([q[3], q[0], q[1], q[2]], dtype=np.float64)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of wxyz quaternions (apply b, then a)."""
    w = a[0] * b[0] - float(np.dot(a[1:], b[1:]))
    return np.concatenate(([w], a[0] * b[1:] + b[0] * a[1:] + np.cross(a[1:], b[1:])))


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix of a unit wxyz quaternion."""
    w, x, y, z = (float(v) for v in q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit wxyz quaternion (w >= 0) of a 3x3 rotation matrix.

    Shepperd's method: branch on the largest diagonal term so the square root never sees a
    near-zero argument, which keeps 180-degree rotations accurate.
    """
    m = np.asarray(m, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > max(m[0, 0], m[1, 1], m[2, 2]):
        s = 2.0 * math.sqrt(1.0 + trace)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] >= m[1, 1] and m[0, 0] >= m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] >= m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    out = np.array(q)
    out /= np.linalg.norm(out)
    return -out if out[0] < 0 else out


def rotvec_to_quat(v: np.ndarray) -> np.ndarray:
    """Unit wxyz quaternion of a rotation vector (axis * angle, rad), as UR reports orientation."""
    v = np.asarray(v, dtype=np.float64)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.array([1.0, 0.5 * v[0], 0.5 * v[1], 0.5 * v[2]]) / math.sqrt(1.0 + 0.25 * angle**2)
    return np.concatenate(([math.cos(angle / 2)], v / angle * math.sin(angle / 2)))


def quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, angle in [0, pi]) of a unit wxyz quaternion."""
    q = np.asarray(q, dtype=np.float64)
    if q[0] < 0:  # q and -q are one rotation: take the short way round
        q = -q
    s = float(np.linalg.norm(q[1:]))
    angle = 2.0 * math.atan2(s, q[0])  # atan2 stays accurate for tiny angles, acos does not
    if s < 1e-12:
        return 2.0 * q[1:]
    return q[1:] / s * angle


def rpy_to_quat(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Unit wxyz quaternion of R = Rz(yaw) @ Ry(pitch) @ Rx(roll) (angles in rad)."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return np.array(
        [
            cr * cp * cy + sr * sp * sy,
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
        ]
    )


def quat_to_rpy(q: np.ndarray) -> tuple[float, float, float]:
    """(roll, pitch, yaw) in rad with R = Rz(yaw) @ Ry(pitch) @ Rx(roll); pitch in [-pi/2, pi/2].

    At pitch = +-pi/2 (gimbal lock) only roll -+ yaw is defined; roll is then set to 0.
    """
    m = quat_to_matrix(np.asarray(q, dtype=np.float64))
    pitch = math.asin(max(-1.0, min(1.0, -m[2, 0])))
    if abs(m[2, 0]) < 1.0 - 1e-9:
        return math.atan2(m[2, 1], m[2, 2]), pitch, math.atan2(m[1, 0], m[0, 0])
    return 0.0, pitch, math.atan2(-m[0, 1], m[1, 1])


def integrate_angular_velocity(q: np.ndarray, omega: np.ndarray, dt: float) -> np.ndarray:
    """q rotated by a base-frame angular velocity omega (rad/s) held for dt seconds."""
    dq = rotvec_to_quat(np.asarray(omega, dtype=np.float64) * dt)
    out = quat_mul(dq, q)
    return out / np.linalg.norm(out)
