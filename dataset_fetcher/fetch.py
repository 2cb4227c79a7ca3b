"""Pages through a dataset endpoint, fetching ahead while the consumer works.

A bounded number of pages (`concurrency`) is in flight or waiting to be consumed at any
time; pages are yielded in offset order. With `max_pages=0` the end is only known when a
short or empty page arrives, so pages requested past it are speculative: they are
cancelled and their results (or failures) discarded.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

import outbound
from dataset_fetcher.errors import DatasetError
from dataset_fetcher.page_client import PageClient
from dataset_fetcher.records import validate_record


def _check_args(
    url: str, headers: Any, begin_offset: int, page_size: int, max_pages: int, concurrency: int, retries: int
) -> None:
    scheme = urlparse(url).scheme if isinstance(url, str) else ""
    if scheme not in ("http", "https"):
        raise ValueError(f"Invalid dataset url: only http and https are supported (got scheme '{scheme}')")
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ValueError("Invalid dataset headers: expected an object of string names to string values")
    checks = {
        "begin_offset": (begin_offset, 0),
        "page_size": (page_size, 1),
        "max_pages": (max_pages, 0),
        "concurrency": (concurrency, 1),
        "retries": (retries, 0),
    }
    for name, (value, minimum) in checks.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"Invalid {name} {value!r}: expected an integer >= {minimum}")


def iter_pages(
    url: str,
    headers: dict[str, str],
    begin_offset: int = 0,
    page_size: int = 100,
    max_pages: int = 0,
    *,
    concurrency: int = 4,
    retries: int = 5,
    backoff: float = 0.5,
    timeout: float = 30,
    sleep: Callable[[float], Any] | None = None,
    allow_private: bool | None = None,
) -> Iterator[tuple[int, list]]:
    """Yields `(offset, records)` per page, in order, until a short/empty page or `max_pages`.

    The URL and headers are checked by the outbound policy first (`allow_private` None:
    the stage's choice from the environment); a refusal is a DatasetError naming why.
    """
    _check_args(url, headers, begin_offset, page_size, max_pages, concurrency, retries)
    try:
        client = PageClient(
            url,
            headers,
            page_size,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            sleep=sleep,
            allow_private=allow_private,
            connections=concurrency,
        )
    except outbound.UrlRefused as exc:
        raise DatasetError(f"Invalid dataset url: it {exc.problem}") from None
    except outbound.HeadersRefused as exc:
        raise DatasetError(f"Invalid dataset headers: {exc.problem}") from None
    cancelled = threading.Event()
    executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="dataset-page")
    pending: deque[tuple[int, Future]] = deque()
    submitted = 0

    def fill() -> None:
        nonlocal submitted
        while len(pending) < concurrency and (max_pages == 0 or submitted < max_pages):
            offset = begin_offset + submitted * page_size
            pending.append((offset, executor.submit(client.fetch, offset, cancelled)))
            submitted += 1

    try:
        fill()
        while pending:
            offset, future = pending.popleft()
            records = future.result()
            last = len(records) < page_size
            if not last:
                fill()
            yield offset, records
            if last:
                return
    finally:
        cancelled.set()
        executor.shutdown(wait=False, cancel_futures=True)
        client.close()


def iter_records(
    url: str,
    headers: dict[str, str],
    begin_offset: int = 0,
    page_size: int = 100,
    max_pages: int = 0,
    task: str | None = None,
    **options: Any,
) -> Iterator[dict]:
    """Yields validated, normalised records (see `records.validate_record`) in offset order.

    `options`: concurrency=4, retries=5, backoff=0.5 (seconds, doubled per retry),
    timeout=30, sleep=None (an interruptible wait; tests pass a recorder), allow_private=None.
    """
    for offset, records in iter_pages(url, headers, begin_offset, page_size, max_pages, **options):
        for index, record in enumerate(records):
            yield validate_record(task, record, offset + index)


def fetch_all(
    url: str,
    headers: dict[str, str],
    begin_offset: int = 0,
    page_size: int = 100,
    max_pages: int = 0,
    task: str | None = None,
    **options: Any,
) -> list[dict]:
    return list(iter_records(url, headers, begin_offset, page_size, max_pages, task, **options))
