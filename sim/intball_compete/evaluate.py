"""Evaluate behaviors: one run (behavior x mission x seed), and batches on a process pool or Ray.

``evaluate_run(spec)`` builds the scenario, starts a :class:`MissionSession`, runs the behavior in
the sandbox against it and scores the result; it never raises for anything the behavior does
(and reports our own failures as status ``error``). ``evaluate_batch(specs, workers=,
ray_address=)`` maps it over many specs: a local ``ProcessPoolExecutor`` (spawn) by default, or
Ray when an address is given (``"local"`` starts a local instance); results come back in the
order of the specs and are identical either way (sim time drives every run).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from typing import Any

from intball_compete.missions import DEFAULT_MISSION, MISSIONS
from intball_compete.sandbox import Limits


@dataclass(frozen=True)
class RunSpec:
    """One evaluation. behavior : upload bytes (``.py`` or ``.zip``) named ``filename``;
    mission : scenario id; seed : scenario seed; localization : truth-noise | truth | vision;
    limits : sandbox limits as a dict of :class:`Limits` fields; tag : caller's key (echoed)."""

    behavior: bytes
    filename: str
    mission: str = DEFAULT_MISSION
    seed: int = 0
    localization: str = "truth-noise"
    limits: dict[str, Any] = field(default_factory=dict)
    tag: Any = None


def evaluate_run(spec: RunSpec) -> dict[str, Any]:
    """Run and score one spec; returns a JSON-able result (status, reason, total, terms, ...)."""
    from intball_compete.missions import make_scenario  # noqa: PLC0415 - heavy: only in workers
    from intball_compete.sandbox import run_sandboxed  # noqa: PLC0415
    from intball_compete.scoring import score  # noqa: PLC0415
    from intball_compete.session import MissionSession  # noqa: PLC0415
    from intball_compete.upload import UploadRejected, unpack  # noqa: PLC0415

    wall0, cpu0 = time.perf_counter(), time.process_time()
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    definition = MISSIONS.get(spec.mission)
    base = {
        "mission": spec.mission,
        "rule": None if definition is None else definition.scoring,
        "seed": spec.seed,
        "localization": spec.localization,
        "behavior_sha256": hashlib.sha256(spec.behavior).hexdigest(),
        "tag": spec.tag,
    }
    try:
        files = unpack(spec.filename, spec.behavior)
        scenario = make_scenario(spec.mission, spec.seed)
        limits = Limits(**{**_default_limits(spec.localization), **spec.limits})
    except (UploadRejected, KeyError, ValueError, TypeError) as exc:
        return {**base, "status": "rejected", "reason": str(exc), "total": 0.0, "terms": {}, "log": ""}
    session = None
    try:
        session = MissionSession(scenario, localization=spec.localization)
        sandbox = run_sandboxed(files, session.handle, limits, is_done=lambda: session.done)
        measures = session.measures()
        scored = score(scenario, measures, sandbox.status)
    except Exception as exc:  # noqa: BLE001 - our failure: reported, never raised into the pool
        return {
            **base,
            "status": "error",
            "reason": f"evaluator error: {type(exc).__name__}: {exc}",
            "total": 0.0,
            "terms": {},
            "log": "",
        }
    finally:
        if session is not None:
            session.close()
    trajectory = measures.pop("trajectory")
    return {
        **base,
        "status": sandbox.status,
        "reason": sandbox.reason,
        "total": scored["total"],
        "terms": scored["terms"],
        "score": scored,
        "measures": measures,
        "trajectory": trajectory,
        "log": sandbox.log,
        "log_truncated_bytes": sandbox.log_truncated_bytes,
        "sandbox": {k: v for k, v in sandbox.as_dict().items() if k not in ("log", "status", "reason")},
        "wall_s": round(time.perf_counter() - wall0, 3),
        "cpu_s_worker": round(time.process_time() - cpu0, 3),
        "cpu_s_behavior": round(_child_cpu(kids0), 3),
    }


VISION_RUN_WALL_S = 3600.0
"""s, the run's wall-time budget in ``vision`` mode (the default 900 s is for truth-noise).

The budget includes the simulator's own time, and a vision-mode mission costs ~50-65 s of CPU
(~17x truth-noise): on the shared 2-core machine at load 17 one took 683 s of wall time, close
to 900 s. A run that hits a wall-time budget ends ``timeout`` with total 0 whatever it did, so
a budget within reach of the load would make the score depend on the machine, not the seed."""


def _default_limits(localization: str) -> dict[str, Any]:
    return {"run_wall_s": VISION_RUN_WALL_S} if localization == "vision" else {}


def _child_cpu(before: resource.struct_rusage) -> float:
    """s of CPU used by child processes (the behavior) since ``before`` (reaped children only)."""
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (now.ru_utime - before.ru_utime) + (now.ru_stime - before.ru_stime)


def score_digest(result: dict[str, Any]) -> str:
    """Hash of what must be identical between equal runs (status, terms, total, trajectory)."""
    keep = {k: result.get(k) for k in ("status", "total", "terms", "trajectory")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=total, disable=not enabled, desc=desc, unit="run", leave=False)


def evaluate_batch(
    specs: Sequence[RunSpec],
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    progress: bool = False,
    on_result: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate many specs; results in the order of ``specs``.

    workers : processes of the local pool (default: CPU count); 1 = in this process
    ray_address : use Ray (``"local"`` = ``ray.init(num_cpus=workers or 2)`` on this machine,
        else the cluster address, e.g. ``ray://head:10001`` or ``auto``)
    on_result : called as (index, result) when each run finishes
    """
    results: list[dict[str, Any] | None] = [None] * len(specs)
    bar = _progress(len(specs), progress, "evaluating")

    def done(i: int, r: dict[str, Any]) -> None:
        results[i] = r
        bar.update(1)
        if on_result is not None:
            on_result(i, r)

    try:
        if ray_address is not None:
            _ray_batch(specs, ray_address, workers, done)
        elif (workers or os.cpu_count() or 1) <= 1 or len(specs) <= 1:
            for i, s in enumerate(specs):
                done(i, evaluate_run(s))
        else:
            n = min(workers or os.cpu_count() or 1, len(specs))
            with ProcessPoolExecutor(max_workers=n, mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(evaluate_run, s): i for i, s in enumerate(specs)}
                for fut in as_completed(futures):
                    done(futures[fut], fut.result())
    finally:
        bar.close()
    return [r for r in results if r is not None]


def init_ray(address: str, num_cpus: int) -> None:
    """Start (``address == "local"``) or join a Ray cluster, keeping the network rule: a local
    instance binds the loopback address only (Ray otherwise picks the address of the default
    route), and usage-stats reporting is off. Both settings are read when ray is imported."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address == "local":
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # -> 127.0.0.1 everywhere
    import ray  # noqa: PLC0415

    if address == "local":
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)


def _ray_batch(
    specs: Sequence[RunSpec], address: str, workers: int | None, done: Callable[[int, dict[str, Any]], None]
) -> None:
    started = False
    if "ray" not in sys.modules or not sys.modules["ray"].is_initialized():
        init_ray(address, workers or 2)
        started = True
    import ray  # noqa: PLC0415

    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(evaluate_run)
        refs = {remote.remote(s): i for i, s in enumerate(specs)}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                done(refs[ref], ray.get(ref))
    finally:
        if started:
            ray.shutdown()


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean total and per-term means over runs (the ranking figure), the scoring rule (a list
    when the runs were scored under different rules: their totals do not compare), and the status
    counts."""
    n = len(results)
    terms: dict[str, float] = {}
    for r in results:
        for k, v in r.get("terms", {}).items():
            terms[k] = terms.get(k, 0.0) + v / n
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    rules = sorted({str(r.get("rule")) for r in results})
    return {
        "runs": n,
        "rule": rules[0] if len(rules) == 1 else rules,  # a list: totals of different rules mixed
        "mean_total": round(sum(r["total"] for r in results) / n, 4) if n else 0.0,
        "mean_terms": {k: round(v, 4) for k, v in terms.items()},
        "statuses": statuses,
    }


def as_dict(spec: RunSpec) -> dict[str, Any]:
    d = asdict(spec)
    d.pop("behavior")
    return d
