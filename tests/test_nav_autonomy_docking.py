"""The docking / undocking sequence as a pure step, driven with synthetic inputs."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from intball_nav.autonomy.docking import (
    DockingInputs,
    DockingParams,
    DockingState,
    dock_relative,
    docking_step,
    segment_clear,
    staged_points,
    start_docking,
    start_undocking,
)
from intball_nav.autonomy.params import load_autonomy_params
from intball_nav.dynamics import RigidBodyState
from intball_nav.frames import Pose, quat_angle, quat_from_rotvec, rotmat_from_quat

P: DockingParams = load_autonomy_params().docking
DOCK = P.dock


def _at(distance: float, lateral=(0.0, 0.0), velocity=(0.0, 0.0, 0.0), quat=None) -> RigidBodyState:
    """Robot at ``distance`` from the dock face, lateral offset along dock x, y (m)."""
    R = rotmat_from_quat(DOCK.pose.quat)
    pos = DOCK.pose.position + R @ np.array([lateral[0], lateral[1], distance])
    return RigidBodyState(
        position=pos, quat=P.docked_quat if quat is None else quat, velocity=np.array(velocity)
    )


def _inp(t, est, **kw) -> DockingInputs:
    return DockingInputs(t, est, **kw)


def test_docked_geometry():
    """Docked = touching the dock face centre (0.100 m), body -x toward the dock."""
    assert np.allclose(P.docked_pose.position, [1.1, 0.0, 0.63])
    R = rotmat_from_quat(P.docked_quat)
    assert np.allclose(R[:, 0], DOCK.normal)  # body +x away from the dock: nav cameras (-x) face it
    assert np.allclose(DOCK.approach_point(P.contact_target), [1.1, 0.0, 0.635])
    assert P.contact_target < P.radius  # the commanded point is 5 mm through the face: a preload


def test_segment_clear():
    lo, hi = np.zeros(3), np.ones(3)
    assert segment_clear([-1, -1, -1], [-1, 2, -1], lo, hi, 0.1)
    assert not segment_clear([-1, 0.5, 0.5], [2, 0.5, 0.5], lo, hi, 0.0)
    assert not segment_clear([-0.05, 0.5, 0.5], [-0.05, 0.6, 0.5], lo, hi, 0.1)  # inside the margin
    assert segment_clear([-0.2, 0.5, 0.5], [-0.2, 0.6, 0.5], lo, hi, 0.1)


def test_staged_points_go_below_the_dock_when_the_straight_path_is_blocked():
    standoff = DOCK.approach_point(0.30)
    (only,) = staged_points(np.array([3.0, 0.5, -0.5]), P)  # from below and far: straight
    assert np.allclose(only, standoff)
    start = np.array([0.45, 0.0, 0.85])  # beside the dock, above its face
    via, last = staged_points(start, P)
    assert np.allclose(last, standoff)
    assert np.allclose(via, [0.45, 0.0, standoff[2]])  # straight down to the standoff plane
    box = DOCK.box
    m = P.radius + P.path_clearance
    assert segment_clear(start, via, box.min, box.max, m) and segment_clear(via, last, box.min, box.max, m)


def test_start_docking_flies_to_the_standoff_in_the_docked_attitude():
    s, cmd = start_docking(_inp(0.0, RigidBodyState(position=np.array([3.0, 0.2, 0.0]))), P)
    assert s.phase == "standoff" and cmd.flight_mode.name == "nominal"
    assert np.allclose(cmd.goal.position, DOCK.approach_point(0.30))
    assert quat_angle(cmd.goal.quat, P.docked_quat) < 1e-9
    assert math.isfinite(s.deadline) and s.deadline > 20.0
    s, cmd = start_docking(_inp(0.0, RigidBodyState(position=np.array([0.45, 0.0, 0.85]))), P)
    assert s.phase == "via" and cmd.goal.position[2] == pytest.approx(0.43)


def _to_settle() -> DockingState:
    s, _ = start_docking(_inp(0.0, _at(1.0)), P)
    s, cmd = docking_step(s, _inp(20.0, _at(0.30), arrived=True), P)
    assert s.phase == "align" and cmd.flight_mode.name == "precision"
    s, cmd = docking_step(s, _inp(30.0, _at(0.30), arrived=True), P)
    assert s.phase == "settle" and cmd.goal is None
    return s


def test_full_docking_with_the_contact_sensor():
    s = _to_settle()
    s, cmd = docking_step(s, _inp(31.0, _at(0.30)), P)
    assert s.phase == "settle" and cmd.goal is None  # still settling
    s, cmd = docking_step(s, _inp(32.0, _at(0.30)), P)
    assert s.phase == "final" and s.attempt == 1 and s.correction is None
    assert np.allclose(cmd.goal.position, DOCK.approach_point(0.095)) and cmd.flight_mode.name == "precision"
    assert "nav estimate only" in cmd.message
    s, cmd = docking_step(s, _inp(40.0, _at(0.15, velocity=(0, 0, 0.02))), P)
    assert s.phase == "final" and not cmd.fans_off
    s, cmd = docking_step(s, _inp(45.0, _at(0.1002, lateral=(0.002, 0.0)), dock_contact=True), P)
    assert s.phase == "docked" and cmd.done and cmd.fans_off and cmd.latched and s.latched
    assert s.contact[0] == pytest.approx(0.002) and "contact sensor" in cmd.message
    s2, cmd = docking_step(s, _inp(60.0, _at(0.1)), P)
    assert s2 == s and cmd.fans_off and cmd.latched and cmd.done


def test_contact_by_gap_and_stall_without_a_sensor():
    s = _to_settle()
    s, _ = docking_step(s, _inp(32.0, _at(0.30)), P)
    touching = _at(0.1015, velocity=(0.0, 0.0, 0.001))
    s, cmd = docking_step(s, _inp(40.0, touching), P)
    assert s.phase == "final" and s.stall_since == 40.0
    s, cmd = docking_step(s, _inp(40.5, touching), P)
    assert s.phase == "final"
    moving = _at(0.1015, velocity=(0.0, 0.0, 0.01))  # still moving: the stall timer restarts
    s, _ = docking_step(s, _inp(40.6, moving), P)
    assert s.stall_since is None
    s, _ = docking_step(s, _inp(41.0, touching), P)
    s, cmd = docking_step(s, _inp(42.0, touching), P)
    assert s.phase == "docked" and "stall" in cmd.message
    far = _at(0.11, velocity=(0.0, 0.0, 0.0))  # 1 cm short of the face: not touching
    s = _to_settle()
    s, _ = docking_step(s, _inp(32.0, _at(0.30)), P)
    for k in range(5):
        s, _ = docking_step(s, _inp(40.0 + k, far), P)
    assert s.phase == "final"


def test_contact_outside_the_capture_tolerance_retries_then_fails():
    s = _to_settle()
    t = 32.0
    for attempt in range(1, P.max_attempts + 1):
        s, cmd = docking_step(s, _inp(t, _at(0.30)), P)
        assert s.phase == "final" and s.attempt == attempt
        s, cmd = docking_step(s, _inp(t + 10, _at(0.1, lateral=(0.02, 0.0)), dock_contact=True), P)
        assert s.phase == "retreat" and "outside the capture tolerance: lateral 20.0 mm" in cmd.message
        assert np.allclose(cmd.goal.position, DOCK.approach_point(0.30))
        s, cmd = docking_step(s, _inp(t + 20, _at(0.30), arrived=True), P)
        t += 30
        if attempt < P.max_attempts:
            assert s.phase == "settle"
            s, _ = docking_step(s, _inp(t - 1, _at(0.30)), P)
    assert s.phase == "failed" and cmd.failed and f"after {P.max_attempts} attempts" in cmd.message


def test_attitude_outside_the_capture_tolerance_is_not_captured():
    s = _to_settle()
    s, _ = docking_step(s, _inp(32.0, _at(0.30)), P)
    tilted = quat_from_rotvec(np.array([0.0, 0.0, math.radians(8.0)]))
    from intball_nav.frames import quat_multiply  # noqa: PLC0415

    est = _at(0.1, quat=quat_multiply(P.docked_quat, tilted))
    s, cmd = docking_step(s, _inp(40.0, est, dock_contact=True), P)
    assert s.phase == "retreat" and "attitude 8.00 deg" in cmd.message


def test_no_contact_before_the_deadline_retreats():
    s = _to_settle()
    s, _ = docking_step(s, _inp(32.0, _at(0.30)), P)
    s, cmd = docking_step(s, _inp(s.deadline + 0.1, _at(0.2)), P)
    assert s.phase == "retreat" and "no contact before the final-leg deadline" in cmd.message


def test_a_leg_not_reached_in_time_fails():
    s, _ = start_docking(_inp(0.0, _at(1.0)), P)
    s, cmd = docking_step(s, _inp(s.deadline + 0.1, _at(0.9)), P)
    assert s.phase == "failed" and cmd.failed and "standoff leg not reached in time" in cmd.message


def test_dock_marker_pose_corrects_the_final_goal():
    """Nav estimate biased by 2 cm: the marker measures the true pose, the final goal moves by the bias."""
    bias = np.array([0.02, -0.01, 0.0])
    truth = _at(0.30, lateral=(0.003, 0.0))
    est = replace(truth, position=truth.position + bias)
    T_dock_base = DOCK.pose.inverse().compose(Pose(truth.position, truth.quat))
    s = _to_settle()
    s, _ = docking_step(s, _inp(31.0, est, T_dock_base=T_dock_base), P)
    s, cmd = docking_step(s, _inp(32.0, est, T_dock_base=T_dock_base), P)
    assert s.phase == "final" and s.correction is not None
    assert np.allclose(cmd.goal.position, DOCK.approach_point(0.095) + bias, atol=1e-9)
    assert "dock-marker correction 22.4 mm" in cmd.message
    # The gap and lateral offset use the corrected estimate when the marker is not in view:
    rel = dock_relative(est, s.correction, P)
    assert np.allclose(rel.position, [0.003, 0.0, 0.30], atol=1e-9)


def test_undocking_releases_holds_then_backs_off():
    docked = _at(0.1)
    s, cmd = start_undocking(_inp(100.0, docked), P)
    assert s.phase == "release" and not cmd.latched and not cmd.fans_off
    assert np.allclose(cmd.goal.position, docked.position)  # hold here with the fans on
    s, cmd = docking_step(s, _inp(100.5, docked), P)
    assert s.phase == "release" and cmd.goal is None
    s, cmd = docking_step(s, _inp(101.0, docked), P)
    assert s.phase == "backoff" and np.allclose(cmd.goal.position, DOCK.approach_point(0.30))
    s, cmd = docking_step(s, _inp(115.0, _at(0.3), arrived=True), P)
    assert s.phase == "undocked" and cmd.done and not cmd.latched


def test_params_validation():
    with pytest.raises(ValueError, match="contact target"):
        replace(P, radius=0.05)
    with pytest.raises(ValueError, match="undock_standoff"):
        replace(P, undock_standoff=0.05)
    with pytest.raises(ValueError, match="max_attempts"):
        replace(P, max_attempts=0)


def test_with_a_latch_sensor_docking_waits_for_the_magnets():
    s = _to_settle()
    s, _ = docking_step(s, _inp(32.0, _at(0.30)), P)
    touch = _at(0.1, lateral=(0.001, 0.0))
    s, cmd = docking_step(s, _inp(40.0, touch, dock_contact=True, latch_sensor=False), P)
    assert s.phase == "latching" and cmd.latched and cmd.fans_off and not cmd.done
    s, cmd = docking_step(s, _inp(40.2, touch, latch_sensor=False), P)
    assert s.phase == "latching"
    s, cmd = docking_step(s, _inp(40.3, touch, latch_sensor=True), P)
    assert s.phase == "docked" and cmd.done and "latched" in cmd.message


def test_magnets_that_do_not_confirm_send_the_robot_back():
    s = _to_settle()
    s, _ = docking_step(s, _inp(32.0, _at(0.30)), P)
    touch = _at(0.1)
    s, _ = docking_step(s, _inp(40.0, touch, dock_contact=True, latch_sensor=False), P)
    s, cmd = docking_step(s, _inp(40.0 + P.latch_confirm_s, touch, latch_sensor=False), P)
    assert s.phase == "retreat" and not cmd.latched and not cmd.fans_off
    assert "did not confirm the latch" in cmd.message
