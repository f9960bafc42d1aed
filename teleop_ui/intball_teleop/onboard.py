"""Onboard end of the link: the robot's side of the ground station.

``OnboardBridge`` receives uplink bytes from the link, passes them through the
:class:`~intball_teleop.link.protocol.CommandGate` (HMAC, at most once, expiry), executes
accepted commands against a :class:`RobotBackend` (the ROS graph through
``intball_ros.nodes.bridge_node``, or the kinematic stand-in of ``kinematic.py``), reports
their progress as signed acks, and sends telemetry and camera frames down at limited rates.
The LOS supervisor runs here, on ground-contact age alone: the robot's safety never waits
for the ground.

Nothing here touches ROS; the backend is the only door to the robot. Downlink messages:
JSON objects (``"t": "ack"`` from the gate, ``"t": "tm"`` telemetry) or a camera frame
(``CAMERA_MAGIC`` + 2-byte big-endian header length + JSON header + JPEG bytes) or a chunk of
a camera-task file (``files.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from intball_nav.frames import quat_from_rpy, quat_multiply
from intball_nav.safety import Box

from . import commands as C
from .files import IMAGE_SUFFIXES, MAX_FILE_BYTES, FileSender, jpeg_capped
from .link.protocol import AckState, Command, CommandGate, Outcome
from .link.runtime import LinkEnd, detach, run_every
from .link.supervisor import SafetyAction, SupervisorConfig, SupervisorState, supervise

log = logging.getLogger(__name__)

Waypoint = tuple[np.ndarray, np.ndarray, float]  # position (3,) m kibo, quat (4,) xyzw, hold s
Done = Callable[[bool, str], None]  # (ok, reason) of a request answered later

CAMERA_MAGIC = b"JPG1"
_HLEN = struct.Struct(">H")
DOCKED_RPY_DEG = (0.0, 90.0, 0.0)  # robot back (-x body) toward the dock (see examples/tour.yaml)


def encode_camera_frame(header: dict, jpeg: bytes) -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    return CAMERA_MAGIC + _HLEN.pack(len(h)) + h + jpeg


def decode_camera_frame(data: bytes) -> tuple[dict, bytes]:
    """(header, jpeg) of a camera frame; ValueError if it is not one."""
    if not data.startswith(CAMERA_MAGIC) or len(data) < 6:
        raise ValueError("not a camera frame")
    (n,) = _HLEN.unpack_from(data, 4)
    return json.loads(data[6 : 6 + n]), data[6 + n :]


class RobotBackend(Protocol):
    """What the onboard bridge needs from the robot. Positions m, kibo frame; quat xyzw."""

    source: str  # "ros" (the graph's state estimate) or "kinematic" (stand-in, no dynamics)

    def telemetry(self) -> dict[str, Any] | None:
        """Latest estimate and status (keys: pose, velocity, angular_velocity, localization,
        battery, fan_effort, guidance, mode, faults); None before the first estimate."""

    def go_to(self, position: np.ndarray, quat: np.ndarray, flight_mode: str) -> None:
        """Start flying to a pose (replaces any previous goal). Raises CommandError if refused."""

    def motion(self) -> tuple[str, str]:
        """State of the last go_to: ("moving" | "arrived" | "failed" | "paused" | "idle", reason)."""

    def hold(self) -> None:
        """Station-keep the current estimated pose."""

    def emergency_stop(self) -> None:
        """Stop now (the backend's safest stop)."""

    def camera_jpeg(self, camera: str) -> tuple[bytes, float] | None:
        """Latest frame of a camera as JPEG and its stamp (s), or None. Called from a worker
        thread (encoding stays off the event loop): read shared state under a lock or atomically."""

    def follow_route(self, waypoints: list[Waypoint], flight_mode: str) -> bool:
        """Start flying waypoints in order (replaces any motion), holding at each for its hold
        time; False if this robot cannot fly routes. The end shows in ``motion()``: "arrived"
        after the last hold, "failed" with the reason."""

    def route_progress(self) -> tuple[int, bool] | None:
        """(index of the waypoint being flown to or held at, paused) of the route started last
        by follow_route; None when no route runs (finished, replaced, or dropped by hold())."""

    def pause_route(self, paused: bool, done: Done) -> None:
        """Pause (stop and hold) or resume the running route; calls done(ok, reason) once,
        from any thread."""

    def keep_out_zones(self) -> list[dict[str, Any]] | None:
        """Keep-out zones in force (name, min, max m kibo, fixed), the dock body included; None
        when unknown yet."""

    def add_keep_out(self, box: Box, done: Done) -> None:
        """Add (or replace) a run-time keep-out zone; calls done(ok, reason) once, from any thread."""

    def remove_keep_out(self, name: str, done: Done) -> None:
        """Remove a run-time keep-out zone; calls done(ok, reason) once, from any thread."""

    def task_files(self) -> list[str]:
        """Paths of the files the last completed camera task wrote (read once it is "arrived")."""


@dataclass
class _Motion:
    """A motion command being executed: a list of goals flown in order."""

    command_id: str | None  # None: an onboard-initiated motion (return to dock)
    kind: str
    goals: list[tuple[np.ndarray, np.ndarray, str]]
    lifetime_s: float | None = None  # jog: hold when it runs out
    native: bool = False  # dock / undock / camera task by the backend's own procedure (no goals here)
    payload: dict | None = None
    index: int = 0  # goals: the one being flown; route: the waypoint the backend's route started at
    started: float | None = None
    route: list[Waypoint] | None = None  # a route's waypoints (flown by the backend's follow_route)
    progress: int = 0  # route: waypoint index within the backend's current route
    paused: bool = False  # route: paused by the operator
    suspended: bool = False  # route: dropped by a hold (LOS), flown again from where it was


@dataclass(frozen=True)
class OnboardConfig:
    telemetry_rate_hz: float = 5.0
    camera_rate_hz: float = 1.0
    camera: str = "main"
    tick_s: float = 0.05
    motion_timeout_s: float = 600.0  # a goal not reached in this time fails
    file_rate_bps: float = 256_000.0  # camera-task files: their share of the downlink, bit/s
    file_max_bytes: int = MAX_FILE_BYTES  # JPEG size cap of a downlinked file
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)


class OnboardBridge:
    """Runs in the robot's event loop. ``start()`` subscribes to the link and starts the ticks."""

    def __init__(
        self,
        end: LinkEnd,
        gate: CommandGate,
        backend: RobotBackend,
        workspace: C.Workspace,
        config: OnboardConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.end = end
        self.gate = gate
        self.backend = backend
        self.workspace = workspace
        self.config = config or OnboardConfig()
        self.clock = clock
        self.motions: deque[_Motion] = deque()
        self.active: _Motion | None = None
        self.estop = False
        self.supervisor = SupervisorState()
        self.camera = self.config.camera
        self.camera_rate_hz = self.config.camera_rate_hz
        self.executed: list[tuple[str, str]] = []  # (command id, kind) in execution order (tests, audit)
        self._tasks: list[asyncio.Task] = []
        self._last_frame_stamp: float | None = None
        self._resume_requested = False
        self._started = clock()
        self._base_workspace = workspace
        self._zones_seen: list | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.files = FileSender(self._send, self.config.file_rate_bps)
        self._jobs: set[asyncio.Task] = set()  # file encodings in flight

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.end.on_receive(self._on_uplink)
        loop = self._loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(run_every(self.config.tick_s, self._tick, "onboard bridge")),
            loop.create_task(
                run_every(1.0 / self.config.telemetry_rate_hz, self._send_telemetry, "onboard bridge")
            ),
            loop.create_task(self._camera_loop()),
            loop.create_task(self.files.run()),
        ]

    async def stop(self) -> None:
        await detach(self.end, [*self._tasks, *self._jobs])

    # -- uplink -------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        self.end.send_nowait(data)

    def _on_uplink(self, data: bytes) -> None:
        now = self.clock()
        receipt = self.gate.receive(data, now)
        for reply in receipt.replies:
            self._send(reply)
        if receipt.outcome is Outcome.ACCEPTED and receipt.command is not None:
            self._execute(receipt.command, now)

    def _report(self, command_id: str | None, state: AckState, reason: str = "") -> None:
        if command_id is None:
            return
        try:
            self._send(self.gate.report(command_id, state, self.clock(), reason[:200]))
        except ValueError as exc:  # evicted id or illegal transition: log, never crash
            log.warning("onboard bridge: cannot report %s %s: %s", command_id, state.value, exc)

    def _execute(self, command: Command, now: float) -> None:
        kind, payload = command.kind, dict(command.payload)
        self.executed.append((command.id, kind))
        self._refresh_workspace()
        try:
            C.validate(kind, payload, self.workspace)
        except C.CommandError as exc:
            self._report(command.id, AckState.FAILED, f"invalid {kind}: {exc}")
            return
        if kind == C.EMERGENCY_STOP:
            self.estop = True
            self._abort_all("emergency stop")
            self.backend.emergency_stop()
            self._report(command.id, AckState.COMPLETED, "emergency stop: motion stopped, queue cleared")
        elif kind == C.RESUME:
            was = self.estop
            self.estop = False
            self._resume_requested = True
            if was and hasattr(self.backend, "resume"):
                self.backend.resume()
            docking = self.supervisor.action is SafetyAction.RETURN_TO_DOCK
            reason = ["nothing to resume", "emergency stop released"][was]
            if docking:
                reason += "; return to dock released once ground contact is steady"
            self._report(command.id, AckState.COMPLETED, reason)
        elif kind in (C.STOP, C.STATION_KEEP):
            self._abort_all(f"{kind} requested")
            self.backend.hold()
            self._report(command.id, AckState.COMPLETED, "holding the current estimated pose")
        elif kind in (C.ROUTE_PAUSE, C.ROUTE_RESUME):
            self._pause_route(command.id, kind == C.ROUTE_PAUSE)
        elif kind in (C.KEEP_OUT_ADD, C.KEEP_OUT_REMOVE):
            self._edit_keep_out(command.id, kind, payload)
        elif kind == C.FILE_RESEND:
            try:
                n = self.files.resend(payload["id"], payload["chunks"])
            except KeyError:
                self._report(command.id, AckState.FAILED, f"file {payload['id']} is no longer kept onboard")
            else:
                name = self.files.files[payload["id"]].name
                self._report(command.id, AckState.COMPLETED, f"re-sending {n} chunk(s) of {name}")
        elif kind == C.CAMERA_STREAM:
            self.camera = payload.get("camera", "main")
            self.camera_rate_hz = float(payload.get("rate_hz", 1.0))
            self._report(
                command.id, AckState.COMPLETED, f"streaming {self.camera} at {self.camera_rate_hz:g} Hz"
            )
        else:
            self._queue_motion(command, payload)

    def _later(self, command_id: str, what: str) -> Done:
        """A done(ok, reason) callback that may be called from any thread: acks on our loop."""
        loop = self._loop

        def done(ok: bool, reason: str) -> None:
            state = AckState.COMPLETED if ok else AckState.FAILED
            text = reason or ("done" if ok else f"{what} failed")
            if loop is None:
                self._report(command_id, state, text)
            else:
                loop.call_soon_threadsafe(self._report, command_id, state, text)

        return done

    def _refresh_workspace(self) -> None:
        """Goal checks use the zones the robot has now (the navigation node's, or the stand-in's)."""
        zones = self.backend.keep_out_zones() if hasattr(self.backend, "keep_out_zones") else None
        if zones is None or zones == self._zones_seen:
            return
        try:
            self.workspace = self._base_workspace.with_zones(zones)
            self._zones_seen = zones
        except C.CommandError as exc:
            log.warning("onboard bridge: keep-out zones from the robot ignored: %s", exc)

    def _edit_keep_out(self, command_id: str, kind: str, payload: dict) -> None:
        if not hasattr(self.backend, "add_keep_out"):
            self._report(command_id, AckState.FAILED, "this robot has no keep-out zone services")
            return
        what = "adding the keep-out zone" if kind == C.KEEP_OUT_ADD else "removing the keep-out zone"
        done = self._later(command_id, what)
        if kind == C.KEEP_OUT_ADD:
            self.backend.add_keep_out(C.keep_out_box(payload, self.workspace), done)  # type: ignore[attr-defined]
        else:
            self.backend.remove_keep_out(payload["name"], done)  # type: ignore[attr-defined]

    def _pause_route(self, command_id: str, pause: bool) -> None:
        m = self.active
        if m is None or m.kind != C.ROUTE or m.route is None:
            queued = any(q.kind == C.ROUTE for q in self.motions)
            why = "no route is being flown" + (" (the queued route has not started)" if queued else "")
            self._report(command_id, AckState.FAILED, why)
            return
        where = f"waypoint {m.index + m.progress + 1} of {len(m.route)}"
        if m.paused == pause:
            self._report(
                command_id, AckState.COMPLETED, f"route already {'paused' if pause else 'flying'} ({where})"
            )
            return
        if m.suspended:  # held by the LOS supervisor: the backend has no route to pause or resume
            m.paused = pause
            if not pause and self.supervisor.action is SafetyAction.NOMINAL and not self.estop:
                self._fly(m)
                self._report(command_id, AckState.COMPLETED, f"route resumed at {where}")
            else:
                state = "paused" if pause else "resumes once ground contact is steady"
                self._report(command_id, AckState.COMPLETED, f"route {state} at {where} (holding)")
            return
        report = self._later(command_id, "route pause" if pause else "route resume")

        def done(ok: bool, reason: str) -> None:
            if ok:
                m.paused = pause
            report(ok, f"{reason} at {where}" if ok else reason)

        self.backend.pause_route(pause, lambda ok, reason: self._call_soon(done, ok, reason))  # type: ignore[attr-defined]

    def _call_soon(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop is None:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _queue_motion(self, command: Command, payload: dict) -> None:
        if self.estop:
            self._report(command.id, AckState.FAILED, "emergency stop active: send resume first")
            return
        if self.supervisor.action is SafetyAction.RETURN_TO_DOCK:
            self._report(command.id, AckState.FAILED, "returning to dock after a long LOS: send resume first")
            return
        motion = self._plan_motion(command, payload)
        if motion is None:
            return
        append = command.kind == C.GOAL and bool(payload.get("append", False))
        if not append:
            self._abort_all(f"replaced by {command.kind} {command.id[:8]}")
        self.motions.append(motion)

    def _plan_motion(self, command: Command, payload: dict) -> _Motion | None:
        kind = command.kind
        if kind == C.GOAL:
            pos = np.asarray(payload["position"], dtype=float)
            goal = (pos, C.goal_quat(payload), payload.get("flight_mode", "nominal"))
            return _Motion(command.id, kind, [goal])
        if kind == C.ROUTE:
            if not hasattr(self.backend, "follow_route"):
                self._report(command.id, AckState.FAILED, "this robot cannot fly routes")
                return None
            route = C.route_waypoints(payload, self.workspace)
            return _Motion(command.id, kind, [], native=True, payload=payload, route=route)
        if kind == C.CAMERA_TASK:
            if not hasattr(self.backend, "camera_task"):
                self._report(
                    command.id, AckState.FAILED, "camera tasks need the ROS graph (CameraTask action)"
                )
                return None
            return _Motion(command.id, kind, [], native=True, payload=payload)
        if kind == C.JOG:
            tm = self.backend.telemetry()
            if tm is None:
                self._report(command.id, AckState.FAILED, "no state estimate yet")
                return None
            pos = np.asarray(tm["pose"]["position"]) + np.asarray(payload.get("delta", [0.0, 0.0, 0.0]))
            dyaw = math.radians(float(payload.get("dyaw_deg", 0.0)))
            quat = quat_multiply(quat_from_rpy(0.0, 0.0, dyaw), np.asarray(tm["pose"]["quat"]))
            try:
                self.workspace.check(pos)
            except C.CommandError as exc:
                self._report(command.id, AckState.FAILED, f"jog refused: {exc}")
                return None
            return _Motion(
                command.id, kind, [(pos, quat, "precision")], float(payload.get("lifetime_s", 1.0))
            )
        return self._dock_motion(command.id, kind)

    def _dock_motion(self, command_id: str | None, kind: str) -> _Motion:
        """The robot's own docking procedure when it has one (ROS: the Dock / Undock actions),
        else the approach and contact points flown as goals."""
        native = hasattr(self.backend, "dock")
        goals = [] if native else self._dock_goals(undock=kind == C.UNDOCK)
        return _Motion(command_id, kind, goals, native=native)

    def _dock_goals(self, undock: bool) -> list[tuple[np.ndarray, np.ndarray, str]]:
        """Docking as goals: the approach point, then the contact point (precision mode).
        The magnetic capture of intball_nav.autonomy.docking is not run by this bridge."""
        dock = self.workspace.module.dock
        q = quat_from_rpy(*np.radians(DOCKED_RPY_DEG))
        approach = dock.approach_point(float(dock.approach_distances[0]))
        contact = dock.approach_point(float(dock.approach_distances[-1]))
        if undock:
            return [(approach, q, "precision")]
        return [(approach, q, "nominal"), (contact, q, "precision")]

    def _abort_all(self, reason: str) -> None:
        if self.active is not None:
            self._report(self.active.command_id, AckState.FAILED, f"preempted: {reason}")
            self.active = None
        while self.motions:
            m = self.motions.popleft()
            self._report(m.command_id, AckState.FAILED, f"dropped before it started: {reason}")

    # -- periodic -----------------------------------------------------------------------

    def _tick(self) -> None:
        now = self.clock()
        previous = self.supervisor.action
        # before the first contact, silence counts from the bridge's start (not "forever")
        age = min(self.gate.contact_age(now), now - self._started)
        self.supervisor = supervise(
            self.supervisor,
            age,
            now,
            self.config.supervisor,
            resume=self._resume_requested,
        )
        action = self.supervisor.action
        if action is not SafetyAction.RETURN_TO_DOCK:  # a resume waits for fresh contact, then applies
            self._resume_requested = False
        if action is not previous:
            self._on_supervisor_change(previous, action)
        if action is SafetyAction.STATION_KEEP or self.estop:
            return  # holding: the active motion is suspended
        self._advance(now)

    def _on_supervisor_change(self, previous: SafetyAction, action: SafetyAction) -> None:
        log.warning("onboard supervisor: %s -> %s", previous.value, action.value)
        if action is SafetyAction.STATION_KEEP:
            self.backend.hold()
            if self.active is not None and self.active.kind == C.ROUTE:
                self.active.suspended = True  # the hold ended the backend's route
        elif action is SafetyAction.RETURN_TO_DOCK:
            self._abort_all("no ground contact: returning to dock")
            self.motions.append(self._dock_motion(None, C.DOCK))
        elif action is SafetyAction.NOMINAL and self.active is not None:
            if not (self.active.kind == C.ROUTE and self.active.paused):  # a paused route waits for resume
                self._fly(self.active)  # resume the suspended goal

    def _fly(self, m: _Motion) -> None:
        if m.kind == C.ROUTE and m.route is not None:
            # from the waypoint it was flying to or holding at (a hold dropped the rest): never
            # from the start again, never skipping one
            m.index, m.progress, m.suspended = m.index + m.progress, 0, False
            mode = (m.payload or {}).get("flight_mode", "nominal")
            if not self.backend.follow_route(m.route[m.index :], mode):  # type: ignore[attr-defined]
                self._report(
                    m.command_id, AckState.FAILED, "routes need the navigation node's follow_route action"
                )
                self.active = None
            return
        if m.native and m.kind == C.CAMERA_TASK:
            if not self.backend.camera_task(m.payload or {}):  # type: ignore[attr-defined]
                self._report(m.command_id, AckState.FAILED, "the camera task server is not available")
                self.active = None
            return
        if m.native:
            if self.backend.dock(undock=m.kind == C.UNDOCK):  # type: ignore[attr-defined]
                return
            log.warning("onboard bridge: no %s procedure on this robot; flying its points as goals", m.kind)
            m.native, m.goals, m.index = False, self._dock_goals(undock=m.kind == C.UNDOCK), 0
        pos, quat, mode = m.goals[m.index]
        try:
            self.backend.go_to(pos, quat, mode)
        except C.CommandError as exc:
            self._report(m.command_id, AckState.FAILED, str(exc))
            self.active = None

    def _advance(self, now: float) -> None:
        m = self.active
        if m is None:
            if not self.motions:
                return
            m = self.active = self.motions.popleft()
            m.started = now
            self._report(m.command_id, AckState.EXECUTING)
            self._fly(m)
            return
        if m.route is not None:
            progress = self.backend.route_progress()  # type: ignore[attr-defined]
            if progress is not None:
                m.progress = progress[0]
        state, reason = self.backend.motion()
        if state == "arrived" and m.route is not None:
            self._report(m.command_id, AckState.COMPLETED, f"route complete: {len(m.route)} waypoints")
            self.active = None
        elif state == "arrived":
            m.index += 1
            if m.index < len(m.goals) and not m.native:
                self._fly(m)
                return
            if m.kind == C.CAMERA_TASK:
                reason = self._downlink_task_files(m, reason)
            self._report(m.command_id, AckState.COMPLETED, reason or "arrived")
            self.active = None
        elif state == "failed":
            self._report(m.command_id, AckState.FAILED, reason or "the controller refused the goal")
            self.active = None
        elif m.lifetime_s is not None and m.started is not None and now - m.started > m.lifetime_s:
            self.backend.hold()
            self._report(m.command_id, AckState.COMPLETED, f"jog lifetime {m.lifetime_s:g} s ended; holding")
            self.active = None
        elif m.started is not None and now - m.started > self._timeout(m):
            self.backend.hold()
            self._report(m.command_id, AckState.FAILED, f"not arrived after {self._timeout(m):g} s")
            self.active = None

    def _downlink_task_files(self, m: _Motion, reason: str) -> str:
        """Send the images a camera task wrote down the link (snapshot, inspect: the snapshot;
        survey: its tiled overview), JPEG-capped, encoded off the loop. Returns the ack reason."""
        paths = self.backend.task_files() if hasattr(self.backend, "task_files") else []  # type: ignore[attr-defined]
        images = [p for p in paths if p.lower().endswith(IMAGE_SUFFIXES)]
        tiled = [p for p in images if p.endswith("_tiled.png")]
        images = (tiled or images)[:2]
        if not images or self._loop is None:
            return reason
        job = self._loop.create_task(self._encode_files(m.command_id, images))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return (
            f"{reason}; downlinking {len(images)} image(s)"
            if reason
            else f"downlinking {len(images)} image(s)"
        )

    async def _encode_files(self, command_id: str | None, paths: list[str]) -> None:
        for path in paths:
            try:
                data = await asyncio.to_thread(jpeg_capped, path, self.config.file_max_bytes)
            except (OSError, ValueError) as exc:
                log.warning("onboard bridge: %s not downlinked: %s", path, exc)
                continue
            name = Path(path).stem + ".jpg"
            self.files.add(name, data, command_id)

    def _timeout(self, m: _Motion) -> float:
        """motion_timeout_s per goal; a route gets it per waypoint, plus its holds."""
        if m.route is None:
            return self.config.motion_timeout_s
        return self.config.motion_timeout_s * len(m.route) + sum(w[2] for w in m.route)

    def _route_status(self) -> dict[str, Any] | None:
        m = self.active
        if m is None or m.route is None:
            return None
        i = min(m.index + m.progress, len(m.route) - 1)
        return {
            "command": m.command_id,
            "index": i,
            "n": len(m.route),
            "paused": m.paused,
            "suspended": m.suspended,
            "waypoint": [round(float(v), 4) for v in m.route[i][0]],
            "label": str((m.payload or {}).get("label", "")),
        }

    def _send_telemetry(self) -> None:
        now = self.clock()
        tm = self.backend.telemetry()
        msg: dict[str, Any] = {
            "t": "tm",
            "v": 1,
            "at_ms": int(now * 1000),
            "source": self.backend.source,
            "estimate": tm,
            "supervisor": self.supervisor.action.value,
            "contact_age_s": _finite(min(self.gate.contact_age(now), now - self._started)),
            "estop": self.estop,
            "active": None if self.active is None else self.active.command_id,
            "active_kind": None if self.active is None else self.active.kind,
            "queued": len(self.motions),
            "camera": self.camera,
            "route": self._route_status(),
            "keep_out": self.backend.keep_out_zones() if hasattr(self.backend, "keep_out_zones") else None,
            "files": self.files.announce(),
        }
        self._send(json.dumps(msg, separators=(",", ":"), allow_nan=False).encode())

    async def _camera_loop(self) -> None:
        while True:
            rate = self.camera_rate_hz
            await asyncio.sleep(1.0 / rate if rate > 0 else 0.5)
            if rate <= 0:
                continue
            try:
                # JPEG encoding off the event loop: commands and telemetry never wait behind it
                frame = await asyncio.to_thread(self.backend.camera_jpeg, self.camera)
                if frame is None or frame[1] == self._last_frame_stamp:
                    continue
                jpeg, stamp = frame
                self._last_frame_stamp = stamp
                header = {"camera": self.camera, "stamp": stamp, "at_ms": int(self.clock() * 1000)}
                self._send(encode_camera_frame(header, jpeg))
            except Exception:
                log.exception("onboard bridge: camera frame failed")


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
