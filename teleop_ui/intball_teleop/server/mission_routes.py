"""Mission YAML (``intball_nav.mission`` format) to the route editor's waypoints and back."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from aiohttp import web

from .. import commands as C
from .common import STACK, error, json_body, need


async def mission_parse(request: web.Request) -> web.Response:
    """Mission YAML (intball_nav.mission format) -> waypoints, validated by load_mission."""
    need(request)
    body = await json_body(request)
    text = body.get("yaml")
    if not isinstance(text, str):
        return error(400, "yaml: expected the mission file as a string")
    from intball_nav.frames import rpy_from_quat
    from intball_nav.mission import MissionError, load_mission

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="mission-") as f:
        f.write(text)
        f.flush()
        try:
            mission = load_mission(f.name)
        except MissionError as exc:
            return error(
                400, str(exc).replace(f.name, "mission.yaml").replace(Path(f.name).name, "mission.yaml")
            )
        except Exception as exc:  # yaml errors etc.
            return error(400, f"mission.yaml: {exc}".replace(f.name, "mission.yaml"))
    if len(mission.waypoints) > C.MAX_ROUTE_WAYPOINTS:
        return error(
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
    need(request)
    body = await json_body(request)
    waypoints = body.get("waypoints")
    start = body.get("start")
    if not isinstance(waypoints, list) or not 1 <= len(waypoints) <= C.MAX_ROUTE_WAYPOINTS:
        return error(400, f"waypoints: expected 1 .. {C.MAX_ROUTE_WAYPOINTS} waypoints")
    ws = request.app[STACK].ground.workspace
    out = []
    for i, w in enumerate([start, *waypoints]):
        field = "start" if i == 0 else f"waypoints[{i - 1}]"
        if not isinstance(w, dict):
            return error(400, f"{field}: expected an object")
        try:
            C.validate(C.GOAL, {k: v for k, v in w.items() if k != "hold_s"}, ws)
        except C.CommandError as exc:
            return error(400, f"{field}: {exc}")
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
