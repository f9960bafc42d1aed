"""Real-time asyncio runtime of the link: two ends joined by two :class:`Channel` models.

    ground end --send--> [uplink Channel] --> onboard end --recv / callback
    ground end <--recv-- [downlink Channel] <--send-- onboard end

Each direction keeps one timer armed for its next delivery (``loop.call_at`` style), so an
idle link costs nothing and a delivery costs one timer wake-up. Messages are opaque
bytes; the runtime adds a 5-byte frame header (type, per-direction sequence number) so it
can measure loss and carry its own pings:

- the ground end pings every ``ping_interval_s``; the onboard end answers at once with
  its measured uplink loss; the ground computes the round trip (pings share the channels
  with the traffic, so they see the same delay, loss, bandwidth queue and LOS).

Usage::

    async with LinkEmulator("iss-nominal", seed=1) as link:
        await link.ground.send(b"...")
        data = await link.onboard.recv()
        print(link.status())
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import math
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

from .channel import Channel, Delivery, Fate
from .config import LinkProfile, load_profile

_HEADER = struct.Struct(">BI")  # frame type, sequence number (mod 2^32)
_PING = struct.Struct(">Id")  # ping id, ground send time (s)
_PONG = struct.Struct(">Idd")  # ping id, ground send time, onboard-measured uplink loss (nan if unknown)
_DATA, _PING_T, _PONG_T = 0, 1, 2
_LOSS_WINDOW = 256


def derive_seed(seed: int, stream: str) -> int:
    """Independent, reproducible sub-seed for one stream (e.g. ``"uplink"``)."""
    digest = hashlib.sha256(f"intball-link:{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class Message(NamedTuple):
    """A received message with its timing (s, emulator clock)."""

    data: bytes
    t_sent: float
    t_deliver: float  # when the channel model scheduled it
    t_received: float  # when the runtime handed it over (t_received - t_deliver = runtime lateness)


@dataclass(frozen=True)
class LinkStatus:
    """Snapshot of the link as the ground sees it (times in s)."""

    aos: bool  # signal acquired now
    time_to_next_los_s: float  # 0 when in LOS, inf when none is scheduled
    time_to_aos_s: float  # 0 when AOS
    rtt_s: float | None  # last ping round trip
    rtt_mean_s: float | None  # mean of the last 20 pings
    uplink_loss: float | None  # measured onboard over the last 256 frames (reported in pongs)
    downlink_loss: float | None  # measured at the ground over the last 256 frames
    since_downlink_s: float  # time since the ground last received anything (inf if never)


class _LossMeter:
    """Loss over the last ``_LOSS_WINDOW`` sequence numbers, from the gaps in what arrived."""

    def __init__(self) -> None:
        self.first: int | None = None
        self.highest = -1
        self.recent: set[int] = set()

    def add(self, seq: int) -> None:
        if self.first is None:
            self.first = seq
        self.recent.add(seq)
        if seq > self.highest:
            self.highest = seq
            if len(self.recent) > 2 * _LOSS_WINDOW:
                floor = self.highest - _LOSS_WINDOW
                self.recent = {s for s in self.recent if s > floor}

    @property
    def loss(self) -> float | None:
        if self.first is None:
            return None
        span = min(_LOSS_WINDOW, self.highest - self.first + 1)
        floor = self.highest - span
        got = sum(1 for s in self.recent if s > floor)
        return max(0.0, 1.0 - got / span)


class LinkEnd:
    """One end of the link. ``send`` is fire-and-forget (the link may lose it)."""

    def __init__(self, emulator: LinkEmulator, name: str) -> None:
        self.name = name
        self._emulator = emulator
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._callback: Callable[[bytes], object] | None = None
        self._tx_seq = 0
        self.loss_meter = _LossMeter()
        self.last_received: float | None = None

    async def send(self, data: bytes) -> Fate:
        """Send one message; returns the channel's verdict (senders normally ignore it)."""
        return self.send_nowait(data)

    def send_nowait(self, data: bytes) -> Fate:
        """Synchronous send (for callbacks)."""
        return self._emulator._send(self, _DATA, bytes(data))

    async def recv(self) -> bytes:
        """Next message (waits). Not usable while a callback is set."""
        return (await self._inbox.get()).data

    async def recv_message(self) -> Message:
        """Next message with its timing."""
        return await self._inbox.get()

    def on_receive(self, callback: Callable[[bytes], object] | None) -> None:
        """Deliver messages to ``callback(data)`` instead of the inbox (coroutines are scheduled)."""
        self._callback = callback

    def _next_seq(self) -> int:
        seq = self._tx_seq
        self._tx_seq = (self._tx_seq + 1) & 0xFFFFFFFF
        return seq

    def _dispatch(self, message: Message) -> None:
        if self._callback is None:
            self._inbox.put_nowait(message)
            return
        result = self._callback(message.data)
        if inspect.isawaitable(result):
            self._emulator._spawn(result)


async def run_every(period: float, fn: Callable[[], None], who: str) -> None:
    """Call ``fn`` every ``period`` s until cancelled. An exception is logged (naming ``who``)
    and the loop goes on: one failing step must not stop a link end's other duties."""
    while True:
        try:
            fn()
        except Exception:
            logging.getLogger(__name__).exception("%s: %s failed", who, getattr(fn, "__name__", fn))
        await asyncio.sleep(period)


async def detach(end: LinkEnd, tasks: list[asyncio.Task]) -> None:
    """Stop a link end's user: no more deliveries to it, its periodic tasks cancelled and awaited."""
    end.on_receive(None)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class LinkEmulator:
    """The space-to-ground link in real time.

    profile: a :class:`LinkProfile` or a profile name / YAML path for :func:`load_profile`.
    seed: the same seed gives the same per-packet fates (timing of a real-time run still
      depends on the scheduler; use :class:`Channel` directly for bit-exact traces).
    clock: returns seconds; defaults to the running loop's ``time()``. LOS schedule times
      are relative to the clock value at construction.
    ping_interval_s: ground -> onboard ping period for the status (0 disables pings).
    """

    def __init__(
        self,
        profile: LinkProfile | str,
        seed: int = 0,
        clock: Callable[[], float] | None = None,
        *,
        ping_interval_s: float = 1.0,
    ) -> None:
        self.profile = profile if isinstance(profile, LinkProfile) else load_profile(profile)
        self._loop = asyncio.get_running_loop()
        self.clock = clock or self._loop.time
        self._now = self.clock()
        self.epoch = self._now
        self.uplink = Channel(self.profile.uplink, derive_seed(seed, "uplink"), epoch=self.epoch)
        self.downlink = Channel(self.profile.downlink, derive_seed(seed, "downlink"), epoch=self.epoch)
        self.ground = LinkEnd(self, "ground")
        self.onboard = LinkEnd(self, "onboard")
        self.ping_interval_s = ping_interval_s
        self._timers: dict[str, asyncio.TimerHandle | None] = {"uplink": None, "downlink": None}
        self._armed_at: dict[str, float] = {"uplink": math.inf, "downlink": math.inf}
        self._tasks: set[asyncio.Task] = set()
        self._ping_id = 0
        self._rtts: deque[float] = deque(maxlen=20)
        self._uplink_loss: float | None = None
        self._closed = False
        if ping_interval_s > 0:
            self._spawn(self._ping_loop())

    async def __aenter__(self) -> LinkEmulator:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop pings and pending deliveries (messages in flight are dropped)."""
        self._closed = True
        for handle in self._timers.values():
            if handle is not None:
                handle.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def now(self) -> float:
        """Emulator time (s): the clock, made non-decreasing."""
        self._now = max(self._now, self.clock())
        return self._now

    def status(self) -> LinkStatus:
        """AOS/LOS now and measured round trip and loss."""
        now = self.now()
        aos = not self.uplink.in_los(now)
        last = self.ground.last_received
        return LinkStatus(
            aos=aos,
            time_to_next_los_s=self.uplink.next_los_start(now) - now,
            time_to_aos_s=0.0 if aos else self.uplink.next_aos(now) - now,
            rtt_s=self._rtts[-1] if self._rtts else None,
            rtt_mean_s=sum(self._rtts) / len(self._rtts) if self._rtts else None,
            uplink_loss=self._uplink_loss,
            downlink_loss=self.ground.loss_meter.loss,
            since_downlink_s=math.inf if last is None else now - last,
        )

    def add_los_window(self, start_in_s: float, duration_s: float) -> tuple[float, float]:
        """Schedule an extra LOS window on both directions (drills and tests), ``start_in_s``
        from now for ``duration_s`` s. Returns (start, end) in seconds since the link epoch.
        Packets already in flight across the window are not recalled (their fate was decided
        at send time); everything sent into the window is dropped, as for scheduled LOS."""
        if not (math.isfinite(start_in_s) and math.isfinite(duration_s)) or start_in_s < 0 or duration_s <= 0:
            raise ValueError(
                f"LOS window: need start_in_s >= 0 and duration_s > 0, got {start_in_s}, {duration_s}"
            )
        start = self.now() - self.epoch + start_in_s
        window = (start, start + duration_s)
        for channel in (self.uplink, self.downlink):
            los = channel.config.los
            channel.config = replace(channel.config, los=replace(los, windows=(*los.windows, window)))
        return window

    # -- internals -------------------------------------------------------------------------

    def _route(self, end: LinkEnd) -> tuple[str, Channel, LinkEnd]:
        if end is self.ground:
            return "uplink", self.uplink, self.onboard
        return "downlink", self.downlink, self.ground

    def _send(self, end: LinkEnd, frame_type: int, body: bytes) -> Fate:
        if self._closed:
            return Fate.LOST
        name, channel, _ = self._route(end)
        fate = channel.send(_HEADER.pack(frame_type, end._next_seq()) + body, self.now())
        if fate is Fate.SCHEDULED:
            self._arm(name, channel)
        return fate

    def _arm(self, name: str, channel: Channel) -> None:
        t_next = channel.next_delivery_time()
        if t_next is None or t_next >= self._armed_at[name]:
            return
        handle = self._timers[name]
        if handle is not None:
            handle.cancel()
        self._armed_at[name] = t_next
        # If the loop wakes a hair early (clock resolution), _on_timer delivers nothing and
        # re-arms here for the remainder: a packet is never handed over before its time.
        delay = max(0.0, t_next - self.clock())
        self._timers[name] = self._loop.call_later(delay, self._on_timer, name)

    def _on_timer(self, name: str) -> None:
        self._timers[name] = None
        self._armed_at[name] = math.inf
        if self._closed:
            return
        channel, receiver = (self.uplink, self.onboard) if name == "uplink" else (self.downlink, self.ground)
        now = self.now()
        for delivery in channel.deliver(now):
            self._receive(receiver, delivery, now)
        self._arm(name, channel)

    def _receive(self, end: LinkEnd, delivery: Delivery, now: float) -> None:
        frame = delivery.packet
        if len(frame) < _HEADER.size:
            return
        frame_type, seq = _HEADER.unpack_from(frame)
        end.loss_meter.add(seq)
        end.last_received = now
        body = frame[_HEADER.size :]
        if frame_type == _DATA:
            try:
                end._dispatch(Message(body, delivery.t_sent, delivery.t_deliver, self.clock()))
            except Exception as exc:  # a failing user callback must not stall the link
                self._loop.call_exception_handler(
                    {"message": f"link {end.name} receive callback failed", "exception": exc}
                )
        elif frame_type == _PING_T and end is self.onboard and len(body) == _PING.size:
            ping_id, t_sent = _PING.unpack(body)
            loss = end.loss_meter.loss
            self._send(end, _PONG_T, _PONG.pack(ping_id, t_sent, math.nan if loss is None else loss))
        elif frame_type == _PONG_T and end is self.ground and len(body) == _PONG.size:
            _, t_sent, uplink_loss = _PONG.unpack(body)
            self._rtts.append(now - t_sent)
            self._uplink_loss = None if math.isnan(uplink_loss) else uplink_loss

    async def _ping_loop(self) -> None:
        while not self._closed:
            self._ping_id = (self._ping_id + 1) & 0xFFFFFFFF
            self._send(self.ground, _PING_T, _PING.pack(self._ping_id, self.now()))
            await asyncio.sleep(self.ping_interval_s)

    def _spawn(self, coro) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
