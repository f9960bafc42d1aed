"""Issue #5 acceptance through the real ground station: a 10-waypoint route sent with
POST /api/route over the real-time link emulator with the `iss-degraded` profile (1.5 s +
Pareto delay, ~7 % bursty loss, 256 kbit/s up) and two LOS windows, to the onboard bridge
and the kinematic stand-in robot. Every waypoint completes, each command is executed onboard
exactly once and in order, nothing is lost. (tests/test_link_route.py does the same on
simulated time over hostile links; this one runs the whole ground station in real time.)
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
            r = await client.post("/api/route", json={"waypoints": [{"position": p} for p in WAYPOINTS]})
            assert r.status == 202, await r.text()
            ids = [c["id"] for c in (await r.json())["commands"]]
            records = stack.ground.queue.records
            held = False
            t0 = time.monotonic()
            while time.monotonic() - t0 < 110:
                held = held or stack.onboard.supervisor.action.value == "station_keep"
                if all(records[i].state.final for i in ids):
                    break
                await asyncio.sleep(0.1)
            elapsed = time.monotonic() - t0
            states = [records[i].state.value for i in ids]
            assert states == ["completed"] * 10, (states, [records[i].reason for i in ids])
            executed = [cid for cid, kind in stack.onboard.executed if kind == "goal"]
            assert executed == ids, "each waypoint executed exactly once, in order"
            assert Counter(executed).most_common(1)[0][1] == 1
            flown = [pos for pos, _mode in robot.go_to_calls]
            assert [p for i, p in enumerate(flown) if i == 0 or p != flown[i - 1]] == WAYPOINTS
            assert robot.position.tolist() == pytest.approx(WAYPOINTS[-1], abs=1e-6)
            # the link really was degraded: losses, LOS drops and re-sends happened
            up = stack.link.uplink.stats
            assert up.los_dropped + stack.link.downlink.stats.los_dropped > 0
            assert sum(records[i].sends for i in ids) > 10 or up.lost > 0
            print(
                f"route: {elapsed:.1f} s, sends {[records[i].sends for i in ids]}, uplink lost {up.lost} "
                f"los-dropped {up.los_dropped}, onboard hold during LOS: {held}"
            )
        finally:
            await client.close()
            await stack.close()

    asyncio.run(body())
