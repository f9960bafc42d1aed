"""Per-frame cost and accuracy of the depth + ICP localizer on rendered 320x240 navigation frames.

    .venv/bin/python bench/bench_icp.py [--poses 20] [--seed 0] [--recover 0]

Frames: the rear navigation pair at seeded random poses in the module (clear volume shrunk by
0.35 m, random yaw, roll/pitch within +-0.4 rad), rendered by the simulator (EGL if available)
before timing. Per frame and per depth source (``stereo``: SGBM on the pair;
``simulated-depth-sensor``: rendered depth with noise): depth, back-projection, ICP from a prior
perturbed by 5 cm / 3 deg (``IcpLocalizer.refine`` with the source's ``ICP_PRESETS`` entry), and
the error in the non-degenerate directions. Also the model build and the ICP cost per voxel set.

Prints a Markdown block for docs/benchmarks.md: median wall times (ms), acceptance rate,
median/p90 errors, degeneracy counts, mean NEES per degree of freedom (covariance consistency:
< 1 is conservative), the 3-way SGBM cost; with ``--recover N`` the global-recovery outcomes.
Wall time on a shared machine: compare runs on one machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time

import numpy as np
import pybullet as p

from intball_nav.frames import Pose, quat_from_rotvec, quat_from_rpy, rotvec_from_quat
from intball_nav.module import load_marker_map, load_module
from intball_nav.vision.geometry import ICP_PRESETS, IcpLocalizer, build_module_cloud
from intball_nav.vision.stereo import SimulatedDepthSensor, StereoParams, cloud_from_depth, depth_from_stereo
from intball_sim.camera import Renderer, load_cameras
from intball_sim.world import build_world


def _ms(xs: list[float]) -> str:
    return f"{1e3 * float(np.median(xs)):.1f}" if xs else "-"


def _error6(m, T_true: Pose) -> np.ndarray:
    """(6,) [dp m kibo, dtheta rad optical] of m.T_kibo_cam against the truth."""
    return np.concatenate(
        [
            m.T_kibo_cam.position - T_true.position,
            rotvec_from_quat(
                Pose(np.zeros(3), T_true.quat).inverse().compose(Pose(np.zeros(3), m.T_kibo_cam.quat)).quat
            ),
        ]
    )


def _scale(m) -> np.ndarray:
    return np.diag([1.0, 1.0, 1.0, 1.0 / m.length_scale, 1.0 / m.length_scale, 1.0 / m.length_scale])


def _errors(m, T_true: Pose) -> tuple[float, float]:
    """Position (m) and angle (rad) error in the non-degenerate directions."""
    S = _scale(m)
    es = np.linalg.solve(S, _error6(m, T_true))
    for v in m.degenerate_directions:
        es = es - v * (v @ es)
    e = S @ es
    return float(np.linalg.norm(e[:3])), float(np.linalg.norm(e[3:]))


def _nees_per_dof(m, T_true: Pose, degenerate_sigma: float) -> float:
    """Normalised estimation error squared per degree of freedom, non-degenerate directions."""
    S = _scale(m)
    es = np.linalg.solve(S, _error6(m, T_true))
    cs = np.linalg.solve(S, np.linalg.solve(S, m.covariance_cam).T)
    w, V = np.linalg.eigh(cs)
    keep = w < 0.5 * degenerate_sigma**2
    en = V[:, keep].T @ es
    return float(np.sum(en**2 / w[keep])) / max(int(keep.sum()), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--poses", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recover", type=int, default=0, help="also run recover() on this many frames")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    module = load_module()
    t0 = time.perf_counter()
    cloud = build_module_cloud(module)
    t_build = time.perf_counter() - t0
    cams = load_cameras()
    left, right = cams["nav_left"], cams["nav_right"]
    cid = p.connect(p.DIRECT)
    renderer = Renderer(cid)
    build_world(cid, module, load_marker_map())
    lo, hi = module.clear_min + 0.35, module.clear_max - 0.35
    frames = []
    for _ in range(args.poses):
        T_base = Pose(
            rng.uniform(lo, hi), quat_from_rpy(*rng.uniform(-0.4, 0.4, 2), rng.uniform(-np.pi, np.pi))
        )
        rgb_l, depth = renderer.render(left, T_base.compose(left.T_base_cam))
        rgb_r, _ = renderer.render(right, T_base.compose(right.T_base_cam))
        frames.append((T_base.compose(left.T_base_cam), rgb_l, rgb_r, depth))
    kind = renderer.kind
    renderer.close()
    p.disconnect(cid)

    rows = []
    stereo_err: list[np.ndarray] = []
    bands = ((0.5, 1.0), (1.0, 1.5), (1.5, 2.0))
    band_err: dict[tuple[float, float], list[np.ndarray]] = {b: [] for b in bands}
    for source in ("stereo", "simulated-depth-sensor"):
        variants = [("preset", ICP_PRESETS[source])]
        if source == "stereo":
            coarse = dataclasses.replace(ICP_PRESETS[source], voxel_sizes=(0.12, 0.08, 0.06), max_points=1500)
            variants.append(("coarse voxels", coarse))
        for label, params in variants:
            loc = IcpLocalizer(cloud, params, left.T_base_cam)
            t_depth, t_cloud, t_icp, dps, dths, ndeg, nees, acc = [], [], [], [], [], [], [], 0
            for T_true, rgb_l, rgb_r, depth in frames:
                t0 = time.perf_counter()
                if source == "stereo":
                    z = depth_from_stereo(rgb_l, rgb_r, left, 0.05)
                    ok = np.isfinite(z) & (depth > 0.5) & (depth < 2.0)
                    if label == "preset":
                        stereo_err.append(np.abs(z[ok] - depth[ok]))
                        for a, b in bands:
                            sel = np.isfinite(z) & (depth >= a) & (depth < b)
                            band_err[(a, b)].append(np.abs(z[sel] - depth[sel]))
                else:
                    z = SimulatedDepthSensor().measure(depth, rng)
                t1 = time.perf_counter()
                pts = cloud_from_depth(z, left, stride=2)
                t2 = time.perf_counter()
                a, b = rng.normal(size=3), rng.normal(size=3)
                prior = Pose(
                    T_true.position + 0.05 * a / np.linalg.norm(a),
                    T_true.compose(
                        Pose(np.zeros(3), quat_from_rotvec(np.deg2rad(3.0) * b / np.linalg.norm(b)))
                    ).quat,
                )
                m = loc.refine(pts, prior)
                t3 = time.perf_counter()
                t_depth.append(t1 - t0)
                t_cloud.append(t2 - t1)
                t_icp.append(t3 - t2)
                if m is not None:
                    acc += 1
                    dp, dth = _errors(m, T_true)
                    dps.append(dp)
                    dths.append(np.rad2deg(dth))
                    ndeg.append(len(m.degenerate_directions))
                    nees.append(_nees_per_dof(m, T_true, params.degenerate_sigma))
            rows.append(
                f"| {source} | {label} {params.voxel_sizes} | {_ms(t_depth)} | {_ms(t_cloud)} "
                f"| {_ms(t_icp)} | "
                f"{acc}/{len(frames)} | {1e3 * np.median(dps):.1f} / {1e3 * np.percentile(dps, 90):.1f} | "
                f"{np.median(dths):.2f} / {np.percentile(dths, 90):.2f} | "
                f"{np.bincount(ndeg, minlength=7)[:7].tolist()} | {np.mean(nees):.2f} |"
            )
    e = np.concatenate(stereo_err)
    print(
        f"### Depth and ICP (bench/bench_icp.py, {args.poses} poses, seed {args.seed}, renderer {kind}, "
        f"{platform.processor() or platform.machine()})\n"
    )
    print(
        f"Model cloud: {len(cloud.points)} points at 2 cm, built in {1e3 * t_build:.0f} ms. "
        f"Stereo depth vs rendered depth at 0.5-2 m: median abs error {1e3 * np.median(e):.1f} mm, "
        f"p90 {1e3 * np.percentile(e, 90):.1f} mm; by depth: "
        + ", ".join(f"{a}-{b} m {1e3 * np.median(np.concatenate(band_err[(a, b)])):.1f} mm" for a, b in bands)
        + ".\n"
    )
    print(
        "| source | ICP voxels (m) | depth ms | cloud ms | ICP ms | accepted | pos err mm median / p90 "
        "| rot err deg median / p90 | frames with 0..6 degenerate directions | mean NEES/dof |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    t3way = []
    for _, rgb_l, rgb_r, _ in frames:
        t0 = time.perf_counter()
        depth_from_stereo(rgb_l, rgb_r, left, 0.05, StereoParams(full_dp=False))
        t3way.append(time.perf_counter() - t0)
    print(f"\nSGBM 3-way mode instead of 8-path: {_ms(t3way)} ms per frame.")
    if args.recover:
        _recover_stats(cloud, left, frames[: args.recover], rng)
    print(
        "\nErrors are in the non-degenerate directions only (degenerate ones keep the prior and "
        "carry a 1 m / 1 rad-scale std)."
    )


def _recover_stats(cloud, left, frames, rng: np.random.Generator) -> None:
    """Global recovery (no prior) per source: correct / flagged ambiguous / none / wrong unflagged."""
    for source in ("simulated-depth-sensor", "stereo"):
        loc = IcpLocalizer(cloud, ICP_PRESETS[source], left.T_base_cam)
        n_ok = n_amb = n_none = n_bad = 0
        times = []
        for T_true, rgb_l, rgb_r, depth in frames:
            if source == "stereo":
                z = depth_from_stereo(rgb_l, rgb_r, left, 0.05)
            else:
                z = SimulatedDepthSensor().measure(depth, rng)
            t0 = time.perf_counter()
            m = loc.recover(cloud_from_depth(z, left, stride=2))
            times.append(time.perf_counter() - t0)
            if m is None:
                n_none += 1
                continue
            dp, dth = _errors(m, T_true)
            good = dp < 0.05 and np.rad2deg(dth) < 2.0
            n_ok += good
            n_amb += m.ambiguous
            n_bad += (not good) and not m.ambiguous
        print(
            f"\nrecover() {source}, {len(frames)} frames: correct {n_ok}, flagged ambiguous {n_amb}, "
            f"no answer {n_none}, wrong and unflagged {n_bad}; median {float(np.median(times)):.1f} s"
        )


if __name__ == "__main__":
    main()
