"""Look-at attitude: point the main camera's optical axis at a point in the module.

The robot rotates about its centre of mass, and the camera sits off that centre
(``T_base_cam``, 0.10 m ahead for the main camera), so the attitude is solved for the camera
ray, not for the body x axis: after applying ``q_kibo_body`` the target lies exactly on the
optical axis (projects to the principal point ``(cx, cy)``), whatever the mount.

Roll (rotation about the line of sight) is fixed by an *up* vector: the image x axis
(right) is perpendicular to ``up`` and the image "up" direction (optical -y) has a positive
component along ``up``, i.e. ``up`` projects straight up in the image. The default up is
``+z kibo`` (overhead). When the line of sight is within ``min_up_angle`` of +-up the roll
is ill-defined (any up vector has this singularity); then ``fallback_up`` is used: the
current image-up direction if a current attitude is given (the smallest roll change, so
tracking stays continuous), else ``+x kibo`` (toward the far end).

Pure functions; no ROS, no PyBullet. Frames and quaternions as in docs/conventions.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from intball_nav.frames import Pose, quat_from_rotmat, rotmat_from_quat

UP_KIBO = np.array([0.0, 0.0, 1.0])
"""Default image-up direction: overhead (+z kibo)."""
FALLBACK_UP_KIBO = np.array([1.0, 0.0, 0.0])
"""Image-up direction when the line of sight is parallel to up and no attitude is given."""


class PointingError(ValueError):
    """A look-at request that has no well-defined attitude; ``str()`` is the reason."""


@dataclass(frozen=True)
class LookAt:
    """Solution of a look-at request.

    quat : (4,) xyzw, q_kibo_body that puts the target on the optical axis
    T_kibo_cam : pose of the camera optical frame at that attitude
    range : m, camera-to-target distance along the optical axis
    up_used : (3,) unit, kibo frame, the up vector that fixed the roll
    fallback : True when the requested up was parallel to the line of sight and
        ``up_used`` is the fallback
    """

    quat: np.ndarray
    T_kibo_cam: Pose
    range: float
    up_used: np.ndarray
    fallback: bool


def _unit(v: np.ndarray, what: str) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise PointingError(f"{what} must be 3 finite numbers, got {v.tolist()}")
    n = float(np.linalg.norm(v))
    if n < 1e-9:
        raise PointingError(f"{what} must be non-zero, got {v.tolist()}")
    return v / n


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3,3) rotation R with R @ a = b for unit vectors a, b (shortest arc; any axis at pi)."""
    v = np.cross(a, b)
    c = float(a @ b)
    if c < -1.0 + 1e-12:
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def _axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """(3,3) rotation by angle (rad) about unit axis (Rodrigues)."""
    k = axis
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * kx @ kx


def look_at(
    position: np.ndarray,
    target: np.ndarray,
    T_base_cam: Pose,
    *,
    up: np.ndarray | None = None,
    current_quat: np.ndarray | None = None,
    min_range: float = 0.05,
    min_up_angle: float = np.deg2rad(5.0),
) -> LookAt:
    """Body attitude that puts ``target`` on the camera's optical axis with a defined roll.

    position : (3,) m, kibo frame, robot centre (base_link origin), held fixed
    target : (3,) m, kibo frame, point to look at
    T_base_cam : pose of the camera optical frame in base_link (``CameraModel.T_base_cam``)
    up : (3,) kibo frame, image-up direction (default +z kibo); need not be unit
    current_quat : (4,) xyzw, current q_kibo_body; gives the fallback roll near the singularity
    min_range : m, the target must be at least this far in front of the camera (near plane)
    min_up_angle : rad, line of sight closer than this to +-up uses the fallback up

    Raises PointingError with a reason: non-finite input, zero up vector, target closer than
    ``min_range`` to the camera or inside the circle the camera sweeps around the centre.
    """
    p = np.asarray(position, dtype=float)
    t = np.asarray(target, dtype=float)
    if p.shape != (3,) or t.shape != (3,) or not (np.all(np.isfinite(p)) and np.all(np.isfinite(t))):
        raise PointingError(f"position and target must be 3 finite numbers, got {p.tolist()}, {t.tolist()}")
    up_req = UP_KIBO if up is None else _unit(up, "up vector")
    R_bc = rotmat_from_quat(T_base_cam.quat)
    t_bc = T_base_cam.position
    a = R_bc[:, 2]  # optical axis, body frame
    d = t - p
    dist2 = float(d @ d)
    # Body-frame vector b from the centre to the target must be t_bc + s a (s = range, > 0),
    # with |b| = |d|:  s = -(t.a) + sqrt((t.a)^2 - |t|^2 + |d|^2).
    ta = float(t_bc @ a)
    disc = ta * ta - float(t_bc @ t_bc) + dist2
    if disc < 0.0:
        raise PointingError(
            f"target {t.tolist()} is {np.sqrt(dist2):.3f} m from the robot centre, inside the "
            f"{np.sqrt(float(t_bc @ t_bc) - ta * ta):.3f} m circle "
            "the camera axis sweeps: no attitude sees it"
        )
    s = -ta + float(np.sqrt(disc))
    if s < min_range:
        raise PointingError(
            f"target {t.tolist()} is {s:.3f} m in front of the camera at best (robot centre "
            f"{np.sqrt(dist2):.3f} m away); the minimum range is {min_range:.3f} m: move away first"
        )
    b = t_bc + s * a
    d_hat = d / np.sqrt(dist2)
    R0 = _rotation_between(b / np.linalg.norm(b), d_hat)  # any rotation with R0 b = d
    # Remaining freedom: rotation by phi about d_hat. Choose phi so that the image x axis is
    # perpendicular to up and the image y axis (down) points away from up.
    ex = R0 @ R_bc[:, 0]
    axis_kibo = R0 @ a  # optical axis in kibo at phi = 0
    fallback = False
    up_used = up_req
    # axis_kibo rotates with phi unless the mount is on-axis (then it is d_hat): a close enough test
    cos_axis_up = abs(float(axis_kibo @ up_req))
    if cos_axis_up > np.cos(min_up_angle):
        fallback = True
        if current_quat is not None:
            up_used = -rotmat_from_quat(np.asarray(current_quat, dtype=float)) @ R_bc[:, 1]
        else:
            up_used = FALLBACK_UP_KIBO
    phi = _roll_angle(d_hat, ex, R0 @ R_bc[:, 1], up_used)
    if phi is None:
        up_used = FALLBACK_UP_KIBO if not np.allclose(up_used, FALLBACK_UP_KIBO) else UP_KIBO
        fallback = True
        phi = _roll_angle(d_hat, ex, R0 @ R_bc[:, 1], up_used)
        if phi is None:  # pragma: no cover - two orthogonal fallbacks cannot both be singular
            raise PointingError("no up vector gives a defined roll")
    R = _axis_rotation(d_hat, phi) @ R0
    q = quat_from_rotmat(R)
    T_kibo_cam = Pose(p, q).compose(T_base_cam)
    return LookAt(q, T_kibo_cam, float(s), up_used, fallback)


def _roll_angle(d_hat: np.ndarray, ex: np.ndarray, ey: np.ndarray, up: np.ndarray) -> float | None:
    """phi (rad) with Rot(d_hat, phi) ex perpendicular to up and Rot(d_hat, phi) ey . up < 0.

    ex, ey : (3,) kibo, image x and y axes at phi = 0. None when no such phi exists (up too
    close to the line of sight).
    """
    # f(phi) = up . Rot(phi) ex = C + A cos(phi) + B sin(phi)
    par = float(ex @ d_hat) * d_hat
    perp = ex - par
    C = float(up @ par)
    A = float(up @ perp)
    B = float(up @ np.cross(d_hat, perp))
    rho = float(np.hypot(A, B))
    if rho < 1e-9 or abs(C) > rho * (1.0 - 1e-12):
        return None
    alpha = float(np.arctan2(B, A))
    delta = float(np.arccos(np.clip(-C / rho, -1.0, 1.0)))
    best, best_val = None, 0.0
    for phi in (alpha + delta, alpha - delta):
        val = float(up @ (_axis_rotation(d_hat, phi) @ ey))
        if val < best_val - 1e-12:
            best, best_val = phi, val
    return best


def pointing_error(T_kibo_base: Pose, target: np.ndarray, T_base_cam: Pose) -> float:
    """Angle (rad) between the camera's optical axis and the ray from the camera to target.

    target : (3,) m, kibo frame. For monitoring a look-at while station keeping or moving.
    """
    T_kibo_cam = T_kibo_base.compose(T_base_cam)
    ray = np.asarray(target, dtype=float) - T_kibo_cam.position
    n = float(np.linalg.norm(ray))
    if n < 1e-12:
        return float(np.pi)
    axis = rotmat_from_quat(T_kibo_cam.quat)[:, 2]
    return float(np.arctan2(np.linalg.norm(np.cross(axis, ray)), axis @ ray))


def look_at_along(
    positions: np.ndarray,
    target: np.ndarray,
    T_base_cam: Pose,
    *,
    up: np.ndarray | None = None,
    current_quat: np.ndarray | None = None,
) -> np.ndarray:
    """(N,4) xyzw attitudes that keep ``target`` on the optical axis along a path.

    positions : (N,3) m, kibo frame (e.g. trajectory samples or station-keeping estimates).
    Each solution seeds the next one's fallback roll, so the roll stays continuous through the
    up-vector singularity. Quaternion signs are kept continuous (q and -q are one attitude).
    """
    out = []
    prev = None if current_quat is None else np.asarray(current_quat, dtype=float)
    for pos in np.asarray(positions, dtype=float).reshape(-1, 3):
        q = look_at(pos, target, T_base_cam, up=up, current_quat=prev).quat
        if prev is not None and float(q @ prev) < 0.0:
            q = -q
        out.append(q)
        prev = q
    return np.array(out).reshape(-1, 4)
