"""``RosRobot``: the :class:`intball_teleop.onboard.RobotBackend` of the real ROS graph, used by
the bridge node (the onboard end of the link).

It reads the state estimate (``/intball/odometry``, never ground truth), localization health,
guidance status, fan commands, mode, battery, diagnostics and camera images. Goals go to the
navigation node's ``NavigateTo`` action when its server is up (its result completes or fails
the command); without a navigation node, to ``/intball/goal_pose`` (arrival and rejection then
come from the guidance status). Stop / station keep / emergency stop / reset call the
navigation node's Trigger services when they exist; without them the bridge holds the current
estimate and says so in the log. A route is one ``FollowRoute`` goal (its feedback is the route's
progress; pause / resume is the ``/intball/route/pause`` service); keep-out zones come from the
latched ``/intball/keep_out_zones`` and are edited through the keep-out services. Callbacks
(rclpy thread) only store the latest messages; answers of services reach the bridge through
its ``done(ok, reason)`` callbacks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Point, PoseStamped
from intball_interfaces.action import CameraTask, Dock, FollowRoute, NavigateTo, Undock
from intball_interfaces.msg import FanCommand, GuidanceStatus, KeepOutZones, LocalizationHealth, RobotMode
from intball_interfaces.srv import AddKeepOut, RemoveKeepOut
from nav_msgs.msg import Odometry
from rclpy.action import ActionClient
from rclpy.node import Node
from sensor_msgs.msg import BatteryState, Image
from std_srvs.srv import SetBool, Trigger

from intball_nav.frames import Pose
from intball_nav.robot import load_robot_params
from intball_nav.safety import Box
from intball_ros import convert, names
from intball_teleop import commands as C

IMAGE_TOPICS = {
    "main": names.MAIN_IMAGE,
    "nav_left": names.NAV_LEFT_IMAGE,
    "nav_right": names.NAV_RIGHT_IMAGE,
}
GOAL_MATCH_M = 1e-4
NAV_WAIT_S = 15.0  # s a goal waits for the navigation node's action server (graph start-up)


class RosRobot:
    """RobotBackend over the graph; callbacks (rclpy thread) only store the latest messages."""

    source = "ros"

    def __init__(self, node: Node, workspace: C.Workspace) -> None:
        self.node, self.workspace = node, workspace
        self.fan_max = load_robot_params().fan_max
        self._lock = threading.Lock()
        self._odom: Odometry | None = None
        self._health: LocalizationHealth | None = None
        self._status: GuidanceStatus | None = None
        self._fans: FanCommand | None = None
        self._mode: RobotMode | None = None
        self._battery: BatteryState | None = None
        self._faults: list[str] = []
        self._images: dict[str, Image] = {}
        self._goal: np.ndarray | None = None
        self._goal_sent_at = 0.0
        self._failed = ""
        self._zones: list[dict] | None = None
        self._task_files: list[str] = []  # files of the last camera task that succeeded
        self._route: tuple[object, int, bool] | None = (
            None  # (token, current waypoint, paused) of the route goal
        )
        sub = node.create_subscription
        q = names.RELIABLE_10
        sub(Odometry, names.ODOMETRY, self._store("_odom"), q)
        sub(LocalizationHealth, names.LOCALIZATION_HEALTH, self._store("_health"), q)
        sub(GuidanceStatus, names.GUIDANCE_STATUS, self._on_status, q)
        sub(FanCommand, names.FAN_COMMAND, self._store("_fans"), q)
        sub(RobotMode, names.MODE, self._store("_mode"), q)
        sub(BatteryState, names.BATTERY, self._store("_battery"), q)
        sub(DiagnosticArray, names.DIAGNOSTICS, self._on_diagnostics, q)
        sub(KeepOutZones, names.KEEP_OUT_ZONES, self._on_zones, names.LATCHED)
        for camera, topic in IMAGE_TOPICS.items():
            sub(Image, topic, self._on_image(camera), names.IMAGES)
        self._goal_pub = node.create_publisher(PoseStamped, names.GOAL_POSE, q)
        self._nav = ActionClient(node, NavigateTo, names.NAVIGATE_TO)
        self._dock = ActionClient(node, Dock, names.DOCK)
        self._undock = ActionClient(node, Undock, names.UNDOCK)
        self._camera_task = ActionClient(node, CameraTask, names.CAMERA_TASK)
        self._follow_route = ActionClient(node, FollowRoute, names.FOLLOW_ROUTE)
        self._nav_token: object | None = None  # the goal whose result we wait for
        # a goal waiting for its action server (graph start-up): (client, action name, send, deadline)
        self._pending: tuple[ActionClient, str, Callable[[], None], float] | None = None
        self._nav_state: tuple[str, str] | None = None
        self._estop = node.create_client(Trigger, names.EMERGENCY_STOP)
        self._station_keep = node.create_client(Trigger, names.STATION_KEEP)
        self._reset = node.create_client(Trigger, names.RESET)
        self._route_pause = node.create_client(SetBool, names.ROUTE_PAUSE)
        self._add_zone = node.create_client(AddKeepOut, names.ADD_KEEP_OUT)
        self._remove_zone = node.create_client(RemoveKeepOut, names.REMOVE_KEEP_OUT)

    def _store(self, attr: str):
        def callback(msg) -> None:
            with self._lock:
                setattr(self, attr, msg)

        return callback

    def _on_image(self, camera: str):
        def callback(msg: Image) -> None:
            with self._lock:
                self._images[camera] = msg

        return callback

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        faults = [
            s.name + (f": {s.message}" if s.message else "")
            for s in msg.status
            if s.level >= DiagnosticStatus.ERROR
        ]
        with self._lock:
            self._faults = faults

    def _on_zones(self, msg: KeepOutZones) -> None:
        zones = convert.zones_from_keep_out_zones(msg)
        with self._lock:
            self._zones = zones

    def _on_status(self, msg: GuidanceStatus) -> None:
        with self._lock:
            self._status = msg
            if self._goal is None or msg.state != "rejected":
                return
            goal = convert.goal_from_status(msg)
            if goal is None or np.allclose(goal.position, self._goal, atol=GOAL_MATCH_M):
                self._failed = msg.message or "goal rejected by the controller"

    # -- RobotBackend ---------------------------------------------------------------------

    def telemetry(self) -> dict | None:
        with self._lock:
            odom, health, status, fans = self._odom, self._health, self._status, self._fans
            mode, battery, faults = self._mode, self._battery, list(self._faults)
        if odom is None:
            return None
        try:
            state = convert.state_from_odometry(odom)
        except convert.InvalidMessage:
            return None
        goal = convert.goal_from_status(status) if status is not None else None
        effort = None
        if fans is not None and self.fan_max > 0:
            effort = float(np.clip(np.mean(np.asarray(fans.thrust, float)) / self.fan_max, 0.0, 1.0))
        return {
            "stamp": convert.time_from_stamp(odom.header.stamp),
            "pose": {"position": state.position.tolist(), "quat": state.quat.tolist()},
            "velocity": state.velocity.tolist(),
            "angular_velocity": state.omega.tolist(),
            "localization": {
                "level": health.level if health else "unknown",
                "reason": health.reason if health else "no localization health received",
            },
            "battery": None
            if battery is None
            else {"percent": 100.0 * float(battery.percentage), "charging": False},
            "fan_effort": effort,
            "guidance": {
                "state": status.state if status else "unknown",
                "message": status.message if status else "",
                "goal": None if goal is None else goal.position.tolist(),
            },
            "mode": mode.mode if mode is not None else (status.state if status else "unknown"),
            # what the navigation node does or waits for ("waiting for fan_command" at start-up:
            # it refuses goals until then)
            "mode_detail": mode.detail if mode is not None else "",
            "faults": faults,
        }

    def go_to(self, position: np.ndarray, quat: np.ndarray, flight_mode: str) -> None:
        self.workspace.check(position)
        msg = convert.pose_stamped_from_pose(Pose(np.asarray(position, float), np.asarray(quat, float)), 0.0)
        msg.header.stamp = self.node.get_clock().now().to_msg()
        with self._lock:
            self._goal, self._failed, self._goal_sent_at = np.asarray(position, float), "", time.monotonic()
            self._nav_token, self._nav_state = None, None
        if not self._start_or_wait(self._nav, names.NAVIGATE_TO, lambda: self._send_nav(msg, flight_mode)):
            self._goal_pub.publish(
                msg
            )  # no navigation node (intball up --no-nav): the controller's goal topic

    def _start_or_wait(self, client: ActionClient, name: str, send: Callable[[], None]) -> bool:
        """Send now if the action server is up; wait for it (motion() sends it) while the
        navigation node starts; False when there is no navigation node at all."""
        if client.server_is_ready():
            send()
            return True
        if names.NAV_NODE not in self.node.get_node_names():
            return False
        with self._lock:
            self._pending = (client, name, send, time.monotonic() + NAV_WAIT_S)
            self._nav_token, self._nav_state = object(), ("moving", f"waiting for the {name} server")
        return True

    def _send_nav(self, msg: PoseStamped, flight_mode: str) -> None:
        token = object()
        with self._lock:
            self._pending = None
            self._nav_token, self._nav_state = token, ("moving", "")
        future = self._nav.send_goal_async(NavigateTo.Goal(target=msg, flight_mode=flight_mode))
        future.add_done_callback(lambda f: self._on_goal_response(token, f))

    def follow_route(self, waypoints: list, flight_mode: str) -> bool:
        """One FollowRoute goal (kibo frame); False without a navigation node."""
        goal = FollowRoute.Goal(flight_mode=flight_mode)
        stamp = self.node.get_clock().now().to_msg()
        for position, quat, hold in waypoints:
            msg = convert.pose_stamped_from_pose(
                Pose(np.asarray(position, float), np.asarray(quat, float)), 0.0
            )
            msg.header.stamp = stamp
            goal.waypoints.append(msg)
            goal.hold_times.append(float(hold))
        with self._lock:
            self._goal, self._failed, self._nav_token, self._nav_state = None, "", None, None
            self._route = None

        def send() -> None:
            token = object()
            with self._lock:
                self._pending = None
                self._nav_token, self._nav_state = token, ("moving", "")
                self._route = (token, 0, False)
            future = self._follow_route.send_goal_async(goal, feedback_callback=self._route_feedback(token))
            future.add_done_callback(lambda f: self._on_goal_response(token, f))

        return self._start_or_wait(self._follow_route, names.FOLLOW_ROUTE, send)

    def _route_feedback(self, token: object):
        def callback(msg) -> None:
            fb = msg.feedback
            with self._lock:
                if self._route is not None and self._route[0] is token:
                    self._route = (token, int(fb.current_waypoint), bool(fb.paused))

        return callback

    def route_progress(self) -> tuple[int, bool] | None:
        with self._lock:
            route, current = self._route, self._nav_token
        if route is None or route[0] is not current:
            return None
        return route[1], route[2]

    def pause_route(self, paused: bool, done: Callable[[bool, str], None]) -> None:
        self._call(self._route_pause, SetBool.Request(data=paused), names.ROUTE_PAUSE, done)

    def task_files(self) -> list[str]:
        """Paths the last camera task wrote (the bridge downlinks its images)."""
        with self._lock:
            return list(self._task_files)

    def keep_out_zones(self) -> list[dict] | None:
        with self._lock:
            return self._zones

    def add_keep_out(self, box: Box, done: Callable[[bool, str], None]) -> None:
        self._call(self._add_zone, convert.keep_out_from_box(box), names.ADD_KEEP_OUT, done)

    def remove_keep_out(self, name: str, done: Callable[[bool, str], None]) -> None:
        self._call(self._remove_zone, RemoveKeepOut.Request(name=name), names.REMOVE_KEEP_OUT, done)

    def _call(self, client, request, name: str, done: Callable[[bool, str], None]) -> None:
        """Call a service; done(ok, reason) with its answer (SetBool: message; ours: reason)."""
        if not client.service_is_ready():
            done(False, f"no {name} service in this graph (intball up without --no-nav)")
            return

        def answered(future) -> None:
            if future.exception() is not None:
                done(False, f"{name}: {future.exception()}")
                return
            res = future.result()
            done(bool(res.success), str(getattr(res, "reason", "") or getattr(res, "message", "")))

        client.call_async(request).add_done_callback(answered)

    def dock(self, undock: bool) -> bool:
        """Start the navigation node's Dock / Undock action; False if it is not available."""
        client, action = (self._undock, Undock) if undock else (self._dock, Dock)
        if not client.server_is_ready():
            return False
        token = object()
        with self._lock:
            self._goal, self._failed = None, ""
            self._nav_token, self._nav_state = token, ("moving", "")
        future = client.send_goal_async(action.Goal(dock_id=""))
        future.add_done_callback(lambda f: self._on_goal_response(token, f))
        return True

    def camera_task(self, payload: dict) -> bool:
        """Start the navigation node's CameraTask action; False if it is not available."""
        if not self._camera_task.server_is_ready():
            return False
        goal = CameraTask.Goal(task=payload["task"], camera="", bay=str(payload.get("bay", "")))
        x, y, z = (float(v) for v in payload.get("point", [0.0, 0.0, 0.0]))
        goal.point = Point(x=x, y=y, z=z)
        goal.duration = float(payload.get("duration_s", 0.0))
        token = object()
        with self._lock:
            self._goal, self._failed, self._task_files = None, "", []
            self._nav_token, self._nav_state = token, ("moving", "")
        future = self._camera_task.send_goal_async(goal)
        future.add_done_callback(lambda f: self._on_goal_response(token, f))
        return True

    def _on_goal_response(self, token: object, future) -> None:
        handle = future.result()
        if not handle.accepted:
            self._set_nav(token, ("failed", "the navigation node refused the goal"))
            return
        handle.get_result_async().add_done_callback(lambda f: self._on_result(token, f))

    def _on_result(self, token: object, future) -> None:
        result = future.result().result
        if not result.success:
            self._set_nav(token, ("failed", result.reason or "the action failed"))
            return
        summary = [result.reason] if result.reason and result.reason != "arrived" else []
        if getattr(result, "files", None):
            summary.append("files: " + ", ".join(f.rsplit("/", 1)[-1] for f in result.files))
            with self._lock:
                if self._nav_token is token:
                    self._task_files = [str(f) for f in result.files]
        if getattr(result, "code_ids", None):
            summary.append("codes: " + ", ".join(result.code_ids))
        self._set_nav(token, ("arrived", "; ".join(summary)))

    def _set_nav(self, token: object, state: tuple[str, str]) -> None:
        with self._lock:
            if self._nav_token is token:  # ignore results of preempted goals
                self._nav_state = state

    def _trigger(self, client, what: str) -> bool:
        if not client.service_is_ready():
            return False
        client.call_async(Trigger.Request())
        return True

    def motion(self) -> tuple[str, str]:
        with self._lock:
            pending = self._pending
        if pending is not None:
            client, name, send, deadline = pending
            if client.server_is_ready():
                send()
            elif time.monotonic() > deadline:
                with self._lock:
                    self._pending, self._nav_state = None, None
                return "failed", f"no {name} action server after {NAV_WAIT_S:g} s"
        with self._lock:
            status, goal, failed, nav = self._status, self._goal, self._failed, self._nav_state
        if nav is not None:
            return nav
        if failed:
            return "failed", failed
        if goal is None or status is None:
            return "idle", ""
        target = convert.goal_from_status(status)
        if target is None or not np.allclose(target.position, goal, atol=GOAL_MATCH_M):
            return "moving", "waiting for the controller to take the goal"
        if status.state == "paused":
            return "paused", status.message
        return ("arrived", "") if status.arrived else ("moving", "")

    def hold(self) -> None:
        with self._lock:
            self._goal, self._nav_token, self._nav_state, self._pending = None, None, None, None
        if self._trigger(self._station_keep, "station keep"):
            return
        tm = self.telemetry()
        if tm is None:
            return
        self.go_to(np.asarray(tm["pose"]["position"]), np.asarray(tm["pose"]["quat"]), "precision")
        with self._lock:
            self._goal = None  # a hold is not a goal the bridge waits for

    def resume(self) -> None:
        """After an emergency stop: the navigation node's reset (emergency_stop -> idle)."""
        self._trigger(self._reset, "reset")

    def emergency_stop(self) -> None:
        with self._lock:
            self._goal, self._nav_token, self._nav_state, self._pending = None, None, None, None
        if not self._trigger(self._estop, "emergency stop"):
            self.node.get_logger().warning(
                f"no {names.EMERGENCY_STOP} service in this graph: holding the current estimate instead"
            )
            self.hold()

    def camera_jpeg(self, camera: str) -> tuple[bytes, float] | None:
        with self._lock:
            msg = self._images.get(camera)
        if msg is None:
            return None
        rgb = convert.array_from_image(msg)
        if rgb.shape[1] > 320:
            rgb = cv2.resize(rgb, (320, int(rgb.shape[0] * 320 / rgb.shape[1])), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 70])
        return (buf.tobytes(), convert.time_from_stamp(msg.header.stamp)) if ok else None
