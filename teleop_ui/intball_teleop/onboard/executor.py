"""The onboard motion executor: one :class:`~.motion.Motion` flown by the backend at a time, the
others queued behind it (``append``). Goals are flown in turn, dock / undock / camera tasks by
the robot's own procedures, a route by the backend's ``follow_route``: paused and resumed by
the operator, suspended by a LOS hold and flown on from the waypoint it was flying to. Progress
and the end of each motion are reported as acks through ``report``."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from .. import commands as C
from ..link.protocol import AckState
from .backend import Done, RobotBackend
from .motion import Motion, dock_goals, timeout_s

log = logging.getLogger(__name__)

Report = Callable[..., None]  # (command id or None, AckState, reason="")


class MotionExecutor:
    def __init__(
        self,
        backend: RobotBackend,
        report: Report,
        workspace: Callable[[], C.Workspace],
        *,
        motion_timeout_s: float,
        later: Callable[[str, str], Done],
        call_soon: Callable[..., None],
        on_task_done: Callable[[Motion, str], str],
    ) -> None:
        """``later(command_id, what)``: a done(ok, reason) callback that acks from any thread;
        ``call_soon(fn, *args)``: run on the bridge's loop; ``on_task_done(motion, reason)``:
        the ack reason of a completed camera task (its files are then downlinked)."""
        self.backend, self.report, self.workspace = backend, report, workspace
        self.motion_timeout_s = motion_timeout_s
        self.later, self.call_soon, self.on_task_done = later, call_soon, on_task_done
        self.motions: deque[Motion] = deque()
        self.active: Motion | None = None

    def queue(self, motion: Motion, append: bool, reason: str) -> None:
        """Queue ``motion``; unless ``append``, everything else is dropped first (``reason``)."""
        if not append:
            self.abort_all(reason)
        self.motions.append(motion)

    def abort_all(self, reason: str) -> None:
        if self.active is not None:
            self.report(self.active.command_id, AckState.FAILED, f"preempted: {reason}")
            self.active = None
        while self.motions:
            m = self.motions.popleft()
            self.report(m.command_id, AckState.FAILED, f"dropped before it started: {reason}")

    # -- routes: pause / resume by the operator, suspension by a LOS hold ------------------------

    def pause_route(self, command_id: str, pause: bool, can_fly: bool) -> None:
        """``can_fly``: no LOS hold and no emergency stop (a suspended route may fly again now)."""
        m = self.active
        if m is None or m.kind != C.ROUTE or m.route is None:
            queued = any(q.kind == C.ROUTE for q in self.motions)
            why = "no route is being flown" + (" (the queued route has not started)" if queued else "")
            self.report(command_id, AckState.FAILED, why)
            return
        where = f"waypoint {m.index + m.progress + 1} of {len(m.route)}"
        if m.paused == pause:
            state = "paused" if pause else "flying"
            self.report(command_id, AckState.COMPLETED, f"route already {state} ({where})")
            return
        if m.suspended:  # held by the LOS supervisor: the backend has no route to pause or resume
            m.paused = pause
            if not pause and can_fly:
                self.fly(m)
                self.report(command_id, AckState.COMPLETED, f"route resumed at {where}")
            else:
                state = "paused" if pause else "resumes once ground contact is steady"
                self.report(command_id, AckState.COMPLETED, f"route {state} at {where} (holding)")
            return
        report = self.later(command_id, "route pause" if pause else "route resume")

        def done(ok: bool, reason: str) -> None:
            if ok:
                m.paused = pause
            report(ok, f"{reason} at {where}" if ok else reason)

        self.backend.pause_route(pause, lambda ok, reason: self.call_soon(done, ok, reason))  # type: ignore[attr-defined]

    def suspend(self) -> None:
        """The LOS supervisor holds the robot: that hold ended the backend's route."""
        if self.active is not None and self.active.kind == C.ROUTE:
            self.active.suspended = True

    def resume_after_hold(self) -> None:
        """Contact is steady again: fly the suspended motion again (a paused route waits)."""
        if self.active is not None and not (self.active.kind == C.ROUTE and self.active.paused):
            self.fly(self.active)

    # -- flying ---------------------------------------------------------------------------------

    def fly(self, m: Motion) -> None:
        if m.kind == C.ROUTE and m.route is not None:
            # from the waypoint it was flying to or holding at (a hold dropped the rest): never
            # from the start again, never skipping one
            m.index, m.progress, m.suspended = m.index + m.progress, 0, False
            mode = (m.payload or {}).get("flight_mode", "nominal")
            if not self.backend.follow_route(m.route[m.index :], mode):  # type: ignore[attr-defined]
                self.report(
                    m.command_id, AckState.FAILED, "routes need the navigation node's follow_route action"
                )
                self.active = None
            return
        if m.native and m.kind == C.CAMERA_TASK:
            if not self.backend.camera_task(m.payload or {}):  # type: ignore[attr-defined]
                self.report(m.command_id, AckState.FAILED, "the camera task server is not available")
                self.active = None
            return
        if m.native:
            if self.backend.dock(undock=m.kind == C.UNDOCK):  # type: ignore[attr-defined]
                return
            log.warning("onboard bridge: no %s procedure on this robot; flying its points as goals", m.kind)
            m.native, m.goals, m.index = (False, dock_goals(self.workspace(), undock=m.kind == C.UNDOCK), 0)
        pos, quat, mode = m.goals[m.index]
        try:
            self.backend.go_to(pos, quat, mode)
        except C.CommandError as exc:
            self.report(m.command_id, AckState.FAILED, str(exc))
            self.active = None

    def advance(self, now: float) -> None:
        """Start the next motion, or follow the active one to its end (arrived, failed, jog
        lifetime over, timed out)."""
        m = self.active
        if m is None:
            if not self.motions:
                return
            m = self.active = self.motions.popleft()
            m.started = now
            self.report(m.command_id, AckState.EXECUTING)
            self.fly(m)
            return
        if m.route is not None:
            progress = self.backend.route_progress()  # type: ignore[attr-defined]
            if progress is not None:
                m.progress = progress[0]
        state, reason = self.backend.motion()
        if state == "arrived" and m.route is not None:
            self._end(m, AckState.COMPLETED, f"route complete: {len(m.route)} waypoints")
        elif state == "arrived":
            m.index += 1
            if m.index < len(m.goals) and not m.native:
                self.fly(m)
                return
            if m.kind == C.CAMERA_TASK:
                reason = self.on_task_done(m, reason)
            self._end(m, AckState.COMPLETED, reason or "arrived")
        elif state == "failed":
            self._end(m, AckState.FAILED, reason or "the controller refused the goal")
        elif m.lifetime_s is not None and m.started is not None and now - m.started > m.lifetime_s:
            self.backend.hold()
            self._end(m, AckState.COMPLETED, f"jog lifetime {m.lifetime_s:g} s ended; holding")
        elif m.started is not None and now - m.started > timeout_s(m, self.motion_timeout_s):
            self.backend.hold()
            self._end(m, AckState.FAILED, f"not arrived after {timeout_s(m, self.motion_timeout_s):g} s")

    def _end(self, m: Motion, state: AckState, reason: str) -> None:
        self.report(m.command_id, state, reason)
        self.active = None
