"""SQLite store of submissions, runs and scores (stdlib ``sqlite3``) in a data directory.

``Store(data_dir)`` opens (creating) ``data_dir/compete.sqlite3`` (directory mode 0700, file 0600:
behaviors of other participants are unreadable to the sandbox uids), migrates the schema forward
and makes every run left ``running`` by a previous process ``queued`` again, so a restart loses
nothing and resumes. The schema version is in table ``schema_version``; ``MIGRATIONS[k]`` takes
version k to k + 1 and runs in one transaction.

Submission states: ``queued`` (runs pending) -> ``running`` -> ``scored`` (all runs done).
Run states: ``queued`` -> ``running`` -> ``done`` (its ``status`` says how it ended: ok, crashed,
timeout, violation, ...).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DB_NAME = "compete.sqlite3"


def _v1(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE submissions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            mission TEXT NOT NULL,
            filename TEXT NOT NULL,
            content BLOB NOT NULL,
            sha256 TEXT NOT NULL,
            seeds INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'queued',
            mean_total REAL,
            created REAL NOT NULL
        );
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            submission_id INTEGER NOT NULL REFERENCES submissions(id),
            seed INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'queued',
            status TEXT,
            reason TEXT,
            total REAL,
            terms TEXT,
            result TEXT,
            log TEXT,
            trajectory TEXT,
            started REAL,
            finished REAL,
            UNIQUE (submission_id, seed)
        );
        CREATE INDEX runs_state ON runs(state);
        """,
    )


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Statements one by one (``executescript`` would commit the migration's transaction)."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def _v2(db: sqlite3.Connection) -> None:
    """v2: localization mode per submission and the count of evaluation attempts per run."""
    db.execute("ALTER TABLE submissions ADD COLUMN localization TEXT NOT NULL DEFAULT 'truth-noise'")
    db.execute("ALTER TABLE runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE INDEX submissions_mission ON submissions(mission, mean_total)")


def _v3(db: sqlite3.Connection) -> None:
    """v3: the scoring rule per submission. Rows from before v3 were all scored under
    ``score-v1`` (the only rule then), which the column's default records for them."""
    db.execute("ALTER TABLE submissions ADD COLUMN scoring TEXT NOT NULL DEFAULT 'score-v1'")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3]
SCHEMA_VERSION = len(MIGRATIONS)


class Store:
    """Thread-safe access to the competition database (one connection, one lock)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        self.path = self.data_dir / DB_NAME
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        os.chmod(self.path, 0o600)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self.migrate()
        self.requeued = self._requeue_interrupted()

    # ------------------------------------------------------------------ schema
    def version(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'"
            ).fetchone()
            if row is None:
                return 0
            return int(self._db.execute("SELECT version FROM schema_version").fetchone()[0])

    def migrate(self, target: int = SCHEMA_VERSION) -> int:
        """Apply the forward migrations up to ``target``; returns the version reached."""
        with self._lock:
            current = self.version()
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: schema version {current} is newer than this code ({SCHEMA_VERSION})"
                )
            while current < target:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    MIGRATIONS[current](self._db)
                    if current == 0:
                        self._db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                        self._db.execute("INSERT INTO schema_version VALUES (1)")
                    else:
                        self._db.execute("UPDATE schema_version SET version = ?", (current + 1,))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                current += 1
            return current

    def _requeue_interrupted(self) -> int:
        with self._lock:
            cur = self._db.execute("UPDATE runs SET state = 'queued', started = NULL WHERE state = 'running'")
            self._db.execute(
                "UPDATE submissions SET state = 'queued' WHERE state = 'running' AND id IN "
                "(SELECT submission_id FROM runs WHERE state = 'queued')"
            )
            return cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ submissions
    def add_submission(
        self,
        name: str,
        mission: str,
        filename: str,
        content: bytes,
        seeds: int,
        localization: str = "truth-noise",
        scoring: str | None = None,
    ) -> int:
        """Store a checked upload and queue one run per seed 0..seeds-1; returns its id.
        scoring : the rule its runs are scored under (default: the mission's rule)."""
        if scoring is None:
            from intball_compete.missions import MISSIONS  # noqa: PLC0415

            if mission not in MISSIONS:
                raise ValueError(f"unknown mission {mission!r}: give its scoring rule")
            scoring = MISSIONS[mission].scoring
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "INSERT INTO submissions (name, mission, filename, content, sha256, seeds, localization, "
                    "scoring, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        mission,
                        filename,
                        content,
                        hashlib.sha256(content).hexdigest(),
                        seeds,
                        localization,
                        scoring,
                        time.time(),
                    ),
                )
                sid = int(cur.lastrowid)  # type: ignore[arg-type]
                self._db.executemany(
                    "INSERT INTO runs (submission_id, seed) VALUES (?, ?)", [(sid, s) for s in range(seeds)]
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return sid

    def submission(self, sid: int, *, content: bool = False) -> dict[str, Any] | None:
        cols = (
            "*"
            if content
            else "id, name, mission, filename, sha256, seeds, state, mean_total, created, localization, "
            "scoring"
        )
        with self._lock:
            row = self._db.execute(f"SELECT {cols} FROM submissions WHERE id = ?", (sid,)).fetchone()  # noqa: S608
            if row is None:
                return None
            out = dict(row)
            counts = self._db.execute(
                "SELECT state, COUNT(*) FROM runs WHERE submission_id = ? GROUP BY state", (sid,)
            ).fetchall()
            out["runs"] = {r[0]: r[1] for r in counts}
            return out

    def submissions(self, mission: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            ids = [
                r[0]
                for r in self._db.execute(
                    "SELECT id FROM submissions WHERE (? IS NULL OR mission = ?) ORDER BY id",
                    (mission, mission),
                )
            ]
        return [s for s in (self.submission(i) for i in ids) if s is not None]

    # ------------------------------------------------------------------ runs
    def claim_run(self) -> dict[str, Any] | None:
        """Mark the oldest queued run ``running`` and return it with its submission's content."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT r.id, r.submission_id, r.seed, s.mission, s.filename, s.content, s.localization "
                    "FROM runs r JOIN submissions s ON s.id = r.submission_id WHERE r.state = 'queued' "
                    "ORDER BY r.id LIMIT 1"
                ).fetchone()
                if row is None:
                    self._db.execute("COMMIT")
                    return None
                self._db.execute(
                    "UPDATE runs SET state = 'running', started = ?, attempts = attempts + 1 WHERE id = ?",
                    (time.time(), row["id"]),
                )
                self._db.execute(
                    "UPDATE submissions SET state = 'running' WHERE id = ?", (row["submission_id"],)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return dict(row)

    def finish_run(self, run_id: int, result: dict[str, Any]) -> None:
        """Store a run's result; when it was the submission's last, store the mean and ``scored``."""
        light = {k: v for k, v in result.items() if k not in ("trajectory", "log")}
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "UPDATE runs SET state = 'done', status = ?, reason = ?, total = ?, terms = ?, "
                    "result = ?, "
                    "log = ?, trajectory = ?, finished = ? WHERE id = ?",
                    (
                        result["status"],
                        result.get("reason", ""),
                        float(result.get("total", 0.0)),
                        json.dumps(result.get("terms", {})),
                        json.dumps(light),
                        result.get("log", ""),
                        json.dumps(result.get("trajectory", [])),
                        time.time(),
                        run_id,
                    ),
                )
                sid = self._db.execute("SELECT submission_id FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
                pending = self._db.execute(
                    "SELECT COUNT(*) FROM runs WHERE submission_id = ? AND state != 'done'", (sid,)
                ).fetchone()[0]
                if pending == 0:
                    mean = self._db.execute(
                        "SELECT AVG(total) FROM runs WHERE submission_id = ?", (sid,)
                    ).fetchone()[0]
                    self._db.execute(
                        "UPDATE submissions SET state = 'scored', mean_total = ? WHERE id = ?", (mean, sid)
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def runs(self, sid: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, seed, state, status, reason, total, terms FROM runs WHERE submission_id = ? "
                "ORDER BY seed",
                (sid,),
            ).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["terms"] = json.loads(d["terms"]) if d["terms"] else {}
            out.append(d)
        return out

    def run(self, sid: int, seed: int, *, with_trajectory: bool = False) -> dict[str, Any] | None:
        cols = "id, seed, state, status, reason, total, terms, result, log, started, finished"
        if with_trajectory:
            cols += ", trajectory"
        with self._lock:
            row = self._db.execute(
                f"SELECT {cols} FROM runs WHERE submission_id = ? AND seed = ?",  # noqa: S608
                (sid, seed),
            ).fetchone()
        if row is None:
            return None
        d = dict(row)
        for key in ("terms", "result", "trajectory"):
            if key in d:
                d[key] = json.loads(d[key]) if d[key] else None
        return d

    def count_runs(self, state: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM runs WHERE state = ?", (state,)).fetchone()[0])

    def leaderboard(self, mission: str, scoring: str | None = None) -> list[dict[str, Any]]:
        """Scored submissions of a mission, best mean total first (ties: earlier submission),
        each labelled with its scoring rule. Totals of different rules are never ranked together:
        ranks count within a rule, the rule ``scoring`` (default: the mission's current rule)
        first, then any other rule the mission's submissions were scored under."""
        if scoring is None:
            from intball_compete.missions import MISSIONS  # noqa: PLC0415

            scoring = MISSIONS[mission].scoring if mission in MISSIONS else ""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, mean_total, seeds, created, scoring FROM submissions WHERE mission = ? "
                "AND state = 'scored' ORDER BY scoring != ?, scoring, mean_total DESC, id ASC",
                (mission, scoring),
            ).fetchall()
        out: list[dict[str, Any]] = []
        rank: dict[str, int] = {}
        for r in rows:
            rank[r["scoring"]] = rank.get(r["scoring"], 0) + 1
            out.append({"rank": rank[r["scoring"]], **dict(r)})
        return out
