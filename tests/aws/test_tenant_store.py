"""Tenants on AWS: API Gateway keys in the stage's usage plan, their tags saying whose (moto)."""

from __future__ import annotations

import boto3
import pytest

from chalicelib.adapters.aws.tenant_store import ApiGatewayTenantStore
from chalicelib.tenancy import DEFAULT, Quotas
from tests.aws.conftest import REGION


@pytest.fixture
def apigw(aws):
    client = boto3.client("apigateway", region_name=REGION)
    for stage in ("dev", "prod"):
        client.create_usage_plan(name=f"aifactory-{stage}")
    yield client


@pytest.fixture
def store(apigw):
    return ApiGatewayTenantStore(apigw, "dev")


def plan_keys(apigw, stage: str) -> set[str]:
    plan = next(p for p in apigw.get_usage_plans()["items"] if p["name"] == f"aifactory-{stage}")
    return {k["id"] for k in apigw.get_usage_plan_keys(usagePlanId=plan["id"])["items"]}


def test_a_new_tenant_is_a_key_in_the_stages_usage_plan(store, apigw):
    tenant, key = store.create("team-a", False, Quotas(max_concurrent_jobs=2))
    assert key and tenant["name"] == "team-a" and tenant["quotas"]["max_concurrent_jobs"] == 2
    assert tenant["key_id"] in plan_keys(apigw, "dev")
    assert tenant["key_id"] not in plan_keys(apigw, "prod")


def test_a_keys_id_resolves_to_its_tenant(store):
    described, _ = store.create("team-a", True, Quotas(instance_types=("ml.m5.large",)))
    tenant = store.authenticate(key_id=described["key_id"])
    assert tenant.id == described["tenant_id"] and tenant.admin
    assert tenant.quotas.instance_types == ("ml.m5.large",)


def test_the_stacks_own_key_is_the_default_tenant(store, apigw):
    key = apigw.create_api_key(name="aifactory-dev", enabled=True)
    assert store.authenticate(key_id=key["id"]).id == DEFAULT


def test_another_stages_tenant_key_is_no_tenant_here(apigw):
    prod_key, _ = ApiGatewayTenantStore(apigw, "prod").create("team-p", False, Quotas())
    assert ApiGatewayTenantStore(apigw, "dev").authenticate(key_id=prod_key["key_id"]) is None
    assert ApiGatewayTenantStore(apigw, "dev").list() == []


def test_an_unknown_key_id_is_no_tenant(store):
    assert store.authenticate(key_id="nope") is None
    assert store.authenticate(key_id=None) is None


def test_revoking_takes_the_keys_out_of_the_plan_and_keeps_the_tenant_listed(store, apigw):
    described, _ = store.create("team-a", False, Quotas())
    assert store.revoke(described["tenant_id"])["revoked_at"]
    assert described["key_id"] not in plan_keys(apigw, "dev")
    assert store.authenticate(key_id=described["key_id"]) is None
    listed = {t["tenant_id"]: t for t in store.list()}
    assert listed[described["tenant_id"]]["revoked_at"]  # its work stays listed for admin keys
    assert store.revoke("t-nosuch") is None


def test_the_list_is_the_stages_tenants(store):
    store.create("team-a", False, Quotas())
    store.create("team-b", False, Quotas(max_deployments=1))
    assert sorted(t["name"] for t in store.list()) == ["team-a", "team-b"]
    assert all("value" not in t for t in store.list())
