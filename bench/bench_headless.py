"""Benchmark the headless simulator: real-time factor and arrival accuracy over seeds.

    .venv/bin/python bench/bench_headless.py [--mission examples/tour.yaml] [--runs 5]

Runs the mission once per seed (0..runs-1, fast mode, truth-noise localization) and prints
a Markdown block for docs/benchmarks.md: the machine and its load average, the median
real-time factor (wall clock, and per CPU second of this process, which is less sensitive
to other load on a shared machine; both for the simulation loop, without start-up and
plotting), the CPU time per control tick, and the per-waypoint arrival errors (median and
worst over the seeds).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import pybullet

from intball_sim.headless import CONTROL_HZ, PHYSICS_HZ, run_mission

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MISSION = ROOT / "examples" / "tour.yaml"

FALLBACK_TOUR = """\
version: 1
name: bench-tour
flight_mode: nominal
start: {position: [1.5, 0.0, 0.0], rpy_deg: [0, 0, 0]}
waypoints:
  - {position: [3.0, 0.3, 0.2], rpy_deg: [0, 0, 30], hold_s: 3}
  - {position: [5.0, -0.4, -0.3], rpy_deg: [0, 10, -45]}
  - {position: [7.0, 0.0, 0.4], rpy_deg: [0, 0, 180], hold_s: 2}
  - {position: [2.0, 0.0, 0.0], rpy_deg: [0, 0, 0]}
"""


def machine() -> str:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{model}, {os.cpu_count()} logical cores ({usable} usable), {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, PyBullet API {pybullet.getAPIVersion()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mission", type=Path, default=None, help=f"default {DEFAULT_MISSION.relative_to(ROOT)}"
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="intball-bench-") as tmp:
        mission = args.mission or DEFAULT_MISSION
        note = ""
        if not mission.is_file():
            mission = Path(tmp) / "bench_tour.yaml"
            mission.write_text(FALLBACK_TOUR)
            note = f" ({DEFAULT_MISSION.relative_to(ROOT)} missing: built-in 4-waypoint tour)"
        load_before = os.getloadavg()
        rtf_wall, rtf_cpu, runs = [], [], []
        for seed in range(args.runs):
            summary = run_mission(mission, Path(tmp) / f"run{seed}", seed=seed, plot=False)
            runs.append(summary)
            rtf_wall.append(summary["real_time_factor"])
            rtf_cpu.append(summary["real_time_factor_cpu"])
            print(
                f"# seed {seed}: sim {summary['sim_time_s']:.1f} s, RTF {summary['real_time_factor']:.0f} "
                f"(CPU {rtf_cpu[-1]:.0f}), {summary['waypoints_reached']}/{summary['waypoints_total']} "
                f"reached, {summary['collisions']} collisions",
                file=sys.stderr,
            )
        load_after = os.getloadavg()

    print(f"### Headless simulator: `{mission.name}`{note}\n")
    print(f"- Machine: {machine()}")
    print(
        f"- Load average (1 / 5 / 15 min) before: {' / '.join(f'{x:.1f}' for x in load_before)}, "
        f"after: {' / '.join(f'{x:.1f}' for x in load_after)} "
        "(other processes share the machine when this is high: trust the CPU figures)"
    )
    print(
        f"- Rates: physics {PHYSICS_HZ:g} Hz, estimator + GNC {CONTROL_HZ:g} Hz; airflow and thrust "
        f"noise on; localization truth-noise; {args.runs} runs (seeds 0..{args.runs - 1})"
    )
    print(
        f"- Real-time factor, median (min..max): wall {statistics.median(rtf_wall):.0f} "
        f"({min(rtf_wall):.0f}..{max(rtf_wall):.0f}); per CPU second {statistics.median(rtf_cpu):.0f} "
        f"({min(rtf_cpu):.0f}..{max(rtf_cpu):.0f})"
    )
    cpu_per_tick = [r["cpu_time_s"] / (r["sim_time_s"] * CONTROL_HZ) * 1e6 for r in runs]
    print(
        f"- CPU time per {CONTROL_HZ:g} Hz control tick (estimator + GNC + 1/{CONTROL_HZ:g} s of "
        f"physics + logging): {statistics.median(cpu_per_tick):.0f} us (median)"
    )
    print(f"- Sim time per run: {statistics.median(r['sim_time_s'] for r in runs):.1f} s (median)")
    print(
        f"- All waypoints reached in {sum(r['all_reached'] for r in runs)}/{len(runs)} runs; "
        f"collisions: {sum(r['collisions'] for r in runs)}\n"
    )
    print("| waypoint | reached | position error median / max [mm] | attitude error median / max [deg] |")
    print("| --- | --- | --- | --- |")
    for k in range(runs[0]["waypoints_total"]):
        rows = [r["waypoints"][k] for r in runs]
        ok = [w for w in rows if w["reached"]]
        if ok:
            pos = [w["position_error_m"] * 1000 for w in ok]
            att = [w["attitude_error_deg"] for w in ok]
            print(
                f"| {k} | {len(ok)}/{len(rows)} | {statistics.median(pos):.1f} / {max(pos):.1f} | "
                f"{statistics.median(att):.2f} / {max(att):.2f} |"
            )
        else:
            print(f"| {k} | 0/{len(rows)} | - | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
