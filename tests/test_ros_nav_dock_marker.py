"""Docking on the dock marker through the ROS graph, with a deliberately biased state estimate.

The graph is the simulator (cameras on: the left nav camera at 10 Hz; the main camera slowed
down to save CPU), the control node and the navigation node as processes; the test process plays
the estimator: it republishes ``/intball/ground_truth`` as ``/intball/odometry`` with a constant
20 mm lateral bias (what a map error of visual localization looks like near the dock) and a health
``ok``. The navigation node sees only that biased estimate and the camera images; the final
approach must steer on the dock marker measured in the nav camera and touch the dock centred.
With the cameras off (no images, as ``intball up --no-cameras``) the same docking flies on the
biased estimate, touches the dock about 20 mm off and says so in the feedback and result.
Truth is read on the test side only, to judge.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest
from ros_graph_helpers import ensure_domain_id, spin_until

ensure_domain_id()
rclpy = pytest.importorskip("rclpy")

from action_msgs.msg import GoalStatus  # noqa: E402
from intball_interfaces.action import Dock  # noqa: E402
from intball_interfaces.msg import LocalizationHealth, RobotMode  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from intball_nav.dynamics import RigidBodyState  # noqa: E402
from intball_nav.estimation.health import HealthLevel, HealthStatus  # noqa: E402
from intball_ros import convert, names  # noqa: E402
from intball_ros.env import ros_environment  # noqa: E402
from intball_ros.launcher import params_cli_args  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

BIAS = np.array([0.008, 0.018, 0.0])  # m, kibo: 19.7 mm across the dock normal (-z kibo)
START = [1.55, 0.25, 0.25, 0.0, 0.0, 0.0, 1.0]  # below and aft of the dock, at rest
DOCKED = np.array([1.10, 0.0, 0.63])  # robot touching the dock face centre (docs/autonomy.md)
RATE = 2.0  # x real time


class BiasedEstimator:
    """Ground truth + a constant position bias -> odometry; health ok (the test's estimator)."""

    def __init__(self, node) -> None:
        self.truth: RigidBodyState | None = None
        self._odom = node.create_publisher(Odometry, names.ODOMETRY, names.RELIABLE_10)
        self._health = node.create_publisher(LocalizationHealth, names.LOCALIZATION_HEALTH, 10)
        node.create_subscription(Odometry, names.GROUND_TRUTH, self._on_truth, names.RELIABLE_10)
        self._n = 0

    def _on_truth(self, msg: Odometry) -> None:
        truth = convert.state_from_odometry(msg)
        self.truth = truth
        t = convert.time_from_stamp(msg.header.stamp)
        est = RigidBodyState(truth.position + BIAS, truth.quat, truth.velocity, truth.omega)
        self._odom.publish(convert.odometry_from_state(est, t))
        self._n += 1
        if self._n % 10 == 1:
            ok = HealthStatus(HealthLevel.OK, "test: truth + 20 mm bias")
            self._health.publish(convert.health_msg(t, ok, position_std=0.001, attitude_std=0.001))


def start_graph(log, cameras: bool) -> list[subprocess.Popen]:
    sim_time = {names.P_USE_SIM_TIME: True}
    specs = [
        ("sim_node", {names.P_RATE: RATE, names.P_CAMERAS: cameras, names.P_INITIAL_POSE: START,
                      names.P_MAIN_CAMERA_RATE: 0.2}),
        ("control_node", sim_time),
        ("nav_node", {**sim_time, names.P_WATCHDOG_TIMEOUT: 2.0 * RATE}),
    ]  # fmt: skip
    env = dict(ros_environment(), PYTHONUNBUFFERED="1")
    return [
        subprocess.Popen(
            [sys.executable, "-m", f"intball_ros.nodes.{module}", *params_cli_args(params)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        for module, params in specs
    ]


def nav_image_subscribers(node) -> int:
    """Subscriptions to the left nav image in the graph (no estimator runs here: the nav node's)."""
    return node.count_subscribers(names.NAV_LEFT_IMAGE)


def dock_with_bias(tmp_path, cameras: bool):
    """(status, result, feedback, true position at the end, log text, nav image subscriber counts
    {"idle": [before], stage: [samples while in it], "after": [once docked]}) of one docking."""
    path = tmp_path / "graph.log"
    with open(path, "wb") as log:
        procs = start_graph(log, cameras)
        rclpy.init()
        node = rclpy.create_node("test_dock_marker")
        ex = SingleThreadedExecutor()
        ex.add_node(node)
        try:
            est = BiasedEstimator(node)
            modes: list[RobotMode] = []
            node.create_subscription(RobotMode, names.MODE, modes.append, names.LATCHED)
            dock = ActionClient(node, Dock, names.DOCK)
            spin_until(ex, lambda: dock.server_is_ready(), 120.0, "dock action server")
            spin_until(ex, lambda: modes and "waiting" not in modes[-1].detail, 120.0, "nav node ready")
            # the control and nav nodes' endpoints are known here (both subscribe the odometry)
            spin_until(ex, lambda: node.count_subscribers(names.ODOMETRY) >= 2, 20.0, "nav node endpoints")
            subs = {"idle": [nav_image_subscribers(node)]}
            feedback = []
            sent = dock.send_goal_async(Dock.Goal(), feedback_callback=lambda m: feedback.append(m.feedback))
            handle = spin_until(ex, lambda: sent.done() and sent.result(), 20.0, "goal response")
            done = handle.get_result_async()

            def sample() -> bool:
                if feedback:
                    stage = feedback[-1].stage
                    subs.setdefault(stage, []).append(nav_image_subscribers(node))
                return done.done()

            spin_until(ex, sample, 300.0, f"dock result\n{path.read_text(errors='replace')[-3000:]}")
            res, text = done.result(), path.read_text(errors="replace")
            # the nav node drops its subscription once docked (discovery takes a moment to tell)
            gone = lambda: nav_image_subscribers(node) == 0  # noqa: E731
            subs["after"] = [0 if _spin_for(ex, gone, 10.0) else nav_image_subscribers(node)]
            return res.status, res.result, feedback, est.truth.position.copy(), text, subs
        finally:
            ex.remove_node(node)
            node.destroy_node()
            rclpy.try_shutdown()
            for p in procs:
                p.send_signal(signal.SIGINT)
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def _spin_for(ex, predicate, timeout: float) -> bool:
    try:
        spin_until(ex, predicate, timeout, "")
    except AssertionError:
        return False
    return True


def test_biased_estimate_docks_centred_on_the_dock_marker(tmp_path):
    status, r, feedback, truth, log, subs = dock_with_bias(tmp_path, cameras=True)
    assert status == GoalStatus.STATUS_SUCCEEDED, f"{r.reason}\n{log[-3000:]}"
    assert r.dock_marker_used, r.reason
    assert "final approach on dock marker 99" in r.reason, r.reason
    lateral = float(np.linalg.norm((truth - DOCKED)[:2]))
    print(f"dock marker: true lateral error {lateral * 1000:.2f} mm, "
          f"along the normal {(truth - DOCKED)[2] * 1000:.2f} mm; {r.reason}")  # fmt: skip
    assert lateral < 0.005, (truth, r.reason)  # the bias is 19.7 mm
    assert abs(truth[2] - DOCKED[2]) < 0.005, truth
    assert r.position_error < 0.01  # the corrected estimate agrees
    finals = [f.detail for f in feedback if f.stage == "final"]
    assert finals and all(
        "dock marker 99" in d and "goal corrected by" in d and "samples at the standoff" in d for d in finals
    ), finals[-3:]
    assert "state estimate" not in r.reason
    # the nav image is subscribed only while docking needs it: not idle, not on the via leg
    # (its first samples: discovery may report the standoff subscription before the feedback),
    # from the standoff leg to the end; and released once docked
    assert subs["idle"] == [0] and subs.get("via", [0])[0] == 0, {k: v[:5] for k, v in subs.items()}
    assert max(subs.get("final", [0])) >= 1 and subs["after"] == [0], {k: v[-5:] for k, v in subs.items()}


def test_cameras_off_the_approach_flies_on_the_estimate_and_says_so(tmp_path):
    status, r, feedback, truth, log, _subs = dock_with_bias(tmp_path, cameras=False)
    # the biased estimate believes it is centred: the supervisor docks (no latch sensor) ...
    assert status == GoalStatus.STATUS_SUCCEEDED, f"{r.reason}\n{log[-3000:]}"
    assert not r.dock_marker_used
    assert "final approach on the state estimate, not the dock marker" in r.reason, r.reason
    assert "no nav camera images" in r.reason, r.reason
    finals = [f.detail for f in feedback if f.stage == "final"]
    assert finals and all("on the state estimate" in d for d in finals), finals[-3:]
    # ... but it touches the dock off by the bias (what the marker corrects above)
    lateral = float(np.linalg.norm((truth - DOCKED)[:2]))
    print(f"estimate only: true lateral error {lateral * 1000:.2f} mm; {r.reason}")
    assert lateral > 0.015, truth
