"""Localization health: ok / degraded / lost, a pure function with hysteresis.

Inputs (``HealthInputs``) come from the filter at every event:

- time since the last *accepted* visual update (s; infinite before initialisation),
- position and attitude standard deviations, ``sqrt(trace)`` of the 3x3 covariance blocks
  (m and rad),
- the current streaks of consecutive rejected / accepted visual updates.

Rule (thresholds in ``HealthParams``):

- ``lost`` if not initialised, or no accepted update for ``lost_after_s``, or position std above
  ``lost_position_std``, or attitude std above ``lost_attitude_std``, or ``lost_reject_streak``
  rejections in a row;
- otherwise ``degraded`` under the same tests with the ``degraded_*`` thresholds;
- otherwise ``ok``.

Hysteresis: getting worse is immediate. Getting better needs ``recover_accept_streak``
consecutive accepted updates, and going back to ``ok`` also needs both standard deviations below
``recover_margin`` times their ``degraded_*`` thresholds (until then the level is ``degraded``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

LOSS_RESPONSES = ("hold", "search")
"""What the control loop does when the health is ``lost`` (``visual_localizer.loss_response_params``):
``hold`` brakes, turns the fans off and waits (issue #4's stop and hold, the default); ``search``
brakes, then turns in place to find a view. Defined here, in a light module, for the launcher."""


class HealthLevel(IntEnum):
    """Ordered so that a larger value is worse."""

    OK = 0
    DEGRADED = 1
    LOST = 2


@dataclass(frozen=True)
class HealthParams:
    """Thresholds of the health rule (see module docstring). Times in s, stds in m and rad."""

    degraded_after_s: float = 0.5
    lost_after_s: float = 3.0
    degraded_position_std: float = 0.02
    lost_position_std: float = 0.25
    degraded_attitude_std: float = math.radians(2.0)
    lost_attitude_std: float = math.radians(15.0)
    degraded_reject_streak: int = 3
    lost_reject_streak: int = 10
    recover_accept_streak: int = 2
    recover_margin: float = 0.7

    def __post_init__(self) -> None:
        pairs = (
            ("degraded_after_s", "lost_after_s"),
            ("degraded_position_std", "lost_position_std"),
            ("degraded_attitude_std", "lost_attitude_std"),
            ("degraded_reject_streak", "lost_reject_streak"),
        )
        for lo, hi in pairs:
            a, b = getattr(self, lo), getattr(self, hi)
            if not 0 < a <= b:
                raise ValueError(f"HealthParams: need 0 < {lo} ({a}) <= {hi} ({b})")
        if self.recover_accept_streak < 1:
            raise ValueError(
                f"HealthParams.recover_accept_streak must be >= 1, got {self.recover_accept_streak}"
            )
        if not 0.0 < self.recover_margin <= 1.0:
            raise ValueError(f"HealthParams.recover_margin must be in (0, 1], got {self.recover_margin}")


@dataclass(frozen=True)
class HealthInputs:
    """time_since_update : s; position_std : m; attitude_std : rad; streaks : counts."""

    initialised: bool
    time_since_update: float
    position_std: float
    attitude_std: float
    reject_streak: int
    accept_streak: int


@dataclass(frozen=True)
class HealthStatus:
    """level and a short human-readable reason (the conditions that set it)."""

    level: HealthLevel = HealthLevel.LOST
    reason: str = "not initialised"


def _raw_level(x: HealthInputs, p: HealthParams) -> tuple[HealthLevel, str]:
    if not x.initialised:
        return HealthLevel.LOST, "not initialised"
    for level, prefix in ((HealthLevel.LOST, "lost"), (HealthLevel.DEGRADED, "degraded")):
        reasons = []
        if x.time_since_update > getattr(p, f"{prefix}_after_s"):
            reasons.append(f"no visual update for {x.time_since_update:.2f} s")
        if x.position_std > getattr(p, f"{prefix}_position_std"):
            reasons.append(f"position std {x.position_std:.3f} m")
        if x.attitude_std > getattr(p, f"{prefix}_attitude_std"):
            reasons.append(f"attitude std {math.degrees(x.attitude_std):.2f} deg")
        if x.reject_streak >= getattr(p, f"{prefix}_reject_streak"):
            reasons.append(f"{x.reject_streak} visual updates rejected in a row")
        if reasons:
            return level, "; ".join(reasons)
    return HealthLevel.OK, "ok"


def assess_health(prev: HealthStatus, inputs: HealthInputs, params: HealthParams) -> HealthStatus:
    """Next health status from the previous one and the current inputs (pure, see module docstring)."""
    level, reason = _raw_level(inputs, params)
    if level >= prev.level:
        return HealthStatus(level, reason)
    if inputs.accept_streak < params.recover_accept_streak:
        return HealthStatus(prev.level, f"recovering ({inputs.accept_streak} accepted updates)")
    if level == HealthLevel.OK and (
        inputs.position_std > params.recover_margin * params.degraded_position_std
        or inputs.attitude_std > params.recover_margin * params.degraded_attitude_std
    ):
        return HealthStatus(HealthLevel.DEGRADED, "recovering (covariance still above the ok margin)")
    return HealthStatus(level, reason)
