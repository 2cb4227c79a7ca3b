"""A checkpoint's per-class metrics a page at a time, so the checkpoint route's answer stays
under Lambda's 6 MB whatever the class count (issue 17 §1).

`metrics.specific` holds one list per score aligned with `categories`, index 0 the mean over
classes. The route carries every class while the metrics fit in PAGE_BYTES of JSON: the
spec's body, unchanged. Measured (bench/bench_answer_sizes.py): 5,000 classes with 26-character
names are 0.23 MB of metrics and a 0.45 MB answer with the metric plot, so about 60,000 such
classes fit in one answer. A checkpoint with more carries the mean and the classes from
`class_offset` (0 first) while they fit, and says where it stopped:
`"classes": {"total", "offset", "count", "next_offset"}` (`next_offset` null on the last page);
`GET .../checkpoints/epoch/<N>?class_offset=<next_offset>` gets the next page. Asking with
`class_offset` pages any checkpoint.

The confusion matrix itself (C x C, `plot_data.json`) is in no answer: its plot is a JPEG of
bounded size (the plot tool's figure stops growing at 24 inches), whatever C.
"""

from __future__ import annotations

import json
from typing import Any

from contracts.v15_literals import parse_int_in

PAGE_BYTES = 3_000_000  # metrics JSON per answer; with the metric plot (< 0.5 MB) well under 6 MB
FIELD = "class_offset"


def _size(value: Any) -> int:
    return len(json.dumps(value).encode())


def page(metrics: dict[str, Any], query: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict | None]:
    """(the metrics to answer, the `classes` paging record, or None when every class is carried)."""
    query = query if isinstance(query, dict) else {}
    asked = query.get(FIELD) not in (None, "")
    specific = metrics.get("specific") if isinstance(metrics, dict) else None
    categories = specific.get("categories") if isinstance(specific, dict) else None
    if not isinstance(categories, list) or len(categories) < 2:  # no class beside the mean
        if asked:
            parse_int_in(FIELD, query[FIELD], 0, 0)
        return metrics, None
    if not asked and _size(metrics) <= PAGE_BYTES:
        return metrics, None
    total = len(categories) - 1
    offset = parse_int_in(FIELD, query.get(FIELD, 0), 0, total - 1)
    aligned = [k for k, v in specific.items() if isinstance(v, list) and len(v) == len(categories)]
    used = _size({**metrics, "specific": {**specific, **{k: specific[k][:1] for k in aligned}}})
    start = end = offset + 1  # categories' index of the first class carried, and past the last
    while end < len(categories):
        cost = sum(_size(specific[k][end]) + 2 for k in aligned)  # the value and its ", "
        if end > start and used + cost > PAGE_BYTES:
            break
        used += cost
        end += 1
    shown = {k: specific[k][:1] + specific[k][start:end] for k in aligned}
    count = end - start
    return (
        {**metrics, "specific": {**specific, **shown}},
        {
            "total": total,
            "offset": offset,
            "count": count,
            "next_offset": offset + count if end < len(categories) else None,
        },
    )
