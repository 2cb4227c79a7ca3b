"""JobStore on a SQLite file: the local stage's DynamoDB.

Each call opens its own connection (the API serves requests on threads, and the runner
processes write too); `BEGIN IMMEDIATE` makes read-check-write updates atomic across
processes, which is what DynamoDB's conditional writes give the aws stage.

A full disk (issue 16): every write raises `StorageFull` (507), and reads keep working. In
WAL mode even a read needs the `-shm` index file allocated, which fails on a full disk, so
the store keeps one idle connection open for its lifetime (the `-wal` and `-shm` files stay
allocated instead of being deleted and re-created by each request), and a read that still
meets a full disk (a process started after the disk filled) reads the database file as
immutable when no WAL content is pending.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chalicelib.adapters.local.disk_full import is_disk_full, storage_full_as_domain_error
from chalicelib.errors import StorageFull
from chalicelib.ports import ConflictError

log = logging.getLogger("aifactory.jobstore")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    job_name TEXT UNIQUE NOT NULL,
    api TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_api ON jobs(api, created_at);
"""


class SqliteJobStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._anchor: sqlite3.Connection | None = None
        try:
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
            self._anchor = self._open_anchor()
        except StorageFull:
            if not (self.path.is_file() and self.path.stat().st_size):
                raise  # no database to read either: nothing can work until space is freed
            log.warning("%s: the disk is full; reads go on, writes answer 507", self.path)

    def _open_anchor(self) -> sqlite3.Connection:
        """An idle connection held for the store's lifetime: while one is open SQLite keeps
        the `-wal` and `-shm` files (a read on a full disk cannot allocate them anew)."""
        anchor = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            with storage_full_as_domain_error(self.path.parent):
                anchor.execute("SELECT 1 FROM jobs LIMIT 1").fetchall()  # maps the WAL index
        except BaseException:
            anchor.close()
            raise
        return anchor

    def close(self) -> None:
        if self._anchor is not None:
            self._anchor.close()
            self._anchor = None

    @contextmanager
    def _connect(self):
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            with storage_full_as_domain_error(self.path.parent):
                yield conn
        finally:
            conn.close()

    def _read(self, query):
        """Runs `query(conn)`; on a full disk, once more on the database file read as immutable
        (no WAL index needed) when no WAL content is pending, so the read still sees every
        committed job."""
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                return query(conn)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            if not is_disk_full(exc, self.path.parent):
                raise
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists() and wal.stat().st_size:
                raise StorageFull(self.path.parent) from exc  # pending WAL frames: a stale read otherwise
            log.warning("%s: the disk is full; read as immutable", self.path)
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?immutable=1", uri=True)
            try:
                return query(conn)
            finally:
                conn.close()

    def create(self, job: dict[str, Any]) -> None:
        with self._connect() as conn:
            try:
                conn.execute(
                    "INSERT INTO jobs (job_id, job_name, api, status, created_at, doc) VALUES (?,?,?,?,?,?)",
                    (
                        job["job_id"],
                        job["job_name"],
                        job["api"],
                        job["status"],
                        job["created_at"],
                        json.dumps(job),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"Job {job['job_id']} already exists") from exc

    def _get(self, conn, column: str, value: str) -> dict[str, Any] | None:
        row = conn.execute(f"SELECT doc FROM jobs WHERE {column} = ?", (value,)).fetchone()
        return json.loads(row[0]) if row else None

    def get(self, job_id: str) -> dict[str, Any] | None:
        return self._read(lambda conn: self._get(conn, "job_id", job_id))

    def get_by_name(self, job_name: str) -> dict[str, Any] | None:
        return self._read(lambda conn: self._get(conn, "job_name", job_name))

    def update(
        self, job_id: str, changes: dict[str, Any], expect: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                job = self._get(conn, "job_id", job_id)
                if job is None:
                    raise ConflictError(f"Job {job_id} does not exist")
                for key, value in (expect or {}).items():
                    allowed = value if isinstance(value, (list, tuple, set)) else (value,)
                    if job.get(key) not in allowed:
                        raise ConflictError(f"Job {job_id} has {key}={job.get(key)!r}")
                job.update(changes)
                conn.execute(
                    "UPDATE jobs SET status = ?, doc = ? WHERE job_id = ?",
                    (job["status"], json.dumps(job), job_id),
                )
                conn.execute("COMMIT")
                return job
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (a full disk does)
                    conn.execute("ROLLBACK")
                raise

    def list(self, api: str | None = None) -> list[dict[str, Any]]:
        def query(conn):
            if api is None:
                return conn.execute("SELECT doc FROM jobs ORDER BY created_at, job_id").fetchall()
            return conn.execute(
                "SELECT doc FROM jobs WHERE api = ? ORDER BY created_at, job_id", (api,)
            ).fetchall()

        return [json.loads(row[0]) for row in self._read(query)]

    def delete(self, job_id: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
