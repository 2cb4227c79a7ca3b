"""A full disk, as the local adapters see it, becomes one domain error: `StorageFull` (507).

The local stage keeps all its state under `AIFACTORY_HOME`; when that disk (or the quota)
is full, writes fail with ENOSPC/EDQUOT from the OS and with SQLite's "database or disk is
full" (SQLITE_FULL). SQLite also answers "disk I/O error" (SQLITE_IOERR_SHMSIZE) when it
cannot allocate its WAL index: that is a full disk only when the disk really is (almost)
full, which `is_disk_full` checks, so a genuine I/O error still surfaces as a 500.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chalicelib.errors import DISK_FULL_ERRNOS, StorageFull

SQLITE_IOERR = 10
SQLITE_FULL = 13
NEARLY_FULL_BYTES = 1 << 20
"""Below this much free space an SQLite I/O error is taken for a full disk: SQLite needs 32 KiB
for its WAL index and a page and a half per frame, so less than a MiB left is a disk that
cannot hold the next few transactions."""


def free_bytes(directory: Path) -> int | None:
    try:
        stat = os.statvfs(directory)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def is_disk_full(exc: BaseException, directory: Path) -> bool:
    """Whether `exc`, raised while writing under `directory`, says that the disk is full."""
    if isinstance(exc, StorageFull):
        return True
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL_ERRNOS
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        text = str(exc)
        if primary == SQLITE_FULL or "database or disk is full" in text:
            return True
        if primary == SQLITE_IOERR or "disk I/O error" in text:
            free = free_bytes(directory)
            return free is not None and free < NEARLY_FULL_BYTES
    return False


@contextmanager
def storage_full_as_domain_error(directory: Path) -> Iterator[None]:
    """Re-raises a full-disk error from the block as `StorageFull(directory)`; other errors pass."""
    try:
        yield
    except StorageFull:
        raise
    except (OSError, sqlite3.Error) as exc:
        if is_disk_full(exc, directory):
            raise StorageFull(directory) from exc
        raise
