"""TenantStore on API Gateway keys: on AWS each tenant is an API key in the stage's usage plan.

API Gateway checks the key before the Lambda runs and hands the app the key's id
(`requestContext.identity.apiKeyId`); the key's tags say whose it is:
`aifactory:stage`, `aifactory:tenant` (the tenant id, so a tenant may hold several keys and
rotate them), `aifactory:tenant-name`, `aifactory:admin` and `aifactory:quotas` (JSON). A key
without a tenant tag is the stage's own key from the stack: the default tenant, so the
single-key setup works unchanged. A key of another stage is refused (its tag names the stage).
A key's tenant is remembered for a minute per Lambda container: one GetApiKey per key, not
one per request. Revoking takes the tenant's keys out of the usage plan (API Gateway refuses
them at once) and disables them; they stay, so admin keys still list the tenant's work.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from chalicelib.tenancy import DEFAULT_TENANT, Quotas, Tenant

STAGE_TAG = "aifactory:stage"
TENANT_TAG = "aifactory:tenant"
NAME_TAG = "aifactory:tenant-name"
ADMIN_TAG = "aifactory:admin"
QUOTAS_TAG = "aifactory:quotas"
REVOKED = "revoked at "  # the description of a revoked key, then the time
CACHE_SECONDS = 60.0


class ApiGatewayTenantStore:
    def __init__(self, apigateway_client, stage: str, usage_plan_id: str | None = None):
        self._apigw = apigateway_client
        self.stage = stage
        self._usage_plan_id = usage_plan_id
        self._cache: dict[str, tuple[float, Tenant | None]] = {}

    @property
    def usage_plan_id(self) -> str:
        """The stage's usage plan (`aifactory-<stage>`, infra/cloudformation.yaml), found by name:
        it is made after the Lambda's configuration, so no setting can carry its id."""
        if not self._usage_plan_id:
            for page in self._apigw.get_paginator("get_usage_plans").paginate():
                for plan in page.get("items", []):
                    if plan.get("name") == f"aifactory-{self.stage}":
                        self._usage_plan_id = plan["id"]
            if not self._usage_plan_id:
                raise LookupError(f"the usage plan aifactory-{self.stage} does not exist; run make deploy")
        return self._usage_plan_id

    def _key_name(self, name: str) -> str:
        return f"aifactory-{self.stage}-{name}"

    def _tenant(self, key: dict[str, Any]) -> Tenant | None:
        tags = key.get("tags") or {}
        if not key.get("enabled", True) or tags.get(STAGE_TAG, self.stage) != self.stage:
            return None
        if TENANT_TAG not in tags:
            return DEFAULT_TENANT
        return Tenant(
            tags[TENANT_TAG],
            tags.get(NAME_TAG, ""),
            tags.get(ADMIN_TAG) == "true",
            Quotas.from_dict(json.loads(tags.get(QUOTAS_TAG) or "{}")),
        )

    def authenticate(self, key: str | None = None, key_id: str | None = None) -> Tenant | None:
        if not key_id:
            return None
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached and cached[0] > now:
            return cached[1]
        try:
            tenant = self._tenant(self._apigw.get_api_key(apiKey=key_id, includeValue=False))
        except self._apigw.exceptions.NotFoundException:
            tenant = None
        self._cache[key_id] = (now + CACHE_SECONDS, tenant)
        return tenant

    def _stage_keys(self) -> list[dict[str, Any]]:
        keys = []
        for page in self._apigw.get_paginator("get_api_keys").paginate(
            nameQuery=self._key_name(""), includeValues=False
        ):
            keys += [k for k in page.get("items", []) if (k.get("tags") or {}).get(STAGE_TAG) == self.stage]
        return keys

    @staticmethod
    def _describe(key: dict[str, Any]) -> dict[str, Any]:
        tags = key.get("tags") or {}
        created = key.get("createdDate")
        description = key.get("description") or ""
        return {
            "tenant_id": tags.get(TENANT_TAG),
            "name": tags.get(NAME_TAG, ""),
            "admin": tags.get(ADMIN_TAG) == "true",
            "quotas": Quotas.from_dict(json.loads(tags.get(QUOTAS_TAG) or "{}")).to_dict(),
            "key_id": key.get("id"),
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(created, "strftime") else created,
            "revoked_at": description[len(REVOKED) :] if description.startswith(REVOKED) else None,
        }

    def list(self) -> list[dict[str, Any]]:
        return [self._describe(k) for k in self._stage_keys() if TENANT_TAG in (k.get("tags") or {})]

    def create(self, name: str, admin: bool, quotas: Quotas) -> tuple[dict[str, Any], str]:
        tenant_id = "t-" + secrets.token_hex(6)
        key = self._apigw.create_api_key(
            name=self._key_name(name),
            enabled=True,
            tags={
                STAGE_TAG: self.stage,
                TENANT_TAG: tenant_id,
                NAME_TAG: name,
                ADMIN_TAG: "true" if admin else "false",
                QUOTAS_TAG: json.dumps(quotas.to_dict(), separators=(",", ":")),
            },
        )
        try:
            self._apigw.create_usage_plan_key(
                usagePlanId=self.usage_plan_id, keyId=key["id"], keyType="API_KEY"
            )
        except Exception:
            self._apigw.delete_api_key(apiKey=key["id"])  # a key outside the plan is no tenant: none left
            raise
        return self._describe(key), key["value"]

    def revoke(self, tenant_id: str) -> dict[str, Any] | None:
        """Takes the tenant's keys out of the usage plan (API Gateway refuses them at once) and
        disables them; the keys stay, tagged revoked, so the tenant's work stays listed for
        admin keys."""
        mine = [k for k in self._stage_keys() if (k.get("tags") or {}).get(TENANT_TAG) == tenant_id]
        if not mine:
            return None
        revoked_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for key in mine:
            try:
                self._apigw.delete_usage_plan_key(usagePlanId=self.usage_plan_id, keyId=key["id"])
            except self._apigw.exceptions.NotFoundException:
                pass  # already out of the plan
            self._apigw.update_api_key(
                apiKey=key["id"],
                patchOperations=[
                    {"op": "replace", "path": "/enabled", "value": "false"},
                    {"op": "replace", "path": "/description", "value": REVOKED + revoked_at},
                ],
            )
            self._cache.pop(key["id"], None)
        return {**self._describe(mine[0]), "revoked_at": revoked_at}
