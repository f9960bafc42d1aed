"""Path-planning benchmark: full-module-length plans (x 0.3 -> 9.3) around keep-out zones.

Run: .venv/bin/python bench/bench_planning.py [--seeds 20]
Target (#4): median <= 200 ms on one core. The process is pinned to one CPU and BLAS to one
thread. Zones: the dock and the default stowage bag (kibo.yaml), a full-height crew work
area that leaves only a strip along one wall (its x position and side vary with the seed),
and an overhead stowage box near the ELM-PS opening. Start and goal are random free points
at x = 0.3 and x = 9.3. Each seed is planned

- cold: on a new map (the search grid is built: this is the re-plan after a zone changed),
- warm: again on the same map (grid cached),

and, for reference, the straight case without the crew area (no search). Medians over
the seeds of wall-clock and CPU time are printed, with the load average, and the flight
time of the paths (nominal mode) stop-and-go and with corners blended within 5 cm.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from intball_nav.flight_modes import get_flight_mode  # noqa: E402
from intball_nav.module import load_module  # noqa: E402
from intball_nav.planning import PlanningMap, path_trajectory, plan_path  # noqa: E402
from intball_nav.robot import load_robot_params  # noqa: E402
from intball_nav.safety import Box  # noqa: E402


def _scenario(seed: int, module, radius: float) -> tuple[PlanningMap, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(3.0, 5.5)
    if rng.random() < 0.5:  # the crew leave a strip along the port or the starboard wall
        crew = Box(np.array([x0, -1.05, -1.0]), np.array([x0 + 1.0, 0.40, 1.0]), "crew_work_area")
    else:
        crew = Box(np.array([x0, -0.40, -1.0]), np.array([x0 + 1.0, 1.05, 1.0]), "crew_work_area")
    overhead = Box(np.array([6.6, -0.3, 0.2]), np.array([7.3, 1.05, 1.0]), "overhead_stowage")
    pmap = PlanningMap.from_module(module, radius, extra_keep_out=(crew, overhead))
    lo, hi = pmap.keep_in_limits
    ends = []
    for x in (0.3, 9.3):
        while True:
            p = np.array([x, *rng.uniform(lo[1:], hi[1:])])
            if pmap.point_free(p):
                ends.append(p)
                break
    return pmap, ends[0], ends[1]


def _timed(fn) -> tuple[float, float, object]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - w0) * 1e3, (time.process_time() - c0) * 1e3, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    module = load_module()
    radius = load_robot_params().radius
    pmap, start, goal = _scenario(0, module, radius)
    plan_path(start, goal, pmap)  # warm up imports and numpy/scipy caches
    mode = get_flight_mode()
    rows = {"cold": [], "warm": [], "straight": []}
    lengths, vertices, stop_go, blended = [], [], [], []
    for seed in range(args.seeds):
        pmap, start, goal = _scenario(seed, module, radius)
        wall, cpu, path = _timed(lambda pmap=pmap, start=start, goal=goal: plan_path(start, goal, pmap))
        rows["cold"].append((wall, cpu))
        wall, cpu, _ = _timed(lambda pmap=pmap, start=start, goal=goal: plan_path(start, goal, pmap))
        rows["warm"].append((wall, cpu))
        clear = pmap.without_keep_out("crew_work_area").without_keep_out("overhead_stowage")
        wall, cpu, _ = _timed(
            lambda clear=clear: plan_path(np.array([0.3, 0, 0]), np.array([9.3, 0, 0]), clear)
        )
        rows["straight"].append((wall, cpu))
        lengths.append(path.length / float(np.linalg.norm(goal - start)))
        q = np.array([0.0, 0.0, 0.0, 1.0])
        stop_go.append(path_trajectory(path, q, q, mode).duration)
        blended.append(path_trajectory(path, q, q, mode, pmap=pmap, corner_tolerance=0.05).duration)
        vertices.append(len(path.points))
    print(f"plan_path, x 0.3 -> 9.3, {args.seeds} seeds, one core, load average {os.getloadavg()[0]:.1f}")
    for name, vals in rows.items():
        wall = [v[0] for v in vals]
        cpu = [v[1] for v in vals]
        print(
            f"  {name:8s} median {statistics.median(wall):7.2f} ms wall "
            f"({statistics.median(cpu):7.2f} ms CPU), max {max(wall):7.2f} ms wall"
        )
    print(
        f"  path length / straight distance: median {statistics.median(lengths):.3f}, "
        f"max {max(lengths):.3f}; vertices median {statistics.median(vertices):.0f}, max {max(vertices)}"
    )
    ratio = [b / s for b, s in zip(blended, stop_go, strict=True)]
    print(
        f"  flight time ({mode.name}): stop-and-go median {statistics.median(stop_go):.1f} s, "
        f"corners blended within 5 cm median {statistics.median(blended):.1f} s "
        f"(ratio median {statistics.median(ratio):.2f}, min {min(ratio):.2f})"
    )


if __name__ == "__main__":
    main()
