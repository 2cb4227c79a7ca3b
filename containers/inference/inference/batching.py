"""Dynamic batching: requests that arrive together share one forward pass.

Request threads decode and prepare their image, `submit` it, and block on a future; one
worker thread takes the first waiting item, then keeps collecting until the batch holds
`max_batch_size` items or `max_wait_ms` has passed since that first item, and runs the
batch function once. With `max_wait_ms=0` nothing waits, yet requests that queued up while
the previous batch ran still go together (the device is never idle for batching's sake).

The worker records the size of every batch it ran (`stats()`), which the server exposes
at `GET /stats` and the tests assert on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future

log = logging.getLogger(__name__)

_STOP = object()


class DynamicBatcher:
    def __init__(self, run_batch: Callable[[list], list], max_batch_size: int = 8, max_wait_ms: float = 2.0):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.run_batch = run_batch
        self.max_batch_size = int(max_batch_size)
        self.max_wait = float(max_wait_ms) / 1000.0
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._sizes: Counter = Counter()
        self._thread = threading.Thread(target=self._loop, name="dynamic-batcher", daemon=True)
        self._thread.start()

    def submit(self, item) -> Future:
        future: Future = Future()
        self._queue.put((item, future))
        return future

    def __call__(self, item):
        """Submits `item` and waits for its result (re-raising the batch's exception)."""
        return self.submit(item).result()

    def stats(self) -> dict:
        with self._lock:
            sizes = dict(sorted(self._sizes.items()))
        return {
            "batches": sum(sizes.values()),
            "requests": sum(size * count for size, count in sizes.items()),
            "batch_sizes": {str(size): count for size, count in sizes.items()},
            "max_batch_size": self.max_batch_size,
            "max_wait_ms": self.max_wait * 1000.0,
        }

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _collect(self, first) -> list:
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)
                break
            batch.append(item)
        return batch

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = self._collect(first)
            futures = [f for _, f in batch if f.set_running_or_notify_cancel()]
            items = [item for item, f in batch if f in futures]
            if not items:
                continue
            with self._lock:
                self._sizes[len(items)] += 1
            try:
                results = self.run_batch(items)
                if len(results) != len(items):
                    raise RuntimeError(
                        f"batch function returned {len(results)} results for {len(items)} items"
                    )
            except BaseException as exc:
                log.exception("batch of %d failed", len(items))
                for future in futures:
                    future.set_exception(exc)
                continue
            for future, result in zip(futures, results, strict=True):
                future.set_result(result)
