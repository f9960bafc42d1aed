"""State, module, link and LOS drill, commands (one at a time, routes as one command, the
emergency stop from any session), their queue and history, and alerts."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import commands as C
from .auth import Session
from .common import SESSIONS, STACK, error, json_body, need


async def state(request: web.Request) -> web.Response:
    need(request)
    return web.json_response(request.app[STACK].ground.snapshot())


async def module(request: web.Request) -> web.Response:
    need(request)
    return web.json_response(request.app[STACK].ground.workspace.describe())


async def link_state(request: web.Request) -> web.Response:
    need(request)
    return web.json_response(request.app[STACK].ground.link_state())


async def link_los(request: web.Request) -> web.Response:
    need(request, control=True)
    body = await json_body(request)
    try:
        start = float(body.get("start_in_s", 0.0))
        duration = float(body.get("duration_s", 10.0))
        if not 0 < duration <= 3600 or not 0 <= start <= 3600:
            raise ValueError("start_in_s must be in 0 .. 3600 s and duration_s in (0, 3600] s")
        window = request.app[STACK].link.add_los_window(start, duration)
    except (TypeError, ValueError) as exc:
        return error(400, f"LOS drill: {exc}")
    return web.json_response({"window_s": list(window)})


async def check_goal(request: web.Request) -> web.Response:
    need(request)
    body = await json_body(request)
    try:
        C.validate(C.GOAL, body, request.app[STACK].ground.workspace)
    except C.CommandError as exc:
        return web.json_response({"ok": False, "reason": str(exc)})
    return web.json_response({"ok": True, "reason": ""})


async def _submit(request: web.Request, s: Session, kind: str, payload: Any) -> web.Response:
    if not request.app[SESSIONS].allow_command(s):
        return error(429, "command rate limit exceeded (10 per second, bursts of 20)")
    if not isinstance(kind, str):
        return error(400, "kind: expected a string")
    try:
        record = request.app[STACK].ground.submit(kind, payload if payload is not None else {}, s.user)
    except C.CommandError as exc:
        return error(400, f"{kind}: {exc}")
    return web.json_response({"command": request.app[STACK].ground.record_dict(record)}, status=202)


async def post_command(request: web.Request) -> web.Response:
    s = need(request, control=True)
    body = await json_body(request)
    kind = body.get("kind")
    if kind == C.EMERGENCY_STOP:
        return await emergency_stop(request)
    extra = set(body) - {"kind", "payload"}
    if extra:
        return error(400, f"unknown field(s) {', '.join(sorted(extra))}")
    return await _submit(request, s, kind, body.get("payload", {}))


async def emergency_stop(request: web.Request) -> web.Response:
    s = need(request)  # any logged-in station
    record = request.app[STACK].ground.submit(C.EMERGENCY_STOP, {}, s.user)
    return web.json_response({"command": request.app[STACK].ground.record_dict(record)}, status=202)


async def post_route(request: web.Request) -> web.Response:
    """A route is ONE command over the link (kind ``route``): the robot flies it with its
    FollowRoute action, so it is received, executed and acknowledged once, as a whole."""
    s = need(request, control=True)
    body = await json_body(request)
    extra = set(body) - {"waypoints", "flight_mode", "label"}
    if extra:
        return error(400, f"route: unknown field(s) {', '.join(sorted(extra))}")
    return await _submit(request, s, C.ROUTE, body)


async def cancel_pending(request: web.Request) -> web.Response:
    need(request, control=True)
    return web.json_response({"cancelled": request.app[STACK].ground.cancel_pending()})


async def list_commands(request: web.Request) -> web.Response:
    need(request)
    return web.json_response({"commands": request.app[STACK].ground.commands()})


async def get_command(request: web.Request) -> web.Response:
    need(request)
    ground = request.app[STACK].ground
    record = ground.queue.records.get(request.match_info["id"])
    if record is None:
        return error(404, f"no command {request.match_info['id']!r}")
    return web.json_response({"command": ground.record_dict(record)})


async def list_alerts(request: web.Request) -> web.Response:
    need(request)
    return web.json_response({"alerts": [a.as_dict() for a in request.app[STACK].ground.alerts.values()]})


async def ack_alert(request: web.Request) -> web.Response:
    s = need(request)
    try:
        alert = request.app[STACK].ground.acknowledge_alert(int(request.match_info["id"]), s.user)
    except (KeyError, ValueError):
        return error(404, f"no alert {request.match_info['id']!r}")
    return web.json_response({"alert": alert.as_dict()})
