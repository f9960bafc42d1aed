"""SQLite store (migrations, restart resumes queued runs) and the HTTP API sub-application."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import time
import zipfile

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer

from intball_compete import store as store_module
from intball_compete.service import Evaluator
from intball_compete.store import SCHEMA_VERSION, Store
from intball_compete.web import create_app

QUICK = b"""
def run(api):
    info = api.start_mission()
    api.move_relative([0.3, 0.0, 0.0])
    t = info.targets[0]
    api.report_target(t.id, 'GUESS')
    print('done at', round(api.get_state().t, 2))
    api.finish()
"""
HOSTILE = b"import os\ndef run(api):\n    os.fork()\n"


def test_migrations_run_forward_and_keep_data(tmp_path):
    db = sqlite3.connect(tmp_path / store_module.DB_NAME, isolation_level=None)
    store_module.MIGRATIONS[0](db)  # a version-1 database made by older code
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.execute(
        "INSERT INTO submissions (name, mission, filename, content, sha256, seeds, created) "
        "VALUES ('old', 'kibo-targets-v1', 'b.py', x'00', 'h', 1, 0)"
    )
    db.execute("INSERT INTO runs (submission_id, seed, state) VALUES (1, 0, 'running')")
    db.close()
    s = Store(tmp_path)
    assert s.version() == SCHEMA_VERSION == 3
    sub = s.submission(1)
    assert sub["name"] == "old" and sub["localization"] == "truth-noise"
    assert sub["scoring"] == "score-v1"  # what every run before v3 was scored under
    assert s.requeued == 1 and s.count_runs("queued") == 1  # the interrupted run is resumed
    s.close()
    newer = sqlite3.connect(tmp_path / store_module.DB_NAME, isolation_level=None)
    newer.execute("UPDATE schema_version SET version = 99")
    newer.close()
    with pytest.raises(RuntimeError, match="newer than this code"):
        Store(tmp_path)


def test_restart_loses_nothing_and_resumes(tmp_path):
    s = Store(tmp_path)
    sid = s.add_submission("a", "kibo-targets-v1", "behavior.py", QUICK, 3)
    claimed = s.claim_run()
    assert claimed["seed"] == 0
    s.finish_run(claimed["id"], {"status": "ok", "total": 12.5, "terms": {"targets": 0}, "log": "hi"})
    s.claim_run()  # seed 1 in flight when the server dies
    s.close()
    s2 = Store(tmp_path)
    assert s2.requeued == 1
    assert [r["state"] for r in s2.runs(sid)] == ["done", "queued", "queued"]
    assert s2.run(sid, 0)["log"] == "hi" and s2.run(sid, 0)["total"] == 12.5
    assert (tmp_path.stat().st_mode & 0o777) == 0o700
    s2.close()


def test_leaderboard_never_ranks_totals_of_different_rules_together(tmp_path):
    """Each row carries its scoring rule; ranks count within a rule, the mission's current rule
    first (an old-rule submission of 150 does not outrank a current-rule one of 120)."""
    s = Store(tmp_path)
    rows = [("old-rule", "score-v0", 150.0), ("a", None, 120.0), ("b", None, 130.0)]
    for name, scoring, total in rows:
        sid = s.add_submission(name, "kibo-targets-v2", "behavior.py", QUICK, 1, scoring=scoring)
        s.finish_run(s.claim_run()["id"], {"status": "ok", "total": total, "terms": {}})
        assert s.submission(sid)["state"] == "scored"
    board = s.leaderboard("kibo-targets-v2")
    assert [(b["name"], b["scoring"], b["rank"]) for b in board] == [
        ("b", "score-v2", 1),
        ("a", "score-v2", 2),
        ("old-rule", "score-v0", 1),
    ]
    with pytest.raises(ValueError, match="unknown mission"):
        s.add_submission("x", "kibo-targets-v9", "behavior.py", QUICK, 1)
    s.close()


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


async def _wait_scored(client: TestClient, sid: int, timeout: float = 90.0) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        r = await client.get(f"/api/compete/submissions/{sid}")
        body = await r.json()
        if body["state"] == "scored":
            return body
        await asyncio.sleep(0.3)
    raise AssertionError(f"submission {sid} not scored in {timeout} s: {body}")


def test_http_api_upload_status_logs_replay_leaderboard(tmp_path):
    store = Store(tmp_path / "data")
    evaluator = Evaluator(store, workers=0, poll_s=0.1, limits={"think_wall_s": 10.0}).start()
    root = web.Application()
    root.add_subapp("/api/compete", create_app(store, evaluator))

    async def scenario() -> None:
        async with TestClient(TestServer(root, host="127.0.0.1")) as client:
            r = await client.get("/api/compete/missions")
            missions = {m["id"]: m for m in await r.json()}
            assert (
                missions["kibo-targets-v1"]["scoring"] == "score-v1"
                and not missions["kibo-targets-v1"]["default"]
            )
            assert (
                missions["kibo-targets-v2"]["scoring"] == "score-v2"
                and missions["kibo-targets-v2"]["default"]
            )
            assert missions["kibo-targets-v2"]["terms"][-1] == "snapshots"
            # rejected uploads: reasons, nothing stored
            for filename, data, part in [
                ("b.txt", b"x", "must be a .py file"),
                ("b.py", b"def run(api) pass", "syntax error"),
                ("b.zip", _zip({"../evil.py": b"x"}), "path traversal"),
                ("b.zip", _zip({"helper.py": b"x = 1"}), "no behavior.py"),
                ("b.zip", b"PK\x03\x04garbage", "not a valid zip"),
            ]:
                form = FormData()
                form.add_field("file", data, filename=filename)
                r = await client.post("/api/compete/submissions", data=form)
                assert r.status == 400 and part in (await r.json())["error"]
            form = FormData()
            form.add_field("file", QUICK, filename="b.py")
            form.add_field("seeds", "0")
            r = await client.post("/api/compete/submissions", data=form)
            assert r.status == 400 and "seeds 0 out of range" in (await r.json())["error"]
            # two good submissions (one zipped with a helper module) and a hostile one
            ids = []
            for name, filename, data in [
                ("quick", "behavior.py", QUICK),
                (
                    "zipped",
                    "team.zip",
                    _zip(
                        {
                            "behavior.py": b"from helper import go\ndef run(api):\n    go(api)\n",
                            "helper.py": b"def go(api):\n    api.start_mission()\n    api.finish()\n",
                        }
                    ),
                ),
                ("hostile", "evil.py", HOSTILE),
            ]:
                form = FormData()
                form.add_field("file", data, filename=filename)
                form.add_field("name", name)
                form.add_field("seeds", "2")
                r = await client.post("/api/compete/submissions", data=form)
                assert r.status == 201, await r.text()
                ids.append((await r.json())["id"])
            r = await client.get("/api/compete/submissions")
            assert [s["name"] for s in await r.json()] == ["quick", "zipped", "hostile"]
            bodies = [await _wait_scored(client, sid) for sid in ids]
            quick, zipped, hostile = bodies
            assert [r["status"] for r in quick["run_list"]] == ["ok", "ok"]
            assert [r["status"] for r in zipped["run_list"]] == ["ok", "ok"]
            assert [r["status"] for r in hostile["run_list"]] == ["violation", "violation"]
            assert hostile["mean_total"] == 0.0
            assert quick["mission"] == "kibo-targets-v2" and quick["scoring"] == "score-v2"  # the default
            assert set(quick["run_list"][0]["terms"]) == {
                "targets",
                "pointing",
                "time",
                "collisions",
                "keep_out",
                "energy",
                "snapshots",
            }
            r = await client.get(f"/api/compete/submissions/{ids[0]}/runs/1/log")
            assert r.content_type == "text/plain" and "done at" in await r.text()
            r = await client.get(f"/api/compete/submissions/{ids[0]}/runs/1")
            run = await r.json()
            assert run["status"] == "ok" and run["result"]["score"]["per_target"][0]["reported"] == "GUESS"
            r = await client.get(f"/api/compete/submissions/{ids[0]}/runs/1/trajectory")
            traj = await r.json()
            assert traj["columns"][:4] == ["t", "x", "y", "z"] and len(traj["rows"]) > 10
            r = await client.get(f"/api/compete/submissions/{ids[2]}/runs/0")
            assert "os.fork" in (await r.json())["reason"]
            r = await client.get("/api/compete/leaderboard/kibo-targets-v2")
            board = await r.json()
            assert [b["name"] for b in board][-1] == "hostile" and board[0]["rank"] == 1
            assert {b["scoring"] for b in board} == {"score-v2"}
            assert board[0]["mean_total"] >= board[-1]["mean_total"]
            for path, status in [
                ("/api/compete/submissions/999", 404),
                ("/api/compete/submissions/1/runs/7", 404),
                ("/api/compete/leaderboard/nope", 404),
                ("/api/compete/submissions/abc", 400),
            ]:
                assert (await client.get(path)).status == status, path

    try:
        asyncio.run(scenario())
    finally:
        evaluator.stop()
        store.close()
    assert evaluator.errors == []


def test_evaluator_pool_resumes_runs_interrupted_by_a_restart(tmp_path):
    """A run left 'running' by a dead server is evaluated by the next one (process pool)."""
    s = Store(tmp_path)
    sid = s.add_submission("quick", "kibo-targets-v1", "behavior.py", QUICK, 2)
    s.claim_run()  # the old server took seed 0 and died
    s.close()
    store = Store(tmp_path)
    assert store.requeued == 1
    evaluator = Evaluator(store, workers=1, poll_s=0.1, limits={"think_wall_s": 10.0}).start()
    try:
        t0 = time.monotonic()
        while not evaluator.idle() and time.monotonic() - t0 < 120:
            time.sleep(0.2)
    finally:
        evaluator.stop()
    sub = store.submission(sid)
    assert sub["state"] == "scored" and sub["runs"] == {"done": 2}, sub
    assert [r["status"] for r in store.runs(sid)] == ["ok", "ok"]
    assert evaluator.errors == []
    store.close()
