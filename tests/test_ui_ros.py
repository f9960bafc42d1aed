"""`intball up --ui` end to end: the real ROS graph (simulator, estimator, controller, nav) +
the bridge node + the ground station, driven like a script would through the documented
API: log in with the printed one-run token, take control, fly a goal, follow its acks to
completed on the state estimate, then an emergency stop.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from ros_graph_helpers import Graph, isolated_domain_id

pytestmark = [pytest.mark.ros, pytest.mark.slow]

GOAL = [5.3, 0.25, 0.1]


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
                r = await http.post(f"{url}/api/emergency_stop")
                assert r.status == 202
                cmd = await wait_state(http, url, (await r.json())["command"]["id"], ("completed",), 20)
                assert "emergency stop" in cmd["reason"]

        asyncio.run(body())
        assert graph.interrupt(40) == 0
        assert "unclean exit" not in graph.output(), graph.output()[-3000:]  # the bridge once aborted
    finally:
        graph.stop()
