"""`intball up --ui` end to end: the real ROS graph (simulator, estimator, controller, nav) +
the bridge node + the ground station, driven like a script would through the documented
API: log in with the printed one-run token, take control, fly a goal, follow its acks to
completed on the state estimate; add a keep-out zone through the link (the navigation node's
service; its latched zones come back in the telemetry, the ground then refuses a goal inside
it); fly a route as one command (the FollowRoute action) with a pause and a resume, its
progress in the telemetry; remove the zone; then an emergency stop.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from ros_graph_helpers import Graph, isolated_domain_id

pytestmark = [pytest.mark.ros, pytest.mark.slow]

GOAL = [5.3, 0.25, 0.1]
ROUTE = [[5.7, 0.0, 0.1], [5.2, -0.3, 0.0]]
ZONE = {"name": "cargo_1", "min": [7.0, -0.5, -0.5], "max": [7.6, 0.5, 0.5]}
FINAL = ("completed", "failed", "rejected", "expired")


async def telemetry(http, url):
    return (await (await http.get(f"{url}/api/state")).json())["telemetry"]


async def send(http, url, kind, payload=None):
    r = await http.post(f"{url}/api/commands", json={"kind": kind, "payload": payload or {}})
    assert r.status == 202, await r.text()
    return (await r.json())["command"]["id"]


async def wait_state(http, url, cid, states, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cmd = (await (await http.get(f"{url}/api/commands/{cid}")).json())["command"]
        if cmd["state"] in states:
            return cmd
        await asyncio.sleep(0.25)
    raise AssertionError(f"command {cid} still {cmd['state']} after {timeout} s: {cmd}")


def test_intball_up_ui_flies_a_goal_through_the_link(tmp_path):
    graph = Graph(
        ["--no-cameras", "--ui", "--ui-port", "0", "--link-profile", "iss-nominal"],
        tmp_path / "up.log",
        domain_id=isolated_domain_id(),
    )
    try:
        m = graph.wait_output(r"\[intball_bridge\] ground station: (http://127\.0\.0\.1:\d+)/ ", 60)
        url = m.group(1)
        token = graph.wait_output(r"one-run operator token \(log in with it\): (\S+)", 10).group(1)
        assert "ground station: http://127.0.0.1:<free port>/" in graph.output()  # the launcher banner

        async def body():
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                assert (await http.post(f"{url}/api/login", json={"token": token})).status == 200
                assert (await http.post(f"{url}/api/control/take", json={})).status == 200
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    tm = (await (await http.get(f"{url}/api/state")).json())["telemetry"]
                    # ready to fly: an estimate, the controller's status and the navigation mode
                    est = tm and tm["estimate"]
                    if (
                        est
                        and est["guidance"]["state"] != "unknown"
                        and est["mode"] in ("idle", "station_keeping")
                    ):
                        break
                    await asyncio.sleep(0.5)
                assert tm["source"] == "ros" and tm["estimate"]["localization"]["level"] == "ok"
                r = await http.post(
                    f"{url}/api/commands", json={"kind": "goal", "payload": {"position": GOAL}}
                )
                assert r.status == 202
                cid = (await r.json())["command"]["id"]
                cmd = await wait_state(http, url, cid, ("completed", "failed", "rejected", "expired"), 90)
                assert cmd["state"] == "completed", (cmd, graph.output()[-3000:])
                assert [h["state"] for h in cmd["history"]] == [
                    "queued",
                    "sent",
                    "received",
                    "executing",
                    "completed",
                ]
                est = (await (await http.get(f"{url}/api/state")).json())["telemetry"]["estimate"]
                assert est["pose"]["position"] == pytest.approx(GOAL, abs=0.03)

                # keep-out zone through the link -> /intball/keep_out/add -> latched zones -> telemetry
                assert {z["name"] for z in (await telemetry(http, url))["keep_out"]} >= {
                    "stowage_bag",
                    "dock",
                }
                cmd = await wait_state(http, url, await send(http, url, "keep_out_add", ZONE), FINAL, 20)
                assert cmd["state"] == "completed" and "cargo_1 added" in cmd["reason"], cmd
                deadline = time.monotonic() + 10
                while not any(z["name"] == "cargo_1" for z in (await telemetry(http, url))["keep_out"]):
                    assert time.monotonic() < deadline, "zone not in the telemetry"
                    await asyncio.sleep(0.25)
                r = await http.post(
                    f"{url}/api/commands", json={"kind": "goal", "payload": {"position": [7.3, 0, 0]}}
                )
                assert r.status == 400 and "keep-out zone cargo_1" in (await r.json())["error"]

                # a route as ONE command (FollowRoute), paused and resumed, progress in the telemetry
                wps = [{"position": p, "hold_s": 1.0} for p in ROUTE]
                r = await http.post(f"{url}/api/route", json={"waypoints": wps, "flight_mode": "nominal"})
                assert r.status == 202, await r.text()
                rid = (await r.json())["command"]["id"]
                await wait_state(http, url, rid, ("executing", *FINAL), 20)
                route = None
                deadline = time.monotonic() + 20
                while not (route and route["command"] == rid and route["n"] == 2):
                    assert time.monotonic() < deadline, "no route progress in the telemetry"
                    route = (await telemetry(http, url))["route"]
                    await asyncio.sleep(0.25)
                pause = await wait_state(http, url, await send(http, url, "route_pause"), FINAL, 20)
                assert pause["state"] == "completed" and "route paused" in pause["reason"], pause
                deadline = time.monotonic() + 10
                while not ((await telemetry(http, url))["route"] or {}).get("paused"):
                    assert time.monotonic() < deadline, "telemetry never showed the route paused"
                    await asyncio.sleep(0.25)
                await asyncio.sleep(2.0)
                assert (await (await http.get(f"{url}/api/commands/{rid}")).json())["command"][
                    "state"
                ] == "executing"
                resume = await wait_state(http, url, await send(http, url, "route_resume"), FINAL, 20)
                assert resume["state"] == "completed" and "route resumed" in resume["reason"], resume
                cmd = await wait_state(http, url, rid, FINAL, 120)
                assert cmd["state"] == "completed", (cmd, graph.output()[-3000:])
                assert cmd["reason"] == "route complete: 2 waypoints"
                est = (await telemetry(http, url))["estimate"]
                assert est["pose"]["position"] == pytest.approx(ROUTE[-1], abs=0.03)

                cmd = await wait_state(
                    http, url, await send(http, url, "keep_out_remove", {"name": "cargo_1"}), FINAL, 20
                )
                assert cmd["state"] == "completed" and "cargo_1 removed" in cmd["reason"], cmd
                r = await http.post(f"{url}/api/emergency_stop")
                assert r.status == 202
                cmd = await wait_state(http, url, (await r.json())["command"]["id"], ("completed",), 20)
                assert "emergency stop" in cmd["reason"]

        asyncio.run(body())
        assert graph.interrupt(40) == 0
        assert "unclean exit" not in graph.output(), graph.output()[-3000:]  # the bridge once aborted
    finally:
        graph.stop()
