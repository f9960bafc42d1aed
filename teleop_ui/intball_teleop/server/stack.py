"""The two ends of the emulated link in one process: ground station and onboard bridge.

They share nothing but the :class:`~intball_teleop.link.runtime.LinkEmulator` (bytes through
two channels) and the station key (provisioned on both sides, as on the real system). With a
real link the two halves would run on two machines with the same classes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import commands as C
from ..ground import GroundConfig, GroundStation
from ..link.config import load_profile
from ..link.protocol import CommandGate
from ..link.runtime import LinkEmulator
from ..link.supervisor import SupervisorConfig
from ..onboard import OnboardBridge, OnboardConfig, RobotBackend

STATION = "ground1"


@dataclass(frozen=True)
class StackConfig:
    profile: str = "iss-nominal"
    profile_overrides: dict = field(default_factory=dict)
    seed: int = 0
    station: str = STATION
    key: bytes | None = None  # None: a random key for this run
    ping_interval_s: float = 1.0
    onboard: OnboardConfig = field(default_factory=OnboardConfig)
    ground: GroundConfig = field(default_factory=GroundConfig)


class Stack:
    """Link + ground station + onboard bridge over a robot backend. Use inside a running loop."""

    def __init__(
        self,
        backend: RobotBackend,
        config: StackConfig | None = None,
        workspace: C.Workspace | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or StackConfig()
        self.backend = backend
        self.workspace = workspace or C.Workspace.default()
        self.clock = clock
        profile = load_profile(self.config.profile, self.config.profile_overrides or None)
        self.link = LinkEmulator(profile, seed=self.config.seed, ping_interval_s=self.config.ping_interval_s)
        key = self.config.key or secrets.token_bytes(32)
        self.gate = CommandGate({self.config.station: key})
        self.onboard = OnboardBridge(
            self.link.onboard, self.gate, backend, self.workspace, self.config.onboard, clock
        )
        self.ground = GroundStation(
            self.link, self.config.station, key, self.workspace, self.config.ground, clock
        )
        self._step_task: asyncio.Task | None = None

    def start(self) -> None:
        self.onboard.start()
        self.ground.start()
        step = getattr(self.backend, "step", None)
        if step is not None:  # the kinematic stand-in moves on our loop
            self._step_task = asyncio.get_running_loop().create_task(_stepper(step))

    async def close(self) -> None:
        if self._step_task is not None:
            self._step_task.cancel()
            await asyncio.gather(self._step_task, return_exceptions=True)
        await self.ground.stop()
        await self.onboard.stop()
        await self.link.close()


async def _stepper(step: Callable[[float], None], dt: float = 0.02) -> None:
    last = time.monotonic()
    while True:
        await asyncio.sleep(dt)
        now = time.monotonic()
        step(now - last)
        last = now


def supervisor_config(station_keep_after_s: float, return_to_dock_after_s: float) -> SupervisorConfig:
    recover = min(2.0, 0.8 * station_keep_after_s)  # > the 1 s heartbeat period
    return SupervisorConfig(
        station_keep_after_s=station_keep_after_s,
        return_to_dock_after_s=return_to_dock_after_s,
        recover_below_s=recover,
        recover_hold_s=min(5.0, station_keep_after_s / 2.0),
    )
