"""Guidance: flight-mode limits never exceeded, exact endpoints, synchronized profiles."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intball_nav.config import ConfigError
from intball_nav.flight_modes import FLIGHT_MODES_PATH, get_flight_mode, load_flight_modes
from intball_nav.frames import (
    Pose,
    quat_angle,
    quat_conjugate,
    quat_from_rotvec,
    quat_multiply,
    rotvec_from_quat,
)
from intball_nav.guidance import plan_segment

MODES = load_flight_modes()
vec3 = st.lists(st.floats(-5.0, 5.0), min_size=3, max_size=3).map(np.array)
rot3 = st.lists(st.floats(-3.1, 3.1), min_size=3, max_size=3).map(np.array)
TOL = 1e-9


def test_modes_loaded_in_si_units():
    assert set(MODES) == {"nominal", "precision", "quiet"}
    nominal = MODES["nominal"]
    assert nominal.v_max == pytest.approx(0.20)
    assert nominal.w_max == pytest.approx(np.radians(25.0))
    assert nominal.pos_tolerance == pytest.approx(0.03)
    assert nominal.att_tolerance == pytest.approx(np.radians(2.0))
    for mode in MODES.values():  # profiles stay within the fan authority with margin
        assert mode.a_max * 3.2 < 0.5 * 0.0772  # N, weakest-direction force authority
        assert mode.alpha_max * 0.0143 < 0.5 * 2.52e-3  # N m, weakest-axis torque authority
    assert MODES["precision"].pos_tolerance < nominal.pos_tolerance
    assert MODES["quiet"].a_max < nominal.a_max


def test_flight_mode_errors_name_line_and_range(tmp_path):
    text = FLIGHT_MODES_PATH.read_text()
    bad = tmp_path / "flight_modes.yaml"
    bad.write_text(text.replace("v_max: 0.20 ", "v_max: 2.0 ", 1))
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "v_max: 0.20" in s)
    with pytest.raises(
        ConfigError, match=rf"flight_modes.yaml:{line}: modes.nominal.v_max: 2 m/s is outside"
    ):
        load_flight_modes(bad)
    with pytest.raises(ValueError, match="unknown flight mode 'fast'"):
        get_flight_mode("fast")


def _check(traj, mode):
    ts = np.linspace(traj.t_start - 1.0, traj.t_end + 1.0, 4001)
    prev = None
    for t in ts:
        sp = traj.sample(t)
        assert np.linalg.norm(sp.velocity) <= mode.v_max * (1 + TOL) + TOL
        assert np.linalg.norm(sp.acceleration) <= mode.a_max * (1 + TOL) + TOL
        assert np.linalg.norm(sp.omega) <= mode.w_max * (1 + TOL) + TOL
        assert np.linalg.norm(sp.alpha) <= mode.alpha_max * (1 + TOL) + TOL
        assert abs(np.linalg.norm(sp.quat) - 1.0) < 1e-12
        if prev is not None:  # continuity of position and attitude
            dt = t - prev[0]
            assert np.linalg.norm(sp.position - prev[1].position) <= mode.v_max * dt * (1 + 1e-6) + 1e-12
            assert quat_angle(sp.quat, prev[1].quat) <= mode.w_max * dt * (1 + 1e-6) + 1e-9
        prev = (t, sp)


@settings(max_examples=25, deadline=None)
@given(p0=vec3, p1=vec3, r0=rot3, r1=rot3, name=st.sampled_from(sorted(MODES)))
def test_limits_never_exceeded_and_endpoints_exact(p0, p1, r0, r1, name):
    mode = MODES[name]
    start, goal = Pose(p0, quat_from_rotvec(r0)), Pose(p1, quat_from_rotvec(r1))
    traj = plan_segment(start, goal, mode, t_start=3.0)
    _check(traj, mode)
    s0, s1 = traj.sample(3.0), traj.sample(traj.t_end)
    if traj.duration > 0.0:  # (a zero-length plan is at its goal from the start)
        assert np.array_equal(s0.position, start.position) and np.array_equal(s0.quat, start.quat)
    assert np.array_equal(s1.position, goal.position) and np.array_equal(s1.quat, goal.quat)
    for sp in (s0, s1):
        assert not np.any(sp.velocity) and not np.any(sp.omega)
    # just before the end the profile has converged to the goal (continuity at t_end)
    near = traj.sample(traj.t_end - 1e-6)
    assert np.linalg.norm(near.position - goal.position) < 1e-6
    assert quat_angle(near.quat, goal.quat) < 1e-6


def test_feed_forward_is_the_derivative_of_the_reference():
    mode = MODES["nominal"]
    traj = plan_segment(
        Pose(np.zeros(3)), Pose(np.array([2.0, 1.0, -0.5]), quat_from_rotvec([0, 0, 2.0])), mode
    )
    h = 1e-4
    for t in np.linspace(0.5, traj.duration - 0.5, 37):
        a, b, c = traj.sample(t - h), traj.sample(t), traj.sample(t + h)
        assert np.allclose((c.position - a.position) / (2 * h), b.velocity, atol=1e-6)
        rv = rotvec_from_quat(quat_multiply(quat_conjugate(a.quat), c.quat))
        assert np.allclose(rv / (2 * h), b.omega, atol=1e-6)  # body rate
        assert np.allclose((c.velocity - a.velocity) / (2 * h), b.acceleration, atol=1e-3)


def test_both_motions_start_and_end_together():
    mode = MODES["nominal"]
    # long translation with a small rotation: the rotation is stretched to the same duration
    traj = plan_segment(Pose(np.zeros(3)), Pose(np.array([5.0, 0, 0]), quat_from_rotvec([0, 0, 0.3])), mode)
    assert traj.rotation.duration == traj.translation.duration == traj.duration
    assert traj.translation.v_peak == pytest.approx(mode.v_max)
    assert traj.rotation.v_peak < mode.w_max
    mid = traj.sample(0.5 * traj.duration)
    assert np.linalg.norm(mid.omega) > 0 and np.linalg.norm(mid.velocity) > 0


def test_zero_length_moves():
    mode = MODES["nominal"]
    pose = Pose(np.array([1.0, 2.0, 3.0]), quat_from_rotvec([0.1, 0.2, 0.3]))
    traj = plan_segment(pose, pose, mode, t_start=10.0)
    assert traj.duration == 0.0
    for t in (0.0, 10.0, 20.0):
        sp = traj.sample(t)
        assert np.array_equal(sp.position, pose.position) and np.array_equal(sp.quat, pose.quat)
        assert not np.any(sp.velocity) and not np.any(sp.omega)
    # rotation only, translation only
    rot = plan_segment(pose, Pose(pose.position, quat_from_rotvec([0.1, 0.2, 1.3])), mode)
    assert rot.translation.distance == 0.0 and rot.duration > 0.0
    _check(rot, mode)
    tr = plan_segment(pose, Pose(pose.position + 0.01, pose.quat), mode)
    assert tr.rotation.distance == 0.0 and tr.duration == pytest.approx(
        2 * np.sqrt(np.sqrt(3) * 0.01 / mode.a_max)
    )
    _check(tr, mode)
