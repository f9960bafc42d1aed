"""Ground station HTTP/WebSocket API: auth, roles, origin check, limits, OpenAPI, and the
command path over the emulated link to the onboard bridge (kinematic stand-in robot).

aiohttp's own test utilities (TestServer/TestClient on 127.0.0.1, a free port), one event
loop per test via asyncio.run.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import numpy as np
import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer

from intball_teleop import commands as C
from intball_teleop.kinematic import KinematicRobot
from intball_teleop.onboard import OnboardConfig
from intball_teleop.server import openapi
from intball_teleop.server.app import create_app
from intball_teleop.server.auth import Credentials, User, hash_password
from intball_teleop.server.stack import Stack, StackConfig, supervisor_config

WS = C.Workspace.default()
OP_TOKEN = "op-token-0123456789abcdef"
OP2_TOKEN = "op2-token-0123456789abcdef"
OBS_TOKEN = "obs-token-0123456789abcdef"
FAST_LINK = {"uplink.delay_s": 0.05, "downlink.delay_s": 0.05}


def credentials() -> Credentials:
    return Credentials(
        {
            "op": User("op", "operator", token=OP_TOKEN),
            "op2": User("op2", "operator", token=OP2_TOKEN),
            "obs": User("obs", "observer", token=OBS_TOKEN),
            "alice": User("alice", "operator", password_hash=hash_password("correct horse battery")),
        }
    )


class Harness:
    def __init__(
        self,
        profile="ideal",
        overrides=None,
        station_keep_after_s=10.0,
        speed=4.0,
        return_to_dock_after_s=900.0,
    ):
        self.profile, self.overrides = profile, overrides if overrides is not None else FAST_LINK
        self.station_keep_after_s, self.speed = station_keep_after_s, speed
        self.return_to_dock_after_s = return_to_dock_after_s

    async def __aenter__(self):
        self.robot = KinematicRobot(WS, speed_scale=self.speed)
        onboard = OnboardConfig(
            telemetry_rate_hz=10.0,
            supervisor=supervisor_config(self.station_keep_after_s, self.return_to_dock_after_s),
        )
        cfg = StackConfig(profile=self.profile, profile_overrides=self.overrides, onboard=onboard)
        self.stack = Stack(self.robot, cfg, WS)
        self.stack.start()
        self.server = TestServer(create_app(self.stack, credentials()), host="127.0.0.1", port=0)
        await self.server.start_server()
        self.origin = f"http://127.0.0.1:{self.server.port}"
        return self

    async def client(self, token=None):
        c = TestClient(self.server)
        await c.start_server()
        if token:
            r = await c.post("/api/login", json={"token": token})
            assert r.status == 200, await r.text()
        self._clients = [*getattr(self, "_clients", []), c]
        return c

    async def __aexit__(self, *exc):
        for c in getattr(self, "_clients", []):
            await c.close()
        await self.server.close()
        await self.stack.close()


def run(coro):
    return asyncio.run(coro)


async def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate() if asyncio.iscoroutinefunction(predicate) else predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def command_state(client, cid):
    r = await client.get(f"/api/commands/{cid}")
    return (await r.json())["command"]


# -- auth and roles ------------------------------------------------------------------------


def test_login_logout_and_unauthenticated_access():
    async def body():
        async with Harness() as h:
            c = await h.client()
            assert (await c.get("/api/state")).status == 401
            r = await c.post("/api/login", json={"token": "wrong"})
            assert r.status == 401 and "invalid token" in (await r.json())["error"]
            r = await c.post("/api/login", json={"user": "alice", "password": "wrong password"})
            assert r.status == 401
            r = await c.post("/api/login", json={"user": "alice", "password": "correct horse battery"})
            assert r.status == 200
            assert (
                "httponly" in r.headers["Set-Cookie"].lower()
                and "samesite=strict" in r.headers["Set-Cookie"].lower()
            )
            info = await (await c.get("/api/session")).json()
            assert info == {
                "logged_in": True,
                "user": "alice",
                "role": "operator",
                "in_control": False,
                "controller": None,
            }
            assert (await c.get("/api/state")).status == 200
            await c.post("/api/logout")
            assert (await c.get("/api/state")).status == 401

    run(body())


def test_no_working_default_credentials():
    demo = Credentials.demo_tokens()
    tokens = [u.token for u in demo.users.values()]
    assert all(t and len(t) >= 20 for t in tokens) and tokens != [
        u.token for u in Credentials.demo_tokens().users.values()
    ]
    for guess in ("admin", "operator", "password", ""):
        with pytest.raises(ValueError):
            demo.login(guess, guess, None)


def test_roles_control_and_emergency_stop_from_anyone():
    async def body():
        async with Harness() as h:
            op, op2, obs = await h.client(OP_TOKEN), await h.client(OP2_TOKEN), await h.client(OBS_TOKEN)
            goal = {"kind": "goal", "payload": {"position": [3.0, 0.0, 0.0]}}
            r = await op.post("/api/commands", json=goal)
            assert r.status == 403 and "take control first" in (await r.json())["error"]
            r = await obs.post("/api/control/take", json={})
            assert r.status == 403 and "observer" in (await r.json())["error"]
            assert (await op.post("/api/control/take", json={})).status == 200
            r = await op2.post("/api/control/take", json={})
            assert r.status == 409 and "held by op" in (await r.json())["error"]
            r = await obs.post("/api/commands", json=goal)
            assert r.status == 403 and "observers cannot command" in (await r.json())["error"]
            r = await op2.post("/api/commands", json=goal)
            assert r.status == 403 and "held by op" in (await r.json())["error"]
            assert (await op.post("/api/commands", json=goal)).status == 202
            # any logged-in station may stop the robot
            r = await obs.post("/api/emergency_stop")
            assert r.status == 202
            cid = (await r.json())["command"]["id"]
            done = await wait_for(
                lambda: h.stack.ground.queue.records[cid].state.value == "completed", 5, "e-stop completed"
            )
            assert done and h.robot.stopped and h.stack.onboard.estop
            # a forced take-over, then release
            assert (await op2.post("/api/control/take", json={"force": True})).status == 200
            assert (await (await op.get("/api/session")).json())["in_control"] is False
            assert (await op2.post("/api/control/release")).status == 200
            assert (await (await obs.get("/api/session")).json())["controller"] is None

    run(body())


# -- the command path ---------------------------------------------------------------------


def test_goal_acks_progress_to_completed_and_robot_arrives():
    async def body():
        async with Harness() as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            r = await op.post(
                "/api/commands", json={"kind": "goal", "payload": {"position": [2.2, 0.3, 0.1]}}
            )
            assert r.status == 202
            cid = (await r.json())["command"]["id"]

            async def completed():
                return (await command_state(op, cid))["state"] in ("completed", "failed")

            await wait_for(completed, 15, "goal completed")
            cmd = await command_state(op, cid)
            assert cmd["state"] == "completed", cmd
            states = [s["state"] for s in cmd["history"]]
            assert states == ["queued", "sent", "received", "executing", "completed"]
            times = [s["t"] for s in cmd["history"]]
            assert times == sorted(times)
            assert h.robot.position == pytest.approx([2.2, 0.3, 0.1], abs=1e-6)
            assert [k for _, k in h.stack.onboard.executed] == ["goal"]

    run(body())


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"kind": "goal", "payload": {"position": [20.0, 0.0, 0.0]}}, 400, "keep-in limit"),
        ({"kind": "goal", "payload": {"position": [8.8, 0.8, -0.8]}}, 400, "keep-out zone stowage_bag"),
        (
            {"kind": "goal", "payload": {"position": [1.0, 0.0]}},
            400,
            "position: expected a list of 3 numbers",
        ),
        ({"kind": "goal", "payload": {"position": [1.0, "a", 0.0]}}, 400, "position: expected a list of 3"),
        ({"kind": "goal", "payload": {"position": [2, 0, 0], "flight_mode": "warp"}}, 400, "flight_mode"),
        ({"kind": "goal", "payload": {"position": [2, 0, 0], "speed": 3}}, 400, "unknown field(s) speed"),
        ({"kind": "teleport", "payload": {}}, 400, "unknown command kind 'teleport'"),
        ({"kind": "jog", "payload": {"delta": [1.0, 0, 0]}}, 400, "longer than 0.25 m"),
        ({"kind": "jog", "payload": {"delta": [0.1, 0, 0], "lifetime_s": 60}}, 400, "lifetime_s"),
        ({"kind": "goal", "payload": [1, 2, 3]}, 400, "payload must be an object"),
        ({"kind": "goal", "extra": 1}, 400, "unknown field(s) extra"),
        ({"kind": "camera_task", "payload": {"task": "selfie"}}, 400, "task: 'selfie' is not one of"),
        (
            {"kind": "camera_task", "payload": {"task": "look_at", "point": [30, 0, 0]}},
            400,
            "outside the module",
        ),
        ({"kind": "camera_task", "payload": {"task": "inspect", "bay": "F99"}}, 400, "not a rack bay"),
        ({"kind": "camera_task", "payload": {"task": "record", "duration_s": 1e6}}, 400, "duration_s"),
    ],
)
def test_bad_commands_are_refused_with_a_reason(body, status, message):
    async def run_it():
        async with Harness() as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            r = await op.post("/api/commands", json=body)
            assert r.status == status
            assert message in (await r.json())["error"]
            assert h.stack.ground.queue.records == {}

    run(run_it())


def test_malformed_bodies_nan_and_size_limit():
    async def body():
        async with Harness() as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            nan = '{"kind": "goal", "payload": {"position": [NaN, 0, 0]}}'
            r = await op.post("/api/commands", data=nan, headers={"Content-Type": "application/json"})
            assert r.status == 400 and "NaN is not allowed" in (await r.json())["error"]
            r = await op.post("/api/commands", data="{not json", headers={"Content-Type": "application/json"})
            assert r.status == 400 and "not valid JSON" in (await r.json())["error"]
            r = await op.post("/api/commands", data="[1, 2]", headers={"Content-Type": "application/json"})
            assert r.status == 400 and "JSON object" in (await r.json())["error"]
            big = json.dumps({"kind": "goal", "payload": {"label": "x" * 70000}})
            r = await op.post("/api/commands", data=big, headers={"Content-Type": "application/json"})
            assert r.status == 413 and "larger than" in (await r.json())["error"]
            # the server is still fine
            assert (await op.get("/api/state")).status == 200

    run(body())


def test_command_and_login_rate_limits():
    async def body():
        async with Harness() as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            codes = []
            for _ in range(30):
                r = await op.post("/api/commands", json={"kind": "station_keep", "payload": {}})
                codes.append(r.status)
            assert codes[:20] == [202] * 20 and 429 in codes[20:]
            anon = await h.client()
            codes = [(await anon.post("/api/login", json={"token": "nope"})).status for _ in range(12)]
            # 10 attempts per address and minute (the operator's login above was one of them)
            assert codes[:9] == [401] * 9 and codes[-2:] == [429, 429]

    run(body())


def test_origin_check_on_websocket_and_posts():
    async def body():
        async with Harness() as h:
            op = await h.client(OP_TOKEN)
            with pytest.raises(WSServerHandshakeError) as info:
                await op.ws_connect("/api/ws", headers={"Origin": "http://evil.example"})
            assert "403" in str(info.value)
            with pytest.raises(WSServerHandshakeError):
                await op.ws_connect("/api/ws")  # no Origin at all
            r = await op.post("/api/control/take", json={}, headers={"Origin": "http://evil.example"})
            assert r.status == 403 and "origin" in (await r.json())["error"]
            ws = await op.ws_connect("/api/ws", headers={"Origin": h.origin})
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello" and hello["session"]["user"] == "op"
            await ws.send_str(json.dumps({"type": "ping", "t": 1}))
            types = set()
            for _ in range(50):
                msg = await ws.receive_json(timeout=5)
                types.add(msg["type"])
                if msg["type"] == "pong":
                    break
            assert "pong" in types
            await ws.send_str("x" * 10000)  # over the WebSocket message limit: connection closed
            msg = await ws.receive(timeout=5)
            while msg.type.name == "TEXT":
                msg = await ws.receive(timeout=5)
            assert msg.type.name in ("CLOSE", "CLOSED", "CLOSING")
            await ws.close()
            anon = await h.client()
            with pytest.raises(WSServerHandshakeError) as info:
                await anon.ws_connect("/api/ws", headers={"Origin": h.origin})
            assert "401" in str(info.value)

    run(body())


def test_openapi_describes_every_route_and_refs_resolve():
    async def body():
        async with Harness() as h:
            c = await h.client()
            spec = await (await c.get("/api/openapi.json")).json()
            assert spec["openapi"].startswith("3.1")
            routes = set()
            for route in h.server.app.router.routes():
                info = route.resource.get_info() if route.resource else {}
                path = info.get("path") or info.get("formatter") or info.get("prefix")
                if route.method in ("HEAD",) or path.startswith("/static"):
                    continue
                routes.add((path, route.method.lower()))
            documented = {(p, m) for p, ops in spec["paths"].items() for m in ops}
            assert routes == documented

            def refs(node):
                if isinstance(node, dict):
                    for k, v in node.items():
                        if k == "$ref":
                            yield v
                        else:
                            yield from refs(v)
                elif isinstance(node, list):
                    for v in node:
                        yield from refs(v)

            for ref in refs(spec):
                m = re.fullmatch(r"#/components/schemas/(\w+)", ref)
                assert m and m.group(1) in spec["components"]["schemas"], ref
            for path, ops in spec["paths"].items():
                params = set(re.findall(r"{(\w+)}", path))
                for op in ops.values():
                    assert op["responses"], (path, op)
                    assert params == {p["name"] for p in op.get("parameters", [])}, path
            assert spec == json.loads(json.dumps(openapi.SPEC))

    run(body())


# -- safety behaviour ---------------------------------------------------------------------


def test_los_drill_makes_the_robot_hold_then_resume():
    async def body():
        async with Harness(station_keep_after_s=2.0, speed=0.5) as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            r = await op.post(
                "/api/commands", json={"kind": "goal", "payload": {"position": [6.0, 0.0, 0.0]}}
            )
            cid = (await r.json())["command"]["id"]
            await wait_for(lambda: h.robot.state == "moving", 5, "robot moving")
            r = await op.post("/api/link/los", json={"start_in_s": 0, "duration_s": 6.0})
            assert r.status == 200
            link = await (await op.get("/api/link")).json()
            assert link["aos"] is False
            await wait_for(
                lambda: h.stack.onboard.supervisor.action.value == "station_keep", 3, "station keep"
            )
            x = h.robot.position[0]
            await asyncio.sleep(1.0)
            assert h.robot.position[0] == pytest.approx(x, abs=1e-9), "robot kept moving during LOS"
            assert h.robot.velocity.tolist() == [0.0, 0.0, 0.0]
            # AOS: contact is fresh again, the supervisor releases after its hold and the goal resumes
            await wait_for(lambda: h.stack.onboard.supervisor.action.value == "nominal", 10, "nominal again")
            await wait_for(lambda: h.robot.position[0] > x + 0.05, 5, "goal resumed")
            assert h.stack.ground.queue.records[cid].state.value in ("received", "executing")
            alerts = {a["kind"] for a in (await (await op.get("/api/alerts")).json())["alerts"]}
            assert "no_telemetry" in alerts  # 6 s without telemetry, kept until acknowledged

    run(body())


def test_emergency_stop_holds_the_queue_until_resume():
    async def body():
        async with Harness(speed=0.5) as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            await op.post("/api/commands", json={"kind": "goal", "payload": {"position": [6.0, 0.0, 0.0]}})
            await wait_for(lambda: h.robot.state == "moving", 5, "moving")
            r = await op.post("/api/commands", json={"kind": "emergency_stop"})
            assert r.status == 202
            await wait_for(lambda: h.robot.stopped, 3, "robot stopped")
            x = h.robot.position.copy()
            r = await op.post(
                "/api/commands", json={"kind": "goal", "payload": {"position": [2.0, 0.0, 0.0]}}
            )
            held = (await r.json())["command"]["id"]
            await asyncio.sleep(0.5)
            assert h.stack.ground.queue.records[held].state.value == "queued"  # held on the ground
            assert (h.robot.position == x).all()
            await op.post("/api/commands", json={"kind": "resume"})
            # what was queued during the stop is cancelled, never flown by itself
            assert h.stack.ground.queue.records[held].state.value == "cancelled"
            r = await op.post(
                "/api/commands", json={"kind": "goal", "payload": {"position": [2.0, 0.0, 0.0]}}
            )
            again = (await r.json())["command"]["id"]
            await wait_for(
                lambda: h.stack.ground.queue.records[again].state.value == "completed", 15, "new goal flown"
            )
            kinds = [k for _, k in h.stack.onboard.executed]
            assert kinds == ["goal", "emergency_stop", "resume", "goal"]

    run(body())


def test_alert_must_be_acknowledged():
    async def body():
        async with Harness() as h:
            op, obs = await h.client(OP_TOKEN), await h.client(OBS_TOKEN)
            h.robot.localization = ("degraded", "few markers")
            alerts = await wait_for(
                lambda: [a for a in h.stack.ground.alerts.values() if a.kind == "localization_degraded"],
                3,
                "alert",
            )
            aid = alerts[0].id
            h.robot.localization = ("ok", "")
            await wait_for(lambda: not h.stack.ground.alerts[aid].active, 3, "condition cleared")
            listed = (await (await obs.get("/api/alerts")).json())["alerts"]
            assert any(a["id"] == aid and a["acknowledged_by"] is None for a in listed)  # still shown
            r = await obs.post(f"/api/alerts/{aid}/ack")
            assert r.status == 200 and (await r.json())["alert"]["acknowledged_by"] == "obs"
            assert (await op.post("/api/alerts/999/ack")).status == 404

    run(body())


def test_module_camera_mission_roundtrip():
    async def body():
        async with Harness() as h:
            op = await h.client(OP_TOKEN)
            m = await (await op.get("/api/module")).json()
            assert m["clear_volume"]["max"] == [9.6, 1.05, 1.0] and m["keep_out"][0]["name"] == "stowage_bag"
            await wait_for(lambda: "main" in h.stack.ground.frames, 5, "a camera frame")
            r = await op.get("/api/camera/main.jpg")
            assert r.status == 200 and (await r.read())[:2] == b"\xff\xd8"
            assert (await op.get("/api/camera/nav_left.jpg")).status == 404
            wps = [{"position": [2.0 + i * 0.5, 0.0, 0.0], "rpy_deg": [0, 0, 0]} for i in range(3)]
            r = await op.post("/api/mission/export", json={"start": wps[0], "waypoints": wps})
            text = (await r.json())["yaml"]
            r = await op.post("/api/mission/parse", json={"yaml": text})
            parsed = await r.json()
            assert [w["position"] for w in parsed["waypoints"]] == [w["position"] for w in wps]
            r = await op.post("/api/mission/parse", json={"yaml": text.replace("2.5", "25.0")})
            assert (
                r.status == 400
                and "mission.yaml:" in (await r.json())["error"]
                and "keep-in" in (await r.json())["error"]
            )
            too_many = [{"position": [2.0, 0.0, 0.0]}] * 21
            await op.post("/api/control/take", json={})
            r = await op.post("/api/route", json={"waypoints": too_many})
            assert r.status == 400 and "1 .. 20" in (await r.json())["error"]

    run(body())


def test_dock_flies_approach_then_contact_and_undock_backs_off():
    async def body():
        async with Harness(speed=8.0) as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            dock = WS.module.dock
            for kind, distance in (
                ("dock", dock.approach_distances[-1]),
                ("undock", dock.approach_distances[0]),
            ):
                r = await op.post("/api/commands", json={"kind": kind})
                cid = (await r.json())["command"]["id"]

                async def done(cid=cid):
                    return (await command_state(op, cid))["state"] in ("completed", "failed")

                await wait_for(done, 20, kind)
                assert (await command_state(op, cid))["state"] == "completed"
                assert h.robot.position.tolist() == pytest.approx(
                    dock.approach_point(distance).tolist(), abs=1e-6
                )
            flown = np.array([pos for pos, _ in h.robot.go_to_calls])
            expected = [
                dock.approach_point(d) for d in (*dock.approach_distances, dock.approach_distances[0])
            ]
            assert np.allclose(flown, expected)  # approach, contact; then back to the approach point

    run(body())


def test_long_los_returns_to_dock_and_latches_until_resume():
    async def body():
        async with Harness(station_keep_after_s=1.5, return_to_dock_after_s=3.0, speed=8.0) as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            r = await op.post(
                "/api/commands", json={"kind": "goal", "payload": {"position": [7.0, 0.0, 0.0]}}
            )
            goal = (await r.json())["command"]["id"]
            await wait_for(lambda: h.robot.state == "moving", 5, "moving")
            await op.post("/api/link/los", json={"duration_s": 4.5})
            await wait_for(
                lambda: h.stack.onboard.supervisor.action.value == "return_to_dock", 5, "return to dock"
            )
            contact = WS.module.dock.approach_point(float(WS.module.dock.approach_distances[-1]))
            await wait_for(lambda: np.allclose(h.robot.position, contact), 15, "robot at the dock")
            # after AOS the goal's fate reaches the ground; motion is refused until resume
            await wait_for(
                lambda: h.stack.ground.queue.records[goal].state.value == "failed", 10, "goal failed"
            )
            assert "returning to dock" in h.stack.ground.queue.records[goal].reason
            r = await op.post(
                "/api/commands", json={"kind": "goal", "payload": {"position": [3.0, 0.0, 0.0]}}
            )
            refused = (await r.json())["command"]["id"]
            await wait_for(lambda: h.stack.ground.queue.records[refused].state.final, 5, "refused")
            assert "send resume first" in h.stack.ground.queue.records[refused].reason
            r = await op.post("/api/commands", json={"kind": "resume"})
            resume = (await r.json())["command"]["id"]
            await wait_for(lambda: h.stack.ground.queue.records[resume].state.final, 5, "resume done")
            await wait_for(lambda: h.stack.onboard.supervisor.action.value == "nominal", 5, "released")

    run(body())


def test_jog_moves_relative_to_the_estimate_and_is_short_lived():
    async def body():
        async with Harness(speed=0.2) as h:  # 0.05 m/s: a 0.2 m jog cannot finish in its 0.5 s life
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            await wait_for(lambda: h.stack.ground.telemetry, 3, "telemetry")
            start = h.robot.position.copy()
            r = await op.post(
                "/api/commands", json={"kind": "jog", "payload": {"delta": [0.2, 0, 0], "lifetime_s": 0.5}}
            )
            cmd = (await r.json())["command"]
            assert cmd["expires"] - cmd["issued"] == pytest.approx(2.0)  # dropped if the link delays it
            pred = h.stack.ground.predicted()
            assert pred["jogs_in_flight"] == 1 and pred["position"][0] == pytest.approx(
                start[0] + 0.2, abs=0.01
            )

            async def done():
                return (await command_state(op, cmd["id"]))["state"] in ("completed", "failed")

            await wait_for(done, 5, "jog done")
            final = await command_state(op, cmd["id"])
            assert final["state"] == "completed" and "lifetime 0.5 s ended; holding" in final["reason"]
            moved = h.robot.position[0] - start[0]
            assert 0.0 < moved < 0.1 and h.robot.state == "holding"  # stopped short: its life ran out
            await asyncio.sleep(0.5)
            assert h.robot.position[0] - start[0] == pytest.approx(moved)
            assert h.robot.go_to_calls[-1][0] == pytest.approx((start + [0.2, 0, 0]).tolist())

    run(body())


def test_camera_stream_selects_the_downlinked_camera():
    async def body():
        async with Harness() as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            r = await op.post(
                "/api/commands",
                json={"kind": "camera_stream", "payload": {"camera": "nav_left", "rate_hz": 4}},
            )
            assert r.status == 202
            await wait_for(lambda: "nav_left" in h.stack.ground.frames, 5, "nav_left frames")
            assert (
                (await op.get("/api/camera/nav_left.jpg?download=1"))
                .headers["Content-Disposition"]
                .startswith("attachment")
            )
            r = await op.post(
                "/api/commands", json={"kind": "camera_stream", "payload": {"camera": "thermal"}}
            )
            assert r.status == 400 and "camera: 'thermal' is not one of" in (await r.json())["error"]

    run(body())


def test_competition_api_is_mounted_behind_login(tmp_path):
    pytest.importorskip("intball_compete.web")
    from intball_teleop.server.app import load_compete_app

    async def body():
        robot = KinematicRobot(WS)
        stack = Stack(robot, StackConfig(profile="ideal"), WS)
        stack.start()
        compete = load_compete_app(str(tmp_path / "compete"))
        assert compete is not None
        server = TestServer(create_app(stack, credentials(), compete=compete), host="127.0.0.1", port=0)
        client = TestClient(server)
        await client.start_server()
        try:
            r = await client.get("/api/compete/missions")
            assert r.status == 401
            await client.post("/api/login", json={"token": OBS_TOKEN})
            r = await client.get("/api/compete/missions")
            assert r.status == 200, await r.text()
            assert (await client.get("/api/state")).status == 200
        finally:
            await client.close()
            await stack.close()

    run(body())


def test_camera_task_fails_with_a_reason_on_the_kinematic_stand_in():
    async def body():
        async with Harness() as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            r = await op.post(
                "/api/commands", json={"kind": "camera_task", "payload": {"task": "inspect", "bay": "port_3"}}
            )
            assert r.status == 202
            cid = (await r.json())["command"]["id"]
            await wait_for(lambda: h.stack.ground.queue.records[cid].state.final, 5, "camera task answered")
            record = h.stack.ground.queue.records[cid]
            assert record.state.value == "failed" and "CameraTask action" in record.reason

    run(body())


# -- routes as one command, pause / resume, progress ----------------------------------------


async def final_state(client, cid, timeout=15.0):
    async def done():
        cmd = await command_state(client, cid)
        return cmd if cmd["state"] in ("completed", "failed", "rejected", "expired", "cancelled") else None

    return await wait_for(done, timeout, f"command {cid[:8]} final")


ROUTE = [[2.4, 0.3, 0.0], [3.2, -0.3, 0.1], [4.0, 0.0, -0.1]]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"waypoints": []}, "1 .. 20 waypoints, got 0"),
        ({"waypoints": [{"position": [2.0, 0.0, 0.0]}] * 21}, "1 .. 20 waypoints, got 21"),
        ({"waypoints": "abc"}, "got str"),
        (
            {"waypoints": [{"position": [2.0, 0.0, 0.0]}, {"position": [20.0, 0.0, 0.0]}]},
            "waypoints[1]: x=20.00",
        ),
        ({"waypoints": [{"position": [8.8, 0.8, -0.8]}]}, "waypoints[0]: position (8.80, 0.80, -0.80) m"),
        ({"waypoints": [{"position": [2.0, 0.0]}]}, "waypoints[0]: position: expected a list of 3 numbers"),
        ({"waypoints": [{"position": [2.0, 0.0, 0.0], "hold_s": -1}]}, "waypoints[0]: hold_s: -1 s"),
        ({"waypoints": [{"position": [2.0, 0.0, 0.0], "hold_s": 1e9}]}, "hold_s: 1e+09 s is outside"),
        ({"waypoints": [{"position": [2.0, 0.0, 0.0], "hold_s": "2"}]}, "hold_s: expected a number"),
        (
            {"waypoints": [{"position": [2.0, 0.0, 0.0], "flight_mode": "quiet"}]},
            "unknown field(s) flight_mode",
        ),
        ({"waypoints": [{"position": [2.0, 0.0, 0.0]}], "flight_mode": "warp"}, "flight_mode: 'warp'"),
        ({"waypoints": [{"position": [2.0, 0.0, 0.0]}], "append": True}, "unknown field(s) append"),
        (
            {"waypoints": [{"position": [2.0, 0.0, 0.0], "quat": [0, 0, 0, 0]}]},
            "waypoints[0]: quat: zero norm",
        ),
    ],
)
def test_bad_routes_are_refused_with_a_reason(body, message):
    async def run_it():
        async with Harness() as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            r = await op.post("/api/route", json=body)
            assert r.status == 400, await r.text()
            assert message in (await r.json())["error"], (await r.json())["error"]
            assert h.stack.ground.queue.records == {}  # nothing queued

    run(run_it())


def test_route_is_one_command_with_progress_pause_and_resume():
    async def body():
        async with Harness(speed=1.0) as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            wps = [{"position": p, "hold_s": 0.5} for p in ROUTE]
            r = await op.post(
                "/api/route", json={"waypoints": wps, "flight_mode": "nominal", "label": "tour"}
            )
            assert r.status == 202, await r.text()
            cmd = (await r.json())["command"]
            cid = cmd["id"]
            assert cmd["kind"] == "route" and len(cmd["payload"]["waypoints"]) == 3
            # progress in the telemetry the console gets
            await wait_for(
                lambda: ((h.stack.ground.telemetry or {}).get("route") or {}).get("index") == 1,
                15,
                "waypoint 2",
            )
            route = h.stack.ground.telemetry["route"]
            assert route["command"] == cid and route["n"] == 3 and route["paused"] is False
            assert route["waypoint"] == ROUTE[1] and route["label"] == "tour"
            # pause: the robot holds, the route stays executing
            r = await op.post("/api/commands", json={"kind": "route_pause"})
            pause = await final_state(op, (await r.json())["command"]["id"])
            assert pause["state"] == "completed" and "route paused" in pause["reason"], pause
            assert "of 3" in pause["reason"]
            await wait_for(
                lambda: (h.stack.ground.telemetry.get("route") or {}).get("paused"), 5, "paused tm"
            )
            x = h.robot.position.copy()
            await asyncio.sleep(0.8)
            assert h.robot.position.tolist() == pytest.approx(x.tolist(), abs=1e-9), "moved while paused"
            assert (await command_state(op, cid))["state"] == "executing"
            r = await op.post("/api/commands", json={"kind": "route_pause"})
            again = await final_state(op, (await r.json())["command"]["id"])
            assert again["state"] == "completed" and "already paused" in again["reason"]
            # resume: it goes on from the waypoint it was flying to, and completes
            r = await op.post("/api/commands", json={"kind": "route_resume"})
            resume = await final_state(op, (await r.json())["command"]["id"])
            assert resume["state"] == "completed" and "route resumed" in resume["reason"], resume
            done = await final_state(op, cid, 30)
            assert done["state"] == "completed" and done["reason"] == "route complete: 3 waypoints"
            assert [s["state"] for s in done["history"]] == [
                "queued",
                "sent",
                "received",
                "executing",
                "completed",
            ]
            assert h.robot.position.tolist() == pytest.approx(ROUTE[-1], abs=1e-6)
            flown = [p for p, _ in h.robot.go_to_calls]
            assert [p for i, p in enumerate(flown) if i == 0 or p != flown[i - 1]] == ROUTE
            assert [k for _, k in h.stack.onboard.executed] == [
                "route",
                "route_pause",
                "route_pause",
                "route_resume",
            ]
            await wait_for(lambda: h.stack.ground.telemetry.get("route") is None, 3, "no route in tm")
            # nothing to pause now
            r = await op.post("/api/commands", json={"kind": "route_resume"})
            late = await final_state(op, (await r.json())["command"]["id"])
            assert late["state"] == "failed" and late["reason"] == "no route is being flown"

    run(body())


def test_paused_route_stays_paused_through_a_los_hold_and_resumes_where_it_was():
    async def body():
        async with Harness(station_keep_after_s=1.5, speed=1.0) as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            r = await op.post("/api/route", json={"waypoints": [{"position": p} for p in ROUTE]})
            cid = (await r.json())["command"]["id"]
            await wait_for(lambda: h.robot.route is not None and h.robot.route_index == 1, 15, "leg 2")
            # LOS: the supervisor holds, the backend's route is dropped (suspended)
            await op.post("/api/link/los", json={"start_in_s": 0, "duration_s": 4.0})
            await wait_for(lambda: h.stack.onboard.supervisor.action.value == "station_keep", 4, "hold")
            assert h.robot.route is None and h.stack.onboard.active.suspended
            # the pause sent during LOS reaches the robot at AOS: bookkeeping, the robot holds
            r = await op.post("/api/commands", json={"kind": "route_pause"})
            pause_id = (await r.json())["command"]["id"]
            pause = await final_state(op, pause_id, 15)
            assert pause["state"] == "completed" and "paused at waypoint 2 of 3 (holding)" in pause["reason"]
            await wait_for(lambda: h.stack.onboard.supervisor.action.value == "nominal", 10, "nominal")
            x = h.robot.position.copy()
            await asyncio.sleep(0.8)
            assert h.robot.route is None and h.robot.position.tolist() == pytest.approx(x.tolist(), abs=1e-9)
            tm_route = h.stack.ground.telemetry["route"]
            assert tm_route["paused"] and tm_route["index"] == 1
            r = await op.post("/api/commands", json={"kind": "route_resume"})
            resume = await final_state(op, (await r.json())["command"]["id"])
            assert resume["state"] == "completed" and "route resumed at waypoint 2 of 3" in resume["reason"]
            done = await final_state(op, cid, 30)
            assert done["state"] == "completed", done
            assert h.robot.route_calls == [3, 2]  # flown again from waypoint 2, not from the start
            assert [k for _, k in h.stack.onboard.executed].count("route") == 1

    run(body())


def test_keep_out_zone_added_and_removed_through_the_link():
    async def body():
        async with Harness(speed=4.0) as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            box = {"name": "cargo_1", "min": [4.0, -0.5, -0.5], "max": [4.6, 0.5, 0.5]}
            # ground checks: a fixed zone's name, min >= max, outside the module, bad name, unknown zone
            for payload, why in (
                ({**box, "name": "stowage_bag"}, "zone 'stowage_bag' is fixed"),
                ({**box, "name": "dock"}, "zone 'dock' is fixed"),
                ({**box, "max": [4.6, -0.5, 0.5]}, "min y=-0.5 m must be below max y=-0.5 m"),
                ({**box, "max": [4.6, 0.5, 3.0]}, "is not inside the module clear volume"),
                ({**box, "name": "a b"}, "name: 'a b' is not 1-32 letters"),
                ({**box, "min": [4.0, "x", 0.0]}, "min: expected a list of 3 numbers"),
            ):
                r = await op.post("/api/commands", json={"kind": "keep_out_add", "payload": payload})
                assert r.status == 400 and why in (await r.json())["error"], (payload, await r.text())
            r = await op.post(
                "/api/commands", json={"kind": "keep_out_remove", "payload": {"name": "stowage_bag"}}
            )
            assert r.status == 400 and "not removable" in (await r.json())["error"]
            r = await op.post(
                "/api/commands", json={"kind": "keep_out_remove", "payload": {"name": "cargo_1"}}
            )
            assert r.status == 400 and "no keep-out zone named 'cargo_1'" in (await r.json())["error"]
            # a zone around the robot is refused onboard, with the reason
            around = {"name": "here", "min": [1.4, -0.2, 0.0], "max": [1.8, 0.2, 0.4]}
            r = await op.post("/api/commands", json={"kind": "keep_out_add", "payload": around})
            refused = await final_state(op, (await r.json())["command"]["id"])
            assert refused["state"] == "failed" and "move it away first" in refused["reason"], refused
            # added onboard: in the telemetry, in /api/module, and goals inside it are refused at once
            r = await op.post("/api/commands", json={"kind": "keep_out_add", "payload": box})
            added = await final_state(op, (await r.json())["command"]["id"])
            assert added["state"] == "completed" and added["reason"] == "keep-out zone cargo_1 added"
            await wait_for(
                lambda: any(z["name"] == "cargo_1" for z in h.stack.ground.telemetry.get("keep_out") or []),
                3,
                "tm",
            )
            zones = {z["name"]: z for z in h.stack.ground.telemetry["keep_out"]}
            assert zones["cargo_1"] == {**box, "fixed": False} and zones["stowage_bag"]["fixed"]
            m = await (await op.get("/api/module")).json()
            assert {z["name"] for z in m["keep_out"]} == {"stowage_bag", "cargo_1"}
            r = await op.post(
                "/api/commands", json={"kind": "goal", "payload": {"position": [4.3, 0.0, 0.0]}}
            )
            assert r.status == 400 and "keep-out zone cargo_1" in (await r.json())["error"]
            r = await op.post("/api/check_goal", json={"position": [4.3, 0.0, 0.0]})
            assert (await r.json())["ok"] is False
            r = await op.post(
                "/api/route",
                json={"waypoints": [{"position": [3.0, 0.0, 0.0]}, {"position": [4.3, 0.6, 0.0]}]},
            )
            assert r.status == 400 and "waypoints[1]" in (await r.json())["error"]
            # removed: the same goal flies
            r = await op.post(
                "/api/commands", json={"kind": "keep_out_remove", "payload": {"name": "cargo_1"}}
            )
            removed = await final_state(op, (await r.json())["command"]["id"])
            assert removed["state"] == "completed" and removed["reason"] == "keep-out zone cargo_1 removed"
            await wait_for(lambda: len(h.stack.ground.telemetry["keep_out"]) == 2, 3, "zone gone")  # + dock
            r = await op.post(
                "/api/commands", json={"kind": "goal", "payload": {"position": [4.3, 0.0, 0.0]}}
            )
            assert r.status == 202
            assert (await final_state(op, (await r.json())["command"]["id"]))["state"] == "completed"

    run(body())


def test_zone_added_over_the_goal_being_flown_stops_it_with_the_reason():
    async def body():
        async with Harness(speed=0.5) as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            r = await op.post(
                "/api/commands", json={"kind": "goal", "payload": {"position": [6.0, 0.0, 0.0]}}
            )
            cid = (await r.json())["command"]["id"]
            await wait_for(lambda: h.robot.state == "moving", 5, "moving")
            box = {"name": "spill", "min": [5.5, -0.3, -0.3], "max": [6.5, 0.3, 0.3]}
            r = await op.post("/api/commands", json={"kind": "keep_out_add", "payload": box})
            assert (await final_state(op, (await r.json())["command"]["id"]))["state"] == "completed"
            goal = await final_state(op, cid)
            assert goal["state"] == "failed" and "goal now refused" in goal["reason"]
            assert "keep-out zone spill" in goal["reason"]
            x = h.robot.position.copy()
            await asyncio.sleep(0.3)
            assert h.robot.position.tolist() == pytest.approx(x.tolist(), abs=1e-9)

    run(body())


# -- camera-task files down the link ----------------------------------------------------------


def test_snapshot_file_is_downlinked_capped_paced_and_downloadable():
    """A snapshot camera task on the stand-in writes a PNG; the bridge sends it down as a capped
    JPEG in chunks at the file rate; the link loses 30 % of the downlink, so the ground asks
    for the missing chunks (file_resend) until the SHA-256 matches; then it is downloadable."""

    async def body():
        lossy = {**FAST_LINK, "downlink.random_loss": 0.3}
        async with Harness(overrides=lossy) as h:
            h.stack.onboard.files.rate_bps = 400_000.0
            op = await h.client(OP_TOKEN)
            obs = await h.client(OBS_TOKEN)
            await op.post("/api/control/take", json={})
            r = await op.post("/api/commands", json={"kind": "camera_task", "payload": {"task": "snapshot"}})
            # its final ack comes down the 30 %-loss link: a lost one is asked again by the ground's
            # status poll every 10 s, so allow a few polls
            task = await final_state(op, (await r.json())["command"]["id"], timeout=60.0)
            assert task["state"] == "completed", task
            assert "files: snapshot_" in task["reason"] and "downlinking 1 image(s)" in task["reason"]
            t0 = time.monotonic()

            async def complete():
                files = (await (await obs.get("/api/files")).json())["files"]
                return files and files[0]["state"] != "receiving" and files[0]

            f = await wait_for(complete, 60, "file downlinked")
            elapsed = time.monotonic() - t0
            assert f["state"] == "complete", f
            sent = h.stack.onboard.files.files[f["id"]]
            assert f["name"].startswith("snapshot_") and f["name"].endswith(".jpg")
            assert f["command"] == task["id"] and f["bytes"] == len(sent.data) <= 200_000
            assert f["chunks"] == -(-len(sent.data) // 8192) >= 5
            assert f["resends"] >= 1, "30 % loss and no chunk was asked for again?"
            r = await obs.get(f"/api/files/{f['id']}")
            assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
            assert "attachment" in r.headers["Content-Disposition"]
            data = await r.read()
            assert data == sent.data and data[:2] == b"\xff\xd8"
            # paced under the file rate: the chunks took at least bytes * 8 / rate
            assert elapsed >= 0.9 * len(data) * 8 / 400_000.0
            resends = [c for c in h.stack.ground.commands() if c["kind"] == "file_resend"]
            assert resends and all(c["user"] == "ground (file downlink)" for c in resends)
            print(
                f"file: {len(data)} B in {f['chunks']} chunks, {elapsed:.2f} s, {f['resends']} resend "
                f"request(s), onboard sent {h.stack.onboard.files.sent_bytes} B"
            )

    run(body())


def test_unknown_file_ids_are_refused_on_the_ground_or_failed_onboard():
    """A file id that is not one is refused by the ground (400); a well-formed id the robot does
    not keep gets a 404 for the download and a file_resend that fails onboard with the reason
    (lossless link: a lost final ack would only add the ground's 10 s status polls)."""

    async def body():
        async with Harness(overrides=FAST_LINK) as h:
            op = await h.client(OP_TOKEN)
            await op.post("/api/control/take", json={})
            assert (await op.get("/api/files/0123456789ab")).status == 404
            r = await op.post(
                "/api/commands", json={"kind": "file_resend", "payload": {"id": "xyz", "chunks": [0]}}
            )
            assert r.status == 400 and "is not a file id" in (await r.json())["error"]
            r = await op.post(
                "/api/commands",
                json={"kind": "file_resend", "payload": {"id": "0123456789ab", "chunks": [0]}},
            )
            gone = await final_state(op, (await r.json())["command"]["id"], timeout=30.0)
            assert gone["state"] == "failed" and "no longer kept onboard" in gone["reason"]

    run(body())
