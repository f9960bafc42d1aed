"""Commands accepted by the gate, executed onboard: the immediate ones (emergency stop and
resume, stop / station keep, route pause / resume, keep-out edits, file re-sends, camera
stream) answered here, motion commands planned (``motion.py``) and queued on the executor."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .. import commands as C
from ..files import FileSender
from ..link.protocol import AckState, Command
from ..link.supervisor import SafetyAction, SupervisorState
from .backend import Done, RobotBackend
from .camera import CameraStream
from .executor import MotionExecutor
from .motion import Motion, Refused, plan_motion
from .task_files import TaskFileDownlink

log = logging.getLogger(__name__)


class CommandHandlers:
    """Mixin of OnboardBridge: the attributes below are the bridge's."""

    backend: RobotBackend
    workspace: C.Workspace
    _base_workspace: C.Workspace
    _zones_seen: list | None
    executor: MotionExecutor
    files: FileSender
    stream: CameraStream
    task_files: TaskFileDownlink
    supervisor: SupervisorState
    estop: bool
    executed: list[tuple[str, str]]
    _resume_requested: bool
    _loop: asyncio.AbstractEventLoop | None
    _report: Callable[..., None]
    _later: Callable[[str, str], Done]

    def _execute(self, command: Command, now: float) -> None:
        kind, payload, cid = command.kind, dict(command.payload), command.id
        self.executed.append((cid, kind))
        self._refresh_workspace()
        try:
            C.validate(kind, payload, self.workspace)
        except C.CommandError as exc:
            self._report(cid, AckState.FAILED, f"invalid {kind}: {exc}")
            return
        if kind == C.EMERGENCY_STOP:
            self.estop = True
            self.executor.abort_all("emergency stop")
            self.backend.emergency_stop()
            self._report(cid, AckState.COMPLETED, "emergency stop: motion stopped, queue cleared")
        elif kind == C.RESUME:
            was = self.estop
            self.estop = False
            self._resume_requested = True
            if was and hasattr(self.backend, "resume"):
                self.backend.resume()
            reason = ["nothing to resume", "emergency stop released"][was]
            if self.supervisor.action is SafetyAction.RETURN_TO_DOCK:
                reason += "; return to dock released once ground contact is steady"
            self._report(cid, AckState.COMPLETED, reason)
        elif kind in (C.STOP, C.STATION_KEEP):
            self.executor.abort_all(f"{kind} requested")
            self.backend.hold()
            self._report(cid, AckState.COMPLETED, "holding the current estimated pose")
        elif kind in (C.ROUTE_PAUSE, C.ROUTE_RESUME):
            can_fly = self.supervisor.action is SafetyAction.NOMINAL and not self.estop
            self.executor.pause_route(cid, kind == C.ROUTE_PAUSE, can_fly)
        elif kind in (C.KEEP_OUT_ADD, C.KEEP_OUT_REMOVE):
            self._edit_keep_out(cid, kind, payload)
        elif kind == C.FILE_RESEND:
            try:
                n = self.files.resend(payload["id"], payload["chunks"])
            except KeyError:
                self._report(cid, AckState.FAILED, f"file {payload['id']} is no longer kept onboard")
            else:
                name = self.files.files[payload["id"]].name
                self._report(cid, AckState.COMPLETED, f"re-sending {n} chunk(s) of {name}")
        elif kind == C.CAMERA_STREAM:
            self.stream.select(payload.get("camera", "main"), float(payload.get("rate_hz", 1.0)))
            self._report(
                cid, AckState.COMPLETED, f"streaming {self.stream.camera} at {self.stream.rate_hz:g} Hz"
            )
        else:
            self._queue_motion(command, payload)

    def _queue_motion(self, command: Command, payload: dict) -> None:
        if self.estop:
            self._report(command.id, AckState.FAILED, "emergency stop active: send resume first")
            return
        if self.supervisor.action is SafetyAction.RETURN_TO_DOCK:
            self._report(command.id, AckState.FAILED, "returning to dock after a long LOS: send resume first")
            return
        try:
            motion = plan_motion(command.id, command.kind, payload, self.backend, self.workspace)
        except Refused as exc:
            self._report(command.id, AckState.FAILED, str(exc))
            return
        append = command.kind == C.GOAL and bool(payload.get("append", False))
        self.executor.queue(motion, append, f"replaced by {command.kind} {command.id[:8]}")

    def _refresh_workspace(self) -> None:
        """Goal checks use the zones the robot has now (the navigation node's, or the stand-in's)."""
        zones = self.backend.keep_out_zones() if hasattr(self.backend, "keep_out_zones") else None
        if zones is None or zones == self._zones_seen:
            return
        try:
            self.workspace = self._base_workspace.with_zones(zones)
            self._zones_seen = zones
        except C.CommandError as exc:
            log.warning("onboard bridge: keep-out zones from the robot ignored: %s", exc)

    def _edit_keep_out(self, command_id: str, kind: str, payload: dict) -> None:
        if not hasattr(self.backend, "add_keep_out"):
            self._report(command_id, AckState.FAILED, "this robot has no keep-out zone services")
            return
        what = "adding the keep-out zone" if kind == C.KEEP_OUT_ADD else "removing the keep-out zone"
        done = self._later(command_id, what)
        if kind == C.KEEP_OUT_ADD:
            self.backend.add_keep_out(C.keep_out_box(payload, self.workspace), done)  # type: ignore[attr-defined]
        else:
            self.backend.remove_keep_out(payload["name"], done)  # type: ignore[attr-defined]

    def _task_done(self, m: Motion, reason: str) -> str:
        """A camera task completed: downlink its images; the ack reason says so."""
        paths = self.backend.task_files() if hasattr(self.backend, "task_files") else []  # type: ignore[attr-defined]
        return self.task_files.downlink(self._loop, m.command_id, paths, reason)
