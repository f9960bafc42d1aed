"""PyBullet backend: body parameters, frame semantics, time stepping, noise, contacts, IMU truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pybullet as p
import pytest

from intball_nav import dynamics
from intball_nav.dynamics import FanState, RigidBodyState
from intball_nav.frames import quat_from_rpy, rotmat_from_quat
from intball_nav.robot import load_robot_params
from intball_sim.backend import PyBulletBackend


@pytest.fixture(scope="module")
def robot():
    return load_robot_params()


def _backend(robot, **kw) -> PyBulletBackend:
    kw.setdefault("world", False)
    kw.setdefault("airflow", False)
    kw.setdefault("thrust_noise", False)
    return PyBulletBackend(robot, None, seed=kw.pop("seed", 0), **kw)


def test_pybullet_body_has_the_params_mass_and_inertia(robot):
    b = _backend(robot)
    info = p.getDynamicsInfo(b.robot_id, -1, physicsClientId=b.client_id)
    assert info[0] == pytest.approx(robot.mass)
    np.testing.assert_allclose(info[2], np.diag(robot.inertia), rtol=1e-12)
    assert np.allclose(robot.inertia, np.diag(np.diag(robot.inertia)))  # URDF inertia is principal
    np.testing.assert_allclose(info[3], [0.0, 0.0, 0.0])  # inertial frame at base_link origin (CoM)
    np.testing.assert_allclose(info[4], [0.0, 0.0, 0.0, 1.0])
    b.close()


def test_no_hidden_damping(robot):
    still_air = dataclasses.replace(robot, drag_linear=0.0, drag_angular=0.0)
    b = _backend(still_air)
    b.reset(RigidBodyState(velocity=np.array([0.1, 0.0, 0.0]), omega=np.array([0.0, 0.0, 0.3])))
    b.step(np.zeros(8), 10.0)
    s = b.state()
    assert s.velocity[0] == pytest.approx(0.1, abs=1e-12)
    assert np.linalg.norm(s.omega) == pytest.approx(0.3, rel=1e-9)
    b.close()


def test_nondiagonal_inertia_uses_principal_axes(robot):
    inertia = np.array([[0.014, 0.001, 0.0], [0.001, 0.0143, -0.0005], [0.0, -0.0005, 0.0132]])
    tilted = dataclasses.replace(robot, inertia=inertia, drag_linear=0.0, drag_angular=0.0)
    b = _backend(tilted)
    q0 = quat_from_rpy(0.2, -0.4, 1.1)
    w0 = np.array([0.2, -0.1, 0.3])
    b.reset(RigidBodyState(quat=q0, omega=w0))
    s = b.state()
    np.testing.assert_allclose(s.omega, w0, atol=1e-12)
    np.testing.assert_allclose(s.quat, q0, atol=1e-12)
    model, fans = RigidBodyState(quat=q0, omega=w0), FanState()
    cmd = np.array([0.0, 0.03, 0.0, 0.01, 0.0, 0.0, 0.02, 0.0])
    for _ in range(200):
        b.step(cmd, 0.005)
        model, fans = dynamics.step(model, fans, cmd, tilted, 0.005)
    s = b.state()
    np.testing.assert_allclose(s.omega, model.omega, atol=1e-5)
    np.testing.assert_allclose(s.velocity, model.velocity, atol=1e-5)
    b.close()


def test_apply_external_torque_world_frame_semantics(robot):
    """PyBullet quirk check: WORLD_FRAME torque on a rotated multibody base is a world vector."""
    b = _backend(robot)
    q = quat_from_rpy(0.0, 0.0, np.pi / 2)  # body x = world y
    b.reset(RigidBodyState(quat=q))
    cid, rid = b.client_id, b.robot_id
    torque_world = np.array([0.01, 0.0, 0.0])  # = -body y
    p.applyExternalTorque(rid, -1, torque_world.tolist(), p.WORLD_FRAME, physicsClientId=cid)
    p.stepSimulation(physicsClientId=cid)
    _, w = p.getBaseVelocity(rid, physicsClientId=cid)
    R = rotmat_from_quat(q)
    expected = R @ np.linalg.solve(robot.inertia, R.T @ torque_world) * b.physics_dt
    np.testing.assert_allclose(w, expected, rtol=1e-9, atol=1e-15)
    b.close()


def test_single_fan_wrench_direction_in_world(robot):
    """One fan from rest on a rotated robot: dv and domega along R @ (B column)."""
    still_air = dataclasses.replace(robot, drag_linear=0.0, drag_angular=0.0)
    b = _backend(still_air)
    q = quat_from_rpy(0.5, -0.3, 2.0)
    b.reset(RigidBodyState(quat=q))
    cmd = np.zeros(8)
    cmd[3] = robot.fan_max
    b.step(cmd, 0.05)
    s = b.state()
    _, mean = dynamics.fan_step(FanState(), cmd, robot, 0.05)
    wrench = robot.allocation_matrix @ mean
    np.testing.assert_allclose(s.velocity, rotmat_from_quat(q) @ wrench[:3] / robot.mass * 0.05, rtol=2e-3)
    alpha = np.linalg.solve(robot.inertia, wrench[3:])
    np.testing.assert_allclose(s.omega, alpha * 0.05, rtol=2e-2, atol=1e-7)
    b.close()


def test_step_accumulator_keeps_whole_physics_steps(robot):
    b = _backend(robot)
    for _ in range(125):
        b.step(np.zeros(8), 0.016)  # 62.5 Hz: 3.2 physics steps per call at 200 Hz
    assert b.sim_time == pytest.approx(2.0, abs=1e-12)
    b.step(np.zeros(8), 0.001)  # less than one physics step: nothing happens yet
    assert b.sim_time == pytest.approx(2.0, abs=1e-12)
    b.step(np.zeros(8), 0.004)
    assert b.sim_time == pytest.approx(2.005, abs=1e-12)
    b.close()


def test_vectorised_fan_lag_equals_chained_fan_step(robot):
    b = _backend(robot)
    fans = FanState()
    rng = np.random.default_rng(3)
    for _ in range(30):
        cmd = rng.uniform(-0.01, 0.08, 8)  # includes out-of-range commands (clipped)
        b.step(cmd, 0.02)
        for _ in range(4):
            fans, _ = dynamics.fan_step(fans, cmd, robot, b.physics_dt)
        np.testing.assert_allclose(b.fan_thrust, fans.thrust, atol=1e-15)
    b.close()


def test_same_seed_same_trajectory_and_call_split_independent(robot):
    def fly(seed: int, dt: float) -> np.ndarray:
        b = _backend(robot, seed=seed, thrust_noise=True)
        cmd = np.full(8, 0.02)
        for _ in range(round(2.0 / dt)):
            b.step(cmd, dt)
        s = b.state()
        b.close()
        return np.concatenate([s.position, s.quat, s.velocity, s.omega])

    a, again = fly(7, 0.02), fly(7, 0.02)
    np.testing.assert_array_equal(a, again)
    np.testing.assert_allclose(fly(7, 0.01), a, atol=1e-12)  # noise tied to physics steps
    assert not np.allclose(fly(8, 0.02), a, atol=1e-9)


def test_thrust_noise_statistics(robot):
    """Noise sigma per fan as configured, none on idle fans, never outside the fan range."""
    b = _backend(robot, seed=11, thrust_noise=True)
    draws = b._thrust_noise(np.arange(20000))  # held over fan_tau: pairs of equal rows at 200 Hz
    assert np.std(draws) == pytest.approx(robot.fan_noise_sigma, rel=0.03)
    still_air = dataclasses.replace(robot, drag_linear=0.0, drag_angular=0.0)
    b = _backend(still_air, seed=11, thrust_noise=True)
    b.step(np.zeros(8), 1.0)
    assert np.all(b.state().velocity == 0.0)  # all fans idle: no noise thrust
    b.close()


def test_airflow_pushes_a_passive_robot(robot):
    b = PyBulletBackend(robot, None, seed=3, world=False, airflow=True, thrust_noise=False)
    b.reset(RigidBodyState(position=np.array([3.0, 0.0, 0.0])))
    for _ in range(500):
        b.step(np.zeros(8), 0.02)
    air = b.air_velocity()
    assert np.linalg.norm(air) > 1e-3
    v = b.state().velocity
    # drag time constant m / c ~ 210 s: after 10 s the robot drifts along the air, ~5% of it.
    assert float(v @ air) > 0.0
    b.close()


def _wall(b: PyBulletBackend, x: float) -> int:
    cid = b.client_id
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[0.05, 1.0, 1.0], physicsClientId=cid)
    return p.createMultiBody(0.0, col, basePosition=[x + 0.05, 0.0, 0.0], physicsClientId=cid)


def test_collision_detected_and_no_pass_through(robot):
    b = _backend(robot)
    wall = _wall(b, 1.0)  # wall face at x = 1.0
    b.reset(RigidBodyState(position=np.array([0.5, 0.0, 0.0]), velocity=np.array([0.2, 0.0, 0.0])))
    max_x, hit = -np.inf, []
    for _ in range(400):
        b.step(np.full(8, 0.0), 0.02)
        max_x = max(max_x, b.state().position[0])
        hit.extend(b.collisions())
    assert b.collision_count == 1
    assert b.collision_events[0].body_id == wall
    assert 2.0 < b.collision_events[0].t < 2.6  # 0.4 m gap at ~0.2 m/s
    assert max_x < 1.0 - robot.radius + 2e-3  # penetration < 2 mm
    assert hit and hit[0].body_id == wall and hit[0].normal[0] == pytest.approx(-1.0, abs=1e-6)
    assert b.state().velocity[0] < 0.0  # bounced back
    b.close()


def test_imu_truth_is_specific_force_and_includes_contact(robot):
    still_air = dataclasses.replace(robot, drag_linear=0.0, drag_angular=0.0)
    b = _backend(still_air)
    q = quat_from_rpy(0.0, 0.5, 0.3)
    b.reset(RigidBodyState(quat=q))
    cmd = np.full(8, 0.0)
    cmd[[0, 1, 2, 3]] = robot.fan_max  # the four -x-pushing fans: pure force along body -x
    b.step(cmd, 1.0)
    f, w, alpha = b.imu_truth()
    _, mean = dynamics.fan_step(FanState(), cmd, still_air, 1.0)
    np.testing.assert_allclose(f, (robot.allocation_matrix @ mean)[:3] / robot.mass, rtol=1e-6, atol=1e-9)
    assert np.linalg.norm(w) < 1e-9 and np.linalg.norm(alpha) < 1e-9
    # Contact: coasting into a wall, the IMU sees the bounce deceleration.
    b2 = _backend(still_air)
    _wall(b2, 0.2)
    b2.reset(RigidBodyState(velocity=np.array([0.2, 0.0, 0.0])))
    peak = 0.0
    for _ in range(100):
        b2.step(np.zeros(8), 0.01)
        peak = max(peak, -b2.imu_truth()[0][0])
    assert peak > 10.0  # ~0.3 m/s change within one 10 ms sample
    b.close()
    b2.close()


def test_reset_roundtrip(robot):
    b = _backend(robot)
    s = RigidBodyState(
        position=np.array([1.0, -0.5, 0.3]),
        quat=quat_from_rpy(0.1, -0.2, 2.5),
        velocity=np.array([0.01, 0.02, -0.03]),
        omega=np.array([0.1, -0.2, 0.05]),
    )
    b.reset(s)
    t = b.state()
    for name in ("position", "quat", "velocity", "omega"):
        np.testing.assert_allclose(getattr(t, name), getattr(s, name), atol=1e-12)
    assert b.sim_time == 0.0 and b.collision_count == 0
    b.close()


def test_module_wall_collision_in_built_world(robot):
    """Coasting into the real module's port rack face: counted once, no pass-through."""
    from intball_nav.module import load_module

    module = load_module()
    b = PyBulletBackend(robot, module, seed=0, airflow=False, thrust_noise=False)
    assert b.world is not None and len(b.world.walls) > 10
    y_wall = float(module.clear_max[1])
    b.reset(RigidBodyState(position=np.array([3.3, y_wall - 0.3, 0.0]), velocity=np.array([0.0, 0.2, 0.0])))
    max_y = -np.inf
    for _ in range(300):
        b.step(np.zeros(8), 0.02)
        max_y = max(max_y, b.state().position[1])
    assert b.collision_count == 1
    event = b.collision_events[0]
    assert event.body_id in b.world.walls and event.name
    assert max_y < y_wall - robot.radius + 2e-3
    assert b.state().velocity[1] < 0.0
    b.close()


def test_render_world_has_markers_and_cameras_do_not_see_the_robot(robot):
    from intball_nav.frames import Pose
    from intball_nav.module import load_module
    from intball_sim.camera import load_cameras

    b = PyBulletBackend(robot, load_module(), seed=0, render=True, prefer_egl=False)
    assert b.renderer is not None and len(b.world.markers) > 0
    b.reset(RigidBodyState(position=np.array([3.0, 0.0, 0.0])))
    s = b.state()
    for model in load_cameras().values():
        rgb, depth = b.renderer.render(model, Pose(s.position, s.quat).compose(model.T_base_cam))
        assert rgb.shape == (model.height, model.width, 3)
        assert depth.min() > 0.5  # the robot's own sphere is not in the picture: walls >= 0.9 m away
    b.close()
    physics_only = PyBulletBackend(robot, load_module(), seed=0, visuals=False)
    assert physics_only.renderer is None and len(physics_only.world.markers) == 0
    assert len(physics_only.world.walls) == len(b.world.walls)
    physics_only.close()
