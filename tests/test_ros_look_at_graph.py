"""Look-at held while moving, through the whole graph (navigation node -> control node -> fans).

`navigate_to` with ``look_at`` flies 2.4 m past a point 1 m to the side; the main camera's
true pointing error (from ``/intball/ground_truth`` on the test side only) stays small all the
way once the robot has turned onto the point, and at arrival. Without tracking, the goal attitude
would be held and the error would grow to tens of degrees along such a pass.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from ros_graph_helpers import Graph, ensure_domain_id, spin_until

ensure_domain_id()
rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import Point, PoseStamped  # noqa: E402
from intball_interfaces.action import NavigateTo  # noqa: E402
from intball_interfaces.msg import RobotMode  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402

from intball_nav.camera_tasks.pointing import pointing_error  # noqa: E402
from intball_ros import convert, names  # noqa: E402
from intball_sim.camera import load_cameras  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

POINT = np.array([4.8, 1.0, 0.0])  # on the rack face 1 m to the side of the path, mid height
START = np.array([3.6, 0.0, 0.0])
END = np.array([6.0, 0.0, 0.0])


def navigate_goal(position, look_at=None) -> NavigateTo.Goal:
    g = NavigateTo.Goal()
    g.target = PoseStamped()
    g.target.header.frame_id = names.WORLD_FRAME
    g.target.pose.position.x, g.target.pose.position.y, g.target.pose.position.z = map(float, position)
    g.target.pose.orientation.w = 1.0
    if look_at is not None:
        g.look_at_enabled, g.look_at = True, Point(x=look_at[0], y=look_at[1], z=look_at[2])
    return g


def test_the_main_camera_stays_on_the_point_while_flying_past_it(tmp_path):
    cam = load_cameras()["main"]
    g = Graph(["--rate", "2", "--no-cameras", "--localization", "truth-noise"], tmp_path / "up.log")
    rclpy.init()
    node = rclpy.create_node("test_look_at_graph")
    truth: list[tuple[np.ndarray, float]] = []  # (position, pointing error rad) per truth message
    modes: list[RobotMode] = []

    def on_truth(msg: Odometry) -> None:
        pose = convert.pose_from_msg(msg.pose.pose)
        truth.append((pose.position, pointing_error(pose, POINT, cam.T_base_cam)))

    node.create_subscription(Odometry, names.GROUND_TRUTH, on_truth, 1000)
    node.create_subscription(RobotMode, names.MODE, modes.append, names.LATCHED)
    client = ActionClient(node, NavigateTo, names.NAVIGATE_TO)

    def fly(goal, what: str):
        sent = client.send_goal_async(goal)
        spin_until(node, sent.done, 30.0, what)
        handle = sent.result()
        assert handle.accepted, what
        done = handle.get_result_async()
        spin_until(node, done.done, 120.0, lambda: f"{what}\n{g.output()[-3000:]}")
        return done.result().result

    try:
        assert client.wait_for_server(timeout_sec=60.0), g.output()[-3000:]
        spin_until(node, lambda: truth and modes and "waiting" not in modes[-1].detail, 60.0, "graph ready")
        # turn onto the point at the start of the pass, then fly past it still looking at it
        assert fly(navigate_goal(START, POINT), "look from the start").success
        first = len(truth)
        result = fly(navigate_goal(END, POINT), "fly past the point")
        assert result.success, result.reason
        track = truth[first:]
        positions = np.array([p for p, _ in track])
        errors = np.degrees([e for _, e in track])
        moving = (positions[:, 0] > START[0] + 0.2) & (positions[:, 0] < END[0] - 0.2)
        assert moving.sum() > 50, "too few truth samples along the pass"
        # the bearing to the point sweeps through about 90 degrees along the pass
        bearings = np.degrees(np.arctan2(POINT[1] - positions[moving, 1], POINT[0] - positions[moving, 0]))
        assert bearings.max() - bearings.min() > 60.0
        worst = float(np.max(errors[moving]))
        assert worst < 3.0, f"max pointing error while moving {worst:.2f} deg"
        assert errors[-1] < 1.5, f"pointing error at arrival {errors[-1]:.2f} deg"
        assert math.dist(positions[-1], END) < 0.03
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        g.stop()
