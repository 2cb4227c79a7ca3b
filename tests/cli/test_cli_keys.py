"""`aifactory keys`: tenants made, listed and revoked from the command line (the live API)."""

from __future__ import annotations

import json

from tests.cli.conftest import KEY


def test_keys_create_prints_the_key_once_and_it_works(cli, api):
    made = cli("keys", "create", "team-cli", "--max-deployments", "1", "--json")
    assert made.code == 0, made.err
    body = json.loads(made.out)
    key = body["api_key"]
    assert body["tenant"]["quotas"]["max_deployments"] == 1
    assert api.call("GET", "/api/version", key=key)[0] == 200
    listed = cli("keys", "list")
    assert listed.code == 0 and "team-cli" in listed.out and key not in listed.out
    assert "max_deployments=1" in listed.out


def test_keys_revoke_refuses_the_key_from_then_on(cli, api):
    body = json.loads(cli("keys", "create", "team-gone", "--json").out)
    revoked = cli("keys", "revoke", body["tenant"]["tenant_id"])
    assert revoked.code == 0 and "revoked" in revoked.out
    assert api.call("GET", "/api/version", key=body["api_key"])[0] == 403


def test_keys_need_a_name_or_an_id(cli):
    assert cli("keys", "create").code == 2
    assert "give the tenant's name" in cli("keys", "create").err
    assert cli("keys", "revoke", "t-nosuch").code == 1


def test_a_tenants_key_cannot_manage_keys(cli, api, monkeypatch):
    key = json.loads(cli("keys", "create", "team-x", "--json").out)["api_key"]
    monkeypatch.setenv("AIFACTORY_API_KEY", key)
    refused = cli("keys", "list")
    assert refused.code == 1 and "managing keys needs the stage's key or an admin key" in refused.err
    monkeypatch.setenv("AIFACTORY_API_KEY", KEY)
