"""Batch evaluation: the process pool, Ray (local instance, slow) and inline give identical
results; the ``intball compete run`` command; the loop-style API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from intball_compete.evaluate import RunSpec, evaluate_batch, evaluate_run, score_digest, summarize

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "compete"
SHORT = b"""
def run(api):
    info = api.start_mission()
    t = min(info.targets, key=lambda t: t.approx_position[0])
    api.move_to(t.approx_position + 1.1 * t.normal, look_at=t.approx_position)
    api.aim(t.id)
    api.finish()
"""


def _specs(seeds):
    return [RunSpec(SHORT, "behavior.py", seed=s, tag=s) for s in seeds]


def test_pool_and_inline_give_identical_results():
    inline = evaluate_batch(_specs([0, 1]), workers=1)
    pooled = evaluate_batch(_specs([0, 1]), workers=2)
    assert [r["tag"] for r in pooled] == [0, 1]
    assert [score_digest(r) for r in inline] == [score_digest(r) for r in pooled]
    assert all(r["status"] == "ok" and r["measures"]["aim_count"] == 1 for r in pooled), [
        r["reason"] for r in pooled
    ]
    s = summarize(pooled)
    assert s["runs"] == 2 and s["statuses"] == {"ok": 2}
    assert s["mean_total"] == pytest.approx((pooled[0]["total"] + pooled[1]["total"]) / 2, abs=1e-3)


@pytest.mark.slow
def test_ray_local_instance_gives_identical_results():
    pooled = evaluate_batch(_specs([2, 3]), workers=2)
    on_ray = evaluate_batch(_specs([2, 3]), workers=2, ray_address="local")
    import ray  # after the batch: init_ray sets the network environment before ray's first import

    assert not ray.is_initialized()
    assert [r["tag"] for r in on_ray] == [2, 3]
    assert [score_digest(r) for r in on_ray] == [score_digest(r) for r in pooled]


@pytest.mark.slow
def test_server_evaluator_on_ray_stores_the_same_totals(tmp_path):
    from intball_compete.service import Evaluator
    from intball_compete.store import Store

    store = Store(tmp_path)
    sid = store.add_submission("short", "kibo-targets-v1", "behavior.py", SHORT, 2)
    evaluator = Evaluator(store, workers=2, ray_address="local", poll_s=0.1).start()
    try:
        t0 = time.monotonic()
        while not evaluator.idle() and time.monotonic() - t0 < 180:
            time.sleep(0.2)
    finally:
        evaluator.stop()
    local = evaluate_batch(_specs([0, 1]), workers=1)
    runs = store.runs(sid)
    assert [r["status"] for r in runs] == ["ok", "ok"], runs
    assert [r["total"] for r in runs] == [r["total"] for r in local]
    assert evaluator.errors == []
    store.close()


def test_loop_style_example_runs():
    src = (EXAMPLES / "loop_behavior.py").read_bytes()
    r = evaluate_run(RunSpec(src, "loop_behavior.py", seed=0))
    assert r["status"] == "ok", (r["reason"], r["log"])
    m = r["measures"]
    assert m["aim_count"] == 2 and m["end_reason"] == "finished", m
    assert sorted(str(s["target_id"]) for s in m["snapshots"]) == sorted(m["aims"])  # the action
    assert m["mission_time_s"] > 30.0  # it flew to two bays
    assert all(a["range_m"] < 1.3 for a in m["aims"].values())  # aimed from 1.1 m in front of each bay


def test_cli_run_writes_json(tmp_path, capsys):
    from intball_ros.cli import build_parser

    behavior = tmp_path / "behavior.py"
    behavior.write_bytes(SHORT)
    out = tmp_path / "out.json"
    args = build_parser().parse_args(
        [
            "compete",
            "run",
            str(behavior),
            "--seeds",
            "2",
            "--workers",
            "1",
            "--json",
            str(out),
            "--no-progress",
        ]
    )
    assert args.func(args) == 0
    data = json.loads(out.read_text())
    assert data["summary"]["runs"] == 2 and len(data["runs"]) == 2
    assert data["mission"] == "kibo-targets-v2" and data["summary"]["rule"] == "score-v2"
    assert "mean total over 2 seeds" in capsys.readouterr().out
    bad = tmp_path / "bad.py"
    bad.write_text("def run(api) oops\n")
    args = build_parser().parse_args(["compete", "run", str(bad), "--seeds", "1"])
    assert args.func(args) == 2
    assert "syntax error" in capsys.readouterr().err


@pytest.mark.slow
def test_local_ray_instance_stays_on_loopback():
    """Network rule: a local Ray instance binds 127.0.0.1 (Ray otherwise takes the address of
    the default route) and does not report usage statistics."""
    code = (
        "import os; from intball_compete.evaluate import init_ray; init_ray('local', 1); import ray; "
        "print(ray.util.get_node_ip_address(), os.environ['RAY_USAGE_STATS_ENABLED']); ray.shutdown()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["127.0.0.1", "0"]
