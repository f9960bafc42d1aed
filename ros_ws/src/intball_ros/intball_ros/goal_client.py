"""``intball goal X Y Z [--rpy-deg R P Y] [--wait]``: send one goal to a running graph.

Publishes a geometry_msgs/PoseStamped on the goal topic and, with ``--wait``, follows the
guidance status until the robot arrives (exit 0) or the goal is rejected (exit 1).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("position", nargs=3, type=float, metavar=("X", "Y", "Z"), help="m, kibo frame")
    parser.add_argument("--rpy-deg", nargs=3, type=float, default=(0.0, 0.0, 0.0), metavar=("R", "P", "Y"))
    parser.add_argument("--frame", default=None, help="frame_id (default: kibo)")
    parser.add_argument("--wait", action="store_true", help="wait for arrival or rejection")
    parser.add_argument("--timeout", type=float, default=120.0, help="s wall time to wait (with --wait)")


def main(args: argparse.Namespace) -> int:
    from intball_ros.env import apply_ros_environment

    apply_ros_environment()
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from intball_interfaces.msg import GuidanceStatus

    from intball_nav.frames import Pose, quat_from_rpy
    from intball_ros import convert, names

    rclpy.init()
    node = rclpy.create_node("intball_goal_cli")
    try:
        statuses: list = []
        node.create_subscription(GuidanceStatus, names.GUIDANCE_STATUS, statuses.append, names.RELIABLE_10)
        pub = node.create_publisher(PoseStamped, names.GOAL_POSE, names.RELIABLE_10)
        deadline = time.monotonic() + 5.0
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        if pub.get_subscription_count() == 0:
            print(f"intball goal: nobody subscribes to {names.GOAL_POSE}; is `intball up` running?")
            return 1
        rpy = np.radians(args.rpy_deg)
        goal = Pose(np.array(args.position), quat_from_rpy(*rpy))
        msg = convert.pose_stamped_from_pose(
            goal, 0.0, args.frame if args.frame is not None else names.WORLD_FRAME
        )
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        print(f"intball goal: sent {np.round(goal.position, 3).tolist()} m, rpy {list(args.rpy_deg)} deg")
        deadline = time.monotonic() + (args.timeout if args.wait else 2.0)
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
            while statuses:
                s = statuses.pop(0)
                if s.state == "rejected":
                    print(f"intball goal: {s.message}")
                    return 1
                target = convert.goal_from_status(s)
                if (
                    s.arrived
                    and target is not None
                    and np.allclose(target.position, goal.position, atol=1e-6)
                ):
                    err = f"{s.position_error * 100:.1f} cm, {math.degrees(s.attitude_error):.2f} deg"
                    print(f"intball goal: arrived ({err})")
                    return 0
        return 1 if args.wait else 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
