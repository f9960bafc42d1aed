"""Link profiles: the named profiles, validation messages, overrides, LOS schedule maths."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intball_nav.config import ConfigError
from intball_teleop.link.config import (
    ChannelConfig,
    JitterConfig,
    LosSchedule,
    PeriodicLos,
    available_profiles,
    load_profile,
)


def test_named_profiles_exist_and_match_the_issue():
    assert set(available_profiles()) >= {"ideal", "iss-nominal", "iss-degraded", "los-heavy"}
    ideal = load_profile("ideal")
    assert ideal.uplink.delay_s == 0 and ideal.uplink.bandwidth_bps is None and not ideal.los.in_los(0.0)
    nominal = load_profile("iss-nominal")
    for ch in (nominal.uplink, nominal.downlink):
        lo, hi = ch.delay_s + ch.jitter.min_s, ch.delay_s + ch.jitter.truncate_sigma * ch.jitter.std_s
        assert 0.3 <= lo and hi <= 0.5  # "about 0.3-0.5 s one way"
        assert ch.random_loss + ch.gilbert_elliott.mean_loss < 0.01
    assert nominal.downlink.bandwidth_bps > nominal.uplink.bandwidth_bps
    degraded = load_profile("iss-degraded")
    assert degraded.uplink.delay_s >= 1.0 and degraded.uplink.gilbert_elliott.mean_loss > 0.02
    heavy = load_profile("los-heavy")
    in_los = sum(heavy.los.in_los(t) for t in range(0, 5400)) / 5400
    assert in_los > 0.25
    assert heavy.uplink.los == heavy.downlink.los == heavy.los


def test_errors_name_file_line_field_and_range():
    with pytest.raises(
        ConfigError, match=r"overrides: iss-degraded\.uplink\.jitter\.pareto_alpha: 0\.5 .*1\.01"
    ):
        load_profile("iss-degraded", {"uplink.jitter.pareto_scale_s": 0.5, "uplink.jitter.pareto_alpha": 0.5})
    with pytest.raises(
        ConfigError, match=r"overrides: iss-nominal\.uplink\.random_loss: 2 is outside .* 0 \.\. 1"
    ):
        load_profile("iss-nominal", {"uplink": {"random_loss": 2}})
    with pytest.raises(ConfigError, match=r"unknown key \(allowed: delay_s"):
        load_profile("iss-nominal", {"uplink.dealy_s": 1.0})
    with pytest.raises(ConfigError, match="unknown link profile 'nope'"):
        load_profile("nope")
    with pytest.raises(ConfigError, match="never negative"):
        load_profile("iss-nominal", {"uplink.jitter.std_s": 0.5})


def test_yaml_file_errors_point_at_the_line(tmp_path):
    path = tmp_path / "mylink.yaml"
    path.write_text("uplink:\n  delay_s: 0.2\ndownlink:\n  delay_s: -1\nlos:\n  windows: [[5, 10]]\n")
    with pytest.raises(ConfigError, match=r"mylink\.yaml:4: mylink\.downlink\.delay_s: -1 s is outside"):
        load_profile(path)
    path.write_text("uplink:\n  bandwidth_bps: 1.0e6\n")
    with pytest.raises(ConfigError, match=r"mylink\.yaml:2: .*1\.0e\+6"):
        load_profile(path)
    path.write_text("uplink:\n  delay_s: 0.2\nlos:\n  windows: [[5, 10]]\n")
    profile = load_profile(path, {"downlink.delay_s": 0.3})
    assert profile.name == "mylink" and profile.downlink.delay_s == 0.3 and profile.los.in_los(7.0)


def test_dataclasses_validate_when_built_in_code():
    with pytest.raises(ConfigError, match="distribution: 'gauss' is not one of"):
        JitterConfig("gauss")
    with pytest.raises(ConfigError, match="duration_s: 20 s is outside the allowed range 0 .. 10 s"):
        PeriodicLos(period_s=10.0, duration_s=20.0)
    with pytest.raises(ConfigError, match="queue_bytes"):
        ChannelConfig(queue_bytes=0)


def test_los_schedule_queries():
    los = LosSchedule(windows=((10.0, 20.0), (20.0, 25.0)), periodic=(PeriodicLos(100.0, 10.0, 50.0),))
    assert not los.in_los(9.99) and los.in_los(10.0) and los.in_los(24.9) and not los.in_los(25.0)
    assert los.los_end(12.0) == 25.0  # back-to-back windows merge
    assert los.next_los_start(0.0) == 10.0 and los.next_los_start(26.0) == 50.0
    assert los.in_los(155.0) and los.los_end(155.0) == 160.0
    assert los.overlaps(5.0, 10.0) and not los.overlaps(30.0, 49.9)
    assert LosSchedule().next_los_start(0.0) == math.inf


@settings(max_examples=60, deadline=None)  # no deadline: CI machines are shared
@given(
    t=st.floats(0.0, 1e5),
    period=st.floats(10.0, 1000.0),
    frac=st.floats(0.01, 0.9),
    phase=st.floats(0.0, 500.0),
)
def test_periodic_los_is_consistent(t, period, frac, phase):
    los = LosSchedule(periodic=(PeriodicLos(period, frac * period, phase),))
    start = los.next_los_start(t)
    assert start >= t
    if frac > 0 and start < math.inf:
        assert los.in_los(start) or frac * period == 0
    if los.in_los(t):
        end = los.los_end(t)
        assert end > t and not los.in_los(end)
