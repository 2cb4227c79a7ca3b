"""One time format for every API surface: "YYYY-mm-dd HH:MM:SS" in UTC."""

from __future__ import annotations

import datetime as dt

FORMAT = "%Y-%m-%d %H:%M:%S"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def now_str() -> str:
    return now().strftime(FORMAT)


def fmt(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime(FORMAT)
