"""The plain-float fast paths of the 50 Hz loop agree with the array formulations.

The hot loop (guidance sample, pose control, allocation, frames helpers) runs on Python
floats instead of (3,)/(4,) numpy arrays for speed; these tests pin them to the reference
array formulas (the ones documented in each module) to float round-off, on seeded random
inputs including the small-angle and negative-w branches.
"""

from __future__ import annotations

import numpy as np
import pytest

from intball_nav import allocation
from intball_nav.control import load_gains, pose_control
from intball_nav.dynamics import RigidBodyState, cross3
from intball_nav.flight_modes import get_flight_mode
from intball_nav.frames import (
    Pose,
    quat_angle,
    quat_conjugate,
    quat_from_rotvec,
    quat_from_rotvec_f,
    quat_multiply,
    quat_multiply_f,
    quat_normalize,
    quat_normalize_f,
    rotmat_from_quat,
    rotmat_from_quat_f,
    rotvec_from_quat,
    rotvec_from_quat_f,
)
from intball_nav.guidance import Setpoint, plan_segment
from intball_nav.robot import load_robot_params

RNG = np.random.default_rng(20261121)
PARAMS = load_robot_params()
GAINS = load_gains()


def _random_quat() -> np.ndarray:
    q = RNG.normal(size=4)
    return q / np.linalg.norm(q)  # either sign of w


def test_frames_float_forms_match_array_forms():
    for _ in range(200):
        q1, q2 = _random_quat(), _random_quat()
        np.testing.assert_allclose(quat_multiply_f(tuple(q1), tuple(q2)), quat_multiply(q1, q2), atol=1e-15)
        np.testing.assert_allclose(quat_normalize_f(tuple(2.5 * q1)), quat_normalize(2.5 * q1), atol=1e-15)
        np.testing.assert_allclose(rotvec_from_quat_f(tuple(q1)), rotvec_from_quat(q1), atol=1e-14)
        np.testing.assert_allclose(
            np.reshape(rotmat_from_quat_f(tuple(q1)), (3, 3)), rotmat_from_quat(q1), atol=1e-15
        )
        for scale in (1.0, 1e-3, 1e-9):  # 1e-9: the small-angle branch
            rv = scale * RNG.normal(size=3)
            np.testing.assert_allclose(quat_from_rotvec_f(*rv), quat_from_rotvec(rv), atol=1e-15)
    tiny = np.array([1e-10, -2e-10, 3e-10, -1.0])  # small angle, negative w
    np.testing.assert_allclose(rotvec_from_quat_f(tuple(tiny)), rotvec_from_quat(tiny), atol=1e-20)


def test_quat_angle_matches_array_formula():
    for _ in range(100):
        q0, q1 = _random_quat(), _random_quat()
        q_rel = quat_multiply(quat_conjugate(q0), q1)
        ref = 2.0 * np.arctan2(np.linalg.norm(q_rel[:3]), abs(q_rel[3]))
        assert quat_angle(q0, q1) == pytest.approx(ref, abs=1e-14)
    assert quat_angle([0, 0, 0, 1], [0, 0, 0, 1]) == 0.0  # lists accepted, as before


def test_trajectory_sample_matches_array_formula():
    mode = get_flight_mode()
    start = Pose(np.array([1.0, 0.2, -0.1]), _random_quat())
    goal = Pose(np.array([3.0, -0.4, 0.3]), _random_quat())
    traj = plan_segment(start, goal, mode, t_start=2.0)
    for t in np.linspace(2.0 + 1e-3, traj.t_end - 1e-3, 97):
        sp = traj.sample(float(t))
        tau = float(t) - traj.t_start
        s, sd, sdd = traj.translation.sample(tau)
        th, thd, thdd = traj.rotation.sample(tau)
        np.testing.assert_allclose(sp.position, start.position + s * traj.direction, atol=1e-15)
        np.testing.assert_allclose(sp.velocity, sd * traj.direction, atol=1e-15)
        np.testing.assert_allclose(sp.acceleration, sdd * traj.direction, atol=1e-15)
        q_ref = quat_normalize(quat_multiply(start.quat, quat_from_rotvec(th * traj.axis)))
        np.testing.assert_allclose(sp.quat, q_ref, atol=1e-15)
        np.testing.assert_allclose(sp.omega, thd * traj.axis, atol=1e-15)
        np.testing.assert_allclose(sp.alpha, thdd * traj.axis, atol=1e-15)


def _saturate(e: np.ndarray, limit: float) -> np.ndarray:
    n = float(np.linalg.norm(e))
    return e * (limit / n) if n > limit else e


def _pose_control_reference(estimate, setpoint, gains, params, integral):
    """The controller of intball_nav/control.py's docstring, in numpy (the pre-fast-path code)."""
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
    R_err = rotmat_from_quat(q_err)
    w_ref = R_err @ setpoint.omega
    alpha_ref = R_err @ setpoint.alpha - cross3(w, w_ref)
    Iw = params.inertia @ w
    torque = (
        params.inertia @ (alpha_ref + gains.att_kp * e_R + gains.att_kd * (w_ref - w))
        + cross3(w, Iw)
        + params.drag_angular * w
    )
    return np.concatenate([R.T @ force_kibo, torque])


@pytest.mark.parametrize("moving", [True, False])
def test_pose_control_matches_array_formula(moving):
    for k in range(100):
        big = 2.0 if k % 4 == 0 else 0.05  # some errors beyond the saturation limits
        estimate = RigidBodyState(
            RNG.normal(size=3), _random_quat(), 0.1 * RNG.normal(size=3), 0.2 * RNG.normal(size=3)
        )
        rates = (0.1 * RNG.normal(size=3), 0.1 * RNG.normal(size=3)) if moving else (np.zeros(3),) * 2
        setpoint = Setpoint(
            estimate.position + big * RNG.normal(size=3),
            0.1 * RNG.normal(size=3),
            0.01 * RNG.normal(size=3),
            quat_normalize(_random_quat()),
            *rates,
        )
        integral = None if k % 3 == 0 else 0.01 * RNG.normal(size=3)
        np.testing.assert_allclose(
            pose_control(estimate, setpoint, GAINS, PARAMS, integral),
            _pose_control_reference(estimate, setpoint, GAINS, PARAMS, integral),
            rtol=1e-12,
            atol=1e-16,
        )


def test_allocation_fast_path_matches_general_path():
    a = allocation._allocator(PARAMS)
    authority = np.array([0.18, 0.10, 0.12, 3e-3, 4.5e-3, 8.2e-3])
    fast_hits = 0
    for _ in range(500):
        w = RNG.uniform(-1.0, 1.0, 6) * authority * RNG.choice([0.05, 0.3, 1.0, 3.0])
        fast = allocation._allocate_feasible(w.tolist(), a)
        general = allocation._allocate_general(w, a)
        if fast is None:  # infeasible: only the general path answers
            assert general.saturated
            continue
        fast_hits += 1
        assert not general.saturated
        np.testing.assert_allclose(fast, general.thrust, rtol=0.0, atol=1e-15)
    assert 50 < fast_hits < 500  # both branches exercised
    for bad in ([np.nan, 0, 0, 0, 0, 0], [0, 0, 0, np.inf, 0, 0], [2e6, 0, 0, 0, 0, 0]):
        assert allocation._allocate_feasible(bad, a) is None
