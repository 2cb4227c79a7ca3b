"""TenantStore as a keys file (`<home>/tenants.json`, 0600): the local stage's API keys.

A key is kept only as its SHA-256 (a leaked file names no key) and shown once, when it is
made. The stage's own key (`AIFACTORY_API_KEY`, or the one generated into `<home>/api_key`)
is the default tenant, so the single-key setup works as it always did. The file is replaced
whole under a lock (create and revoke from two processes never lose one another's write),
and read again only when it changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chalicelib.adapters.local.disk_full import storage_full_as_domain_error
from chalicelib.tenancy import DEFAULT_TENANT, Quotas, Tenant

FORMAT = 1


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _tenant(entry: dict[str, Any]) -> Tenant:
    return Tenant(
        entry["id"], entry.get("name", ""), bool(entry.get("admin")), Quotas.from_dict(entry.get("quotas"))
    )


def describe(entry: dict[str, Any]) -> dict[str, Any]:
    """What `GET /tenants` shows of a tenant: never its key, only the key's first characters."""
    return {
        "tenant_id": entry["id"],
        "name": entry.get("name", ""),
        "admin": bool(entry.get("admin")),
        "quotas": Quotas.from_dict(entry.get("quotas")).to_dict(),
        "key_prefix": entry.get("key_prefix"),
        "created_at": entry.get("created_at"),
        "revoked_at": entry.get("revoked_at"),
    }


class KeysFileTenantStore:
    def __init__(self, path: Path, default_key: Callable[[], str]):
        self.path = Path(path)
        self.default_key = default_key  # read when first needed: it may be generated
        self._cache: tuple[float, list[dict[str, Any]]] | None = None

    # --- reading --------------------------------------------------------------------------
    def _entries(self) -> list[dict[str, Any]]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        if self._cache and self._cache[0] == mtime:
            return self._cache[1]
        entries = json.loads(self.path.read_text()).get("tenants", [])
        self._cache = (mtime, entries)
        return entries

    def authenticate(self, key: str | None = None, key_id: str | None = None) -> Tenant | None:
        """The tenant whose key this is; None for no key, a wrong one or a revoked one."""
        if not key:
            return None
        if hmac.compare_digest(key.encode(), self.default_key().encode()):
            return DEFAULT_TENANT
        digest = _digest(key)
        found = None
        for entry in self._entries():  # every entry compared: the time says nothing of which matched
            if hmac.compare_digest(entry["key_sha256"], digest) and not entry.get("revoked_at"):
                found = entry
        return _tenant(found) if found else None

    def list(self) -> list[dict[str, Any]]:
        return [describe(entry) for entry in self._entries()]

    # --- writing --------------------------------------------------------------------------
    def _rewrite(self, change: Callable[[list[dict[str, Any]]], Any]) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with (
            storage_full_as_domain_error(self.path.parent),
            open(self.path.with_suffix(".lock"), "a") as lock,
        ):
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._cache = None
            entries = [dict(e) for e in self._entries()]
            result = change(entries)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tenants.")  # 0600
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump({"format": FORMAT, "tenants": entries}, handle, indent=1)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return result

    def create(self, name: str, admin: bool, quotas: Quotas) -> tuple[dict[str, Any], str]:
        key = secrets.token_urlsafe(24)
        entry = {
            "id": "t-" + secrets.token_hex(6),
            "name": name,
            "admin": admin,
            "quotas": quotas.to_dict(),
            "key_sha256": _digest(key),
            "key_prefix": key[:4],
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "revoked_at": None,
        }
        self._rewrite(lambda entries: entries.append(entry))
        return describe(entry), key

    def revoke(self, tenant_id: str) -> dict[str, Any] | None:
        def change(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
            for entry in entries:
                if entry["id"] == tenant_id:
                    entry["revoked_at"] = entry.get("revoked_at") or time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime()
                    )
                    return describe(entry)
            return None

        return self._rewrite(change)
