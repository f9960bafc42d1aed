"""The named truth-plus-noise estimator (intball_nav.estimation.truth_noise)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from intball_nav.dynamics import RigidBodyState
from intball_nav.estimation.truth_noise import (
    MODE_TRUTH,
    MODE_TRUTH_NOISE,
    NOISE_DIM,
    TruthNoiseEstimator,
    TruthNoiseParams,
    truth_noise_estimate,
)
from intball_nav.frames import quat_angle, quat_conjugate, quat_from_rpy, quat_multiply, rotvec_from_quat

TRUTH = RigidBodyState(
    position=np.array([1.0, 0.2, -0.3]),
    quat=quat_from_rpy(0.1, -0.4, 2.0),
    velocity=np.array([0.05, 0.0, -0.02]),
    omega=np.array([0.01, 0.02, -0.03]),
)


def test_truth_mode_is_exact():
    est = TruthNoiseEstimator(seed=0, mode=MODE_TRUTH)
    e = est.update(TRUTH)
    for name in ("position", "velocity", "omega"):
        np.testing.assert_array_equal(getattr(e, name), getattr(TRUTH, name))
    assert quat_angle(e.quat, TRUTH.quat) < 1e-12


def test_pure_function_of_its_draws():
    params = TruthNoiseParams()
    noise = np.random.default_rng(3).standard_normal(NOISE_DIM)
    a = truth_noise_estimate(TRUTH, params, noise)
    b = truth_noise_estimate(TRUTH, params, noise.copy())
    np.testing.assert_array_equal(a.position, b.position)
    np.testing.assert_array_equal(a.quat, b.quat)
    np.testing.assert_allclose(a.position - TRUTH.position, params.position_sigma * noise[:3])
    # Attitude noise is a body-frame rotation of attitude_sigma * noise[3:6].
    delta = rotvec_from_quat(quat_multiply(quat_conjugate(TRUTH.quat), a.quat))
    np.testing.assert_allclose(delta, params.attitude_sigma * noise[3:6], atol=1e-12)
    assert abs(np.linalg.norm(a.quat) - 1.0) < 1e-12


def test_noise_statistics_and_seeding():
    params = TruthNoiseParams()
    est = TruthNoiseEstimator(seed=7)
    assert est.mode == MODE_TRUTH_NOISE
    samples = [est.update(TRUTH) for _ in range(4000)]
    dp = np.array([s.position for s in samples]) - TRUTH.position
    assert np.std(dp) == pytest.approx(params.position_sigma, rel=0.05)
    angles = np.array([quat_angle(s.quat, TRUTH.quat) for s in samples])
    # |3-D Gaussian| of per-axis sigma: RMS = sqrt(3) sigma.
    assert math.sqrt(np.mean(angles**2)) == pytest.approx(math.sqrt(3) * params.attitude_sigma, rel=0.05)
    again = TruthNoiseEstimator(seed=7)
    np.testing.assert_array_equal(again.update(TRUTH).position, samples[0].position)
    assert not np.array_equal(TruthNoiseEstimator(seed=8).update(TRUTH).position, samples[0].position)


def test_validation():
    with pytest.raises(ValueError, match="position_sigma"):
        TruthNoiseParams(position_sigma=-1.0)
    with pytest.raises(ValueError, match="unknown"):
        TruthNoiseParams.for_mode("vio")
    with pytest.raises(ValueError, match="no noise"):
        TruthNoiseEstimator(seed=0, mode=MODE_TRUTH, params=TruthNoiseParams())
