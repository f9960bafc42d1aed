"""The console page, the OpenAPI document, log-in / log-out and who holds control."""

from __future__ import annotations

from aiohttp import web

from . import openapi
from .auth import AuthError, TokenBucket
from .common import (
    COOKIE,
    CREDENTIALS,
    LOGIN_BUCKETS,
    SECURITY_HEADERS,
    SESSIONS,
    STATIC_DIR,
    broadcast_control,
    error,
    json_body,
    need,
    session_dict,
    session_of,
)

LOGIN_RATE = (10 / 60.0, 10.0)  # per remote address: 10 per minute, bursts of 10


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
        return error(429, "too many login attempts; wait a minute")
    body = await json_body(request)
    try:
        user = request.app[CREDENTIALS].login(body.get("user"), body.get("password"), body.get("token"))
    except AuthError as exc:
        return error(401, str(exc))
    s = request.app[SESSIONS].create(user)
    resp = web.json_response(session_dict(request, s))
    resp.set_cookie(COOKIE, s.id, httponly=True, samesite="Strict", path="/")
    return resp


async def logout(request: web.Request) -> web.Response:
    s = session_of(request)
    if s is not None:
        request.app[SESSIONS].end(s.id)
        broadcast_control(request.app)
    resp = web.json_response({"logged_in": False})
    resp.del_cookie(COOKIE, path="/")
    return resp


async def session_info(request: web.Request) -> web.Response:
    return web.json_response(session_dict(request, session_of(request)))


async def control_take(request: web.Request) -> web.Response:
    s = need(request)
    body = await json_body(request)
    try:
        request.app[SESSIONS].take(s, force=bool(body.get("force", False)))
    except AuthError as exc:
        return error(409 if s.role == "operator" else 403, str(exc))
    broadcast_control(request.app)
    return web.json_response(session_dict(request, s))


async def control_release(request: web.Request) -> web.Response:
    s = need(request)
    request.app[SESSIONS].release(s)
    broadcast_control(request.app)
    return web.json_response(session_dict(request, s))
