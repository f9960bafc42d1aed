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

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intball_nav import config
from intball_nav.dynamics import RigidBodyState, cross3
from intball_nav.frames import quat_conjugate, quat_multiply, rotmat_from_quat, rotvec_from_quat
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


def _saturate(e: np.ndarray, limit: float) -> np.ndarray:
    n = float(np.sqrt(e @ e))
    return e * (limit / n) if n > limit else e


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
    R = rotmat_from_quat(estimate.quat)
    e_p = _saturate(setpoint.position - estimate.position, gains.pos_error_limit)
    a_cmd = (
        setpoint.acceleration + gains.pos_kp * e_p + gains.pos_kd * (setpoint.velocity - estimate.velocity)
    )
    if integral is not None:
        a_cmd = a_cmd + gains.pos_ki * integral
    force_kibo = params.mass * a_cmd + params.drag_linear * setpoint.velocity

    q_err = quat_multiply(quat_conjugate(estimate.quat), setpoint.quat)
    e_R = _saturate(rotvec_from_quat(q_err), gains.att_error_limit)
    w = estimate.omega
    if setpoint.omega.any() or setpoint.alpha.any():
        R_err = rotmat_from_quat(q_err)
        w_ref = R_err @ setpoint.omega
        alpha_ref = R_err @ setpoint.alpha - cross3(w, w_ref)
    else:  # holding an attitude: no reference rates to map
        w_ref = alpha_ref = setpoint.omega
    Iw = params.inertia @ w
    torque = (
        params.inertia @ (alpha_ref + gains.att_kp * e_R + gains.att_kd * (w_ref - w))
        + cross3(w, Iw)
        + params.drag_angular * w
    )
    return np.concatenate([R.T @ force_kibo, torque])


def integrate_position_error(
    integral: np.ndarray, estimate: RigidBodyState, setpoint: Setpoint, gains: ControlGains, dt: float
) -> np.ndarray:
    """Integrated position error (3,) m s, kibo frame, after ``dt`` (s), with anti-windup.

    Integrates only inside ``pos_i_zone``; the norm is clamped to ``pos_i_limit``.
    """
    e = setpoint.position - estimate.position
    if float(np.sqrt(e @ e)) >= gains.pos_i_zone or dt <= 0.0:
        return integral
    return _saturate(integral + e * dt, gains.pos_i_limit)
