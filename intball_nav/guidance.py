"""Guidance: time-synchronized straight-line / fixed-axis trajectories between two poses.

Translation follows the straight line start -> goal with a trapezoidal speed profile
(|v| <= v_max, |a| <= a_max); attitude rotates about the fixed axis of ``q_start^-1 q_goal``
(shortest way) with a trapezoidal angle profile (|w| <= w_max, |alpha| <= alpha_max).
Both profiles last the same time: the slower one sets the duration and the other is
re-timed (lower peak rate, same acceleration), so the robot starts and stops both
motions together. Setpoints carry feed-forward acceleration and angular acceleration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from intball_nav.flight_modes import FlightMode
from intball_nav.frames import (
    Pose,
    quat_conjugate,
    quat_from_rotvec_f,
    quat_multiply,
    quat_multiply_f,
    quat_normalize_f,
    rotvec_from_quat,
)

_ZERO3 = np.zeros(3)
_ZERO3.setflags(write=False)

MIN_DISTANCE = 1e-9
"""m; shorter translations (round-off) are not flown."""
MIN_ANGLE = 1e-9
"""rad; smaller rotations (round-off) are not flown."""


@dataclass(frozen=True)
class Setpoint:
    """Reference state at one instant.

    position, velocity, acceleration : (3,) m, m/s, m/s^2, kibo frame
    quat : (4,) xyzw, q_kibo_body
    omega, alpha : (3,) rad/s, rad/s^2, body frame
    """

    position: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    quat: np.ndarray
    omega: np.ndarray
    alpha: np.ndarray

    @staticmethod
    def at_rest(pose: Pose) -> Setpoint:
        """Setpoint holding ``pose`` with zero rates (arrays shared: treat as read-only)."""
        return Setpoint(pose.position, _ZERO3, _ZERO3, pose.quat, _ZERO3, _ZERO3)


@dataclass(frozen=True)
class TrapezoidProfile:
    """Rest-to-rest scalar profile s(t) over [0, duration] covering ``distance``.

    accel : magnitude of the acceleration during the ramps; v_peak : cruise rate;
    t_ramp : duration of each ramp.
    """

    distance: float
    accel: float
    v_peak: float
    t_ramp: float
    duration: float

    def sample(self, t: float) -> tuple[float, float, float]:
        """(s, ds/dt, d2s/dt2) at time t, clamped to [0, duration]."""
        if t <= 0.0 or self.duration <= 0.0:
            return 0.0, 0.0, 0.0
        if t >= self.duration:
            return self.distance, 0.0, 0.0
        a, tr = self.accel, self.t_ramp
        if t < tr:
            return 0.5 * a * t * t, a * t, a
        t_dec = self.duration - tr
        if t <= t_dec:
            return 0.5 * a * tr * tr + self.v_peak * (t - tr), self.v_peak, 0.0
        r = self.duration - t
        return self.distance - 0.5 * a * r * r, a * r, -a


def min_duration(distance: float, v_max: float, a_max: float) -> float:
    """Shortest rest-to-rest time (s) over ``distance`` with |v| <= v_max, |a| <= a_max."""
    if distance <= 0.0:
        return 0.0
    if distance <= v_max * v_max / a_max:
        return 2.0 * math.sqrt(distance / a_max)
    return distance / v_max + v_max / a_max


def trapezoid(distance: float, a_max: float, duration: float) -> TrapezoidProfile:
    """Trapezoid covering ``distance`` in exactly ``duration`` (>= the minimum) at accel a_max."""
    if distance <= 0.0 or duration <= 0.0:
        return TrapezoidProfile(0.0, 0.0, 0.0, 0.0, max(duration, 0.0))
    disc = max(a_max * a_max * duration * duration - 4.0 * a_max * distance, 0.0)
    v_peak = 0.5 * (a_max * duration - math.sqrt(disc))
    # v_peak solves distance = v_peak * (duration - v_peak / a); recompute t_ramp from it
    return TrapezoidProfile(distance, a_max, v_peak, v_peak / a_max, duration)


@dataclass(frozen=True)
class Trajectory:
    """Straight-line translation + fixed-axis rotation from ``start`` to ``goal``.

    t_start : s, absolute time of the start; duration : s.
    axis : (3,) unit, rotation axis in the start body frame (zero for no rotation).
    """

    start: Pose
    goal: Pose
    t_start: float
    duration: float
    direction: np.ndarray
    translation: TrapezoidProfile
    axis: np.ndarray
    rotation: TrapezoidProfile
    _floats: tuple = field(init=False, repr=False, compare=False)
    """start position, start quat, direction, axis as plain floats (for :meth:`sample`)."""

    def __post_init__(self) -> None:
        floats = tuple(
            tuple(np.asarray(a, dtype=float).tolist())
            for a in (self.start.position, self.start.quat, self.direction, self.axis)
        )
        object.__setattr__(self, "_floats", floats)

    @property
    def t_end(self) -> float:
        """Absolute time (s) at which the goal is reached."""
        return self.t_start + self.duration

    def sample(self, t: float) -> Setpoint:
        """Setpoint at absolute time t (s); the start before t_start, the goal after t_end."""
        if t >= self.t_start + self.duration:
            return Setpoint.at_rest(self.goal)
        if t <= self.t_start:
            return Setpoint.at_rest(self.start)
        tau = t - self.t_start
        s, sd, sdd = self.translation.sample(tau)
        th, thd, thdd = self.rotation.sample(tau)
        # Plain floats (runs every control tick): the same formulas as the array helpers.
        (px, py, pz), q_start, (dx, dy, dz), (ux, uy, uz) = self._floats
        q_rel = quat_from_rotvec_f(th * ux, th * uy, th * uz)
        return Setpoint(
            position=np.array([px + s * dx, py + s * dy, pz + s * dz]),
            velocity=np.array([sd * dx, sd * dy, sd * dz]),
            acceleration=np.array([sdd * dx, sdd * dy, sdd * dz]),
            quat=np.array(quat_normalize_f(quat_multiply_f(q_start, q_rel))),
            omega=np.array([thd * ux, thd * uy, thd * uz]),
            alpha=np.array([thdd * ux, thdd * uy, thdd * uz]),
        )


def plan_segment(start: Pose, goal: Pose, mode: FlightMode, t_start: float = 0.0) -> Trajectory:
    """Rest-to-rest trajectory start -> goal within the limits of ``mode``, from t_start (s)."""
    delta = goal.position - start.position
    distance = float(np.linalg.norm(delta))
    if distance < MIN_DISTANCE:
        distance = 0.0
    direction = delta / distance if distance > 0.0 else np.zeros(3)
    rotvec = rotvec_from_quat(quat_multiply(quat_conjugate(start.quat), goal.quat))
    angle = float(np.linalg.norm(rotvec))
    if angle < MIN_ANGLE:
        angle = 0.0
    axis = rotvec / angle if angle > 0.0 else np.zeros(3)
    duration = max(
        min_duration(distance, mode.v_max, mode.a_max),
        min_duration(angle, mode.w_max, mode.alpha_max),
    )
    return Trajectory(
        start=start,
        goal=goal,
        t_start=float(t_start),
        duration=duration,
        direction=direction,
        translation=trapezoid(distance, mode.a_max, duration),
        axis=axis,
        rotation=trapezoid(angle, mode.alpha_max, duration),
    )
