"""`make deploy` then `make destroy`, end to end, against an emulated account (moto's server on
loopback, tests/aws/emulated_account.py): the deploy tool's own `main`, the real `chalice
deploy`/`chalice delete` child processes, the stack's three passes, the API key, the rendered
config and the smoke test; a first deploy that failed (ROLLBACK_COMPLETE) is recovered; then
destroy removes every resource of the stage and leaves another stage's alone.

Only what moto or this machine lacks is stood in for (Docker, API Gateway's endpoints,
StopTrainingJob, four CloudFormation resource types): see emulated_account.py.
"""

from __future__ import annotations

import json

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID

from tests.aws import emulated_account as account
from tests.aws.stack_fixture import cli, images

REGION = "eu-west-1"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def emulated(monkeypatch, tmp_path):
    with account.emulated_account(monkeypatch, REGION) as url:
        monkeypatch.setattr(cli.chalice_app, "BUILD", tmp_path / "build")
        monkeypatch.setattr(
            cli.chalice_app, "project_dir", lambda stage, build=None: tmp_path / "build" / stage / "project"
        )
        monkeypatch.setenv("IMAGE_TAG", "git-0123456789ab")
        for name in ("DATA_ROOTS", "BASE_IMAGE", "YES"):
            monkeypatch.delenv(name, raising=False)
        pushed: list[str] = []
        monkeypatch.setattr(
            cli,
            "_push_images",
            lambda session, outputs, tag, build_args: pushed.extend(
                account.push_images(session.client("ecr"), outputs, tag, images)
            ),
        )
        smoke: list[tuple[str, str]] = []
        real_smoke_test = cli.smoke_test

        def smoke_test(url, api_key, **kwargs):
            """The deployed URL is the REST API's; API Gateway's answer comes from a stand-in."""
            rest_api_id = url.split("//", 1)[1].split(".", 1)[0]
            stand_in = account.ApiGatewayStandIn(boto3.client("apigateway"), rest_api_id, "api")
            try:
                smoke.append((url, api_key))
                return real_smoke_test(stand_in.url, api_key, attempts=3, delay_s=0)
            finally:
                stand_in.close()

        monkeypatch.setattr(cli, "smoke_test", smoke_test)
        yield {"url": url, "pushed": pushed, "smoke": smoke, "build": tmp_path / "build"}


def deploy(stage: str, *extra: str) -> None:
    cli.main(["deploy", "--stage", stage, "--data-roots", f"s3://customer-data-{stage}/voc/", *extra])


def stage_resources(stage: str) -> dict[str, list[str]]:
    """Everything of `stage` in the account, by kind."""
    lam = boto3.client("lambda")
    functions = [
        f["FunctionName"] for p in lam.get_paginator("list_functions").paginate() for f in p["Functions"]
    ]
    apis = [a["id"] for a in boto3.client("apigateway").get_rest_apis()["items"]]
    secrets = [
        s["Name"]
        for p in boto3.client("secretsmanager").get_paginator("list_secrets").paginate()
        for s in p["SecretList"]
    ]
    roles = [
        r["RoleName"] for p in boto3.client("iam").get_paginator("list_roles").paginate() for r in p["Roles"]
    ]
    stacks = [
        s["StackName"]
        for s in boto3.client("cloudformation").describe_stacks()["Stacks"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    ]
    return {
        "stacks": [s for s in stacks if s == f"aifactory-{stage}"],
        "buckets": [
            b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"] if f"-{stage}-" in b["Name"]
        ],
        "tables": [
            t for t in boto3.client("dynamodb").list_tables()["TableNames"] if t.endswith(f"-{stage}")
        ],
        "repositories": [
            r["repositoryName"]
            for r in boto3.client("ecr").describe_repositories()["repositories"]
            if r["repositoryName"].startswith(f"aifactory-{stage}-")
        ],
        "secrets": [s for s in secrets if s.startswith(f"aifactory/{stage}/")],
        "roles": [r for r in roles if f"-{stage}-" in r],
        "functions": [f for f in functions if f"-{stage}" in f],
        "apis": apis,
    }


def test_deploy_then_destroy_a_stage_in_an_emulated_account(emulated):
    # A first deploy that failed: the stack in ROLLBACK_COMPLETE, what the template retains kept.
    first = cli.Stack(boto3.client("cloudformation"), "aifactory-dev", delay_s=1, say=lambda _: None)
    first.deploy({"Stage": "dev", "DataBucketArns": ""})
    account.fail_first_create(DEFAULT_ACCOUNT_ID, REGION, "aifactory-dev")
    kept = {r["ResourceType"] for r in first.resources() if r["ResourceStatus"] == "DELETE_SKIPPED"}
    assert kept == {"AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::ECR::Repository"}

    deploy("dev")  # deletes the stack, removes what it kept (empty), creates it anew

    described = boto3.client("cloudformation").describe_stacks(StackName="aifactory-dev")["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    assert outputs["ToolsFunctionName"] == "aifactory-tools-dev" and outputs["ApiKeyId"]
    assert outputs["ArtifactPrefix"] == "dev"
    assert outputs["EndpointExecutionRoleArn"].endswith(f":role/aifactory-endpoint-dev-{REGION}")
    # Images: pushed under the one tag, single Docker v2 manifests, the tools function runs the trainer's.
    ecr = boto3.client("ecr")
    for uri in emulated["pushed"]:
        assert images.check_manifest(ecr, uri) == account.DOCKER_V2
    tools = boto3.client("lambda").get_function(FunctionName="aifactory-tools-dev")
    tools_image = (
        images.tools_uri(outputs, "git-0123456789ab")
        if hasattr(images, "tools_uri")
        else images.image_uri(outputs["TrainerRepositoryUri"], "git-0123456789ab")
    )
    assert tools["Code"]["ImageUri"] == tools_image and tools_image in emulated["pushed"]
    # Chalice: the API and its handlers, with the rendered config and the stack's role.
    build = emulated["build"] / "dev"
    rendered = json.loads((build / "project" / ".chalice" / "config.json").read_text())["stages"]["dev"]
    variables = rendered["environment_variables"]
    assert rendered["iam_role_arn"] == outputs["ApiLambdaRoleArn"]
    assert variables["AIFACTORY_ENDPOINT_ROLE_ARN"] == outputs["EndpointExecutionRoleArn"]
    assert variables["AIFACTORY_DATA_ROOTS"] == "s3://customer-data-dev/voc/"
    api = cli.chalice_app.deployed(build / "project", "dev")
    assert variables["AIFACTORY_PUBLIC_URL"] == api["rest_api_url"].rstrip("/")
    handler = boto3.client("lambda").get_function_configuration(FunctionName=api["lambda_arn"])
    assert handler["Role"] == outputs["ApiLambdaRoleArn"]
    assert handler["Environment"]["Variables"]["AIFACTORY_TABLE"] == "aifactory-jobs-dev"
    # The key: in a usage plan on the deployed stage, kept 0600, and the smoke test used it.
    key = (build / "api_key").read_text()
    assert (build / "api_key").stat().st_mode & 0o777 == 0o600
    assert emulated["smoke"] == [(api["rest_api_url"], key)]

    # A second deploy: nothing to change on the stack, the same API, the same key.
    deploy("dev", "--skip-images")
    assert cli.chalice_app.deployed(build / "project", "dev") == api

    # Another stage beside it, then dev goes: prod keeps everything.
    deploy("prod")
    prod_api = cli.chalice_app.deployed(emulated["build"] / "prod" / "project", "prod")["rest_api_id"]
    before = stage_resources("prod")
    assert sorted(before["apis"]) == sorted([api["rest_api_id"], prod_api])
    assert all(before[kind] for kind in ("stacks", "buckets", "tables", "repositories", "secrets", "roles"))
    destroy("dev")
    gone = stage_resources("dev")
    assert {kind: names for kind, names in gone.items() if names and kind != "apis"} == {}
    assert gone["apis"] == [prod_api]  # dev's REST API went with `chalice delete`
    assert not (emulated["build"] / "dev").exists()
    assert stage_resources("prod") == {**before, "apis": [prod_api]}
    destroy("prod")
    assert {kind: names for kind, names in stage_resources("prod").items() if names} == {}


def destroy(stage: str) -> list[str]:
    """`make destroy STAGE=<stage> YES=1`; StopTrainingJob answered for moto. The names stopped."""
    stopped: list[str] = []
    session = cli._session

    def session_answering_stop():
        made = session()
        made.events.register(
            "before-call.sagemaker.StopTrainingJob", account.answer_stop_training_job(stopped)
        )
        return made

    cli._session = session_answering_stop
    try:
        cli.main(["destroy", "--stage", stage, "--yes"])
    finally:
        cli._session = session
    return stopped


def test_the_same_stage_deploys_in_a_second_region(emulated, monkeypatch):
    """IAM is global to the account: role names carry the region, so dev's stack is made in a
    second region of the same account (with fixed names the second create failed on them)."""
    described = {}
    for region in (REGION, "us-east-1"):
        cloudformation = boto3.client("cloudformation", region_name=region)
        stack = cli.Stack(cloudformation, "aifactory-dev", delay_s=1, say=lambda _: None)
        described[region] = cli.config.stack_outputs(stack.deploy({"Stage": "dev", "DataBucketArns": ""}))
    roles = {
        r["RoleName"] for p in boto3.client("iam").get_paginator("list_roles").paginate() for r in p["Roles"]
    }
    for region in (REGION, "us-east-1"):
        assert f"aifactory-api-dev-{region}" in roles and f"aifactory-endpoint-dev-{region}" in roles
        assert described[region]["ApiLambdaRoleArn"].endswith(f":role/aifactory-api-dev-{region}")
