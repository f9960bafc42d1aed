"""``intball eval-loc``: fly a mission with vision in the loop and score the localization.

The mission runs headless with ``localization="vision"`` (:mod:`intball_sim.vision_loop`: nav
camera frames rendered from the true pose, 100 Hz IMU, the ESKF pipeline; the controller sees
only the estimate). Outputs in ``--out``:

- ``ground_truth.tum``, ``estimate.tum``: TUM ``t x y z qx qy qz qw``, kibo frame, 25 Hz, from
  the first visual fix on (the estimate does not exist before);
- ``summary.json``: the headless run summary (waypoints, real-time factor, vision counters,
  loss-of-localization events);
- ``eval.json``: ATE (no alignment: the map frame is known) and RPE per metre, position and
  attitude (:mod:`intball_nav.evaluation`), over the whole run and over the samples with health
  ``ok`` (``while_localized``: a visual fix in view, the condition of the targets); the issue #3
  targets and whether they are met (``met``: while localized; ``met_over_whole_run``); the
  perturbations, loss events with times, real-time factors and the per-frame pipeline cost;
- ``error_over_time.png``: position and attitude error over time, with the lost intervals;
- ``trajectory_overlay.png``: ground truth and estimate, top and side views.

The same figures from the TUM files with evo::

    evo_ape tum ground_truth.tum estimate.tum               # ATE, no alignment (no -a)
    evo_ape tum ground_truth.tum estimate.tum -r angle_deg
    evo_rpe tum ground_truth.tum estimate.tum --delta 1 --delta_unit m --all_pairs

(evo's RPE is per ``delta`` metres, ours divided by the segment length: equal for 1 m.)

Perturbations: ``--lighting FACTOR`` (image intensity), ``--occlude-markers FRACTION`` (a seeded
subset of markers removed from the world) or ``--no-markers``, ``--camera-noise SIGMA`` (gray
levels), ``--blur PX`` (Gaussian sigma), ``--initial-pose-error M,DEG`` (the filter starts from a
confident wrong prior and must relocalize), ``--cover-lens START:END`` (black frames).

CLI (``add_arguments`` / ``run`` as :mod:`intball_sim.headless`, or ``python -m
intball_sim.eval_loc``)::

    intball eval-loc --mission FILE --out DIR [--seed N] [--camera-hz HZ] [--latency S]
        [--lighting F] [--occlude-markers FRAC | --no-markers] [--camera-noise SIGMA] [--blur PX]
        [--initial-pose-error M,DEG] [--cover-lens START:END ...] [--features auto|on|off]
        [--main-camera on|off] [--rpe-delta M] [--max-time S]

With the natural features on, the front main camera is their second view while the nav camera
gives no pose (``--main-camera``, :mod:`intball_sim.vision_loop`); ``--cover-lens`` blacks it too.

Exit status: 0 = run completed (all waypoints reached) and the targets met, 1 = otherwise,
2 = bad arguments or input.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from intball_nav.config import ConfigError
from intball_nav.evaluation import Trajectory, absolute_errors, evaluate

TARGETS = {
    "markers": {"ate_cm": 1.0, "ate_deg": 0.5},
    "natural_features": {"ate_cm": 3.0, "ate_deg": 1.5},
}
"""Issue #3 ATE RMSE targets: with markers in view, and on natural features alone."""


# ----------------------------------------------------------------------------- arguments
def _pose_error(text: str) -> tuple[float, float]:
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 2 or not all(math.isfinite(v) and v >= 0.0 for v in parts):
        raise argparse.ArgumentTypeError(f"expected M,DEG with two numbers >= 0 (e.g. 0.3,10), got {text!r}")
    return parts[0], parts[1]


def _interval(text: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.split(":"))
    except ValueError:
        a = b = math.nan
    if not (math.isfinite(a) and math.isfinite(b) and 0.0 <= a < b):
        raise argparse.ArgumentTypeError(f"expected START:END in s with 0 <= START < END, got {text!r}")
    return a, b


def _bounded(lo: float, hi: float, unit: str, lo_open: bool = False):  # noqa: ANN202
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        ok = (v > lo if lo_open else v >= lo) and v <= hi and math.isfinite(v)
        if not ok:
            span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
            raise argparse.ArgumentTypeError(f"must be in {span}{' ' + unit if unit else ''}, got {text}")
        return v

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``intball eval-loc`` (the dispatcher in intball_ros/cli.py calls this)."""
    parser.add_argument("--mission", required=True, metavar="FILE", help="mission YAML file")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    parser.add_argument(
        "--camera-hz", type=_bounded(0.5, 60.0, "Hz"), default=None, metavar="HZ",
        help="navigation frame rate (default 5 Hz)",
    )  # fmt: skip
    parser.add_argument(
        "--latency", type=_bounded(0.0, 0.5, "s"), default=None, metavar="S",
        help="frame processing latency, s (default 0.06)",
    )  # fmt: skip
    parser.add_argument(
        "--lighting", type=_bounded(0.0, 10.0, "", lo_open=True), default=1.0, metavar="FACTOR",
        help="image intensity factor: < 1 darker, > 1 brighter (saturates); default 1",
    )  # fmt: skip
    markers = parser.add_mutually_exclusive_group()
    markers.add_argument(
        "--occlude-markers", type=_bounded(0.0, 1.0, ""), default=0.0, metavar="FRACTION",
        help="remove this seeded fraction of the markers from the world",
    )  # fmt: skip
    markers.add_argument(
        "--no-markers", action="store_true", help="no markers at all (natural features alone)"
    )
    parser.add_argument(
        "--camera-noise", type=_bounded(0.0, 100.0, "gray levels"), default=0.0, metavar="SIGMA",
        help="white pixel noise, gray levels (0-255)",
    )  # fmt: skip
    parser.add_argument(
        "--blur", type=_bounded(0.0, 20.0, "px"), default=0.0, metavar="PX",
        help="Gaussian blur sigma, px",
    )  # fmt: skip
    parser.add_argument(
        "--initial-pose-error", type=_pose_error, default=None, metavar="M,DEG",
        help="start the filter from a confident prior this far off the true start (must relocalize)",
    )  # fmt: skip
    parser.add_argument(
        "--cover-lens", type=_interval, action="append", default=[], metavar="START:END",
        help="black frames between these sim times, s (repeatable): tests lost -> safe -> recover",
    )  # fmt: skip
    parser.add_argument(
        "--features", choices=("auto", "on", "off"), default="auto",
        help="natural-feature localizer: auto = when available (default)",
    )  # fmt: skip
    parser.add_argument(
        "--main-camera", choices=("on", "off"), default="on",
        help="with the natural features, the front main camera as their second view while the nav "
        "camera gives no pose (default on)",
    )  # fmt: skip
    parser.add_argument(
        "--rpe-delta", type=_bounded(0.0, 100.0, "m", lo_open=True), default=1.0, metavar="M",
        help="RPE segment length, m (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--max-time", type=_bounded(0.0, 1e6, "s", lo_open=True), default=None, metavar="S",
        help="stop at this sim time, s",
    )  # fmt: skip


def vision_options(args: argparse.Namespace) -> Any:
    """``VisionOptions`` of the parsed arguments."""
    from intball_nav.module import load_marker_map  # noqa: PLC0415
    from intball_sim.vision_loop import VisionOptions, occluded_marker_ids  # noqa: PLC0415

    marker_ids: tuple[int, ...] | None = None
    if args.no_markers:
        marker_ids = ()
    elif args.occlude_markers > 0.0:
        marker_ids = occluded_marker_ids(load_marker_map(), args.occlude_markers, args.seed)
    features = {"auto": None, "on": True, "off": False}[args.features]
    kw: dict[str, Any] = {}
    if args.camera_hz is not None:
        kw["camera_hz"] = args.camera_hz
    if args.latency is not None:
        kw["latency_s"] = args.latency
    return VisionOptions(
        lighting=args.lighting,
        camera_noise_sigma=args.camera_noise,
        blur_px=args.blur,
        marker_ids=marker_ids,
        lens_covered=tuple(args.cover_lens),
        initial_pose_error=args.initial_pose_error,
        features=features,
        main_camera=args.main_camera == "on",
        **kw,
    )


# ----------------------------------------------------------------------------- evaluation
def evaluate_run(out: Path, summary: dict[str, Any], rpe_delta: float = 1.0) -> dict[str, Any]:
    """Score the TUM files of a finished run in ``out``; writes eval.json and the two plots."""
    from intball_sim.report import write_summary  # noqa: PLC0415

    gt = Trajectory.from_tum(out / "ground_truth.tum")
    est = Trajectory.from_tum(out / "estimate.tum")
    metrics = evaluate(gt, est, delta_m=rpe_delta)
    vision = summary.get("vision", {})
    ok = ok_mask(est.t, vision.get("health_changes", []))
    est_ok = Trajectory(est.t[ok], est.position[ok], est.quat[ok])
    localized = evaluate(gt, est_ok, delta_m=rpe_delta) if ok.any() else None
    n_markers = vision.get("options", {}).get("marker_ids", None)
    regime = "natural_features" if n_markers == 0 else "markers"
    target = TARGETS[regime]

    def meets(m: dict[str, Any] | None) -> bool:
        return (
            m is not None and m["ate_rmse_cm"] <= target["ate_cm"] and m["ate_rmse_deg"] <= target["ate_deg"]
        )

    while_ok = None
    if localized is not None:
        while_ok = {
            k: localized[k]
            for k in ("pairs", "ate_rmse_cm", "ate_rmse_deg", "ate_position_m", "ate_attitude_deg")
        }
        while_ok["share_of_samples"] = float(ok.mean())
    met_ok, met_all = meets(localized), meets(metrics)
    pipeline = vision.get("pipeline", {})
    result = {
        "mission": summary.get("mission"),
        "seed": summary.get("seed"),
        "localization": summary.get("localization"),
        **metrics,
        "while_localized": while_ok,
        "targets": {
            "regime": regime,
            **target,
            "met": bool(met_ok),
            "evaluated_on": "samples with health ok (a visual fix in view)",
            "met_over_whole_run": bool(met_all),
        },
        "waypoints_reached": summary.get("waypoints_reached"),
        "waypoints_total": summary.get("waypoints_total"),
        "all_reached": summary.get("all_reached"),
        "end": summary.get("end"),
        "sim_time_s": summary.get("sim_time_s"),
        "real_time_factor": summary.get("real_time_factor"),
        "real_time_factor_cpu": summary.get("real_time_factor_cpu"),
        "frame_cost_ms": pipeline.get("frame_cost_ms"),
        "frames": pipeline.get("frames"),
        "aux_frames": pipeline.get("aux_frames"),
        "aux_frame_cost_ms": pipeline.get("aux_frame_cost_ms"),
        "main_frames_rendered": vision.get("main_frames_rendered"),
        "outcomes": pipeline.get("outcomes"),
        "renderer": vision.get("renderer"),
        "perturbations": vision.get("options"),
        "prior": vision.get("prior"),
        "loss_response": vision.get("loss_response"),
        "collisions": summary.get("collisions"),
    }
    write_summary(out / "eval.json", result)
    losses = (vision.get("loss_response") or {}).get("losses", [])
    plot_errors(out / "error_over_time.png", absolute_errors(gt, est), losses, result)
    return result


def ok_mask(t: np.ndarray, health_changes: list[dict[str, Any]]) -> np.ndarray:
    """(N,) bool: health was ``ok`` at each time t (s), from the run's health changes."""
    if not health_changes:
        return np.ones(len(t), dtype=bool)
    times = np.array([h["t_s"] for h in health_changes])
    ok = np.array([h["level"] == "ok" for h in health_changes])
    i = np.searchsorted(times, t, side="right") - 1
    return np.where(i >= 0, ok[np.clip(i, 0, None)], False)


def plot_errors(path: Path, errors: Any, losses: list[dict[str, Any]], result: dict[str, Any]) -> None:
    """Position (cm) and attitude (deg) error over time (log scale, floor 1e-3), lost intervals
    shaded."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True, constrained_layout=True)
    series = (
        (errors.position * 100.0, "position error [cm]", result["ate_rmse_cm"], "cm"),
        (np.degrees(errors.attitude), "attitude error [deg]", result["ate_rmse_deg"], "deg"),
    )
    t_end = result.get("sim_time_s") or (errors.t[-1] if len(errors.t) else 0.0)
    for ax, (e, label, rmse, unit) in zip(axes, series, strict=True):
        ax.plot(errors.t, np.maximum(e, 1e-3), lw=0.8, color="tab:blue")
        ax.set_yscale("log")  # mm-level tracking and metre-level dead reckoning while lost
        ax.axhline(rmse, color="tab:orange", ls="--", lw=1, label=f"RMSE {rmse:.3g} {unit}")
        for k, loss in enumerate(losses):
            end = loss["recovered_s"] if loss["recovered_s"] is not None else t_end
            ax.axvspan(loss["lost_s"], end, color="tab:red", alpha=0.15, label="lost" if k == 0 else None)
        ax.set_ylabel(label)
        ax.grid(True, lw=0.3)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("sim time [s]")
    ok = result.get("while_localized") or {}
    fig.suptitle(
        f"{result['mission']}, seed {result['seed']}: ATE (no alignment) {result['ate_rmse_cm']:.2f} cm / "
        f"{result['ate_rmse_deg']:.2f} deg over the run, {ok.get('ate_rmse_cm', math.nan):.2f} cm / "
        f"{ok.get('ate_rmse_deg', math.nan):.2f} deg while localized",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_eval(
    mission: str | Path, out_dir: str | Path, *, seed: int = 0, options: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """Fly ``mission`` with vision in the loop (``options``: ``VisionOptions``) and write every output;
    returns the eval dict. kwargs go to ``headless.run_mission`` (e.g. ``max_time``)."""
    from intball_nav.module import load_module  # noqa: PLC0415
    from intball_sim import headless  # noqa: PLC0415
    from intball_sim.report import plot_trajectory  # noqa: PLC0415

    out = Path(out_dir)
    rpe_delta = kwargs.pop("rpe_delta", 1.0)
    module = load_module()
    summary = headless.run_mission(
        mission, out, seed=seed, localization="vision", vision=options, plot=False, module=module, **kwargs
    )
    result = evaluate_run(out, summary, rpe_delta)
    gt = Trajectory.from_tum(out / "ground_truth.tum")
    est = Trajectory.from_tum(out / "estimate.tum")
    targets = np.array([w["target"] for w in summary["waypoints"]]).reshape(-1, 3)
    plot_trajectory(
        out / "trajectory_overlay.png",
        module,
        gt.position,
        est.position,
        targets,
        gt.position[0],
        reached=[w["reached"] for w in summary["waypoints"]],
        title=f"{summary['mission']}: ground truth vs vision estimate, ATE {result['ate_rmse_cm']:.2f} cm / "
        f"{result['ate_rmse_deg']:.2f} deg, seed {seed}",
    )
    return result


def run(args: argparse.Namespace) -> int:
    """Run ``intball eval-loc``: 0 = completed and targets met, 1 = not, 2 = bad input."""
    path = Path(args.mission)
    if not path.is_file():
        print(f"intball eval-loc: error: mission file not found: {path}", file=sys.stderr)
        return 2
    try:
        options = vision_options(args)
        result = run_eval(
            path, args.out, seed=args.seed, options=options, max_time=args.max_time, rpe_delta=args.rpe_delta
        )
    except (ConfigError, ValueError) as exc:
        print(f"intball eval-loc: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # e.g. no visual fix: nothing to evaluate
        print(f"intball eval-loc: failed: {exc}", file=sys.stderr)
        return 1
    t = result["targets"]
    losses = (result.get("loss_response") or {}).get("losses", [])
    cost = result.get("frame_cost_ms") or {}
    ok = result.get("while_localized") or {}
    print(
        f"ATE {result['ate_rmse_cm']:.2f} cm / {result['ate_rmse_deg']:.3f} deg over the run (no alignment); "
        f"while localized ({ok.get('share_of_samples', 0) * 100:.0f} % of samples) "
        f"{ok.get('ate_rmse_cm', math.nan):.2f} cm / {ok.get('ate_rmse_deg', math.nan):.3f} deg; target "
        f"{t['ate_cm']} cm / {t['ate_deg']} deg ({t['regime']}): {'met' if t['met'] else 'NOT met'}"
    )
    print(
        f"RPE {result['rpe_position_m_per_m']['rmse'] * 100:.2f} cm/m, "
        f"{result['rpe_attitude_deg_per_m']['rmse']:.3f} deg/m; "
        f"{result['waypoints_reached']}/{result['waypoints_total']} waypoints reached; "
        f"{len(losses)} localization losses; frame cost median {cost.get('median') or 0:.1f} ms; "
        f"RTF x{result['real_time_factor'] or 0:.1f} wall, x{result['real_time_factor_cpu'] or 0:.1f} CPU; "
        f"outputs in {args.out}"
    )
    return 0 if t["met"] and result["all_reached"] else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m intball_sim.eval_loc --mission FILE --out DIR ...``"""
    parser = argparse.ArgumentParser(
        prog="intball eval-loc",
        description="Fly a mission with vision in the loop and score the localization.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
