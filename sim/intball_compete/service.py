"""Background evaluator for the server: takes queued runs from the store and evaluates them.

``Evaluator(store, workers=2)`` runs a thread that claims queued runs (oldest first) while a
worker is free and evaluates them on a ``ProcessPoolExecutor`` (spawn; ``workers=0`` evaluates
in the thread itself), or on Ray with ``ray_address``. Results go back to the store; a failure
of ours becomes a run with status ``error``. Started runs that were interrupted (server
restart) were re-queued by the store, so they are picked up again on start.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

from intball_compete.evaluate import RunSpec, evaluate_run, init_ray
from intball_compete.store import Store


class Evaluator:
    """Evaluates the store's queued runs in the background (see module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        workers: int = 1,
        ray_address: str | None = None,
        limits: dict[str, Any] | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.store = store
        self.workers = max(0, int(workers))
        self.ray_address = ray_address
        self.limits = dict(limits or {})
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._active: dict[Future[dict[str, Any]], int] = {}
        self._lock = threading.Lock()
        self.errors: list[str] = []
        self._ray_started = False

    # ------------------------------------------------------------------ control
    def start(self) -> Evaluator:
        if self._thread is None:
            if self.ray_address is None and self.workers > 0:
                self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("spawn"))
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="compete-evaluator", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Call after queueing runs."""
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming; running evaluations finish and are stored (the pool is shut down)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)
            self._pool = None
        while True:  # Ray tasks in flight finish and are stored
            with self._lock:
                pending = list(self._active)
            if not pending:
                break
            pending[0].result()
        if self._ray_started:
            import ray  # noqa: PLC0415

            ray.shutdown()
            self._ray_started = False

    def idle(self) -> bool:
        with self._lock:
            busy = bool(self._active)
        return not busy and self.store.count_runs("queued") == 0 and self.store.count_runs("running") == 0

    # ------------------------------------------------------------------ loop
    def _capacity(self) -> int:
        return max(1, self.workers) if self.ray_address is None else max(1, self.workers or 2)

    def _submit(self, spec: RunSpec) -> Future[dict[str, Any]]:
        if self.ray_address is not None:
            if "ray" not in sys.modules or not sys.modules["ray"].is_initialized():
                self._ray_started = True
                init_ray(self.ray_address, self._capacity())
            import ray  # noqa: PLC0415

            remote = ray.remote(num_cpus=1, max_retries=0)(evaluate_run)
            return remote.remote(spec).future()  # type: ignore[no-any-return]
        if self._pool is not None:
            return self._pool.submit(evaluate_run, spec)
        fut: Future[dict[str, Any]] = Future()
        try:
            fut.set_result(evaluate_run(spec))
        except Exception as exc:  # noqa: BLE001
            fut.set_exception(exc)
        return fut

    def _loop(self) -> None:
        while not self._stop.is_set():
            while not self._stop.is_set():
                with self._lock:
                    full = len(self._active) >= self._capacity()
                if full:
                    break
                row = self.store.claim_run()
                if row is None:
                    break
                spec = RunSpec(
                    behavior=bytes(row["content"]),
                    filename=row["filename"],
                    mission=row["mission"],
                    seed=int(row["seed"]),
                    localization=row["localization"],
                    limits=self.limits,
                    tag=row["id"],
                )
                fut = self._submit(spec)
                with self._lock:
                    self._active[fut] = int(row["id"])
                fut.add_done_callback(self._finished)
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _finished(self, fut: Future[dict[str, Any]]) -> None:
        with self._lock:
            run_id = self._active.pop(fut)
        try:
            result = fut.result()
        except Exception as exc:  # noqa: BLE001 - a worker died: the run is an error, the server goes on
            result = {
                "status": "error",
                "reason": f"evaluation failed: {type(exc).__name__}: {exc}",
                "total": 0.0,
                "terms": {},
            }
            self.errors.append(result["reason"])
        try:
            self.store.finish_run(run_id, result)
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"storing run {run_id}: {exc}")
        self._wake.set()
