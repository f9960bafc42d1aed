"""Allocation: thrusts always within limits, exact when feasible, torque kept first."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from intball_nav.allocation import allocate
from intball_nav.robot import load_robot_params

PARAMS = load_robot_params()
B = PARAMS.allocation_matrix

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
any_wrench = st.lists(finite, min_size=6, max_size=6).map(np.array)
scaled_wrench = st.tuples(
    st.lists(st.floats(-1.0, 1.0), min_size=6, max_size=6).map(np.array),
    st.sampled_from([1e-6, 0.1, 0.5, 1.0, 3.0, 1e3, 1e12]),
).map(lambda a: a[0] * a[1] * np.array([0.18, 0.10, 0.12, 3e-3, 4.5e-3, 8.2e-3]))


@settings(max_examples=400)
@given(w=st.one_of(any_wrench, scaled_wrench))
def test_thrust_always_within_fan_limits(w):
    r = allocate(w, PARAMS)
    assert r.thrust.shape == (8,)
    assert np.all(r.thrust >= PARAMS.fan_min) and np.all(r.thrust <= PARAMS.fan_max)
    assert np.allclose(r.achieved, B @ r.thrust)
    assert 0.0 <= r.scale <= 1.0 and 0.0 <= r.torque_scale <= 1.0


def _feasible(w: np.ndarray) -> bool:
    res = linprog(np.zeros(8), A_eq=B, b_eq=w, bounds=[(PARAMS.fan_min, PARAMS.fan_max)] * 8)
    return res.status == 0


@settings(max_examples=200, deadline=None)
@given(w=scaled_wrench)
def test_exact_iff_feasible(w):
    """The closed-form feasibility test agrees with a linear program; feasible => exact."""
    r = allocate(w, PARAMS)
    if _feasible(w):
        assert not r.saturated or np.allclose(r.achieved, w, atol=1e-9)
        assert np.allclose(r.achieved, w, atol=1e-9)
    else:
        assert r.saturated


@settings(max_examples=200, deadline=None)
@given(w=scaled_wrench)
def test_degradation_keeps_torque_then_scales_force(w):
    r = allocate(w, PARAMS)
    force, torque = w[:3], w[3:]
    assert np.allclose(r.achieved[3:], r.torque_scale * torque, atol=1e-9)
    assert np.allclose(r.achieved[:3], r.scale * force, atol=1e-9)
    if r.torque_scale < 1.0:  # torque alone infeasible: the largest feasible torque scale...
        assert not _feasible(np.concatenate([np.zeros(3), r.torque_scale * 1.01 * torque]))
    elif r.saturated:  # ...otherwise full torque and the largest feasible force scale
        assert _feasible(np.concatenate([r.scale * force, torque]))
        assert not _feasible(np.concatenate([min(1.0, r.scale * 1.01 + 1e-9) * force, torque]))


def test_zero_wrench_gives_minimum_thrust():
    r = allocate(np.zeros(6), PARAMS)
    assert np.allclose(r.thrust, PARAMS.fan_min) and not r.saturated


def test_pure_axis_maxima_are_reached():
    for axis, limit in enumerate([0.18100, 0.09955, 0.12217, 3.027e-3, 4.547e-3, 8.190e-3]):
        w = np.zeros(6)
        w[axis] = -limit
        r = allocate(w, PARAMS)
        assert not r.saturated and np.allclose(r.achieved, w, atol=1e-9)
        w[axis] *= 1.1
        assert allocate(w, PARAMS).saturated


@pytest.mark.parametrize(
    "w",
    [[0, 0, 1.2e11, 0, 0, 0], [0, 0, 0, 0, -1e300, 0], [1e300, -1e300, 1e300, 1e-3, 0, 0]],
)
def test_huge_wrenches_saturate_without_overflow(w):
    w = np.array(w, dtype=float)
    with np.errstate(all="raise"):
        r = allocate(w, PARAMS)
    assert r.saturated and np.all(np.isfinite(r.thrust))
    assert np.all(r.thrust >= 0.0) and np.all(r.thrust <= PARAMS.fan_max)
    if np.any(w[3:]) and np.abs(w[3:]).max() < 1.0:  # small torque with huge force: torque kept
        assert r.torque_scale == 1.0 and np.allclose(r.achieved[3:], w[3:])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_wrench_raises(bad):
    w = np.zeros(6)
    w[2] = bad
    with pytest.raises(ValueError, match="finite"):
        allocate(w, PARAMS)


def test_wrong_shape_raises():
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        allocate(np.zeros(3), PARAMS)
