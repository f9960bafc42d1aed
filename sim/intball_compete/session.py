"""The simulator side of a competition run: one mission, driven by behavior API requests.

``MissionSession(scenario, localization=...)`` owns a physics-only ``PyBulletBackend``, the named
estimator (``truth-noise`` / ``truth``: :class:`TruthNoiseEstimator`; ``vision``:
:class:`intball_sim.vision_loop.VisionInLoop`), the GNC loop (``intball_nav.gnc`` at 50 Hz) and,
created on the first image request, a render-only PyBullet client with the textured module, the
map markers and the target panels. ``handle(request) -> (reply, blob)`` serves one API call
(see :mod:`intball_compete.api`); motion calls advance sim time until they finish.

The behavior receives only the estimate; ground truth goes to the renderer (what the camera
sees), the keep-out monitor, the aim and snapshot measurements and the trajectory log for
scoring and replay. Every camera renders with TinyRenderer (the nav frames of ``vision`` mode
included): EGL images depend on the PyBullet clients a process made before.
Sim time drives everything (wall time never enters), so a run is a function of the scenario,
the seed and the sequence of requests. Per-run bounds, in sim time and counts only (so they
repeat): image requests (IMAGE_BURST, IMAGE_PERIOD_S) and snapshot records kept
(SNAPSHOT_LOG_MAX plus the best per target).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from intball_compete.missions import Scenario, load_marker_map
from intball_compete.scoring import snapshot_quality
from intball_nav.camera_tasks.pointing import PointingError, look_at
from intball_nav.dynamics import RigidBodyState
from intball_nav.estimation.truth_noise import MODE_TRUTH, MODE_TRUTH_NOISE, TruthNoiseEstimator
from intball_nav.flight_modes import load_flight_modes
from intball_nav.frames import Pose, quat_from_rpy, quat_multiply, rotmat_from_quat
from intball_nav.gnc import GncParams, gnc_step, hold_position, initial_state, set_goal
from intball_nav.guidance import plan_segment
from intball_nav.safety import GoalRejected, check_goal, keep_in_from_module, segment_hits_box
from intball_sim.camera import load_cameras
from intball_sim.targets import TargetSpec, target_pose

LOCALIZATION_MODES = (MODE_TRUTH_NOISE, MODE_TRUTH, "vision")
CONTROL_HZ = 50.0
PHYSICS_HZ = 100.0
LOG_HZ = 5.0
"""Rate of the replay trajectory, Hz."""
MOVE_TIMEOUT = (2.0, 10.0)
"""A move gives up after factor x planned duration + margin s."""
AIM_MAX_RANGE_M = 2.5
"""Aims farther than this from the target centre do not count."""
MAX_STEP_S = 2.0
"""Longest loop-style step (s)."""
VISION_RENDERER = "tiny"
"""Renderer of the nav frames in ``vision`` mode (``intball_sim.vision_loop.VisionOptions``)."""
SNAPSHOT_CLEARANCE_M = 0.01
"""The line-of-sight test of a snapshot ends this far in front of the code (m)."""
SNAPSHOT_LOG_MAX = 50
"""Snapshot records kept per run besides the best one per target: the first this many taken.
Every snapshot is judged; the run's measures list the kept ones (and the best per target, which
is all a rule scores), ``snapshot_count`` the number taken. Bounds the result JSON and the store
row (a loop-style behavior could otherwise log one per step, ~3000 per run, ~600 KB). "Best" is
``scoring.snapshot_quality`` (score-v2): a rule that judged snapshots differently would need its
own best kept here."""
MAX_LISTED_EVENTS = 100
"""Collision episodes and keep-out entries listed per run: the first this many. All are counted
(``collisions_count``, ``keepout_events_count``) and scored; bounds the result JSON."""
IMAGE_BURST = 10
"""Rendered images (``main_image``, ``nav_image``, ``snapshot``) a behavior may request at once."""
IMAGE_PERIOD_S = 2.0
"""s of sim time that earn one more image request after the burst (token bucket, at most
IMAGE_BURST saved up): at most 10 + 300 / 2 = 160 renders in a 300 s mission. Requests beyond
get ``ok: False, limit: "image_rate"`` (``RateLimited`` in the behavior), nothing rendered or
recorded. Sim time only, so the limit is deterministic: same requests, same refusals."""


class RequestError(ValueError):
    """A request the session refuses; ``str()`` is the reason sent to the behavior."""

    limit = ""
    """Set by the subclasses of refusals for a per-run limit (sent as ``limit`` in the reply)."""


class RateLimited(RequestError):
    """A request over a per-run rate limit (images)."""

    limit = "image_rate"


def _numbers(value: Any, n: int, what: str) -> np.ndarray:
    """(n,) float array from a request field; RequestError naming the field otherwise.
    Non-finite entries arrive as the strings 'nan' / 'inf' (JSON has no NaN)."""
    if not isinstance(value, list) or len(value) != n:
        raise RequestError(f"{what} must be a list of {n} numbers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            raise RequestError(f"{what} must be {n} numbers, got {value!r}")
        try:
            out.append(float(v))
        except ValueError:
            raise RequestError(f"{what} must be {n} numbers, got {value!r}") from None
    arr = np.array(out)
    if not np.isfinite(arr).all():
        raise RequestError(f"{what} {arr.tolist()} is not finite")
    return arr


def _state_dict(s: RigidBodyState, t: float) -> dict[str, Any]:
    return {
        "position": s.position.tolist(),
        "quat": s.quat.tolist(),
        "velocity": s.velocity.tolist(),
        "angular_velocity": s.omega.tolist(),
        "t": t,
    }


def _sphere_in_box(x: float, y: float, z: float, r2: float, lo: tuple, hi: tuple) -> bool:
    """True if a sphere (centre m, squared radius m^2) overlaps the box [lo, hi] (plain floats:
    runs every tick)."""
    d2 = 0.0
    for v, a, b in ((x, lo[0], hi[0]), (y, lo[1], hi[1]), (z, lo[2], hi[2])):
        if v < a:
            d2 += (a - v) ** 2
        elif v > b:
            d2 += (v - b) ** 2
    return d2 < r2


class _RenderWorld:
    """A render-only PyBullet client with the textured module, the map markers and the target
    panels, made on the first image request of a session and closed with it.

    It renders with PyBullet's TinyRenderer (CPU), not EGL: measured here, EGL (Mesa llvmpipe)
    images of the same scene differ by up to ~20 gray levels on ~1500 pixels between successive
    clients in one process (and a world whose panels were swapped differs more), so a worker's
    earlier runs would change later scores. TinyRenderer images are bit-identical, and its world
    is cheaper to build (0.5 s vs 1.1 s of CPU; ~0.065 s per 640x480 frame for both)."""

    def __init__(self, module: Any, specs: list[TargetSpec]) -> None:
        import pybullet as p  # noqa: PLC0415

        from intball_sim.camera import Renderer  # noqa: PLC0415
        from intball_sim.targets import place_targets  # noqa: PLC0415
        from intball_sim.world import build_world  # noqa: PLC0415

        self.cid = p.connect(p.DIRECT)
        self.renderer = Renderer(self.cid, prefer_egl=False)
        markers = load_marker_map()
        build_world(self.cid, module, markers)
        place_targets(self.cid, module, specs, marker_map=markers)

    def render(self, cam: Any, T_kibo_cam: Pose) -> np.ndarray:
        rgb, _ = self.renderer.render(cam, T_kibo_cam)
        return rgb

    def close(self) -> None:
        import pybullet as p  # noqa: PLC0415

        if self.cid >= 0:
            try:
                p.disconnect(physicsClientId=self.cid)
            finally:
                self.cid = -1


class MissionSession:
    """One mission instance serving behavior requests (see module docstring)."""

    def __init__(self, scenario: Scenario, *, localization: str = MODE_TRUTH_NOISE) -> None:
        if localization not in LOCALIZATION_MODES:
            raise ValueError(
                f"localization {localization!r} not allowed; allowed: {', '.join(LOCALIZATION_MODES)}"
            )
        from intball_sim.backend import PyBulletBackend  # noqa: PLC0415 - pybullet only where needed

        self.scenario = scenario
        self.localization = localization
        self.module = scenario.module
        self.params = GncParams.default()
        self.robot = self.params.robot
        self._r2 = self.robot.radius**2
        self.modes = load_flight_modes()
        self.keep_in = keep_in_from_module(self.module)
        self.keep_out = scenario.keep_out
        self._zones = [(z.name, tuple(z.min.tolist()), tuple(z.max.tolist())) for z in self.keep_out]
        self.cameras = load_cameras()
        self.dt = 1.0 / CONTROL_HZ
        self._log_every = max(1, round(CONTROL_HZ / LOG_HZ))
        seed = scenario.seed
        self.backend = PyBulletBackend(
            self.robot, self.module, seed=seed, world=True, physics_hz=PHYSICS_HZ, visuals=False
        )
        self.backend.reset(RigidBodyState(position=scenario.start.position, quat=scenario.start.quat))
        self.specs = [
            TargetSpec(t.kind, t.payload, t.bay, t.offset, t.size, name=f"target_{t.id}")
            for t in scenario.targets
        ]
        self.target_poses = {
            t.id: target_pose(self.module, s) for t, s in zip(scenario.targets, self.specs, strict=True)
        }
        self._render_world: _RenderWorld | None = None
        self.eye = None
        self.estimator = None
        self.truth = self.backend.state()
        if localization == "vision":
            from intball_nav.estimation.visual_localizer import GuardParams  # noqa: PLC0415
            from intball_sim.vision_loop import VisionInLoop, VisionOptions  # noqa: PLC0415

            # lost during a mission: after braking, turn in place (10 deg/s, at most 40 s) to find a
            # view instead of waiting with the fans off while the airflow drifts the robot.
            # Nav frames with TinyRenderer, like the main camera (see _RenderWorld): EGL images
            # depend on the PyBullet clients the worker made before, so a run would not repeat.
            search = GuardParams(search_rate=math.radians(10.0), search_max_s=40.0)
            options = VisionOptions(guard=search, renderer=VISION_RENDERER)
            self.eye = VisionInLoop(self.module, self.robot, seed=seed, start=scenario.start, options=options)
            self.estimate = self.eye.wait_for_fix(self.backend, self.dt)
            self.truth = self.backend.state()
        else:
            self.estimator = TruthNoiseEstimator(seed=seed + 1_000_003, mode=localization)
            self.estimate = self.estimator.update(self.truth)
        self.gnc = initial_state(self.modes["nominal"])
        self.t0: float | None = None
        self.done = False
        self.end_reason = ""
        self.ticks = 0
        self.energy_ns = 0.0  # fan impulse, N s
        self.reports: dict[int, str | int] = {}
        self.report_count = 0
        self.aims: dict[int, dict[str, float]] = {}
        self.aim_count = 0
        self.snapshots: list[dict[str, Any]] = []  # the first SNAPSHOT_LOG_MAX taken
        self.snapshot_count = 0
        self._best_snapshot: dict[int, tuple[float, dict[str, Any]]] = {}
        self._image_tokens = float(IMAGE_BURST)
        self._image_tokens_t = 0.0  # mission time of the last refill, s
        self.images_rendered = 0
        self.images_refused = 0
        self.keepout_events: list[dict[str, Any]] = []
        self.keepout_count = 0
        self._in_zone: set[str] = set()
        self.trajectory: list[list[float]] = []
        self.requests = 0
        self._mission: dict[str, Any] = {}

    # ------------------------------------------------------------------ clock
    @property
    def t(self) -> float:
        """s, mission time (0 at start_mission; 0 before it)."""
        return 0.0 if self.t0 is None else self.backend.sim_time - self.t0

    @property
    def remaining(self) -> float:
        return max(0.0, self.scenario.time_limit_s - self.t)

    def _end(self, reason: str) -> None:
        if not self.done:
            self.done, self.end_reason = True, reason
            self._log(force=True)

    def _log(self, force: bool = False) -> None:
        if force or self.ticks % self._log_every == 0:
            s, e = self.truth, self.estimate
            self.trajectory.append(
                [
                    round(self.t, 3),
                    *np.round(s.position, 4).tolist(),
                    *np.round(s.quat, 5).tolist(),
                    *np.round(e.position, 4).tolist(),
                ]
            )

    def _tick(self) -> Any:
        """One control period: estimator, GNC, physics, monitors. Returns the GNC status."""
        status, override = None, None
        sim_t = self.backend.sim_time
        if self.eye is not None:
            fix, override, changed = self.eye.supervise(sim_t)
            self.estimate = fix if fix is not None else self.estimate
            if changed == "recovering":
                self.gnc = hold_position(self.gnc, self.estimate, sim_t)
            elif changed == "nominal" and self.gnc.goal is not None:
                self.gnc = self._plan(self.gnc.goal, self.gnc.mode.name)
        if override is None:
            self.gnc, fans, status = gnc_step(self.gnc, self.estimate, sim_t, self.params)
        else:
            fans = override
        fans = np.clip(fans, self.robot.fan_min, self.robot.fan_max)
        self.energy_ns += float(fans.sum()) * self.dt
        if self.eye is None:
            self.backend.step(fans, self.dt)
            self.truth = self.backend.state()
            self.estimate = self.estimator.update(self.truth)  # type: ignore[union-attr]
        else:
            self.eye.advance(self.backend, fans, self.dt)
            self.truth = self.backend.state()
        self.ticks += 1
        px, py, pz = self.truth.position.tolist()
        inside = {name for name, lo, hi in self._zones if _sphere_in_box(px, py, pz, self._r2, lo, hi)}
        for name in sorted(inside - self._in_zone):
            self.keepout_count += 1
            if len(self.keepout_events) < MAX_LISTED_EVENTS:
                self.keepout_events.append({"t": round(self.t, 3), "zone": name})
        self._in_zone = inside
        self._log()
        if self.t >= self.scenario.time_limit_s - 1e-9:
            self._end("time limit")
        return status

    def _plan(self, goal: Pose, mode: str) -> Any:
        return set_goal(
            self.gnc,
            goal,
            self.modes[mode],
            self.backend.sim_time,
            self.estimate,
            self.keep_in,
            self.keep_out,
            radius=self.robot.radius,
        )

    # ------------------------------------------------------------------ motion
    def _check_goal(self, goal: Pose, mode: str) -> None:
        if mode not in self.modes:
            raise RequestError(f"flight mode {mode!r} unknown; allowed: {', '.join(sorted(self.modes))}")
        check_goal(goal.position, self.keep_in, self.robot.radius, self.keep_out)
        for zone in self.keep_out:
            grown = zone.grown(self.robot.radius)
            if segment_hits_box(self.estimate.position, goal.position, grown.min, grown.max):
                raise GoalRejected(f"the straight path crosses keep-out zone {zone.name}; add a waypoint")

    def _move(self, goal: Pose, mode: str) -> dict[str, Any]:
        try:
            self._check_goal(goal, mode)
        except GoalRejected as exc:
            return self._move_reply(False, f"goal rejected: {exc}")
        self.gnc = self._plan(goal, mode)
        if self.gnc.status == "rejected":
            return self._move_reply(False, self.gnc.message)
        planned = plan_segment(Pose(self.estimate.position, self.estimate.quat), goal, self.modes[mode], 0.0)
        timeout = MOVE_TIMEOUT[0] * planned.duration + MOVE_TIMEOUT[1]
        start = self.t
        while not self.done:
            status = self._tick()
            if status is not None and status.arrived:
                return self._move_reply(True, status.message)
            if self.t - start > timeout:
                err = np.linalg.norm(self.estimate.position - goal.position)
                return self._move_reply(
                    False, f"not arrived within {timeout:.0f} s (estimate {err * 100:.1f} cm away)"
                )
        return self._move_reply(False, f"mission over: {self.end_reason}")

    def _move_reply(self, success: bool, reason: str) -> dict[str, Any]:
        return {"ok": True, "success": success, "reason": reason, "state": _state_dict(self.estimate, self.t)}

    def _goal_from(self, args: dict[str, Any]) -> tuple[Pose, str]:
        position = _numbers(args.get("position"), 3, "position")
        q, point = args.get("quat"), args.get("look_at")
        if q is not None and point is not None:
            raise RequestError("give quat or look_at, not both")
        if point is not None:
            point = _numbers(point, 3, "look_at")
            try:
                q = look_at(
                    position, point, self.cameras["main"].T_base_cam, current_quat=self.estimate.quat
                ).quat
            except PointingError as exc:
                raise RequestError(
                    f"cannot look at {point.tolist()} from {position.tolist()}: {exc}"
                ) from None
            q = [float(v) for v in q]
        quat = self.estimate.quat if q is None else _numbers(q, 4, "quat")
        n = float(np.linalg.norm(quat))
        if n < 1e-6:
            raise RequestError(f"quat {quat.tolist()} has zero norm")
        return Pose(position, quat / n), str(args.get("mode", "nominal"))

    def _relative_goal(self, args: dict[str, Any]) -> tuple[Pose, str]:
        d = _numbers(args.get("translation"), 3, "translation")
        rpy = np.radians(_numbers(args.get("rotation_deg"), 3, "rotation_deg"))
        frame = args.get("frame", "body")
        q_rel = quat_from_rpy(*rpy)
        p, q = self.estimate.position, self.estimate.quat
        if frame == "body":
            goal = Pose(p + rotmat_from_quat(q) @ d, quat_multiply(q, q_rel))
        elif frame == "kibo":
            goal = Pose(p + d, quat_multiply(q_rel, q))
        else:
            raise RequestError(f"frame {frame!r} not allowed; allowed: body, kibo")
        return goal, str(args.get("mode", "nominal"))

    def _camera(self, name: Any) -> Any:
        if not isinstance(name, str) or name not in self.cameras:
            raise RequestError(f"camera {name!r} unknown; allowed: {', '.join(sorted(self.cameras))}")
        return self.cameras[name]

    # ------------------------------------------------------------------ images
    def render(self, camera: str) -> np.ndarray:
        """RGB (H, W, 3) uint8 of ``camera`` from the TRUE pose (what the camera sees)."""
        if self._render_world is None:
            self._render_world = _RenderWorld(self.module, self.specs)
        cam = self.cameras[camera]
        T_kibo_base = Pose(self.truth.position, self.truth.quat)
        return self._render_world.render(cam, T_kibo_base.compose(cam.T_base_cam))

    # ------------------------------------------------------------------ scoring actions
    def _target_id(self, args: dict[str, Any]) -> int:
        tid = args.get("target_id")
        if isinstance(tid, bool) or not isinstance(tid, int) or tid not in self.target_poses:
            raise RequestError(f"target id {tid!r} unknown; ids: {sorted(self.target_poses)}")
        return tid

    def _aim(self, tid: int) -> None:
        cam = self.cameras["main"]
        T_kibo_cam = Pose(self.truth.position, self.truth.quat).compose(cam.T_base_cam)
        axis = rotmat_from_quat(T_kibo_cam.quat)[:, 2]
        to_target = self.target_poses[tid].position - T_kibo_cam.position
        dist = float(np.linalg.norm(to_target))
        angle = math.degrees(math.acos(max(-1.0, min(1.0, float(axis @ to_target) / max(dist, 1e-9)))))
        miss = dist * math.sin(math.radians(min(angle, 90.0)))
        self.aim_count += 1
        if dist > AIM_MAX_RANGE_M or angle >= 90.0:
            return
        best = self.aims.get(tid)
        if best is None or angle < best["angle_deg"]:
            self.aims[tid] = {
                "angle_deg": round(angle, 4),
                "miss_m": round(miss, 4),
                "range_m": round(dist, 4),
                "t": round(self.t, 3),
            }

    def _snapshot(self, tid: int) -> None:
        """Record a snapshot of target ``tid`` with the geometry of the main camera's view of it,
        from the TRUE pose now (for the scorer's ``snapshots`` term; the behavior gets only the
        image): in_frame (the code's four corners project inside the image, in front of the
        camera), clear (no module surface between the camera and the code), range_m, off_axis_deg
        (optical axis to code centre), incidence_deg (code normal to the camera), code_px (side of
        the code in the image, px at the centre's depth)."""
        import pybullet as p  # noqa: PLC0415

        cam = self.cameras["main"]
        T_kibo_cam = Pose(self.truth.position, self.truth.quat).compose(cam.T_base_cam)
        R_kibo_cam = rotmat_from_quat(T_kibo_cam.quat)
        target = self.target_poses[tid]
        R_kibo_target = rotmat_from_quat(target.quat)
        half = 0.5 * self.scenario.target(tid).size
        K = np.asarray(cam.K)
        in_frame = True
        for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            corner = target.position + half * (a * R_kibo_target[:, 0] + b * R_kibo_target[:, 1])
            x, y, z = (R_kibo_cam.T @ (corner - T_kibo_cam.position)).tolist()
            if z <= cam.near:
                in_frame = False
                break
            u, v = float(K[0, 0] * x / z + K[0, 2]), float(K[1, 1] * y / z + K[1, 2])
            in_frame = in_frame and -0.5 <= u <= cam.width - 0.5 and -0.5 <= v <= cam.height - 0.5
        to_target = target.position - T_kibo_cam.position
        dist = float(np.linalg.norm(to_target))
        direction = to_target / max(dist, 1e-9)
        off_axis = math.degrees(math.acos(max(-1.0, min(1.0, float(R_kibo_cam[:, 2] @ direction)))))
        incidence = math.degrees(math.acos(max(-1.0, min(1.0, -float(R_kibo_target[:, 2] @ direction)))))
        if self._render_world is None:
            self._render_world = _RenderWorld(self.module, self.specs)
        end = target.position + SNAPSHOT_CLEARANCE_M * R_kibo_target[:, 2]
        hit = p.rayTest(T_kibo_cam.position.tolist(), end.tolist(), physicsClientId=self._render_world.cid)[0]
        depth = float(R_kibo_cam[:, 2] @ to_target)
        self.snapshot_count += 1
        record = {
            "n": self.snapshot_count,
            "t": round(self.t, 3),
            "target_id": tid,
            "in_frame": in_frame,
            "clear": bool(hit[0] < 0),
            "range_m": round(dist, 4),
            "off_axis_deg": round(off_axis, 4),
            "incidence_deg": round(incidence, 4),
            "code_px": round(float(K[0, 0]) * 2.0 * half / depth, 1) if depth > cam.near else 0.0,
        }
        # the best per target is the first with the highest quality, as the scorer picks it
        q = snapshot_quality(record)
        if tid not in self._best_snapshot or q > self._best_snapshot[tid][0]:
            self._best_snapshot[tid] = (q, record)
        if len(self.snapshots) < SNAPSHOT_LOG_MAX:
            self.snapshots.append(record)

    def kept_snapshots(self) -> list[dict[str, Any]]:
        """The snapshot records a run reports, in the order taken: the first SNAPSHOT_LOG_MAX and
        the best per target (at most SNAPSHOT_LOG_MAX + number of targets)."""
        kept = {r["n"]: r for r in self.snapshots}
        kept.update({r["n"]: r for _, r in self._best_snapshot.values()})
        return [kept[n] for n in sorted(kept)]

    def _take_image_token(self, op: str) -> None:
        """Spend one image request (token bucket in sim time); RateLimited when none is left (see
        IMAGE_BURST, IMAGE_PERIOD_S)."""
        earned = (self.t - self._image_tokens_t) / IMAGE_PERIOD_S
        self._image_tokens = min(float(IMAGE_BURST), self._image_tokens + earned)
        self._image_tokens_t = self.t
        if self._image_tokens < 1.0:
            self.images_refused += 1
            wait = (1.0 - self._image_tokens) * IMAGE_PERIOD_S
            raise RateLimited(
                f"{op} refused: image rate limit ({IMAGE_BURST} at once, then one per "
                f"{IMAGE_PERIOD_S:g} s of sim time); the next in {wait:.2f} s of sim time "
                "(move or wait first); nothing was rendered or recorded"
            )
        self._image_tokens -= 1.0
        self.images_rendered += 1

    def _report(self, tid: int, value: Any) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, str | int)
            or (isinstance(value, str) and len(value) > 200)
        ):
            raise RequestError(f"report value must be text (<= 200 chars) or an int id, got {value!r}")
        self.reports[tid] = value
        self.report_count += 1

    # ------------------------------------------------------------------ requests
    def mission_dict(self) -> dict[str, Any]:
        sc = self.scenario
        targets = []
        for t in sc.targets:
            bay = self.module.bay(t.bay)
            normal = rotmat_from_quat(bay.pose.quat)[:, 2]
            targets.append(
                {
                    "id": t.id,
                    "area": t.bay,
                    "approx_position": bay.centre.tolist(),
                    "normal": normal.tolist(),
                    "kind": t.kind,
                }
            )
        cams = {
            name: {
                "width": c.width,
                "height": c.height,
                "K": np.asarray(c.K).reshape(-1).tolist(),
                "T_base_cam": {
                    "position": c.T_base_cam.position.tolist(),
                    "quat": c.T_base_cam.quat.tolist(),
                },
            }
            for name, c in self.cameras.items()
            if name in ("main", "nav_left")
        }
        return {
            "mission": sc.mission,
            "seed": sc.seed,
            "time_limit_s": sc.time_limit_s,
            "targets": targets,
            "keep_in": [self.keep_in.min.tolist(), self.keep_in.max.tolist()],
            "keep_out": [
                {"name": z.name, "min": z.min.tolist(), "max": z.max.tolist()} for z in self.keep_out
            ],
            "robot_radius": self.robot.radius,
            "cameras": cams,
            "localization": self.localization,
        }

    def handle(self, request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """Serve one request -> (reply, blob). Bad requests get ``ok: False`` and a reason; after
        the end of the mission every request gets ``over: True``."""
        self.requests += 1
        op, args = request.get("op"), request.get("args", {})
        if not isinstance(args, dict):
            return {"ok": False, "error": "args must be an object"}, b""
        if self.done:
            return {"ok": False, "over": True, "error": f"mission over ({self.end_reason})"}, b""
        try:
            if op == "start_mission":
                if self.t0 is not None:
                    raise RequestError("start_mission was already called")
                if args.get("api_version") != 1:
                    raise RequestError(f"api_version {args.get('api_version')!r} not supported; supported: 1")
                self.t0 = self.backend.sim_time
                self._log(force=True)
                self._mission = self.mission_dict()
                return {"ok": True, "mission": self._mission}, b""
            if self.t0 is None:
                raise RequestError(f"call start_mission() before {op!r}")
            return self._dispatch(op, args)
        except RequestError as exc:
            reply = {"ok": False, "error": str(exc)}
            if exc.limit:
                reply["limit"] = exc.limit
            return reply, b""

    def _dispatch(self, op: Any, args: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        if op == "state":
            return {"ok": True, "state": _state_dict(self.estimate, self.t)}, b""
        if op == "time":
            return {"ok": True, "remaining": self.remaining, "t": self.t}, b""
        if op == "active_targets":
            return {"ok": True, "ids": [t.id for t in self.scenario.targets if t.id not in self.reports]}, b""
        if op in ("move_to", "move_relative", "look_at"):
            try:  # bad numbers are a failed move with the reason, like a refused goal
                return self._motion(op, args), b""
            except RequestError as exc:
                return self._move_reply(False, f"{op} refused: {exc}"), b""
        return self._other(op, args)

    def _motion(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        if op == "move_to":
            return self._move(*self._goal_from(args))
        if op == "move_relative":
            return self._move(*self._relative_goal(args))
        point = _numbers(args.get("point"), 3, "point")  # look_at
        cam = self._camera(args.get("camera", "main"))
        try:
            q = look_at(self.estimate.position, point, cam.T_base_cam, current_quat=self.estimate.quat).quat
        except PointingError as exc:
            return self._move_reply(False, f"cannot look at {point.tolist()}: {exc}")
        return self._move(Pose(self.estimate.position.copy(), q), "nominal")

    def _other(self, op: Any, args: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        if op == "wait":
            seconds = args.get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0.0 <= seconds <= 1e4:
                raise RequestError(f"seconds must be a number in [0, 10000], got {seconds!r}")
            self._advance(float(seconds))
            return {"ok": True, "state": _state_dict(self.estimate, self.t)}, b""
        if op in ("image", "snapshot"):
            name = "main" if op == "snapshot" else args.get("camera")
            cam = self._camera(name)
            tid = self._target_id(args) if op == "snapshot" else None
            self._take_image_token("snapshot" if op == "snapshot" else f"{name} image")
            if tid is not None:
                self._snapshot(tid)
            rgb = self.render(cam.name)
            return {"ok": True, "shape": list(rgb.shape), "dtype": "uint8"}, rgb.tobytes()
        if op == "aim":
            self._aim(self._target_id(args))
            return {"ok": True, "accepted": True}, b""
        if op == "report":
            self._report(self._target_id(args), args.get("value"))
            return {"ok": True, "accepted": True}, b""
        if op == "finish":
            self._end("finished")
            return {"ok": True}, b""
        if op == "step":
            return {"ok": True, "observation": self._step(args)}, b""
        raise RequestError(f"unknown call {op!r}")

    def _advance(self, seconds: float) -> None:
        if self.gnc.goal is None:
            self.gnc = hold_position(self.gnc, self.estimate, self.backend.sim_time)
        end = self.t + seconds
        while not self.done and self.t < end - 1e-9:
            self._tick()

    def _step(self, args: dict[str, Any]) -> dict[str, Any]:
        dt, actions = args.get("dt"), args.get("actions", {})
        if isinstance(dt, bool) or not isinstance(dt, int | float) or not 0.0 <= dt <= MAX_STEP_S:
            raise RequestError(f"step dt must be a number in [0, {MAX_STEP_S}] s, got {dt!r}")
        if not isinstance(actions, dict):
            raise RequestError("actions must be an object")
        unknown = set(actions) - {"goal", "aim", "snapshot", "report", "finish"}
        if unknown:
            raise RequestError(
                f"unknown actions {sorted(unknown)}; allowed: goal, aim, snapshot, report, finish"
            )
        messages = []
        if actions.get("goal") is not None:
            g = actions["goal"]
            if not isinstance(g, list) or len(g) not in (3, 7):
                raise RequestError(f"goal must be [x, y, z] or [x, y, z, qx, qy, qz, qw], got {g!r}")
            try:
                goal, mode = self._goal_from({"position": g[:3], "quat": g[3:] or None})
                self._check_goal(goal, mode)
                self.gnc = self._plan(goal, mode)
                messages.append(self.gnc.message)
            except (GoalRejected, RequestError) as exc:
                messages.append(f"goal rejected: {exc}")
        if actions.get("aim") is not None:
            self._aim(self._target_id({"target_id": actions["aim"]}))
        if actions.get("snapshot") is not None:  # recorded and scored; loop style gets no image
            self._snapshot(self._target_id({"target_id": actions["snapshot"]}))
            if self.snapshot_count == SNAPSHOT_LOG_MAX + 1:  # the first one not listed
                messages.append(
                    f"snapshot log full ({SNAPSHOT_LOG_MAX} kept): later snapshots still count, "
                    "only the best per target is kept from now on"
                )
        reports = actions.get("report") or {}
        if not isinstance(reports, dict):
            raise RequestError("report must be an object {target_id: value}")
        for key, value in reports.items():
            try:
                tid = int(key)
            except ValueError:
                raise RequestError(f"report key {key!r} is not a target id") from None
            self._report(self._target_id({"target_id": tid}), value)
        if actions.get("finish"):
            self._end("finished")
        else:
            self._advance(float(dt))
        return {
            "t": self.t,
            "time_remaining": self.remaining,
            "state": _state_dict(self.estimate, self.t),
            "goal_status": self.gnc.status,
            "goal_message": self.gnc.message,
            "active_targets": [t.id for t in self.scenario.targets if t.id not in self.reports],
            "events": messages,
            "done": self.done,
            "targets": self._mission["targets"],
            "keep_out": self._mission["keep_out"],
        }

    # ------------------------------------------------------------------ results
    def measures(self) -> dict[str, Any]:
        """What the scorer needs (truth-based) and the replay trajectory."""
        if not self.done:
            self._end("behavior ended")
        t0 = self.t0 if self.t0 is not None else 0.0
        collisions = [e for e in self.backend.collision_events if e.t >= t0 - 1e-9]
        return {
            "started": self.t0 is not None,
            "end_reason": self.end_reason,
            "mission_time_s": round(self.t, 4),
            "time_limit_s": self.scenario.time_limit_s,
            "reports": {str(k): v for k, v in sorted(self.reports.items())},
            "report_count": self.report_count,
            "aims": {str(k): v for k, v in sorted(self.aims.items())},
            "aim_count": self.aim_count,
            "snapshots": self.kept_snapshots(),
            "snapshot_count": self.snapshot_count,
            "images_rendered": self.images_rendered,
            "images_refused": self.images_refused,
            "collisions": [{"t": round(e.t - t0, 3), "body": e.name} for e in collisions[:MAX_LISTED_EVENTS]],
            "collisions_count": len(collisions),
            "keepout_events": self.keepout_events,
            "keepout_events_count": self.keepout_count,
            "energy_ns": round(self.energy_ns, 6),
            "requests": self.requests,
            "trajectory_columns": ["t", "x", "y", "z", "qx", "qy", "qz", "qw", "est_x", "est_y", "est_z"],
            "trajectory": self.trajectory,
        }

    def close(self) -> None:
        self.backend.close()
        if self.eye is not None:
            self.eye.close()
        if self._render_world is not None:
            self._render_world.close()
            self._render_world = None
