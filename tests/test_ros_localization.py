"""Visual localization in the ROS graph, its health topic and the controller's loss response.

- the process graph with ``--localization vision`` (cameras on) initialises from the markers,
  publishes odometry at the IMU rate and health ``ok``, and flies a goal: the TRUE pose (ground
  truth) ends within tolerance, so the loop really closes on the estimate;
- the control node, in-process with a scripted estimator (odometry + health from the test),
  stops, brakes and holds with the fans off when the health says ``lost``, reports it on the
  guidance status, and resumes its goal when the health is ``ok`` again;
- conversions and launcher defaults (no processes).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pytest
from ros_graph_helpers import Graph, ensure_domain_id, spin_until

ensure_domain_id()
rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseStamped  # noqa: E402
from intball_interfaces.msg import FanCommand, GuidanceStatus, LocalizationHealth  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402

from intball_nav.dynamics import RigidBodyState  # noqa: E402
from intball_nav.estimation.health import HealthLevel, HealthStatus  # noqa: E402
from intball_nav.frames import Pose, quat_angle, quat_from_rpy, rotmat_from_quat  # noqa: E402
from intball_ros import convert, launcher, names  # noqa: E402

START = (4.8, 0.0, 0.0)
"""Start pose of the graph test (facing +x: markers in the nav camera's view)."""


# ------------------------------------------------------------------------ no processes
def test_health_message_round_trip_and_levels():
    msg = convert.health_msg(
        1.5, HealthStatus(HealthLevel.DEGRADED, "no visual update for 0.6 s"), markers_used=4
    )
    assert (msg.level, msg.markers_used, msg.header.frame_id) == ("degraded", 4, names.WORLD_FRAME)
    assert convert.health_from_msg(msg) == HealthStatus(HealthLevel.DEGRADED, "no visual update for 0.6 s")
    init = convert.health_msg(0.0, HealthStatus(), initialised=False)
    assert (
        init.level == "initialising" and math.isnan(init.position_std) and math.isinf(init.time_since_update)
    )
    assert convert.health_from_msg(init).level == HealthLevel.LOST
    assert {convert.health_msg(0.0, HealthStatus(lv, "")).level for lv in HealthLevel} | {init.level} == set(
        names.HEALTH_LEVELS
    )
    bad = LocalizationHealth(level="fine")
    with pytest.raises(convert.InvalidMessage, match="unknown localization health level"):
        convert.health_from_msg(bad)


def test_odometry_covariance_attitude_block_is_rotated_into_kibo():
    q = quat_from_rpy(0.0, 0.0, math.radians(90))
    cov = np.diag([1e-4, 4e-4, 9e-4, 1e-6, 4e-6, 9e-6])  # attitude block in base_link
    msg = convert.odometry_from_state(RigidBodyState(position=np.zeros(3), quat=q), 0.0, covariance=cov)
    out = np.asarray(msg.pose.covariance).reshape(6, 6)
    R = rotmat_from_quat(q)
    np.testing.assert_allclose(out[:3, :3], cov[:3, :3])
    np.testing.assert_allclose(out[3:, 3:], R @ cov[3:, 3:] @ R.T, atol=1e-15)
    np.testing.assert_allclose(np.diag(out)[3:], [4e-6, 1e-6, 9e-6], atol=1e-15)  # yaw 90: x <-> y


def _up_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    launcher.add_arguments(parser)
    return parser.parse_args(argv)


def test_vision_is_the_default_localization_with_cameras():
    estimator = {s.name: s for s in launcher.graph_specs(_up_args([]))}[names.ESTIMATOR_NODE]
    assert estimator.params[names.P_LOCALIZATION] == names.LOCALIZATION_VISION
    estimator = {s.name: s for s in launcher.graph_specs(_up_args(["--no-cameras"]))}[names.ESTIMATOR_NODE]
    assert estimator.params[names.P_LOCALIZATION] == "truth-noise"
    with pytest.raises(SystemExit, match="needs the cameras"):
        launcher.graph_specs(_up_args(["--no-cameras", "--localization", "vision"]))


def test_loss_response_flag_reaches_the_control_node_parameters():
    control = {s.name: s for s in launcher.graph_specs(_up_args([]))}[names.CONTROL_NODE]
    assert control.params[names.P_LOSS_RESPONSE] == "hold"  # issue #4: stop and hold by default
    args = _up_args(["--loss-response", "search"])
    control = {s.name: s for s in launcher.graph_specs(args)}[names.CONTROL_NODE]
    assert control.params[names.P_LOSS_RESPONSE] == "search"
    assert f"{names.P_LOSS_RESPONSE}:=search" in launcher.params_cli_args(control.params)
    with pytest.raises(SystemExit):
        _up_args(["--loss-response", "spin"])


# ------------------------------------------------------------------------ control node, in-process
class ScriptedEstimator:
    """Test side of the controller: publishes odometry + health, records fans and statuses."""

    def __init__(self, node) -> None:
        self.node = node
        self.fans: list[np.ndarray] = []
        self.statuses: list[GuidanceStatus] = []
        self.odom = node.create_publisher(Odometry, names.ODOMETRY, names.RELIABLE_10)
        self.health = node.create_publisher(LocalizationHealth, names.LOCALIZATION_HEALTH, names.RELIABLE_10)
        self.goal = node.create_publisher(PoseStamped, names.GOAL_POSE, names.RELIABLE_10)
        node.create_subscription(
            FanCommand, names.FAN_COMMAND, lambda m: self.fans.append(np.array(m.thrust)), 100
        )
        node.create_subscription(GuidanceStatus, names.GUIDANCE_STATUS, self.statuses.append, 100)

    def publish(self, state: RigidBodyState, level: HealthLevel | None, reason: str) -> None:
        t = time.time()
        self.odom.publish(convert.odometry_from_state(state, t))
        if level is not None:  # None: the estimator's health falls silent
            self.health.publish(convert.health_msg(t, HealthStatus(level, reason)))


@pytest.mark.ros
def test_controller_stops_holds_and_resumes_on_localization_loss():
    from rclpy.executors import SingleThreadedExecutor

    from intball_ros.nodes.control_node import ControlNode

    rclpy.init()
    control = ControlNode(cli_args=["--ros-args", "-p", f"{names.P_STATUS_RATE}:=25.0"])
    client = rclpy.create_node("test_loss_client")
    executor = SingleThreadedExecutor()
    executor.add_node(control)
    executor.add_node(client)
    io = ScriptedEstimator(client)
    here = RigidBodyState(position=np.array(START), velocity=np.array([0.05, 0.0, 0.0]))

    def run(seconds: float, level: HealthLevel | None, reason: str, state: RigidBodyState = here) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            io.publish(state, level, reason)
            executor.spin_once(timeout_sec=0.01)

    try:
        run(1.0, HealthLevel.OK, "ok")
        target = Pose(np.array(START) + [0.5, 0.0, 0.0], np.array([0.0, 0.0, 0.0, 1.0]))
        io.goal.publish(convert.pose_stamped_from_pose(target, 0.0))
        run(1.0, HealthLevel.OK, "ok")
        assert any(s.state == "moving" for s in io.statuses)
        assert np.max(io.fans[-1]) > 0.0  # flying toward the goal

        io.fans.clear(), io.statuses.clear()
        run(1.0, HealthLevel.LOST, "no visual update for 3.1 s")
        paused = [s for s in io.statuses if s.state == "paused"]
        assert paused and "no visual update" in paused[-1].message, [s.message for s in io.statuses]
        assert np.allclose(convert.pose_from_msg(paused[-1].goal).position, target.position)
        # braking the estimated +x velocity: net force along -x, never toward the goal
        from intball_nav.robot import load_robot_params

        B = load_robot_params().allocation_matrix
        assert (B @ io.fans[-1])[0] < 0.0
        at_rest = RigidBodyState(position=np.array(START))
        io.fans.clear()
        run(0.5, HealthLevel.LOST, "no visual update for 4.0 s", at_rest)
        assert np.allclose(io.fans[-1], 0.0)  # safe state: propulsion off
        assert "fans off" in io.statuses[-1].message

        io.statuses.clear()
        run(1.0, HealthLevel.OK, "ok", at_rest)
        assert io.statuses[-1].state == "paused" and "recovering" in io.statuses[-1].message
        run(2.5, HealthLevel.OK, "ok", at_rest)  # recover_hold_s = 3 s, then the goal again
        assert io.statuses[-1].state == "moving"
        assert np.allclose(convert.pose_from_msg(io.statuses[-1].goal).position, target.position)

        io.statuses.clear()
        run(2.6, None, "", at_rest)  # health silent for > health_timeout (2 s): lost
        assert any(s.state == "paused" and "no localization health" in s.message for s in io.statuses)
        assert np.allclose(io.fans[-1], 0.0)
    finally:
        executor.shutdown()
        control.destroy_node()
        client.destroy_node()
        rclpy.try_shutdown()


@pytest.mark.ros
def test_controller_searches_in_place_when_asked_and_holds_by_default():
    """``loss_response:=search``: once braked, the fans turn the robot about its body z axis (torque
    about z, no net force, other torques ~0) until the health is ``ok``; an unknown value is refused
    at start-up."""
    from rclpy.executors import SingleThreadedExecutor

    from intball_nav.robot import load_robot_params
    from intball_ros.nodes.control_node import ControlNode

    B = load_robot_params().allocation_matrix
    rclpy.init()
    control = ControlNode(
        cli_args=[
            "--ros-args",
            "-p",
            f"{names.P_STATUS_RATE}:=25.0",
            "-p",
            f"{names.P_LOSS_RESPONSE}:=search",
        ]
    )
    client = rclpy.create_node("test_search_client")
    executor = SingleThreadedExecutor()
    executor.add_node(control)
    executor.add_node(client)
    io = ScriptedEstimator(client)
    at_rest = RigidBodyState(position=np.array(START))

    def run(seconds: float, level: HealthLevel, reason: str) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            io.publish(at_rest, level, reason)
            executor.spin_once(timeout_sec=0.01)

    try:
        run(1.0, HealthLevel.OK, "ok")
        io.fans.clear(), io.statuses.clear()
        run(1.0, HealthLevel.LOST, "no visual update for 3.1 s")  # at rest: braking ends at once
        assert io.statuses and "localization searching" in io.statuses[-1].message, [
            s.message for s in io.statuses
        ]
        wrench = B @ io.fans[-1]
        assert wrench[5] > 1e-4, wrench  # N m about body +z: turning toward the commanded rate
        assert np.all(np.abs(wrench[:3]) < 1e-6) and np.all(np.abs(wrench[3:5]) < 1e-6), wrench
        run(1.0, HealthLevel.OK, "ok")
        assert "recovering" in io.statuses[-1].message
    finally:
        executor.shutdown()
        control.destroy_node()
        client.destroy_node()
        rclpy.try_shutdown()
    rclpy.init()
    try:
        with pytest.raises(ValueError, match="hold, search"):
            ControlNode(cli_args=["--ros-args", "-p", f"{names.P_LOSS_RESPONSE}:=spin"])
    finally:
        rclpy.try_shutdown()


# ------------------------------------------------------------------------ process graph
@pytest.mark.ros
def test_vision_graph_converges_on_the_estimate_with_health_ok(tmp_path):
    tour = tmp_path / "start.yaml"  # only to place the robot facing markers (no waypoint sent)
    tour.write_text(
        "version: 1\nname: start\nstart: {position: [4.8, 0.0, 0.0], rpy_deg: [0, 0, 0]}\n"
        "waypoints:\n  - {position: [4.8, 0.0, 0.0], rpy_deg: [0, 0, 0]}\n"
    )
    g = Graph(["--rate", "2", "--localization", "vision", "--tour", str(tour)], tmp_path / "up.log")
    rclpy.init()
    node = rclpy.create_node("test_vision_client")
    odom, truth, health, statuses = {}, {}, [], []
    stamp = lambda m: convert.time_from_stamp(m.header.stamp)  # noqa: E731
    node.create_subscription(Odometry, names.ODOMETRY, lambda m: odom.__setitem__(stamp(m), m), 500)
    node.create_subscription(Odometry, names.GROUND_TRUTH, lambda m: truth.__setitem__(stamp(m), m), 500)
    node.create_subscription(LocalizationHealth, names.LOCALIZATION_HEALTH, health.append, 100)
    node.create_subscription(GuidanceStatus, names.GUIDANCE_STATUS, statuses.append, 100)
    goal_pub = node.create_publisher(PoseStamped, names.GOAL_POSE, names.RELIABLE_10)
    try:
        # initialised from the markers, holding the start pose
        spin_until(
            node,
            lambda: "waypoint 1/1 reached" in g.output(),
            120.0,
            lambda: f"start-up\n{g.output()[:2500]}\n...\n{g.output()[-2500:]}",
        )
        assert any(h.level == "ok" and h.markers_used >= 2 for h in health), [h.level for h in health[-5:]]
        ok = [h for h in health if h.level == "ok"][-1]
        assert ok.position_std < 0.02 and ok.time_since_update < 0.5
        target = Pose(np.array(START) + [0.25, 0.1, 0.05], quat_from_rpy(0.0, 0.0, math.radians(15)))
        goal_pub.publish(convert.pose_stamped_from_pose(target, 0.0))

        def arrived():
            return any(
                s.arrived and np.allclose(convert.pose_from_msg(s.goal).position, target.position, atol=1e-6)
                for s in statuses
            )

        spin_until(node, arrived, 120.0, lambda: f"arrival at the goal\n{g.output()[-3000:]}")
        t_end = max(truth)
        true_pose = convert.pose_from_msg(truth[t_end].pose.pose)
        assert np.linalg.norm(true_pose.position - target.position) < 0.03
        assert math.degrees(quat_angle(true_pose.quat, target.quat)) < 3.0
        # odometry at the IMU rate (sim time), one per sample, and close to the truth
        ts = np.array(sorted(odom))
        window = ts[ts > ts[-1] - 5.0]
        assert len(window) / (window[-1] - window[0]) >= 50.0
        err = [
            np.linalg.norm(
                convert.pose_from_msg(odom[t].pose.pose).position
                - convert.pose_from_msg(truth[t].pose.pose).position
            )
            for t in ts
            if t in truth
        ]
        assert len(err) > 100 and float(np.sqrt(np.mean(np.square(err)))) < 0.03
        assert np.asarray(odom[ts[-1]].pose.covariance)[0] > 0.0  # the filter's covariance
        assert health[-1].level in ("ok", "degraded")
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        g.stop()


def test_vision_estimator_feeds_main_camera_frames_in_stamp_order_only_when_wanted():
    """Nav and main camera images go to the pipeline in capture-stamp order once the IMU reaches
    them; a main camera image is not even converted when ``needs_aux_frame`` says no."""
    from types import SimpleNamespace

    from intball_ros.nodes import vision_estimator

    calls: list[tuple[str, float]] = []

    class Pipeline:  # stand-in for VisualLocalizer
        aux = SimpleNamespace(last=SimpleNamespace(n_inliers=0))
        features = None
        eskf = SimpleNamespace(core=SimpleNamespace(last_update_t=0.0), n_rejected=0)

        def add_imu(self, t, gyro, accel):
            calls.append(("imu", round(t, 3)))

        def needs_aux_frame(self, stamp):
            return stamp < 0.15

        def add_nav_frame(self, stamp, gray):
            calls.append(("nav", round(stamp, 3)))
            return []

        def add_aux_frame(self, stamp, gray):
            assert gray.shape == (480, 640)
            calls.append(("aux", round(stamp, 3)))
            return []

        def estimate(self, t):
            return None, None, HealthStatus()

    node = SimpleNamespace(
        create_subscription=lambda *a: None,
        publish_estimate=lambda *a: None,
        publish_health=lambda: None,
        get_logger=lambda: SimpleNamespace(warning=lambda *a, **k: None),
    )
    original = vision_estimator.make_localizer
    vision_estimator.make_localizer = lambda features: Pipeline()
    try:
        est = vision_estimator.VisionEstimator(node, features=True)
    finally:
        vision_estimator.make_localizer = original
    for t in (0.1, 0.2):
        est._on_aux_image(convert.image_from_array(np.zeros((480, 640, 3), np.uint8), t, "main"))
    for t in (0.05, 0.15):
        est._on_image(convert.image_from_array(np.zeros((240, 320, 3), np.uint8), t, "nav_left"))
    for t in (0.12, 0.25):
        est._on_imu(convert.imu_msg(t, np.zeros(3), np.zeros(3)))
    assert calls == [("imu", 0.12), ("nav", 0.05), ("aux", 0.1), ("imu", 0.25), ("nav", 0.15)]
