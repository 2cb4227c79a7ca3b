"""Where the local stage may read images that a caller names by path (infer, infer_multiple).

A path in a request is read by the API process and, for `infer` with `returns_images`, sent
back: without a bound it reads any file the process can (`/etc/shadow`, `/proc/self/environ`,
an image anywhere on the disk). With no `AIFACTORY_DATA_ROOTS` the safe default is the data
directories that training jobs were created with (the data users infer on) and one uploads
folder, `<home>/uploads`, for images of their own. Setting `AIFACTORY_DATA_ROOTS` replaces
the default (widening or narrowing it); on AWS stages it is the list of S3 prefixes.

The data directories are remembered in `<home>/data_dirs` when a job is created, so a read
checks a short list instead of every job ever run.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from chalicelib.settings import Settings

UPLOADS = "uploads"
_REGISTRY = "data_dirs"

log = logging.getLogger("aifactory.data_roots")


def uploads_dir(config: Settings) -> Path:
    return config.home / UPLOADS


def _registry(config: Settings) -> Path:
    return config.home / _REGISTRY


def remembered(config: Settings) -> list[str]:
    try:
        return [line for line in _registry(config).read_text().splitlines() if line]
    except FileNotFoundError:
        return []


def remember(config: Settings, data_dir: str) -> None:
    """Adds a job's (resolved, local) data directory to the default image roots. Best effort:
    a job is never refused for it, and a directory not remembered only narrows the roots."""
    if data_dir.startswith("s3://") or not config.is_local:
        return
    path = _registry(config)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # two creates at once append once each
            handle.seek(0)
            if data_dir not in handle.read().splitlines():
                handle.write(data_dir + "\n")
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as exc:
        log.warning("data directory %s not remembered as an image root: %s", data_dir, exc)


def for_images(config: Settings) -> tuple[str, ...]:
    """The roots an image path given to infer may be under."""
    if config.data_roots or not config.is_local:
        return config.data_roots
    return (str(uploads_dir(config)), *remembered(config))
