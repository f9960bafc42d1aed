"""What every route of the ground station's API shares: the app keys (stack, sessions,
credentials, allowed origins, sockets, login buckets), the ``guard`` middleware (Origin check on
state-changing requests, JSON errors, body size), JSON bodies without NaN/Infinity, the login
and control checks (``need``) and the session as the console sees it."""

from __future__ import annotations

import json
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from .auth import Credentials, Session, Sessions
from .stack import Stack

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
COOKIE = "intball_session"
MAX_REQUEST_BYTES = 64 * 1024
COMPETE_PREFIX = "/api/compete/"

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

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def session_of(request: web.Request) -> Session | None:
    return request.app[SESSIONS].get(request.cookies.get(COOKIE))


def origin_ok(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    own = f"{request.scheme}://{request.host}"
    return origin == own or origin in request.app[ORIGINS]


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Origin check for state-changing requests (browsers always send Origin on POST), JSON errors."""
    if request.method not in ("GET", "HEAD", "OPTIONS") and "Origin" in request.headers:
        if not origin_ok(request):
            return error(403, f"origin {request.headers['Origin']!r} is not allowed")
    if request.path.startswith(COMPETE_PREFIX) and session_of(request) is None:
        return error(401, "not logged in")
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return error(413, f"request body larger than {MAX_REQUEST_BYTES} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith("/api/") and exc.content_type != "application/json":
            return error(exc.status, exc.reason)
        raise


async def json_body(request: web.Request) -> dict[str, Any]:
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


def need(request: web.Request, *, control: bool = False) -> Session:
    s = session_of(request)
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


def session_dict(request: web.Request, s: Session | None) -> dict[str, Any]:
    holder = request.app[SESSIONS].holder()
    return {
        "logged_in": s is not None,
        "user": s.user if s else None,
        "role": s.role if s else None,
        "in_control": bool(s and holder and holder.id == s.id),
        "controller": holder.user if holder else None,
    }


def broadcast_control(app: web.Application) -> None:
    holder = app[SESSIONS].holder()
    event = {"type": "control", "controller": holder.user if holder else None}
    for ws in list(app[SOCKETS]):
        ws._intball_send(event)  # type: ignore[attr-defined]
