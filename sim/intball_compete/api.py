"""Behavior API v1: what a competition behavior sees (runs in the sandboxed child process).

A behavior is a ``behavior.py`` defining ``run(api)`` (blocking style, Kibo-RPC) or
``on_step(obs)`` (loop style, Zero Robotics; optional ``STEP_HZ``, default 2 Hz). Every call is a
request over the channel to the simulator in the parent process; nothing here imports the
simulator. Sim time advances only inside calls that move the robot (``move_to``, ``move_relative``,
``look_at``, ``wait``, ``step``); computing between calls costs wall time, bounded by the sandbox.

Frames and units (docs/conventions.md): positions (3,) m in the ``kibo`` frame, quaternions (4,)
``(x, y, z, w)`` = q_kibo_body, angles in radians unless the name ends in ``_deg``.

Stable contract: ``API_VERSION = 1``. New calls may be added to v1; existing calls keep their
signatures and meaning. A breaking change makes ``API_VERSION = 2`` with v1 kept beside it.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from intball_compete import channel

API_VERSION = 1
MAX_IMAGE_BYTES = 640 * 480 * 3
"""Largest blob the simulator may send (one RGB main-camera image)."""


class MissionOver(Exception):  # noqa: N818 - a state, not an error of the behavior
    """The mission ended (time limit, or ``finish`` was called): the behavior should return."""


class ApiError(Exception):
    """A call the simulator refused (unknown target id, call before ``start_mission``, ...)."""


class RateLimited(ApiError):
    """An image request (``main_image``, ``nav_image``, ``snapshot``) over the per-run image rate:
    10 at once, then one per 2 s of sim time (docs/compete.md). Nothing was rendered or recorded;
    move or ``wait`` and try again."""


ACTION_ITEMS_MAX = 64
"""Most items in any list or object of loop-style actions (a goal has 7, a report 5)."""
ACTION_DEPTH_MAX = 4
"""Deepest nesting of loop-style actions (``{"report": {id: value}}`` is 2)."""


def _jsonable(value: Any, where: str, depth: int = 0) -> Any:
    """``value`` (loop-style actions) as plain JSON types: numpy arrays and scalars become lists and
    numbers, tuples lists, int keys text, non-finite floats ``"nan"`` / ``"inf"`` (JSON has no NaN;
    the simulator names them in its refusal). ApiError naming the place (``actions['goal'][1]``)
    for anything else, more than ACTION_ITEMS_MAX items or deeper than ACTION_DEPTH_MAX."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if depth >= ACTION_DEPTH_MAX and isinstance(value, list | tuple | dict | np.ndarray):
        raise ApiError(f"{where} is nested deeper than {ACTION_DEPTH_MAX} levels")
    if isinstance(value, np.ndarray):
        value = value.tolist() if value.size <= ACTION_ITEMS_MAX else value.reshape(-1)
    if isinstance(value, list | tuple | np.ndarray | dict) and len(value) > ACTION_ITEMS_MAX:
        raise ApiError(f"{where} has {len(value)} items; at most {ACTION_ITEMS_MAX} in any list or object")
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, bool) or not isinstance(k, str | int | np.integer):
                raise ApiError(f"{where} has the key {k!r:.60}; keys must be text or integers")
            out[str(int(k)) if not isinstance(k, str) else k] = _jsonable(v, f"{where}[{k!r}]", depth + 1)
        return out
    raise ApiError(
        f"{where} has type {type(value).__name__} ({value!r:.60}), not JSON: "
        "use numbers, text, lists, dicts and None"
    )


@dataclass(frozen=True)
class State:
    """Estimated robot state (never ground truth).

    position : (3,) m, kibo; quat : (4,) xyzw q_kibo_body; velocity : (3,) m/s, kibo;
    angular_velocity : (3,) rad/s, body; t : s, mission time (0 at ``start_mission``)
    """

    position: np.ndarray
    quat: np.ndarray
    velocity: np.ndarray
    angular_velocity: np.ndarray
    t: float


@dataclass(frozen=True)
class MoveResult:
    """Outcome of a motion call. success : arrived (or the call did what it says);
    reason : why not (or a summary); state : estimated state after the call."""

    success: bool
    reason: str
    state: State


@dataclass(frozen=True)
class Target:
    """An active target. id : target number of this mission (1..N); area : rack bay name
    (``port_3``); approx_position : (3,) m, kibo, centre of that bay on the rack face (the
    panel is somewhere on the bay); normal : (3,) unit vector, the bay normal into the cabin;
    kind : ``qr`` or ``aruco``."""

    id: int
    area: str
    approx_position: np.ndarray
    normal: np.ndarray
    kind: str


@dataclass(frozen=True)
class MissionInfo:
    """What ``start_mission`` returns.

    mission : scenario id (``kibo-targets-v2``); seed : scenario seed; time_limit_s : s;
    targets : active targets; keep_in : (min (3,), max (3,)) m, clear volume for the robot
    centre; keep_out : [(name, min (3,), max (3,))] m boxes the robot (radius ``robot_radius``)
    must not touch; cameras : {name: {width, height, K (3x3), T_base_cam (position, quat)}}
    """

    mission: str
    seed: int
    time_limit_s: float
    targets: tuple[Target, ...]
    keep_in: tuple[np.ndarray, np.ndarray]
    keep_out: tuple[tuple[str, np.ndarray, np.ndarray], ...]
    robot_radius: float
    cameras: dict[str, Any] = field(default_factory=dict)
    localization: str = ""


def _state(d: dict[str, Any]) -> State:
    return State(
        np.array(d["position"], float),
        np.array(d["quat"], float),
        np.array(d["velocity"], float),
        np.array(d["angular_velocity"], float),
        float(d["t"]),
    )


def _vector(value: Any, n: int, what: str) -> list[float | str]:
    """A list of n numbers for JSON: finite floats, and non-finite ones as ``"nan"`` / ``"inf"``
    (JSON has no NaN; the simulator names non-finite input in its reply)."""
    try:
        arr = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ApiError(f"{what} must be {n} numbers, got {value!r}") from None
    if arr.shape != (n,):
        raise ApiError(f"{what} must be {n} numbers, got shape {np.shape(value)}")
    return [v if math.isfinite(v) else str(v) for v in arr.tolist()]


class Api:
    """The blocking behavior API (one instance per run, made by the child runtime)."""

    api_version = API_VERSION

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._info: MissionInfo | None = None

    # ------------------------------------------------------------------ transport
    def _call(self, op: str, **args: Any) -> tuple[dict[str, Any], bytes]:
        try:
            channel.send(self._sock, {"op": op, "args": args})
        except channel.ProtocolError as exc:  # raised before anything is sent: the channel is intact
            raise ApiError(f"{op} request not sent: {exc}") from None
        reply, blob = channel.recv(self._sock, max_blob=MAX_IMAGE_BYTES)
        if reply.get("over"):
            raise MissionOver(reply.get("error", "mission over"))
        if not reply.get("ok", False):
            error = RateLimited if reply.get("limit") == "image_rate" else ApiError
            raise error(str(reply.get("error", "refused")))
        return reply, blob

    def _move(self, op: str, **args: Any) -> MoveResult:
        reply, _ = self._call(op, **args)
        return MoveResult(bool(reply["success"]), str(reply["reason"]), _state(reply["state"]))

    # ------------------------------------------------------------------ mission
    def start_mission(self) -> MissionInfo:
        """Start the mission clock; returns the mission description (targets, zones, cameras)."""
        reply, _ = self._call("start_mission", api_version=API_VERSION)
        m = reply["mission"]
        targets = tuple(
            Target(int(t["id"]), t["area"], np.array(t["approx_position"]), np.array(t["normal"]), t["kind"])
            for t in m["targets"]
        )
        self._info = MissionInfo(
            mission=m["mission"],
            seed=int(m["seed"]),
            time_limit_s=float(m["time_limit_s"]),
            targets=targets,
            keep_in=(np.array(m["keep_in"][0]), np.array(m["keep_in"][1])),
            keep_out=tuple((z["name"], np.array(z["min"]), np.array(z["max"])) for z in m["keep_out"]),
            robot_radius=float(m["robot_radius"]),
            cameras={k: {**v, "K": np.array(v["K"]).reshape(3, 3)} for k, v in m.get("cameras", {}).items()},
            localization=m.get("localization", ""),
        )
        return self._info

    @property
    def mission(self) -> MissionInfo:
        """The description returned by ``start_mission`` (ApiError before it)."""
        if self._info is None:
            raise ApiError("call start_mission() first")
        return self._info

    def active_targets(self) -> list[Target]:
        """Targets not yet reported (ids and approximate areas, never exact poses)."""
        reply, _ = self._call("active_targets")
        ids = set(reply["ids"])
        return [t for t in self.mission.targets if t.id in ids]

    def time_remaining(self) -> float:
        """s of mission time left."""
        reply, _ = self._call("time")
        return float(reply["remaining"])

    def finish(self) -> None:
        """End the mission now (the remaining time counts toward the time bonus)."""
        self._call("finish")

    # ------------------------------------------------------------------ motion
    def get_state(self) -> State:
        """Estimated state (localization mode of the mission: truth-noise or vision)."""
        reply, _ = self._call("state")
        return _state(reply["state"])

    def get_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Estimated (position (3,) m kibo, quat (4,) xyzw)."""
        s = self.get_state()
        return s.position, s.quat

    def move_to(
        self, position: Any, quat: Any = None, *, look_at: Any = None, mode: str = "nominal"
    ) -> MoveResult:
        """Fly to a pose and wait for arrival (or refusal, or a timeout).

        position : (3,) m, kibo; quat : (4,) xyzw, None = keep the current attitude;
        look_at : (3,) m, kibo, instead of quat: arrive with the main camera pointed at this point
        (image up toward +z kibo); mode : flight mode ``nominal`` | ``precision`` | ``quiet``.
        Refused (success False, reason says why) when the goal is outside keep-in, inside or
        within the robot radius of a keep-out zone, or the straight path crosses one.
        """
        q = None if quat is None else _vector(quat, 4, "quat")
        aim = None if look_at is None else _vector(look_at, 3, "look_at")
        return self._move(
            "move_to", position=_vector(position, 3, "position"), quat=q, look_at=aim, mode=mode
        )

    def move_relative(
        self,
        translation: Any,
        rotation_deg: Any = (0.0, 0.0, 0.0),
        *,
        frame: str = "body",
        mode: str = "nominal",
    ) -> MoveResult:
        """Move by ``translation`` (3,) m and rotate by roll/pitch/yaw ``rotation_deg`` (3,) deg,
        both in ``frame`` ``body`` (the current estimated attitude) or ``kibo``."""
        return self._move(
            "move_relative",
            translation=_vector(translation, 3, "translation"),
            rotation_deg=_vector(rotation_deg, 3, "rotation_deg"),
            frame=frame,
            mode=mode,
        )

    def look_at(self, point: Any, *, camera: str = "main") -> MoveResult:
        """Turn in place until the camera's optical axis passes through ``point`` (3,) m, kibo."""
        return self._move("look_at", point=_vector(point, 3, "point"), camera=camera)

    def wait(self, seconds: float) -> State:
        """Hold the current goal for ``seconds`` of sim time."""
        reply, _ = self._call("wait", seconds=float(seconds))
        return _state(reply["state"])

    # ------------------------------------------------------------------ cameras
    def _image(self, op: str, **args: Any) -> np.ndarray:
        reply, blob = self._call(op, **args)
        img = np.frombuffer(blob, dtype=np.dtype(reply["dtype"])).reshape(reply["shape"])
        return img.copy()

    def main_image(self) -> np.ndarray:
        """Main (front) camera: (480, 640, 3) uint8 RGB, rendered at the current sim time."""
        return self._image("image", camera="main")

    def nav_image(self) -> np.ndarray:
        """Navigation (rear, left) camera: (240, 320, 3) uint8 RGB."""
        return self._image("image", camera="nav_left")

    def snapshot(self, target_id: int) -> np.ndarray:
        """Take a main-camera picture of ``target_id`` now and return it ((480, 640, 3) uint8 RGB).

        Scored by ``score-v2`` (mission ``kibo-targets-v2``; not by ``score-v1``): the simulator
        judges, from the true pose at this moment, whether the whole code is in the image with
        nothing in the way, how far it is and how far off the optical axis and off its normal it
        is seen (docs/compete.md); the best snapshot per target counts, no feedback on quality."""
        return self._image("snapshot", target_id=int(target_id))

    # ------------------------------------------------------------------ scoring actions
    def aim(self, target_id: int) -> bool:
        """Fire the pointer (the 'laser') along the main camera axis at ``target_id`` now; the
        scorer measures how close the axis passes to the target centre (best aim per target
        counts). No feedback on accuracy. Returns True when accepted."""
        reply, _ = self._call("aim", target_id=int(target_id))
        return bool(reply["accepted"])

    def report_target(self, target_id: int, value: str | int) -> bool:
        """Report what a target says: the QR text, or the ArUco id. The last report per target
        counts; no feedback on correctness. Returns True when accepted."""
        if isinstance(value, bool) or not isinstance(value, str | int | np.integer):
            raise ApiError(f"report value must be text or an int id, got {value!r}")
        v = int(value) if isinstance(value, int | np.integer) else value
        reply, _ = self._call("report", target_id=int(target_id), value=v)
        return bool(reply["accepted"])

    # ------------------------------------------------------------------ loop style
    def step(self, dt: float, actions: dict[str, Any] | None = None) -> dict[str, Any]:
        """Apply loop-style actions and advance ``dt`` s: the runtime of ``on_step`` behaviors.

        actions : {"goal": [x, y, z] or [x, y, z, qx, qy, qz, qw], "aim": id, "snapshot": id
        (recorded and scored like :meth:`snapshot`, no image returned), "report": {id: value},
        "finish": bool}; returns the next observation dict
        (``t``, ``time_remaining``, ``state``, ``goal_status``, ``goal_message``, ``active_targets``,
        ``events``, ``done``, ``targets`` (approximate areas), ``keep_out``). numpy arrays and
        scalars in ``actions`` are converted; other objects that are not JSON, more than
        ACTION_ITEMS_MAX items in a list or nesting deeper than ACTION_DEPTH_MAX raise ApiError.
        """
        if actions is not None and not isinstance(actions, dict):
            raise ApiError(f"actions must be a dict or None, got {type(actions).__name__}")
        plain = _jsonable(actions or {}, "actions")
        reply, _ = self._call("step", dt=float(dt), actions=plain)
        obs = reply["observation"]
        obs["state"] = _state(obs["state"])
        return obs
