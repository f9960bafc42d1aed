"""navigate_to with a look-at point, in-process with scripted inputs (no simulator).

The test plays estimator and controller (``test_ros_nav_faults.Scripted``) and checks what the
navigation node asks the controller for: the goal command carries the look-at point (the control
loop recomputes the attitude from it every cycle: ``gnc.LookAtTarget``), the goal's orientation
is the look-at attitude at the target, the feedback reports the pointing error of the estimate,
and an invalid point is refused with its reason. The pointing itself while moving is checked in
closed loop in tests/test_nav_look_at_tracking.py.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from ros_graph_helpers import action_server_seen, ensure_domain_id

ensure_domain_id()
rclpy = pytest.importorskip("rclpy")

from action_msgs.msg import GoalStatus  # noqa: E402
from geometry_msgs.msg import Point  # noqa: E402
from intball_interfaces.action import NavigateTo  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from test_ros_nav_faults import HERE, scripted_nav  # noqa: E402

from intball_nav.camera_tasks import pointing_error  # noqa: E402
from intball_nav.dynamics import RigidBodyState  # noqa: E402
from intball_nav.frames import Pose  # noqa: E402
from intball_ros import convert, names  # noqa: E402
from intball_sim.camera import load_cameras  # noqa: E402

pytestmark = pytest.mark.ros

POINT = np.array([5.2, 1.0, 0.4])


@pytest.fixture
def nav():
    with scripted_nav("test_nav_look_at") as (io, spin_until):
        client = ActionClient(io.node, NavigateTo, names.NAVIGATE_TO)
        spin_until(lambda: io.modes and "waiting" not in io.modes[-1].detail, 20.0, "the node ready")
        spin_until(client.server_is_ready, 30.0, lambda: action_server_seen(io.node, names.NAVIGATE_TO))
        yield io, spin_until, client


def send(spin_until, client, goal, feedback):
    sent = client.send_goal_async(goal, feedback_callback=lambda m: feedback.append(m.feedback))
    handle = spin_until(lambda: sent.done() and sent.result(), 10.0, "the goal accepted")
    return handle.get_result_async()


def test_navigate_with_look_at_sends_the_point_to_the_controller_and_reports_pointing(nav):
    io, spin_until, client = nav
    T_base_cam = load_cameras()["main"].T_base_cam
    target = HERE + [0.2, -0.1, 0.0]
    goal = NavigateTo.Goal(target=convert.pose_stamped_from_pose(Pose(target), time.time()))
    goal.look_at_enabled, goal.look_at = True, Point(x=POINT[0], y=POINT[1], z=POINT[2])
    feedback = []
    result = send(spin_until, client, goal, feedback)
    spin_until(lambda: io.commands and io.commands[-1].look_at_enabled, 10.0, "a look-at goal command")
    cmd = io.commands[-1]
    assert cmd.command == "goal"
    assert np.allclose(convert.look_at_from_command(cmd), POINT)
    sent = convert.pose_from_msg(cmd.goal)
    assert np.allclose(sent.position, target, atol=1e-9)
    assert pointing_error(sent, POINT, T_base_cam) < 1e-6  # the target's attitude is replaced
    # the scripted robot (identity attitude) does not look at the point: feedback says by how much
    spin_until(lambda: feedback, 10.0, "feedback")
    here = Pose(HERE, np.array([0.0, 0.0, 0.0, 1.0]))
    assert feedback[0].pointing_error == pytest.approx(pointing_error(here, POINT, T_base_cam), abs=1e-3)
    # the robot arrives (teleported by the scripted controller): success, the pointing in the reason
    io.state = RigidBodyState(sent.position, sent.quat, np.zeros(3), np.zeros(3))
    spin_until(result.done, 30.0, "the navigate result")
    r = result.result()
    assert r.status == GoalStatus.STATUS_SUCCEEDED, r.result.reason
    assert "main camera on the look-at point (0.0 deg)" in r.result.reason
    assert feedback[-1].pointing_error < math.radians(0.1)


def test_navigate_without_look_at_sends_a_plain_goal(nav):
    io, spin_until, client = nav
    goal = NavigateTo.Goal(target=convert.pose_stamped_from_pose(Pose(HERE + [0.1, 0, 0]), time.time()))
    feedback = []
    send(spin_until, client, goal, feedback)
    spin_until(lambda: io.commands and io.commands[-1].command == "goal", 10.0, "a goal command")
    assert not io.commands[-1].look_at_enabled
    assert convert.look_at_from_command(io.commands[-1]) is None
    spin_until(lambda: feedback, 10.0, "feedback")
    assert feedback[-1].pointing_error == 0.0


@pytest.mark.parametrize(
    ("point", "reason"),
    [((math.nan, 0.0, 0.0), "look_at must be 3 finite numbers"), ((4.8, 0.05, 0.0), "look_at: ")],
)
def test_invalid_look_at_is_refused_with_its_reason(nav, point, reason):
    io, spin_until, client = nav
    goal = NavigateTo.Goal(target=convert.pose_stamped_from_pose(Pose(HERE), time.time()))
    goal.look_at_enabled, goal.look_at = True, Point(x=point[0], y=point[1], z=point[2])
    result = send(spin_until, client, goal, [])
    spin_until(result.done, 10.0, "the navigate result")
    r = result.result()
    assert r.status == GoalStatus.STATUS_ABORTED and reason in r.result.reason, r.result.reason


def test_follow_route_with_look_at_points_every_leg(nav):
    io, spin_until, _ = nav
    from intball_interfaces.action import FollowRoute

    T_base_cam = load_cameras()["main"].T_base_cam
    route = ActionClient(io.node, FollowRoute, names.FOLLOW_ROUTE)
    spin_until(route.server_is_ready, 30.0, lambda: action_server_seen(io.node, names.FOLLOW_ROUTE))
    wps = [HERE + [0.15, 0.0, 0.0], HERE + [0.15, -0.15, 0.0]]
    goal = FollowRoute.Goal(waypoints=[convert.pose_stamped_from_pose(Pose(p), time.time()) for p in wps])
    goal.look_at_enabled, goal.look_at = True, Point(x=POINT[0], y=POINT[1], z=POINT[2])
    sent = route.send_goal_async(goal)
    handle = spin_until(lambda: sent.done() and sent.result(), 10.0, "the goal accepted")
    result = handle.get_result_async()
    for wp in wps:  # the scripted controller "arrives" at each leg's goal
        spin_until(
            lambda wp=wp: (
                io.commands
                and np.allclose(convert.pose_from_msg(io.commands[-1].goal).position, wp, atol=1e-9)
            ),
            30.0,  # the first leg turns ~90 deg onto the point: ~10 s of trajectory, then settling
            f"the goal command for {wp}",
        )
        cmd = io.commands[-1]
        assert cmd.look_at_enabled and np.allclose(convert.look_at_from_command(cmd), POINT)
        sent_pose = convert.pose_from_msg(cmd.goal)
        assert pointing_error(sent_pose, POINT, T_base_cam) < 1e-6
        io.state = RigidBodyState(sent_pose.position, sent_pose.quat, np.zeros(3), np.zeros(3))
    spin_until(result.done, 30.0, "the route result")
    r = result.result()
    assert r.status == GoalStatus.STATUS_SUCCEEDED and r.result.waypoints_completed == 2, r.result.reason
