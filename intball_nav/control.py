"""6-DoF pose controller: PID on position and geometric PD on SO(3), with feed-forward.

Position (kibo frame)::

    a_cmd = a_ref + kp sat(p_ref - p) + kd (v_ref - v) + ki integral
    F_kibo = m a_cmd + c_lin v_ref            (drag feed-forward at the reference velocity)

Attitude (body frame), with ``q_err = q^-1 q_ref`` and ``e_R = rotvec(q_err)`` (no Euler
angles; the shortest rotation, angle in [0, pi])::

    w_ref = R(q_err) w_d,  alpha_ref = R(q_err) alpha_d - w x w_ref
    tau = I (alpha_ref + kp sat(e_R) + kd (w_ref - w)) + w x I w + c_ang w

Gains are accelerations per unit error (1/s^2, 1/s, 1/s^3), multiplied by the mass or
inertia, so they read as natural frequency and damping. ``sat`` limits the error vector
norm so that large errors (a bump, a lost estimate) give a bounded return speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intball_nav import config
from intball_nav.dynamics import RigidBodyState
from intball_nav.frames import quat_multiply_f, rotmat_from_quat_f, rotvec_from_quat_f
from intball_nav.guidance import Setpoint
from intball_nav.robot import ROBOT_YAML_PATH, RobotParams


@dataclass(frozen=True)
class ControlGains:
    """Pose controller gains (accelerations per unit error).

    pos_kp : 1/s^2; pos_kd : 1/s; pos_ki : 1/s^3
    pos_i_limit : m s, clamp on the norm of the integrated position error (anti-windup)
    pos_i_zone : m, the integrator runs only while |position error| is below this
    att_kp : 1/s^2; att_kd : 1/s
    pos_error_limit : m; att_error_limit : rad (saturation of the proportional errors)
    """

    pos_kp: float
    pos_kd: float
    pos_ki: float
    pos_i_limit: float
    pos_i_zone: float
    att_kp: float
    att_kd: float
    pos_error_limit: float
    att_error_limit: float


# yaml key -> (lo, hi, unit)
_GAIN_RANGES = {
    "pos_kp": (0.0, 100.0, "1/s^2"),
    "pos_kd": (0.0, 100.0, "1/s"),
    "pos_ki": (0.0, 100.0, "1/s^3"),
    "pos_i_limit": (0.0, 10.0, "m s"),
    "pos_i_zone": (0.0, 10.0, "m"),
    "att_kp": (0.0, 100.0, "1/s^2"),
    "att_kd": (0.0, 100.0, "1/s"),
    "pos_error_limit": (1e-3, 100.0, "m"),
    "att_error_limit": (1e-3, np.pi, "rad"),
}


def load_gains(yaml_path: str | Path | None = None) -> ControlGains:
    """Controller gains from the ``control`` section of robot.yaml."""
    path = Path(yaml_path) if yaml_path is not None else ROBOT_YAML_PATH
    top = config.mapping(path, config.compose_file(path), "", required=("control",), allow_unknown=True)
    fields = config.mapping(path, top["control"], "control", required=tuple(_GAIN_RANGES))
    values = {
        key: config.number(path, fields[key], f"control.{key}", lo, hi, unit)
        for key, (lo, hi, unit) in _GAIN_RANGES.items()
    }
    return ControlGains(**values)


def _saturate_f(x: float, y: float, z: float, limit: float) -> tuple[float, float, float]:
    """The vector (x, y, z) with its norm limited to ``limit`` (direction kept)."""
    n = math.sqrt(x * x + y * y + z * z)
    if n > limit:
        k = limit / n
        return x * k, y * k, z * k
    return x, y, z


def _matvec_f(R: tuple[float, ...], x: float, y: float, z: float) -> tuple[float, float, float]:
    """R @ (x, y, z) for R given as 9 row-major floats."""
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = R
    return r00 * x + r01 * y + r02 * z, r10 * x + r11 * y + r12 * z, r20 * x + r21 * y + r22 * z


def pose_control(
    estimate: RigidBodyState,
    setpoint: Setpoint,
    gains: ControlGains,
    params: RobotParams,
    integral: np.ndarray | None = None,
) -> np.ndarray:
    """Body wrench (6,) [force N; torque N m] tracking ``setpoint``.

    integral : (3,) m s, kibo frame, integrated position error (see integrate_position_error)
    """
    # Plain-float arithmetic (runs every control tick; numpy costs ~1 us per (3,) operation).
    # The formulas are those of the module docstring, one line per vector component.
    q = estimate.quat.tolist()
    px, py, pz = estimate.position.tolist()
    vx, vy, vz = estimate.velocity.tolist()
    wx, wy, wz = estimate.omega.tolist()
    rpx, rpy, rpz = setpoint.position.tolist()
    rvx, rvy, rvz = setpoint.velocity.tolist()
    rax, ray, raz = setpoint.acceleration.tolist()
    kp, kd = gains.pos_kp, gains.pos_kd

    ex, ey, ez = _saturate_f(rpx - px, rpy - py, rpz - pz, gains.pos_error_limit)
    ax = rax + kp * ex + kd * (rvx - vx)
    ay = ray + kp * ey + kd * (rvy - vy)
    az = raz + kp * ez + kd * (rvz - vz)
    if integral is not None:
        ix, iy, iz = np.asarray(integral, dtype=float).tolist()
        ki = gains.pos_ki
        ax, ay, az = ax + ki * ix, ay + ki * iy, az + ki * iz
    m, c = params.mass, params.drag_linear
    fx, fy, fz = m * ax + c * rvx, m * ay + c * rvy, m * az + c * rvz
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = rotmat_from_quat_f(q)

    x, y, z, w = q
    q_err = quat_multiply_f((-x, -y, -z, w), setpoint.quat.tolist())
    erx, ery, erz = _saturate_f(*rotvec_from_quat_f(q_err), gains.att_error_limit)
    omega_d, alpha_d = setpoint.omega.tolist(), setpoint.alpha.tolist()
    if any(omega_d) or any(alpha_d):
        R_err = rotmat_from_quat_f(q_err)
        wrx, wry, wrz = _matvec_f(R_err, *omega_d)
        bx, by, bz = _matvec_f(R_err, *alpha_d)
        alx = bx - (wy * wrz - wz * wry)  # alpha_ref = R_err alpha_d - w x w_ref
        aly = by - (wz * wrx - wx * wrz)
        alz = bz - (wx * wry - wy * wrx)
    else:  # holding an attitude: no reference rates to map
        wrx = wry = wrz = alx = aly = alz = 0.0
    (i00, i01, i02), (i10, i11, i12), (i20, i21, i22) = params.inertia.tolist()
    Iwx = i00 * wx + i01 * wy + i02 * wz
    Iwy = i10 * wx + i11 * wy + i12 * wz
    Iwz = i20 * wx + i21 * wy + i22 * wz
    akp, akd, ca = gains.att_kp, gains.att_kd, params.drag_angular
    ux = alx + akp * erx + akd * (wrx - wx)
    uy = aly + akp * ery + akd * (wry - wy)
    uz = alz + akp * erz + akd * (wrz - wz)
    return np.array(
        [
            r00 * fx + r10 * fy + r20 * fz,  # R^T @ force_kibo
            r01 * fx + r11 * fy + r21 * fz,
            r02 * fx + r12 * fy + r22 * fz,
            i00 * ux + i01 * uy + i02 * uz + (wy * Iwz - wz * Iwy) + ca * wx,
            i10 * ux + i11 * uy + i12 * uz + (wz * Iwx - wx * Iwz) + ca * wy,
            i20 * ux + i21 * uy + i22 * uz + (wx * Iwy - wy * Iwx) + ca * wz,
        ]
    )


def integrate_position_error(
    integral: np.ndarray, estimate: RigidBodyState, setpoint: Setpoint, gains: ControlGains, dt: float
) -> np.ndarray:
    """Integrated position error (3,) m s, kibo frame, after ``dt`` (s), with anti-windup.

    Integrates only inside ``pos_i_zone``; the norm is clamped to ``pos_i_limit``.
    """
    (rx, ry, rz), (px, py, pz) = setpoint.position.tolist(), estimate.position.tolist()
    ex, ey, ez = rx - px, ry - py, rz - pz
    if math.sqrt(ex * ex + ey * ey + ez * ez) >= gains.pos_i_zone or dt <= 0.0:
        return integral
    ix, iy, iz = np.asarray(integral, dtype=float).tolist()
    return np.array(_saturate_f(ix + ex * dt, iy + ey * dt, iz + ez * dt, gains.pos_i_limit))
