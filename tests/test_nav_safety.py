"""Goal validation: keep-in volume shrunk by the radius, keep-out zones grown by it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from intball_nav.safety import Box, GoalRejected, check_goal, goal_pose, keep_in_from_module

CLEAR = Box(np.array([0.0, -1.05, -1.0]), np.array([9.6, 1.05, 1.0]), "module clear volume")
R = 0.10


def test_inside_is_accepted():
    for p in ([0.1, 0.0, 0.0], [9.5, 0.95, -0.9], [4.8, 0.0, 0.0]):
        check_goal(np.array(p), CLEAR, R)


@pytest.mark.parametrize(
    ("position", "reason"),
    [
        ([10.2, 0, 0], "x=10.20 m is beyond the keep-in limit 9.50 m"),
        ([0.05, 0, 0], "x=0.05 m is below the keep-in limit 0.10 m"),
        ([5, 1.0, 0], "y=1.00 m is beyond the keep-in limit 0.95 m"),
        ([5, 0, -0.95], "z=-0.95 m is below the keep-in limit -0.90 m"),
    ],
)
def test_keep_in_violation_names_axis_value_and_limit(position, reason):
    with pytest.raises(GoalRejected, match=reason):
        check_goal(np.array(position, dtype=float), CLEAR, R)


def test_keep_out_zone_grown_by_radius():
    zone = Box(np.array([3.0, -0.5, 0.5]), np.array([4.0, 0.5, 1.0]), "overhead stowage")
    check_goal(np.array([3.5, 0.0, 0.35]), CLEAR, R, [zone])  # 0.15 m below the zone
    with pytest.raises(GoalRejected, match="keep-out zone overhead stowage"):
        check_goal(np.array([3.5, 0.0, 0.45]), CLEAR, R, [zone])  # 0.05 m below: touches


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_rejected(bad):
    with pytest.raises(GoalRejected, match="not finite"):
        check_goal(np.array([1.0, bad, 0.0]), CLEAR, R)


def test_box_validation_and_module_adapter():
    with pytest.raises(ValueError, match="exceeds"):
        Box(np.array([1.0, 0, 0]), np.array([0.0, 1, 1]))
    module = SimpleNamespace(clear_min=np.array([0.0, -1.05, -1.0]), clear_max=np.array([9.6, 1.05, 1.0]))
    box = keep_in_from_module(module)
    assert np.array_equal(box.max, CLEAR.max)
    assert box.grown(-2.0).contains(box.grown(-2.0).min)  # shrinking never inverts the box


def test_goal_pose_from_raw_numbers():
    pose = goal_pose(np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.0, 2.0]))
    assert np.allclose(pose.quat, [0, 0, 0, 1])
    with pytest.raises(GoalRejected, match="goal position .* is not 3 finite numbers"):
        goal_pose(np.array([1.0, np.nan, 0.0]), np.array([0.0, 0.0, 0.0, 1.0]))
    with pytest.raises(GoalRejected, match="goal quaternion .* is not 4 finite"):
        goal_pose(np.zeros(3), np.array([0.0, np.inf, 0.0, 1.0]))
    with pytest.raises(GoalRejected, match="zero norm"):
        goal_pose(np.zeros(3), np.zeros(4))
