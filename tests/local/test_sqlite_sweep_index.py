"""The SQLite job store's sweep index (issue 17, section 4): the sweeps' queries use the partial
index, not a table scan, and a database written before the `sweep` column gets it, filled from
each record, when a store opens it. The behaviour both stores share is tests/aws/test_sweep_index.py."""

from __future__ import annotations

import json
import sqlite3

from chalicelib.adapters.local.job_store import SqliteJobStore

OLD_SCHEMA = """
CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY,
    job_name TEXT UNIQUE NOT NULL,
    api TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX jobs_api ON jobs(api, created_at);
"""


def record(n: int, status: str, api: str = "v1.5", **extra) -> dict:
    return {
        "job_id": f"job-{n}",
        "job_name": f"aif-{n}",
        "api": api,
        "status": status,
        "created_at": f"2026-11-22 10:00:{n:02d}",
        **extra,
    }


def plan(path, sql: str, *args) -> str:
    with sqlite3.connect(path) as conn:
        return " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))


def test_the_sweep_query_uses_the_partial_index(tmp_path):
    SqliteJobStore(tmp_path / "jobs.sqlite3")
    used = plan(
        tmp_path / "jobs.sqlite3",
        "SELECT doc FROM jobs WHERE sweep = ? ORDER BY created_at, job_id",
        "active",
    )
    assert "jobs_sweep" in used and "SCAN jobs" not in used


def test_a_page_query_walks_the_api_index(tmp_path):
    SqliteJobStore(tmp_path / "jobs.sqlite3")
    used = plan(
        tmp_path / "jobs.sqlite3",
        "SELECT doc FROM jobs WHERE api = ? AND (created_at, job_id) < (?, ?)"
        " ORDER BY created_at DESC, job_id DESC LIMIT ?",
        "v1.5",
        "2026",
        "x",
        10,
    )
    assert "jobs_api_page" in used and "TEMP B-TREE" not in used


def test_a_database_from_before_the_index_is_indexed_when_opened(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    old = [
        record(1, "InProgress"),
        record(2, "Completed"),
        record(3, "Failed", "ai_factory"),  # ended, callback never enqueued
        record(4, "Completed", "ai_factory", callback_outbox={"state": "delivered", "attempts": 1}),
    ]
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
        conn.executemany(
            "INSERT INTO jobs VALUES (?,?,?,?,?,?)",
            [
                (r["job_id"], r["job_name"], r["api"], r["status"], r["created_at"], json.dumps(r))
                for r in old
            ],
        )
    store = SqliteJobStore(path)
    assert [j["job_id"] for j in store.list_active()] == ["job-1"]
    assert [j["job_id"] for j in store.list_due_callbacks(0.0)] == ["job-3"]
    assert store.get("job-4") == old[3]  # records are untouched
    SqliteJobStore(path)  # opening again finds the column and changes nothing
    with sqlite3.connect(path) as conn:
        lanes = dict(conn.execute("SELECT job_id, sweep FROM jobs").fetchall())
    assert lanes == {"job-1": "active", "job-2": None, "job-3": "callback", "job-4": None}
