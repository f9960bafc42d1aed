"""OpenAPI 3.1 description of the ground station's HTTP API (served at /api/openapi.json).

tests/test_ui_server.py checks that every route of the app is described here and that
every ``$ref`` resolves. The WebSocket events are described in docs/ui.md.
"""

from __future__ import annotations

from typing import Any

from .. import commands as C


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERR = {
    "400": _json(_ref("Error"), "bad input; the message names the field and the problem"),
    "401": _json(_ref("Error"), "not logged in"),
}
CONTROL_ERR = {
    **ERR,
    "403": _json(_ref("Error"), "observer, or another session holds control"),
    "429": _json(_ref("Error"), "rate limit"),
}


def _op(
    summary: str, responses: dict[str, Any], body: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


_vec3 = {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Int-Ball ground station API",
        "version": "1.0.0",
        "description": (
            "Everything the console does goes through this API (scripts: log in, keep the "
            "cookie). Commands travel over the emulated space-to-ground link; a 202 answer "
            "means queued on the ground, not executed: follow the command's state "
            "(GET /api/commands/{id} or the WebSocket). Positions m, kibo frame."
        ),
    },
    "components": {
        "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "intball_session"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Session": {
                "type": "object",
                "properties": {
                    "logged_in": {"type": "boolean"},
                    "user": {"type": ["string", "null"]},
                    "role": {"enum": ["operator", "observer", None]},
                    "in_control": {"type": "boolean"},
                    "controller": {"type": ["string", "null"]},
                },
            },
            "Login": {
                "type": "object",
                "description": "either user + password (credentials file) or token (one-run demo token)",
                "properties": {
                    "user": {"type": "string"},
                    "password": {"type": "string"},
                    "token": {"type": "string"},
                },
            },
            "Goal": {
                "type": "object",
                "required": ["position"],
                "properties": {
                    "position": _vec3,
                    "rpy_deg": _vec3,
                    "quat": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
                    "flight_mode": {"enum": list(C.FLIGHT_MODES)},
                    "append": {"type": "boolean", "description": "queue after the current motion"},
                    "label": {"type": "string", "maxLength": 64},
                },
                "additionalProperties": False,
            },
            "RouteWaypoint": {
                "type": "object",
                "required": ["position"],
                "properties": {
                    "position": {**_vec3, "description": "m, kibo; inside keep-in, outside keep-out zones"},
                    "rpy_deg": _vec3,
                    "quat": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
                    "hold_s": {"type": "number", "minimum": 0, "maximum": C.MAX_HOLD_S, "description": "s"},
                },
                "additionalProperties": False,
            },
            "Route": {
                "type": "object",
                "description": "payload of a route command: flown in order as one command (FollowRoute)",
                "required": ["waypoints"],
                "properties": {
                    "waypoints": {
                        "type": "array",
                        "items": _ref("RouteWaypoint"),
                        "minItems": 1,
                        "maxItems": C.MAX_ROUTE_WAYPOINTS,
                    },
                    "flight_mode": {"enum": list(C.FLIGHT_MODES)},
                    "label": {"type": "string", "maxLength": 64},
                },
                "additionalProperties": False,
            },
            "KeepOutBox": {
                "type": "object",
                "description": "payload of keep_out_add: a box (m, kibo) inside the module, min < max",
                "required": ["name", "min", "max"],
                "properties": {
                    "name": {"type": "string", "pattern": C.ZONE_NAME_RE.pattern},
                    "min": _vec3,
                    "max": _vec3,
                },
                "additionalProperties": False,
            },
            "CommandRequest": {
                "type": "object",
                "required": ["kind"],
                "properties": {
                    "kind": {"enum": list(C.KINDS)},
                    "payload": {
                        "type": "object",
                        "description": (
                            "goal: Goal; route: Route; route_pause, route_resume: {} (the route being "
                            "flown); keep_out_add: KeepOutBox; keep_out_remove: {name}; file_resend: "
                            "{id, chunks} (sent by the ground station itself for missing file chunks); "
                            "jog: {delta: [dx, dy, dz] m (<= 0.25 m), dyaw_deg (<= 20), "
                            "lifetime_s (0.2 .. 3)}; camera_stream: {camera: main|nav_left|nav_right, "
                            "rate_hz 0 .. 5}; camera_task: {task: snapshot|look_at|inspect|survey|record|"
                            "read_codes, "
                            "point (look_at), bay (inspect, survey face), duration_s (record)}; "
                            "stop, station_keep, dock, undock, resume: {}"
                        ),
                    },
                },
            },
            "Command": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "seq": {"type": "integer"},
                    "kind": {"type": "string"},
                    "payload": {"type": "object"},
                    "state": {
                        "enum": [
                            "queued",
                            "sent",
                            "received",
                            "executing",
                            "completed",
                            "failed",
                            "rejected",
                            "expired",
                            "cancelled",
                        ]
                    },
                    "reason": {"type": "string"},
                    "user": {"type": ["string", "null"]},
                    "issued": {"type": "number"},
                    "expires": {"type": "number"},
                    "sends": {"type": "integer"},
                    "history": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "t": {"type": "number"},
                                "state": {"type": "string"},
                                "reason": {"type": "string"},
                            },
                        },
                    },
                },
            },
            "Alert": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "kind": {"type": "string"},
                    "message": {"type": "string"},
                    "raised": {"type": "number"},
                    "active": {"type": "boolean"},
                    "acknowledged_by": {"type": ["string", "null"]},
                    "acknowledged_at": {"type": ["number", "null"]},
                },
            },
            "File": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "command": {"type": ["string", "null"], "description": "the camera_task command"},
                    "bytes": {"type": "integer"},
                    "sha256": {
                        "type": "string",
                        "description": "hex SHA-256 of the file as sent by the robot ('' before a chunk)",
                    },
                    "chunks": {"type": "integer"},
                    "received": {"type": "integer"},
                    "state": {"enum": ["receiving", "complete", "failed"]},
                    "reason": {"type": "string"},
                    "resends": {"type": "integer"},
                    "first_seen": {"type": "number"},
                    "completed": {"type": ["number", "null"]},
                },
            },
            "Link": {
                "type": "object",
                "description": "AOS/LOS, rtt_s, losses, time_to_next_los_s, profile, ...",
            },
            "State": {
                "type": "object",
                "description": (
                    "telemetry (with route: {command, index, n, paused, suspended, waypoint, label} "
                    "or null, keep_out: [{name, min, max, fixed}]), predicted, link, commands, "
                    "alerts, cameras"
                ),
            },
        },
    },
    "security": [{"session": []}],
    "paths": {
        "/": {"get": _op("the console (HTML)", {"200": {"description": "HTML"}}, security=[])},
        "/api/openapi.json": {"get": _op("this document", {"200": _json({"type": "object"})}, security=[])},
        "/api/login": {
            "post": _op(
                "log in; sets the session cookie",
                {"200": _json(_ref("Session")), "401": _json(_ref("Error")), "429": _json(_ref("Error"))},
                _ref("Login"),
                security=[],
            )
        },
        "/api/logout": {"post": _op("log out (releases control)", {"200": _json({"type": "object"})})},
        "/api/session": {
            "get": _op("who am I, who holds control", {"200": _json(_ref("Session"))}, security=[])
        },
        "/api/control/take": {
            "post": _op(
                "take control (operators); force takes it from another session",
                {
                    "200": _json(_ref("Session")),
                    "409": _json(_ref("Error")),
                    **ERR,
                    "403": _json(_ref("Error")),
                },
                {"type": "object", "properties": {"force": {"type": "boolean"}}},
            )
        },
        "/api/control/release": {"post": _op("release control", {"200": _json(_ref("Session")), **ERR})},
        "/api/state": {
            "get": _op("snapshot of everything the console shows", {"200": _json(_ref("State")), **ERR})
        },
        "/api/module": {
            "get": _op(
                "module geometry for the 3D view (kibo frame, m)", {"200": _json({"type": "object"}), **ERR}
            )
        },
        "/api/link": {"get": _op("link state", {"200": _json(_ref("Link")), **ERR})},
        "/api/link/los": {
            "post": _op(
                "LOS drill: schedule an extra loss-of-signal window (holder of control)",
                {"200": _json({"type": "object"}), **CONTROL_ERR},
                {
                    "type": "object",
                    "properties": {"start_in_s": {"type": "number"}, "duration_s": {"type": "number"}},
                },
            )
        },
        "/api/check_goal": {
            "post": _op(
                "would this goal be accepted (keep-in, keep-out, finite numbers)?",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"ok": {"type": "boolean"}, "reason": {"type": "string"}},
                        }
                    ),
                    **ERR,
                },
                _ref("Goal"),
            )
        },
        "/api/commands": {
            "get": _op("command queue and history (newest last)", {"200": _json({"type": "object"}), **ERR}),
            "post": _op(
                "queue a command (holder of control)",
                {"202": _json({"type": "object", "properties": {"command": _ref("Command")}}), **CONTROL_ERR},
                _ref("CommandRequest"),
            ),
        },
        "/api/commands/{id}": {
            "get": _op(
                "one command",
                {"200": _json({"type": "object"}), "404": _json(_ref("Error")), **ERR},
                parameters=[_ID],
            )
        },
        "/api/commands/cancel_pending": {
            "post": _op("cancel commands not sent yet", {"200": _json({"type": "object"}), **CONTROL_ERR})
        },
        "/api/emergency_stop": {
            "post": _op(
                "emergency stop, with priority (any logged-in session)",
                {"202": _json({"type": "object"}), **ERR},
            )
        },
        "/api/route": {
            "post": _op(
                f"fly a route of 1 .. {C.MAX_ROUTE_WAYPOINTS} waypoints as ONE route command (holder of "
                "control); same as POST /api/commands {kind: route, payload}; replaces the current motion; "
                "pause / resume: kinds route_pause / route_resume; progress: telemetry.route",
                {"202": _json({"type": "object", "properties": {"command": _ref("Command")}}), **CONTROL_ERR},
                _ref("Route"),
            )
        },
        "/api/alerts": {
            "get": _op("alerts (kept until acknowledged)", {"200": _json({"type": "object"}), **ERR})
        },
        "/api/alerts/{id}/ack": {
            "post": _op(
                "acknowledge an alert",
                {
                    "200": _json({"type": "object", "properties": {"alert": _ref("Alert")}}),
                    "404": _json(_ref("Error")),
                    **ERR,
                },
                parameters=[_ID],
            )
        },
        "/api/camera/{camera}.jpg": {
            "get": _op(
                "latest downlinked frame (JPEG); ?download=1 for a snapshot file",
                {
                    "200": {"description": "JPEG", "content": {"image/jpeg": {}}},
                    "404": _json(_ref("Error")),
                    **ERR,
                },
                parameters=[
                    {"name": "camera", "in": "path", "required": True, "schema": {"enum": list(C.CAMERAS)}}
                ],
            )
        },
        "/api/files": {
            "get": _op(
                "camera-task files downlinked (or being downlinked) from the robot",
                {
                    "200": _json(
                        {"type": "object", "properties": {"files": {"type": "array", "items": _ref("File")}}}
                    ),
                    **ERR,
                },
            )
        },
        "/api/files/{id}": {
            "get": _op(
                "a downlinked file (JPEG, attachment) once complete and verified",
                {
                    "200": {"description": "JPEG", "content": {"image/jpeg": {}}},
                    "404": _json(_ref("Error")),
                    "409": _json(_ref("Error"), "not complete (yet): receiving or failed, with the reason"),
                    **ERR,
                },
                parameters=[_ID],
            )
        },
        "/api/mission/parse": {
            "post": _op(
                "mission YAML -> route (validated like intball sim)",
                {"200": _json({"type": "object"}), **ERR},
                {"type": "object", "required": ["yaml"], "properties": {"yaml": {"type": "string"}}},
            )
        },
        "/api/mission/export": {
            "post": _op(
                "route -> mission YAML",
                {"200": _json({"type": "object"}), **ERR},
                {
                    "type": "object",
                    "required": ["start", "waypoints"],
                    "properties": {
                        "name": {"type": "string"},
                        "start": _ref("Goal"),
                        "waypoints": {"type": "array", "items": _ref("Goal")},
                    },
                },
            )
        },
        "/api/ws": {
            "get": _op(
                "WebSocket of events (hello, telemetry, command, link, alerts, camera, control); "
                "same-origin only; see docs/ui.md",
                {
                    "101": {"description": "switching protocols"},
                    "401": _json(_ref("Error")),
                    "403": _json(_ref("Error")),
                },
            )
        },
    },
}
