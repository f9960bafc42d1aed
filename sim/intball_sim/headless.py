"""Headless mission runner: PyBullet backend + named localization mode + GNC, no ROS.

Loop (fixed rates, sim time):

- physics: ``PyBulletBackend`` at ``PHYSICS_HZ`` (100 Hz), physics-only world (no
  textures, no markers), advanced one control period per tick;
- estimator: the named truth-based mode (``truth-noise`` or ``truth``) at the control rate
  (50 Hz). It is the ONLY path from ground truth to the controller;
- or ``vision``: :class:`intball_sim.vision_loop.VisionInLoop` steps the backend at the IMU
  rate, renders the nav camera from the true pose and runs the visual-inertial pipeline; the
  controller gets its estimate only. The runner waits (fans off) for the first visual fix, and
  while localization is lost (braking, safe, recovering) the mission and its clocks pause; after
  ``max_losses_per_waypoint`` losses on the way to one waypoint it gives that waypoint up;
- GNC: ``intball_nav.gnc.gnc_step`` at 50 Hz -> fan command (8,) N;
- waypoints: a goal is sent with ``set_goal``; when ``GncStatus.arrived`` the arrival is
  recorded (ground-truth position / attitude error to the waypoint), the robot holds for
  ``hold_s``, then the next goal is sent. A waypoint not reached within its timeout
  (``2 x planned duration + 30 s``) or rejected is recorded as not reached, with the
  reason, and the mission goes on to the next one.

Outputs in ``out_dir``: ``ground_truth.tum`` and ``estimate.tum`` (TUM ``t x y z qx qy qz
qw``, kibo frame, 25 Hz), ``summary.json`` and ``trajectory.png`` (see :mod:`report`).

CLI (via ``intball sim``, see :func:`add_arguments` / :func:`run`, or
``python -m intball_sim.headless``)::

    intball sim --mission FILE --out DIR [--realtime|--fast] [--seed N]
                [--localization truth|truth-noise|vision] [--max-time S]
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from intball_nav.config import ConfigError
from intball_nav.dynamics import RigidBodyState
from intball_nav.estimation.truth_noise import MODE_TRUTH, MODE_TRUTH_NOISE, TruthNoiseEstimator
from intball_nav.estimation.visual_localizer import MODE_VISION
from intball_nav.flight_modes import load_flight_modes
from intball_nav.frames import Pose, quat_angle
from intball_nav.gnc import GncParams, gnc_step, hold_position, initial_state, set_goal
from intball_nav.guidance import plan_segment
from intball_nav.mission import Mission, load_mission
from intball_nav.module import ModuleGeometry, load_module
from intball_nav.robot import RobotParams
from intball_nav.safety import Box, keep_in_from_module
from intball_nav.trajectory_io import write_tum
from intball_sim.report import plot_trajectory, write_summary

LOCALIZATION_MODES = (MODE_TRUTH, MODE_TRUTH_NOISE, MODE_VISION)
CONTROL_HZ = 50.0
"""GNC and estimator rate, Hz (IB2-class; Astrobee runs 62.5 Hz)."""
PHYSICS_HZ = 100.0
"""Physics rate of headless runs, Hz (the backend default is 200 Hz). At 100 Hz the
backend agrees with the analytic model to < 1 mm / 0.2 deg (integrator lead omega h / 2)
and the mission loop is ~1.5x faster than at 200 Hz."""
LOG_HZ = 25.0
"""Rate of the TUM trajectory files, Hz."""
TIMEOUT_FACTOR = 2.0
TIMEOUT_MARGIN_S = 30.0


@dataclass
class _WaypointRecord:
    index: int
    line: int
    flight_mode: str
    target: np.ndarray
    t_start: float
    planned_s: float
    timeout_s: float
    reached: bool = False
    t_arrival: float | None = None
    position_error_m: float | None = None
    attitude_error_deg: float | None = None
    hold_max_position_error_m: float | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "line": self.line,
            "flight_mode": self.flight_mode,
            "target": self.target.tolist(),
            "reached": self.reached,
            "t_start_s": self.t_start,
            "t_arrival_s": self.t_arrival,
            "time_to_arrive_s": None if self.t_arrival is None else self.t_arrival - self.t_start,
            "planned_s": self.planned_s,
            "position_error_m": self.position_error_m,
            "attitude_error_deg": self.attitude_error_deg,
            "hold_max_position_error_m": self.hold_max_position_error_m,
            "message": self.message,
        }


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance (m) between two (3,) points; plain floats (runs every tick while holding)."""
    (ax, ay, az), (bx, by, bz) = a.tolist(), b.tolist()
    dx, dy, dz = ax - bx, ay - by, az - bz
    return math.sqrt(dx * dx + dy * dy + dz * dz)


def _module_boxes(module: ModuleGeometry) -> tuple[Box, tuple[Box, ...]]:
    keep_out = tuple(Box(np.asarray(b.min), np.asarray(b.max), b.name) for b in module.keep_out)
    return keep_in_from_module(module), keep_out


def run_mission(
    mission: Mission | str | Path,
    out_dir: str | Path,
    *,
    realtime: bool = False,
    seed: int = 0,
    localization: str = MODE_TRUTH_NOISE,
    max_time: float | None = None,
    airflow: bool = True,
    thrust_noise: bool = True,
    control_hz: float = CONTROL_HZ,
    physics_hz: float = PHYSICS_HZ,
    plot: bool = True,
    robot: RobotParams | None = None,
    module: ModuleGeometry | None = None,
    vision: Any = None,
) -> dict[str, Any]:
    """Fly a mission headless and write the outputs; returns the summary dict.

    mission : a loaded Mission or a mission file path (loaded with ``load_mission``;
        raises ``MissionError`` "file:line: field: reason" on a bad file)
    out_dir : created if missing
    realtime : pace the loop to wall-clock time (else as fast as possible)
    seed : seeds thrust noise, airflow and the localization noise
    localization : ``"truth-noise"`` (ground truth + noise), ``"truth"`` (no noise) or
        ``"vision"`` (nav cameras + IMU + ESKF close the loop, :mod:`intball_sim.vision_loop`)
    vision : ``intball_sim.vision_loop.VisionOptions`` of the vision mode (None = defaults)
    max_time : s, stop the run at this sim time (remaining waypoints: not reached)
    """
    if localization not in LOCALIZATION_MODES:
        allowed = ", ".join(LOCALIZATION_MODES)
        raise ValueError(f"localization {localization!r} is not available headless; allowed: {allowed}")
    module = module if module is not None else load_module()
    keep_in, keep_out = _module_boxes(module)
    if not isinstance(mission, Mission):
        mission = load_mission(mission, keep_in=keep_in, keep_out=keep_out)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from intball_sim.backend import PyBulletBackend  # noqa: PLC0415 - keeps `intball --help` free of pybullet

    gnc_params = GncParams.default() if robot is None else GncParams(robot, GncParams.default().gains)
    robot = gnc_params.robot
    modes = load_flight_modes()
    dt = 1.0 / control_hz
    log_every = max(1, round(control_hz / LOG_HZ))

    backend = PyBulletBackend(
        robot,
        module,
        seed=seed,
        airflow=airflow,
        thrust_noise=thrust_noise,
        world=True,
        physics_hz=physics_hz,
        visuals=False,  # no cameras headless: physics-only world
    )
    # Separate streams: changing the localization mode must not change the physics.
    vision_mode = localization == MODE_VISION
    estimator = None if vision_mode else TruthNoiseEstimator(seed=seed + 1_000_003, mode=localization)
    eye = None  # the vision mode: its estimate is the only path to the controller
    try:
        if vision_mode:
            from intball_sim.vision_loop import VisionInLoop  # noqa: PLC0415 - renderer, OpenCV

            eye = VisionInLoop(module, robot, seed=seed, options=vision, start=mission.start)
        backend.reset(RigidBodyState(position=mission.start.position, quat=mission.start.quat))
        gnc = initial_state(modes[mission.flight_mode])
        records: list[_WaypointRecord] = []
        # TUM rows as plain lists (t, x, y, z, qx, qy, qz, qw): cheaper per row than arrays.
        log_truth: list[list[float]] = []
        log_est: list[list[float]] = []

        wall0, cpu0 = time.perf_counter(), time.process_time()
        t = 0.0
        tick = 0
        index = -1
        phase = "next"  # next -> flying -> holding -> next ... -> done
        hold_until = 0.0
        record: _WaypointRecord | None = None
        end_reason = "completed"
        truth = backend.state()
        if estimator is not None:
            estimate = estimator.update(truth)
        elif eye is not None:  # unknown start: fans off until the first good visual pose
            estimate = eye.wait_for_fix(backend, dt)
            t, truth = backend.sim_time, backend.state()
        override = None
        wp_losses, max_losses = 0, eye.options.max_losses_per_waypoint if eye is not None else 0
        fan_command = np.full(8, robot.fan_min)
        while True:
            paused = False
            if eye is not None:
                fix, override, changed = eye.supervise(t)
                estimate = fix if fix is not None else estimate
                paused = eye.paused  # lost / recovering: mission progress and its clocks stop
                if changed == "braking":
                    wp_losses += 1
                elif changed == "recovering":
                    gnc = hold_position(gnc, estimate, t)
                elif changed == "nominal" and phase == "flying" and wp_losses >= max_losses and record:
                    record.message = f"not reached: localization lost {wp_losses} times on the way"
                    phase = "next"  # give the waypoint up (e.g. a marker blind spot)
                elif changed == "nominal" and phase in ("flying", "holding"):
                    wp = mission.waypoints[index]  # re-plan to the current waypoint
                    mode = modes[wp.flight_mode]
                    gnc = set_goal(gnc, wp.pose, mode, t, estimate, keep_in, keep_out, radius=robot.radius)
                if paused and record is not None:
                    record.timeout_s += dt
                    hold_until += dt
            if phase == "next" and not paused:
                index += 1
                if index >= len(mission.waypoints):
                    break
                wp = mission.waypoints[index]
                mode = modes[wp.flight_mode]
                planned = plan_segment(Pose(estimate.position, estimate.quat), wp.pose, mode, t).duration
                record = _WaypointRecord(
                    index=index,
                    line=wp.line,
                    flight_mode=wp.flight_mode,
                    target=wp.pose.position.copy(),
                    t_start=t,
                    planned_s=planned,
                    timeout_s=TIMEOUT_FACTOR * planned + TIMEOUT_MARGIN_S,
                )
                records.append(record)
                wp_losses = 0
                gnc = set_goal(gnc, wp.pose, mode, t, estimate, keep_in, keep_out, radius=robot.radius)
                if gnc.status == "rejected":
                    record.message = gnc.message
                    continue  # phase stays "next"
                phase = "flying"

            if override is None:
                gnc, fan_command, status = gnc_step(gnc, estimate, t, gnc_params)
            else:
                fan_command = override  # braking on the estimated velocity, then fans off
            assert record is not None
            wp = mission.waypoints[index]
            if phase == "flying" and not paused:
                if status.arrived:
                    record.reached = True
                    record.t_arrival = t
                    record.position_error_m = _distance(truth.position, wp.pose.position)
                    record.attitude_error_deg = math.degrees(quat_angle(truth.quat, wp.pose.quat))
                    record.hold_max_position_error_m = record.position_error_m
                    record.message = "reached"
                    phase, hold_until = "holding", t + wp.hold_s
                elif t - record.t_start > record.timeout_s:
                    record.message = (
                        f"not reached within {record.timeout_s:.0f} s: at "
                        f"{np.linalg.norm(truth.position - wp.pose.position) * 100:.1f} cm, "
                        f"{math.degrees(quat_angle(truth.quat, wp.pose.quat)):.1f} deg ({status.message})"
                    )
                    phase = "next"
            if phase == "holding" and not paused:
                err = _distance(truth.position, wp.pose.position)
                record.hold_max_position_error_m = max(record.hold_max_position_error_m or 0.0, err)
                if t >= hold_until - 1e-9:
                    phase = "next"

            if tick % log_every == 0:
                log_truth.append([t, *truth.position.tolist(), *truth.quat.tolist()])
                log_est.append([t, *estimate.position.tolist(), *estimate.quat.tolist()])

            if eye is None:
                backend.step(fan_command, dt)
            else:
                eye.advance(backend, fan_command, dt)
            tick += 1
            t = backend.sim_time
            truth = backend.state()
            if estimator is not None:
                estimate = estimator.update(truth)
            if max_time is not None and t >= max_time:
                end_reason = f"max_time {max_time:g} s reached"
                break
            if realtime:
                ahead = t - (time.perf_counter() - wall0)
                if ahead > 0.0:
                    time.sleep(ahead)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

        log_truth.append([t, *truth.position.tolist(), *truth.quat.tolist()])
        log_est.append([t, *estimate.position.tolist(), *estimate.quat.tolist()])
        if end_reason != "completed":
            if record is not None and not record.reached and not record.message:
                record.message = f"not reached: {end_reason}"
            for k in range(len(records), len(mission.waypoints)):
                wp = mission.waypoints[k]
                records.append(
                    _WaypointRecord(
                        k,
                        wp.line,
                        wp.flight_mode,
                        wp.pose.position.copy(),
                        t,
                        0.0,
                        0.0,
                        message=f"not reached: {end_reason}",
                    )
                )
        truth_rows, est_rows = np.array(log_truth), np.array(log_est)
        times, truth_arr, est_arr = truth_rows[:, 0], truth_rows[:, 1:], est_rows[:, 1:]
        write_tum(out / "ground_truth.tum", times, truth_arr[:, :3], truth_arr[:, 3:])
        write_tum(out / "estimate.tum", times, est_arr[:, :3], est_arr[:, 3:])

        reached = [r.reached for r in records]
        arrived = [r for r in records if r.reached]
        events = backend.collision_events
        summary: dict[str, Any] = {
            "mission": mission.name,
            "mission_file": mission.source,
            "flight_mode": mission.flight_mode,
            "localization": localization,
            "seed": seed,
            "airflow": airflow,
            "thrust_noise": thrust_noise,
            "realtime": realtime,
            "end": end_reason,
            "all_reached": bool(records) and all(reached) and len(records) == len(mission.waypoints),
            "waypoints_reached": sum(reached),
            "waypoints_total": len(mission.waypoints),
            "max_position_error_m": max((r.position_error_m or 0.0) for r in arrived) if arrived else None,
            "max_attitude_error_deg": max((r.attitude_error_deg or 0.0) for r in arrived)
            if arrived
            else None,
            "sim_time_s": t,
            "wall_time_s": wall,
            "real_time_factor": t / wall if wall > 0 else None,
            "cpu_time_s": cpu,  # this process only: less sensitive to other load on the machine
            "real_time_factor_cpu": t / cpu if cpu > 0 else None,
            "collisions": len(events),
            "collision_events": [
                {"t_s": e.t, "body": e.name, "position": e.position.tolist()} for e in events
            ],
            "rates_hz": {
                "physics": 1.0 / backend.physics_dt,
                "control": control_hz,
                "estimator": control_hz,
                "log": control_hz / log_every,
            },
            "machine": {"platform": platform.platform(), "python": platform.python_version()},
            **({"vision": eye.summary()} if eye is not None else {}),
            "waypoints": [r.as_dict() for r in records],
        }
        write_summary(out / "summary.json", summary)
        if plot:
            plot_trajectory(
                out / "trajectory.png",
                module,
                truth_arr[:, :3],
                est_arr[:, :3],
                np.array([wp.pose.position for wp in mission.waypoints]),
                mission.start.position,
                reached=[r.reached for r in records],
                collisions=np.array([e.position for e in events]).reshape(-1, 3),
                title=f"{mission.name}: seed {seed}, {localization}, "
                f"{sum(reached)}/{len(mission.waypoints)} reached, {len(events)} collisions",
            )
        return summary
    finally:
        backend.close()
        if eye is not None:
            eye.close()


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``intball sim`` (the dispatcher in intball_ros/cli.py calls this)."""
    parser.add_argument("--mission", required=True, metavar="FILE", help="mission YAML file")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true", help="pace the simulation to wall-clock time")
    pace.add_argument("--fast", action="store_true", help="run as fast as possible (default)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    parser.add_argument(
        "--localization",
        choices=LOCALIZATION_MODES,
        default=MODE_TRUTH_NOISE,
        help="localization mode: truth-noise (default), truth, or vision (nav cameras + IMU + ESKF)",
    )
    parser.add_argument("--max-time", type=float, default=None, metavar="S", help="stop at this sim time (s)")


def run(args: argparse.Namespace) -> int:
    """Run ``intball sim``: 0 = all waypoints reached, 1 = some not reached, 2 = bad input."""
    path = Path(args.mission)
    if not path.is_file():
        print(f"intball sim: error: mission file not found: {path}", file=sys.stderr)
        return 2
    try:
        summary = run_mission(
            path,
            args.out,
            realtime=bool(args.realtime),
            seed=args.seed,
            localization=args.localization,
            max_time=args.max_time,
        )
    except ConfigError as exc:  # MissionError and data-file errors: "file:line: field: reason"
        print(f"intball sim: error: {exc}", file=sys.stderr)
        return 2
    for w in summary["waypoints"]:
        if w["reached"]:
            print(
                f"waypoint {w['index']}: reached at t={w['t_arrival_s']:.1f} s, "
                f"error {w['position_error_m'] * 100:.2f} cm / {w['attitude_error_deg']:.2f} deg"
            )
        else:
            print(f"waypoint {w['index']}: NOT reached: {w['message']}")
    rtf = summary["real_time_factor"]
    print(
        f"{summary['waypoints_reached']}/{summary['waypoints_total']} waypoints reached, "
        f"{summary['collisions']} collisions, sim {summary['sim_time_s']:.1f} s in "
        f"{summary['wall_time_s']:.1f} s (x{rtf:.0f}); outputs in {args.out}"
    )
    return 0 if summary["all_reached"] else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m intball_sim.headless --mission FILE --out DIR ...``"""
    parser = argparse.ArgumentParser(
        prog="intball sim", description="Fly a mission in the headless simulator."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
