"""Headless-run outputs: ``summary.json`` and ``trajectory.png`` (matplotlib, Agg backend).

The plot shows the module clear volume from above (x-y) and from the side (x-z) with the
ground-truth path, the estimate, the waypoints (numbered), the start, the dock and the
keep-out boxes, all in the kibo frame.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from intball_nav.module import ModuleGeometry


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_summary(path: str | Path, summary: dict[str, Any]) -> None:
    """Write the summary dict as pretty JSON (numpy values converted, NaN/inf -> null)."""
    Path(path).write_text(json.dumps(_jsonable(summary), indent=2) + "\n", encoding="utf-8")


def plot_trajectory(
    path: str | Path,
    module: ModuleGeometry,
    truth: np.ndarray,
    estimate: np.ndarray,
    waypoints: np.ndarray,
    start: np.ndarray,
    *,
    reached: list[bool] | None = None,
    collisions: np.ndarray | None = None,
    title: str = "",
) -> None:
    """Top (x-y) and side (x-z) views of a run, saved as PNG.

    truth, estimate : (N,3) m, kibo frame; waypoints : (M,3) m; start : (3,) m
    reached : per waypoint (drawn green if reached, red if not)
    collisions : (K,3) m, robot positions at first wall contact (drawn as crosses)
    """
    import matplotlib  # noqa: PLC0415 - keep matplotlib out of module import time

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.patches import Rectangle  # noqa: PLC0415

    truth = np.asarray(truth, dtype=float).reshape(-1, 3)
    estimate = np.asarray(estimate, dtype=float).reshape(-1, 3)
    waypoints = np.asarray(waypoints, dtype=float).reshape(-1, 3)
    reached = reached if reached is not None else [True] * len(waypoints)
    lo, hi = np.asarray(module.clear_min), np.asarray(module.clear_max)
    size = hi - lo
    fig, axes = plt.subplots(2, 1, figsize=(12, 6.5), constrained_layout=True)
    for ax, (i, j), label in zip(axes, ((0, 1), (0, 2)), ("top view", "side view"), strict=True):
        ax.add_patch(Rectangle((lo[i], lo[j]), size[i], size[j], fill=False, lw=1.5, ec="0.3"))
        for box in module.keep_out:
            b0, b1 = np.asarray(box.min), np.asarray(box.max)
            ax.add_patch(
                Rectangle((b0[i], b0[j]), b1[i] - b0[i], b1[j] - b0[j], fc="0.85", ec="0.5", hatch="//")
            )
        dock = module.dock.box
        d0, d1 = np.asarray(dock.min), np.asarray(dock.max)
        ax.add_patch(Rectangle((d0[i], d0[j]), d1[i] - d0[i], d1[j] - d0[j], fc="tab:purple", alpha=0.35))
        ax.annotate("dock", (0.5 * (d0[i] + d1[i]), d1[j] + 0.03), ha="center", va="bottom", fontsize=8)
        if len(estimate):
            ax.plot(estimate[:, i], estimate[:, j], color="tab:orange", lw=0.8, ls="--", label="estimate")
        if len(truth):
            ax.plot(truth[:, i], truth[:, j], color="tab:blue", lw=1.2, label="ground truth")
        ax.plot(start[i], start[j], "k^", ms=7, label="start")
        for k, (wp, ok) in enumerate(zip(waypoints, reached, strict=True)):
            label = None
            if k == reached.index(ok):  # one legend entry per kind
                label = "waypoint reached" if ok else "waypoint NOT reached"
            color = "tab:green" if ok else "tab:red"
            ax.plot(wp[i], wp[j], "o", ms=7, mfc="none", mec=color, mew=1.8, label=label)
            same = [m for m in range(len(waypoints)) if np.linalg.norm(waypoints[m] - wp) < 0.01]
            if same[0] == k:  # one label "0,5" for waypoints at the same place
                text = ",".join(str(m) for m in same)
                ax.annotate(text, (wp[i], wp[j]), xytext=(4, 4), textcoords="offset points", fontsize=8)
        if collisions is not None and len(collisions):
            c = np.asarray(collisions).reshape(-1, 3)
            ax.plot(c[:, i], c[:, j], "rx", ms=8, mew=2, label="collision")
        ax.set_xlim(lo[i] - 0.2, hi[i] + 0.2)
        ax.set_ylim(lo[j] - 0.2, hi[j] + 0.2)
        ax.set_aspect("equal")
        ax.set_xlabel(f"{'xyz'[i]} [m] (kibo)")
        ax.set_ylabel(f"{'xyz'[j]} [m] (kibo)")
        ax.set_title(label, fontsize=9, loc="left")
        ax.grid(True, lw=0.3)
    axes[0].legend(loc="lower right", fontsize=7, ncols=3, framealpha=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
