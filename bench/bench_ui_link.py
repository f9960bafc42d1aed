"""Overhead of the ground station (HTTP/WebSocket server + ground station + link + onboard
bridge) on top of the configured link delay: the issue's target is <= 10 ms p99.

One process, one event loop, as in production (``intball up --ui`` runs them in one
process): the aiohttp server on 127.0.0.1 (free port), the link with the ``ideal`` profile
plus a fixed one-way delay (no jitter, no loss), the onboard bridge over the kinematic
stand-in robot, and a scripted operator (aiohttp client: cookie session, WebSocket).

- command: HTTP POST /api/commands sent -> onboard bridge executes it.
  Overhead = executed - POST sent - delay (includes HTTP, validation, signing, verify).
- command ack to console: POST sent -> the WebSocket event showing ``received``.
  Overhead = event received - POST sent - 2 x delay.
- telemetry: onboard builds telemetry (``at_ms``, whole ms) -> WebSocket event parsed by
  the client. Overhead = parsed - at_ms - delay (the ms truncation adds 0..1 ms).
- baseline: how late ``asyncio.sleep(delay)`` wakes up in the same loop at the same time
  (timer granularity and CPU contention: the floor for any of the above).

    .venv/bin/python bench/bench_ui_link.py [--runs 3] [--duration 5] [--delay 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time

import aiohttp
from aiohttp import web

from intball_teleop import commands as C
from intball_teleop.kinematic import KinematicRobot
from intball_teleop.onboard import OnboardConfig
from intball_teleop.server.app import create_app
from intball_teleop.server.auth import Credentials, User
from intball_teleop.server.stack import Stack, StackConfig

TOKEN = "bench-operator-token-0123456789"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100.0 * (len(ordered) - 1))))]


async def one_run(delay: float, duration: float, seed: int) -> dict[str, list[float]]:
    ws_geo = C.Workspace.default()
    robot = KinematicRobot(ws_geo)
    overrides = {"uplink.delay_s": delay, "downlink.delay_s": delay}
    onboard = OnboardConfig(telemetry_rate_hz=20.0, camera_rate_hz=1.0)
    stack = Stack(
        robot, StackConfig(profile="ideal", profile_overrides=overrides, seed=seed, onboard=onboard), ws_geo
    )
    stack.start()
    executed_at: dict[str, float] = {}
    original = stack.onboard._execute

    def timed_execute(command, now):
        executed_at[command.id] = time.time()
        return original(command, now)

    stack.onboard._execute = timed_execute
    runner = web.AppRunner(create_app(stack, Credentials({"op": User("op", "operator", token=TOKEN)})))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    out: dict[str, list[float]] = {
        "command": [],
        "command ack to console": [],
        "telemetry": [],
        "baseline: asyncio.sleep lateness": [],
    }

    async def baseline() -> None:  # what any asyncio program gets on this machine right now
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(delay)
            out["baseline: asyncio.sleep lateness"].append(time.monotonic() - t0 - delay)

    posted: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            await http.post(f"{url}/api/login", json={"token": TOKEN})
            await http.post(f"{url}/api/control/take", json={})
            ws = await http.ws_connect(f"{url}/api/ws", headers={"Origin": url})

            async def reader() -> None:
                async for msg in ws:
                    now = time.time()
                    event = json.loads(msg.data)
                    if event["type"] == "telemetry":
                        out["telemetry"].append(now - event["telemetry"]["at_ms"] / 1000.0 - delay)
                    elif event["type"] == "command" and event["command"]["state"] == "received":
                        cid = event["command"]["id"]
                        if cid in posted:
                            out["command ack to console"].append(now - posted.pop(cid) - 2 * delay)

            task = asyncio.create_task(reader())
            base = asyncio.create_task(baseline())
            await asyncio.sleep(0.5)
            out["telemetry"].clear()
            t_end = time.monotonic() + duration
            sent: dict[str, float] = {}
            while time.monotonic() < t_end:
                t0 = time.time()
                r = await http.post(f"{url}/api/commands", json={"kind": "station_keep", "payload": {}})
                cid = (await r.json())["command"]["id"]
                posted[cid] = sent[cid] = t0
                # > one round trip: the ground sends a command only after the previous one was
                # acknowledged onboard (window 1), a queueing wait that is not overhead
                await asyncio.sleep(2 * delay + 0.15)
            await asyncio.sleep(2 * delay + 0.2)
            task.cancel()
            base.cancel()
            await ws.close()
            out["command"] = [executed_at[k] - t0 - delay for k, t0 in sent.items() if k in executed_at]
    finally:
        await runner.cleanup()
        await stack.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--delay", type=float, default=0.1)
    args = parser.parse_args()
    merged: dict[str, list[float]] = {}
    for run in range(args.runs):
        res = asyncio.run(one_run(args.delay, args.duration, seed=run))
        for k, v in res.items():
            merged.setdefault(k, []).extend(v)
    load = os.getloadavg()[0]
    print(f"# ground station overhead beyond the configured delay ({args.delay * 1000:.0f} ms one way)")
    runs = f"{args.runs} x {args.duration:g} s"
    print(f"# {platform.node()}, {os.cpu_count()} CPUs, load average {load:.1f}, {runs}")
    print("| stream | n | p50 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in merged.items():
        ms = [v * 1000 for v in values]
        if not ms:
            print(f"| {name} | 0 | - | - | - |")
            continue
        print(f"| {name} | {len(ms)} | {statistics.median(ms):.2f} | {_pct(ms, 99):.2f} | {max(ms):.2f} |")


if __name__ == "__main__":
    main()
