"""The onboard bridge's periodic work: the LOS supervisor run on ground-contact age alone (station
keep, return to dock, resume; then the motion executor advanced), and the telemetry message
(JSON ``"t": "tm"``) sent down at its rate."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import commands as C
from ..files import FileSender
from ..link.protocol import CommandGate
from ..link.supervisor import SafetyAction, SupervisorState, supervise
from .backend import RobotBackend
from .camera import CameraStream
from .executor import MotionExecutor
from .motion import dock_motion, route_status

if TYPE_CHECKING:
    from .bridge import OnboardConfig

log = logging.getLogger(__name__)


class PeriodicWork:
    """Mixin of OnboardBridge: the attributes below are the bridge's."""

    gate: CommandGate
    backend: RobotBackend
    workspace: C.Workspace
    clock: Callable[[], float]
    executor: MotionExecutor
    files: FileSender
    stream: CameraStream
    supervisor: SupervisorState
    estop: bool
    _resume_requested: bool
    _started: float
    _send: Callable[[bytes], None]
    config: OnboardConfig

    def _contact_age(self, now: float) -> float:
        # before the first contact, silence counts from the bridge's start (not "forever")
        return min(self.gate.contact_age(now), now - self._started)

    def _tick(self) -> None:
        now = self.clock()
        previous = self.supervisor.action
        self.supervisor = supervise(
            self.supervisor,
            self._contact_age(now),
            now,
            self.config.supervisor,
            resume=self._resume_requested,
        )
        action = self.supervisor.action
        if action is not SafetyAction.RETURN_TO_DOCK:  # a resume waits for fresh contact, then applies
            self._resume_requested = False
        if action is not previous:
            log.warning("onboard supervisor: %s -> %s", previous.value, action.value)
            if action is SafetyAction.STATION_KEEP:
                self.backend.hold()
                self.executor.suspend()
            elif action is SafetyAction.RETURN_TO_DOCK:
                self.executor.abort_all("no ground contact: returning to dock")
                self.executor.motions.append(dock_motion(None, C.DOCK, self.backend, self.workspace))
            elif action is SafetyAction.NOMINAL:
                self.executor.resume_after_hold()  # resume the suspended goal
        if action is SafetyAction.STATION_KEEP or self.estop:
            return  # holding: the active motion is suspended
        self.executor.advance(now)

    def _send_telemetry(self) -> None:
        now = self.clock()
        active = self.executor.active
        msg: dict[str, Any] = {
            "t": "tm",
            "v": 1,
            "at_ms": int(now * 1000),
            "source": self.backend.source,
            "estimate": self.backend.telemetry(),
            "supervisor": self.supervisor.action.value,
            "contact_age_s": _finite(self._contact_age(now)),
            "estop": self.estop,
            "active": None if active is None else active.command_id,
            "active_kind": None if active is None else active.kind,
            "queued": len(self.executor.motions),
            "camera": self.stream.camera,
            "route": route_status(active),
            "keep_out": self.backend.keep_out_zones() if hasattr(self.backend, "keep_out_zones") else None,
            "files": self.files.announce(),
        }
        self._send(json.dumps(msg, separators=(",", ":"), allow_nan=False).encode())


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
