"""Issue #5 acceptance through the real ground station: a 10-waypoint route sent with
POST /api/route (one `route` command) over the real-time link emulator with the `iss-degraded`
profile (1.5 s + Pareto delay, ~7 % bursty loss, 256 kbit/s up) and two LOS windows, to the
onboard bridge and the kinematic stand-in robot. The route command is executed onboard exactly
once; the onboard LOS hold interrupts it and it goes on from the waypoint it was flying to:
every waypoint is flown, in order, none twice in a row skipped or flown again from the start;
the console's telemetry shows the progress. (tests/test_link_route.py does the same with goal
commands on simulated time over hostile links; this one runs the whole ground station in real
time.)
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from aiohttp.test_utils import TestClient, TestServer

from intball_teleop import commands as C
from intball_teleop.kinematic import KinematicRobot
from intball_teleop.onboard import OnboardConfig
from intball_teleop.server.app import create_app
from intball_teleop.server.auth import Credentials, User
from intball_teleop.server.stack import Stack, StackConfig, supervisor_config

pytestmark = pytest.mark.slow

TOKEN = "route-operator-token-0123456789"
LOS_WINDOWS = [[5.0, 12.0], [22.0, 27.0]]  # s since the link epoch: 7 s and 5 s without signal
WAYPOINTS = [[1.0 + 0.75 * i, 0.3 * (-1) ** i, 0.2 * ((i % 3) - 1)] for i in range(10)]
HOLD_S = 2.0  # at each waypoint: the route lasts ~25 s, across the LOS windows


@pytest.mark.parametrize("seed", [3])
def test_ten_waypoint_route_over_iss_degraded_with_los(seed):
    async def body():
        ws = C.Workspace.default()
        robot = KinematicRobot(ws, position=(1.0, 0.0, 0.0), speed_scale=8.0)
        onboard = OnboardConfig(
            telemetry_rate_hz=2.0, camera_rate_hz=0.0, supervisor=supervisor_config(5.0, 900.0)
        )
        cfg = StackConfig(
            profile="iss-degraded",
            profile_overrides={"los": {"windows": LOS_WINDOWS}},
            seed=seed,
            onboard=onboard,
        )
        stack = Stack(robot, cfg, ws)
        stack.start()
        server = TestServer(create_app(stack, Credentials({"op": User("op", "operator", token=TOKEN)})))
        client = TestClient(server)
        await client.start_server()
        try:
            assert (await client.post("/api/login", json={"token": TOKEN})).status == 200
            assert (await client.post("/api/control/take", json={})).status == 200
            waypoints = [{"position": p, "hold_s": HOLD_S} for p in WAYPOINTS]
            r = await client.post("/api/route", json={"waypoints": waypoints, "flight_mode": "nominal"})
            assert r.status == 202, await r.text()
            cid = (await r.json())["command"]["id"]
            record = stack.ground.queue.records[cid]
            held_in_route = False
            progress = []  # (index, n) of the route in the telemetry the ground received
            t0 = time.monotonic()
            while time.monotonic() - t0 < 110:
                held_in_route = held_in_route or (
                    stack.onboard.supervisor.action.value == "station_keep"
                    and robot.route is None
                    and stack.onboard.active is not None
                )
                route = (stack.ground.telemetry or {}).get("route")
                if route and route["command"] == cid and (not progress or progress[-1] != route["index"]):
                    progress.append(route["index"])
                    assert route["n"] == 10
                if record.state.final:
                    break
                await asyncio.sleep(0.1)
            elapsed = time.monotonic() - t0
            assert record.state.value == "completed", (record.state, record.reason)
            assert record.reason == "route complete: 10 waypoints"
            assert [h[1].value for h in record.history][-2:] == ["executing", "completed"]
            executed = [c for c, kind in stack.onboard.executed]
            assert executed == [cid], "the route command executed exactly once"
            assert Counter(executed).most_common(1)[0][1] == 1
            # every waypoint flown, in order: a re-flown leg after the LOS hold repeats the waypoint
            # it was flying to, never an earlier one, never the route from the start
            flown = [pos for pos, _mode in robot.go_to_calls]
            assert [p for i, p in enumerate(flown) if i == 0 or p != flown[i - 1]] == WAYPOINTS
            assert robot.position.tolist() == pytest.approx(WAYPOINTS[-1], abs=1e-6)
            assert held_in_route, "the onboard LOS hold never interrupted the route"
            assert len(robot.route_calls) >= 2 and robot.route_calls[0] == 10
            assert sorted(robot.route_calls, reverse=True) == robot.route_calls  # resumed, not restarted
            assert progress == sorted(progress) and progress[-1] == 9, progress
            # the link really was degraded: losses or re-sends, and LOS drops happened
            up = stack.link.uplink.stats
            assert up.los_dropped + stack.link.downlink.stats.los_dropped > 0
            print(
                f"route: {elapsed:.1f} s, sends {record.sends}, uplink lost {up.lost} "
                f"los-dropped {up.los_dropped}, backend routes {robot.route_calls}, progress seen {progress}"
            )
        finally:
            await client.close()
            await stack.close()

    asyncio.run(body())
