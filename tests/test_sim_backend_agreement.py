"""PyBullet backend vs the analytic model (intball_nav.dynamics) and free-flight invariants.

Agreement bounds (noise off, airflow off, no walls; 20 s of fan commands changing every
0.5 s; speeds up to ~0.06 m/s and body rates up to ~0.7 rad/s, above the 0.44 rad/s
planner limit), backend at its default 200 Hz physics:

- position < 0.5 mm, attitude < 0.15 deg, velocity < 0.05 mm/s, body rate < 0.005 deg/s.

The whole difference is PyBullet's semi-implicit Euler step, whose position and attitude
lead the exact solution by ``(v - v0) h / 2`` and ``~ omega h / 2`` (h = physics step; the
force is rotated with that leading attitude, hence a small velocity error too). The tests
check the attitude bound and the first-order convergence (halving h halves every error),
so no modelling difference (frames, inertia, wrench, drag, fan lag) hides in it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intball_nav import dynamics
from intball_nav.dynamics import FanState, RigidBodyState
from intball_nav.frames import quat_angle, quat_from_rpy, rotmat_from_quat
from intball_nav.robot import load_robot_params
from intball_sim.backend import PyBulletBackend

CONTROL_DT = 0.02


@pytest.fixture(scope="module")
def robot():
    return load_robot_params()


def _start() -> RigidBodyState:
    return RigidBodyState(
        position=np.array([1.0, 0.2, -0.1]),
        quat=quat_from_rpy(0.3, -0.2, 1.0),
        velocity=np.array([0.02, 0.0, -0.01]),
        omega=np.array([0.05, -0.1, 0.2]),
    )


def _compare(robot, physics_hz: float, duration: float = 20.0, seed: int = 1) -> dict[str, float]:
    """Fly the same command sequence through both; max errors and max |v|, |omega|."""
    backend = PyBulletBackend(
        robot, None, seed=0, world=False, airflow=False, thrust_noise=False, physics_hz=physics_hz
    )
    s0 = _start()
    backend.reset(s0)
    model, fans = s0, FanState()
    rng = np.random.default_rng(seed)
    h = backend.physics_dt
    n_sub = round(CONTROL_DT / h)
    err = {
        "position": 0.0,
        "attitude_deg": 0.0,
        "velocity": 0.0,
        "omega_deg": 0.0,
        "v_max": 0.0,
        "w_max": 0.0,
    }
    for _ in range(round(duration / 0.5)):
        cmd = rng.uniform(0.0, robot.fan_max, 8)
        for _ in range(round(0.5 / CONTROL_DT)):
            backend.step(cmd, CONTROL_DT)
            for _ in range(n_sub):
                model, fans = dynamics.step(model, fans, cmd, robot, h)
            pb = backend.state()
            err["position"] = max(err["position"], float(np.linalg.norm(pb.position - model.position)))
            err["attitude_deg"] = max(err["attitude_deg"], float(np.degrees(quat_angle(pb.quat, model.quat))))
            err["velocity"] = max(err["velocity"], float(np.linalg.norm(pb.velocity - model.velocity)))
            err["omega_deg"] = max(
                err["omega_deg"], float(np.degrees(np.linalg.norm(pb.omega - model.omega)))
            )
            err["v_max"] = max(err["v_max"], float(np.linalg.norm(model.velocity - s0.velocity)))
            err["w_max"] = max(err["w_max"], float(np.linalg.norm(model.omega)))
    np.testing.assert_allclose(backend.fan_thrust, fans.thrust, atol=1e-12)
    backend.close()
    return err


def test_backend_agrees_with_analytic_model(robot):
    err = _compare(robot, 200.0)
    h = 1.0 / 200.0
    assert err["w_max"] > 0.4  # the test really turns the robot at planner-limit rates
    assert err["position"] < 0.5e-3
    assert err["attitude_deg"] < 0.15
    assert err["velocity"] < 0.05e-3
    assert err["omega_deg"] < 0.005
    # ... and the attitude error is the integrator's half-step lead, nothing more. (The
    # position error is the lead (v - v0) h / 2 plus the velocity error integrated over time,
    # which comes from the force being rotated with that leading attitude.)
    assert np.radians(err["attitude_deg"]) <= 1.1 * err["w_max"] * h / 2 + 1e-5
    assert err["position"] <= err["v_max"] * h / 2 + 20.0 * err["velocity"] + 1e-6


def test_disagreement_is_first_order_integrator_error(robot):
    coarse = _compare(robot, 100.0, duration=6.0)
    fine = _compare(robot, 400.0, duration=6.0)
    for key in ("position", "attitude_deg", "velocity"):
        ratio = coarse[key] / fine[key]
        assert 3.0 < ratio < 5.0, (key, coarse[key], fine[key])


def test_free_flight_conserves_momentum_and_energy(robot):
    """Torque-free precession (drag off): momentum, angular momentum and energy are kept."""
    still_air = dataclasses.replace(robot, drag_linear=0.0, drag_angular=0.0)
    backend = PyBulletBackend(still_air, None, seed=0, world=False, airflow=False, thrust_noise=False)
    v0 = np.array([0.05, -0.02, 0.01])
    w0 = np.array([0.3, 0.05, 0.2])  # rad/s, body: tumbles about all three (unequal) axes
    backend.reset(RigidBodyState(np.zeros(3), quat_from_rpy(0.1, 0.2, 0.3), v0, w0))
    inertia = np.asarray(still_air.inertia)

    def invariants(s: RigidBodyState) -> tuple[float, np.ndarray]:
        return 0.5 * s.omega @ inertia @ s.omega, rotmat_from_quat(s.quat) @ inertia @ s.omega

    e0, l0 = invariants(backend.state())
    omegas = []
    for _ in range(round(60.0 / CONTROL_DT)):
        backend.step(np.zeros(8), CONTROL_DT)
        omegas.append(backend.state().omega)
    s = backend.state()
    e1, l1 = invariants(s)
    assert abs(e1 - e0) / e0 < 2e-4
    assert np.linalg.norm(l1 - l0) / np.linalg.norm(l0) < 2e-4
    np.testing.assert_allclose(s.velocity, v0, atol=1e-12)
    np.testing.assert_allclose(s.position, v0 * 60.0, atol=1e-6)
    # The body rate really precesses (gyroscopic term present), it is not a fixed axis.
    assert np.ptp(np.asarray(omegas), axis=0).max() > 0.1
    backend.close()


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    w=st.tuples(*[st.floats(-0.6, 0.6)] * 3),
    rpy=st.tuples(*[st.floats(-3.0, 3.0)] * 3),
    v=st.tuples(*[st.floats(-0.2, 0.2)] * 3),
)
def test_free_flight_invariants_property(robot, w, rpy, v):
    """Any tumbling state (drag off, 10 s): energy, angular and linear momentum, unit quaternion."""
    still_air = dataclasses.replace(robot, drag_linear=0.0, drag_angular=0.0)
    backend = PyBulletBackend(still_air, None, seed=0, world=False, airflow=False, thrust_noise=False)
    backend.reset(RigidBodyState(np.zeros(3), quat_from_rpy(*rpy), np.array(v), np.array(w)))
    inertia = np.asarray(still_air.inertia)
    s0 = backend.state()
    for _ in range(500):
        backend.step(np.zeros(8), CONTROL_DT)
    s1 = backend.state()
    backend.close()
    e0, e1 = (0.5 * s.omega @ inertia @ s.omega for s in (s0, s1))
    l0, l1 = (rotmat_from_quat(s.quat) @ inertia @ s.omega for s in (s0, s1))
    assert abs(e1 - e0) <= 1e-4 * e0 + 1e-12
    assert np.linalg.norm(l1 - l0) <= 1e-4 * np.linalg.norm(l0) + 1e-12
    np.testing.assert_allclose(s1.velocity, v, atol=1e-12)
    assert abs(np.linalg.norm(s1.quat) - 1.0) < 1e-9
