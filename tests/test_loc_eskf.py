"""ESKF: propagation physics, convergence and bias estimation, NEES consistency, gating,
delayed / out-of-order measurements, health transitions and determinism.

The truth is a smooth 6-DoF trajectory (analytic position, analytic body rate integrated at
1 kHz); the IMU averages the truth over each 10 ms sample (as the simulator's does) and adds
white noise, a turn-on bias and a bias random walk; visual poses are the truth plus Gaussian
noise drawn from the covariance they report, delivered with a lag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.stats import chi2

from intball_nav.estimation.eskf import Eskf, EskfParams, NavState, PoseObservation, propagate
from intball_nav.estimation.health import HealthLevel
from intball_nav.frames import (
    Pose,
    quat_angle,
    quat_conjugate,
    quat_from_rotvec,
    quat_from_rpy,
    quat_multiply,
    quat_normalize,
    rotmat_from_quat,
    rotvec_from_quat,
)

DT = 0.01
SUB = 5  # truth substeps per IMU sample
GYRO_ND, ACCEL_ND = 2.4e-4, 1.7e-3  # noise densities, as intball_nav/data/imu.yaml
GYRO_RW, ACCEL_RW = 2.0e-5, 1.0e-4
POS_SIGMA, ATT_SIGMA = 0.003, math.radians(0.2)


def truth_motion(t: float, omega_scale: float = 1.0):
    """(p, v, a) kibo frame and omega body frame of the reference trajectory at t (s)."""
    p = np.array([2.0 + 0.3 * np.sin(0.3 * t), 0.2 * np.sin(0.25 * t + 1.0), 0.1 * np.cos(0.2 * t)])
    v = np.array([0.09 * np.cos(0.3 * t), 0.05 * np.cos(0.25 * t + 1.0), -0.02 * np.sin(0.2 * t)])
    a = np.array([-0.027 * np.sin(0.3 * t), -0.0125 * np.sin(0.25 * t + 1.0), -0.004 * np.cos(0.2 * t)])
    w = omega_scale * np.array([0.1 * np.sin(0.5 * t), 0.08 * np.cos(0.3 * t), 0.12 * np.sin(0.2 * t + 1.0)])
    return p, v, a, w


@dataclass
class Scenario:
    t: np.ndarray  # (N,) IMU sample times
    gyro: np.ndarray  # (N,3)
    accel: np.ndarray  # (N,3)
    quat: np.ndarray  # (N,4) true q_kibo_body at the sample times
    bg: np.ndarray  # (N,3) true gyro bias
    ba: np.ndarray  # (N,3) true accel bias

    def truth(self, k: int):
        p, v, _, _ = truth_motion(self.t[k])
        return p, v, self.quat[k]


def make_scenario(
    seed: int, duration: float, noise: bool = True, q0: np.ndarray | None = None, omega_scale: float = 1.0
) -> Scenario:
    rng = np.random.default_rng(seed)
    n = round(duration / DT)
    q = quat_from_rpy(0.1, 0.2, 0.3) if q0 is None else q0
    h = DT / SUB
    bg = rng.normal(0.0, 1.7e-3, 3) if noise else np.zeros(3)
    ba = rng.normal(0.0, 2.0e-2, 3) if noise else np.zeros(3)
    ts, gs, as_, qs, bgs, bas = [], [], [], [], [], []
    for k in range(n):
        wsum, fsum = np.zeros(3), np.zeros(3)
        for j in range(SUB):
            tm = k * DT + (j + 0.5) * h
            _, _, a, w = truth_motion(tm, omega_scale)
            q_mid = quat_multiply(q, quat_from_rotvec(0.5 * h * w))
            wsum += w
            fsum += rotmat_from_quat(q_mid).T @ a
            q = quat_normalize(quat_multiply(q, quat_from_rotvec(h * w)))
        if noise:
            bg = bg + GYRO_RW * math.sqrt(DT) * rng.standard_normal(3)
            ba = ba + ACCEL_RW * math.sqrt(DT) * rng.standard_normal(3)
        g = wsum / SUB + bg + (GYRO_ND / math.sqrt(DT) * rng.standard_normal(3) if noise else 0.0)
        f = fsum / SUB + ba + (ACCEL_ND / math.sqrt(DT) * rng.standard_normal(3) if noise else 0.0)
        ts.append((k + 1) * DT)
        gs.append(g)
        as_.append(f)
        qs.append(q)
        bgs.append(bg)
        bas.append(ba)
    return Scenario(np.array(ts), np.array(gs), np.array(as_), np.array(qs), np.array(bgs), np.array(bas))


def visual_pose(sc: Scenario, k: int, rng: np.random.Generator, n_markers: int = 4) -> PoseObservation:
    p, _, q = sc.truth(k)
    cov = np.diag([POS_SIGMA**2] * 3 + [ATT_SIGMA**2] * 3)
    noise = rng.multivariate_normal(np.zeros(6), cov)
    return PoseObservation(
        float(sc.t[k]), Pose(p + noise[:3], quat_multiply(q, quat_from_rotvec(noise[3:]))), cov, n_markers
    )


def error_state(nav: NavState, sc: Scenario, k: int) -> np.ndarray:
    """15-dim error, true minus estimate, in the filter's error-state convention."""
    p, v, q = sc.truth(k)
    return np.concatenate(
        [
            p - nav.position,
            v - nav.velocity,
            rotvec_from_quat(quat_multiply(quat_conjugate(nav.quat), q)),
            sc.bg[k] - nav.gyro_bias,
            sc.ba[k] - nav.accel_bias,
        ]
    )


def run_filter(sc, seed, *, cam_every=10, lag_samples=8, outliers=(), gap=None, params=None, record=None):
    """Feed the scenario in real-time order: pose of sample k arrives after IMU sample k + lag."""
    rng = np.random.default_rng(seed)
    f = Eskf(params if params is not None else EskfParams())
    pending: list[tuple[int, PoseObservation]] = []
    results = []
    for k in range(len(sc.t)):
        f.add_imu(sc.t[k], sc.gyro[k], sc.accel[k])
        if k % cam_every == 0 and not (gap and gap[0] <= sc.t[k] < gap[1]):
            obs = visual_pose(sc, k, rng)
            if k in outliers:
                obs = PoseObservation(
                    obs.stamp,
                    Pose(obs.T_kibo_base.position + [0.3, 0, 0], obs.T_kibo_base.quat),
                    obs.covariance,
                    obs.n_markers,
                )
            pending.append((k + lag_samples, obs))
        while pending and pending[0][0] <= k:
            results.append(f.add_pose(pending.pop(0)[1]))
        if record is not None:
            record(f, k)
    return f, results


def test_propagation_is_exact_for_constant_inputs():
    """Noiseless constant specific force and body rate: p = p0 + v0 t + a t^2/2 when the body does
    not rotate, and q = q0 Exp(w t) for any constant rate (microgravity: no gravity term)."""
    params = EskfParams()
    q0 = quat_from_rpy(0.3, -0.2, 1.0)
    nav = NavState(
        0.0,
        np.zeros(3),
        np.array([0.1, 0.0, 0.0]),
        q0,
        np.zeros(3),
        np.zeros(3),
        np.zeros(3),
        np.eye(15) * 1e-4,
    )
    f_body = np.array([0.01, -0.02, 0.005])
    out = propagate(nav, np.zeros(3), f_body, 2.0, params)
    a_kibo = rotmat_from_quat(q0) @ f_body
    np.testing.assert_allclose(out.position, np.array([0.2, 0, 0]) + 0.5 * a_kibo * 4.0, atol=1e-12)
    np.testing.assert_allclose(out.velocity, nav.velocity + a_kibo * 2.0, atol=1e-12)
    w = np.array([0.2, -0.1, 0.3])
    out = propagate(nav, w, np.zeros(3), 3.0, params)
    assert quat_angle(out.quat, quat_multiply(q0, quat_from_rotvec(3.0 * w))) < 1e-9
    np.testing.assert_allclose(out.covariance, out.covariance.T, atol=0)
    assert np.all(np.linalg.eigvalsh(out.covariance) > 0)
    # biases are subtracted
    biased = NavState(0.0, np.zeros(3), np.zeros(3), q0, np.zeros(3), w, np.zeros(3), np.eye(15) * 1e-4)
    assert quat_angle(propagate(biased, w, np.zeros(3), 1.0, params).quat, q0) < 1e-12


def test_converges_and_estimates_biases():
    sc = make_scenario(seed=1, duration=40.0)
    f, results = run_filter(sc, seed=2)
    assert results[0].status == "initialised"
    assert all(r.status == "accepted" for r in results[1:])
    nav, k = f.state, len(sc.t) - 1
    p, v, q = sc.truth(k)
    assert np.linalg.norm(nav.position - p) < 0.005
    assert np.linalg.norm(nav.velocity - v) < 0.006
    assert math.degrees(quat_angle(nav.quat, q)) < 0.15
    # biases: the initial error is the full turn-on bias (1.7e-3 rad/s, 2e-2 m/s^2 per axis)
    assert np.linalg.norm(sc.bg[0]) > 1e-3 and np.linalg.norm(sc.ba[0]) > 1e-2
    assert np.linalg.norm(nav.gyro_bias - sc.bg[k]) < 3e-4
    assert np.linalg.norm(nav.accel_bias - sc.ba[k]) < 3e-3
    # and every component is within 4 sigma of the filter's own covariance
    z = error_state(nav, sc, k) / np.sqrt(np.diag(nav.covariance))
    assert np.all(np.abs(z) < 4.0), z
    assert f.health.level == HealthLevel.OK
    # the estimate is available at the IMU rate (100 Hz >= 50 Hz output)
    assert nav.t == pytest.approx(sc.t[k])


@pytest.mark.slow
def test_nees_is_consistent_monte_carlo():
    """Average NEES (15-dim, after convergence, sampled each second) within chi-square bounds."""
    runs, nees = 10, []
    for r in range(runs):
        sc = make_scenario(seed=100 + r, duration=20.0)

        def record(f, k, sc=sc):
            if k >= 1000 and k % 100 == 50:  # t >= 10 s, between camera frames
                e = error_state(f.state, sc, k)
                nees.append(e @ np.linalg.solve(f.state.covariance, e))

        run_filter(sc, seed=200 + r, record=record)
    n = len(nees)
    mean = float(np.mean(nees))
    # samples within a run are correlated, so bound with the number of runs (conservative)
    lo, hi = chi2.ppf(0.005, 15 * runs) / runs, chi2.ppf(0.995, 15 * runs) / runs
    assert lo < mean < hi, (mean, lo, hi, n)


def test_gating_rejects_gross_outliers():
    sc = make_scenario(seed=3, duration=20.0)
    outliers = {500, 800, 1200, 1210}
    f, results = run_filter(sc, seed=4, outliers=outliers)
    # results are in arrival order, one per camera frame (every 10th IMU sample)
    by_sample = {10 * i: r for i, r in enumerate(results)}
    assert all(by_sample[k].status == "rejected" for k in outliers)
    assert all(by_sample[k].mahalanobis2 > 1000.0 for k in outliers)
    # good poses: innovations are chi-square(6) (mean 6); at p_gate = 0.999 a rare false rejection
    good = [r for k, r in by_sample.items() if k not in outliers and k > 0]
    assert sum(r.status == "rejected" for r in good) <= 2
    assert 5.0 < np.mean([r.mahalanobis2 for r in good]) < 7.0
    assert f.n_rejected == sum(r.status == "rejected" for r in results)
    k = len(sc.t) - 1
    assert np.linalg.norm(f.state.position - sc.truth(k)[0]) < 0.005
    assert f.health.level == HealthLevel.OK


def test_gate_threshold_matches_chi_square():
    assert EskfParams(gate_probability=0.99).gate_threshold == pytest.approx(16.8119, rel=1e-4)


def test_out_of_order_and_late_measurements_give_the_sorted_result():
    """Arrival order does not matter: poses delivered late and shuffled (within the buffer) give
    exactly the estimate of processing every input in timestamp order."""
    sc = make_scenario(seed=5, duration=8.0)
    rng = np.random.default_rng(6)
    poses = [visual_pose(sc, k, rng) for k in range(0, len(sc.t), 7)]
    # reference: everything in timestamp order (IMU first at equal stamps)
    ref = Eskf()
    pi = 0
    for k in range(len(sc.t)):
        ref.add_imu(sc.t[k], sc.gyro[k], sc.accel[k])
        while pi < len(poses) and poses[pi].stamp <= sc.t[k]:
            ref.add_pose(poses[pi])
            pi += 1
    # late and shuffled: each pose arrives 3-40 samples after its stamp, in random order
    arrival = {}
    for obs in poses[1:]:
        arrival.setdefault(round(obs.stamp / DT) + int(rng.integers(3, 40)), []).append(obs)
    f = Eskf()
    f.add_pose(poses[0])  # first pose before any IMU: initialises the filter
    for k in range(len(sc.t)):
        f.add_imu(sc.t[k], sc.gyro[k], sc.accel[k])
        for obs in rng.permutation(np.array(arrival.get(k, []), dtype=object)):
            f.add_pose(obs)
    for k in range(len(sc.t), len(sc.t) + 50):  # flush the ones due after the end
        for obs in arrival.get(k, []):
            f.add_pose(obs)
    assert f.n_replays > 0
    a, b = f.state, ref.state
    np.testing.assert_allclose(a.position, b.position, atol=1e-12)
    np.testing.assert_allclose(a.quat, b.quat, atol=1e-12)
    np.testing.assert_allclose(a.covariance, b.covariance, atol=1e-15)
    assert f.n_accepted == ref.n_accepted == len(poses)


def test_late_pose_improves_estimate_and_too_old_is_counted():
    sc = make_scenario(seed=7, duration=6.0)
    rng = np.random.default_rng(8)
    f = Eskf(EskfParams(buffer_duration=0.5))
    f.add_pose(visual_pose(sc, 0, rng))
    for k in range(len(sc.t)):
        f.add_imu(sc.t[k], sc.gyro[k], sc.accel[k])
    std_before = np.sqrt(np.trace(f.state.covariance[:3, :3]))
    r = f.add_pose(visual_pose(sc, len(sc.t) - 20, rng))  # 0.2 s late: inside the buffer
    assert r.status == "accepted"
    assert np.sqrt(np.trace(f.state.covariance[:3, :3])) < 0.5 * std_before
    assert f.state.t == pytest.approx(sc.t[-1])  # still the newest time: re-propagated
    r = f.add_pose(visual_pose(sc, len(sc.t) - 100, rng))  # 1 s late: older than the buffer
    assert r.status == "too_old" and f.n_too_old == 1


def test_health_ok_degraded_lost_and_back():
    sc = make_scenario(seed=9, duration=30.0)
    levels: dict[float, HealthLevel] = {}
    gap = (10.0, 18.0)

    def record(f, k):
        levels[round(sc.t[k], 2)] = f.health.level

    run_filter(sc, seed=10, gap=gap, record=record)
    assert levels[9.5] == HealthLevel.OK
    assert levels[10.9] == HealthLevel.DEGRADED  # > 0.5 s without an update
    assert levels[14.5] == HealthLevel.LOST  # > 3 s without an update
    seq = [levels[t] for t in sorted(levels) if 9.0 <= t <= 25.0]
    # monotone: ok -> degraded -> lost -> (hysteresis) -> ok, never skipping back and forth
    changes = [seq[0]] + [b for a, b in zip(seq, seq[1:], strict=False) if b != a]
    assert changes[:3] == [HealthLevel.OK, HealthLevel.DEGRADED, HealthLevel.LOST]
    assert changes[-1] == HealthLevel.OK
    assert levels[25.0] == HealthLevel.OK


def test_lost_after_rejection_streak_then_reinitialises():
    sc = make_scenario(seed=11, duration=12.0)
    outliers = set(range(400, 560, 10))  # 16 rejected poses in a row
    levels = []
    f, results = run_filter(sc, seed=12, outliers=outliers, record=lambda f, k: levels.append(f.health.level))
    assert HealthLevel.LOST in levels and HealthLevel.DEGRADED in levels
    statuses = [r.status for r in results]
    assert "initialised" in statuses[1:]  # re-initialised on a pose after the lost state
    assert levels[-1] == HealthLevel.OK
    k = len(sc.t) - 1
    assert np.linalg.norm(f.state.position - sc.truth(k)[0]) < 0.01


def test_not_initialised_until_a_good_pose():
    sc = make_scenario(seed=13, duration=1.0, noise=False)
    f = Eskf(EskfParams(init_min_markers=2))
    f.add_imu(sc.t[0], sc.gyro[0], sc.accel[0])
    assert f.state is None and f.health.level == HealthLevel.LOST
    p, _, q = sc.truth(0)
    r = f.add_pose(PoseObservation(sc.t[0], Pose(p, q), np.eye(6) * 1e-6, n_markers=1))
    assert r.status == "not_initialised" and f.state is None
    r = f.add_pose(PoseObservation(sc.t[0], Pose(p, q), np.eye(6) * 1e-6, n_markers=3))
    assert r.status == "initialised"
    np.testing.assert_allclose(f.state.position, p)


def test_deterministic():
    sc = make_scenario(seed=14, duration=5.0)
    a, ra = run_filter(sc, seed=15)
    b, rb = run_filter(sc, seed=15)
    assert ra == rb
    np.testing.assert_array_equal(a.state.covariance, b.state.covariance)
    np.testing.assert_array_equal(a.state.position, b.state.position)


def test_predict_extrapolates_without_changing_the_filter():
    sc = make_scenario(seed=16, duration=3.0)
    f, _ = run_filter(sc, seed=17)
    before = f.state
    ahead = f.predict(before.t + 0.02)
    assert ahead.t == pytest.approx(before.t + 0.02)
    assert f.state is before
    assert np.trace(ahead.covariance) > np.trace(before.covariance)


def test_health_at_reports_lost_when_inputs_stop():
    sc = make_scenario(seed=18, duration=2.0)
    f, _ = run_filter(sc, seed=19)
    t = f.state.t
    assert f.health_at(t).level == HealthLevel.OK
    assert f.health_at(t + 1.0).level == HealthLevel.DEGRADED
    assert f.health_at(t + 5.0).level == HealthLevel.LOST
    assert f.health.level == HealthLevel.OK  # unchanged


def test_params_from_the_simulated_imu():
    imu = pytest.importorskip("intball_sim.imu")
    params = EskfParams.from_imu(imu.load_imu_params())
    assert params.gyro_noise_density == pytest.approx(GYRO_ND)
    assert params.accel_bias_walk == pytest.approx(ACCEL_RW)
    assert params.init_accel_bias_sigma == pytest.approx(1.5 * 2.0e-2)


def test_params_validated():
    with pytest.raises(ValueError, match="gate_probability"):
        EskfParams(gate_probability=1.5)
    with pytest.raises(ValueError, match="buffer_duration"):
        EskfParams(buffer_duration=0.0)
