"""HTTP + WebSocket API of the ground station (aiohttp) and the console's static files.

Every route is listed in ``openapi.py`` (served at ``/api/openapi.json``); docs/ui.md
describes the WebSocket events. Security: cookie sessions (HttpOnly, SameSite=Strict), an
Origin check on the WebSocket and on every state-changing request that carries an Origin,
request and message size limits, per-session command rate limits and a per-address login
rate limit. Errors are JSON ``{"error": "..."}`` naming the problem.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import WSMsgType, web

from .. import commands as C
from . import openapi
from .auth import AuthError, Credentials, Session, Sessions, TokenBucket
from .stack import Stack

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
COOKIE = "intball_session"
MAX_REQUEST_BYTES = 64 * 1024
MAX_WS_MESSAGE_BYTES = 4096
COMPETE_PREFIX = "/api/compete/"
LOGIN_RATE = (10 / 60.0, 10.0)  # per remote address: 10 per minute, bursts of 10
WS_SEND_QUEUE = 256  # events buffered per client before it is dropped as too slow

SECURITY_HEADERS = {  # the console loads nothing from elsewhere and is never framed
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}

STACK = web.AppKey("stack", Stack)
SESSIONS = web.AppKey("sessions", Sessions)
CREDENTIALS = web.AppKey("credentials", Credentials)
ORIGINS = web.AppKey("origins", tuple)
SOCKETS = web.AppKey("sockets", weakref.WeakSet)
LOGIN_BUCKETS = web.AppKey("login_buckets", dict)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _session(request: web.Request) -> Session | None:
    return request.app[SESSIONS].get(request.cookies.get(COOKIE))


def _origin_ok(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    own = f"{request.scheme}://{request.host}"
    return origin == own or origin in request.app[ORIGINS]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Origin check for state-changing requests (browsers always send Origin on POST), JSON errors."""
    if request.method not in ("GET", "HEAD", "OPTIONS") and "Origin" in request.headers:
        if not _origin_ok(request):
            return _error(403, f"origin {request.headers['Origin']!r} is not allowed")
    if request.path.startswith(COMPETE_PREFIX) and _session(request) is None:
        return _error(401, "not logged in")
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"request body larger than {MAX_REQUEST_BYTES} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith("/api/") and exc.content_type != "application/json":
            return _error(exc.status, exc.reason)
        raise


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_REQUEST_BYTES, actual_size=request.content_length)
    text = await request.text()
    if len(text) > MAX_REQUEST_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_REQUEST_BYTES, actual_size=len(text))
    if not text:
        return {}
    try:
        body = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"body is not valid JSON: {exc}"}), content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}), content_type="application/json"
        )
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (numbers must be finite)")


def _need(request: web.Request, *, control: bool = False) -> Session:
    s = _session(request)
    if s is None:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "not logged in"}), content_type="application/json"
        )
    if control:
        holder = request.app[SESSIONS].holder()
        if s.role != "operator":
            raise web.HTTPForbidden(
                text=json.dumps({"error": f"{s.user} is an observer: observers cannot command"}),
                content_type="application/json",
            )
        if holder is None or holder.id != s.id:
            who = f"held by {holder.user}" if holder else "nobody holds it; take control first"
            raise web.HTTPForbidden(
                text=json.dumps({"error": f"you do not hold control ({who})"}),
                content_type="application/json",
            )
    return s


def _session_dict(request: web.Request, s: Session | None) -> dict[str, Any]:
    holder = request.app[SESSIONS].holder()
    return {
        "logged_in": s is not None,
        "user": s.user if s else None,
        "role": s.role if s else None,
        "in_control": bool(s and holder and holder.id == s.id),
        "controller": holder.user if holder else None,
    }


def _broadcast_control(app: web.Application) -> None:
    holder = app[SESSIONS].holder()
    event = {"type": "control", "controller": holder.user if holder else None}
    for ws in list(app[SOCKETS]):
        ws._intball_send(event)  # type: ignore[attr-defined]


# -- handlers -------------------------------------------------------------------------------


async def index(request: web.Request) -> web.StreamResponse:
    path = STATIC_DIR / "index.html"
    if not path.is_file():
        return web.Response(
            status=503,
            text="console not built: run `make install` (npm ci + esbuild in teleop_ui/web)",
            content_type="text/plain",
        )
    return web.FileResponse(path, headers={"Cache-Control": "no-store", **SECURITY_HEADERS})


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi.SPEC)


async def login(request: web.Request) -> web.Response:
    remote = request.remote or "?"
    bucket = request.app[LOGIN_BUCKETS].setdefault(remote, TokenBucket(*LOGIN_RATE))
    if not bucket.take():
        return _error(429, "too many login attempts; wait a minute")
    body = await _json_body(request)
    try:
        user = request.app[CREDENTIALS].login(body.get("user"), body.get("password"), body.get("token"))
    except AuthError as exc:
        return _error(401, str(exc))
    s = request.app[SESSIONS].create(user)
    resp = web.json_response(_session_dict(request, s))
    resp.set_cookie(COOKIE, s.id, httponly=True, samesite="Strict", path="/")
    return resp


async def logout(request: web.Request) -> web.Response:
    s = _session(request)
    if s is not None:
        request.app[SESSIONS].end(s.id)
        _broadcast_control(request.app)
    resp = web.json_response({"logged_in": False})
    resp.del_cookie(COOKIE, path="/")
    return resp


async def session_info(request: web.Request) -> web.Response:
    return web.json_response(_session_dict(request, _session(request)))


async def control_take(request: web.Request) -> web.Response:
    s = _need(request)
    body = await _json_body(request)
    try:
        request.app[SESSIONS].take(s, force=bool(body.get("force", False)))
    except AuthError as exc:
        return _error(409 if s.role == "operator" else 403, str(exc))
    _broadcast_control(request.app)
    return web.json_response(_session_dict(request, s))


async def control_release(request: web.Request) -> web.Response:
    s = _need(request)
    request.app[SESSIONS].release(s)
    _broadcast_control(request.app)
    return web.json_response(_session_dict(request, s))


async def state(request: web.Request) -> web.Response:
    _need(request)
    return web.json_response(request.app[STACK].ground.snapshot())


async def module(request: web.Request) -> web.Response:
    _need(request)
    return web.json_response(request.app[STACK].ground.workspace.describe())


async def link_state(request: web.Request) -> web.Response:
    _need(request)
    return web.json_response(request.app[STACK].ground.link_state())


async def check_goal(request: web.Request) -> web.Response:
    _need(request)
    body = await _json_body(request)
    try:
        C.validate(C.GOAL, body, request.app[STACK].ground.workspace)
    except C.CommandError as exc:
        return web.json_response({"ok": False, "reason": str(exc)})
    return web.json_response({"ok": True, "reason": ""})


async def _submit(request: web.Request, s: Session, kind: str, payload: Any) -> web.Response:
    if not request.app[SESSIONS].allow_command(s):
        return _error(429, "command rate limit exceeded (10 per second, bursts of 20)")
    if not isinstance(kind, str):
        return _error(400, "kind: expected a string")
    try:
        record = request.app[STACK].ground.submit(kind, payload if payload is not None else {}, s.user)
    except C.CommandError as exc:
        return _error(400, f"{kind}: {exc}")
    return web.json_response({"command": request.app[STACK].ground.record_dict(record)}, status=202)


async def post_command(request: web.Request) -> web.Response:
    s = _need(request, control=True)
    body = await _json_body(request)
    kind = body.get("kind")
    if kind == C.EMERGENCY_STOP:
        return await emergency_stop(request)
    extra = set(body) - {"kind", "payload"}
    if extra:
        return _error(400, f"unknown field(s) {', '.join(sorted(extra))}")
    return await _submit(request, s, kind, body.get("payload", {}))


async def emergency_stop(request: web.Request) -> web.Response:
    s = _need(request)  # any logged-in station
    record = request.app[STACK].ground.submit(C.EMERGENCY_STOP, {}, s.user)
    return web.json_response({"command": request.app[STACK].ground.record_dict(record)}, status=202)


async def post_route(request: web.Request) -> web.Response:
    """A route is ONE command over the link (kind ``route``): the robot flies it with its
    FollowRoute action, so it is received, executed and acknowledged once, as a whole."""
    s = _need(request, control=True)
    body = await _json_body(request)
    extra = set(body) - {"waypoints", "flight_mode", "label"}
    if extra:
        return _error(400, f"route: unknown field(s) {', '.join(sorted(extra))}")
    return await _submit(request, s, C.ROUTE, body)


async def cancel_pending(request: web.Request) -> web.Response:
    _need(request, control=True)
    return web.json_response({"cancelled": request.app[STACK].ground.cancel_pending()})


async def list_commands(request: web.Request) -> web.Response:
    _need(request)
    return web.json_response({"commands": request.app[STACK].ground.commands()})


async def get_command(request: web.Request) -> web.Response:
    _need(request)
    ground = request.app[STACK].ground
    record = ground.queue.records.get(request.match_info["id"])
    if record is None:
        return _error(404, f"no command {request.match_info['id']!r}")
    return web.json_response({"command": ground.record_dict(record)})


async def list_alerts(request: web.Request) -> web.Response:
    _need(request)
    return web.json_response({"alerts": [a.as_dict() for a in request.app[STACK].ground.alerts.values()]})


async def ack_alert(request: web.Request) -> web.Response:
    s = _need(request)
    try:
        alert = request.app[STACK].ground.acknowledge_alert(int(request.match_info["id"]), s.user)
    except (KeyError, ValueError):
        return _error(404, f"no alert {request.match_info['id']!r}")
    return web.json_response({"alert": alert.as_dict()})


async def link_los(request: web.Request) -> web.Response:
    _need(request, control=True)
    body = await _json_body(request)
    try:
        start = float(body.get("start_in_s", 0.0))
        duration = float(body.get("duration_s", 10.0))
        if not 0 < duration <= 3600 or not 0 <= start <= 3600:
            raise ValueError("start_in_s must be in 0 .. 3600 s and duration_s in (0, 3600] s")
        window = request.app[STACK].link.add_los_window(start, duration)
    except (TypeError, ValueError) as exc:
        return _error(400, f"LOS drill: {exc}")
    return web.json_response({"window_s": list(window)})


async def camera(request: web.Request) -> web.StreamResponse:
    _need(request)
    name = request.match_info["camera"]
    frame = request.app[STACK].ground.frames.get(name)
    if frame is None:
        return _error(404, f"no frame from camera {name!r} yet")
    header, jpeg, _ = frame
    headers = {"Cache-Control": "no-store", "X-Frame-Seq": str(header["seq"])}
    if request.query.get("download"):
        headers["Content-Disposition"] = f'attachment; filename="{name}-{header["seq"]}.jpg"'
    return web.Response(body=jpeg, content_type="image/jpeg", headers=headers)


async def list_files(request: web.Request) -> web.Response:
    _need(request)
    return web.json_response({"files": [f.summary() for f in request.app[STACK].ground.files.files.values()]})


async def get_file(request: web.Request) -> web.Response:
    """A downlinked camera-task file (JPEG), once every chunk arrived and its SHA-256 matched."""
    _need(request)
    fid = request.match_info["id"]
    f = request.app[STACK].ground.files.files.get(fid)
    if f is None:
        return _error(404, f"no downlinked file {fid!r}")
    if f.data is None:
        why = f.reason or f"{len(f.chunks)} of {f.n} chunks received"
        return _error(409, f"file {f.name or fid} is {f.state}: {why}")
    headers = {
        "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{f.name or fid + ".jpg"}"',
    }
    return web.Response(body=f.data, content_type="image/jpeg", headers=headers)


async def mission_parse(request: web.Request) -> web.Response:
    """Mission YAML (intball_nav.mission format) -> waypoints, validated by load_mission."""
    _need(request)
    body = await _json_body(request)
    text = body.get("yaml")
    if not isinstance(text, str):
        return _error(400, "yaml: expected the mission file as a string")
    from intball_nav.frames import rpy_from_quat
    from intball_nav.mission import MissionError, load_mission

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="mission-") as f:
        f.write(text)
        f.flush()
        try:
            mission = load_mission(f.name)
        except MissionError as exc:
            return _error(
                400, str(exc).replace(f.name, "mission.yaml").replace(Path(f.name).name, "mission.yaml")
            )
        except Exception as exc:  # yaml errors etc.
            return _error(400, f"mission.yaml: {exc}".replace(f.name, "mission.yaml"))
    if len(mission.waypoints) > C.MAX_ROUTE_WAYPOINTS:
        return _error(
            400,
            f"mission has {len(mission.waypoints)} waypoints; the route editor takes {C.MAX_ROUTE_WAYPOINTS}",
        )
    import numpy as np

    def wp(pose, mode):
        return {
            "position": [round(float(v), 4) for v in pose.position],
            "rpy_deg": [round(float(v), 3) for v in np.degrees(rpy_from_quat(pose.quat))],
            "flight_mode": mode,
        }

    return web.json_response(
        {
            "name": mission.name,
            "start": wp(mission.start, mission.flight_mode),
            "waypoints": [{**wp(w.pose, w.flight_mode), "hold_s": w.hold_s} for w in mission.waypoints],
        }
    )


async def mission_export(request: web.Request) -> web.Response:
    _need(request)
    body = await _json_body(request)
    waypoints = body.get("waypoints")
    start = body.get("start")
    if not isinstance(waypoints, list) or not 1 <= len(waypoints) <= C.MAX_ROUTE_WAYPOINTS:
        return _error(400, f"waypoints: expected 1 .. {C.MAX_ROUTE_WAYPOINTS} waypoints")
    ws = request.app[STACK].ground.workspace
    out = []
    for i, w in enumerate([start, *waypoints]):
        field = "start" if i == 0 else f"waypoints[{i - 1}]"
        if not isinstance(w, dict):
            return _error(400, f"{field}: expected an object")
        try:
            C.validate(C.GOAL, {k: v for k, v in w.items() if k != "hold_s"}, ws)
        except C.CommandError as exc:
            return _error(400, f"{field}: {exc}")
        item = {"position": w["position"], "rpy_deg": w.get("rpy_deg", [0, 0, 0])}
        if i > 0:
            item["hold_s"] = float(w.get("hold_s", 0.0))
            if w.get("flight_mode", "nominal") != "nominal":
                item["flight_mode"] = w["flight_mode"]
        out.append(item)
    doc = {"version": 1, "name": str(body.get("name", "route"))[:64], "start": out[0], "waypoints": out[1:]}
    text = "# exported by the Int-Ball ground station (intball_nav.mission format)\n" + yaml.safe_dump(
        doc, sort_keys=False, default_flow_style=None
    )
    return web.json_response({"yaml": text})


async def websocket(request: web.Request) -> web.StreamResponse:
    if not _origin_ok(request):
        return _error(403, f"websocket origin {request.headers.get('Origin')!r} is not allowed")
    s = _session(request)
    if s is None:
        return _error(401, "not logged in")
    ws = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE_BYTES, heartbeat=20.0)
    await ws.prepare(request)
    import asyncio

    queue: asyncio.Queue = asyncio.Queue(maxsize=WS_SEND_QUEUE)

    def send(event: dict[str, Any]) -> None:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            pass  # a slow client misses events; the next snapshot/telemetry catches it up

    ws._intball_send = send  # type: ignore[attr-defined]
    request.app[SOCKETS].add(ws)
    ground = request.app[STACK].ground
    ground.listeners.add(send)
    send({"type": "hello", "session": _session_dict(request, s), "state": ground.snapshot()})

    async def writer() -> None:
        while True:
            event = await queue.get()
            await ws.send_str(json.dumps(event, allow_nan=False, default=str))

    task = asyncio.get_running_loop().create_task(writer())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                try:
                    obj = json.loads(msg.data)
                except ValueError:
                    send({"type": "error", "error": "message is not JSON"})
                    continue
                if isinstance(obj, dict) and obj.get("type") == "ping":
                    send({"type": "pong", "t": obj.get("t"), "server_time": time.time()})
                else:
                    send(
                        {
                            "type": "error",
                            "error": "the WebSocket takes only {type: ping}; commands: POST /api/commands",
                        }
                    )
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        ground.listeners.discard(send)
        task.cancel()
    return ws


def create_app(
    stack: Stack,
    credentials: Credentials,
    *,
    allowed_origins: tuple[str, ...] = (),
    compete: web.Application | None = None,
) -> web.Application:
    # aiohttp applies the root app's body limit to sub-apps too: room for competition uploads,
    # our own JSON bodies are limited to MAX_REQUEST_BYTES in _json_body
    max_size = MAX_REQUEST_BYTES if compete is None else max(MAX_REQUEST_BYTES, compete._client_max_size)
    app = web.Application(middlewares=[guard], client_max_size=max_size)
    app[STACK] = stack
    app[SESSIONS] = Sessions()
    app[CREDENTIALS] = credentials
    app[ORIGINS] = tuple(allowed_origins)
    app[SOCKETS] = weakref.WeakSet()
    app[LOGIN_BUCKETS] = {}
    r = app.router
    r.add_get("/", index)
    r.add_get("/api/openapi.json", openapi_json)
    r.add_post("/api/login", login)
    r.add_post("/api/logout", logout)
    r.add_get("/api/session", session_info)
    r.add_post("/api/control/take", control_take)
    r.add_post("/api/control/release", control_release)
    r.add_get("/api/state", state)
    r.add_get("/api/module", module)
    r.add_get("/api/link", link_state)
    r.add_post("/api/link/los", link_los)
    r.add_post("/api/check_goal", check_goal)
    r.add_get("/api/commands", list_commands)
    r.add_post("/api/commands", post_command)
    r.add_get("/api/commands/{id}", get_command)
    r.add_post("/api/commands/cancel_pending", cancel_pending)
    r.add_post("/api/emergency_stop", emergency_stop)
    r.add_post("/api/route", post_route)
    r.add_get("/api/alerts", list_alerts)
    r.add_post("/api/alerts/{id}/ack", ack_alert)
    r.add_get("/api/camera/{camera}.jpg", camera)
    r.add_get("/api/files", list_files)
    r.add_get("/api/files/{id}", get_file)
    r.add_post("/api/mission/parse", mission_parse)
    r.add_post("/api/mission/export", mission_export)
    r.add_get("/api/ws", websocket)
    if STATIC_DIR.is_dir():
        r.add_static("/static/", STATIC_DIR, append_version=False)
    if compete is not None:
        app.add_subapp(COMPETE_PREFIX.rstrip("/"), compete)
    return app


def load_compete_app(data_dir: str | None = None) -> web.Application | None:
    """The competition's API (sim/intball_compete) for mounting under /api/compete, when that
    package is installed and a data directory is given (``INTBALL_COMPETE_DATA``): its
    evaluator runs participants' code in worker processes, so it is opt-in. The store and
    evaluator are closed with the app."""
    data_dir = data_dir or os.environ.get("INTBALL_COMPETE_DATA")
    if not data_dir:
        return None
    try:
        from intball_compete.service import Evaluator  # type: ignore[import-not-found]
        from intball_compete.store import Store  # type: ignore[import-not-found]
        from intball_compete.web import create_app as create_compete_app  # type: ignore[import-not-found]
    except ImportError as exc:
        log.warning("competition not mounted: %s", exc)
        return None
    store = Store(data_dir)
    evaluator = Evaluator(store).start()
    sub = create_compete_app(store, evaluator)

    async def close(_app: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, evaluator.stop)
        store.close()

    sub.on_cleanup.append(close)
    return sub
