"""Navigation node: the autonomy supervisor (modes, battery, faults, docking) over the control node.

``intball_nav.autonomy.supervisor.tick`` runs on a 50 Hz sim-time timer on the state estimate
(``/intball/odometry``; ground truth never reaches this node) and the bump sensor
(``/intball/contact``: a contact -> collision fault -> faulted, stop and hold). Its GNC state
is the goal the robot should fly: whenever that goal (or the emergency stop) changes, it is sent
to the control node on ``/intball/control/command``, which flies it. Arrival, docking stages
and faults are judged here on the estimate with the same ``intball_nav.gnc`` functions the
control node runs.

Services (``std_srvs/Trigger``: stop, emergency_stop, station_keep, reset; keep-out zones;
route pause) are answered at once by ``handle_request`` (microseconds). Nothing in the node
blocks: actions (``nav_actions.NavActions``) are coroutines woken by the tick, path planning runs
in a worker thread, so a service waits at most for the callback running at that moment (the node
spins one single-threaded executor; its callback groups also allow a multi-threaded one).
See docs/interfaces.md and docs/autonomy.md.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from dataclasses import replace
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import WrenchStamped
from intball_interfaces.msg import (
    ControlCommand,
    FanCommand,
    GuidanceStatus,
    KeepOutZones,
    LocalizationHealth,
    RobotMode,
)
from intball_interfaces.srv import AddKeepOut, RemoveKeepOut
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.task import Future
from sensor_msgs.msg import BatteryState, Image
from std_srvs.srv import SetBool, Trigger

from intball_nav import gnc, safety
from intball_nav.autonomy import supervisor as sup
from intball_nav.autonomy.battery import BatteryState as CoreBattery
from intball_nav.autonomy.modes import Event, Mode
from intball_nav.autonomy.params import load_autonomy_params
from intball_nav.estimation.health import HealthLevel, HealthStatus
from intball_nav.flight_modes import load_flight_modes
from intball_nav.module import load_module
from intball_ros import contact, convert, names
from intball_ros.keep_out import Zones
from intball_ros.nav_actions import DOCKED_HOLD, NavActions

STREAMS = ("odometry", "fan_command")  # watched here (the IMU is the estimator's input: odometry covers it)


class NavNode(NavActions, Node):
    def __init__(self, **kwargs) -> None:
        super().__init__(names.NAV_NODE, **kwargs)
        self._rate = float(self.declare_parameter(names.P_CONTROL_RATE, 50.0).value)
        self._default_mode = str(self.declare_parameter(names.P_FLIGHT_MODE, "nominal").value)
        default_dir = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "intball/camera"
        self._data_dir = Path(str(self.declare_parameter(names.P_DATA_DIR, str(default_dir)).value))
        level = float(self.declare_parameter(names.P_BATTERY_LEVEL, 1.0).value)
        watchdog = float(self.declare_parameter(names.P_WATCHDOG_TIMEOUT, 0.5).value)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._module = load_module()
        params = gnc.GncParams.default()
        autonomy = load_autonomy_params(module=self._module, radius=params.robot.radius)
        faults = replace(autonomy.faults, watchdog=dict.fromkeys(STREAMS, watchdog))
        self._ctx = sup.Context(
            replace(autonomy, faults=faults),
            params,
            load_flight_modes(),
            safety.keep_in_from_module(self._module),
        )
        self._zones = Zones.from_module(self._module, params.robot.radius)
        self._auto = sup.AutonomyState(battery=CoreBattery(min(max(level, 0.0), 1.0)))
        self._lock = threading.RLock()
        self._waiters: list[Future] = []
        self._odom_msg = self._converted = self._estimate_cache = self._fan_msg = None
        self._health = None  # HealthStatus once the estimator has initialised
        self._seen = dict.fromkeys(STREAMS)  # stream -> control tick of its last message
        self._ticks = 0
        self._sent_goal = None  # the supervisor goal last sent to the control node (identity)
        self._fans_off_sent = False
        self._last_reason = "start-up"
        self._last_mode_pub = -math.inf
        self._faults_key = None
        self._image = None  # latest main camera image message
        self._sent_positions = deque(maxlen=20)  # (3,) m of the goals last sent to the controller
        self._foreign_since = None  # s sim time since when the controller flies a goal not ours
        self._guidance_t = 0.0
        self._bumps = []  # CollisionReports from the bump sensor since the last tick
        services = MutuallyExclusiveCallbackGroup()
        self._actions_group = ReentrantCallbackGroup()
        self._command_pub = self.create_publisher(ControlCommand, names.CONTROL_COMMAND, names.RELIABLE_10)
        self._mode_pub = self.create_publisher(RobotMode, names.MODE, names.LATCHED)
        self._battery_pub = self.create_publisher(BatteryState, names.BATTERY, names.RELIABLE_10)
        self._diag_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS, names.RELIABLE_10)
        self._zones_pub = self.create_publisher(KeepOutZones, names.KEEP_OUT_ZONES, names.LATCHED)
        self._snapshot_pub = self.create_publisher(Image, names.SNAPSHOT_IMAGE, names.IMAGES)
        sub = self.create_subscription
        sub(Odometry, names.ODOMETRY, self._on_odometry, names.RELIABLE_10)
        sub(FanCommand, names.FAN_COMMAND, self._on_fans, names.RELIABLE_10)
        sub(LocalizationHealth, names.LOCALIZATION_HEALTH, self._on_health, names.RELIABLE_10)
        sub(GuidanceStatus, names.GUIDANCE_STATUS, self._on_guidance, names.RELIABLE_10)
        sub(WrenchStamped, names.CONTACT, self._on_contact, names.RELIABLE_10)
        sub(Image, names.MAIN_IMAGE, self._on_image, names.IMAGES, callback_group=self._actions_group)
        for name, event in (
            (names.STOP, Event.STOP),
            (names.EMERGENCY_STOP, Event.EMERGENCY_STOP),
            (names.STATION_KEEP, Event.STATION_KEEP),
            (names.RESET, Event.RESET),
        ):
            cb = lambda req, res, e=event: self._on_trigger(e, res)  # noqa: E731
            self.create_service(Trigger, name, cb, callback_group=services)
        self.create_service(SetBool, names.ROUTE_PAUSE, self._on_pause, callback_group=services)
        self.create_service(AddKeepOut, names.ADD_KEEP_OUT, self._on_add_zone, callback_group=services)
        self.create_service(
            RemoveKeepOut, names.REMOVE_KEEP_OUT, self._on_remove_zone, callback_group=services
        )
        self.create_timer(1.0 / self._rate, self._on_tick, callback_group=MutuallyExclusiveCallbackGroup())
        self._init_actions()
        self._set_zones(self._zones)
        self.get_logger().info(
            f"navigation at {self._rate:g} Hz sim time, battery {100 * level:.0f} %, data in {self._data_dir}"
        )

    # -- inputs --------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _mark(self, stream: str) -> None:
        self._seen[stream] = self._ticks

    def _on_odometry(self, msg: Odometry) -> None:
        self._odom_msg = msg  # converted when used (100 Hz in, 50 Hz used)
        self._mark("odometry")

    def _on_fans(self, msg: FanCommand) -> None:
        self._fan_msg = msg
        self._mark("fan_command")

    @property
    def _estimate(self):
        """Latest state estimate (RigidBodyState, kibo frame), None before the first odometry."""
        msg = self._odom_msg
        if msg is not None and msg is not self._converted:
            self._converted = msg
            try:
                self._estimate_cache = convert.state_from_odometry(msg)
            except convert.InvalidMessage as exc:
                self.get_logger().warning(f"ignoring odometry: {exc}", throttle_duration_sec=2.0)
        return self._estimate_cache

    def _fan_thrust(self) -> np.ndarray:
        if self._fan_msg is None:
            return np.zeros(8)
        try:
            return convert.thrust_from_fan_command(self._fan_msg)
        except convert.InvalidMessage:
            return np.zeros(8)

    def _on_health(self, msg: LocalizationHealth) -> None:
        if msg.level == convert.INITIALISING and self._health is None:
            return  # the supervisor starts once the estimator has initialised
        try:
            self._health = convert.health_from_msg(msg)
        except convert.InvalidMessage as exc:
            self.get_logger().warning(f"ignoring localization health: {exc}", throttle_duration_sec=2.0)

    def _on_guidance(self, msg: GuidanceStatus) -> None:
        """Notes since when the controller flies a goal this node did not send (``_foreign_since``)."""
        goal = convert.goal_from_status(msg) if msg.state != "rejected" else None
        if goal is None:
            return  # rejection events and idle statuses carry no goal being flown
        ours = any(np.linalg.norm(goal.position - p) < 1e-3 for p in self._sent_positions)
        t = convert.time_from_stamp(msg.header.stamp)
        self._foreign_since = (
            None if ours else (self._foreign_since if self._foreign_since is not None else t)
        )
        self._guidance_t = t

    def foreign_goal_for(self) -> float:
        """s sim time the controller has been flying a goal not sent by this node (0 if none)."""
        return 0.0 if self._foreign_since is None else self._guidance_t - self._foreign_since

    def _on_contact(self, msg: WrenchStamped) -> None:
        """Bump sensor: a contact started. Near the dock it is named ``dock`` (no collision while
        docking, decided by the fault monitor), else ``obstacle``."""
        with self._lock:
            est, dock = self._estimate, self._ctx.autonomy.docking
            gap = np.inf if est is None else np.linalg.norm(est.position - dock.docked_pose.position)
            near = bool(gap <= dock.standoff)
            report = contact.collision_from_msg(msg, near)
            self._bumps.append(report)
        self.get_logger().info(f"bump sensor: contact with {report.body}: {contact.describe(msg)}")

    def _on_image(self, msg: Image) -> None:
        self._image = msg

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        for p in params:
            if p.name == names.P_BATTERY_LEVEL:
                level = float(p.value)
                if not (math.isfinite(level) and 0.0 <= level <= 1.0):
                    return SetParametersResult(successful=False, reason="battery_level must be in [0, 1]")
                with self._lock:
                    self._auto = replace(self._auto, battery=CoreBattery(level))
        return SetParametersResult(successful=True)

    # -- the supervisor loop -----------------------------------------------------------------
    def _ready(self) -> str:
        """Empty when the supervisor can run, else what it waits for."""
        missing = [s for s, tick in self._seen.items() if tick is None]
        if self._health is None:
            missing.append("localization health")
        return f"waiting for {', '.join(missing)}" if missing else ""

    def _on_tick(self) -> None:
        self._ticks += 1
        t = self._now()
        with self._lock:
            waiting = self._ready()
            if waiting:
                self._publish_mode(t, waiting)
                return
            ages = {s: (self._ticks - tick) / self._rate for s, tick in self._seen.items()}
            health = self._health or HealthStatus(HealthLevel.LOST, "no health")
            bumps, self._bumps = tuple(self._bumps), []
            inputs = sup.TickInputs(
                t, 1.0 / self._rate, self._estimate, self._fan_thrust(), ages, health.level, health.reason,
                collisions=bumps,
            )  # fmt: skip
            before = self._auto.faults
            self._auto, out = sup.tick(self._auto, inputs, self._ctx)
            known = {f.code for f in before}
            for fault in out.faults:
                if fault.code not in known:  # new fault: its text once in the log (all on /diagnostics)
                    self.get_logger().warning(f"fault: {fault.text}")
            for tr in out.transitions:
                self._log_transition(tr)
            self._forward(t)
            self._publish_status(t, changed=bool(out.transitions), faults_changed=out.faults != before)
            waiters, self._waiters = self._waiters, []
        for f in waiters:
            if not f.done():
                f.set_result(t)

    def _log_transition(self, tr) -> None:
        if tr.accepted:
            self._last_reason = tr.reason
        text = f"{tr.event}: {tr.source} -> {tr.target}: {tr.reason}"
        if tr.accepted:
            self.get_logger().info(text)
        else:
            self.get_logger().warning(text)

    def request(self, request: sup.Request):
        """Apply a request to the supervisor now (any thread); returns the Transition."""
        with self._lock:
            if self._estimate is None or self._ready():
                why = self._ready() or "no state estimate yet"
                return sup.Transition(request.event, False, self._auto.mode.mode, self._auto.mode.mode,
                                      sup.Action.NONE, f"{request.event} rejected: {why}")  # fmt: skip
            self._auto, tr = sup.handle_request(self._auto, request, self._estimate, self._now(), self._ctx)
            self._log_transition(tr)
            self._forward(self._now())
            self._publish_status(self._now(), changed=tr.accepted)
            return tr

    def _forward(self, t: float) -> None:
        """Send the supervisor's goal / emergency stop to the control node when it changed."""
        s = self._auto
        if s.mode.mode == Mode.EMERGENCY_STOP:
            if not self._fans_off_sent:
                self._command_pub.publish(ControlCommand(header=convert.header(t, names.WORLD_FRAME),
                                                         command="fans_off"))  # fmt: skip
                self._fans_off_sent, self._sent_goal = True, None
            return
        goal = s.gnc.goal
        if goal is None or goal is self._sent_goal:
            return  # idle / docked (no goal): the control node keeps holding its last goal
        msg = ControlCommand(header=convert.header(t, names.WORLD_FRAME), command="goal")
        msg.goal, msg.flight_mode = convert.msg_from_pose(goal), s.gnc.mode.name
        self._sent_positions.append(goal.position)
        self._foreign_since = None  # counted afresh from the statuses after this goal
        self._command_pub.publish(msg)
        self._sent_goal, self._fans_off_sent = goal, False

    def wait_tick(self) -> Future:
        """A future completed at the next supervisor tick (await it in an action coroutine)."""
        fut = Future(executor=self.executor)
        with self._lock:
            self._waiters.append(fut)
        return fut

    # -- outputs --------------------------------------------------------------------------------
    def _publish_status(self, t: float, changed: bool, faults_changed: bool = False) -> None:
        periodic = t - self._last_mode_pub >= 1.0 or t < self._last_mode_pub
        if changed or periodic:
            self._publish_mode(t)
        if periodic or faults_changed:
            self._battery_pub.publish(convert.battery_msg(self._auto.battery.level, t, self._auto.mode.mode))
            self._diag_pub.publish(convert.diagnostics_msg(self._auto.faults, t))

    def _publish_mode(self, t: float, detail: str | None = None) -> None:
        self._last_mode_pub = t
        m = self._auto.mode
        if detail is None and m.mode == Mode.DOCKED:  # the core says "latched, fans off": not in this sim
            detail = f"{m.reason.split(':')[0]}: {DOCKED_HOLD}"
        self._mode_pub.publish(convert.robot_mode_msg(str(m.mode), detail or m.reason, t))

    # -- services ---------------------------------------------------------------------------------
    def _on_trigger(self, event: Event, res: Trigger.Response) -> Trigger.Response:
        tr = self.request(sup.Request(event))
        res.success, res.message = tr.accepted, tr.reason
        return res

    def _on_add_zone(self, req: AddKeepOut.Request, res: AddKeepOut.Response) -> AddKeepOut.Response:
        try:
            box = convert.box_from_keep_out(req)
            with self._lock:
                est = self._estimate
                self._set_zones(self._zones.add(box, est.position if est is not None else None))
        except ValueError as exc:
            res.success, res.reason = False, f"keep-out zone rejected: {exc}"
            return res
        res.success, res.reason = True, f"keep-out zone {box.name} added"
        self.get_logger().info(f"{res.reason}: {box.min.tolist()} .. {box.max.tolist()} m")
        return res

    def _on_remove_zone(self, req: RemoveKeepOut.Request, res: RemoveKeepOut.Response):
        try:
            with self._lock:
                self._set_zones(self._zones.remove(str(req.name)))
        except ValueError as exc:
            res.success, res.reason = False, str(exc)
            return res
        res.success, res.reason = True, f"keep-out zone {req.name} removed"
        self.get_logger().info(res.reason)
        return res

    def _set_zones(self, zones: Zones) -> None:
        self._zones = zones
        self._ctx = replace(self._ctx, keep_out=zones.goal_boxes)
        self._zones_pub.publish(convert.keep_out_zones_msg(zones.pmap.keep_out, zones.fixed, self._now()))


NODE_CLASS = NavNode


def main() -> None:
    from intball_ros.nodes import run

    run(NavNode)


if __name__ == "__main__":
    main()
