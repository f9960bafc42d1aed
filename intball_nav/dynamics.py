"""Analytic free-flyer model: fan lag and rigid-body motion as pure step functions.

The model (zero gravity, cabin air):

- fans: first-order lag ``dT/dt = (clip(command) - T) / tau``, integrated exactly;
  :func:`fan_step` also returns the mean thrust over the step, which is what a backend
  applies as a constant wrench during ``dt``.
- translation (kibo frame): ``m dv/dt = R(q) F_body - c_lin (v - v_air)``.
- rotation (body frame): ``I dw/dt = tau_body - c_ang w - w x (I w)`` (Euler's equations),
  ``dq/dt = q * (w / 2)``.

:func:`rigid_body_step` integrates with a 4th-order Runge-Kutta-Munthe-Kaas scheme: the
attitude is advanced as ``q0 * exp(theta)`` on SO(3) (the quaternion stays unit by
construction), so energy and angular momentum drift by ~1e-9 relative over minutes at
``dt = 0.01 s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from intball_nav.frames import (
    IDENTITY_QUAT,
    quat_from_rotvec,
    quat_multiply,
    quat_normalize,
    rotmat_from_quat,
)
from intball_nav.robot import NUM_FANS, RobotParams


@dataclass(frozen=True)
class RigidBodyState:
    """Rigid-body state of the robot.

    position : (3,) m, kibo frame (centre of mass)
    quat : (4,) xyzw, q_kibo_body
    velocity : (3,) m/s, kibo frame
    omega : (3,) rad/s, body frame
    """

    position: np.ndarray = field(default_factory=lambda: np.zeros(3))
    quat: np.ndarray = field(default_factory=lambda: IDENTITY_QUAT.copy())
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    omega: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        for name, size in (("position", 3), ("quat", 4), ("velocity", 3), ("omega", 3)):
            a = np.asarray(getattr(self, name), dtype=float)
            if a.shape != (size,):
                raise ValueError(f"RigidBodyState.{name} must have shape ({size},), got {a.shape}")
            object.__setattr__(self, name, a)

    @classmethod
    def _trusted(
        cls, position: np.ndarray, quat: np.ndarray, velocity: np.ndarray, omega: np.ndarray
    ) -> RigidBodyState:
        """Private fast constructor for per-tick producers (backend, estimators).

        Skips ``__post_init__`` (~3 us): the caller guarantees fresh float64 arrays of
        shapes (3,), (4,), (3,), (3,), exactly what validation would have produced.
        """
        state = object.__new__(cls)
        object.__setattr__(state, "position", position)
        object.__setattr__(state, "quat", quat)
        object.__setattr__(state, "velocity", velocity)
        object.__setattr__(state, "omega", omega)
        return state


@dataclass(frozen=True)
class FanState:
    """Actual fan thrusts. thrust : (8,) N, lagging the command."""

    thrust: np.ndarray = field(default_factory=lambda: np.zeros(NUM_FANS))


def cross3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two (3,) vectors (np.cross costs ~15 us per call, this ~1 us)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _check_dt(dt: float) -> None:
    if not dt > 0.0 or not np.isfinite(dt):
        raise ValueError(f"dt must be a positive finite time step, got {dt}")


def fan_step(
    fans: FanState, command: np.ndarray, params: RobotParams, dt: float
) -> tuple[FanState, np.ndarray]:
    """Exact first-order lag of the fans over ``dt`` (s).

    command : (8,) N, clipped to [fan_min, fan_max] (the fans cannot do more).
    Returns the new FanState and the mean thrust (8,) N over the step.
    """
    _check_dt(dt)
    c = np.asarray(command, dtype=float)
    if c.shape != (NUM_FANS,) or not np.all(np.isfinite(c)):
        raise ValueError(f"fan command must be 8 finite thrusts in N, got {command!r}")
    c = np.clip(c, params.fan_min, params.fan_max)
    decay = np.exp(-dt / params.fan_tau)
    diff = fans.thrust - c
    new = c + diff * decay
    mean = c + diff * (params.fan_tau / dt) * (1.0 - decay)
    return FanState(new), mean


def body_wrench(thrust: np.ndarray, params: RobotParams) -> np.ndarray:
    """Wrench (6,) [force N; torque N m], body frame, of fan thrusts (8,) N."""
    return params.allocation_matrix @ thrust


def _accelerations(
    v: np.ndarray,
    w: np.ndarray,
    q: np.ndarray,
    force_body: np.ndarray,
    torque_body: np.ndarray,
    air: np.ndarray,
    params: RobotParams,
) -> tuple[np.ndarray, np.ndarray]:
    """(linear acceleration (3,) m/s^2 kibo, angular acceleration (3,) rad/s^2 body)."""
    f = rotmat_from_quat(q) @ force_body - params.drag_linear * (v - air)
    Iw = params.inertia @ w
    tau = torque_body - params.drag_angular * w - cross3(w, Iw)
    return f / params.mass, params.inertia_inv @ tau


def _dexpinv(theta: np.ndarray, w: np.ndarray) -> np.ndarray:
    """d theta / dt for q = q0 * exp(theta) with body rate w (series to 4th order)."""
    c = cross3(theta, w)
    return w + 0.5 * c + cross3(theta, c) / 12.0


def rigid_body_step(
    state: RigidBodyState,
    wrench_body: np.ndarray,
    params: RobotParams,
    dt: float,
    air_velocity: np.ndarray | None = None,
) -> RigidBodyState:
    """Advance the rigid body by ``dt`` (s) under a constant body wrench.

    wrench_body : (6,) [force N; torque N m], body frame, held constant over dt
    air_velocity : (3,) m/s, kibo frame, cabin air at the robot (zero if None)
    """
    _check_dt(dt)
    wrench = np.asarray(wrench_body, dtype=float)
    if wrench.shape != (6,) or not np.all(np.isfinite(wrench)):
        raise ValueError(f"wrench must be 6 finite numbers [F; tau], got {wrench_body!r}")
    air = np.zeros(3) if air_velocity is None else np.asarray(air_velocity, dtype=float)
    F, T = wrench[:3], wrench[3:]
    p0, v0, w0, q0 = state.position, state.velocity, state.omega, state.quat
    h = dt

    a1, b1 = _accelerations(v0, w0, q0, F, T, air, params)
    th1 = w0

    v2, w2, t2 = v0 + 0.5 * h * a1, w0 + 0.5 * h * b1, 0.5 * h * th1
    a2, b2 = _accelerations(v2, w2, quat_multiply(q0, quat_from_rotvec(t2)), F, T, air, params)
    th2 = _dexpinv(t2, w2)

    v3, w3, t3 = v0 + 0.5 * h * a2, w0 + 0.5 * h * b2, 0.5 * h * th2
    a3, b3 = _accelerations(v3, w3, quat_multiply(q0, quat_from_rotvec(t3)), F, T, air, params)
    th3 = _dexpinv(t3, w3)

    v4, w4, t4 = v0 + h * a3, w0 + h * b3, h * th3
    a4, b4 = _accelerations(v4, w4, quat_multiply(q0, quat_from_rotvec(t4)), F, T, air, params)
    th4 = _dexpinv(t4, w4)

    s = h / 6.0
    position = p0 + s * (v0 + 2.0 * v2 + 2.0 * v3 + v4)
    velocity = v0 + s * (a1 + 2.0 * a2 + 2.0 * a3 + a4)
    omega = w0 + s * (b1 + 2.0 * b2 + 2.0 * b3 + b4)
    theta = s * (th1 + 2.0 * th2 + 2.0 * th3 + th4)
    quat = quat_normalize(quat_multiply(q0, quat_from_rotvec(theta)))
    return RigidBodyState(position, quat, velocity, omega)


def step(
    state: RigidBodyState,
    fans: FanState,
    fan_command: np.ndarray,
    params: RobotParams,
    dt: float,
    air_velocity: np.ndarray | None = None,
) -> tuple[RigidBodyState, FanState]:
    """Fans (exact lag, mean thrust applied) then rigid body over ``dt`` (s); no thrust noise.

    fan_command : (8,) N; air_velocity : (3,) m/s kibo frame (zero if None).
    """
    fans_next, mean_thrust = fan_step(fans, fan_command, params, dt)
    return rigid_body_step(state, body_wrench(mean_thrust, params), params, dt, air_velocity), fans_next
