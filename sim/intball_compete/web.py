"""HTTP API of the competition: an aiohttp sub-application the ground station mounts.

    app.add_subapp("/api/compete", create_app(store, evaluator))

Routes (JSON unless stated; errors are ``{"error": reason}`` with 400 / 404 / 413):

| method, path | what |
| --- | --- |
| GET ``/missions`` | mission ids, time limits, scoring rules and their terms, which one is the default |
| POST ``/submissions`` | multipart: ``file`` (.py/.zip), ``name``, ``mission``, ``seeds``, ``localization`` |
| GET ``/submissions[?mission=ID]`` | all submissions with state and run counts |
| GET ``/submissions/{id}`` | one submission, its runs (status, total, per-term scores) and the mean |
| GET ``/submissions/{id}/runs/{seed}`` | one run: status, reason, terms, per-target details, measures |
| GET ``/submissions/{id}/runs/{seed}/log`` | the participant's output (text/plain, head only) |
| GET ``/submissions/{id}/runs/{seed}/trajectory`` | replay: columns, rows (t, true pose, estimate) at 5 Hz |
| GET ``/leaderboard/{mission}`` | scored submissions ranked by mean total within a scoring rule |

Uploads are checked (:func:`intball_compete.upload.unpack`) before they are stored. Blocking
store calls run in the default executor so the server's event loop never waits on SQLite.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from aiohttp import BodyPartReader, web

from intball_compete.missions import DEFAULT_MISSION, MISSION_IDS, MISSIONS
from intball_compete.scoring import RULES
from intball_compete.service import Evaluator
from intball_compete.store import Store
from intball_compete.upload import MAX_UPLOAD_BYTES, UploadRejected, unpack

STORE_KEY = web.AppKey("compete_store", Store)
EVALUATOR_KEY = web.AppKey("compete_evaluator", Evaluator)
MAX_SEEDS = 50
LOCALIZATIONS = ("truth-noise", "vision")


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))


def _int(request: web.Request, key: str) -> int:
    try:
        return int(request.match_info[key])
    except ValueError:
        raise web.HTTPBadRequest(
            text=f'{{"error": "{key} must be an integer"}}', content_type="application/json"
        ) from None


async def missions(request: web.Request) -> web.Response:
    return web.json_response(
        [
            {
                "id": m.id,
                "time_limit_s": m.time_limit_s,
                "scoring": m.scoring,
                "terms": list(RULES[m.scoring]),
                "default": m.id == DEFAULT_MISSION,
            }
            for m in MISSIONS.values()
        ]
    )


async def upload(request: web.Request) -> web.Response:
    if not request.content_type.startswith("multipart/"):
        return _error(400, "send multipart/form-data with a 'file' field")
    fields: dict[str, str] = {}
    filename, content = None, None
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            return _error(400, "nested multipart parts are not accepted")
        if part.name == "file":
            filename = part.filename or ""
            buf = bytearray()
            while chunk := await part.read_chunk(65536):
                buf += chunk
                if len(buf) > MAX_UPLOAD_BYTES:
                    return _error(413, f"upload exceeds {MAX_UPLOAD_BYTES} bytes")
            content = bytes(buf)
        elif part.name in ("name", "mission", "seeds", "localization"):
            value = await part.text()
            if len(value) > 200:
                return _error(400, f"field {part.name} is too long")
            fields[part.name] = value
        else:
            return _error(
                400, f"unknown form field {part.name!r}; allowed: file, name, mission, seeds, localization"
            )
    if content is None or filename is None:
        return _error(400, "missing the 'file' field")
    mission = fields.get("mission", DEFAULT_MISSION)
    if mission not in MISSION_IDS:
        return _error(400, f"unknown mission {mission!r}; known: {', '.join(MISSION_IDS)}")
    try:
        seeds = int(fields.get("seeds", "10"))
    except ValueError:
        return _error(400, f"seeds must be an integer, got {fields.get('seeds')!r}")
    if not 1 <= seeds <= MAX_SEEDS:
        return _error(400, f"seeds {seeds} out of range [1, {MAX_SEEDS}]")
    localization = fields.get("localization", "truth-noise")
    if localization not in LOCALIZATIONS:
        return _error(400, f"localization {localization!r} not allowed; allowed: {', '.join(LOCALIZATIONS)}")
    name = fields.get("name", "").strip() or filename
    try:
        await _call(unpack, filename, content)
    except UploadRejected as exc:
        return _error(400, f"upload rejected: {exc}")
    store = request.app[STORE_KEY]
    sid = await _call(store.add_submission, name, mission, filename, content, seeds, localization)
    request.app[EVALUATOR_KEY].wake()
    return web.json_response({"id": sid, "runs": seeds, "state": "queued"}, status=201)


async def list_submissions(request: web.Request) -> web.Response:
    mission = request.query.get("mission")
    return web.json_response(await _call(request.app[STORE_KEY].submissions, mission))


async def get_submission(request: web.Request) -> web.Response:
    sid = _int(request, "id")
    store = request.app[STORE_KEY]
    sub = await _call(store.submission, sid)
    if sub is None:
        return _error(404, f"no submission {sid}")
    sub["run_list"] = await _call(store.runs, sid)
    return web.json_response(sub)


async def _run(request: web.Request, trajectory: bool = False) -> dict[str, Any] | web.Response:
    sid, seed = _int(request, "id"), _int(request, "seed")
    run = await _call(request.app[STORE_KEY].run, sid, seed, with_trajectory=trajectory)
    if run is None:
        return _error(404, f"no run with seed {seed} for submission {sid}")
    return run  # type: ignore[no-any-return]


async def get_run(request: web.Request) -> web.Response:
    run = await _run(request)
    if isinstance(run, web.Response):
        return run
    run.pop("log", None)
    return web.json_response(run)


async def get_log(request: web.Request) -> web.Response:
    run = await _run(request)
    if isinstance(run, web.Response):
        return run
    return web.Response(text=run.get("log") or "", content_type="text/plain")


async def get_trajectory(request: web.Request) -> web.Response:
    run = await _run(request, trajectory=True)
    if isinstance(run, web.Response):
        return run
    columns = (run.get("result") or {}).get("measures", {}).get("trajectory_columns")
    return web.json_response({"state": run["state"], "columns": columns, "rows": run.get("trajectory") or []})


async def leaderboard(request: web.Request) -> web.Response:
    mission = request.match_info["mission"]
    if mission not in MISSION_IDS:
        return _error(404, f"unknown mission {mission!r}; known: {', '.join(MISSION_IDS)}")
    return web.json_response(await _call(request.app[STORE_KEY].leaderboard, mission))


def create_app(store: Store, evaluator: Evaluator) -> web.Application:
    """The competition API as a sub-application (mount it under ``/api/compete``)."""
    app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 64 * 1024)
    app[STORE_KEY] = store
    app[EVALUATOR_KEY] = evaluator
    app.router.add_get("/missions", missions)
    app.router.add_post("/submissions", upload)
    app.router.add_get("/submissions", list_submissions)
    app.router.add_get("/submissions/{id}", get_submission)
    app.router.add_get("/submissions/{id}/runs/{seed}", get_run)
    app.router.add_get("/submissions/{id}/runs/{seed}/log", get_log)
    app.router.add_get("/submissions/{id}/runs/{seed}/trajectory", get_trajectory)
    app.router.add_get("/leaderboard/{mission}", leaderboard)
    return app
