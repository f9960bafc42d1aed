"""HTTP + WebSocket API of the ground station (aiohttp) and the console's static files.

``create_app`` lists every route; the handlers are in ``session_routes.py`` (page, OpenAPI,
log-in, control), ``command_routes.py`` (state, link, commands, alerts), ``file_routes.py``
(camera frames, camera-task files), ``mission_routes.py`` and ``events.py`` (WebSocket); what
they share (app keys, the middleware, the checks) in ``common.py``. The OpenAPI document
(``openapi.py``, served at ``/api/openapi.json``) describes every route; docs/ui.md the
WebSocket events. Security: cookie sessions (HttpOnly, SameSite=Strict), an Origin check on
the WebSocket and on every state-changing request that carries an Origin, request and message
size limits, per-session command rate limits and a per-address login rate limit. Errors are
JSON ``{"error": "..."}`` naming the problem.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref

from aiohttp import web

from . import command_routes as cmd
from . import events, file_routes, mission_routes
from . import session_routes as ses
from .auth import Credentials, Sessions
from .common import (
    COMPETE_PREFIX,
    CREDENTIALS,
    LOGIN_BUCKETS,
    MAX_REQUEST_BYTES,
    ORIGINS,
    SESSIONS,
    SOCKETS,
    STACK,
    STATIC_DIR,
    guard,
)
from .stack import Stack

__all__ = ["STATIC_DIR", "create_app", "load_compete_app"]

log = logging.getLogger(__name__)


def create_app(
    stack: Stack,
    credentials: Credentials,
    *,
    allowed_origins: tuple[str, ...] = (),
    compete: web.Application | None = None,
) -> web.Application:
    # aiohttp applies the root app's body limit to sub-apps too: room for competition uploads,
    # our own JSON bodies are limited to MAX_REQUEST_BYTES in common.json_body
    max_size = MAX_REQUEST_BYTES if compete is None else max(MAX_REQUEST_BYTES, compete._client_max_size)
    app = web.Application(middlewares=[guard], client_max_size=max_size)
    app[STACK] = stack
    app[SESSIONS] = Sessions()
    app[CREDENTIALS] = credentials
    app[ORIGINS] = tuple(allowed_origins)
    app[SOCKETS] = weakref.WeakSet()
    app[LOGIN_BUCKETS] = {}
    r = app.router
    r.add_get("/", ses.index)
    r.add_get("/api/openapi.json", ses.openapi_json)
    r.add_post("/api/login", ses.login)
    r.add_post("/api/logout", ses.logout)
    r.add_get("/api/session", ses.session_info)
    r.add_post("/api/control/take", ses.control_take)
    r.add_post("/api/control/release", ses.control_release)
    r.add_get("/api/state", cmd.state)
    r.add_get("/api/module", cmd.module)
    r.add_get("/api/link", cmd.link_state)
    r.add_post("/api/link/los", cmd.link_los)
    r.add_post("/api/check_goal", cmd.check_goal)
    r.add_get("/api/commands", cmd.list_commands)
    r.add_post("/api/commands", cmd.post_command)
    r.add_get("/api/commands/{id}", cmd.get_command)
    r.add_post("/api/commands/cancel_pending", cmd.cancel_pending)
    r.add_post("/api/emergency_stop", cmd.emergency_stop)
    r.add_post("/api/route", cmd.post_route)
    r.add_get("/api/alerts", cmd.list_alerts)
    r.add_post("/api/alerts/{id}/ack", cmd.ack_alert)
    r.add_get("/api/camera/{camera}.jpg", file_routes.camera)
    r.add_get("/api/files", file_routes.list_files)
    r.add_get("/api/files/{id}", file_routes.get_file)
    r.add_post("/api/mission/parse", mission_routes.mission_parse)
    r.add_post("/api/mission/export", mission_routes.mission_export)
    r.add_get("/api/ws", events.websocket)
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
