"""Channel model: delay/jitter statistics, loss models, bandwidth, LOS, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from intball_teleop.link.channel import Channel, Fate, sample_jitter
from intball_teleop.link.config import (
    ChannelConfig,
    GilbertElliottConfig,
    JitterConfig,
    LosSchedule,
    PeriodicLos,
)


def _delays(config: ChannelConfig, n: int, seed: int = 1, spacing: float = 0.01) -> np.ndarray:
    channel = Channel(config, seed)
    for i in range(n):
        assert channel.send(b"x", i * spacing) is Fate.SCHEDULED
    out = channel.deliver(math.inf)
    return np.array([d.t_deliver - d.t_sent for d in out])


def test_normal_jitter_is_truncated_normal_around_the_delay():
    jitter = JitterConfig("normal", std_s=0.03, truncate_sigma=3.0)
    delays = _delays(ChannelConfig(delay_s=0.4, jitter=jitter, reorder=True), 5000)
    ref = stats.truncnorm(-3.0, 3.0, loc=0.4, scale=0.03)
    assert stats.kstest(delays, ref.cdf).pvalue > 0.01
    assert delays.min() >= 0.4 - 0.09 - 1e-12 and delays.max() <= 0.4 + 0.09 + 1e-12
    assert abs(delays.mean() - 0.4) < 4 * ref.std() / math.sqrt(len(delays))


def test_lognormal_jitter_has_configured_mean_and_std():
    jitter = JitterConfig("lognormal", mean_s=0.05, std_s=0.05)
    extra = _delays(ChannelConfig(delay_s=0.4, jitter=jitter, reorder=True), 5000) - 0.4
    s = math.sqrt(math.log1p(1.0))
    ref = stats.lognorm(s, scale=math.exp(math.log(0.05) - s * s / 2))
    assert stats.kstest(extra, ref.cdf).pvalue > 0.01
    assert ref.mean() == pytest.approx(0.05) and ref.std() == pytest.approx(0.05)
    assert extra.mean() == pytest.approx(0.05, rel=0.08)


def test_pareto_jitter_is_lomax():
    jitter = JitterConfig("pareto", pareto_scale_s=0.8, pareto_alpha=2.5)
    extra = _delays(ChannelConfig(delay_s=1.5, jitter=jitter, reorder=True), 5000) - 1.5
    assert stats.kstest(extra, stats.lomax(2.5, scale=0.8).cdf).pvalue > 0.01


def test_jitter_cap_clips_the_tail():
    jitter = JitterConfig("pareto", pareto_scale_s=0.8, pareto_alpha=1.5, cap_s=2.0)
    assert max(sample_jitter(jitter, u) for u in np.linspace(0, 0.999999, 1000)) == 2.0


def test_order_is_preserved_by_default_and_reorders_only_when_configured():
    jitter = JitterConfig("normal", std_s=0.05, truncate_sigma=3.0)
    for reorder in (False, True):
        channel = Channel(ChannelConfig(delay_s=0.2, jitter=jitter, reorder=reorder), seed=3)
        for i in range(500):
            channel.send(i.to_bytes(2, "big"), i * 0.005)
        order = [int.from_bytes(d.packet, "big") for d in channel.deliver(math.inf)]
        assert sorted(order) == list(range(500))
        assert (order == list(range(500))) is (not reorder)


def test_random_loss_rate_matches():
    channel = Channel(ChannelConfig(random_loss=0.1), seed=5)
    n = 20000
    lost = sum(channel.send(b"x", 0.0) is Fate.LOST for _ in range(n))
    assert abs(lost / n - 0.1) < 4 * math.sqrt(0.1 * 0.9 / n)


def test_gilbert_elliott_loss_rate_and_bursts_match_stationary_values():
    ge = GilbertElliottConfig(p_good_to_bad=0.02, p_bad_to_good=0.25, loss_good=0.0, loss_bad=1.0)
    channel = Channel(ChannelConfig(gilbert_elliott=ge), seed=7)
    n = 60_000
    lost = np.array([channel.send(b"x", 0.0) is Fate.LOST for _ in range(n)])
    expected = ge.mean_loss  # 0.02 / 0.27
    assert expected == pytest.approx(0.02 / 0.27)
    # Bursty loss: the standard error is inflated by the burst correlation; 10 % is ~5 sigma.
    assert lost.mean() == pytest.approx(expected, rel=0.1)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], lost.astype(int), [0]))))
    bursts = edges[1::2] - edges[0::2]
    assert bursts.mean() == pytest.approx(1.0 / ge.p_bad_to_good, rel=0.1)  # geometric, mean 4
    # Burst lengths are geometric: P(len = 1) = p_bg.
    assert np.mean(bursts == 1) == pytest.approx(ge.p_bad_to_good, abs=0.05)


def test_gilbert_elliott_partial_loss_in_both_states():
    ge = GilbertElliottConfig(p_good_to_bad=0.05, p_bad_to_good=0.2, loss_good=0.01, loss_bad=0.6)
    channel = Channel(ChannelConfig(gilbert_elliott=ge), seed=8)
    n = 60_000
    rate = sum(channel.send(b"x", 0.0) is Fate.LOST for _ in range(n)) / n
    assert rate == pytest.approx(0.8 * 0.01 + 0.2 * 0.6, rel=0.1)


def test_bandwidth_cap_bounds_throughput_and_tail_drops():
    bw, size = 80_000.0, 1000  # 10 kB/s: 10 packets per second
    channel = Channel(ChannelConfig(bandwidth_bps=bw, queue_bytes=5000), seed=1)
    fates = [channel.send(bytes(size), i * 0.05) for i in range(400)]  # offered 20 pkt/s for 20 s
    delivered = channel.deliver(math.inf)
    times = np.array([d.t_deliver for d in delivered])
    assert fates.count(Fate.QUEUE_FULL) > 150
    assert np.all(np.diff(times) >= 8 * size / bw - 1e-9)  # serialization spacing
    span = times[-1] - times[0]
    assert len(delivered) * size * 8 / (span + 8 * size / bw) <= bw * (1 + 1e-9)
    assert len(delivered) * size * 8 / (span + 8 * size / bw) == pytest.approx(bw, rel=0.02)
    # Queue never holds more than queue_bytes: worst wait is 5 packets of serialization.
    waits = np.array([d.t_deliver - d.t_sent for d in delivered])
    assert waits.max() <= 5 * 8 * size / bw + 1e-9


def test_nothing_is_delivered_during_los_and_packets_sent_in_los_are_dropped():
    los = LosSchedule(
        windows=((10.0, 20.0),), periodic=(PeriodicLos(period_s=60.0, duration_s=15.0, phase_s=30.0),)
    )
    channel = Channel(ChannelConfig(delay_s=0.5, los=los), seed=2, epoch=100.0)
    fates = {}
    for i in range(2000):
        t = 100.0 + i * 0.1
        fates[t] = channel.send(b"x", t)
    delivered = channel.deliver(math.inf)
    assert delivered
    for d in delivered:
        assert not los.overlaps(d.t_sent - 100.0, d.t_deliver - 100.0)
        assert not los.in_los(d.t_deliver - 100.0)
    for t, fate in fates.items():
        rel = t - 100.0
        if los.in_los(rel):
            assert fate is Fate.LOS
        elif los.overlaps(rel, rel + 0.5):  # in flight when the signal drops
            assert fate is Fate.LOS
        else:
            assert fate is Fate.SCHEDULED
    assert channel.in_los(115.0) and not channel.in_los(125.0)
    assert channel.next_los_start(125.0) == pytest.approx(130.0)
    assert channel.next_aos(135.0) == pytest.approx(145.0)


def test_same_seed_same_trace_different_seed_different_trace():
    from intball_teleop.link.config import load_profile

    config = load_profile("iss-degraded", {"los.windows": [[3.0, 6.0]]}).uplink

    def trace(seed):
        channel = Channel(config, seed)
        fates = [channel.send(i.to_bytes(4, "big") * 10, i * 0.02) for i in range(3000)]
        return fates, [(d.packet, d.t_deliver) for d in channel.deliver(math.inf)]

    assert trace(11) == trace(11)
    assert trace(11) != trace(12)


def test_duplicates_follow_the_original():
    channel = Channel(ChannelConfig(delay_s=0.1, duplicate=0.3), seed=4)
    for i in range(1000):
        channel.send(i.to_bytes(2, "big"), i * 0.01)
    packets = [d.packet for d in channel.deliver(math.inf)]
    assert len(packets) - 1000 == channel.stats.duplicated
    assert channel.stats.duplicated / 1000 == pytest.approx(0.3, abs=0.06)


def test_time_must_not_go_backwards():
    channel = Channel(ChannelConfig(), seed=0)
    channel.send(b"x", 5.0)
    with pytest.raises(ValueError, match="backwards"):
        channel.send(b"x", 4.0)
