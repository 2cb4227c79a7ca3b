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

Sweeps and list pages (DESIGN.md, "Stores at scale"): the `sweep` column holds the record's
sweep lane (`chalicelib.job_index`: active, callback, or NULL once settled), written with the
record by every create and update, under a partial index over the rows that have one, so
`list_active` and `list_due_callbacks` read only those rows; `page` walks `(api, created_at,
job_id)` newest first with LIMIT. A database from before the column gets it, filled from each
record, the first time a store opens it (`_migrate`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chalicelib import job_index, tenancy
from chalicelib.adapters.local.disk_full import is_disk_full, storage_full_as_domain_error
from chalicelib.errors import StorageFull
from chalicelib.job_record import Job
from chalicelib.ports import ConflictError
from chalicelib.tenancy import DEFAULT

log = logging.getLogger("aifactory.jobstore")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    job_name TEXT UNIQUE NOT NULL,
    api TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL,
    sweep TEXT,
    tenant TEXT
);
CREATE INDEX IF NOT EXISTS jobs_api ON jobs(api, created_at);
"""
# After `_migrate`: a database from before the sweep column has it only then.
INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_sweep ON jobs(sweep) WHERE sweep IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_api_page ON jobs(api, created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_tenant_page ON jobs(api, tenant, created_at, job_id);
"""
# Columns added after the first schema, each filled from the record when a store first opens
# a database from before it.
DERIVED_COLUMNS = {"sweep": job_index.sweep_lane, "tenant": tenancy.owner}


class SqliteJobStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._anchor: sqlite3.Connection | None = None
        try:
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
                self._migrate(conn)
                conn.executescript(INDEXES)
            self._anchor = self._open_anchor()
        except StorageFull:
            if not (self.path.is_file() and self.path.stat().st_size):
                raise  # no database to read either: nothing can work until space is freed
            log.warning("%s: the disk is full; reads go on, writes answer 507", self.path)

    @staticmethod
    def _migrate(conn) -> None:
        """Adds the derived columns a database from before them lacks and fills them from each
        record (once: the check and the fill share one write transaction across processes)."""
        if set(DERIVED_COLUMNS) <= _columns(conn):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for column, derive in DERIVED_COLUMNS.items():
                if column in _columns(conn):
                    continue
                conn.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")
                rows = conn.execute("SELECT job_id, doc FROM jobs").fetchall()
                conn.executemany(
                    f"UPDATE jobs SET {column} = ? WHERE job_id = ?",
                    [(derive(json.loads(doc)), job_id) for job_id, doc in rows],
                )
                log.info("%d jobs given their %s", len(rows), column)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

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

    def create(self, job: Mapping[str, Any]) -> None:
        job = Job.from_item(job)
        with self._connect() as conn:
            try:
                conn.execute(
                    "INSERT INTO jobs (job_id, job_name, api, status, created_at, doc, sweep, tenant)"
                    " VALUES (?,?,?,?,?,?,?,?)",
                    (
                        job.job_id,
                        job.job_name,
                        job.api,
                        job.status,
                        job.created_at,
                        json.dumps(job.to_item()),
                        job_index.sweep_lane(job),
                        tenancy.owner(job),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"Job {job.job_id} already exists") from exc

    def _get(self, conn, column: str, value: str) -> Job | None:
        row = conn.execute(f"SELECT doc FROM jobs WHERE {column} = ?", (value,)).fetchone()
        return _job(row[0]) if row else None

    def get(self, job_id: str) -> Job | None:
        return self._read(lambda conn: self._get(conn, "job_id", job_id))

    def get_by_name(self, job_name: str) -> Job | None:
        return self._read(lambda conn: self._get(conn, "job_name", job_name))

    def update(self, job_id: str, changes: dict[str, Any], expect: dict[str, Any] | None = None) -> Job:
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
                job = job.with_changes(changes)
                conn.execute(
                    "UPDATE jobs SET status = ?, doc = ?, sweep = ? WHERE job_id = ?",
                    (job.status, json.dumps(job.to_item()), job_index.sweep_lane(job), job_id),
                )
                conn.execute("COMMIT")
                return job
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (a full disk does)
                    conn.execute("ROLLBACK")
                raise

    def list(self, api: str | None = None) -> list[Job]:
        def query(conn):
            if api is None:
                return conn.execute("SELECT doc FROM jobs ORDER BY created_at, job_id").fetchall()
            return conn.execute(
                "SELECT doc FROM jobs WHERE api = ? ORDER BY created_at, job_id", (api,)
            ).fetchall()

        return [_job(row[0]) for row in self._read(query)]

    def _lane(self, lane: str) -> list[Job]:
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT doc FROM jobs WHERE sweep = ? ORDER BY created_at, job_id", (lane,)
            ).fetchall()
        )
        return [_job(row[0]) for row in rows]

    def list_active(self) -> list[Job]:
        return self._lane(job_index.ACTIVE)

    def list_due_callbacks(self, now: float) -> list[Job]:
        return [job for job in self._lane(job_index.CALLBACK) if job_index.callback_is_due(job, now)]

    def page(
        self, api: str, limit: int, after: tuple[str, str] | None = None, tenants: Sequence[str] = (DEFAULT,)
    ) -> tuple[list[Job], bool]:
        marks = ",".join("?" * len(tenants))

        def query(conn):
            if after is None:
                return conn.execute(
                    f"SELECT doc FROM jobs WHERE api = ? AND tenant IN ({marks})"
                    " ORDER BY created_at DESC, job_id DESC LIMIT ?",
                    (api, *tenants, limit + 1),
                ).fetchall()
            return conn.execute(
                f"SELECT doc FROM jobs WHERE api = ? AND tenant IN ({marks}) AND (created_at, job_id) < (?, ?)"
                " ORDER BY created_at DESC, job_id DESC LIMIT ?",
                (api, *tenants, after[0], after[1], limit + 1),
            ).fetchall()

        rows = self._read(query)
        return [_job(row[0]) for row in rows[:limit]], len(rows) > limit

    def delete(self, job_id: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))


def _job(doc: str) -> Job:
    """A stored row's record (`Job.from_item` migrates rows of older versions)."""
    return Job.from_item(json.loads(doc))


def _columns(conn) -> set[str]:
    return {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
