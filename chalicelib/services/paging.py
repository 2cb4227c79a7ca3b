"""Paging through an API's jobs, newest first: the routes' opaque `next_token`.

A token names the last job of a page by (created_at, job_id); the next page is the jobs
strictly before it (`JobStore.page`), so a job created while a client pages never shifts
the pages. Each page is one bounded read of the store, never a read per job, and holds only
the jobs of the tenants the current key may see (`chalicelib.tenancy`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from chalicelib import tenancy
from chalicelib.errors import ValidationError
from chalicelib.job_index import newest_first_key
from chalicelib.ports import Adapters


def visible_tenants(svc: Adapters) -> tuple[str, ...]:
    """Whose jobs the current tenant's lists hold: its own, or for an admin key (and the
    service itself) every tenant the tenant store knows, revoked ones included."""
    me = tenancy.current()
    if not me.sees_all:
        return (me.id,)
    known = [t["tenant_id"] for t in svc.tenants.list()] if svc.tenants is not None else []
    return tuple(dict.fromkeys([tenancy.DEFAULT, *known]))


def token(job: dict[str, Any]) -> str:
    raw = json.dumps(list(newest_first_key(job))).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def after(value: Any) -> tuple[str, str]:
    """The (created_at, job_id) a `next_token` names; a 400 naming `next_token` otherwise."""
    text = str(value)
    try:
        created_at, job_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return str(created_at), str(job_id)
    except (ValueError, TypeError):
        raise ValidationError(
            "next_token", "is not a token this API gave; send the last page's next_token"
        ) from None


def page(
    svc: Adapters, api: str, limit: int, next_token: Any = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `api`'s jobs after `next_token` (if any) and the token of the next one."""
    cursor = after(next_token) if next_token else None
    records, more = svc.jobs.page(api, limit, cursor, tenants=visible_tenants(svc))
    return records, token(records[-1]) if more and records else None


def newest_first(svc: Adapters, api: str, page_size: int) -> Iterator[dict[str, Any]]:
    """Every job of `api`, newest first, read `page_size` at a time (bounded memory per page)."""
    cursor, tenants = None, visible_tenants(svc)
    while True:
        records, more = svc.jobs.page(api, page_size, cursor, tenants=tenants)
        yield from records
        if not more or not records:
            return
        cursor = newest_first_key(records[-1])
