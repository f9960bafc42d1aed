"""Analytic model: conservation laws in free flight, exact fan lag, analytic translation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intball_nav.dynamics import FanState, RigidBodyState, body_wrench, fan_step, rigid_body_step, step
from intball_nav.frames import quat_angle, quat_from_rotvec, rotmat_from_quat
from intball_nav.robot import load_robot_params

PARAMS = load_robot_params()
NO_DRAG = dataclasses.replace(PARAMS, drag_linear=0.0, drag_angular=0.0)

rates = st.lists(st.floats(-0.8, 0.8), min_size=3, max_size=3).map(np.array)
rotvecs = st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3).map(np.array)


def _invariants(s: RigidBodyState, p=NO_DRAG):
    Iw = p.inertia @ s.omega
    return rotmat_from_quat(s.quat) @ Iw, 0.5 * s.omega @ Iw, p.mass * s.velocity


@settings(max_examples=5, deadline=None)
@given(omega=rates, rv=rotvecs, v=rates)
def test_torque_free_motion_conserves_momentum_and_energy(omega, rv, v):
    """60 s of torque-free precession of the asymmetric body (IB2 URDF inertia)."""
    s = RigidBodyState(np.zeros(3), quat_from_rotvec(rv), 0.1 * v, omega)
    L0, E0, P0 = _invariants(s)
    zero = np.zeros(6)
    for _ in range(1500):
        s = rigid_body_step(s, zero, NO_DRAG, 0.04)
    L1, E1, P1 = _invariants(s)
    scale_L = max(np.linalg.norm(L0), 1e-6)
    assert np.linalg.norm(L1 - L0) / scale_L < 1e-8
    assert abs(E1 - E0) <= 1e-10 * max(E0, 1e-9)
    assert np.allclose(P1, P0, atol=1e-15)
    assert abs(np.linalg.norm(s.quat) - 1.0) < 1e-12
    assert np.allclose(s.position, 0.1 * v * 60.0, atol=1e-9)


def test_attitude_integration_is_fourth_order():
    """Halving dt divides the attitude error by ~16 (reference: dt / 16)."""
    s0 = RigidBodyState(omega=np.array([0.6, -0.3, 0.5]))
    wrench = np.array([0, 0, 0, 2e-3, -1e-3, 1.5e-3])

    def run(dt):
        s = s0
        for _ in range(round(4.0 / dt)):
            s = rigid_body_step(s, wrench, PARAMS, dt)
        return s

    ref = run(0.0125)
    e1 = np.linalg.norm(run(0.2).quat - ref.quat)
    e2 = np.linalg.norm(run(0.1).quat - ref.quat)
    assert 10.0 < e1 / e2 < 22.0


@settings(max_examples=10, deadline=None)
@given(q_rv=rotvecs, f=st.lists(st.floats(-0.1, 0.1), min_size=3, max_size=3).map(np.array))
def test_constant_body_force_gives_analytic_displacement_with_drag(q_rv, f):
    """Fixed attitude, constant force: v = F/c (1 - e^(-ct/m)), x = F/c (t - m/c (1 - e^(-ct/m)))."""
    q = quat_from_rotvec(q_rv)
    s = RigidBodyState(np.array([1.0, 0.0, 0.0]), q)
    wrench = np.concatenate([f, np.zeros(3)])
    for _ in range(50):
        s = rigid_body_step(s, wrench, PARAMS, 0.2)
    t, m, c = 10.0, PARAMS.mass, PARAMS.drag_linear
    F = rotmat_from_quat(q) @ f
    decay = 1.0 - np.exp(-c * t / m)
    assert np.allclose(s.velocity, F / c * decay, atol=1e-12)
    assert np.allclose(s.position, [1.0, 0.0, 0.0] + F / c * (t - m / c * decay), atol=1e-11)
    assert np.allclose(s.omega, 0.0) and quat_angle(s.quat, q) < 1e-9


def test_drag_acts_on_velocity_relative_to_air():
    air = np.array([0.03, -0.02, 0.01])
    s = RigidBodyState()
    for _ in range(250):  # 50 s; time constant m / c = 210 s
        s = rigid_body_step(s, np.zeros(6), PARAMS, 0.2, air)
    assert np.allclose(s.velocity, air * (1.0 - np.exp(-50.0 * PARAMS.drag_linear / PARAMS.mass)), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    t0=st.lists(st.floats(0.0, 0.06), min_size=8, max_size=8).map(np.array),
    cmd=st.lists(st.floats(-0.05, 0.1), min_size=8, max_size=8).map(np.array),
    dt=st.floats(1e-4, 0.1),
)
def test_fan_lag_is_the_exact_exponential(t0, cmd, dt):
    fans, mean = fan_step(FanState(t0), cmd, PARAMS, dt)
    c = np.clip(cmd, 0.0, 0.060)
    tau = PARAMS.fan_tau
    assert np.allclose(fans.thrust, c + (t0 - c) * np.exp(-dt / tau), atol=1e-15)
    # mean over dt equals the integral of the exponential, computed here by quadrature
    ts = np.linspace(0.0, dt, 2001)
    curve = c[:, None] + (t0 - c)[:, None] * np.exp(-ts / tau)[None, :]
    assert np.allclose(mean, np.trapezoid(curve, ts, axis=1) / dt, atol=1e-7)


def test_fan_steps_compose():
    """Two half steps equal one full step (the lag is exact, not discretized)."""
    cmd = np.linspace(0.0, 0.06, 8)
    one, _ = fan_step(FanState(), cmd, PARAMS, 0.02)
    half, _ = fan_step(FanState(), cmd, PARAMS, 0.01)
    two, _ = fan_step(half, cmd, PARAMS, 0.01)
    assert np.allclose(one.thrust, two.thrust, atol=1e-15)


def test_step_applies_mean_thrust_wrench():
    cmd = np.full(8, 0.03)
    cmd[[0, 3]] = 0.06  # net -x force and some torque
    s, fans = step(RigidBodyState(), FanState(), cmd, PARAMS, 0.01)
    _, mean = fan_step(FanState(), cmd, PARAMS, 0.01)
    ref = rigid_body_step(RigidBodyState(), body_wrench(mean, PARAMS), PARAMS, 0.01)
    assert np.allclose(s.velocity, ref.velocity) and np.allclose(s.omega, ref.omega)
    assert s.velocity[0] < 0.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="dt"):
        rigid_body_step(RigidBodyState(), np.zeros(6), PARAMS, 0.0)
    with pytest.raises(ValueError, match="wrench"):
        rigid_body_step(RigidBodyState(), np.array([np.nan, 0, 0, 0, 0, 0]), PARAMS, 0.01)
    with pytest.raises(ValueError, match="fan command"):
        fan_step(FanState(), np.full(8, np.inf), PARAMS, 0.01)
