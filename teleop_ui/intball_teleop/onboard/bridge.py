"""``OnboardBridge``: uplink bytes through the :class:`~intball_teleop.link.protocol.CommandGate`
(HMAC, at most once, expiry), accepted commands executed (``handlers.py``; motions by the
:class:`~.executor.MotionExecutor`), progress reported as signed acks; the LOS supervisor and the
telemetry run on its ticks (``periodic.py``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import commands as C
from ..files import MAX_FILE_BYTES, FileSender
from ..link.protocol import AckState, CommandGate, Outcome
from ..link.runtime import LinkEnd, detach, run_every
from ..link.supervisor import SupervisorConfig, SupervisorState
from .backend import Done, RobotBackend
from .camera import CameraStream
from .executor import MotionExecutor
from .handlers import CommandHandlers
from .motion import Motion
from .periodic import PeriodicWork
from .task_files import TaskFileDownlink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnboardConfig:
    telemetry_rate_hz: float = 5.0
    camera_rate_hz: float = 1.0
    camera: str = "main"
    tick_s: float = 0.05
    motion_timeout_s: float = 600.0  # a goal not reached in this time fails
    file_rate_bps: float = 256_000.0  # camera-task files: their share of the downlink, bit/s
    file_max_bytes: int = MAX_FILE_BYTES  # JPEG size cap of a downlinked file
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)


class OnboardBridge(CommandHandlers, PeriodicWork):
    """Runs in the robot's event loop. ``start()`` subscribes to the link and starts the ticks."""

    def __init__(
        self,
        end: LinkEnd,
        gate: CommandGate,
        backend: RobotBackend,
        workspace: C.Workspace,
        config: OnboardConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.end, self.gate, self.backend, self.workspace = (end, gate, backend, workspace)
        self.config = config or OnboardConfig()
        self.clock = clock
        self.estop = False
        self.supervisor = SupervisorState()
        self.executed: list[tuple[str, str]] = []  # (command id, kind) in execution order (tests, audit)
        self._tasks: list[asyncio.Task] = []
        self._resume_requested = False
        self._started = clock()
        self._base_workspace = workspace
        self._zones_seen: list | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.files = FileSender(self._send, self.config.file_rate_bps)
        self.task_files = TaskFileDownlink(self.files, self.config.file_max_bytes)
        self.stream = CameraStream(backend, self._send, clock, self.config.camera, self.config.camera_rate_hz)
        self.executor = MotionExecutor(
            backend,
            self._report,
            lambda: self.workspace,
            motion_timeout_s=self.config.motion_timeout_s,
            later=self._later,
            call_soon=self._call_soon,
            on_task_done=self._task_done,
        )

    @property
    def active(self) -> Motion | None:
        return self.executor.active

    @property
    def motions(self) -> deque[Motion]:
        return self.executor.motions

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.end.on_receive(self._on_uplink)
        loop = self._loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(run_every(self.config.tick_s, self._tick, "onboard bridge")),
            loop.create_task(
                run_every(1.0 / self.config.telemetry_rate_hz, self._send_telemetry, "onboard bridge")
            ),
            loop.create_task(self.stream.run()),
            loop.create_task(self.files.run()),
        ]

    async def stop(self) -> None:
        await detach(self.end, [*self._tasks, *self.task_files.jobs])

    # -- uplink, acks -------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self.end.send_nowait(data)

    def _on_uplink(self, data: bytes) -> None:
        now = self.clock()
        receipt = self.gate.receive(data, now)
        for reply in receipt.replies:
            self._send(reply)
        if receipt.outcome is Outcome.ACCEPTED and receipt.command is not None:
            self._execute(receipt.command, now)

    def _report(self, command_id: str | None, state: AckState, reason: str = "") -> None:
        if command_id is None:
            return
        try:
            self._send(self.gate.report(command_id, state, self.clock(), reason[:200]))
        except ValueError as exc:  # evicted id or illegal transition: log, never crash
            log.warning("onboard bridge: cannot report %s %s: %s", command_id, state.value, exc)

    def _later(self, command_id: str, what: str) -> Done:
        """A done(ok, reason) callback that may be called from any thread: acks on our loop."""

        def done(ok: bool, reason: str) -> None:
            state = AckState.COMPLETED if ok else AckState.FAILED
            self._call_soon(self._report, command_id, state, reason or ("done" if ok else f"{what} failed"))

        return done

    def _call_soon(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop is None:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)
