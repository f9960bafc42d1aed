"""What the robot sends down besides telemetry: the latest camera frames and the camera-task
files (JPEG attachments once complete and checked)."""

from __future__ import annotations

from aiohttp import web

from .common import STACK, error, need


async def camera(request: web.Request) -> web.StreamResponse:
    need(request)
    name = request.match_info["camera"]
    frame = request.app[STACK].ground.frames.get(name)
    if frame is None:
        return error(404, f"no frame from camera {name!r} yet")
    header, jpeg, _ = frame
    headers = {"Cache-Control": "no-store", "X-Frame-Seq": str(header["seq"])}
    if request.query.get("download"):
        headers["Content-Disposition"] = f'attachment; filename="{name}-{header["seq"]}.jpg"'
    return web.Response(body=jpeg, content_type="image/jpeg", headers=headers)


async def list_files(request: web.Request) -> web.Response:
    need(request)
    return web.json_response({"files": [f.summary() for f in request.app[STACK].ground.files.files.values()]})


async def get_file(request: web.Request) -> web.Response:
    """A downlinked camera-task file (JPEG), once every chunk arrived and its SHA-256 matched."""
    need(request)
    fid = request.match_info["id"]
    f = request.app[STACK].ground.files.files.get(fid)
    if f is None:
        return error(404, f"no downlinked file {fid!r}")
    if f.data is None:
        why = f.reason or f"{len(f.chunks)} of {f.n} chunks received"
        return error(409, f"file {f.name or fid} is {f.state}: {why}")
    headers = {
        "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{f.name or fid + ".jpg"}"',
    }
    return web.Response(body=f.data, content_type="image/jpeg", headers=headers)
