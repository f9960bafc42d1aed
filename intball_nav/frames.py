"""Frames, rotations and poses: the one place where conventions are implemented.

Conventions (see docs/conventions.md):

- Quaternions are numpy arrays ``(x, y, z, w)`` (the ROS / PyBullet order), unit norm,
  Hamilton product. ``q_a_b`` rotates vectors expressed in frame ``b`` into frame ``a``:
  ``v_a = rotmat_from_quat(q_a_b) @ v_b``.
- Poses are ``T_a_b`` (position of ``b``'s origin in ``a`` and ``q_a_b``).
- Roll/pitch/yaw are the ROS convention: extrinsic rotations about fixed x, y, z axes
  (equivalently intrinsic z-y'-x''), ``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``.
- SI units: metres, radians. Degrees only at edges, with a ``_deg`` suffix.

Functions ending in ``_f`` are the same formulas on plain floats (tuples in, tuples out)
for the 50 Hz loop: a numpy call on a (3,) or (4,) array costs ~1 us, Python float
arithmetic ~0.05 us per operation. They do no validation; the array forms are the API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

KIBO_FRAME = "kibo"
"""World frame: origin on the module centreline at the Node 2 hatch end, +x toward the
far (airlock) end, +z overhead, +y completes a right-handed frame."""
BASE_FRAME = "base_link"
"""Robot body frame: +x forward (main camera), +z up, origin at the centre of mass."""
NAV_CAMERA_FRAME = "nav_camera_optical"
MAIN_CAMERA_FRAME = "main_camera_optical"

IDENTITY_QUAT = np.array([0.0, 0.0, 0.0, 1.0])


def _as_quat(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    if q.shape != (4,):
        raise ValueError(f"quaternion must have shape (4,) as (x, y, z, w), got {q.shape}")
    return q


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternion with non-negative w (a canonical sign). q : (4,) xyzw."""
    q = _as_quat(q)
    n = float(np.sqrt(q @ q))
    if not np.isfinite(n) or n < 1e-12:
        raise ValueError(f"quaternion {q.tolist()} cannot be normalized (norm {n})")
    q = q / n
    return -q if q[3] < 0.0 else q


def quat_multiply(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Hamilton product ``q1 * q2`` of (4,) xyzw quaternions (apply q2 first, then q1)."""
    x1, y1, z1, w1 = q1
    x2, y2, z2, w2 = q2
    return np.array(
        [
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        ]
    )


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion. q : (4,) xyzw."""
    return np.array([-q[0], -q[1], -q[2], q[3]])


def skew(v: np.ndarray) -> np.ndarray:
    """(3,3) cross-product matrix: ``skew(a) @ b == np.cross(a, b)``."""
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def rotmat_from_quat(q: np.ndarray) -> np.ndarray:
    """(3,3) rotation matrix of a unit quaternion q : (4,) xyzw."""
    x, y, z, w = q
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    return np.array(
        [
            [1.0 - 2.0 * (yy + zz), 2.0 * (xy - wz), 2.0 * (xz + wy)],
            [2.0 * (xy + wz), 1.0 - 2.0 * (xx + zz), 2.0 * (yz - wx)],
            [2.0 * (xz - wy), 2.0 * (yz + wx), 1.0 - 2.0 * (xx + yy)],
        ]
    )


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vector(s) v : (3,) or (N,3) by q : (4,) xyzw (``R(q) @ v``)."""
    v = np.asarray(v, dtype=float)
    return v @ rotmat_from_quat(q).T


def quat_from_rotmat(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (4,) xyzw (w >= 0) of a (3,3) rotation matrix (Shepperd's method)."""
    R = np.asarray(R, dtype=float)
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    if tr > 0.0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    return quat_normalize(np.array(q))


def quat_from_rotvec(rv: np.ndarray) -> np.ndarray:
    """SO(3) exponential: quaternion (4,) xyzw of rotation vector rv : (3,) rad."""
    rv = np.asarray(rv, dtype=float)
    angle = float(np.sqrt(rv @ rv))
    if angle < 1e-8:
        q = np.array([0.5 * rv[0], 0.5 * rv[1], 0.5 * rv[2], 1.0])
        return q / np.sqrt(q @ q)
    half = 0.5 * angle
    axis = rv / angle
    return np.concatenate([axis * np.sin(half), [np.cos(half)]])


def rotvec_from_quat(q: np.ndarray) -> np.ndarray:
    """SO(3) logarithm: rotation vector (3,) rad, angle in [0, pi], of q : (4,) xyzw."""
    q = np.asarray(q, dtype=float)
    if q[3] < 0.0:
        q = -q
    s = float(np.sqrt(q[:3] @ q[:3]))
    if s < 1e-8:
        return 2.0 * q[:3]
    angle = 2.0 * np.arctan2(s, q[3])
    return q[:3] / s * angle


def quat_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Quaternion (4,) xyzw of ROS roll/pitch/yaw (rad): R = Rz(yaw) Ry(pitch) Rx(roll)."""
    cr, sr = np.cos(0.5 * roll), np.sin(0.5 * roll)
    cp, sp = np.cos(0.5 * pitch), np.sin(0.5 * pitch)
    cy, sy = np.cos(0.5 * yaw), np.sin(0.5 * yaw)
    q = np.array(
        [
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy,
        ]
    )
    return quat_normalize(q)


def rpy_from_quat(q: np.ndarray) -> np.ndarray:
    """(3,) roll, pitch, yaw in rad of q : (4,) xyzw (inverse of quat_from_rpy)."""
    x, y, z, w = q
    roll = np.arctan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2.0 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return np.array([roll, pitch, yaw])


def quat_slerp(q0: np.ndarray, q1: np.ndarray, s: float) -> np.ndarray:
    """Spherical interpolation along the shorter arc, s in [0, 1]. q0, q1 : (4,) xyzw."""
    q0 = np.asarray(q0, dtype=float)
    q1 = np.asarray(q1, dtype=float)
    if q0 @ q1 < 0.0:
        q1 = -q1
    q_rel = quat_multiply(quat_conjugate(q0), q1)
    return quat_normalize(quat_multiply(q0, quat_from_rotvec(s * rotvec_from_quat(q_rel))))


def quat_angle(q0: np.ndarray, q1: np.ndarray) -> float:
    """Rotation angle (rad, in [0, pi]) between two orientations. q0, q1 : (4,) xyzw."""
    x0, y0, z0, w0 = np.asarray(q0, dtype=float).tolist()
    x, y, z, w = quat_multiply_f((-x0, -y0, -z0, w0), np.asarray(q1, dtype=float).tolist())
    # atan2 form: accurate for tiny angles, where arccos(|q0.q1|) loses half the digits.
    return 2.0 * math.atan2(math.sqrt(x * x + y * y + z * z), abs(w))


def quat_wxyz_from_xyzw(q: np.ndarray) -> np.ndarray:
    """Reorder (x, y, z, w) -> (w, x, y, z), for libraries that want scalar-first."""
    return np.array([q[3], q[0], q[1], q[2]])


def quat_xyzw_from_wxyz(q: np.ndarray) -> np.ndarray:
    """Reorder (w, x, y, z) -> (x, y, z, w)."""
    return np.array([q[1], q[2], q[3], q[0]])


# ----------------------------------------------------------------------------- plain-float forms
Quat4 = tuple[float, float, float, float]
Vec3 = tuple[float, float, float]


def quat_multiply_f(q1: Quat4 | list[float], q2: Quat4 | list[float]) -> Quat4:
    """:func:`quat_multiply` on plain floats: Hamilton product ``q1 * q2``, xyzw."""
    x1, y1, z1, w1 = q1
    x2, y2, z2, w2 = q2
    return (
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
    )


def quat_normalize_f(q: Quat4) -> Quat4:
    """:func:`quat_normalize` on plain floats (unit norm, w >= 0); no check of the norm."""
    x, y, z, w = q
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if w < 0.0:
        n = -n
    return (x / n, y / n, z / n, w / n)


def quat_from_rotvec_f(rx: float, ry: float, rz: float) -> Quat4:
    """:func:`quat_from_rotvec` on plain floats: quaternion xyzw of rotation vector (rad)."""
    angle = math.sqrt(rx * rx + ry * ry + rz * rz)
    if angle < 1e-8:
        x, y, z = 0.5 * rx, 0.5 * ry, 0.5 * rz
        n = math.sqrt(x * x + y * y + z * z + 1.0)
        return (x / n, y / n, z / n, 1.0 / n)
    half = 0.5 * angle
    s = math.sin(half)
    return (rx / angle * s, ry / angle * s, rz / angle * s, math.cos(half))


def rotvec_from_quat_f(q: Quat4) -> Vec3:
    """:func:`rotvec_from_quat` on plain floats: rotation vector (rad), angle in [0, pi]."""
    x, y, z, w = q
    if w < 0.0:
        x, y, z, w = -x, -y, -z, -w
    s = math.sqrt(x * x + y * y + z * z)
    if s < 1e-8:
        return (2.0 * x, 2.0 * y, 2.0 * z)
    angle = 2.0 * math.atan2(s, w)
    return (x / s * angle, y / s * angle, z / s * angle)


def rotmat_from_quat_f(q: Quat4) -> tuple[float, float, float, float, float, float, float, float, float]:
    """:func:`rotmat_from_quat` on plain floats: the 9 entries of R, row-major."""
    x, y, z, w = q
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    return (
        1.0 - 2.0 * (yy + zz),
        2.0 * (xy - wz),
        2.0 * (xz + wy),
        2.0 * (xy + wz),
        1.0 - 2.0 * (xx + zz),
        2.0 * (yz - wx),
        2.0 * (xz - wy),
        2.0 * (yz + wx),
        1.0 - 2.0 * (xx + yy),
    )


@dataclass(frozen=True)
class Pose:
    """Rigid transform T_parent_child.

    position : (3,) m, parent frame (origin of child)
    quat : (4,) xyzw, q_parent_child
    """

    position: np.ndarray = field(default_factory=lambda: np.zeros(3))
    quat: np.ndarray = field(default_factory=lambda: IDENTITY_QUAT.copy())

    def __post_init__(self) -> None:
        p = np.asarray(self.position, dtype=float)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise ValueError(f"pose position must be 3 finite numbers, got {self.position!r}")
        q = np.asarray(self.quat, dtype=float)
        if q.shape != (4,) or not np.all(np.isfinite(q)):
            raise ValueError(f"pose quaternion must be 4 finite numbers (x, y, z, w), got {self.quat!r}")
        object.__setattr__(self, "position", p)
        object.__setattr__(self, "quat", quat_normalize(q))

    def matrix(self) -> np.ndarray:
        """(4,4) homogeneous transform T_parent_child."""
        T = np.eye(4)
        T[:3, :3] = rotmat_from_quat(self.quat)
        T[:3, 3] = self.position
        return T

    @staticmethod
    def from_matrix(T: np.ndarray) -> Pose:
        """Pose of a (4,4) homogeneous transform."""
        return Pose(np.asarray(T)[:3, 3].copy(), quat_from_rotmat(np.asarray(T)[:3, :3]))

    def compose(self, other: Pose) -> Pose:
        """T_a_c = T_a_b (self) * T_b_c (other)."""
        return Pose(
            self.position + quat_rotate(self.quat, other.position),
            quat_multiply(self.quat, other.quat),
        )

    def inverse(self) -> Pose:
        """T_b_a of T_a_b."""
        qi = quat_conjugate(self.quat)
        return Pose(-quat_rotate(qi, self.position), qi)

    def transform_points(self, points: np.ndarray) -> np.ndarray:
        """Map points (N,3) or (3,) from the child frame into the parent frame."""
        return quat_rotate(self.quat, points) + self.position
