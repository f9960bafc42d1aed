"""Overhead of the link emulator runtime on top of the configured delay.

Runs the asyncio :class:`LinkEmulator` in real time with the ``ideal`` profile plus a
fixed one-way delay (no jitter, no loss), and measures end to end, including the protocol
work on both sides:

- command: ground ``CommandQueue.submit`` + ``poll`` (sign) -> uplink -> onboard
  ``CommandGate.receive`` (verify, accept). Overhead = accept time - submit time - delay.
- command round trip: ... -> signed ``received`` ack -> downlink -> ground
  ``CommandQueue.receive``. Overhead = ack applied - submit - 2 x delay.
- telemetry: onboard builds a JSON telemetry message (1 kB) -> downlink -> ground parses
  it. Overhead = parsed - built - delay.

Traffic runs concurrently (telemetry at 50 Hz, commands at 5 Hz, link pings at 1 Hz), as
on the console. A baseline stream measures how late a plain ``asyncio.sleep(delay)`` wakes
up in the same loop at the same time: what any asyncio program gets on this machine.
Prints a markdown table for docs/benchmarks.md.

    .venv/bin/python bench/bench_link.py [--runs 5] [--duration 4] [--delay 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import sys
import time

from intball_teleop.link.config import load_profile
from intball_teleop.link.protocol import CommandGate, CommandQueue, QueueConfig, make_keys
from intball_teleop.link.runtime import LinkEmulator


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100.0 * (len(ordered) - 1))))]


async def one_run(delay_s: float, duration_s: float, seed: int) -> dict[str, list[float]]:
    profile = load_profile("ideal", {"uplink.delay_s": delay_s, "downlink.delay_s": delay_s})
    keys = make_keys(["ground"], b"bench secret")
    results: dict[str, list[float]] = {
        "command": [],
        "command round trip": [],
        "telemetry": [],
        "baseline: asyncio.sleep lateness": [],
    }
    async with LinkEmulator(profile, seed=seed, ping_interval_s=1.0) as link:
        clock = link.now
        queue = CommandQueue("ground", keys["ground"], QueueConfig(window=100, heartbeat_interval_s=0))
        gate = CommandGate(keys)
        submitted: dict[str, float] = {}

        def on_board(data: bytes) -> None:
            receipt = gate.receive(data, clock())
            if receipt.command is not None:
                t = clock()
                results["command"].append(t - submitted[receipt.command.id] - delay_s)
            for reply in receipt.replies:
                link.onboard.send_nowait(reply)

        def on_ground(data: bytes) -> None:
            if data.startswith(b'{"expires') or b'"t":"ack"' in data:
                record = queue.receive(data, clock())
                if record is not None:
                    results["command round trip"].append(clock() - submitted[record.command.id] - 2 * delay_s)
                return
            message = json.loads(data)
            results["telemetry"].append(clock() - message["stamp"] - delay_s)

        link.onboard.on_receive(on_board)
        link.ground.on_receive(on_ground)

        async def commands() -> None:
            i = 0
            while True:
                t = clock()
                cid = queue.submit("goto", {"waypoint": i, "position": [1.0, 2.0, 0.5]}, t)
                submitted[cid] = t
                for wire in queue.poll(t):
                    link.ground.send_nowait(wire)
                i += 1
                await asyncio.sleep(0.2)

        async def telemetry() -> None:
            pad = "x" * 900
            while True:
                message = {"stamp": clock(), "pose": [1.0, 2.0, 0.5, 0, 0, 0, 1], "battery": 0.9, "pad": pad}
                link.onboard.send_nowait(json.dumps(message).encode())
                await asyncio.sleep(0.02)

        async def sleeper() -> None:
            t0 = clock()
            await asyncio.sleep(delay_s)
            results["baseline: asyncio.sleep lateness"].append(clock() - t0 - delay_s)

        async def baseline() -> None:  # the same loop without the emulator: the floor
            while True:
                asyncio.ensure_future(sleeper())
                await asyncio.sleep(0.02)

        tasks = [asyncio.create_task(f()) for f in (commands, telemetry, baseline)]
        await asyncio.sleep(duration_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(2 * delay_s + 0.05)  # let the last messages land
    return results


def cpu_costs(n: int = 5000, repeats: int = 5) -> dict[str, float]:
    """Per-message CPU cost (us, best of ``repeats``): load-independent floor of the overhead."""
    from intball_teleop.link.channel import Channel

    keys = make_keys(["ground"], b"bench secret")
    telemetry = json.dumps({"stamp": 0.0, "pose": [1.0, 2.0, 0.5, 0, 0, 0, 1], "pad": "x" * 900}).encode()
    nominal = load_profile("iss-nominal").downlink

    def channel_ideal() -> None:
        channel = Channel(load_profile("ideal").uplink, 1)
        for i in range(n):
            channel.send(telemetry, float(i))
            channel.deliver(float(i))

    def channel_nominal() -> None:
        channel = Channel(nominal, 1)
        for i in range(n):
            channel.send(telemetry, i * 0.02)
            channel.deliver(i * 0.02)

    queue = CommandQueue("ground", keys["ground"], QueueConfig(window=10**9, heartbeat_interval_s=0))
    for i in range(n):
        queue.submit("goto", {"waypoint": i, "position": [1.0, 2.0, 0.5]}, 0.0)
    wires = queue.poll(0.0)

    def sign() -> None:
        q = CommandQueue("ground", keys["ground"], QueueConfig(heartbeat_interval_s=0))
        for i in range(n):
            q.submit("goto", {"waypoint": i, "position": [1.0, 2.0, 0.5]}, 0.0)

    def verify() -> None:
        gate = CommandGate(keys)
        for wire in wires:
            gate.receive(wire, 1.0)

    out = {}
    for name, fn in [
        ("channel send+deliver (ideal)", channel_ideal),
        ("channel send+deliver (iss-nominal)", channel_nominal),
        ("command submit+sign (ground)", sign),
        ("command verify+accept+ack (onboard)", verify),
    ]:
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        out[name] = best / n * 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of traffic per run")
    parser.add_argument("--delay", type=float, default=0.1, help="configured one-way delay, s")
    args = parser.parse_args()

    delay_ms = args.delay * 1000
    print(f"# bench_link: ideal profile + {delay_ms:.0f} ms one way, {args.runs} runs x {args.duration:g} s,")
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"# python {sys.version.split()[0]}, {platform.machine()}, {platform.system()}")
    print()
    print("| run | stream | n | p50 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    overall: dict[str, list[float]] = {}
    for run in range(args.runs):
        results = asyncio.run(one_run(args.delay, args.duration, seed=run))
        for stream, values in results.items():
            overall.setdefault(stream, []).extend(values)
            ms = [v * 1000 for v in values]
            print(
                f"| {run} | {stream} | {len(ms)} | {_pct(ms, 50):.3f} | {_pct(ms, 99):.3f} | {max(ms):.3f} |"
            )
    for stream, values in overall.items():
        ms = [v * 1000 for v in values]
        print(
            f"| all | {stream} | {len(ms)} | {_pct(ms, 50):.3f} | {_pct(ms, 99):.3f} | {max(ms):.3f} |"
            f"  <!-- mean {statistics.fmean(ms):.3f} -->"
        )
    print()
    print("| CPU cost per message (best of 5) | us |")
    print("| --- | --- |")
    for name, us in cpu_costs().items():
        print(f"| {name} | {us:.1f} |")


if __name__ == "__main__":
    main()
