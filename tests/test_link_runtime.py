"""Asyncio runtime: delivery in real time (small delays), pings, status, LOS, callbacks.

No timing assertions beyond "not earlier than the configured delay" (performance lives in
bench/bench_link.py).
"""

from __future__ import annotations

import asyncio

from intball_teleop.link.channel import Fate
from intball_teleop.link.config import load_profile
from intball_teleop.link.runtime import LinkEmulator

FAST = {"uplink.delay_s": 0.02, "downlink.delay_s": 0.03}


def test_messages_cross_in_order_and_not_before_the_delay():
    async def main():
        async with LinkEmulator(load_profile("ideal", FAST), seed=1, ping_interval_s=0) as link:
            for i in range(20):
                await link.ground.send(i.to_bytes(2, "big"))
            got = [await link.onboard.recv_message() for _ in range(20)]
            await link.onboard.send(b"telemetry")
            down = await link.ground.recv_message()
        return got, down

    got, down = asyncio.run(main())
    assert [int.from_bytes(m.data, "big") for m in got] == list(range(20))
    assert all(m.t_received >= m.t_sent + 0.02 for m in got)
    assert down.data == b"telemetry" and down.t_received >= down.t_sent + 0.03


def test_status_measures_round_trip_and_loss():
    profile = load_profile("ideal", {**FAST, "uplink.random_loss": 0.3})

    async def main():
        async with LinkEmulator(profile, seed=2, ping_interval_s=0.005) as link:
            for _ in range(100):
                await link.ground.send(b"x")
            await asyncio.sleep(0.4)
            return link.status()

    status = asyncio.run(main())
    assert status.aos and status.time_to_next_los_s == float("inf")
    assert status.rtt_s >= 0.05 and status.rtt_mean_s >= 0.05
    assert 0.1 < status.uplink_loss < 0.5  # measured onboard, reported in pongs
    assert status.downlink_loss == 0.0 and status.since_downlink_s < 0.4


def test_los_window_blocks_traffic_and_shows_in_status():
    profile = load_profile("ideal", {**FAST, "los": {"windows": [[0.0, 0.15]]}})

    async def main():
        async with LinkEmulator(profile, seed=3, ping_interval_s=0) as link:
            during = link.status()
            fate = await link.ground.send(b"lost in LOS")
            await asyncio.sleep(0.16)
            after = link.status()
            await link.ground.send(b"after")
            data = await link.onboard.recv()
            return during, fate, after, data

    during, fate, after, data = asyncio.run(main())
    assert not during.aos and 0 < during.time_to_aos_s <= 0.15 and during.time_to_next_los_s == 0
    assert fate is Fate.LOS
    assert after.aos and data == b"after"


def test_callbacks_receive_messages_and_can_answer():
    async def main():
        async with LinkEmulator("ideal", seed=4, ping_interval_s=0) as link:
            link.onboard.on_receive(lambda data: link.onboard.send_nowait(b"ack:" + data))
            received = asyncio.Queue()

            async def on_ground(data):
                await received.put(data)

            link.ground.on_receive(on_ground)
            await link.ground.send(b"cmd")
            return await asyncio.wait_for(received.get(), 1.0)

    assert asyncio.run(main()) == b"ack:cmd"


def test_a_failing_callback_does_not_stall_the_link():
    async def main():
        errors = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx["message"]))
        async with LinkEmulator("ideal", seed=6, ping_interval_s=0) as link:
            got = []

            def callback(data):
                if data == b"boom":
                    raise RuntimeError("bug in a subscriber")
                got.append(data)

            link.onboard.on_receive(callback)
            for data in (b"a", b"boom", b"b"):
                await link.ground.send(data)
            await asyncio.sleep(0.01)
            await link.ground.send(b"c")
            await asyncio.sleep(0.01)
        return got, errors

    got, errors = asyncio.run(main())
    assert got == [b"a", b"b", b"c"] and errors == ["link onboard receive callback failed"]
