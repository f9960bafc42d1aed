"""Per-frame cost of visual localization on a 320x240 navigation frame, on one core.

    .venv/bin/python bench/bench_loc_frame.py [--frames 150] [--runs 5] [--features]

Frames: the navigation camera of ``intball_nav/data/cameras.yaml`` (320x240, 90 deg) ~1 m
below the overhead markers of ``markers.yaml``, moving along the module, rendered by
``camera_geometry.render_planar_markers`` (anti-aliased ArUco bitmaps, pixel noise) before
timing. Per frame: ``MarkerLocalizer.detect`` (ArUco), ``estimate`` (consensus, joint LM pose,
covariance) and ``Eskf.add_pose`` with a 60 ms image lag (the update re-propagates the IMU samples
since the image: the realistic cost). IMU propagation between frames is not counted.

``--features``: the feature-map fallback frame instead (no marker in view). Frames: the left nav
camera rendered by EGL in the module WITHOUT markers (``intball_sim.world``), robot anywhere in the
keep-in box with a random attitude, kept when the view's median depth is >= 0.6 m (the views where
the feature map works; closer ones fail fast). Per frame: ``MarkerLocalizer.localize`` (finds
nothing) then ``FeatureLocalizer.localize`` with a prior (tracking), on the cached default map, in
two cases: a poor prior, truth + 1 cm / 0.5 deg per axis (seeded) with that covariance (the wide
RANSAC pass runs: e.g. the first frames after a gap), and the filter's prior in the loop, truth +
3 mm / 0.1 deg per axis with that covariance (the tight start; in the features-only tour the
filter's prediction at 5 Hz was 3.5 mm / 0.12 deg from the final pose in median, its std 2.2 mm /
0.05 deg). The ESKF update is not in this figure (~0.6 ms, see the markers bench); the in-loop
frame cost of ``bench_vision_loop.py --no-markers`` has everything.

OpenCV is limited to one thread. Prints a Markdown block for docs/benchmarks.md with the median
per-frame wall time of each stage (median over runs of the per-run medians) and the CPU time of
this thread (less sensitive to other load on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from types import SimpleNamespace

import cv2
import numpy as np

from intball_nav.estimation.eskf import Eskf
from intball_nav.frames import Pose, quat_from_rpy, quat_multiply
from intball_nav.module import load_marker_map
from intball_nav.vision.camera_geometry import intrinsics_from_fov, render_planar_markers
from intball_nav.vision.markers import MarkerLocalizer

NAV_CAMERA = SimpleNamespace(
    K=intrinsics_from_fov(320, 240, np.radians(90.0)),
    width=320,
    height=240,
    T_base_cam=Pose(np.array([-0.10, -0.025, 0.0]), np.array([-0.5, -0.5, 0.5, 0.5])),
)
LAG_SAMPLES = 6
IMU_DT = 0.01
FRAME_EVERY = 10  # 10 Hz camera, 100 Hz IMU


def make_frames(n: int, seed: int) -> tuple[list[np.ndarray], list[Pose]]:
    mm = load_marker_map()
    loc = MarkerLocalizer(mm, NAV_CAMERA)
    markers = [(m.id, m.size, m.pose) for m in mm.markers]
    rng = np.random.default_rng(seed)
    frames, poses = [], []
    q_up = quat_from_rpy(0.0, np.pi / 2, 0.0)  # body pitched up: rear nav camera sees the overhead
    for i in range(n):
        x = 1.0 + 7.0 * i / max(n - 1, 1)
        T_kibo_base = Pose(
            np.array([x, rng.uniform(-0.2, 0.2), rng.uniform(-0.1, 0.1)]),
            quat_multiply(q_up, quat_from_rpy(*rng.normal(0.0, 0.1, 3))),
        )
        T_kibo_cam = T_kibo_base.compose(NAV_CAMERA.T_base_cam)
        frames.append(
            render_planar_markers(
                NAV_CAMERA.K, 320, 240, T_kibo_cam, markers, loc.dictionary, noise_sigma=2.0, rng=rng
            )
        )
        poses.append(T_kibo_base)
    return frames, poses


def run_once(frames: list[np.ndarray]) -> dict[str, list[float]]:
    loc = MarkerLocalizer(load_marker_map(), NAV_CAMERA)
    f = Eskf()
    wall: dict[str, list[float]] = {"detect": [], "pose": [], "filter": [], "total": [], "cpu_total": []}
    markers: list[int] = []
    k = 0
    for frame in frames:
        # IMU up to the arrival time of the frame (not timed)
        for _ in range(FRAME_EVERY if k else LAG_SAMPLES + 1):
            f.add_imu(k * IMU_DT, np.zeros(3), np.zeros(3))
            k += 1
        stamp = (k - 1 - LAG_SAMPLES) * IMU_DT
        c0 = time.thread_time()
        t0 = time.perf_counter()
        dets = loc.detect(frame)
        t1 = time.perf_counter()
        meas = loc.estimate(dets, stamp)
        t2 = time.perf_counter()
        if meas is not None:
            f.add_pose(meas)
            markers.append(meas.n_markers)
        t3 = time.perf_counter()
        c1 = time.thread_time()
        wall["detect"].append(t1 - t0)
        wall["pose"].append(t2 - t1)
        wall["filter"].append(t3 - t2)
        wall["total"].append(t3 - t0)
        wall["cpu_total"].append(c1 - c0)
    wall["markers"] = [float(m) for m in markers]
    return wall


def make_feature_frames(n: int, seed: int) -> tuple[list[np.ndarray], list[Pose], list[Pose]]:
    """(gray frames, true robot poses, priors) for ``--features`` (module docstring)."""
    import pybullet as p

    from intball_nav.frames import quat_from_rotvec
    from intball_nav.module import load_module
    from intball_sim.camera import Renderer, load_cameras
    from intball_sim.world import build_world

    module = load_module()
    cam = load_cameras()["nav_left"]
    cid = p.connect(p.DIRECT)
    renderer = Renderer(cid)
    build_world(cid, module, load_marker_map(), marker_ids=())
    rng = np.random.default_rng(seed)
    lo, hi = module.clear_min + 0.10, module.clear_max - 0.10
    frames, truths, priors = [], [], []
    while len(frames) < n:
        q = rng.normal(size=4)
        T = Pose(rng.uniform(lo, hi), q / np.linalg.norm(q))
        if any(box.contains(T.position, 0.10) for box in (*module.keep_out, module.dock.box)):
            continue
        rgb, depth = renderer.render(cam, T.compose(cam.T_base_cam))
        if float(np.median(depth)) < 0.6:
            continue
        frames.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        truths.append(T)
        turn = quat_from_rotvec(rng.normal(0.0, np.radians(0.5), 3))
        priors.append(Pose(T.position + rng.normal(0.0, 0.01, 3), quat_multiply(turn, T.quat)))
    p.disconnect(cid)
    return frames, truths, priors


POOR_PRIOR = (0.01, 0.5)  # m, deg per axis
FILTER_PRIOR = (0.003, 0.1)


def prior_covariance(std: tuple[float, float]) -> np.ndarray:
    """(6,6) [dp m, dtheta rad] of a prior with (position m, attitude deg) std per axis."""
    return np.diag([std[0] ** 2] * 3 + [np.radians(std[1]) ** 2] * 3)


def noisy_priors(truths: list[Pose], std: tuple[float, float], seed: int) -> list[Pose]:
    from intball_nav.frames import quat_from_rotvec

    rng = np.random.default_rng(seed)
    out = []
    for T in truths:
        turn = quat_from_rotvec(rng.normal(0.0, np.radians(std[1]), 3))
        out.append(Pose(T.position + rng.normal(0.0, std[0], 3), quat_multiply(turn, T.quat)))
    return out


def run_features(
    frames: list[np.ndarray], truths: list[Pose], priors: list[Pose], floc, covariance=None
) -> dict:
    from intball_sim.camera import load_cameras

    markers = MarkerLocalizer(load_marker_map(), load_cameras()["nav_left"])
    out: dict[str, list[float]] = {"markers": [], "features": [], "total": [], "cpu_total": [], "err": []}
    for frame, truth, prior in zip(frames, truths, priors, strict=True):
        c0 = time.thread_time()
        t0 = time.perf_counter()
        markers.localize(frame, 0.0)
        t1 = time.perf_counter()
        meas = floc.localize(frame, 0.0, prior, covariance)
        t2 = time.perf_counter()
        out["cpu_total"].append(time.thread_time() - c0)
        out["markers"].append(t1 - t0)
        out["features"].append(t2 - t1)
        out["total"].append(t2 - t0)
        if meas is not None:
            out["err"].append(float(np.linalg.norm(meas.T_kibo_base.position - truth.position)))
    return out


def main_features(args: argparse.Namespace) -> None:
    from intball_nav.vision.feature_map import FeatureLocalizer
    from intball_sim.camera import load_cameras
    from intball_sim.mapping import default_feature_map

    frames, truths, priors = make_feature_frames(args.frames, seed=0)
    floc = FeatureLocalizer(default_feature_map(build_if_missing=True), load_cameras()["nav_left"])
    cases = {
        "poor": (priors, prior_covariance(POOR_PRIOR)),
        "filter": (noisy_priors(truths, FILTER_PRIOR, seed=1), prior_covariance(FILTER_PRIOR)),
    }
    runs: dict[str, list[dict]] = {name: [] for name in cases}
    for prs, cov in cases.values():
        run_features(frames[:5], truths[:5], prs[:5], floc, cov)  # warm-up
    for _ in range(args.runs):  # the cases interleaved: the same machine state for both
        for name, (prs, cov) in cases.items():
            runs[name].append(run_features(frames, truths, prs, floc, cov))

    def med_ms(name: str, key: str) -> float:
        return 1e3 * statistics.median(statistics.median(r[key]) for r in runs[name])

    def p90_ms(name: str, key: str) -> float:
        return 1e3 * statistics.median(float(np.percentile(r[key], 90)) for r in runs[name])

    def accuracy(name: str) -> str:
        err = np.array(runs[name][0]["err"])
        return (
            f"poses {len(err)}/{len(frames)}, position error median {1e3 * np.median(err):.1f} mm, "
            f"p95 {1e3 * np.percentile(err, 95):.1f} mm"
        )

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print("### Feature-map fallback frame, one 320x240 nav frame (bench/bench_loc_frame.py --features)")
    print()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, OpenCV {cv2.__version__} (1 thread), "
        f"load average {load:.1f}; {args.frames} EGL frames without markers x {args.runs} runs. "
        f"Poor prior ({POOR_PRIOR[0] * 1e3:g} mm / {POOR_PRIOR[1]:g} deg): {accuracy('poor')}; "
        f"filter prior ({FILTER_PRIOR[0] * 1e3:g} mm / {FILTER_PRIOR[1]:g} deg): {accuracy('filter')}."
    )
    print()
    print("| stage | poor prior: median ms | p90 ms | filter prior: median ms | p90 ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for key, label in (
        ("markers", "ArUco (no marker found)"),
        ("features", "feature-map tracking with the prior"),
        ("total", "**total per frame (wall)**"),
        ("cpu_total", "total per frame (thread CPU time)"),
    ):
        cells = " | ".join(f"{med_ms(n, key):.2f} | {p90_ms(n, key):.2f}" for n in cases)
        print(f"| {label} | {cells} |")
    print()
    print("Target (issue #3): <= 15 ms median on one core (+ ~0.6 ms ESKF update).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--features", action="store_true", help="the feature-map fallback frame (no markers)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if args.features:
        main_features(args)
        return
    frames, _ = make_frames(args.frames, seed=0)
    run_once(frames[:10])  # warm-up
    runs = [run_once(frames) for _ in range(args.runs)]

    def med_ms(key: str) -> float:
        return 1e3 * statistics.median(statistics.median(r[key]) for r in runs)

    def p90_ms(key: str) -> float:
        return 1e3 * statistics.median(float(np.percentile(r[key], 90)) for r in runs)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print("### Visual localization, one 320x240 navigation frame (bench/bench_loc_frame.py)")
    print()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, OpenCV {cv2.__version__} (1 thread), "
        f"load average {load:.1f}; {args.frames} frames x {args.runs} runs, "
        f"median {statistics.median(runs[0]['markers']):.0f} markers per frame; filter update with a "
        f"{LAG_SAMPLES * IMU_DT * 1e3:.0f} ms image lag (replay)."
    )
    print()
    print("| stage | median ms | p90 ms |")
    print("| --- | ---: | ---: |")
    for key, name in (
        ("detect", "ArUco detection (subpixel corners)"),
        ("pose", "consensus + joint LM pose + covariance"),
        ("filter", "ESKF update (gating, replay)"),
        ("total", "**total per frame (wall)**"),
        ("cpu_total", "total per frame (thread CPU time)"),
    ):
        print(f"| {name} | {med_ms(key):.2f} | {p90_ms(key):.2f} |")
    print()
    print("Target (issue #3): <= 15 ms median on one core.")


if __name__ == "__main__":
    main()
