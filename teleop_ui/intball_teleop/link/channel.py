"""One direction of the space-to-ground link as a pure, seeded, clock-injected model.

The model decides each packet's fate when it is sent and keeps the survivors in a
priority queue ordered by delivery time; :meth:`Channel.deliver` hands out those due.
Nothing sleeps: the caller passes ``now`` (seconds on any monotonic clock) so the same
model runs in real time (:mod:`.runtime`) and in simulated time (tests).

Per packet, in order (see docs/link.md):

1. Draw five uniforms from the channel's own ``random.Random(seed)`` (always five, whatever
   happens to the packet, so that one packet's fate never shifts the random stream of the
   next: changing a LOS window does not change the loss pattern elsewhere).
2. Step the Gilbert-Elliott state (G/B) once.
3. LOS at send time -> dropped (``Fate.LOS``); a real transmitter in LOS radiates into
   nothing, it does not buffer minutes of traffic.
4. Bandwidth: serialization takes ``8 * len / bandwidth_bps`` s after the previous packet
   finished; if the bytes waiting (including the one on the air) plus this packet exceed
   ``queue_bytes`` the packet is tail-dropped (``Fate.QUEUE_FULL``).
5. Random or Gilbert-Elliott loss -> ``Fate.LOST`` (it used its share of bandwidth).
6. Delivery time = end of serialization + ``delay_s`` + jitter; without ``reorder`` a
   packet is never delivered before an earlier one (it waits behind it).
7. If a LOS window overlaps [send time, delivery time] the packet is dropped too
   (``Fate.LOS``): nothing is delivered during LOS, and a packet in flight when the
   signal drops is lost.
8. With probability ``duplicate`` a second copy is delivered right after the first.
"""

from __future__ import annotations

import enum
import heapq
import math
import random
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple

from .config import ChannelConfig, JitterConfig

_STD_NORMAL = NormalDist()


class Fate(enum.Enum):
    """What the channel decided for a packet at send time."""

    SCHEDULED = "scheduled"
    LOST = "lost"
    LOS = "los"
    QUEUE_FULL = "queue_full"


class Delivery(NamedTuple):
    """A delivered packet: payload bytes, delivery time and send time (s, caller's clock)."""

    packet: bytes
    t_deliver: float
    t_sent: float


@dataclass
class ChannelStats:
    """Counters since construction (packets unless noted)."""

    sent: int = 0
    scheduled: int = 0
    delivered: int = 0
    lost: int = 0
    los_dropped: int = 0
    queue_dropped: int = 0
    duplicated: int = 0
    bytes_sent: int = 0

    @property
    def loss_rate(self) -> float:
        """Fraction of sent packets that were dropped for any reason."""
        dropped = self.lost + self.los_dropped + self.queue_dropped
        return dropped / self.sent if self.sent else 0.0


def sample_jitter(jitter: JitterConfig, u: float) -> float:
    """Extra delay (s) for one packet from a uniform ``u`` in [0, 1) (inverse CDF).

    Inverse-CDF sampling uses exactly one uniform per packet whatever the distribution.
    """
    if jitter.distribution == "none":
        extra = 0.0
    elif jitter.distribution == "normal":
        if jitter.std_s == 0.0:
            extra = 0.0
        else:
            k = jitter.truncate_sigma
            lo = _STD_NORMAL.cdf(-k)
            p = lo + u * (1.0 - 2.0 * lo)
            extra = jitter.std_s * _STD_NORMAL.inv_cdf(min(max(p, lo), 1.0 - lo))
    elif jitter.distribution == "lognormal":
        if jitter.std_s == 0.0:
            extra = jitter.mean_s
        else:
            s2 = math.log1p((jitter.std_s / jitter.mean_s) ** 2)
            mu = math.log(jitter.mean_s) - 0.5 * s2
            p = min(max(u, 1e-300), 1.0 - 1e-16)
            extra = math.exp(mu + math.sqrt(s2) * _STD_NORMAL.inv_cdf(p))
    else:  # pareto (Lomax): P(X > x) = (1 + x / scale) ** -alpha
        extra = jitter.pareto_scale_s * ((1.0 - u) ** (-1.0 / jitter.pareto_alpha) - 1.0)
    if jitter.cap_s is not None:
        extra = min(extra, jitter.cap_s)
    return extra


class Channel:
    """One link direction. ``send`` decides a packet's fate; ``deliver`` returns those due.

    config: the direction's :class:`ChannelConfig` (its ``los`` schedule included).
    seed: any int; the same seed and the same sequence of ``send`` calls give the same
      delivery trace, bit for bit.
    epoch: the clock value that LOS schedule times are relative to (emulator start).

    ``now`` must never decrease between calls (ValueError otherwise).
    """

    def __init__(self, config: ChannelConfig, seed: int, *, epoch: float = 0.0) -> None:
        self.config = config
        self.epoch = epoch
        self.stats = ChannelStats()
        self._rng = random.Random(seed)
        self._bad = False  # Gilbert-Elliott state; starts good
        self._heap: list[tuple[float, int, bytes, float]] = []
        self._counter = 0
        self._last_deliver = -math.inf
        self._busy_until = -math.inf
        self._backlog: list[tuple[float, int]] = []  # (serialization end, size) in order
        self._backlog_bytes = 0
        self._backlog_head = 0
        self._last_now = -math.inf

    # -- model -------------------------------------------------------------------------

    def send(self, packet: bytes, now: float) -> Fate:
        """Offer a packet to the channel at time ``now`` (s). Returns its fate."""
        self._advance(now)
        cfg = self.config
        rng = self._rng.random
        u_transition, u_ge, u_loss, u_jitter, u_dup = rng(), rng(), rng(), rng(), rng()
        ge = cfg.gilbert_elliott
        self._bad = (u_transition >= ge.p_bad_to_good) if self._bad else (u_transition < ge.p_good_to_bad)
        stats = self.stats
        stats.sent += 1
        stats.bytes_sent += len(packet)

        if cfg.los.in_los(now - self.epoch):
            stats.los_dropped += 1
            return Fate.LOS

        tx_end = now
        if cfg.bandwidth_bps is not None:
            self._drain_backlog(now)
            if self._backlog_bytes + len(packet) > cfg.queue_bytes:
                stats.queue_dropped += 1
                return Fate.QUEUE_FULL
            tx_end = max(now, self._busy_until) + 8.0 * len(packet) / cfg.bandwidth_bps
            self._busy_until = tx_end
            self._backlog.append((tx_end, len(packet)))
            self._backlog_bytes += len(packet)

        if u_loss < cfg.random_loss or u_ge < (ge.loss_bad if self._bad else ge.loss_good):
            stats.lost += 1
            return Fate.LOST

        t_deliver = tx_end + cfg.delay_s + sample_jitter(cfg.jitter, u_jitter)
        if not cfg.reorder:
            t_deliver = max(t_deliver, self._last_deliver)
        if cfg.los.overlaps(now - self.epoch, t_deliver - self.epoch):
            stats.los_dropped += 1
            return Fate.LOS

        self._last_deliver = max(self._last_deliver, t_deliver)
        self._push(t_deliver, packet, now)
        stats.scheduled += 1
        if u_dup < cfg.duplicate:
            self._push(t_deliver, packet, now)
            stats.duplicated += 1
        return Fate.SCHEDULED

    def deliver(self, now: float) -> list[Delivery]:
        """Pop every packet whose delivery time is <= ``now``, in delivery order."""
        self._advance(now)
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            t_deliver, _, packet, t_sent = heapq.heappop(heap)
            out.append(Delivery(packet, t_deliver, t_sent))
        self.stats.delivered += len(out)
        return out

    def next_delivery_time(self) -> float | None:
        """Delivery time of the next packet in flight, or None when nothing is in flight."""
        return self._heap[0][0] if self._heap else None

    @property
    def in_flight(self) -> int:
        """Packets scheduled but not yet delivered."""
        return len(self._heap)

    # -- LOS helpers (clock times) --------------------------------------------------------

    def in_los(self, now: float) -> bool:
        """True when the link is in loss of signal at ``now``."""
        return self.config.los.in_los(now - self.epoch)

    def next_los_start(self, now: float) -> float:
        """Clock time when the next LOS starts (``now`` if in LOS, inf if none)."""
        if self.in_los(now):
            return now
        return self.config.los.next_los_start(now - self.epoch) + self.epoch

    def next_aos(self, now: float) -> float:
        """Clock time when the signal is (or was) acquired: ``now`` if AOS."""
        return self.config.los.los_end(now - self.epoch) + self.epoch

    # -- internals -------------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        if now < self._last_now:
            raise ValueError(f"time went backwards: now={now!r} < previous {self._last_now!r}")
        self._last_now = now

    def _push(self, t_deliver: float, packet: bytes, t_sent: float) -> None:
        heapq.heappush(self._heap, (t_deliver, self._counter, packet, t_sent))
        self._counter += 1

    def _drain_backlog(self, now: float) -> None:
        backlog = self._backlog
        head = self._backlog_head
        while head < len(backlog) and backlog[head][0] <= now:
            self._backlog_bytes -= backlog[head][1]
            head += 1
        if head > 1024 and head * 2 > len(backlog):
            del backlog[:head]
            head = 0
        self._backlog_head = head
