"""ATE / RPE math of intball_nav.evaluation on synthetic trajectories with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from intball_nav.evaluation import Trajectory, associate, ate, evaluate, rpe_per_metre
from intball_nav.frames import quat_from_rotvec, quat_from_rpy, quat_multiply
from intball_nav.trajectory_io import write_tum


def straight_line(n: int = 401, length: float = 4.0, yaw_rate_per_m: float = 0.0) -> Trajectory:
    """Along +x kibo at 0.1 m/s, sampled every 0.1 s (1 cm steps), optional yaw change per metre."""
    t = np.arange(n) * 0.1
    x = np.linspace(0.0, length, n)
    p = np.column_stack([x, np.zeros(n), np.zeros(n)])
    q = np.array([quat_from_rpy(0.0, 0.0, yaw_rate_per_m * xi) for xi in x])
    return Trajectory(t, p, q)


def random_walk(seed: int, n: int = 600) -> Trajectory:
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 0.04
    p = np.cumsum(rng.normal(0.0, 0.01, (n, 3)), axis=0)
    q = [np.array([0.0, 0.0, 0.0, 1.0])]
    for _ in range(n - 1):
        q.append(quat_multiply(q[-1], quat_from_rotvec(rng.normal(0.0, 0.01, 3))))
    return Trajectory(t, p, np.array(q))


def test_identical_trajectories_have_zero_error():
    gt = random_walk(1)
    a = ate(gt, gt)
    r = rpe_per_metre(gt, gt, 0.5)
    assert a.position.rmse == 0.0 and a.attitude.rmse < 1e-7 and a.position.n == len(gt)
    assert r.n_segments > 0 and r.position.rmse < 1e-12 and r.attitude.rmse < 1e-7


def test_constant_position_offset_is_ate_but_not_rpe():
    gt = random_walk(2)
    est = Trajectory(gt.t, gt.position + np.array([0.03, 0.0, -0.04]), gt.quat)
    a = ate(gt, est)
    assert a.position.rmse == pytest.approx(0.05, abs=1e-12)
    assert a.position.max == pytest.approx(0.05, abs=1e-12)
    assert a.attitude.rmse < 1e-7
    # a fixed offset of the whole trajectory in kibo cancels in relative motion
    assert rpe_per_metre(gt, est, 0.3).position.rmse < 1e-10


def test_constant_attitude_offset():
    gt = random_walk(3)
    dq = quat_from_rotvec(np.radians([0.0, 2.0, 0.0]))
    est = Trajectory(gt.t, gt.position, np.array([quat_multiply(q, dq) for q in gt.quat]))
    a = ate(gt, est)
    assert math.degrees(a.attitude.rmse) == pytest.approx(2.0, abs=1e-9)
    assert a.position.rmse == 0.0


def test_scale_drift_gives_known_ate_and_rpe_per_metre():
    gt = straight_line()
    est = Trajectory(gt.t, gt.position * 1.01, gt.quat)
    a = ate(gt, est)
    x = gt.position[:, 0]
    assert a.position.rmse == pytest.approx(0.01 * np.sqrt(np.mean(x**2)), rel=1e-9)
    r = rpe_per_metre(gt, est, delta_m=1.0)
    # every 1 m segment of ground truth is 1.01 m in the estimate: 1 cm per metre
    assert r.position.rmse == pytest.approx(0.01, rel=1e-6)
    assert r.position.max == pytest.approx(0.01, rel=1e-6)
    assert r.n_segments == 301  # start points 0 .. 3.00 m in 1 cm steps
    assert r.attitude.rmse < 1e-9


def test_heading_drift_gives_known_rpe_attitude_per_metre():
    gt = straight_line()
    est = straight_line(yaw_rate_per_m=math.radians(0.5))  # 0.5 deg of heading error per metre
    r = rpe_per_metre(gt, est, delta_m=1.0)
    assert math.degrees(r.attitude.rmse) == pytest.approx(0.5, rel=1e-6)
    a = ate(gt, est)
    x = gt.position[:, 0]
    assert math.degrees(a.attitude.rmse) == pytest.approx(0.5 * np.sqrt(np.mean(x**2)), rel=1e-6)


def test_rpe_normalised_by_segment_length():
    gt = straight_line()
    est = Trajectory(gt.t, gt.position * 1.02, gt.quat)
    for delta in (0.5, 1.0, 2.0):
        assert rpe_per_metre(gt, est, delta_m=delta).position.rmse == pytest.approx(0.02, rel=1e-6)


def test_association_by_nearest_time():
    gt = straight_line(n=11)
    # estimate 4 ms late, one extra sample far from any ground truth, one duplicate match
    t = np.concatenate([gt.t + 0.004, [5.0], [0.996]])
    order = np.argsort(t, kind="stable")
    p = np.concatenate([gt.position, [[9.0, 9.0, 9.0]], [gt.position[10]]])[order]
    q = np.concatenate([gt.quat, [gt.quat[0]], [gt.quat[10]]])[order]
    est = Trajectory(t[order], p, q)
    i_ref, i_est = associate(gt, est, max_dt=0.01)
    assert list(i_ref) == list(range(11))  # each reference pose once, the 5.0 s sample unmatched
    assert np.allclose(np.abs(est.t[i_est] - gt.t[i_ref]), 0.004)
    assert est.t[i_est[-1]] == pytest.approx(0.996)  # first come, first served for gt t = 1.0
    assert len(associate(gt, est, max_dt=0.001)[0]) == 0
    assert ate(gt, est).position.max < 1e-9


def test_evaluate_from_tum_files(tmp_path):
    gt = random_walk(4)
    rng = np.random.default_rng(5)
    noise = rng.normal(0.0, 0.004, gt.position.shape)
    est = Trajectory(gt.t, gt.position + noise, gt.quat)
    write_tum(tmp_path / "gt.tum", gt.t, gt.position, gt.quat)
    write_tum(tmp_path / "est.tum", est.t, est.position, est.quat)
    out = evaluate(Trajectory.from_tum(tmp_path / "gt.tum"), Trajectory.from_tum(tmp_path / "est.tum"))
    expected = np.sqrt(np.mean(np.sum(noise**2, axis=1)))
    assert out["ate_rmse_cm"] == pytest.approx(expected * 100, rel=1e-5)
    assert out["alignment"] == "none" and out["pairs"] == len(gt)
    assert out["ate_rmse_deg"] < 1e-5
    late = evaluate(gt, est, t_min=10.0)
    assert late["pairs"] == int(np.sum(gt.t >= 10.0))


def test_bad_inputs_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        Trajectory(np.zeros(3), np.zeros((2, 3)), np.tile([0, 0, 0, 1.0], (3, 1)))
    with pytest.raises(ValueError, match="non-decreasing"):
        Trajectory(np.array([1.0, 0.0]), np.zeros((2, 3)), np.tile([0, 0, 0, 1.0], (2, 1)))
    with pytest.raises(ValueError, match="delta_m"):
        rpe_per_metre(straight_line(), straight_line(), 0.0)
