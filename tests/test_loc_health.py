"""Health rule: thresholds, ordering, hysteresis (pure function)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intball_nav.estimation.health import (
    HealthInputs,
    HealthLevel,
    HealthParams,
    HealthStatus,
    assess_health,
)

P = HealthParams()
GOOD = HealthInputs(True, 0.1, 0.003, math.radians(0.2), 0, 5)


def inputs(**kw) -> HealthInputs:
    d = GOOD.__dict__ | kw
    return HealthInputs(**d)


OK = HealthStatus(HealthLevel.OK, "ok")


def test_thresholds():
    assert assess_health(OK, GOOD, P).level == HealthLevel.OK
    assert assess_health(OK, inputs(time_since_update=0.6), P).level == HealthLevel.DEGRADED
    assert assess_health(OK, inputs(time_since_update=3.5), P).level == HealthLevel.LOST
    assert assess_health(OK, inputs(position_std=0.05), P).level == HealthLevel.DEGRADED
    assert assess_health(OK, inputs(position_std=0.5), P).level == HealthLevel.LOST
    assert assess_health(OK, inputs(attitude_std=math.radians(5)), P).level == HealthLevel.DEGRADED
    assert assess_health(OK, inputs(reject_streak=3, accept_streak=0), P).level == HealthLevel.DEGRADED
    assert assess_health(OK, inputs(reject_streak=10, accept_streak=0), P).level == HealthLevel.LOST
    lost = assess_health(OK, inputs(initialised=False), P)
    assert lost.level == HealthLevel.LOST and "not initialised" in lost.reason
    assert "no visual update" in assess_health(OK, inputs(time_since_update=0.6), P).reason


def test_recovery_needs_consecutive_accepted_updates_and_margin():
    lost = HealthStatus(HealthLevel.LOST, "x")
    # one accepted update is not enough
    assert assess_health(lost, inputs(accept_streak=1), P).level == HealthLevel.LOST
    assert assess_health(lost, inputs(accept_streak=2), P).level == HealthLevel.OK
    # covariance between margin * degraded threshold and the threshold: stays degraded
    s = assess_health(lost, inputs(accept_streak=2, position_std=0.9 * P.degraded_position_std), P)
    assert s.level == HealthLevel.DEGRADED


@settings(max_examples=300, deadline=None)
@given(
    prev=st.sampled_from(list(HealthLevel)),
    tsu=st.floats(0.0, 10.0),
    pos=st.floats(0.0, 1.0),
    att=st.floats(0.0, 1.0),
    rej=st.integers(0, 20),
    acc=st.integers(0, 20),
)
def test_worsening_is_immediate_and_never_better_than_raw_inputs_allow(prev, tsu, pos, att, rej, acc):
    x = HealthInputs(True, tsu, pos, att, rej, acc)
    s = assess_health(HealthStatus(prev, ""), x, P)
    raw = assess_health(HealthStatus(HealthLevel.OK, ""), x, P)
    # from ok the rule is memoryless only when getting worse
    assert s.level >= raw.level
    assert s.level <= max(prev, raw.level)


def test_params_validated():
    with pytest.raises(ValueError, match="degraded_after_s"):
        HealthParams(degraded_after_s=5.0, lost_after_s=3.0)
    with pytest.raises(ValueError, match="recover_margin"):
        HealthParams(recover_margin=0.0)
