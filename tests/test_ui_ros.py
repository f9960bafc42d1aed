"""`intball up --ui` end to end: the real ROS graph (simulator, estimator, controller, nav) +
the bridge node + the ground station, driven like a script would through the documented
API: log in with the printed one-run token, take control, fly a goal, follow its acks to
completed on the state estimate; add a keep-out zone through the link (the navigation node's
service; its latched zones come back in the telemetry, the ground then refuses a goal inside
it); fly a route as one command (the FollowRoute action) with a pause and a resume, its
progress in the telemetry; remove the zone; then an emergency stop.

The same graph (sim at x2, shared by the two tests of ``TestOneGraph``, which run in order),
released from that emergency stop with ``resume``, then flies a route through a loss of signal
longer than the onboard station-keep threshold: the bridge holds the robot mid-leg, and after
AOS the route goes on from the waypoint it was flying to. Another graph, with shortened LOS
thresholds, returns to the dock on its own; a last one, with the cameras on, takes a snapshot
whose JPEG comes down the link and is downloaded over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time

import aiohttp
import pytest
from ros_graph_helpers import Graph, isolated_domain_id

pytestmark = [pytest.mark.ros, pytest.mark.slow]

GOAL = [5.3, 0.25, 0.1]
ROUTE = [[5.7, 0.0, 0.1], [5.2, -0.3, 0.0]]
ZONE = {"name": "cargo_1", "min": [7.0, -0.5, -0.5], "max": [7.6, 0.5, 0.5]}
FINAL = ("completed", "failed", "rejected", "expired")
ONE_PASS = ["queued", "sent", "received", "executing", "completed"]  # ack states, executed once


async def telemetry(http, url):
    return (await (await http.get(f"{url}/api/state")).json())["telemetry"]


async def send(http, url, kind, payload=None):
    r = await http.post(f"{url}/api/commands", json={"kind": kind, "payload": payload or {}})
    assert r.status == 202, await r.text()
    return (await r.json())["command"]["id"]


def start_console(graph: Graph) -> tuple[str, str]:
    """URL and one-run operator token printed by the bridge of ``graph``."""
    m = graph.wait_output(r"\[intball_bridge\] ground station: (http://127\.0\.0\.1:\d+)/ ", 90)
    token = graph.wait_output(r"one-run operator token \(log in with it\): (\S+)", 10).group(1)
    return m.group(1), token


@contextlib.contextmanager
def console_graph(tmp_path, *flags: str):
    """`intball up FLAGS --ui --ui-port 0` on its own ROS domain: yields (graph, console URL,
    operator token). When the block ends normally the graph must stop cleanly on Ctrl-C (exit 0,
    no unclean exit of a node, no traceback: the bridge once aborted, a node once hung)."""
    graph = Graph([*flags, "--ui", "--ui-port", "0"], tmp_path / "up.log", domain_id=isolated_domain_id())
    try:
        url, token = start_console(graph)
        yield graph, url, token
        assert graph.interrupt(40) == 0
        out = graph.output()
        assert "unclean exit" not in out and "Traceback" not in out, out[-3000:]
    finally:
        graph.stop()


NOMINAL_FLAGS = ("--no-cameras", "--rate", "2", "--link-profile", "iss-nominal")


@pytest.fixture(scope="class")
def nominal_console(tmp_path_factory):
    """One ``console_graph(NOMINAL_FLAGS)`` for the goal test and the LOS test (starting a graph
    takes a while); its clean stop on Ctrl-C is checked when the class is done with it."""
    with console_graph(tmp_path_factory.mktemp("nominal"), *NOMINAL_FLAGS) as graph_url_token:
        yield graph_url_token


@contextlib.asynccontextmanager
async def operator(url: str, token: str):
    """An HTTP session logged in with the token and holding control; it hands control back when
    done (a graph shared by two tests: the second takes it)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        assert (await http.post(f"{url}/api/login", json={"token": token})).status == 200
        assert (await http.post(f"{url}/api/control/take", json={})).status == 200
        try:
            yield http
        finally:
            await http.post(f"{url}/api/control/release", json={})


async def wait_ready(http, url, timeout=90.0) -> dict:
    """Telemetry once the graph can fly: an estimate, the controller's status, and the
    navigation node running (idle or station keeping, not "waiting for" its inputs: until then
    it refuses goals)."""
    deadline = time.monotonic() + timeout
    tm = None
    while time.monotonic() < deadline:
        tm = await telemetry(http, url)
        est = tm and tm["estimate"]
        if (
            est
            and est["guidance"]["state"] != "unknown"
            and est["mode"] in ("idle", "station_keeping")
            and not est.get("mode_detail", "").startswith("waiting for")
        ):
            return tm
        await asyncio.sleep(0.5)
    raise AssertionError(f"graph not ready to fly after {timeout} s: {tm}")


async def wait_state(http, url, cid, states, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cmd = (await (await http.get(f"{url}/api/commands/{cid}")).json())["command"]
        if cmd["state"] in states:
            return cmd
        await asyncio.sleep(0.25)
    raise AssertionError(f"command {cid} still {cmd['state']} after {timeout} s: {cmd}")


# -- a loss of signal in the middle of a route -------------------------------------------------

# start where the goal test left the robot (5.2, -0.3, 0; the module centre when run alone); a 5 m
# leg (nominal: 0.2 m/s, 0.01 m/s^2: ~45 s sim) that the LOS hold cuts about 2 m in, far enough
# from its end that the braking (< 1 m) cannot reach it
LOS_ROUTE = [([3.0, 0.0, 0.0], 1.0), ([8.0, 0.0, 0.0], 1.0), ([8.0, 0.3, 0.1], 0.0)]
LOS_S = 14.0  # > the bridge's station_keep_after_s (10 s, intball up's default)


class TestOneGraph:
    """The goal test and the LOS test, in this order, on one graph (``nominal_console``, torn down
    when the class is done, before the next test starts its own graph)."""

    def test_intball_up_ui_flies_a_goal_through_the_link(self, nominal_console):
        graph, url, token = nominal_console
        assert "ground station: http://127.0.0.1:<free port>/" in graph.output()  # the launcher banner

        async def body():
            async with operator(url, token) as http:
                tm = await wait_ready(http, url)
                assert tm["source"] == "ros" and tm["estimate"]["localization"]["level"] == "ok"
                r = await http.post(
                    f"{url}/api/commands", json={"kind": "goal", "payload": {"position": GOAL}}
                )
                assert r.status == 202
                cid = (await r.json())["command"]["id"]
                cmd = await wait_state(http, url, cid, FINAL, 90)
                assert cmd["state"] == "completed", (cmd, graph.output()[-3000:])
                assert [h["state"] for h in cmd["history"]] == ONE_PASS
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

    def test_los_in_the_middle_of_a_route_holds_then_resumes_from_its_waypoint(self, nominal_console):
        """On the goal test's graph, released from its emergency stop (``resume``). Route started;
        LOS drill (14 s) while it flies its second leg; the onboard supervisor holds the robot mid-leg
        (navigation mode station_keeping, the route suspended at waypoint 1, seen in the first
        telemetry after AOS); once contact is steady again the route flies on toward waypoint 1 (never
        back to waypoint 0), reaches it, then the last one, and the one route command completes,
        executed once."""
        graph, url, token = nominal_console

        async def body():
            async with operator(url, token) as http:
                # the goal test ends with an emergency stop: release it (a no-op when run alone)
                cmd = await wait_state(http, url, await send(http, url, "resume"), FINAL, 20)
                assert cmd["state"] == "completed", cmd
                await wait_ready(http, url)
                earlier = {
                    c["id"] for c in (await (await http.get(f"{url}/api/commands")).json())["commands"]
                }
                wps = [{"position": p, "hold_s": h} for p, h in LOS_ROUTE]
                r = await http.post(f"{url}/api/route", json={"waypoints": wps, "label": "los drill"})
                assert r.status == 202, await r.text()
                rid = (await r.json())["command"]["id"]

                # flying the second leg: start the LOS now
                deadline = time.monotonic() + 180
                while True:
                    tm = await telemetry(http, url)
                    route = tm["route"]
                    if route and route["command"] == rid and route["index"] == 1:
                        break
                    assert time.monotonic() < deadline, f"route never reached its second leg: {tm}"
                    await asyncio.sleep(0.2)
                r = await http.post(f"{url}/api/link/los", json={"start_in_s": 0, "duration_s": LOS_S})
                assert r.status == 200, await r.text()
                assert (await (await http.get(f"{url}/api/link")).json())["aos"] is False

                # the first telemetry after AOS: the robot is held mid-leg, the route suspended
                t_los = time.monotonic()
                while True:
                    state = await (await http.get(f"{url}/api/state")).json()
                    tm = state["telemetry"]
                    if state["link"]["aos"] and tm["at_ms"] / 1000.0 > time.time() - 3.0:
                        break
                    assert time.monotonic() < t_los + LOS_S + 20, f"no fresh telemetry after AOS: {state}"
                    await asyncio.sleep(0.2)
                est, route = tm["estimate"], tm["route"]
                assert tm["supervisor"] == "station_keep", (tm, graph.output()[-3000:])
                assert est["mode"] == "station_keeping", est
                assert route["command"] == rid and route["suspended"] and route["index"] == 1, route
                held_at = est["pose"]["position"]
                wp0, wp1 = LOS_ROUTE[0][0], LOS_ROUTE[1][0]
                assert math.dist(held_at, wp1) > 1.0 and math.dist(held_at, wp0) > 0.5, (
                    f"not mid-leg: {held_at}"
                )
                assert tm["active"] == rid
                deadline = time.monotonic() + 5  # alerts are evaluated every 0.5 s, kept until acknowledged
                while True:
                    alerts = (await (await http.get(f"{url}/api/alerts")).json())["alerts"]
                    if "supervisor_station_keep" in {a["kind"] for a in alerts}:
                        break
                    assert time.monotonic() < deadline, f"no supervisor_station_keep alert: {alerts}"
                    await asyncio.sleep(0.2)

                # steady contact again: the route flies on from waypoint 1 and completes
                indices, nearest_wp0, nearest_wp1 = [], math.inf, math.inf
                resumed = False
                deadline = time.monotonic() + 240
                while True:
                    cmd = (await (await http.get(f"{url}/api/commands/{rid}")).json())["command"]
                    if cmd["state"] in FINAL:
                        break
                    tm = await telemetry(http, url)
                    pos = tm["estimate"]["pose"]["position"]
                    if tm["route"] and tm["route"]["command"] == rid:
                        indices.append(tm["route"]["index"])
                        resumed |= tm["supervisor"] == "nominal" and not tm["route"]["suspended"]
                    nearest_wp0 = min(nearest_wp0, math.dist(pos, wp0))
                    nearest_wp1 = min(nearest_wp1, math.dist(pos, wp1))
                    assert time.monotonic() < deadline, f"route still {cmd['state']}: {tm}"
                    await asyncio.sleep(0.2)
                assert cmd["state"] == "completed", (cmd, graph.output()[-3000:])
                assert cmd["reason"] == "route complete: 3 waypoints"
                # executed once: one pass through the onboard states, no re-send needed
                assert [h["state"] for h in cmd["history"]] == ONE_PASS, cmd["history"]
                assert resumed, "the route never showed as flying again after the hold"
                assert indices and min(indices) == 1 and indices == sorted(indices), indices
                assert 2 in indices, f"never flew to the last waypoint: {indices}"
                # never back to waypoint 0 (settling onto the hold point after braking is all the
                # way back it may go), and waypoint 1 itself was reached
                assert nearest_wp0 > 0.5 * math.dist(held_at, wp0), (
                    f"flew back toward {wp0}: {nearest_wp0:.2f} m"
                )
                assert nearest_wp1 < 0.05, f"waypoint 1 skipped: came within {nearest_wp1:.3f} m"
                est = (await telemetry(http, url))["estimate"]
                assert est["pose"]["position"] == pytest.approx(LOS_ROUTE[-1][0], abs=0.03)
                routes = [c for c in (await (await http.get(f"{url}/api/commands")).json())["commands"]]
                assert [c["id"] for c in routes if c["kind"] == "route" and c["id"] not in earlier] == [rid]
                print(f"LOS hold at {[round(v, 2) for v in held_at]} m; route indices {sorted(set(indices))}")

        asyncio.run(body())


# -- a long loss of signal: the robot goes home and docks on its own ------------------------------


def test_long_los_returns_to_dock_and_stays_there_until_resume(tmp_path):
    """Shortened onboard thresholds (intball up --station-keep-after-s 3 --return-to-dock-after-s
    8, the same supervisor as the 10 s / 900 s defaults): a 12 s LOS drill from mid-module; the
    robot holds, then drops everything and flies to the dock on its own; it docks (navigation
    mode ``docked``), the ground sees the return-to-dock alert after AOS, and a goal sent then is
    refused onboard while the return to dock is latched (until ``resume``)."""
    flags = ["--no-cameras", "--rate", "2", "--station-keep-after-s", "3", "--return-to-dock-after-s", "8"]
    with console_graph(tmp_path, *flags) as (graph, url, token):

        async def body():
            async with operator(url, token) as http:
                await wait_ready(http, url)
                r = await http.post(f"{url}/api/link/los", json={"start_in_s": 0, "duration_s": 12.0})
                assert r.status == 200, await r.text()
                deadline, modes = time.monotonic() + 240, []
                while True:
                    tm = await telemetry(http, url)
                    modes.append((tm["supervisor"], tm["estimate"]["mode"]))
                    if tm["estimate"]["mode"] == "docked":
                        break
                    assert time.monotonic() < deadline, (tm, modes[-5:], graph.output()[-3000:])
                    await asyncio.sleep(0.5)
                assert tm["supervisor"] == "return_to_dock", tm
                assert ("return_to_dock", "docking") in modes, sorted(set(modes))
                alerts = (await (await http.get(f"{url}/api/alerts")).json())["alerts"]
                assert "supervisor_return_to_dock" in {a["kind"] for a in alerts}, alerts
                cid = await send(http, url, "goal", {"position": GOAL})
                cmd = await wait_state(http, url, cid, FINAL, 30)
                assert cmd["state"] in ("rejected", "failed") and "dock" in cmd["reason"], cmd

        asyncio.run(body())


# -- a snapshot downlinked as a file -------------------------------------------------------------


def test_snapshot_camera_task_comes_down_as_a_jpeg_file(tmp_path):
    """Cameras on: a snapshot camera task started from the ground API (the navigation node's
    CameraTask action writes a PNG); the bridge downlinks it as a capped JPEG in chunks; GET
    /api/files/{id} returns exactly that JPEG (SHA-256 as announced, and as the onboard encoding
    of the PNG on disk), a valid image of the snapshot."""
    import cv2
    import numpy as np

    from intball_teleop.files import MAX_FILE_BYTES, jpeg_capped

    data_dir = tmp_path / "data"
    flags = ["--localization", "truth-noise", "--data-dir", str(data_dir)]
    with console_graph(tmp_path, *flags) as (graph, url, token):

        async def body():
            async with operator(url, token) as http:
                await wait_ready(http, url)
                cid = await send(http, url, "camera_task", {"task": "snapshot"})
                task = await wait_state(http, url, cid, FINAL, 60)
                assert task["state"] == "completed", (task, graph.output()[-3000:])
                assert "files: snapshot_" in task["reason"] and "downlinking 1 image(s)" in task["reason"]
                deadline = time.monotonic() + 60
                while True:
                    files = (await (await http.get(f"{url}/api/files")).json())["files"]
                    mine = [f for f in files if f["command"] == cid]
                    if mine and mine[0]["state"] != "receiving":
                        break
                    assert time.monotonic() < deadline, f"file not downlinked: {files}"
                    await asyncio.sleep(0.25)
                f = mine[0]
                assert f["state"] == "complete", f
                r = await http.get(f"{url}/api/files/{f['id']}")
                assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
                return f, await r.read()

        f, data = asyncio.run(body())
        pngs = sorted(data_dir.glob("snapshot_*.png"))
        assert len(pngs) == 1, pngs
        assert f["name"] == pngs[0].stem + ".jpg" and f["bytes"] == len(data) <= MAX_FILE_BYTES
        digest = hashlib.sha256(data).hexdigest()
        assert digest == f["sha256"]
        assert digest == hashlib.sha256(jpeg_capped(pngs[0])).hexdigest()  # the onboard encoding
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        png = cv2.imread(str(pngs[0]), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == png.shape, (None if img is None else img.shape, png.shape)
        # the same picture: JPEG error only (PSNR), and not a blank frame
        mse = float(np.mean((img.astype(float) - png.astype(float)) ** 2))
        psnr = 10 * math.log10(255.0**2 / max(mse, 1e-9))
        assert psnr > 30.0 and float(png.std()) > 5.0, (psnr, float(png.std()))
        print(
            f"snapshot {png.shape[1]}x{png.shape[0]} px -> {len(data)} B JPEG in {f['chunks']} chunks, "
            f"PSNR {psnr:.1f} dB, resends {f['resends']}"
        )
