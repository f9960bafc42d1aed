"""Docking trials in the headless PyBullet backend: success rate and error at contact.

    .venv/bin/python bench/bench_docking.py [--trials 100] [--seed0 0] [--no-undock]
                                            [--bias-mm 0] [--marker | --marker-vision]
                                            [--no-contact-sensor] [--no-latch-sensor]

Each trial: a random start in the front half of the module (x 0.5 .. 4.8 m, y and z anywhere
the robot fits with 0.05 m to spare, not within 0.05 m of the dock body), random attitude,
at rest; ``dock`` is requested at t = 0 through the autonomy supervisor
(``intball_nav.autonomy.supervisor``), which drives ``intball_nav.gnc``. Localization is the
estimator in its named ``truth-noise`` mode (ground truth + white noise, sigma 0.85 mm /
0.01 deg), at 50 Hz; physics at 100 Hz with airflow and fan thrust noise on. The contact
sensor is the simulator's contact with the ``dock`` body. The magnets are modelled physically
here: while the supervisor energises them, they capture the robot (a fixed PyBullet
constraint) only if the TRUE robot touches the dock within 10 mm laterally and 5 deg of the
docked pose; the latch sensor reports whether they did. After docking the robot stays docked
for 10 s (charging), then undocks to the 0.30 m standoff.

Options for the marker-correction check: ``--bias-mm B`` adds a constant B mm lateral bias to the
nav estimate (what a visual localization map error looks like near the dock); ``--marker`` feeds
the supervisor a synthetic dock-marker-relative pose = truth + noise (1 mm, 0.3 deg) whenever the
dock marker is geometrically visible to the left nav camera (``intball_sim.camera.visible_markers``);
``--marker-vision`` renders the left nav camera (320x240, EGL or TinyRenderer) at 10 Hz sim time
in the docking phases ``align``, ``settle`` and ``final`` and runs the real
``intball_nav.autonomy.dock_marker.DockMarkerSensor`` on each image, as the navigation node does:
a fix is carried to the tick time with the estimate's motion since the image
(``dock_marker.at_time``) and used while at most 0.3 s old. Unlike the graph, the image has no
transport latency here (it is rendered at the tick's true pose and measured at once).

Success = physically latched and in mode ``docked`` within 300 s of sim time, with no
collision other than with the dock. Position error at contact = |robot centre (ground truth)
at the first dock contact - docked point| where the docked point is the robot touching the dock
face centre (0.100 m in front of it; the 0.095 m approach point is the commanded preload
target, see docs/autonomy.md).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import pybullet as p

from intball_nav.autonomy.faults import CollisionReport
from intball_nav.autonomy.modes import Event, Mode
from intball_nav.autonomy.params import load_autonomy_params
from intball_nav.autonomy.supervisor import AutonomyState, Context, Request, TickInputs, handle_request, tick
from intball_nav.dynamics import RigidBodyState
from intball_nav.estimation.truth_noise import MODE_TRUTH_NOISE, TruthNoiseEstimator
from intball_nav.flight_modes import load_flight_modes
from intball_nav.frames import Pose, quat_angle, quat_from_rotvec, quat_multiply, quat_normalize
from intball_nav.gnc import GncParams
from intball_nav.module import MarkerMap, ModuleGeometry, load_marker_map, load_module
from intball_nav.safety import Box, keep_in_from_module

CONTROL_HZ = 50.0
PHYSICS_HZ = 100.0
MAX_TIME_S = 300.0
DOCKED_HOLD_S = 10.0
X_RANGE = (0.5, 4.8)
START_MARGIN = 0.05
STREAMS = ("odometry", "fan_command", "imu")
MAGNET_CAPTURE_M = 0.010
"""m, lateral offset (ground truth) within which the magnets capture the robot."""
MAGNET_CAPTURE_DEG = 5.0
MAGNET_GAP_M = 0.002
"""m, largest gap between the robot and the dock face at which the magnets capture."""


@dataclass
class TrialResult:
    seed: int
    start: list[float]
    docked: bool = False
    t_docked: float | None = None
    contact_error_m: float | None = None  # |p_true - docked point| at the first dock contact
    contact_lateral_m: float | None = None
    contact_gap_m: float | None = None  # centre-to-face distance minus radius (negative: pressed in)
    contact_attitude_deg: float | None = None
    contact_speed_mps: float | None = None
    attempts: int = 0
    collisions: list[str] = field(default_factory=list)
    docked_drift_m: float | None = None
    battery_docked_delta: float | None = None
    undocked: bool | None = None
    standoff_error_m: float | None = None
    message: str = ""
    marker_views: int = 0  # --marker-vision: nav images measured / with the dock marker
    marker_seen: int = 0

    @property
    def success(self) -> bool:
        return self.docked and not self.collisions


def random_start(rng: np.random.Generator, module: ModuleGeometry, radius: float) -> RigidBodyState:
    """A random pose at rest in the front half, where the robot fits with START_MARGIN to spare."""
    m = radius + START_MARGIN
    box = module.dock.box
    while True:
        pos = np.array(
            [
                rng.uniform(*X_RANGE),
                rng.uniform(module.clear_min[1] + m, module.clear_max[1] - m),
                rng.uniform(module.clear_min[2] + m, module.clear_max[2] - m),
            ]
        )
        if not box.contains(pos, margin=m):
            break
    q = quat_normalize(rng.standard_normal(4))  # uniform on SO(3)
    return RigidBodyState(position=pos, quat=q)


def _marker_pose(truth: RigidBodyState, rng, module, cam, marker_map, visible_markers) -> Pose | None:
    """Synthetic dock-marker-relative pose (truth + noise) if the left nav camera sees the marker."""
    T_kibo_base = Pose(truth.position, truth.quat)
    if module.dock.marker_id not in visible_markers(cam, T_kibo_base.compose(cam.T_base_cam), marker_map):
        return None
    T_db = module.dock.pose.inverse().compose(T_kibo_base)
    dq = quat_from_rotvec(math.radians(0.3) * rng.standard_normal(3))
    return Pose(T_db.position + 1e-3 * rng.standard_normal(3), quat_multiply(T_db.quat, dq))


MARKER_PHASES = ("align", "settle", "final")
"""Docking phases in which the navigation node measures nav images (``intball_ros.dock_actions``)."""
NAV_CAMERA_HZ = 10.0
FIX_MAX_AGE_S = 0.3


class VisionMarker:
    """The navigation node's dock-marker path on rendered nav images (``--marker-vision``)."""

    def __init__(self, backend, module: ModuleGeometry) -> None:
        from intball_nav.autonomy.dock_marker import DockMarkerSensor  # noqa: PLC0415
        from intball_sim.camera import load_cameras  # noqa: PLC0415

        self.cam = load_cameras()["nav_left"]
        self.sensor = DockMarkerSensor(module.dock, load_marker_map(), self.cam)
        self.renderer = backend.renderer
        self.fix = None  # (DockMarkerFix, estimate at its stamp)
        self.views = self.seen = 0
        self.t_next = 0.0

    def step(self, t: float, phase: str | None, truth: RigidBodyState, est: RigidBodyState) -> Pose | None:
        """T_dock_base for the supervisor at ``t`` (None without a recent fix)."""
        from intball_nav.autonomy.dock_marker import at_time  # noqa: PLC0415

        if phase in MARKER_PHASES and t >= self.t_next - 1e-9:
            self.t_next = t + 1.0 / NAV_CAMERA_HZ
            T_kibo_cam = Pose(truth.position, truth.quat).compose(self.cam.T_base_cam)  # what it sees
            rgb, _ = self.renderer.render(self.cam, T_kibo_cam)
            fix = self.sensor.measure(rgb, t)
            self.views += 1
            if fix is not None:
                self.seen += 1
                self.fix = (fix, Pose(est.position, est.quat))
        if self.fix is None or not 0.0 <= t - self.fix[0].stamp <= FIX_MAX_AGE_S:
            return None
        return at_time(self.fix[0], self.fix[1], Pose(est.position, est.quat))


def run_trial(
    seed: int,
    *,
    undock: bool = True,
    bias_m: float = 0.0,
    marker: bool = False,
    marker_vision: bool = False,
    contact_sensor: bool = True,
    latch_sensor: bool = True,
    module: ModuleGeometry | None = None,
) -> TrialResult:
    """One docking (and undocking) trial; see the module docstring."""
    from intball_sim.backend import PyBulletBackend  # noqa: PLC0415

    module = module if module is not None else load_module()
    gnc_params = GncParams.default()
    robot = gnc_params.robot
    params = load_autonomy_params(module=module, radius=robot.radius)
    keep_in = keep_in_from_module(module)
    keep_out = tuple(Box(np.asarray(b.min), np.asarray(b.max), b.name) for b in module.keep_out)
    ctx = Context(params, gnc_params, load_flight_modes(), keep_in, keep_out)
    dock = params.docking
    rng = np.random.default_rng(seed)
    start = random_start(rng, module, robot.radius)
    result = TrialResult(seed, start.position.round(3).tolist())
    bias = np.zeros(3)
    if bias_m:
        direction = rng.standard_normal(3)
        direction -= (direction @ module.dock.normal) * module.dock.normal  # lateral to the dock
        bias = bias_m * direction / np.linalg.norm(direction)
    cam = marker_map = visible = None
    if marker:
        from intball_sim.camera import load_cameras, visible_markers  # noqa: PLC0415

        full = load_marker_map()
        only_dock = MarkerMap(full.dictionary, (full.by_id(module.dock.marker_id),))
        cam, marker_map, visible = load_cameras()["nav_left"], only_dock, visible_markers

    backend = PyBulletBackend(
        robot,
        module,
        seed=seed,
        world=True,
        physics_hz=PHYSICS_HZ,
        visuals=marker_vision,
        render=marker_vision,
        prefer_egl=True,
    )
    vision = VisionMarker(backend, module) if marker_vision else None
    estimator = TruthNoiseEstimator(seed=seed + 1_000_003, mode=MODE_TRUTH_NOISE)
    dock_id = backend.world.obstacles["dock"]
    cid, rid = backend.client_id, backend.robot_id
    latch: int | None = None
    n = module.dock.normal
    try:
        backend.reset(start)
        dt = 1.0 / CONTROL_HZ
        truth = backend.state()
        est = estimator.update(truth)
        state = AutonomyState()
        state, tr = handle_request(state, Request(Event.DOCK), est, 0.0, ctx)
        assert tr.accepted, tr.reason
        fans = np.zeros(8)
        seen_events = 0
        t = 0.0
        first_contact = False
        t_docked = None
        docked_pos = None
        battery_at_dock = None
        undock_requested = False
        while t < MAX_TIME_S:
            events = backend.collision_events[seen_events:]
            seen_events = len(backend.collision_events)
            collisions = tuple(CollisionReport(e.t, e.name) for e in events)
            for c in collisions:
                if "dock" not in c.body.split("+"):
                    result.collisions.append(f"{c.body} at {c.t:.1f} s")
            contact = any(c.body_id == dock_id for c in backend.collisions())
            err = truth.position - dock.docked_pose.position
            if contact and not first_contact and state.mode.mode == Mode.DOCKING:
                first_contact = True
                result.contact_error_m = float(np.linalg.norm(err))
                result.contact_gap_m = float(err @ n)
                result.contact_lateral_m = float(np.linalg.norm(err - (err @ n) * n))
                result.contact_attitude_deg = math.degrees(quat_angle(truth.quat, dock.docked_quat))
                result.contact_speed_mps = float(np.linalg.norm(truth.velocity))
            # The supervisor reads the marker pose at the standoff and on the final leg only.
            near = state.docking is not None and state.docking.phase in ("settle", "final", "latching")
            T_db = _marker_pose(truth, rng, module, cam, marker_map, visible) if marker and near else None
            if vision is not None and state.mode.mode == Mode.DOCKING:
                T_db = vision.step(t, state.docking.phase if state.docking else None, truth, est)
            inputs = TickInputs(
                t,
                dt,
                est,
                fans,
                {s: 0.0 for s in STREAMS},
                collisions=collisions,
                dock_contact=contact if contact_sensor else None,
                latch_sensor=(latch is not None) if latch_sensor else None,
                T_dock_base=T_db,
            )
            state, out = tick(state, inputs, ctx)
            for tr in out.transitions:
                if tr.event == Event.DOCK_FAILED:
                    result.message = f"{tr.reason}: {out.docking_message}"
            captured = (
                float(err @ n) <= MAGNET_GAP_M
                and float(np.linalg.norm(err - (err @ n) * n)) <= MAGNET_CAPTURE_M
                and math.degrees(quat_angle(truth.quat, dock.docked_quat)) <= MAGNET_CAPTURE_DEG
            )
            if out.latched and latch is None and captured:
                pos, orn = p.getBasePositionAndOrientation(rid, physicsClientId=cid)
                latch = p.createConstraint(
                    rid, -1, -1, -1, p.JOINT_FIXED, [0, 0, 0], [0, 0, 0], pos, orn, physicsClientId=cid
                )
            elif not out.latched and latch is not None:
                p.removeConstraint(latch, physicsClientId=cid)
                latch = None
            if state.mode.mode == Mode.DOCKED and t_docked is None:
                if latch is None:
                    result.message = "false dock: the supervisor says docked, the magnets did not capture"
                    break
                t_docked = t
                result.docked, result.t_docked = True, round(t, 2)
                result.attempts = state.docking.attempt if state.docking else 0
                result.message = state.docking.message if state.docking else state.mode.reason
                docked_pos, battery_at_dock = truth.position.copy(), state.battery.level
            if t_docked is not None and not undock_requested and t - t_docked >= DOCKED_HOLD_S:
                result.docked_drift_m = float(np.linalg.norm(truth.position - docked_pos))
                result.battery_docked_delta = state.battery.level - battery_at_dock
                if not undock:
                    break
                undock_requested = True
                state, tr = handle_request(state, Request(Event.UNDOCK), est, t, ctx)
                if not tr.accepted:
                    result.undocked, result.message = False, tr.reason
                    break
            if undock_requested and state.mode.mode != Mode.UNDOCKING:
                result.undocked = state.mode.mode == Mode.STATION_KEEPING and "undocked" in state.mode.reason
                result.standoff_error_m = float(
                    np.linalg.norm(truth.position - module.dock.approach_point(dock.undock_standoff))
                )
                break
            if (
                state.mode.mode in (Mode.STATION_KEEPING, Mode.FAULTED, Mode.EMERGENCY_STOP)
                and not undock_requested
            ):
                result.message = result.message or state.mode.reason
                break
            fans = out.fan_command
            backend.step(fans, dt)
            t = backend.sim_time
            truth = backend.state()
            est = estimator.update(truth)
            if bias_m:
                est = RigidBodyState._trusted(est.position + bias, est.quat, est.velocity, est.omega)
        if not result.docked and not result.message:
            result.message = f"not docked in {MAX_TIME_S:.0f} s ({state.mode.mode}: {state.mode.reason})"
        if state.docking is not None and not result.attempts:
            result.attempts = state.docking.attempt
        if vision is not None:
            result.marker_views, result.marker_seen = vision.views, vision.seen
        return result
    finally:
        backend.close()


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarize(results: list[TrialResult], label: str) -> str:
    n = len(results)
    ok = [r for r in results if r.success]
    errs = [r.contact_error_m for r in ok if r.contact_error_m is not None]
    lat = [r.contact_lateral_m for r in ok if r.contact_lateral_m is not None]
    att = [r.contact_attitude_deg for r in ok if r.contact_attitude_deg is not None]
    spd = [r.contact_speed_mps for r in ok if r.contact_speed_mps is not None]
    times = [r.t_docked for r in ok if r.t_docked is not None]
    und = [r for r in results if r.undocked is not None]
    lines = [
        f"#### {label}",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| trials | {n} |",
        f"| docked (latched, no collision but the dock) | {len(ok)} / {n} = {100 * len(ok) / n:.1f} % |",
        f"| position error at contact, median / 95th pct / max | {1000 * statistics.median(errs):.2f} / "
        f"{1000 * _pct(errs, 95):.2f} / {1000 * max(errs):.2f} mm |"
        if errs
        else "| position error at contact | n/a |",
        f"| of which lateral, median / max | {1000 * statistics.median(lat):.2f} / {1000 * max(lat):.2f} mm |"
        if lat
        else "| lateral | n/a |",
        f"| contacts within 1 cm | {sum(e <= 0.01 for e in errs)} / {len(errs)} |",
        f"| attitude error at contact, median / max | {statistics.median(att):.2f} / {max(att):.2f} deg |"
        if att
        else "| attitude | n/a |",
        f"| speed at contact, median / max | {1000 * statistics.median(spd):.1f} / "
        f"{1000 * max(spd):.1f} mm/s |"
        if spd
        else "| speed | n/a |",
        f"| time to dock, median / max | {statistics.median(times):.0f} / {max(times):.0f} s |"
        if times
        else "| time | n/a |",
        f"| final approaches needed: 1 / 2 / 3 | {sum(r.attempts == 1 for r in ok)} / "
        f"{sum(r.attempts == 2 for r in ok)} / {sum(r.attempts == 3 for r in ok)} |",
    ]
    views = sum(r.marker_views for r in results)
    if views:
        lines.append(
            f"| dock marker in rendered nav images (align..final) | {sum(r.marker_seen for r in results)} "
            f"/ {views} |"
        )
    charge = [r.battery_docked_delta for r in ok if r.battery_docked_delta is not None]
    if charge:
        lines.append(f"| battery gained in 10 s docked (fans off, charging) | {100 * min(charge):.3f} % |")
    if und:
        se = [r.standoff_error_m for r in und if r.undocked and r.standoff_error_m is not None]
        lines.append(
            f"| undocked to the 0.30 m standoff | {sum(bool(r.undocked) for r in und)} / {len(und)} |"
        )
        if se:
            lines.append(f"| standoff error after undocking, max | {1000 * max(se):.1f} mm |")
    failures = [r for r in results if not r.success]
    if failures:
        touched = [r.contact_error_m for r in failures if r.contact_error_m is not None]
        if touched:
            lines.append(
                "| failed trials: error at first contact, median / max | "
                f"{1000 * statistics.median(touched):.1f} / {1000 * max(touched):.1f} mm |"
            )
        lines.append("")
        shown = "; ".join(
            f"seed {r.seed} start {r.start}: {r.message} {r.collisions or ''}" for r in failures[:5]
        )
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        lines.append(f"Failures: {shown}{more}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--seed0", type=int, default=0)
    ap.add_argument("--no-undock", action="store_true")
    ap.add_argument("--bias-mm", type=float, default=0.0)
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--marker", action="store_true", help="synthetic dock-marker pose (truth + noise)")
    how.add_argument(
        "--marker-vision", action="store_true", help="render the nav camera, run DockMarkerSensor"
    )
    ap.add_argument("--no-contact-sensor", action="store_true", help="detect contact by gap + stall only")
    ap.add_argument(
        "--no-latch-sensor", action="store_true", help="trust the estimate for the magnet capture"
    )
    args = ap.parse_args(argv)
    module = load_module()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    results = []
    for k in range(args.trials):
        results.append(
            run_trial(
                args.seed0 + k,
                undock=not args.no_undock,
                bias_m=args.bias_mm / 1000.0,
                marker=args.marker,
                marker_vision=args.marker_vision,
                contact_sensor=not args.no_contact_sensor,
                latch_sensor=not args.no_latch_sensor,
                module=module,
            )
        )
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    loc = "truth-noise localization"
    if args.bias_mm:
        loc += f" + {args.bias_mm:g} mm lateral bias"
    if args.marker_vision:
        loc += ", dock marker measured in rendered nav images (DockMarkerSensor)"
    else:
        loc += ", synthetic dock-marker pose" if args.marker else ", no dock-marker pose"
    sensor = "gap + stall contact detection" if args.no_contact_sensor else "simulator contact sensor"
    sensor += ", no latch sensor" if args.no_latch_sensor else ", latch sensor"
    label = f"Docking, seeds {args.seed0}..{args.seed0 + args.trials - 1}: {loc}, {sensor}"
    print(summarize(results, label))
    load = os.getloadavg()
    print(
        f"\n_{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {load[0]:.1f}; "
        f"{wall:.0f} s wall, {cpu:.0f} s CPU for {args.trials} trials; python {sys.version.split()[0]}_"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
