"""DataStore on the local file system: images to infer and the globs of infer_multiple.

Both run on a request thread of the API, so both are bounded. A pattern such as
`/*/*/*/*/*/*/*/*/nomatch.jpg` made `glob.iglob` walk the whole disk (following symlinks)
for over a minute, and eight of them starved every other request: the walk here counts the
levels of a pattern, the directories and entries it visits and its time, and refuses past
any of them with the limit's name. It never descends into a symlinked directory (a link
could lead out of the allowed roots; a matched file is resolved and checked by the caller).

A read opens the path once, refuses anything but a regular file (a FIFO would block, a
device or `/proc/self/mem` fails with EIO) and reads at most limit + 1 bytes: procfs says
size 0 for files such as `/proc/kallsyms`, so the size check cannot trust `stat`.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
import time
from pathlib import Path

from chalicelib.errors import NotFound, ValidationError

PATTERNS = "path_to_image_pattern_list"
WILDCARDS = "*?["


class LocalDataStore:
    def __init__(
        self,
        *,
        max_levels: int = 6,
        max_dirs: int = 2000,
        max_entries: int = 200_000,
        max_seconds: float = 2.0,
    ):
        self.max_levels = max_levels
        self.max_dirs = max_dirs
        self.max_entries = max_entries
        self.max_seconds = max_seconds

    # --- read -----------------------------------------------------------------------------
    def read(self, location: str, max_bytes: int) -> bytes:
        field = "path_to_image"
        try:
            fd = os.open(location, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except PermissionError:
            raise ValidationError(field, f"'{location}' is not readable by the service") from None
        except (OSError, ValueError):  # absent, a name too long, a NUL
            raise NotFound(f"Image '{location}' not found.") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ValidationError(field, f"'{location}' is not a regular file")
            if info.st_size > max_bytes:
                raise ValidationError(
                    field, f"'{location}' is {info.st_size} bytes; at most {max_bytes} are allowed"
                )
            chunks, size = [], 0
            while size <= max_bytes:
                chunk = os.read(fd, max_bytes + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            why = errno.errorcode.get(exc.errno or 0, "I/O error")
            raise ValidationError(field, f"'{location}' cannot be read ({why})") from None
        finally:
            os.close(fd)
        if size > max_bytes:
            raise ValidationError(field, f"'{location}' is larger than {max_bytes} bytes, the most allowed")
        return b"".join(chunks)

    # --- glob -----------------------------------------------------------------------------
    def glob(self, pattern: str, limit: int) -> list[str]:
        parts = Path(pattern).parts
        first = next((i for i, part in enumerate(parts) if any(c in part for c in WILDCARDS)), None)
        if first is None:
            return [str(Path(pattern).resolve())] if Path(pattern).is_file() else []
        levels = parts[first:]
        if len(levels) > self.max_levels:
            raise ValidationError(
                PATTERNS,
                f"'{pattern}' has {len(levels)} levels after its fixed directory; at most "
                f"{self.max_levels} are walked: start the pattern at a deeper directory",
            )
        try:
            base = Path(*parts[:first]).resolve() if first else Path.cwd()
        except (OSError, RuntimeError, ValueError):
            return []
        walk = _Walk(self, pattern)
        current = [base]
        for depth, part in enumerate(levels):
            last = depth == len(levels) - 1
            following: list[Path] = []
            for directory in current:
                for entry in walk.entries(directory, part):
                    if last:
                        if entry.is_file():
                            following.append(Path(entry.path))
                            if len(following) > limit:
                                break
                    elif entry.is_dir(follow_symlinks=False):
                        following.append(Path(entry.path))
                if last and len(following) > limit:
                    break
            current = following
        return sorted(str(path.resolve()) for path in current)


class _Walk:
    """One glob's budget of directories, entries and time."""

    def __init__(self, store: LocalDataStore, pattern: str):
        self.store = store
        self.pattern = pattern
        self.dirs = 0
        self.seen = 0
        self.deadline = time.monotonic() + store.max_seconds

    def _refuse(self, what: str) -> ValidationError:
        return ValidationError(
            PATTERNS,
            f"'{self.pattern}' {what}; narrow the pattern (fewer wildcards, a deeper fixed directory)",
        )

    def entries(self, directory: Path, part: str):
        self.dirs += 1
        if self.dirs > self.store.max_dirs:
            raise self._refuse(
                f"visits more than {self.store.max_dirs} directories, the most one request may walk"
            )
        hidden = part.startswith(".")  # as glob: `*` does not match dot files
        try:
            with os.scandir(directory) as listing:
                for entry in listing:
                    self.seen += 1
                    if self.seen > self.store.max_entries:
                        raise self._refuse(f"lists more than {self.store.max_entries} directory entries")
                    if self.seen % 256 == 0 and time.monotonic() > self.deadline:
                        raise self._refuse(f"takes longer than {self.store.max_seconds:g} s to walk")
                    if (hidden or not entry.name.startswith(".")) and fnmatch.fnmatchcase(entry.name, part):
                        yield entry
        except OSError:  # unreadable or vanished: nothing matches there, as glob has it
            return
        if time.monotonic() > self.deadline:
            raise self._refuse(f"takes longer than {self.store.max_seconds:g} s to walk")
