"""Micro-benchmark of intball_nav.allocation.allocate: median microseconds per call.

Run: .venv/bin/python bench/bench_allocation.py
Two workloads: feasible wrenches (station keeping / cruise) and infeasible ones
(saturation: torque kept, force scaled). Each is timed in several runs; the median of
the per-run means is printed.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from intball_nav.allocation import allocate
from intball_nav.robot import load_robot_params

CALLS_PER_RUN = 5000
RUNS = 7
AUTHORITY = np.array([0.18, 0.10, 0.12, 3e-3, 4.5e-3, 8.2e-3])


def _median_us(wrenches: np.ndarray, params) -> float:
    per_run = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        for w in wrenches:
            allocate(w, params)
        per_run.append((time.perf_counter() - t0) / len(wrenches) * 1e6)
    return statistics.median(per_run)


def main() -> None:
    params = load_robot_params()
    rng = np.random.default_rng(0)
    unit = rng.uniform(-1.0, 1.0, (CALLS_PER_RUN, 6))
    allocate(unit[0], params)  # build and cache the allocator
    feasible = unit * AUTHORITY * 0.1
    saturating = unit * AUTHORITY * 3.0
    print(
        f"allocate, feasible wrenches:   {_median_us(feasible, params):6.1f} us/call, median of {RUNS} runs"
    )
    print(
        f"allocate, saturating wrenches: {_median_us(saturating, params):6.1f} us/call, median of {RUNS} runs"
    )


if __name__ == "__main__":
    main()
