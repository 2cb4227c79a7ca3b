"""Who a request is: its API key's tenant (`chalicelib.tenancy`), and the keys routes.

Locally the app checks `x-api-key` itself, as API Gateway would (403 `{"message":
"Forbidden"}`); on AWS API Gateway has checked it and hands the key's id in the request
context, which the tenant store maps to a tenant. Managing keys is for the stage's own key
(the default tenant) and admin keys.
"""

from __future__ import annotations

import hmac
from typing import Any

from chalicelib import tenancy
from chalicelib.errors import NotFound, Unavailable, ValidationError
from chalicelib.ports import Adapters
from chalicelib.tenancy import Quotas, Tenant
from contracts.v15_literals import parse_int_in

NAME_MAX = 64


def tenant_of(svc: Adapters, headers: dict[str, str] | None, context: dict[str, Any] | None) -> Tenant | None:
    """The request's tenant; None when its key is no tenant's (a 403)."""
    config = svc.settings
    if config.check_api_key:
        key = (headers or {}).get("x-api-key", "")
        if svc.tenants is not None:
            return svc.tenants.authenticate(key=key)
        # no tenant store composed: the stage's key alone, checked as before tenants
        matches = bool(key) and hmac.compare_digest(key.encode(), config.api_key.encode())
        return tenancy.DEFAULT_TENANT if matches else None
    key_id = ((context or {}).get("identity") or {}).get("apiKeyId")
    if not key_id or svc.tenants is None:  # not through API Gateway (a test client): the stage's key
        return tenancy.DEFAULT_TENANT
    return svc.tenants.authenticate(key_id=key_id)


def _store(svc: Adapters):
    if svc.tenants is None:
        raise Unavailable("This stage has no tenant store.")
    me = tenancy.current()
    if not (me.admin or me.system or me.id == tenancy.DEFAULT):
        raise NotFound("Not found: managing keys needs the stage's key or an admin key.")
    return svc.tenants


def _quotas(body: dict[str, Any], allowed: tuple[str, ...]) -> Quotas:
    raw = body.get("quotas") or {}
    if not isinstance(raw, dict):
        raise ValidationError("quotas", "must be an object")
    unknown = sorted(set(raw) - {"max_concurrent_jobs", "max_deployments", "instance_types"})
    if unknown:
        raise ValidationError("quotas", f"unknown quota {unknown[0]!r}")
    types = raw.get("instance_types") or []
    if not isinstance(types, list) or not all(isinstance(t, str) and t for t in types):
        raise ValidationError("quotas.instance_types", "must be a list of instance type names")
    outside = [t for t in types if allowed and t not in allowed]
    if outside:
        raise ValidationError(
            "quotas.instance_types", f"'{outside[0]}' is not an instance type this stage allows"
        )
    return Quotas(
        max_concurrent_jobs=None
        if raw.get("max_concurrent_jobs") is None
        else parse_int_in("quotas.max_concurrent_jobs", raw["max_concurrent_jobs"], 0, 10_000),
        max_deployments=None
        if raw.get("max_deployments") is None
        else parse_int_in("quotas.max_deployments", raw["max_deployments"], 0, 1_000),
        instance_types=tuple(types),
    )


def create_key(svc: Adapters, body: Any) -> dict[str, Any]:
    body = body if isinstance(body, dict) else {}
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("name", "required: a name for the tenant, e.g. the team's")
    name = name.strip()
    if len(name) > NAME_MAX or not all(c.isalnum() or c in "-_." for c in name):
        raise ValidationError("name", f"must be at most {NAME_MAX} letters, digits, '-', '_' or '.'")
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise ValidationError("admin", "must be true or false")
    store = _store(svc)
    tenant, key = store.create(name, admin, _quotas(body, svc.settings.allowed_instance_types))
    return {"status": "success", "tenant": tenant, "api_key": key}


def list_keys(svc: Adapters) -> dict[str, Any]:
    return {"status": "success", "tenants": _store(svc).list()}


def revoke_key(svc: Adapters, tenant_id: str) -> dict[str, Any]:
    revoked = _store(svc).revoke(tenant_id)
    if revoked is None:
        raise NotFound(f"Tenant {tenant_id} not found.")
    return {"status": "success", "tenant": revoked}
