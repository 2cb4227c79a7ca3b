"""Tenants: each API key is one, and a key sees only its own work (DESIGN.md, "Security rules").

The app's middleware resolves the request's key to a `Tenant` (a keys file locally, an API
Gateway key on AWS: `chalicelib.ports.TenantStore`) and runs the route with it as the current
tenant. Services never take the tenant as an argument: every job lookup goes through
`services.jobs.get`/`get_by_name`, which ask `current().can_see(record)`, so a route cannot
forget the check. Another tenant's job is the same 404 as a job that does not exist (no
existence oracle).

Work the service does on its own behalf (the sweep, the job runner, the state-change
handler, a signed model link once its signature holds) runs as `SYSTEM`, which sees all.
A route without a key (the dashboard's files) runs as `ANONYMOUS`, which sees nothing.

Records written before tenants existed have no `tenant` field: they belong to the default
tenant, the stage's single key, so the single-key setup keeps working unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DEFAULT = "default"
TENANT_KEY = "tenant"  # the field of a job record (and a deployment) naming its tenant


@dataclass(frozen=True)
class Quotas:
    """Per-tenant limits; None is the stage's own limit (its settings)."""

    max_concurrent_jobs: int | None = None
    max_deployments: int | None = None
    instance_types: tuple[str, ...] = ()  # empty: any type the stage allows

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_concurrent_jobs": self.max_concurrent_jobs,
            "max_deployments": self.max_deployments,
            "instance_types": list(self.instance_types),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Quotas:
        raw = raw or {}
        return cls(
            max_concurrent_jobs=raw.get("max_concurrent_jobs"),
            max_deployments=raw.get("max_deployments"),
            instance_types=tuple(raw.get("instance_types") or ()),
        )


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str = ""
    admin: bool = False  # an admin key sees every tenant's work
    quotas: Quotas = field(default_factory=Quotas)
    system: bool = False  # the service itself: sweeps, runners, signed links

    def can_see(self, record: dict[str, Any] | None) -> bool:
        if record is None:
            return False
        return self.system or self.admin or owner(record) == self.id

    @property
    def sees_all(self) -> bool:
        return self.system or self.admin

    def limit(self, quota: str, stage_limit: int) -> int:
        """The tenant's quota where it has one (never above the stage's own limit)."""
        own = getattr(self.quotas, quota)
        return stage_limit if own is None else min(own, stage_limit)


SYSTEM = Tenant("system", "the service itself", system=True)
ANONYMOUS = Tenant("anonymous", "no key")
DEFAULT_TENANT = Tenant(DEFAULT, "the stage's key")


def owner(record: dict[str, Any]) -> str:
    return record.get(TENANT_KEY) or DEFAULT


_current: contextvars.ContextVar[Tenant] = contextvars.ContextVar("tenant", default=SYSTEM)


def current() -> Tenant:
    return _current.get()


def owner_of_new_work() -> str:
    """Whose a job or deployment made now is: the request's tenant (the service's own work,
    with no request, is the default tenant's)."""
    tenant = current()
    return DEFAULT if tenant.system else tenant.id


@contextlib.contextmanager
def acting_as(tenant: Tenant) -> Iterator[Tenant]:
    token = _current.set(tenant)
    try:
        yield tenant
    finally:
        _current.reset(token)
