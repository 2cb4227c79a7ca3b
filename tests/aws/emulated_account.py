"""An emulated AWS account for `make deploy` / `make destroy`: moto's server on a free loopback
port (`ThreadedMotoServer`, in this process), with moto's gaps filled here and never in the
deploy code. Every client, the deploy tool's and the `chalice` child process's, reaches it
through `AWS_ENDPOINT_URL`.

The gaps, each the smallest stand-in for what AWS does:

- moto's CloudFormation has no `AWS::SecretsManager::Secret`, `AWS::ApiGateway::ApiKey`,
  `UsagePlan` or `UsagePlanKey`: small models create them in moto's own Secrets Manager and
  API Gateway backends (`_Secret`, `_ApiKey`, ...).
- A stack made by a CREATE change set keeps the empty template's outputs: they are read
  again once the change set has run (`_outputs_after_change_sets`). A CommaDelimitedList
  parameter kept with UsePreviousValue comes back as a list moto splits again: it is joined
  first (`_previous_lists_joined`). An update of a bucket whose name CloudFormation generated
  reads a `BucketName` property it does not have: the bucket's own name is given
  (`_bucket_update_named`). An update of a type moto cannot update (a DynamoDB table) leaves
  the stack without the resource: it keeps the one it had (`_unsupported_updates_keep`). A
  resource whose Condition turns true on an update (the tools function, the key and its usage
  plan) is never made: it is, after the update (`_conditions_turned_true_created`). A change
  set with nothing to change is refused at once ("No updates are to be performed") where AWS
  makes a FAILED change set saying it "didn't contain changes": moto's own FAILED path is let
  run (the deploy tool calls no UpdateStack, the only other user of that check).
- moto never rolls back: `fail_first_create` puts a stack in ROLLBACK_COMPLETE as a failed
  first create leaves it, the retained resources listed DELETE_SKIPPED as CloudFormation lists them.
- moto's ImportRestApi/PutRestApi need an `info.description` and OpenAPI 3; Chalice sends
  Swagger 2.0 without one: the API is made and its document kept, unread
  (`_import_without_description`, `_swagger_kept`); nothing here serves its routes anyway.
- No Docker engine pushes images: `push_images` puts a Docker v2 manifest under each tag,
  what `docker buildx build --provenance=false --sbom=false --push` leaves in ECR.
- API Gateway's endpoints do not answer: `ApiGatewayStandIn` answers the smoke test on
  loopback, checking the key against moto's usage plans as API Gateway would.
- moto has no StopTrainingJob: `answer_stop_training_job` answers it on the client.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import urllib.request
from http.server import BaseHTTPRequestHandler
from typing import Any

from botocore.awsrequest import AWSResponse
from moto.apigateway.models import APIGatewayBackend, apigateway_backends
from moto.cloudformation import parsing
from moto.cloudformation.models import CloudFormationBackend, cloudformation_backends
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.common_models import CloudFormationModel
from moto.s3.models import FakeBucket
from moto.secretsmanager.models import secretsmanager_backends
from moto.server import ThreadedMotoServer

from tests.servers import LoopbackServer

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
RETAINED_TYPES = ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::ECR::Repository")


def _tags(properties: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": t["Key"], "Value": t["Value"]} for t in properties.get("Tags") or []]


class _Secret(CloudFormationModel):
    """AWS::SecretsManager::Secret with GenerateSecretString: Ref is the ARN."""

    def __init__(self, arn: str):
        self.arn = arn

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::Secret"

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):  # type: ignore[override]
        properties = cloudformation_json.get("Properties", {})
        answer = secretsmanager_backends[account_id][region_name].create_secret(
            name=properties.get("Name", resource_name),
            secret_string=secrets.token_hex(32),
            secret_binary=None,
            description=properties.get("Description"),
            tags=_tags(properties),
            kms_key_id=None,
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        return cls(json.loads(answer)["ARN"])

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    def delete(self, account_id: str, region_name: str) -> None:
        secretsmanager_backends[account_id][region_name].delete_secret(self.arn, None, True)


class _ApiGatewayModel:
    """What the three API Gateway stand-ins share (each is a direct CloudFormationModel: moto
    finds models among its direct subclasses). An update makes the resource anew."""

    def __init__(self, physical_id: str, parent: str = ""):
        self.id, self.parent = physical_id, parent

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        if original_resource is not None:
            original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    @property
    def physical_resource_id(self) -> str:
        return self.id


class _ApiKey(_ApiGatewayModel, CloudFormationModel):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::ApiKey"

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):  # type: ignore[override]
        properties = cloudformation_json.get("Properties", {})
        key = apigateway_backends[account_id][region_name].create_api_key(
            {
                "name": properties.get("Name", resource_name),
                "description": properties.get("Description"),
                "enabled": bool(properties.get("Enabled", False)),
            }
        )
        return cls(key.id)

    def delete(self, account_id: str, region_name: str) -> None:
        apigateway_backends[account_id][region_name].delete_api_key(self.id)


class _UsagePlan(_ApiGatewayModel, CloudFormationModel):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::UsagePlan"

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):  # type: ignore[override]
        properties = cloudformation_json.get("Properties", {})
        throttle = properties.get("Throttle") or {}
        plan = apigateway_backends[account_id][region_name].create_usage_plan(
            {
                "name": properties.get("UsagePlanName", resource_name),
                "apiStages": [
                    {"apiId": s["ApiId"], "stage": s["Stage"]} for s in properties.get("ApiStages", [])
                ],
                "throttle": {
                    "rateLimit": throttle.get("RateLimit"),
                    "burstLimit": throttle.get("BurstLimit"),
                },
            }
        )
        return cls(plan.id)

    def delete(self, account_id: str, region_name: str) -> None:
        apigateway_backends[account_id][region_name].delete_usage_plan(self.id)

    @classmethod
    def update_from_cloudformation_json(
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        """In place, as CloudFormation updates ApiStages: its keys stay in it."""
        if original_resource is None:
            return cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )
        plan = apigateway_backends[account_id][region_name].get_usage_plan(original_resource.id)
        stages = cloudformation_json.get("Properties", {}).get("ApiStages", [])
        plan.api_stages = [{"apiId": s["ApiId"], "stage": s["Stage"]} for s in stages]
        return original_resource


class _UsagePlanKey(_ApiGatewayModel, CloudFormationModel):
    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::UsagePlanKey"

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):  # type: ignore[override]
        properties = cloudformation_json["Properties"]
        plan = properties["UsagePlanId"]
        apigateway_backends[account_id][region_name].create_usage_plan_key(
            plan, {"keyId": properties["KeyId"], "keyType": properties["KeyType"]}
        )
        return cls(properties["KeyId"], plan)

    def delete(self, account_id: str, region_name: str) -> None:
        apigateway_backends[account_id][region_name].usage_plan_keys.get(self.parent, {}).pop(self.id, None)


def _outputs_after_change_sets(original):
    def execute_change_set(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None):
        original(self, change_set_name, stack_name)
        for stack in self.stacks.values():
            stack._parse_template()
            stack.output_map = stack._create_output_map()

    return execute_change_set


def _previous_lists_joined(original):
    def load_parameters(self):
        self.input_parameters = {
            k: ",".join(v) if isinstance(v, list) else v for k, v in (self.input_parameters or {}).items()
        }
        original(self)

    return load_parameters


def _bucket_update_named(original):
    def update_from_cloudformation_json(
        cls, original_resource, new_resource_name, cloudformation_json, *args, **kw
    ):
        properties = cloudformation_json.setdefault("Properties", {})
        properties.setdefault("BucketName", original_resource.name)
        return original(cls, original_resource, new_resource_name, cloudformation_json, *args, **kw)

    return classmethod(update_from_cloudformation_json)


def _unsupported_updates_keep(original):
    def parse_and_update_resource(logical_id, resource_json, resources_map, account_id, region_name):
        before = resources_map._parsed_resources.get(logical_id)
        updated = original(logical_id, resource_json, resources_map, account_id, region_name)
        return before if updated is None else updated

    return parse_and_update_resource


def _import_without_description(original):
    def import_rest_api(self, api_doc, fail_on_warnings):
        api_doc.setdefault("info", {}).setdefault("description", "")
        return original(self, api_doc, fail_on_warnings)

    return import_rest_api


def _swagger_kept(original):
    def put_rest_api(self, function_id, api_doc, fail_on_warnings, mode="merge"):
        if str(api_doc.get("swagger", "")).startswith("2"):
            api = self.get_rest_api(function_id)
            api.swagger_document = api_doc
            root = self.get_resource(function_id, api.root_resource_id)
            if not root.resource_methods:  # CreateDeployment wants one method with an integration
                self.put_method(function_id, api.root_resource_id, "ANY", "NONE", api_key_required=True)
                self.put_integration(function_id, api.root_resource_id, "ANY", "MOCK", "", "POST")
            return api
        return original(self, function_id, api_doc, fail_on_warnings, mode)

    return put_rest_api


def _conditions_turned_true_created(original):
    def update(self, template, parameters=None):
        original(self, template, parameters)
        for name, resource in template["Resources"].items():
            condition = resource.get("Condition")
            if name not in self._parsed_resources and (not condition or self.lazy_condition_map[condition]):
                _ = self[name]  # moto makes a resource on first use

    return update


def _resources_as_after_a_rollback(original):
    """list_stack_resources of a ROLLBACK_COMPLETE stack: what the template retains is
    DELETE_SKIPPED, everything else DELETE_COMPLETE (moto says CREATE_COMPLETE of everything)."""

    def list_stack_resources(self: CloudFormationResponse):
        result = original(self)
        stack, _ = self.cloudformation_backend.list_stack_resources(self._get_param("StackName"))
        if stack.status == "ROLLBACK_COMPLETE":
            summaries = result.result["StackResourceSummaries"]
            for summary in summaries:
                kept = summary["ResourceType"] in RETAINED_TYPES
                summary["ResourceStatus"] = "DELETE_SKIPPED" if kept else "DELETE_COMPLETE"
        return result

    return list_stack_resources


@contextlib.contextmanager
def emulated_account(monkeypatch, region: str):
    """Yields the server's URL; the environment points every AWS client at it."""
    for model in (_Secret, _ApiKey, _UsagePlan, _UsagePlanKey):
        assert model in CloudFormationModel.__subclasses__()
    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    monkeypatch.setattr(
        CloudFormationBackend,
        "execute_change_set",
        _outputs_after_change_sets(CloudFormationBackend.execute_change_set),
    )
    monkeypatch.setattr(
        CloudFormationResponse,
        "list_stack_resources",
        _resources_as_after_a_rollback(CloudFormationResponse.list_stack_resources),
    )
    monkeypatch.setattr(
        parsing.ResourceMap, "load_parameters", _previous_lists_joined(parsing.ResourceMap.load_parameters)
    )
    monkeypatch.setattr(
        FakeBucket,
        "update_from_cloudformation_json",
        _bucket_update_named(FakeBucket.update_from_cloudformation_json.__func__),
    )
    monkeypatch.setattr(
        parsing, "parse_and_update_resource", _unsupported_updates_keep(parsing.parse_and_update_resource)
    )
    monkeypatch.setattr(
        APIGatewayBackend, "import_rest_api", _import_without_description(APIGatewayBackend.import_rest_api)
    )
    monkeypatch.setattr(APIGatewayBackend, "put_rest_api", _swagger_kept(APIGatewayBackend.put_rest_api))
    monkeypatch.setattr(
        parsing.ResourceMap, "update", _conditions_turned_true_created(parsing.ResourceMap.update)
    )
    monkeypatch.setattr(CloudFormationResponse, "_validate_different_update", lambda self, *args: None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = ""
    try:
        _, port = server.get_host_and_port()
        url = f"http://127.0.0.1:{port}"
        _reset(url)  # moto's backends are this process's: start from an empty account
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_REGION", region)
        monkeypatch.setenv("AWS_DEFAULT_REGION", region)
        yield url
    finally:
        if url:
            with contextlib.suppress(OSError):
                _reset(url)  # and leave nothing behind for the next test, whatever happened
        server.stop()


def _reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=30).read()


def fail_first_create(account_id: str, region: str, name: str) -> None:
    """The stack as a first create that failed leaves it (moto never rolls back)."""
    for stack in cloudformation_backends[account_id][region].stacks.values():
        if stack.name == name:
            stack.status = "ROLLBACK_COMPLETE"
            stack._add_stack_event("ROLLBACK_COMPLETE")


def push_images(ecr, outputs: dict[str, str], tag: str, images) -> list[str]:
    """What `docker buildx build --provenance=false --sbom=false --push` leaves in ECR."""
    pushed = []
    uris = [images.image_uri(outputs[image.output], tag) for image in images.IMAGES]
    if hasattr(images, "tools_uri"):  # the tools function's own build (CPU torch)
        uris.append(images.tools_uri(outputs, tag))
    for uri in uris:
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_V2,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1,
                "digest": "sha256:" + "1" * 64,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 1,
                    "digest": "sha256:" + secrets.token_hex(32),
                }
            ],
        }
        repository, uri_tag = uri.split("/", 1)[1].rsplit(":", 1)
        ecr.put_image(
            repositoryName=repository,
            imageManifest=json.dumps(manifest),
            imageManifestMediaType=DOCKER_V2,
            imageTag=uri_tag,
        )
        pushed.append(uri)
    return pushed


def answer_stop_training_job(stopped: list[str]):
    """A `before-call.sagemaker.StopTrainingJob` handler: answers for moto and records the name."""

    def stop(params, **_):
        stopped.append(json.loads(params["body"])["TrainingJobName"])
        return AWSResponse("http://127.0.0.1/", 200, {}, None), {}

    return stop


class ApiGatewayStandIn:
    """The deployed REST API's `/api/version` on loopback: 403 unless `x-api-key` is the value of
    a key in a usage plan on the API's stage (what API Gateway checks), then the version."""

    def __init__(self, apigateway, rest_api_id: str, stage: str):
        plans = [
            plan["id"]
            for plan in apigateway.get_usage_plans()["items"]
            if {"apiId": rest_api_id, "stage": stage} in plan.get("apiStages", [])
        ]
        self.keys = {
            apigateway.get_api_key(apiKey=key["id"], includeValue=True)["value"]
            for plan in plans
            for key in apigateway.get_usage_plan_keys(usagePlanId=plan)["items"]
        }
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.seen.append(self.path)
                ok = self.headers.get("x-api-key") in outer.keys and self.path == f"/{stage}/api/version"
                body = json.dumps({"version": "1.5.0"} if ok else {"message": "Forbidden"}).encode()
                self.send_response(200 if ok else 403)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = LoopbackServer(Handler, path=f"/{stage}/").start()
        self.url = self.server.url

    def close(self) -> None:
        self.server.stop()
