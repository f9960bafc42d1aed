"""IMU model: parameters file, noise statistics, bias, lever arm, determinism, backend truth."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from intball_nav.dynamics import RigidBodyState
from intball_nav.frames import quat_from_rpy
from intball_nav.robot import load_robot_params
from intball_sim.backend import PyBulletBackend
from intball_sim.imu import Imu, ImuConfigError, ImuParams, imu_initial_bias, imu_step, load_imu_params


def test_packaged_params_are_bmi088_class():
    params = load_imu_params()
    assert params.rate_hz == 100.0
    np.testing.assert_array_equal(params.position_body, np.zeros(3))
    # Datasheet-order figures: gyro 0.014 deg/s/sqrt(Hz), accel 175 ug/sqrt(Hz).
    assert params.gyro.noise_density == pytest.approx(math.radians(0.014), rel=0.05)
    assert params.accel.noise_density == pytest.approx(175e-6 * 9.81, rel=0.05)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("rate_hz: 100.0", "rate_hz: 0", "imu.yaml:6: rate_hz: must be a number in [1, 10000]"),
        ("position_body: [0.0, 0.0, 0.0]", "position_body: [0, 0]", "imu.yaml:7: position_body"),
        ("rate_hz: 100.0", "rate_hz: 100.0\nbogus: 1", "imu.yaml:7: bogus: unknown field"),
        ("  range: 58.8", "  range: fast", "accel.range: must be a number"),
    ],
)
def test_bad_params_name_file_line_and_field(tmp_path, old, new, expected):
    text = load_imu_params_text()
    assert old in text
    bad = tmp_path / "imu.yaml"
    bad.write_text(text.replace(old, new))
    with pytest.raises(ImuConfigError) as err:
        load_imu_params(bad)
    assert expected in str(err.value)


def test_bad_nested_value_reports_its_line(tmp_path):
    text = load_imu_params_text().replace("noise_density: 2.4e-4", "noise_density: -1")
    bad = tmp_path / "imu.yaml"
    bad.write_text(text)
    with pytest.raises(ImuConfigError) as err:
        load_imu_params(bad)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "noise_density: -1" in ln)
    assert f"imu.yaml:{line}: gyro.noise_density" in str(err.value)
    assert "[0, 1]" in str(err.value)


def load_imu_params_text() -> str:
    from importlib import resources

    return (resources.files("intball_nav") / "data" / "imu.yaml").read_text()


def test_white_noise_sigma_matches_density():
    params = load_imu_params()
    params = dataclasses.replace(
        params,
        gyro=dataclasses.replace(params.gyro, bias_random_walk=0.0, turn_on_bias_sigma=0.0),
        accel=dataclasses.replace(params.accel, bias_random_walk=0.0, turn_on_bias_sigma=0.0),
    )
    imu = Imu(params, seed=1)
    samples = [imu.sample(k * 0.01, np.zeros(3), np.zeros(3)) for k in range(20000)]
    gyro = np.array([s.angular_rate for s in samples])
    accel = np.array([s.specific_force for s in samples])
    assert np.std(gyro, axis=0) == pytest.approx([params.gyro.noise_density * 10.0] * 3, rel=0.03)
    assert np.std(accel, axis=0) == pytest.approx([params.accel.noise_density * 10.0] * 3, rel=0.03)
    assert np.abs(np.mean(gyro, axis=0)).max() < 4 * params.gyro.noise_density * 10.0 / math.sqrt(20000)


def test_bias_turn_on_constant_and_random_walk_grows():
    params = load_imu_params()
    biases = np.array(
        [imu_initial_bias(params, np.random.default_rng(s).standard_normal(6)).gyro for s in range(2000)]
    )
    assert np.std(biases) == pytest.approx(params.gyro.turn_on_bias_sigma, rel=0.05)
    # Random walk: after N samples the bias spread is rw * sqrt(N dt).
    rng = np.random.default_rng(0)
    n, runs = 100, 250
    ends = []
    for _ in range(runs):
        bias = imu_initial_bias(ImuParams.noiseless(), np.zeros(6))
        for _ in range(n):
            bias, _, _ = imu_step(
                bias, np.zeros(3), np.zeros(3), np.zeros(3), params, 0.01, rng.standard_normal(12)
            )
        ends.append(bias.accel)
    expected = params.accel.bias_random_walk * math.sqrt(n * 0.01)
    assert np.std(ends) == pytest.approx(expected, rel=0.12)


def test_noiseless_imu_passes_truth_and_lever_arm_adds_centripetal():
    ideal = ImuParams.noiseless()
    imu = Imu(ideal, seed=0)
    f, w = np.array([0.01, -0.02, 0.03]), np.array([0.1, 0.2, -0.3])
    s = imu.sample(0.0, f, w)
    np.testing.assert_array_equal(s.specific_force, f)
    np.testing.assert_array_equal(s.angular_rate, w)
    r = np.array([0.05, 0.0, 0.0])
    offset = Imu(dataclasses.replace(ideal, position_body=r), seed=0)
    w = np.array([0.0, 0.0, 1.0])
    s = offset.sample(0.0, np.zeros(3), w, alpha_body=np.array([0.0, 0.0, 2.0]))
    # omega x (omega x r) = -|w|^2 r (centripetal, toward the CoM); alpha x r tangential.
    np.testing.assert_allclose(s.specific_force, [-0.05, 0.1, 0.0], atol=1e-15)


def test_saturation():
    params = load_imu_params()
    ideal = dataclasses.replace(
        ImuParams.noiseless(), gyro=dataclasses.replace(ImuParams.noiseless().gyro, range=params.gyro.range)
    )
    s = Imu(ideal, seed=0).sample(0.0, np.zeros(3), np.array([100.0, 0.0, 0.0]))
    assert s.angular_rate[0] == params.gyro.range


def test_same_seed_same_samples():
    a, b, c = Imu(seed=5), Imu(seed=5), Imu(seed=6)
    sa = [a.sample(k * 0.01, np.ones(3), np.ones(3)).angular_rate for k in range(10)]
    sb = [b.sample(k * 0.01, np.ones(3), np.ones(3)).angular_rate for k in range(10)]
    sc = [c.sample(k * 0.01, np.ones(3), np.ones(3)).angular_rate for k in range(10)]
    np.testing.assert_array_equal(sa, sb)
    assert not np.allclose(sa, sc)


def test_imu_on_backend_reads_fan_acceleration_in_body_frame():
    robot = load_robot_params()
    still = dataclasses.replace(robot, drag_linear=0.0, drag_angular=0.0)
    backend = PyBulletBackend(still, None, seed=0, world=False, airflow=False, thrust_noise=False)
    backend.reset(RigidBodyState(quat=quat_from_rpy(0.3, 0.2, 1.0)))
    imu = Imu(ImuParams.noiseless(), seed=0)
    cmd = np.zeros(8)
    cmd[4:8] = robot.fan_max  # the +x-pushing fans (pure +x body force)
    for _ in range(100):
        backend.step(cmd, 0.01)
        f, w, alpha = backend.imu_truth()
        sample = imu.sample(backend.sim_time, f, w, alpha)
    expected = (robot.allocation_matrix @ cmd)[:3] / robot.mass
    np.testing.assert_allclose(sample.specific_force, expected, rtol=1e-6, atol=1e-9)
    assert expected[0] > 0.05 and abs(expected[1]) < 1e-9
    backend.close()
