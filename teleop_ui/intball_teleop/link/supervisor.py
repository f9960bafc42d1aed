"""Onboard safety supervisor: what to do when the ground goes silent. Pure, no I/O.

Input: the age of the last *valid* (authenticated) ground contact, i.e.
:meth:`CommandGate.contact_age` (commands and heartbeats both count). Output: an action.

    nominal --(age > station_keep_after_s)--> station_keep --(age > return_to_dock_after_s)--> return_to_dock
       ^                                          |                                                  |
       +--(age < recover_below_s for recover_hold_s)                     latched until resume=True
                                                                         (with fresh contact)

Hysteresis: leaving station_keep needs contact that is *fresh* (age below
``recover_below_s``) without interruption for ``recover_hold_s``, so a degraded link that
lets a heartbeat through now and then does not make the robot twitch between modes.

Defaults (docs/link.md): the IB2 ground software alerts after 5 s without telemetry, so
the robot holds position after 10 s of silence; the longest scheduled LOS in our profiles
is 5 minutes, so docking starts after 15 minutes (three times that), which a routine LOS
never triggers.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class SafetyAction(enum.Enum):
    NOMINAL = "nominal"
    STATION_KEEP = "station_keep"
    RETURN_TO_DOCK = "return_to_dock"


@dataclass(frozen=True)
class SupervisorConfig:
    """Thresholds in seconds of ground silence."""

    station_keep_after_s: float = 10.0
    return_to_dock_after_s: float = 900.0
    recover_below_s: float = 2.0
    recover_hold_s: float = 5.0
    latch_return_to_dock: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.recover_below_s < self.station_keep_after_s < self.return_to_dock_after_s:
            raise ValueError(
                "need 0 < recover_below_s < station_keep_after_s < return_to_dock_after_s, got "
                f"{self.recover_below_s:g}, {self.station_keep_after_s:g}, {self.return_to_dock_after_s:g}"
            )
        if self.recover_hold_s < 0:
            raise ValueError(f"recover_hold_s: {self.recover_hold_s:g} s is outside 0 .. inf s")


@dataclass(frozen=True)
class SupervisorState:
    """action: current decision; fresh_since: start of the current run of fresh contact (s)."""

    action: SafetyAction = SafetyAction.NOMINAL
    fresh_since: float | None = None


def supervise(
    state: SupervisorState,
    contact_age_s: float,
    now: float,
    config: SupervisorConfig | None = None,
    *,
    resume: bool = False,
) -> SupervisorState:
    """One supervisor step.

    state: previous state (``SupervisorState()`` at boot).
    contact_age_s: seconds since the last valid ground contact (inf if none yet).
    now: current time, s (any monotonic clock; only differences are used).
    resume: an authenticated operator request to leave a latched return_to_dock.
    """
    cfg = config or SupervisorConfig()
    age = contact_age_s if not math.isnan(contact_age_s) else math.inf
    fresh = age < cfg.recover_below_s
    fresh_since = (state.fresh_since if state.fresh_since is not None else now) if fresh else None
    recovered = fresh_since is not None and now - fresh_since >= cfg.recover_hold_s

    action = state.action
    if age > cfg.return_to_dock_after_s:
        action = SafetyAction.RETURN_TO_DOCK
    elif action is SafetyAction.RETURN_TO_DOCK:
        if (resume or not cfg.latch_return_to_dock) and recovered:
            action = SafetyAction.NOMINAL
    elif age > cfg.station_keep_after_s:
        action = SafetyAction.STATION_KEEP
    elif action is SafetyAction.STATION_KEEP and recovered:
        action = SafetyAction.NOMINAL
    return SupervisorState(action, fresh_since)
