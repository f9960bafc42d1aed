"""Control node: goal pose + odometry -> intball_nav.gnc -> fan command, wrench, guidance status.

``gnc_step`` runs on a sim-time timer (``control_rate``, default 50 Hz). A goal is planned
and the first fan command published inside the goal callback (no wait for the next tick).
Invalid goals (frame, NaN/inf, quaternion, outside the module or in a keep-out zone) are
rejected: the reason goes to the guidance status topic (state ``rejected``) and the log.

Loss of localization (``intball_nav.estimation.visual_localizer.guard_step``, the same response
as the headless runner): when ``/intball/localization/health`` says ``lost`` (or has been silent
for ``health_timeout`` s), the fans brake the estimated motion, then go to the safe state (all
off); statuses say ``paused`` with the reason. With ``loss_response`` = ``search`` (default
``hold``) it turns in place about its body z axis after braking (``search_rate``, at most
``search_max_s``) until a view brings localization back, then the fans go off. When the health is
``ok`` again the robot holds its pose for a few seconds and then resumes its goal (goals received
meanwhile are kept).

The navigation node (``nav_node``) drives it through ``/intball/control/command``: a goal with its
flight mode (and optionally a look-at point: the main camera is kept on it while flying and
holding, also after a loss of localization), or ``fans_off`` (emergency stop: fans 0 N, goals
refused until the next goal command).
"""

from __future__ import annotations

from geometry_msgs.msg import PoseStamped, WrenchStamped
from intball_interfaces.msg import ControlCommand, FanCommand, GuidanceStatus, LocalizationHealth
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node

from intball_nav import gnc, safety
from intball_nav.dynamics import body_wrench
from intball_nav.estimation.health import HealthLevel, HealthStatus
from intball_nav.estimation.visual_localizer import (
    SEARCH_MAX_S,
    SEARCH_RATE,
    GuardState,
    guard_fans,
    guard_step,
    loss_response_params,
)
from intball_nav.flight_modes import get_flight_mode
from intball_nav.module import load_module
from intball_ros import convert, names
from intball_ros.nodes import run


class ControlNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__(names.CONTROL_NODE, **kwargs)
        rate = float(self.declare_parameter(names.P_CONTROL_RATE, 50.0).value)
        mode_name = str(self.declare_parameter(names.P_FLIGHT_MODE, "nominal").value)
        status_rate = float(self.declare_parameter(names.P_STATUS_RATE, 10.0).value)
        self._health_timeout = float(self.declare_parameter(names.P_HEALTH_TIMEOUT, 2.0).value)
        loss_response = str(self.declare_parameter(names.P_LOSS_RESPONSE, "hold").value)
        search_rate = float(self.declare_parameter(names.P_SEARCH_RATE, SEARCH_RATE).value)
        search_max_s = float(self.declare_parameter(names.P_SEARCH_MAX_S, SEARCH_MAX_S).value)
        self._guard_params = loss_response_params(loss_response, search_rate, search_max_s)
        self._mode = get_flight_mode(mode_name)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._params = gnc.GncParams.default()
        module = load_module()
        self._keep_in = safety.keep_in_from_module(module)
        self._keep_out = tuple(safety.Box(b.min, b.max, b.name) for b in module.keep_out)
        self._gnc = gnc.initial_state(self._mode)
        self._estimate = None
        self._guard = GuardState()
        self._health, self._health_ticks = HealthStatus(), None  # control ticks since the last health
        self._rate = rate
        self._resume = None  # (goal, flight mode, look-at or None) to fly when localization is back
        self._camera = None  # main camera model, for look-at goals
        self._lost = ""  # why localization was lost (kept in the paused statuses)
        self._status_every = max(1, round(rate / status_rate))
        self._ticks = 0
        self._fans_off = False  # emergency stop from the navigation node
        self._fan_pub = self.create_publisher(FanCommand, names.FAN_COMMAND, names.RELIABLE_10)
        self._wrench_pub = self.create_publisher(WrenchStamped, names.WRENCH_COMMAND, names.RELIABLE_10)
        self._status_pub = self.create_publisher(GuidanceStatus, names.GUIDANCE_STATUS, names.RELIABLE_10)
        self.create_subscription(Odometry, names.ODOMETRY, self._on_odometry, names.RELIABLE_10)
        self.create_subscription(PoseStamped, names.GOAL_POSE, self._on_goal, names.RELIABLE_10)
        self.create_subscription(ControlCommand, names.CONTROL_COMMAND, self._on_command, names.RELIABLE_10)
        self.create_subscription(
            LocalizationHealth, names.LOCALIZATION_HEALTH, self._on_health, names.RELIABLE_10
        )
        self.create_timer(1.0 / rate, self._on_tick)
        self.get_logger().info(
            f"control at {rate:g} Hz sim time, flight mode {self._mode.name}, loss response {loss_response}"
        )

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        """``flight_mode`` may change at run time (used by the tour driver); applies to the next goal."""
        for p in params:
            if p.name == names.P_FLIGHT_MODE:
                try:
                    self._mode = get_flight_mode(str(p.value))
                except (KeyError, ValueError) as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_odometry(self, msg: Odometry) -> None:
        try:
            estimate = convert.state_from_odometry(msg)
        except convert.InvalidMessage as exc:
            self.get_logger().warning(f"ignoring odometry: {exc}", throttle_duration_sec=2.0)
            return
        self._estimate = estimate

    def _on_health(self, msg: LocalizationHealth) -> None:
        try:
            self._health, self._health_ticks = convert.health_from_msg(msg), 0
        except convert.InvalidMessage as exc:
            self.get_logger().warning(f"ignoring localization health: {exc}", throttle_duration_sec=2.0)

    def _on_command(self, msg: ControlCommand) -> None:
        if msg.command == "fans_off":
            self._fans_off, self._resume = True, None
            self._gnc = gnc.initial_state(self._mode)
            self.get_logger().warning("fans off (safe state) on request of the navigation node")
            return self._step(self._now(), publish_status=True) if self._estimate is not None else None
        try:
            mode = get_flight_mode(msg.flight_mode)
            goal = convert.pose_from_msg(msg.goal)
            point = convert.look_at_from_command(msg)
        except (KeyError, ValueError) as exc:  # InvalidMessage is a ValueError
            return self._reject(str(exc), self._now())
        self._fans_off = False
        look = None if point is None else gnc.LookAtTarget(point, self._main_camera().T_base_cam)
        self._on_goal(convert.pose_stamped_from_pose(goal, 0.0), mode, look)

    def _main_camera(self):
        """The main camera's model (its mount pose), loaded on the first look-at goal."""
        if self._camera is None:
            from intball_sim.camera import load_cameras  # noqa: PLC0415 - only for look-at goals

            self._camera = load_cameras()["main"]
        return self._camera

    def _on_goal(self, msg: PoseStamped, mode=None, look: gnc.LookAtTarget | None = None) -> None:
        t = self._now()
        mode = self._mode if mode is None else mode
        try:
            goal = convert.goal_from_msg(msg)
            if self._estimate is None:
                raise convert.InvalidMessage("no state estimate yet (is the estimator running?)")
            if self._fans_off:
                raise convert.InvalidMessage(
                    "fans off by the navigation node: re-arm with /intball/station_keep"
                )
        except convert.InvalidMessage as exc:
            return self._reject(str(exc), t)
        new = gnc.set_goal(
            self._gnc, goal, mode, t, self._estimate, self._keep_in, self._keep_out,
            radius=self._params.robot.radius, look_at=look,
        )  # fmt: skip
        if new.status == "rejected":  # an event: keep flying/holding the previous goal
            return self._reject(new.message.removeprefix("goal rejected: "), t, goal)
        if self._guard.paused:  # fly it when localization is back
            self._resume = (goal, mode, look)
            self.get_logger().info(f"goal kept for later: localization {self._guard.mode}")
        else:
            self._gnc = new
            self.get_logger().info(self._gnc.message)
        self._step(t, publish_status=True)

    def _reject(self, reason: str, t: float, goal=None) -> None:
        self.get_logger().warning(f"goal rejected: {reason}")
        self._status_pub.publish(convert.rejection_status_msg(reason, t, self._mode.name, goal))

    def _on_tick(self) -> None:
        if self._estimate is None:
            return
        self._ticks += 1
        t = self._now()
        self._supervise(t)
        self._step(t, publish_status=self._ticks % self._status_every == 0)

    def _supervise(self, t: float) -> None:
        """Loss-of-localization response: next guard mode from the health, and its transitions."""
        health = self._health
        if self._health_ticks is not None:  # counted in ticks: immune to jumps of the clock
            self._health_ticks += 1
            if self._health_ticks > self._health_timeout * self._rate:
                silent = self._health_ticks / self._rate
                health = HealthStatus(HealthLevel.LOST, f"no localization health for {silent:.1f} s")
        before = self._guard.mode
        self._guard = guard_step(self._guard, t, self._estimate, health, self._guard_params)
        if self._guard.mode == before:
            return
        mode, reason, log = self._guard.mode, self._guard.events[-1].reason, self.get_logger()
        if mode in ("braking", "searching", "safe"):
            if before in ("nominal", "recovering") and self._resume is None and self._gnc.goal is not None:
                self._resume = (self._gnc.goal, self._gnc.mode, self._gnc.look_at)
            self._lost = reason if before in ("nominal", "recovering") else self._lost
            what = {"braking": "braking, then fans off", "searching": "turning in place to find a view"}.get(
                mode, "fans off (safe state)"
            )
            return log.warning(f"localization lost ({reason}): {what}; mission paused")
        if mode == "recovering":
            self._gnc = gnc.hold_position(self._gnc, self._estimate, t)
            return log.info(f"localization recovered: holding {self._guard_params.recover_hold_s:g} s")
        resume, self._resume = self._resume, None  # -> nominal
        if resume is None:  # start-up: station-keep the first estimated pose
            self._gnc = (
                gnc.hold_position(self._gnc, self._estimate, t) if before == "initialising" else self._gnc
            )
            return log.info(f"localization {reason}: control active")
        self._gnc = gnc.set_goal(
            self._gnc, resume[0], resume[1], t, self._estimate, self._keep_in, self._keep_out,
            radius=self._params.robot.radius, look_at=resume[2],
        )  # fmt: skip
        log.info(f"localization {reason}: resuming ({self._gnc.message})")

    def _step(self, t: float, publish_status: bool) -> None:
        fans = guard_fans(self._guard, self._estimate, self._params.robot, self._guard_params)
        if fans is None:
            self._gnc, fans, status = gnc.gnc_step(self._gnc, self._estimate, t, self._params)
        if self._fans_off:
            fans = fans * 0.0
        self._fan_pub.publish(convert.fan_command_msg(fans, t))
        self._wrench_pub.publish(convert.wrench_msg(body_wrench(fans, self._params.robot), t))
        if not publish_status:
            return
        if self._guard.paused:
            event = self._guard.events[-1].reason if self._guard.events else self._health.reason
            goal = self._resume[0] if self._resume is not None else self._gnc.goal
            lost_modes = ("braking", "searching", "safe")
            lost = self._lost if self._guard.mode in lost_modes and self._lost != event else ""
            text = f"localization {self._guard.mode}: " + (f"lost ({lost}); " if lost else "") + event
            self._status_pub.publish(convert.paused_status_msg(text, t, self._mode.name, goal))
        else:
            mode = self._gnc.mode.name
            self._status_pub.publish(convert.guidance_status_msg(status, t, mode, self._gnc.goal))


NODE_CLASS = ControlNode


def main() -> None:
    run(ControlNode)


if __name__ == "__main__":
    main()
