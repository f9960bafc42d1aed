"""Relocalization (kidnapped robot) and tracking on natural features, markers absent.

    .venv/bin/python bench/bench_reloc.py [--trials 100] [--rate-deg 15] [--seed 0] [--map FILE]

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

from intball_nav.frames import Pose, quat_angle, quat_from_rotvec, quat_multiply
from intball_nav.module import load_marker_map, load_module
from intball_nav.vision.feature_map import FeatureLocalizer, load_feature_map
from intball_sim.camera import Renderer, load_cameras
from intball_sim.mapping import default_feature_map
from intball_sim.world import build_world

ROBOT_RADIUS = 0.10
OK_POS = 0.05
OK_DEG = 2.0
WINDOW_S = 2.0
OPEN_DEPTH = 0.5
"""m, a trial is 'open' when its first frame's median depth is at least this (not facing a rack
from close by)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--rate-deg", type=float, default=15.0, help="rotation rate in place, deg/s")
    ap.add_argument("--fps", type=float, default=10.0, help="nav camera frame rate, Hz")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--map", default=None, help="feature map .npz (default: the cached default map)")
    args = ap.parse_args()
    cv2.setNumThreads(1)

    t0 = time.perf_counter()
    fmap = load_feature_map(args.map) if args.map else default_feature_map(build_if_missing=True, log=print)
    load_s = time.perf_counter() - t0
    cam = load_cameras()["nav_left"]
    loc = FeatureLocalizer(fmap, cam)
    module = load_module()
    cid = p.connect(p.DIRECT)
    renderer = Renderer(cid)
    build_world(cid, module, load_marker_map(), marker_ids=())
    rng = np.random.default_rng(args.seed)
    lo, hi = module.clear_min + ROBOT_RADIUS, module.clear_max - ROBOT_RADIUS
    obstacles = [*module.keep_out, module.dock.box]
    n_frames = int(np.floor(WINDOW_S * args.fps + 1e-9)) + 1

    success, reloc_false, track_false, first_frame_ok, fix_times = 0, 0, 0, 0, []
    open_total, open_success = 0, 0  # trials whose first frame sees >= OPEN_DEPTH (median depth)
    reloc_ms, track_ms, track_pos, track_ang, track_lost = [], [], [], [], 0
    frames_total = 0
    for trial in range(args.trials):
        q = rng.normal(size=4)
        position = rng.uniform(lo, hi)
        while any(box.contains(position, ROBOT_RADIUS) for box in obstacles):
            position = rng.uniform(lo, hi)
        T0 = Pose(position, q / np.linalg.norm(q))
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        prior, fixed = None, False
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
