"""Relocalization (kidnapped robot): natural features alone, or the robot's full pipeline.

    .venv/bin/python bench/bench_reloc.py [--features-only | --pipeline [--aux main|none]]
        [--trials 100] [--rate-deg 15] [--fps 10] [--seed 0] [--map FILE]

Two modes, the same trials (same seeds give the same poses, rotation axes and frames):

- ``--features-only`` (default): markers REMOVED from the world, ``FeatureLocalizer`` alone
  (below);
- ``--pipeline``: the default world (every marker present) and the localization the robot runs,
  ``VisualLocalizer`` (markers first, the feature map when fewer than 2 markers agree, a single
  marker last) fused by its ESKF, fed a synthetic IMU (see "Pipeline mode").

Trial protocol (one trial = one kidnapping):

- The robot centre is drawn uniformly in the keep-in box (clear volume shrunk by the 0.10 m robot
  radius) and outside the keep-out cargo bag and the dock grown by that radius, its attitude
  uniformly on SO(3): anywhere the robot fits, any orientation, including the camera a few cm
  from a rack looking at a blank blur.
- The robot rotates in place about a random axis at ``--rate-deg`` (deg/s; 0 = static) and the
  left nav camera (320x240, EGL render of the module WITHOUT fiducial markers) delivers a frame
  every 1/``--fps`` s of sim time, starting at t = 0.
- ``FeatureLocalizer.localize(frame, t, prior=None)`` runs on every frame until it returns a
  pose; a trial succeeds if the first returned pose is within 5 cm and 2 deg of the truth and
  its frame time is <= 2 s. A returned pose outside that tolerance is a **false accept** (the
  trial fails; counted separately). Images are ideal renders: no noise, motion blur or
  exposure changes.
- After the first pose, the remaining frames of the 2 s window are tracked with the previous
  measurement as the prior (pure visual tracking, no IMU): their errors give the tracking
  accuracy and cost.
- The success rate is also given for the "open" trials, whose first frame has a median depth
  >= 0.5 m (the camera does not face a rack from close by), since closer views mostly fail.

Per-frame cost: wall time of ``localize`` (median), relocalization (no prior) and tracking
(prior) separately, OpenCV limited to one thread. Prints a Markdown block for docs/benchmarks.md.

Pipeline mode (``--pipeline``), same poses, rotation, frame times and 2 s window, no prior:

- a fresh ``VisualLocalizer`` per trial (default ``VisualLocalizerParams`` with
  ``EskfParams.from_imu`` of the IMU model, ``MarkerLocalizer`` and ``FeatureLocalizer`` of the
  left nav camera, no stereo/ICP), no ``set_prior``: the filter initialises from its first
  qualifying visual pose (>= 2 markers, a feature-map pose, or a precise non-ambiguous single
  marker);
- ``--aux main`` (default, as the estimator node): the front main camera (640x480, 75 deg, looking
  the other way) at 5 Hz (every other nav frame), resized to 320x240, feeds the auxiliary
  ``FeatureLocalizer`` through ``add_aux_frame`` whenever ``needs_aux_frame`` says the nav camera
  has given no pose (it is only rendered then); ``--aux none`` is the nav camera alone;
- IMU at 100 Hz from t = 0 (``intball_sim.imu.Imu``, seeded per trial, with its noise, turn-on
  bias and bias walk): true body rate = the constant commanded rotation, specific force 0 (the
  robot turns in place about its centre); frames are processed at their capture time (no
  latency), after the IMU sample of that instant;
- **success**: at the end of the window (t = 2 s, after the last frame) the filter is
  initialised and its estimate is within 5 cm and 2 deg of the truth. **Wrong pose**: initialised
  at the end but off by more than 10 cm or 5 deg (between the two: "inaccurate"). Trials whose
  estimate was off by more than 10 cm / 5 deg after any frame of the window are also counted.
  Time to first fix = stamp of the frame whose pose initialised the filter.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import cv2
import numpy as np
import pybullet as p

from intball_nav.estimation.eskf import EskfParams
from intball_nav.estimation.visual_localizer import SOURCES, VisualLocalizer, VisualLocalizerParams
from intball_nav.frames import Pose, quat_angle, quat_from_rotvec, quat_multiply, rotmat_from_quat
from intball_nav.module import load_marker_map, load_module
from intball_nav.vision.camera_geometry import resized_camera
from intball_nav.vision.feature_map import FeatureLocalizer, load_feature_map
from intball_nav.vision.markers import MarkerLocalizer
from intball_sim.camera import Renderer, load_cameras
from intball_sim.imu import Imu, load_imu_params
from intball_sim.mapping import default_feature_map
from intball_sim.world import build_world

ROBOT_RADIUS = 0.10
OK_POS = 0.05
OK_DEG = 2.0
WINDOW_S = 2.0
WRONG_POS = 0.10
WRONG_DEG = 5.0
"""pipeline mode: an initialised estimate off by more than these is a wrong pose."""
OPEN_DEPTH = 0.5
"""m, a trial is 'open' when its first frame's median depth is at least this (not facing a rack
from close by)."""


def draw_trial(
    rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, obstacles: list
) -> tuple[Pose, np.ndarray]:
    """One kidnapping: start pose (uniform in the keep-in box outside the obstacles, uniform
    attitude) and unit rotation axis (kibo frame). Both modes draw the same sequence."""
    q = rng.normal(size=4)
    position = rng.uniform(lo, hi)
    while any(box.contains(position, ROBOT_RADIUS) for box in obstacles):
        position = rng.uniform(lo, hi)
    T0 = Pose(position, q / np.linalg.norm(q))
    axis = rng.normal(size=3)
    return T0, axis / np.linalg.norm(axis)


def pose_error(est: Pose, truth: Pose) -> tuple[float, float]:
    """(position error m, attitude error deg)."""
    e_p = float(np.linalg.norm(est.position - truth.position))
    return e_p, float(np.degrees(quat_angle(est.quat, truth.quat)))


def run_pipeline(
    args: argparse.Namespace,
    renderer: Renderer,
    cam: object,
    floc: FeatureLocalizer,
    marker_map: object,
    rng: np.random.Generator,
    box: tuple[np.ndarray, np.ndarray],
    obstacles: list,
    n_frames: int,
    map_note: str,
    aux: tuple[FeatureLocalizer, object] | None = None,
) -> None:
    """``--pipeline``: VisualLocalizer (markers + features + ESKF) on the default world, synthetic
    IMU; prints the Markdown block (module docstring, "Pipeline mode")."""
    imu_params = load_imu_params()
    dt = imu_params.dt
    n_imu = round(WINDOW_S / dt)
    rate = np.radians(args.rate_deg)
    # per trial: (status at the end, first-frame marker count, open, fix time, init source, ever wrong)
    results: list[tuple[str, int, bool, float | None, str | None, bool]] = []
    end_pos, end_ang, costs, aux_costs = [], [], [], []
    for trial in range(args.trials):
        T0, axis = draw_trial(rng, *box, obstacles)
        if args.only and trial not in args.only:
            continue
        omega_body = rotmat_from_quat(T0.quat).T @ (axis * rate)  # constant: the axis is fixed in kibo
        imu = Imu(imu_params, seed=args.seed * 100_003 + trial + 5_000_011)
        vl = VisualLocalizer(
            VisualLocalizerParams(eskf=EskfParams.from_imu(imu_params)),
            MarkerLocalizer(marker_map, cam),
            floc,
            aux_localizer=None if aux is None else aux[0],
        )
        n_first, is_open, fix_t, fix_src, ever_wrong, k = 0, False, None, None, False, 0
        for i in range(n_imu + 1):
            t = i * dt
            s = imu.sample(t, np.zeros(3), omega_body, None, dt)
            vl.add_imu(t, s.angular_rate, s.specific_force)
            while k < n_frames and k / args.fps <= t + 1e-9:
                t_k = k / args.fps
                truth = Pose(T0.position, quat_multiply(quat_from_rotvec(axis * rate * t_k), T0.quat))
                rgb, depth = renderer.render(cam, truth.compose(cam.T_base_cam))
                outcomes = vl.add_nav_frame(t_k, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
                if k == 0:
                    n_first = outcomes[0].n_markers
                    is_open = float(np.median(depth)) >= OPEN_DEPTH
                if aux is not None and k % 2 == 0 and vl.needs_aux_frame(t_k):
                    main = aux[1]
                    rgb_main, _ = renderer.render(main, truth.compose(main.T_base_cam))
                    outcomes = outcomes + vl.add_aux_frame(t_k, cv2.cvtColor(rgb_main, cv2.COLOR_RGB2GRAY))
                for o in outcomes:
                    if o.status == "initialised" and fix_t is None:
                        fix_t, fix_src = t_k, o.source
                est, _, _ = vl.estimate(t_k)
                if est is not None:
                    e_p, e_a = pose_error(Pose(est.position, est.quat), truth)
                    if e_p > WRONG_POS or e_a > WRONG_DEG:
                        ever_wrong = True
                        if args.progress:
                            print(
                                f"trial {trial} t {t_k:.1f} s: estimate off {100 * e_p:.1f} cm "
                                f"{e_a:.2f} deg; outcomes {[(o.source, o.status) for o in outcomes]}",
                                file=sys.stderr,
                            )
                k += 1
        costs += vl.frame_costs
        aux_costs += vl.aux_costs
        truth = Pose(T0.position, quat_multiply(quat_from_rotvec(axis * rate * WINDOW_S), T0.quat))
        est, _, _ = vl.estimate(WINDOW_S)
        if est is None:
            status = "none"
        else:
            e_p, e_a = pose_error(Pose(est.position, est.quat), truth)
            end_pos.append(e_p)
            end_ang.append(e_a)
            if e_p <= OK_POS and e_a <= OK_DEG:
                status = "ok"
            elif e_p > WRONG_POS or e_a > WRONG_DEG:
                status = "wrong"
            else:
                status = "inaccurate"
            if status != "ok":
                print(
                    f"trial {trial}: {status} at {WINDOW_S:g} s, {100 * e_p:.1f} cm {e_a:.2f} deg "
                    f"(fix {fix_t} s by {fix_src}, first frame {n_first} markers)",
                    file=sys.stderr,
                )
        results.append((status, n_first, is_open, fix_t, fix_src, ever_wrong))
        if args.progress:
            print(f"trial {trial}: {status}, fix {fix_t} by {fix_src}, markers {n_first}", file=sys.stderr)

    n = len(results)

    def rate_of(rows: list) -> str:
        ok = sum(r[0] == "ok" for r in rows)
        return f"{ok}/{len(rows)} = {100 * ok / len(rows):.0f} %" if rows else "0/0"

    fix = np.array([r[3] for r in results if r[0] == "ok"])
    srcs = [r[4] for r in results if r[3] is not None]
    table = [
        (
            f"localized at {WINDOW_S:g} s (filter initialised, estimate <= 5 cm and <= 2 deg from truth)",
            rate_of(results),
        ),
        ("first frame: pose from >= 2 markers", rate_of([r for r in results if r[1] >= 2])),
        ("first frame: 1 marker", rate_of([r for r in results if r[1] == 1])),
        ("first frame: no marker", rate_of([r for r in results if r[1] == 0])),
        (
            f"first frame sees >= {OPEN_DEPTH:g} m (median depth) / closer",
            f"{rate_of([r for r in results if r[2]])} / {rate_of([r for r in results if not r[2]])}",
        ),
        (
            f"wrong pose at {WINDOW_S:g} s (initialised, > 10 cm or > 5 deg)",
            f"{sum(r[0] == 'wrong' for r in results)} of {n}",
        ),
        (
            "inaccurate at the end (5-10 cm or 2-5 deg) / not initialised",
            f"{sum(r[0] == 'inaccurate' for r in results)} / {sum(r[0] == 'none' for r in results)}",
        ),
        (
            "estimate off by > 10 cm or > 5 deg after any frame of the window",
            f"{sum(r[5] for r in results)} of {n} trials",
        ),
    ]
    if len(fix):
        table.append(
            (
                "time to first fix, successful trials: median / max",
                f"{np.median(fix):.1f} / {fix.max():.1f} s ({np.mean(fix == 0):.0%} on the first frame)",
            )
        )
    table.append(
        (
            "source of the initialising pose",
            ", ".join(f"{s} {srcs.count(s)}" for s in SOURCES if srcs.count(s)) or "-",
        )
    )
    if end_pos:
        ep, ea = np.array(end_pos), np.array(end_ang)
        table.append(
            (
                f"error at {WINDOW_S:g} s, initialised trials: position median / p95; angle median / p95",
                f"{1e3 * np.median(ep):.1f} / {1e3 * np.percentile(ep, 95):.1f} mm; "
                f"{np.median(ea):.2f} / {np.percentile(ea, 95):.2f} deg",
            )
        )
    c = 1e3 * np.array(costs)
    table.append(
        (
            "per-frame cost (VisualLocalizer CPU time: markers, features, filter): median / p90",
            f"{np.median(c):.0f} / {np.percentile(c, 90):.0f} ms ({len(c)} frames)",
        )
    )
    if aux is not None:
        a = 1e3 * np.array(aux_costs)
        table.append(
            (
                "auxiliary main-camera frames used (only while the nav camera gives no pose): cost median",
                f"{np.median(a):.0f} ms ({len(a)} frames)" if len(a) else "0 frames",
            )
        )

    print(f"## Relocalization, full pipeline ({platform.machine()}, {os.cpu_count()} cores)")
    print()
    print(
        f"`bench/bench_reloc.py --pipeline --aux {args.aux} --trials {n} --rate-deg {args.rate_deg:g} "
        f"--fps {args.fps:g} --seed {args.seed}`. Same trials as the features-only mode: robot anywhere "
        f"in the keep-in box, random attitude, rotating in place at {args.rate_deg:g} deg/s; "
        f"nav_left 320x240 at {args.fps:g} Hz, {n_frames} frames in {WINDOW_S:g} s; all markers present; "
        "no prior. "
        "VisualLocalizer (markers, then the feature map, then a single marker) fused by its ESKF with "
        "a simulated 100 Hz IMU (noise and biases; true rate = the commanded rotation, no "
        "acceleration); frames processed at capture time (no latency). "
        + (
            "Auxiliary camera: main (front, 5 Hz, resized to 320x240) while the nav camera gives no pose. "
            if aux is not None
            else "No auxiliary camera. "
        )
        + map_note
    )
    print()
    print("| metric | value |")
    print("| --- | --- |")
    for name, value in table:
        print(f"| {name} | {value} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--rate-deg", type=float, default=15.0, help="rotation rate in place, deg/s")
    ap.add_argument("--fps", type=float, default=10.0, help="nav camera frame rate, Hz")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--map", default=None, help="feature map .npz (default: the cached default map)")
    ap.add_argument("--progress", action="store_true", help="one line per trial on stderr")
    ap.add_argument(
        "--only",
        type=lambda text: {int(i) for i in text.split(",")},
        default=None,
        help="pipeline: run only these trial indices of the sequence (e.g. 9,11,24), for diagnosis",
    )
    ap.add_argument(
        "--aux",
        choices=("main", "none"),
        default="main",
        help="pipeline: auxiliary camera for the natural features while the nav camera gives no pose",
    )
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument(
        "--features-only",
        dest="pipeline",
        action="store_false",
        help="markers removed, FeatureLocalizer alone (default)",
    )
    mode.add_argument(
        "--pipeline",
        dest="pipeline",
        action="store_true",
        help="all markers present, VisualLocalizer (markers + features + ESKF) with a synthetic IMU",
    )
    ap.set_defaults(pipeline=False)  # store_false would otherwise make --pipeline the default
    args = ap.parse_args()
    cv2.setNumThreads(1)

    t0 = time.perf_counter()
    fmap = load_feature_map(args.map) if args.map else default_feature_map(build_if_missing=True, log=print)
    load_s = time.perf_counter() - t0
    cam = load_cameras()["nav_left"]
    loc = FeatureLocalizer(fmap, cam)
    module = load_module()
    marker_map = load_marker_map()
    cid = p.connect(p.DIRECT)
    renderer = Renderer(cid)
    build_world(cid, module, marker_map, marker_ids=None if args.pipeline else ())
    rng = np.random.default_rng(args.seed)
    lo, hi = module.clear_min + ROBOT_RADIUS, module.clear_max - ROBOT_RADIUS
    obstacles = [*module.keep_out, module.dock.box]
    n_frames = int(np.floor(WINDOW_S * args.fps + 1e-9)) + 1
    if args.pipeline:
        survey = fmap.meta["survey"]
        map_note = (
            f"Map: {fmap.n_points} points, {fmap.n_keyframes} keyframes ({survey['views']} survey views, "
            f"seed {survey['seed']})."
        )
        aux = None
        if args.aux == "main":
            main = load_cameras()["main"]
            aux = (loc.for_camera(resized_camera(main, 320, 240)), main)
        run_pipeline(args, renderer, cam, loc, marker_map, rng, (lo, hi), obstacles, n_frames, map_note, aux)
        p.disconnect(cid)
        return

    success, reloc_false, track_false, first_frame_ok, fix_times = 0, 0, 0, 0, []
    open_total, open_success = 0, 0  # trials whose first frame sees >= OPEN_DEPTH (median depth)
    reloc_ms, track_ms, track_pos, track_ang, track_lost = [], [], [], [], 0
    frames_total = 0
    for trial in range(args.trials):
        T0, axis = draw_trial(rng, lo, hi, obstacles)
        prior, fixed, n_ok = None, False, success
        for k in range(n_frames):
            t = k / args.fps
            q_t = quat_multiply(quat_from_rotvec(axis * np.radians(args.rate_deg) * t), T0.quat)
            truth = Pose(T0.position, q_t)
            rgb, depth = renderer.render(cam, truth.compose(cam.T_base_cam))
            if k == 0:
                is_open = float(np.median(depth)) >= OPEN_DEPTH
                open_total += is_open
            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            frames_total += 1
            s = time.perf_counter()
            meas = loc.localize(gray, t, prior)
            (reloc_ms if prior is None else track_ms).append(1e3 * (time.perf_counter() - s))
            if meas is None:
                if prior is not None:
                    track_lost += 1
                    prior = None
                continue
            e_p = float(np.linalg.norm(meas.T_kibo_base.position - truth.position))
            e_a = float(np.degrees(quat_angle(meas.T_kibo_base.quat, truth.quat)))
            good = e_p <= OK_POS and e_a <= OK_DEG
            if not good:
                print(
                    f"false accept: trial {trial} t {t:.1f} s {'track' if prior is not None else 'reloc'} "
                    f"{100 * e_p:.1f} cm {e_a:.2f} deg {loc.last}",
                    file=sys.stderr,
                )
            if not fixed:
                fixed = True
                if not good:
                    reloc_false += 1
                    break
                success += 1
                open_success += is_open
                first_frame_ok += k == 0
                fix_times.append(t)
            else:
                track_pos.append(e_p)
                track_ang.append(e_a)
                track_false += not good
            prior = meas.T_kibo_base
        if args.progress:
            verdict = (
                f"ok, fix {fix_times[-1]:.1f} s"
                if success > n_ok
                else ("false accept" if fixed else "no fix")
            )
            print(f"trial {trial}: {verdict}", file=sys.stderr)
    p.disconnect(cid)

    n = args.trials
    fix = np.array(fix_times)
    survey = fmap.meta["survey"]
    rows = [
        (
            f"relocalized within {WINDOW_S:g} s (correct: <= 5 cm, <= 2 deg)",
            f"{success}/{n} = {100 * success / n:.0f} %",
        ),
        ("relocalized on the first frame", f"{first_frame_ok}/{n} = {100 * first_frame_ok / n:.0f} %"),
        (
            f"relocalized within {WINDOW_S:g} s, trials whose first frame sees >= {OPEN_DEPTH:g} m "
            "(median depth)",
            f"{open_success}/{open_total} = {100 * open_success / max(open_total, 1):.0f} %",
        ),
    ]
    if len(fix):
        rows.append(
            (
                "time to first fix, successful trials: median / max",
                f"{np.median(fix):.1f} / {fix.max():.1f} s",
            )
        )
    rows.append(
        ("false accepts at the first fix (pose outside 5 cm / 2 deg)", f"{reloc_false} of {n} trials")
    )
    rows.append(("false accepts while tracking after the fix", f"{track_false} of {len(track_pos)} frames"))
    rows.append(("frames processed", f"{frames_total}"))
    if track_pos:
        tp, ta = np.array(track_pos), np.array(track_ang)
        rows += [
            (
                f"tracking after the fix ({len(tp)} frames, prior = last pose): position median / p95",
                f"{1e3 * np.median(tp):.1f} / {1e3 * np.percentile(tp, 95):.1f} mm",
            ),
            ("tracking: angle median / p95", f"{np.median(ta):.2f} / {np.percentile(ta, 95):.2f} deg"),
            ("tracking: frames lost (no pose; back to relocalization)", f"{track_lost}"),
        ]
    rows.append(
        (
            "per-frame cost, relocalization (no prior), median",
            f"{np.median(reloc_ms):.0f} ms ({len(reloc_ms)})",
        )
    )
    if track_ms:
        rows.append(
            ("per-frame cost, tracking (prior), median", f"{np.median(track_ms):.0f} ms ({len(track_ms)})")
        )

    print(f"## Relocalization on natural features ({platform.machine()}, {os.cpu_count()} cores)")
    print()
    print(
        f"`bench/bench_reloc.py --trials {n} --rate-deg {args.rate_deg:g} --fps {args.fps:g} "
        f"--seed {args.seed}`. "
        f"Map: {fmap.n_points} points, {fmap.n_keyframes} keyframes ({survey['views']} survey views, "
        f"seed {survey['seed']}), loaded in {load_s:.1f} s. Each trial: robot anywhere in the keep-in box, "
        f"random attitude, rotating in place at {args.rate_deg:g} deg/s; nav_left 320x240 at "
        f"{args.fps:g} Hz, {n_frames} frames in {WINDOW_S:g} s; markers absent; no prior."
    )
    print()
    print("| metric | value |")
    print("| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
