"""The supervisor loop of the navigation node: ``supervisor.tick`` every control period, requests
from services and actions (``handle_request``), the goal forwarded to the control node, and the
mode / battery / diagnostics outputs.

``_on_tick`` (50 Hz sim-time timer) builds the ``TickInputs`` from the latest inputs (estimate,
fan thrust, stream ages in the node's own ticks, localization health, bump-sensor contacts, the
dock-marker-relative pose while docking), logs new faults and transitions, subscribes the nav
camera while a docking needs it (``dock_actions._sync_dock_camera``), forwards the
supervisor's goal when it changed (``ControlCommand``: goal + flight mode [+ look-at point], or
``fans_off`` in an emergency stop), publishes the status and wakes the action coroutines waiting
on ``wait_tick``.
"""

from __future__ import annotations

from intball_interfaces.msg import ControlCommand
from rclpy.task import Future

from intball_nav.autonomy import supervisor as sup
from intball_nav.autonomy.modes import Mode
from intball_nav.estimation.health import HealthLevel, HealthStatus
from intball_ros import convert, names
from intball_ros.dock_actions import DOCKED_HOLD


class SupervisorLoop:
    """Mixin of NavNode (needs its inputs: _estimate, _fan_thrust, _seen, _health, _bumps, ...)."""

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
            est = self._estimate
            inputs = sup.TickInputs(
                t, 1.0 / self._rate, est, self._fan_thrust(), ages, health.level, health.reason,
                collisions=bumps, T_dock_base=self._dock_marker_input(t, est),
            )  # fmt: skip
            before = self._auto.faults
            self._auto, out = sup.tick(self._auto, inputs, self._ctx)
            known = {f.code for f in before}
            for fault in out.faults:
                if fault.code not in known:  # new fault: its text once in the log (all on /diagnostics)
                    self.get_logger().warning(f"fault: {fault.text}")
            for tr in out.transitions:
                self._log_transition(tr)
            self._sync_dock_camera()
            self._forward(t)
            self._publish_status(t, changed=bool(out.transitions), faults_changed=out.faults != before)
            waiters, self._waiters = self._waiters, []
        for f in waiters:
            if not f.done():
                f.set_result(t)

    def _log_transition(self, tr) -> None:
        if tr.accepted:
            self._last_reason = tr.reason
        if tr.accepted and tr.target == Mode.DOCKING and tr.source != Mode.DOCKING:
            self._dock_started()  # dock-marker fixes and counts of this docking
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
        look = s.gnc.look_at.point if s.gnc.look_at is not None else None
        msg = convert.control_command_msg(goal, s.gnc.mode.name, t, look)
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
