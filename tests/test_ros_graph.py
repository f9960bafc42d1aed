"""End-to-end tests through real ROS 2 processes started by `intball up`.

Each test talks to the graph with a plain rclpy node on the run's own ROS_DOMAIN_ID. The
simulator runs faster than real time (``--rate``) to keep the set short; no timing asserts.
"""

from __future__ import annotations

import math
import signal
import time

import numpy as np
import pytest
from ros_graph_helpers import (
    Graph,
    ensure_domain_id,
    isolated_domain_id,
    pid_alive,
    rclpy_initialised,
    spin_until,
)

ensure_domain_id()
rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseStamped  # noqa: E402
from intball_interfaces.msg import FanCommand, GuidanceStatus  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from intball_nav.frames import Pose, quat_angle, quat_from_rpy  # noqa: E402
from intball_ros import convert, names  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def client():
    with rclpy_initialised():
        node = rclpy.create_node("test_ros_graph_client")
        yield node
        node.destroy_node()


class Listener:
    """Keeps the last message and the history of a few topics on the client node."""

    def __init__(self, node) -> None:
        self.node = node
        self.odom: Odometry | None = None
        self.statuses: list[GuidanceStatus] = []
        self.fans = 0
        self._subs = [
            node.create_subscription(Odometry, names.ODOMETRY, self._odom, names.RELIABLE_10),
            node.create_subscription(GuidanceStatus, names.GUIDANCE_STATUS, self.statuses.append, 50),
            node.create_subscription(FanCommand, names.FAN_COMMAND, self._fan, names.RELIABLE_10),
        ]
        self.goal_pub = node.create_publisher(PoseStamped, names.GOAL_POSE, names.RELIABLE_10)

    def _odom(self, msg) -> None:
        self.odom = msg

    def _fan(self, msg) -> None:
        self.fans += 1

    def close(self) -> None:
        for s in self._subs:
            self.node.destroy_subscription(s)
        self.node.destroy_publisher(self.goal_pub)

    def pose(self) -> Pose:
        return convert.pose_from_msg(self.odom.pose.pose)

    def wait_ready(self, timeout: float = 60.0) -> Pose:
        spin_until(self.node, lambda: self.odom is not None, timeout, "odometry")
        spin_until(self.node, lambda: self.goal_pub.get_subscription_count() > 0, timeout, "controller")
        spin_until(self.node, lambda: self.statuses, timeout, "guidance status")
        return self.pose()

    def send(self, msg: PoseStamped) -> None:
        self.statuses.clear()
        self.goal_pub.publish(msg)

    def rejection(self, timeout: float = 20.0) -> GuidanceStatus:
        return spin_until(
            self.node,
            lambda: next((s for s in self.statuses if s.state == "rejected"), None),
            timeout,
            "a rejected-goal status",
        )


def goal_msg(pose: Pose, frame: str = names.WORLD_FRAME) -> PoseStamped:
    return convert.pose_stamped_from_pose(pose, 0.0, frame)


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    g = Graph(
        ["--rate", "5", "--no-cameras", "--localization", "truth-noise"],
        tmp_path_factory.mktemp("a") / "up.log",
    )
    yield g
    g.stop()


def test_goal_is_reached_through_the_graph(graph, client):
    io = Listener(client)
    try:
        start = io.wait_ready()
        target = Pose(start.position + np.array([0.3, -0.15, 0.1]), quat_from_rpy(0.0, 0.0, math.radians(30)))
        io.send(goal_msg(target))

        def arrived():
            return any(
                s.arrived and np.allclose(convert.pose_from_msg(s.goal).position, target.position, atol=1e-6)
                for s in io.statuses
            )

        spin_until(client, arrived, 90.0, lambda: f"arrival at the goal\n{graph.output()[-3000:]}")
        pose = io.pose()
        assert np.linalg.norm(pose.position - target.position) < 0.03
        assert math.degrees(quat_angle(pose.quat, target.quat)) < 3.0
    finally:
        io.close()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: goal_msg(Pose(p + [50.0, 0.0, 0.0])), "module|outside|clear"),
        (lambda p: goal_msg(Pose(p), frame="map"), "frame_id"),
        (lambda p: _with(goal_msg(Pose(p)), x=math.nan), "not finite"),
        (lambda p: _with(goal_msg(Pose(p)), qw=0.0), "normalized"),
    ],
    ids=["outside-module", "unknown-frame", "nan", "zero-quaternion"],
)
def test_invalid_goal_is_rejected_with_reason(graph, client, make, reason):
    io = Listener(client)
    try:
        start = io.wait_ready()
        io.send(make(start.position))
        status = io.rejection()
        assert status.message.startswith("goal rejected:")
        assert any(word in status.message for word in reason.split("|")), status.message
        # nothing crashed: the launcher and all its nodes still run, odometry still flows
        io.odom = None
        spin_until(client, lambda: io.odom is not None, 20.0, "odometry after the rejection")
        assert graph.proc.poll() is None
        assert all(pid_alive(pid) for pid in graph.child_pids().values())
    finally:
        io.close()


def _with(msg: PoseStamped, x: float | None = None, qw: float | None = None) -> PoseStamped:
    if x is not None:
        msg.pose.position.x = x
    if qw is not None:
        msg.pose.orientation.w = qw
        msg.pose.orientation.x = msg.pose.orientation.y = msg.pose.orientation.z = 0.0
    return msg


def test_killed_node_is_reported_and_launcher_exits_nonzero(tmp_path):
    # own domain: the module's fixture graph keeps running meanwhile
    g = Graph(["--rate", "2", "--no-cameras"], tmp_path / "up.log", domain_id=isolated_domain_id())
    try:
        pids = g.child_pids()
        g.wait_output(r"\[intball_estimator\].*localization mode", 60.0)
        g.proc.poll()
        import os

        os.kill(pids[names.ESTIMATOR_NODE], signal.SIGKILL)
        assert g.wait(30.0) != 0
        assert f"node {names.ESTIMATOR_NODE} died (exit code -9)" in g.output()
        time.sleep(0.2)
        assert [n for n, pid in pids.items() if pid_alive(pid)] == []
    finally:
        g.stop()


def test_cameras_publish_documented_sizes_then_sigint_exits_cleanly(tmp_path, client):
    from intball_sim.camera import load_cameras

    models = load_cameras()
    g = Graph(["--rate", "1"], tmp_path / "up.log")
    got: dict[str, object] = {}
    subs = []
    try:
        for cam, (image_topic, info_topic) in names.CAMERA_TOPICS.items():
            subs.append(
                client.create_subscription(
                    Image, image_topic, lambda m, c=cam: got.setdefault(c, m), names.IMAGES
                )
            )
            subs.append(
                client.create_subscription(
                    CameraInfo, info_topic, lambda m, c=cam: got.setdefault(c + "/info", m), names.LATCHED
                )
            )
        spin_until(
            client,
            lambda: len(got) == 2 * len(names.CAMERA_TOPICS),
            90.0,
            f"all camera topics, got {list(got)}",
        )
        for cam, model in models.items():
            image, info = got[cam], got[cam + "/info"]
            assert (image.width, image.height, image.encoding) == (model.width, model.height, "rgb8")
            assert (info.width, info.height) == (model.width, model.height)
            assert image.header.frame_id == info.header.frame_id == model.frame_id
            assert convert.array_from_image(image).std() > 1.0  # not a blank frame
        pids = g.child_pids()
        assert g.interrupt(30.0) == 0
        assert "intball up: exit 0" in g.output()
        assert "unclean exit" not in g.output() and "Traceback" not in g.output(), g.output()[-3000:]
        time.sleep(0.2)
        assert [n for n, pid in pids.items() if pid_alive(pid)] == []
    finally:
        for s in subs:
            client.destroy_subscription(s)
        g.stop()


def test_composed_graph_flies_a_tour_and_exits_when_done(tmp_path):
    tour = tmp_path / "tour.yaml"
    tour.write_text(TOUR_YAML)
    # rate 1: one Python executor for all nodes keeps up with ~1x real time (docs/interfaces.md)
    g = Graph(
        ["--composed", "--rate", "1", "--no-cameras", "--tour", str(tour), "--exit-when-done"],
        tmp_path / "up.log",
        domain_id=isolated_domain_id(),  # not the module fixture graph's /clock
    )
    try:
        assert g.wait(150.0) == 0, g.output()[-4000:]
        out = g.output()
        assert "waypoint 1/1 reached" in out
        assert "intball up: exit 0" in out
    finally:
        g.stop()


TOUR_YAML = """\
version: 1
name: test-tour
start: {position: [4.8, 0.0, 0.0], rpy_deg: [0, 0, 0]}
waypoints:
  - {position: [4.9, 0.05, 0.05], rpy_deg: [0, 0, 10], hold_s: 0.5}
"""
