"""Vision in the loop on the example tour: localization error, real-time factor, per-frame cost.

    .venv/bin/python bench/bench_vision_loop.py [--seeds 0 1 2] [--camera-hz 5]
        [--features auto|on|off] [--no-markers]

Each seed flies ``examples/tour.yaml`` headless with ``localization="vision"`` through
``intball_sim.eval_loc.run_eval`` (EGL-rendered 320x240 left nav frames from the true pose, 100 Hz
IMU, 60 ms frame latency, ESKF; the controller sees only the estimate). Reported per seed and as
medians over the seeds:

- ATE RMSE (no alignment), position (cm) and attitude (deg), and RPE per metre;
- real-time factor: sim time over wall time and over the process CPU time (all threads, including
  Mesa llvmpipe's render threads; less sensitive to other load on a shared machine);
- per-frame pipeline cost: CPU time of the pipeline thread for detection + pose + filter update
  (rendering excluded), median over frames;
- waypoints reached, localization losses.

Sources: the markers, with the natural-feature map as fallback when fewer than two markers are in
view (``--features auto``: when the default map of ``intball_sim.mapping`` is cached; ``on``
builds it, ~3 min; ``off``: markers alone). ``--no-markers`` removes every marker from the world
(natural features alone) and flies the tour **undocked** (``undocked_tour``: start at its first
waypoint, without the final dock approach), because the dock face the nav camera sees from the
approach point is featureless: without the dock marker the robot cannot get a first fix there.
ATE is given over the whole run and while localized (health ok). Prints a Markdown block for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path

import cv2
import yaml

from intball_sim.eval_loc import run_eval
from intball_sim.vision_loop import DEFAULT_CAMERA_HZ, VisionOptions

TOUR = Path(__file__).resolve().parents[1] / "examples" / "tour.yaml"


def undocked_tour(path: Path, out: Path) -> Path:
    """The tour starting at its first waypoint and ending before the dock approach (no markers:
    the dock face seen from the approach point has no features to start from)."""
    data = yaml.safe_load(path.read_text())
    first, *middle, _approach = data["waypoints"]
    data["name"] = f"{data['name']}-undocked"
    data["start"] = {"position": first["position"], "rpy_deg": first["rpy_deg"]}
    data["waypoints"] = middle
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--camera-hz", type=float, default=DEFAULT_CAMERA_HZ)
    ap.add_argument("--features", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--no-markers", action="store_true")
    ap.add_argument("--mission", type=Path, default=TOUR)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    options = VisionOptions(
        camera_hz=args.camera_hz,
        marker_ids=() if args.no_markers else None,
        features=True if args.no_markers else {"auto": None, "on": True, "off": False}[args.features],
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mission = undocked_tour(args.mission, Path(tmp) / "mission.yaml") if args.no_markers else args.mission
        for seed in args.seeds:
            r = run_eval(mission, Path(tmp) / f"seed{seed}", seed=seed, options=options)
            row = {
                "seed": seed,
                "ate_cm": r["ate_rmse_cm"],
                "ate_deg": r["ate_rmse_deg"],
                "ok_cm": (r["while_localized"] or {}).get("ate_rmse_cm", float("nan")),
                "ok_deg": (r["while_localized"] or {}).get("ate_rmse_deg", float("nan")),
                "ok_share": (r["while_localized"] or {}).get("share_of_samples", 0.0),
                "rpe_cm_per_m": r["rpe_position_m_per_m"]["rmse"] * 100.0,
                "rpe_deg_per_m": r["rpe_attitude_deg_per_m"]["rmse"],
                "rtf_wall": r["real_time_factor"],
                "rtf_cpu": r["real_time_factor_cpu"],
                "frame_ms": r["frame_cost_ms"]["median"],
                "frame_p90_ms": r["frame_cost_ms"]["p90"],
                "reached": f"{r['waypoints_reached']}/{r['waypoints_total']}",
                "losses": len(r["loss_response"]["losses"]),
                "sim_s": r["sim_time_s"],
                "renderer": r["renderer"],
            }
            rows.append(row)
            print(
                f"seed {seed}: ATE {row['ate_cm']:.3f} cm / {row['ate_deg']:.3f} deg (while localized, "
                f"{row['ok_share'] * 100:.0f} % of run: {row['ok_cm']:.3f} cm / {row['ok_deg']:.3f} deg), "
                f"RPE {row['rpe_cm_per_m']:.3f} cm/m / {row['rpe_deg_per_m']:.3f} deg/m, "
                f"RTF x{row['rtf_wall']:.2f} wall / x{row['rtf_cpu']:.2f} CPU, "
                f"frame {row['frame_ms']:.1f} ms (p90 "
                f"{row['frame_p90_ms']:.1f}), {row['reached']} reached, {row['losses']} losses, "
                f"{row['sim_s']:.0f} s sim",
                flush=True,
            )

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    used = "markers + feature fallback" if options.features is not False else "markers only"
    what = "natural features only (markers removed)" if args.no_markers else used
    print()
    name = f"{args.mission.name} (undocked)" if args.no_markers else args.mission.name
    print(f"### Vision in the loop: {name}, {what}")
    print()
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, renderer {rows[0]['renderer']}; nav frames 320x240 at "
        f"{args.camera_hz:g} Hz, 60 ms latency, 100 Hz IMU; seeds {', '.join(str(s) for s in args.seeds)} "
        f"(medians)."
    )
    print()
    print(
        "| ATE pos (cm) | ATE att (deg) | ATE while localized (cm / deg) | RPE (cm/m) | RPE (deg/m) "
        "| RTF wall | RTF CPU | frame cost (ms) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| {med('ate_cm'):.3f} | {med('ate_deg'):.3f} | {med('ok_cm'):.3f} / {med('ok_deg'):.3f} "
        f"| {med('rpe_cm_per_m'):.3f} | {med('rpe_deg_per_m'):.3f} | {med('rtf_wall'):.2f} "
        f"| {med('rtf_cpu'):.2f} | {med('frame_ms'):.1f} |"
    )
    print()
    print(
        "Per seed: " + "; ".join(f"{r['seed']}: {r['reached']} reached, {r['losses']} losses" for r in rows)
    )


if __name__ == "__main__":
    main()
