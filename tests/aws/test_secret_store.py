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


# -- per-stage names, the stage's own secrets, and requests AWS accepts ----------------------


def test_job_secrets_live_under_the_stage_prefix(secretsmanager):
    from tests.aws.service_model import record_requests

    sent = record_requests(secretsmanager)
    store = SecretsManagerStore(secretsmanager, name_prefix="aifactory/dev/jobs/")
    ref = store.put("20261122194501-8c0c", HEADERS)
    assert (
        secretsmanager.describe_secret(SecretId=ref["ref"])["Name"]
        == "aifactory/dev/jobs/20261122194501-8c0c"
    )
    store.put("20261122194501-8c0c", HEADERS)  # CreateSecret refused, PutSecretValue instead
    store.get(ref)
    store.delete(ref)
    assert [name for name, _ in sent if name != "DescribeSecret"] == [
        "CreateSecret",
        "CreateSecret",
        "PutSecretValue",
        "GetSecretValue",
        "DeleteSecret",
    ]


@pytest.fixture
def stage_settings(secretsmanager, monkeypatch):
    """Settings of an AWS stage whose keys live in Secrets Manager; nothing cached across tests."""
    from chalicelib import settings
    from chalicelib.adapters.aws.secret_store import stage_secret

    for name in ("AIFACTORY_CALLBACK_SIGNING_KEY", "AIFACTORY_MODEL_LINK_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIFACTORY_STAGE", "dev")
    stage_secret.cache_clear()
    settings.reset()
    yield settings
    stage_secret.cache_clear()
    settings.reset()


def test_the_signing_keys_are_read_from_secrets_manager_once(stage_settings, secretsmanager, monkeypatch):
    signing = secretsmanager.create_secret(Name="aifactory/dev/callback-signing-key", SecretString="s1gn")
    link = secretsmanager.create_secret(Name="aifactory/dev/model-link-key", SecretString="l1nk")
    monkeypatch.setenv("AIFACTORY_CALLBACK_SIGNING_SECRET", signing["ARN"])
    monkeypatch.setenv("AIFACTORY_MODEL_LINK_SECRET", link["ARN"])
    config = stage_settings.current()
    assert (config.callback_signing_key, config.model_link_key) == ("s1gn", "l1nk")
    assert config.secret_prefix == "aifactory/dev/"
    secretsmanager.delete_secret(SecretId=signing["ARN"], ForceDeleteWithoutRecovery=True)
    stage_settings.reset()
    assert stage_settings.current().callback_signing_key == "s1gn"  # read at start, not per request


def test_an_explicit_key_wins_and_no_secret_means_unset(stage_settings, monkeypatch):
    monkeypatch.setenv("AIFACTORY_CALLBACK_SIGNING_KEY", "from-env")
    config = stage_settings.current()
    assert config.callback_signing_key == "from-env"
    assert config.model_link_key == ""


def test_a_missing_stage_secret_fails_at_start(stage_settings, monkeypatch):
    from botocore.exceptions import ClientError

    monkeypatch.setenv(
        "AIFACTORY_CALLBACK_SIGNING_SECRET",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf",
    )
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        stage_settings.current()
