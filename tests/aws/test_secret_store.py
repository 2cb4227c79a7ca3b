from __future__ import annotations

import pytest

from chalicelib.adapters.aws.secret_store import SecretsManagerStore
from chalicelib.errors import NotFound

HEADERS = {"dataset_headers": {"Authorization": "Bearer t0ken"}, "callback_headers": {"X-Key": "k"}}


def test_put_get_delete(secretsmanager):
    store = SecretsManagerStore(secretsmanager)
    ref = store.put("20261122194501-8c0c", HEADERS)
    assert ref["kind"] == "secretsmanager"
    assert (
        ref["ref"].startswith("arn:aws:secretsmanager:")
        and ":secret:aifactory/jobs/20261122194501-8c0c" in ref["ref"]
    )
    assert store.get(ref) == HEADERS
    store.delete(ref)
    with pytest.raises(NotFound):
        store.get(ref)
    store.delete(ref)  # deleting twice is harmless


def test_put_again_replaces_the_value_and_keeps_the_arn(secretsmanager):
    store = SecretsManagerStore(secretsmanager, name_prefix="test/jobs/")
    first = store.put("j1", HEADERS)
    second = store.put("j1", {"dataset_headers": {}})
    assert first == second
    assert store.get(second) == {"dataset_headers": {}}
    assert secretsmanager.describe_secret(SecretId=first["ref"])["Name"] == "test/jobs/j1"


def test_rejects_foreign_references(secretsmanager):
    with pytest.raises(ValueError, match="Secrets Manager reference"):
        SecretsManagerStore(secretsmanager).get({"kind": "file", "ref": "/tmp/secret.json"})
