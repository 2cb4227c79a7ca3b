"""The local stage's keys file: keys kept as hashes, shown once, revoked for good."""

from __future__ import annotations

import json
import threading

from chalicelib.adapters.local.tenant_store import KeysFileTenantStore
from chalicelib.tenancy import DEFAULT, Quotas


def store(tmp_path) -> KeysFileTenantStore:
    return KeysFileTenantStore(tmp_path / "tenants.json", lambda: "stage-key")


def test_the_stage_key_is_the_default_tenant(tmp_path):
    assert store(tmp_path).authenticate(key="stage-key").id == DEFAULT


def test_a_made_key_is_its_tenant_and_the_file_keeps_no_key(tmp_path):
    keys = store(tmp_path)
    described, key = keys.create("team-a", False, Quotas(max_deployments=1))
    tenant = keys.authenticate(key=key)
    assert tenant.id == described["tenant_id"] and tenant.quotas.max_deployments == 1
    text = (tmp_path / "tenants.json").read_text()
    assert key not in text and oct((tmp_path / "tenants.json").stat().st_mode & 0o777) == "0o600"


def test_wrong_empty_and_revoked_keys_are_no_tenant(tmp_path):
    keys = store(tmp_path)
    described, key = keys.create("team-a", False, Quotas())
    assert keys.authenticate(key="") is None and keys.authenticate(key="wrong") is None
    assert keys.revoke(described["tenant_id"])["revoked_at"]
    assert keys.authenticate(key=key) is None
    assert keys.revoke("t-nosuch") is None


def test_another_process_sees_a_new_key_at_once(tmp_path):
    _, key = store(tmp_path).create("team-a", False, Quotas())
    assert store(tmp_path).authenticate(key=key) is not None


def test_concurrent_creates_lose_none(tmp_path):
    made = []
    threads = [
        threading.Thread(target=lambda i=i: made.append(store(tmp_path).create(f"t{i}", False, Quotas())))
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(json.loads((tmp_path / "tenants.json").read_text())["tenants"]) == 8
    assert all(store(tmp_path).authenticate(key=key) for _, key in made)
