"""The event WebSocket: a ``hello`` snapshot, then telemetry, commands, link, alerts, camera,
file and control events as they happen (docs/ui.md); the client may only ping."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import WSMsgType, web

from .common import SOCKETS, STACK, error, origin_ok, session_dict, session_of

MAX_WS_MESSAGE_BYTES = 4096
WS_SEND_QUEUE = 256  # events buffered per client before it is dropped as too slow


async def websocket(request: web.Request) -> web.StreamResponse:
    if not origin_ok(request):
        return error(403, f"websocket origin {request.headers.get('Origin')!r} is not allowed")
    s = session_of(request)
    if s is None:
        return error(401, "not logged in")
    ws = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE_BYTES, heartbeat=20.0)
    await ws.prepare(request)

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
    send({"type": "hello", "session": session_dict(request, s), "state": ground.snapshot()})

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
