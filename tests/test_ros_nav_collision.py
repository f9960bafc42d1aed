"""Collision -> stop and report, through the ROS graph (simulated bump sensor, #4).

The graph (simulator without cameras, estimator in ``truth`` mode, controller, navigation node) runs
in this process on one executor. The robot starts idle 2 cm from the port wall; the test plays an
external push (a crew member's hand, a stray fan command): it publishes fan commands toward the wall
until the simulator's bump sensor reports the contact on ``/intball/contact``, then stops. Checked:
the contact message (force from the wall toward the robot), the navigation node's response (mode
``faulted``, the collision fault in clear text on ``/diagnostics``), and that the robot comes to rest.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pytest
from ros_graph_helpers import ensure_domain_id, rclpy_initialised
from ros_graph_helpers import spin_until as spin_executor_until

ensure_domain_id()
rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import WrenchStamped  # noqa: E402
from intball_interfaces.msg import FanCommand, RobotMode  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402

from intball_nav.allocation import allocate  # noqa: E402
from intball_nav.module import load_module  # noqa: E402
from intball_nav.robot import load_robot_params  # noqa: E402
from intball_ros import convert, launcher, names  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

GAP = 0.02  # m between the robot's shell and the port wall at the start


@pytest.fixture(scope="module")
def graph():
    import importlib
    import os

    from rclpy.executors import SingleThreadedExecutor

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    module, robot = load_module(), load_robot_params()
    start = [4.8, float(module.clear_max[1]) - robot.radius - GAP, 0.0, 0.0, 0.0, 0.0, 1.0]
    args = argparse.Namespace(
        rate=1.0, no_cameras=True, localization="truth", seed=0, flight_mode="nominal", battery=1.0,
        data_dir=None, tour=None, demo=False, exit_when_done=False, composed=True,
    )  # fmt: skip
    specs = launcher.graph_specs(args)
    specs[0].params[names.P_INITIAL_POSE] = start
    with rclpy_initialised():
        executor = SingleThreadedExecutor()
        nodes = []
        for spec in specs:
            cls = importlib.import_module(f"intball_ros.nodes.{spec.module}").NODE_CLASS
            nodes.append(cls(cli_args=launcher.params_cli_args(spec.params)))
            executor.add_node(nodes[-1])
        test = rclpy.create_node("test_nav_collision")
        executor.add_node(test)
        seen = {"contact": [], "mode": [], "diag": [], "truth": []}
        test.create_subscription(WrenchStamped, names.CONTACT, seen["contact"].append, names.RELIABLE_10)
        test.create_subscription(RobotMode, names.MODE, seen["mode"].append, names.LATCHED)
        test.create_subscription(DiagnosticArray, names.DIAGNOSTICS, seen["diag"].append, 50)
        test.create_subscription(
            Odometry, names.GROUND_TRUTH, lambda m: seen["truth"].append(m), names.RELIABLE_10
        )
        fans = test.create_publisher(FanCommand, names.FAN_COMMAND, names.RELIABLE_10)

        def spin_until(predicate, timeout: float, what: str):
            return spin_executor_until(executor, predicate, timeout, what, step=0.01)

        yield seen, fans, spin_until, robot
        executor.shutdown()
        for node in [test, *reversed(nodes)]:
            node.destroy_node()


def test_a_bump_faults_the_robot_which_stops_and_reports_it(graph):
    seen, fans, spin_until, robot = graph
    spin_until(lambda: seen["mode"] and "waiting" not in seen["mode"][-1].detail, 30.0, "the nav node ready")
    assert seen["mode"][-1].mode == "idle"
    assert not seen["contact"]

    # the push: +y (port wall) at full thrust, 100 Hz wall time, until the bump sensor fires
    push = allocate(np.array([0.0, 0.2, 0.0, 0.0, 0.0, 0.0]), robot).thrust
    last = 0.0

    def pushed():
        nonlocal last
        if time.monotonic() - last >= 0.01:
            last = time.monotonic()
            stamp = seen["truth"][-1].header.stamp if seen["truth"] else None
            t = convert.time_from_stamp(stamp) if stamp is not None else 0.0
            fans.publish(convert.fan_command_msg(push, t))
        return seen["contact"]

    spin_until(pushed, 15.0, "a contact on the bump sensor")
    bump = seen["contact"][0]
    assert bump.header.frame_id == names.WORLD_FRAME
    assert bump.wrench.force.y <= 0.0  # from the port wall toward the robot

    spin_until(lambda: seen["mode"][-1].mode == "faulted", 5.0, "mode faulted")
    text = "collision with obstacle at t = "

    def fault_texts():
        return [s.message for s in seen["diag"][-1].status] if seen["diag"] else []

    spin_until(lambda: any(m.startswith(text) for m in fault_texts()), 5.0, "the collision fault text")
    assert any("stopped, holding" in m for m in fault_texts())
    assert seen["diag"][-1].status[0].level == b"\x02"

    # stop and hold: the robot comes to rest (ground truth, seen by the test only)
    def at_rest():
        m = seen["truth"][-1]
        v = m.twist.twist.linear
        return np.linalg.norm([v.x, v.y, v.z]) < 0.005

    n = len(seen["truth"])
    spin_until(lambda: len(seen["truth"]) > n + 300 and at_rest(), 20.0, "the robot at rest")
    y = seen["truth"][-1].pose.pose.position.y
    assert y <= load_module().clear_max[1] - robot.radius + 0.005  # not through the wall
