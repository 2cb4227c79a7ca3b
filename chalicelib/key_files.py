"""Keys the local stage generates once and keeps in its home (`api_key`, `model_link_key`).

A key file is written whole under a temporary name (mkstemp: 0600) and linked into place, so
a full disk or a crash never leaves an empty or half-written key: an empty API key would
match a request that sends none, an empty link key would sign every link with nothing. A key
another process made first wins; an empty file left by older code is replaced.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile


def stored(path: str) -> str | None:
    """The key in `path`, or None when there is none (no file, or an empty one)."""
    try:
        with open(path) as handle:
            return handle.read().strip() or None
    except FileNotFoundError:
        return None


def read_or_create(path: str, nbytes: int = 32) -> str:
    """The key in `path`, generated on first use. OSError (ENOSPC included) when it cannot be written."""
    key = stored(path)
    if key:
        return key
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    key = secrets.token_urlsafe(nbytes)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)  # never replaces
    except FileExistsError:
        if stored(path) is None:  # an empty file from before keys were written whole
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return read_or_create(path, nbytes)
    finally:
        os.unlink(tmp)
    return key
