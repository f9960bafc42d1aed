"""Benchmark the competition evaluator: five-minute missions completed per wall-clock minute.

    .venv/bin/python bench/bench_compete.py [--missions 10] [--repeats 3] [--workers 2]
                                            [--vision-missions 2] [--skip-vision] [--mission ID]

Each batch evaluates ``--missions`` seeds of ``--mission`` (default: the current mission,
``kibo-targets-v2``) through the full path (upload
check, sandboxed child process, mission session, scoring) on a local process pool of
``--workers`` (spawn start-up included in the wall time). The behavior is the starter kit
(``examples/compete/behavior.py``: flies to each target, renders main-camera images, reads
QR/ArUco, snapshots, aims, reports) changed to hold its position until the 300 s limit instead of
finishing early, so every mission is five minutes of sim time. Truth-noise localization is
the issue's target (>= 20 missions per minute on 2 cores); the vision-in-the-loop figure (nav
cameras rendered at 5 Hz, ESKF) is printed beside it. Prints a Markdown block with the medians,
the spread and the load average (``uptime``) before and after, for docs/compete.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

from intball_compete.evaluate import RunSpec, evaluate_batch
from intball_compete.missions import DEFAULT_MISSION, MISSION_IDS

ROOT = Path(__file__).resolve().parents[1]
STARTER = ROOT / "examples" / "compete" / "behavior.py"


def full_length_behavior() -> bytes:
    """The starter behavior, holding until the time limit instead of calling finish()."""
    src = STARTER.read_text()
    marker = "    api.finish()\n"
    if not src.endswith(marker):
        raise SystemExit(f"{STARTER} no longer ends with api.finish(): update the benchmark")
    return (src[: -len(marker)] + "    api.wait(api.time_remaining() + 1.0)\n").encode()


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def batch(behavior: bytes, seeds: list[int], workers: int, localization: str, mission: str) -> dict:
    specs = [RunSpec(behavior, "behavior.py", mission, s, localization) for s in seeds]
    t0 = time.perf_counter()
    results = evaluate_batch(specs, workers=workers)
    wall = time.perf_counter() - t0
    sim = [r["measures"]["mission_time_s"] for r in results if "measures" in r]
    return {
        "wall_s": wall,
        "per_min": len(results) / wall * 60.0,
        "statuses": sorted({r["status"] for r in results}),
        "sim_s": statistics.mean(sim) if sim else 0.0,
        "cpu_s": statistics.mean(r.get("cpu_s_worker", 0.0) for r in results),
        "cpu_child_s": statistics.mean(r.get("cpu_s_behavior", 0.0) for r in results),
        "total": statistics.mean(r["total"] for r in results),
        # the per-run limits must not bite the starter: renders, refusals, result size
        "images_max": max(r["measures"]["images_rendered"] for r in results if "measures" in r),
        "images_refused": sum(r["measures"]["images_refused"] for r in results if "measures" in r),
        "result_kb_max": max(len(json.dumps(r)) for r in results) / 1024.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--missions", type=int, default=10, help="missions per batch (truth-noise)")
    parser.add_argument("--repeats", type=int, default=3, help="batches (median reported)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--vision-missions", type=int, default=2)
    parser.add_argument("--vision-repeats", type=int, default=1)
    parser.add_argument("--skip-vision", action="store_true")
    parser.add_argument("--mission", default=DEFAULT_MISSION, choices=MISSION_IDS)
    args = parser.parse_args(argv)
    behavior = full_length_behavior()
    before = load()
    rows = []
    for k in range(args.repeats):
        seeds = list(range(100 * k, 100 * k + args.missions))
        rows.append(batch(behavior, seeds, args.workers, "truth-noise", args.mission))
        print(f"truth-noise batch {k + 1}: {rows[-1]}", flush=True)
    vision = []
    if not args.skip_vision:
        for k in range(args.vision_repeats):
            seeds = list(range(1000 + 10 * k, 1000 + 10 * k + args.vision_missions))
            vision.append(batch(behavior, seeds, args.workers, "vision", args.mission))
            print(f"vision batch {k + 1}: {vision[-1]}", flush=True)
    after = load()
    print()
    print(f"### Competition throughput ({time.strftime('%Y-%m-%d')})")
    print()
    cores = f"{os.cpu_count()} cores, {args.workers} workers"
    print(f"- machine: {platform.processor() or platform.machine()}, {cores}; mission {args.mission}")
    print(f"- load before: `{before}`")
    print(f"- load after: `{after}`")
    print()
    print(
        "| localization | missions x batches | missions / wall min (median, min-max) | sim s / mission "
        "| CPU s / mission (simulator + behavior) | CPU-bound projection, 2 idle cores "
        "| mean total | statuses | renders / mission (max), refused | result JSON (max) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, rs, n in (("truth-noise", rows, args.missions), ("vision", vision, args.vision_missions)):
        if not rs:
            continue
        per = [r["per_min"] for r in rs]
        cpu = statistics.median(r["cpu_s"] for r in rs)
        child = statistics.median(r["cpu_child_s"] for r in rs)
        sim = statistics.median(r["sim_s"] for r in rs)
        total = statistics.median(r["total"] for r in rs)
        statuses = ", ".join(sorted({s for r in rs for s in r["statuses"]}))
        print(
            f"| {name} | {n} x {len(rs)} | {statistics.median(per):.1f} ({min(per):.1f}-{max(per):.1f}) "
            f"| {sim:.0f} | {cpu:.1f} + {child:.1f} | {2 * 60 / (cpu + child):.0f} / min "
            f"| {total:.1f} | {statuses} | {max(r['images_max'] for r in rs)}, "
            f"{sum(r['images_refused'] for r in rs)} | {max(r['result_kb_max'] for r in rs):.0f} kB |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
