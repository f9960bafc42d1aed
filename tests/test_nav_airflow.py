"""Ventilation airflow: seeded, smooth, divergence-free, a few cm/s."""

from __future__ import annotations

import numpy as np

from intball_nav.airflow import NO_AIRFLOW, AirflowParams, air_velocity


def _samples(params, n=2000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform([0.0, -1.0, -1.0], [9.6, 1.0, 1.0], (n, 3))
    t = rng.uniform(0.0, 3600.0, n)
    return np.array([air_velocity(ti, xi, params) for ti, xi in zip(t, x, strict=True)])


def test_same_seed_same_field_other_seed_differs():
    a, b, c = AirflowParams(seed=3), AirflowParams(seed=3), AirflowParams(seed=4)
    x = np.array([2.0, 0.3, -0.2])
    assert np.array_equal(air_velocity(12.5, x, a), air_velocity(12.5, x, b))
    assert not np.allclose(air_velocity(12.5, x, a), air_velocity(12.5, x, c))


def test_magnitude_is_a_few_cm_per_second():
    v = _samples(AirflowParams(seed=1))
    speed = np.linalg.norm(v, axis=1)
    assert 0.02 < np.sqrt(np.mean(speed**2)) < 0.04
    assert speed.max() < 0.12
    assert np.allclose(_samples(NO_AIRFLOW), 0.0)


def test_smooth_and_slow_in_time_and_space():
    p = AirflowParams(seed=2)
    x = np.array([4.0, 0.2, 0.1])
    v0 = air_velocity(100.0, x, p)
    assert np.linalg.norm(air_velocity(101.0, x, p) - v0) < 0.005  # < 5 mm/s change per second
    assert np.linalg.norm(air_velocity(100.0, x + [0.1, 0, 0], p) - v0) < 0.01  # per 10 cm


def test_divergence_free():
    p = AirflowParams(seed=5)
    h = 1e-4
    for x in np.random.default_rng(1).uniform(-1.0, 5.0, (20, 3)):
        div = sum(
            (air_velocity(7.0, x + h * e, p)[i] - air_velocity(7.0, x - h * e, p)[i]) / (2 * h)
            for i, e in enumerate(np.eye(3))
        )
        assert abs(div) < 1e-8


def test_vectorized_positions_and_mean():
    p = AirflowParams(seed=1, mean=(0.01, 0.0, 0.0))
    xs = np.array([[1.0, 0, 0], [2.0, 0.5, 0.5]])
    out = air_velocity(3.0, xs, p)
    assert out.shape == (2, 3)
    assert np.allclose(out[1], air_velocity(3.0, xs[1], p))
    assert np.allclose(
        air_velocity(0.0, xs[0], AirflowParams(speed_rms=0.0, mean=(0.01, 0, 0))), [0.01, 0, 0]
    )
