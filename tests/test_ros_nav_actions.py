"""Navigation actions and services through the ROS graph, with a plain rclpy client as a user writes.

One graph for the module (`intball up --rate 5 --no-cameras --localization truth-noise`); the
tests run in file order and each starts from wherever the previous one left the robot. Positions
are checked against ``/intball/ground_truth`` here, on the test side only (the navigation node
sees the estimate).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from ros_graph_helpers import Graph, ensure_domain_id, rclpy_initialised, spin_until

ensure_domain_id()
rclpy = pytest.importorskip("rclpy")

from action_msgs.msg import GoalStatus  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Point, PoseStamped  # noqa: E402
from intball_interfaces.action import CameraTask, Dock, FollowRoute, NavigateTo, Undock  # noqa: E402
from intball_interfaces.msg import FanCommand, KeepOutZones, RobotMode  # noqa: E402
from intball_interfaces.srv import AddKeepOut, RemoveKeepOut  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from sensor_msgs.msg import BatteryState  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from intball_nav.frames import quat_angle, quat_from_rpy  # noqa: E402
from intball_ros import convert, names  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

START = np.array([4.8, 0.0, 0.0])  # the simulator's default start (module centre)


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    d = tmp_path_factory.mktemp("nav")
    g = Graph(
        ["--rate", "5", "--no-cameras", "--localization", "truth-noise", "--data-dir", str(d / "data")],
        d / "up.log",
    )
    yield g
    g.stop()


class User:
    """What a user's program holds: action clients, service clients, a few subscriptions."""

    def __init__(self, graph) -> None:
        self.graph = graph
        self.node = n = rclpy.create_node("test_nav_user")
        self.truth: Odometry | None = None
        self.truth_track: list[np.ndarray] = []
        self.modes: list[RobotMode] = []
        self.battery: list[BatteryState] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.zones: list[KeepOutZones] = []
        self.fans: list[np.ndarray] = []
        n.create_subscription(Odometry, names.GROUND_TRUTH, self._truth, names.RELIABLE_10)
        n.create_subscription(RobotMode, names.MODE, self.modes.append, names.LATCHED)
        n.create_subscription(BatteryState, names.BATTERY, self.battery.append, 10)
        n.create_subscription(DiagnosticArray, names.DIAGNOSTICS, self.diagnostics.append, 10)
        n.create_subscription(KeepOutZones, names.KEEP_OUT_ZONES, self.zones.append, names.LATCHED)
        n.create_subscription(FanCommand, names.FAN_COMMAND, lambda m: self.fans.append(m.thrust), 10)
        self.navigate = ActionClient(n, NavigateTo, names.NAVIGATE_TO)
        self.route = ActionClient(n, FollowRoute, names.FOLLOW_ROUTE)
        self.dock = ActionClient(n, Dock, names.DOCK)
        self.undock = ActionClient(n, Undock, names.UNDOCK)
        self.camera = ActionClient(n, CameraTask, names.CAMERA_TASK)
        triggers = (names.STOP, names.EMERGENCY_STOP, names.STATION_KEEP)
        self.srv = {s: n.create_client(Trigger, s) for s in triggers}
        self.pause = n.create_client(SetBool, names.ROUTE_PAUSE)
        self.add_zone = n.create_client(AddKeepOut, names.ADD_KEEP_OUT)
        self.remove_zone = n.create_client(RemoveKeepOut, names.REMOVE_KEEP_OUT)
        self.params = n.create_client(SetParameters, f"/{names.NAV_NODE}/set_parameters")

    def _truth(self, msg) -> None:
        self.truth = msg
        self.truth_track.append(convert.pose_from_msg(msg.pose.pose).position)

    def close(self) -> None:
        self.node.destroy_node()

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.02)

    def wait(self, future, timeout: float, what: str):
        spin_until(self.node, future.done, timeout, lambda: f"{what}\n{self.graph.output()[-3000:]}")
        return future.result()

    def true_position(self) -> np.ndarray:
        return convert.pose_from_msg(self.truth.pose.pose).position

    def speed(self) -> float:
        return float(np.linalg.norm(convert.state_from_odometry(self.truth).velocity))

    def wait_rest(self, what: str, timeout: float = 30.0, hold: float = 1.0) -> None:
        """Until the true speed has stayed below 5 mm/s for ``hold`` wall s (5 sim s at x5)."""
        since = [None]

        def resting():
            if self.speed() >= 0.005:
                since[0] = None
                return False
            since[0] = since[0] or time.monotonic()
            return time.monotonic() - since[0] >= hold

        spin_until(self.node, resting, timeout, what)

    def send(self, client, goal, feedback=None):
        """Goal handle of an accepted goal (the node accepts every well-formed goal)."""
        handle = self.wait(client.send_goal_async(goal, feedback_callback=feedback), 20.0, "goal response")
        assert handle.accepted
        return handle

    def result(self, handle, timeout: float = 90.0):
        return self.wait(handle.get_result_async(), timeout, "action result")

    def call(self, client, request, timeout: float = 10.0):
        assert client.wait_for_service(timeout_sec=timeout)
        return self.wait(client.call_async(request), timeout, f"service {client.srv_name}")

    def trigger(self, name: str):
        return self.call(self.srv[name], Trigger.Request())

    def set_battery(self, level: float) -> None:
        value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=level)
        req = SetParameters.Request(parameters=[Parameter(name=names.P_BATTERY_LEVEL, value=value)])
        assert self.call(self.params, req).results[0].successful


@pytest.fixture(scope="module")
def user(graph):
    with rclpy_initialised():
        u = User(graph)
        assert u.navigate.wait_for_server(timeout_sec=60.0), graph.output()[-3000:]
        spin_until(u.node, lambda: u.truth is not None and u.modes, 60.0, "ground truth and the mode topic")
        spin_until(u.node, lambda: "waiting" not in u.modes[-1].detail, 60.0, "the navigation node ready")
        yield u
        u.close()


def goal_to(position, yaw_deg: float = 0.0, frame: str = names.WORLD_FRAME, **kw) -> NavigateTo.Goal:
    g = NavigateTo.Goal(**kw)
    g.target = PoseStamped()
    g.target.header.frame_id = frame
    p = g.target.pose.position
    p.x, p.y, p.z = (float(v) for v in position)
    q = quat_from_rpy(0.0, 0.0, math.radians(yaw_deg))
    o = g.target.pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in q)
    return g


def test_mode_battery_and_diagnostics_are_published(user):
    user.modes.clear(), user.battery.clear(), user.diagnostics.clear()
    user.spin(3.0)  # >= 1 Hz sim time at x5: several of each
    assert len(user.modes) >= 2 and user.modes[-1].mode in ("idle", "station_keeping")
    assert len(user.battery) >= 2 and 0.99 < user.battery[-1].percentage <= 1.0
    assert user.diagnostics and user.diagnostics[-1].status[0].message == "no fault"
    zones = user.zones[-1].zones
    assert any(z.name == "dock" and z.fixed for z in zones)


def test_navigate_to_absolute_target_arrives(user):
    target = START + [0.4, 0.2, 0.1]
    feedback = []
    handle = user.send(user.navigate, goal_to(target, 30.0), lambda m: feedback.append(m.feedback))
    res = user.result(handle)
    assert res.status == GoalStatus.STATUS_SUCCEEDED, res.result.reason
    r = res.result
    assert r.success and r.reason.startswith("arrived") and r.position_error < 0.03
    assert math.degrees(r.angle_error) < 3.0
    assert np.linalg.norm(user.true_position() - target) < 0.03
    assert feedback and feedback[0].distance_remaining > 0.3 and feedback[-1].distance_remaining < 0.03
    assert {f.state for f in feedback} >= {"moving", "settling"}


def test_navigate_to_relative_target_moves_in_the_body_frame(user):
    before = user.true_position()
    # robot yawed +30 deg: 0.2 m along body +y is (-0.1, 0.173) in kibo
    res = user.result(user.send(user.navigate, goal_to([0.0, 0.2, 0.0], frame=names.BODY_FRAME)))
    assert res.status == GoalStatus.STATUS_SUCCEEDED, res.result.reason
    moved = user.true_position() - before
    assert np.allclose(moved, [-0.1, 0.1732, 0.0], atol=0.03), moved
    final = convert.pose_from_msg(res.result.final_pose)
    assert quat_angle(quat_from_rpy(0, 0, math.radians(30)), final.quat) < 0.05


@pytest.mark.parametrize(
    ("goal", "reason"),
    [
        (goal_to([50.0, 0.0, 0.0]), "keep-in limit"),
        (goal_to(START, frame="map"), "unknown frame 'map'"),
        (goal_to([math.nan, 0.0, 0.0]), "finite"),
        (goal_to(START, flight_mode="warp"), "unknown flight mode 'warp'"),
    ],
    ids=["outside-module", "unknown-frame", "nan", "unknown-flight-mode"],
)
def test_invalid_goal_is_refused_with_its_reason_and_nothing_moves(user, goal, reason):
    before = user.true_position()
    res = user.result(user.send(user.navigate, goal), timeout=20.0)
    assert res.status == GoalStatus.STATUS_ABORTED
    assert not res.result.success and reason in res.result.reason, res.result.reason
    assert res.result.reason.startswith("navigate rejected: invalid command:")
    user.spin(0.5)
    assert np.linalg.norm(user.true_position() - before) < 0.01


def test_cancel_brings_the_robot_to_rest(user):
    handle = user.send(user.navigate, goal_to(START + [-1.5, 0.0, 0.0]))
    spin_until(user.node, lambda: user.speed() > 0.05, 30.0, "the robot moving")
    cancel = user.wait(handle.cancel_goal_async(), 10.0, "cancel response")
    assert len(cancel.goals_canceling) == 1
    res = user.result(handle, 30.0)
    assert res.status == GoalStatus.STATUS_CANCELED and "canceled" in res.result.reason
    user.wait_rest("the robot at rest")
    user.spin(1.0)
    assert user.speed() < 0.01
    assert user.modes[-1].mode == "station_keeping"


def test_new_goal_preempts_the_running_one(user):
    first = user.send(user.navigate, goal_to(START + [-1.0, 0.3, 0.0]))
    spin_until(user.node, lambda: user.speed() > 0.03, 30.0, "the robot moving")
    target = START + [0.2, -0.2, 0.0]
    second = user.send(user.navigate, goal_to(target))
    res1 = user.result(first, 30.0)
    assert res1.status == GoalStatus.STATUS_ABORTED and "preempted" in res1.result.reason
    res2 = user.result(second)
    assert res2.status == GoalStatus.STATUS_SUCCEEDED, res2.result.reason
    assert np.linalg.norm(user.true_position() - target) < 0.03


def test_a_goal_sent_straight_to_the_controller_ends_the_action(user):
    handle = user.send(user.navigate, goal_to(START + [-1.0, 0.0, 0.0]))
    spin_until(user.node, lambda: user.speed() > 0.03, 30.0, "the robot moving")
    target = START + [0.1, 0.1, 0.0]
    pub = user.node.create_publisher(PoseStamped, names.GOAL_POSE, names.RELIABLE_10)
    spin_until(user.node, lambda: pub.get_subscription_count() > 0, 10.0, "the controller's goal topic")
    pub.publish(goal_to(target).target)  # what `intball goal` or the tour driver do
    res = user.result(handle, 30.0)
    assert (
        res.status == GoalStatus.STATUS_ABORTED and "another goal on /intball/goal_pose" in res.result.reason
    )
    spin_until(user.node, lambda: np.linalg.norm(user.true_position() - target) < 0.03, 60.0, "the new goal")
    user.node.destroy_publisher(pub)


def test_stop_and_emergency_stop_answer_promptly_during_motion(user):
    handle = user.send(user.navigate, goal_to(START + [-1.5, 0.0, 0.2]))
    spin_until(user.node, lambda: user.speed() > 0.05, 30.0, "the robot moving")
    t0 = time.monotonic()
    answer = user.trigger(names.STOP)
    stop_s = time.monotonic() - t0
    assert answer.success and "stopping" in answer.message
    res = user.result(handle, 30.0)
    assert res.status == GoalStatus.STATUS_ABORTED and "station_keeping" in res.result.reason
    user.wait_rest("the robot at rest after stop")

    handle = user.send(user.navigate, goal_to(START + [0.3, 0.0, 0.0]))
    spin_until(user.node, lambda: user.speed() > 0.03, 30.0, "the robot moving again")
    t0 = time.monotonic()
    answer = user.trigger(names.EMERGENCY_STOP)
    estop_s = time.monotonic() - t0
    assert answer.success and "fans off" in answer.message
    assert user.result(handle, 30.0).status == GoalStatus.STATUS_ABORTED
    user.fans.clear()
    spin_until(user.node, lambda: len(user.fans) > 20, 20.0, "fan commands")
    assert np.all(np.asarray(user.fans[-1]) == 0.0)
    spin_until(user.node, lambda: user.modes[-1].mode == "emergency_stop", 10.0, "mode emergency_stop")
    refused = user.result(user.send(user.navigate, goal_to(START)), 20.0)
    assert refused.status == GoalStatus.STATUS_ABORTED and "emergency stop latched" in refused.result.reason
    answer = user.trigger(names.STATION_KEEP)  # re-arm: hold here
    assert answer.success and "re-armed" in answer.message
    user.wait_rest("the robot at rest after re-arming")
    assert max(stop_s, estop_s) < 1.0, (stop_s, estop_s)


def test_follow_route_pauses_resumes_and_completes(user):
    goal = FollowRoute.Goal()
    points = [START + [0.3, 0.0, 0.0], START + [0.3, 0.4, 0.0], START + [-0.5, 0.4, 0.0]]
    goal.waypoints = [goal_to(p).target for p in points]
    goal.hold_times = [0.5, 0.0, 0.0]
    feedback = []
    handle = user.send(user.route, goal, lambda m: feedback.append(m.feedback))
    spin_until(user.node, lambda: feedback and feedback[-1].current_waypoint == 2, 60.0, "waypoint 2")
    spin_until(user.node, lambda: user.speed() > 0.03, 30.0, "flying to waypoint 2")
    answer = user.call(user.pause, SetBool.Request(data=True))
    assert answer.success and "paused" in answer.message
    spin_until(user.node, lambda: feedback[-1].paused, 10.0, "paused feedback")
    user.wait_rest("the robot at rest while paused")
    paused_at = user.true_position()
    user.spin(1.0)
    assert np.linalg.norm(user.true_position() - paused_at) < 0.01
    assert not handle.status == GoalStatus.STATUS_SUCCEEDED
    assert user.call(user.pause, SetBool.Request(data=False)).success
    res = user.result(handle)
    assert res.status == GoalStatus.STATUS_SUCCEEDED, res.result.reason
    assert res.result.waypoints_completed == 3
    assert np.linalg.norm(user.true_position() - points[-1]) < 0.03
    assert not user.call(user.pause, SetBool.Request(data=True)).success  # no route any more


def test_route_with_too_many_waypoints_or_bad_hold_times_is_refused(user):
    goal = FollowRoute.Goal(waypoints=[goal_to(START).target] * 21)
    res = user.result(user.send(user.route, goal), 20.0)
    assert res.status == GoalStatus.STATUS_ABORTED and "1..20 waypoints" in res.result.reason
    goal = FollowRoute.Goal(waypoints=[goal_to(START).target] * 2, hold_times=[1.0])
    res = user.result(user.send(user.route, goal), 20.0)
    assert res.status == GoalStatus.STATUS_ABORTED and "hold_times" in res.result.reason


def test_keep_out_zone_added_during_a_flight_is_avoided_by_replanning(user):
    start = START + [-0.5, 0.4, 0.0]  # where the route test ended (flown again if not)
    if np.linalg.norm(user.true_position() - start) > 0.03:
        assert user.result(user.send(user.navigate, goal_to(start))).status == GoalStatus.STATUS_SUCCEEDED
    target = START + [-0.5, -0.6, 0.0]  # straight line along -y through the zone added below
    user.truth_track.clear()
    handle = user.send(user.navigate, goal_to(target))
    spin_until(user.node, lambda: user.speed() > 0.03, 30.0, "the robot moving")
    added_at = len(user.truth_track)
    zone = AddKeepOut.Request(name="crew_work", min=Point(x=3.9, y=-0.35, z=-1.0))
    zone.max = Point(x=4.7, y=-0.05, z=1.0)
    answer = user.call(user.add_zone, zone)
    assert answer.success, answer.reason
    try:
        _avoid_and_check_zone(user, handle, added_at, target)
    finally:
        user.call(user.remove_zone, RemoveKeepOut.Request(name="crew_work"))  # later tests fly here
    missing = user.call(user.remove_zone, RemoveKeepOut.Request(name="crew_work"))
    assert not missing.success and "no keep-out zone named" in missing.reason


def _avoid_and_check_zone(user, handle, added_at, target):
    assert user.true_position()[1] > 0.2  # still well before the zone when it appeared
    spin_until(user.node, lambda: any(z.name == "crew_work" for z in user.zones[-1].zones), 10.0, "zone list")
    assert not next(z for z in user.zones[-1].zones if z.name == "crew_work").fixed
    res = user.result(handle, 120.0)
    assert res.status == GoalStatus.STATUS_SUCCEEDED, res.result.reason
    assert np.linalg.norm(user.true_position() - target) < 0.03
    track = np.array(user.truth_track[added_at:])
    lo, hi = np.array([3.9, -0.35, -1.0]) - 0.1, np.array([4.7, -0.05, 1.0]) + 0.1  # + robot radius
    hits = np.all((track >= lo) & (track <= hi), axis=1)
    assert not hits.any(), track[hits][:3]
    assert np.ptp(track[:, 0]) > 0.2  # it went around (a detour in x), not through
    assert "re-planned" in user.graph.output()
    # a target inside the zone is refused; a zone on the robot is refused; fixed zones stay
    inside = user.result(user.send(user.navigate, goal_to([4.3, -0.2, 0.0])), 20.0)
    assert inside.status == GoalStatus.STATUS_ABORTED and "crew_work" in inside.result.reason
    here = user.true_position()
    on_robot = AddKeepOut.Request(name="on_me", min=Point(x=here[0] - 0.1, y=here[1], z=here[2]))
    on_robot.max = Point(x=here[0] + 0.1, y=here[1] + 0.1, z=here[2] + 0.1)
    answer = user.call(user.add_zone, on_robot)
    assert not answer.success and "move it away" in answer.reason
    bad = AddKeepOut.Request(name="flat", min=Point(x=1.0, y=0.0, z=0.0), max=Point(x=2.0, y=0.0, z=1.0))
    answer = user.call(user.add_zone, bad)
    assert not answer.success and "below max" in answer.reason
    assert not user.call(user.remove_zone, RemoveKeepOut.Request(name="dock")).success


def test_camera_task_without_cameras_fails_with_the_reason(user):
    res = user.result(user.send(user.camera, CameraTask.Goal(task="snapshot")), 20.0)
    assert res.status == GoalStatus.STATUS_ABORTED
    assert "no main camera image" in res.result.reason and "--no-cameras" in res.result.reason
    res = user.result(user.send(user.camera, CameraTask.Goal(task="paint")), 20.0)
    assert res.status == GoalStatus.STATUS_ABORTED and "unknown task 'paint'" in res.result.reason


def test_dock_then_undock(user):
    feedback = []
    res = user.result(user.send(user.dock, Dock.Goal(), lambda m: feedback.append(m.feedback)), 150.0)
    assert res.status == GoalStatus.STATUS_SUCCEEDED, res.result.reason
    assert res.result.success and res.result.position_error < 0.01
    stages = [f.stage for f in feedback]
    assert "standoff" in stages and "final" in stages, sorted(set(stages))
    # cameras off: the final approach flies on the state estimate and says so (never silently)
    assert not res.result.dock_marker_used
    assert "on the state estimate, not the dock marker: no nav camera images" in res.result.reason
    assert all("on the state estimate" in f.detail for f in feedback if f.stage == "final")
    spin_until(user.node, lambda: user.modes[-1].mode == "docked", 10.0, "mode docked")
    docked = np.array([1.10, 0.0, 0.63])  # robot touching the dock face centre (docs/autonomy.md)
    assert np.linalg.norm(user.true_position() - docked) < 0.01
    again = user.result(user.send(user.navigate, goal_to([2.0, 0.0, 0.0])), 20.0)
    assert again.status == GoalStatus.STATUS_ABORTED and "undock first" in again.result.reason
    user.spin(2.0)
    assert user.battery[-1].power_supply_status == BatteryState.POWER_SUPPLY_STATUS_CHARGING
    res = user.result(user.send(user.undock, Undock.Goal()), 90.0)
    assert res.status == GoalStatus.STATUS_SUCCEEDED, res.result.reason
    standoff = docked - [0.0, 0.0, 0.20]  # 0.30 m from the face, along its normal (-z)
    assert np.linalg.norm(user.true_position() - standoff) < 0.02
    spin_until(user.node, lambda: user.modes[-1].mode == "station_keeping", 10.0, "mode station_keeping")


def test_low_battery_refuses_motion_and_goes_home(user):
    user.set_battery(0.04)
    spin_until(user.node, lambda: user.modes[-1].mode == "docking", 10.0, "going home to dock")
    assert "battery low" in user.modes[-1].detail
    res = user.result(user.send(user.navigate, goal_to(START)), 20.0)
    assert res.status == GoalStatus.STATUS_ABORTED and "below 5 %" in res.result.reason, res.result.reason
    spin_until(
        user.node,
        lambda: any("battery" in s.name and "below 5 %" in s.message for s in user.diagnostics[-1].status),
        10.0,
        "the battery fault on /diagnostics",
    )
    assert user.diagnostics[-1].status[0].level == b"\x02"  # ERROR first (worst first)
