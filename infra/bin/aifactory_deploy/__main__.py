"""`make deploy STAGE=dev` / `make destroy STAGE=dev` (infra/README.md walks through each step).

deploy: stack -> images -> stack with the tools function -> rendered Chalice config ->
`chalice deploy` -> stack with the usage plan and key -> smoke test of /api/version.
destroy: running jobs and endpoints of the stage -> the Chalice app -> the stack -> what the
stack keeps on deletion (bucket, table, job secrets, and the repositories when no stage is left).
The region is the caller's (AWS_REGION / AWS_DEFAULT_REGION / the profile's `region`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from aifactory_deploy import chalice_app, config, images, stack

ROOT = Path(__file__).resolve().parents[3]
CUDA12_TORCH = "https://download.pytorch.org/whl/cu128"  # see infra/README.md, GPU driver
SMOKE_ROUTE = "api/version"


def _session():
    import boto3

    session = boto3.session.Session()
    if not session.region_name:
        sys.exit("No region configured: set AWS_REGION, or `aws configure set region <region>`.")
    return session


def _state_path(stage: str) -> Path:
    return chalice_app.BUILD / stage / "state.json"


def _state(stage: str) -> dict[str, Any]:
    path = _state_path(stage)
    return json.loads(path.read_text()) if path.exists() else {}


def _save_state(stage: str, state: dict[str, Any]) -> None:
    path = _state_path(stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2) + "\n")


def _create_repositories(session, cloudformation, name: str) -> str:
    """ "true" unless the repositories exist and another stage's stack made them."""
    existing = stack.describe(cloudformation, name)
    if existing:
        for parameter in existing["Stacks"][0].get("Parameters", []):
            if parameter["ParameterKey"] == "CreateRepositories":
                return parameter["ParameterValue"]
    ecr = session.client("ecr")
    try:
        ecr.describe_repositories(repositoryNames=[images.TRAINER_REPOSITORY])
    except ecr.exceptions.RepositoryNotFoundException:
        return "true"
    return "false"


def _push_images(session, outputs: dict[str, str], tag: str, build_args: dict[str, str]) -> None:
    registry = outputs["TrainerRepositoryUri"].split("/", 1)[0]
    token = session.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    import base64

    user, password = base64.b64decode(token).decode().split(":", 1)
    subprocess.run(
        ["docker", "login", "--username", user, "--password-stdin", registry],
        input=password.encode(),
        check=True,
    )
    repositories = {
        images.TRAINER_REPOSITORY: outputs["TrainerRepositoryUri"],
        images.INFERENCE_REPOSITORY: outputs["InferenceRepositoryUri"],
    }
    for image in images.IMAGES:
        uri = images.image_uri(repositories[image.repository], tag)
        print(f"  build {uri}")
        subprocess.run(images.build_command(image, uri, build_args), check=True, cwd=ROOT)
        subprocess.run(["docker", "push", uri], check=True)


def _render(stage: str, outputs: dict[str, str], state: dict[str, Any], public_url: str) -> Path:
    rendered = config.render(
        config.load_template(),
        stage,
        outputs,
        image_tag=state["image_tag"],
        data_roots=state.get("data_roots", []),
        public_url=public_url,
    )
    return chalice_app.write_project(chalice_app.project_dir(stage), rendered)


def smoke_test(url: str, api_key: str, attempts: int = 24, delay_s: float = 5.0) -> dict[str, Any]:
    """GET <url>/api/version with the key; a new key takes a little while to be accepted (403)."""
    request = urllib.request.Request(url.rstrip("/") + "/" + SMOKE_ROUTE, headers={"x-api-key": api_key})
    last = ""
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}: {error.read()[:200]!r}"
            if error.code not in (403, 429, 502, 503, 504):
                break
        time.sleep(delay_s)
    raise RuntimeError(f"Smoke test of {request.full_url} failed: {last}")


def deploy(args: argparse.Namespace) -> None:
    session = _session()
    stage, name = args.stage, stack.stack_name(args.stage)
    cloudformation = session.client("cloudformation")
    state = _state(stage)
    if args.data_roots is not None:
        state["data_roots"] = [r.strip() for r in args.data_roots.split(",") if r.strip()]
    state.setdefault("data_roots", [])
    partition = session.get_partition_for_region(session.region_name)
    print(f"1/6 stack {name} in {session.region_name}")
    parameters = {
        "Stage": stage,
        "CreateRepositories": _create_repositories(session, cloudformation, name),
        "DataBucketArns": ",".join(config.data_bucket_arns(state["data_roots"], partition)),
    }
    outputs = config.stack_outputs(stack.deploy(cloudformation, name, parameters))

    state["image_tag"] = images.image_tag(ROOT, args.image_tag)
    if args.skip_images:
        print(f"2/6 images: skipped, using tag {state['image_tag']} (must already be pushed)")
    else:
        print(f"2/6 images, tag {state['image_tag']}")
        build_args = {"BASE_IMAGE": args.base_image, "TORCH_INDEX_URL": args.torch_index_url}
        if args.base_image:
            build_args.update(KEEP_BASE_TORCH="true", TORCH_INDEX_URL="")
        _push_images(session, outputs, state["image_tag"], build_args)
    _save_state(stage, state)

    print("3/6 tools function")
    tools_image = images.image_uri(outputs["TrainerRepositoryUri"], state["image_tag"])
    outputs = config.stack_outputs(stack.deploy(cloudformation, name, {"ToolsImageUri": tools_image}))

    print("4/6 chalice deploy")
    project = chalice_app.project_dir(stage)
    known = chalice_app.deployed(project, stage) if project.exists() else None
    project = _render(stage, outputs, state, (known or {}).get("rest_api_url", ""))
    chalice_app.chalice(project, "deploy", "--stage", stage)
    api = chalice_app.deployed(project, stage)
    if not known or known.get("rest_api_url") != api["rest_api_url"]:
        _render(stage, outputs, state, api["rest_api_url"])  # the API's own URL, for callback links
        chalice_app.chalice(project, "deploy", "--stage", stage)

    print("5/6 usage plan and API key")
    api_stage = config.load_template()["stages"][stage].get("api_gateway_stage", "api")
    outputs = config.stack_outputs(
        stack.deploy(cloudformation, name, {"RestApiId": api["rest_api_id"], "ApiStageName": api_stage})
    )
    key = session.client("apigateway").get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)["value"]
    key_path = chalice_app.BUILD / stage / "api_key"
    key_path.write_text(key)
    key_path.chmod(0o600)

    print(f"6/6 smoke test {api['rest_api_url']}{SMOKE_ROUTE}")
    version = smoke_test(api["rest_api_url"], key)
    print(f"Deployed {stage}: {api['rest_api_url']} answers {version}")
    print(f"API key (x-api-key) in {key_path.relative_to(ROOT)}")


def _stage_resources(session, outputs: dict[str, str]) -> None:
    """Stops the stage's running training jobs and deletes its endpoints (they bill by the hour)."""
    bucket = outputs.get("ArtifactBucketName")
    if not bucket:
        return
    prefix = f"s3://{bucket}/"
    sagemaker = session.client("sagemaker")
    for page in sagemaker.get_paginator("list_training_jobs").paginate(StatusEquals="InProgress"):
        for job in page["TrainingJobSummaries"]:
            described = sagemaker.describe_training_job(TrainingJobName=job["TrainingJobName"])
            if described["OutputDataConfig"]["S3OutputPath"].startswith(prefix):
                print(f"  stop training job {job['TrainingJobName']}")
                sagemaker.stop_training_job(TrainingJobName=job["TrainingJobName"])
    for page in sagemaker.get_paginator("list_endpoints").paginate(NameContains="v15-"):
        for endpoint in page["Endpoints"]:
            tags = {
                t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
            }
            if not tags.get("aifactory:model_uri", "").startswith(prefix):
                continue
            name = endpoint["EndpointName"]
            print(f"  delete endpoint {name}")
            sagemaker.delete_endpoint(EndpointName=name)
            for delete, key in (
                (sagemaker.delete_endpoint_config, "EndpointConfigName"),
                (sagemaker.delete_model, "ModelName"),
            ):
                try:
                    delete(**{key: name})
                except ClientError:
                    pass  # already gone (a half-made deployment)


def destroy(args: argparse.Namespace) -> None:
    session = _session()
    stage, name = args.stage, stack.stack_name(args.stage)
    if not args.yes:
        answer = input(
            f"Delete every AI Factory resource of stage '{stage}' in {session.region_name}, "
            f"artifacts and job records included? Type the stage name: "
        )
        if answer.strip() != stage:
            sys.exit("Nothing deleted.")
    cloudformation = session.client("cloudformation")
    described = stack.describe(cloudformation, name)
    outputs = config.stack_outputs(described) if described else {}
    parameters = {
        p["ParameterKey"]: p.get("ParameterValue", "")
        for p in (described or {"Stacks": [{}]})["Stacks"][0].get("Parameters", [])
    }
    print("1/4 running jobs and endpoints")
    _stage_resources(session, outputs)
    print("2/4 chalice delete")
    project = chalice_app.project_dir(stage)
    if chalice_app.deployed(project, stage):
        chalice_app.chalice(project, "delete", "--stage", stage)
    else:
        print(f"  no record of a Chalice deployment in {project}")
    print(f"3/4 stack {name}")
    stack.delete(cloudformation, name)
    print("4/4 what the stack retains")
    if outputs.get("ArtifactBucketName"):
        bucket = session.resource("s3").Bucket(outputs["ArtifactBucketName"])
        bucket.objects.all().delete()
        bucket.delete()
        print(f"  deleted bucket {bucket.name}")
    if outputs.get("JobsTableName"):
        session.client("dynamodb").delete_table(TableName=outputs["JobsTableName"])
        print(f"  deleted table {outputs['JobsTableName']}")
    secrets = session.client("secretsmanager")
    prefix = outputs.get("SecretPrefix") or f"aifactory/{stage}/"
    for page in secrets.get_paginator("list_secrets").paginate(Filters=[{"Key": "name", "Values": [prefix]}]):
        for secret in page["SecretList"]:
            secrets.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
    others = [
        s for s in ("dev", "prod") if s != stage and stack.describe(cloudformation, stack.stack_name(s))
    ]
    if parameters.get("CreateRepositories") == "true" and not others:
        ecr = session.client("ecr")
        for repository in (images.TRAINER_REPOSITORY, images.INFERENCE_REPOSITORY):
            try:
                ecr.delete_repository(repositoryName=repository, force=True)
                print(f"  deleted repository {repository}")
            except ecr.exceptions.RepositoryNotFoundException:
                pass
    shutil.rmtree(chalice_app.BUILD / stage, ignore_errors=True)
    print(f"Stage {stage} is gone.")


def render(args: argparse.Namespace) -> None:
    """Prints the stage's Chalice config from a saved describe-stacks (`--describe-stacks file`)."""
    outputs = config.stack_outputs(json.loads(Path(args.describe_stacks).read_text()))
    data_roots = [r for r in (args.data_roots or "").split(",") if r]
    rendered = config.render(
        config.load_template(),
        args.stage,
        outputs,
        image_tag=images.image_tag(ROOT, args.image_tag),
        data_roots=data_roots,
    )
    print(json.dumps(rendered, indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aifactory_deploy", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("deploy", "destroy", "render"):
        sub = commands.add_parser(command)
        sub.add_argument("--stage", choices=config.STAGES, default="dev")
        if command in ("deploy", "render"):
            sub.add_argument(
                "--data-roots",
                default=os.environ.get("DATA_ROOTS") or None,
                help="comma-separated s3:// prefixes v1.5 data_dir may name (kept between deploys)",
            )
            sub.add_argument("--image-tag", default=os.environ.get("IMAGE_TAG") or None)
        if command == "deploy":
            sub.add_argument(
                "--base-image",
                default=os.environ.get("BASE_IMAGE", ""),
                help="build on this image keeping its torch (an AWS PyTorch DLC)",
            )
            sub.add_argument("--torch-index-url", default=os.environ.get("TORCH_INDEX_URL", CUDA12_TORCH))
            sub.add_argument("--skip-images", action="store_true", help="the tag's images are already pushed")
        if command == "destroy":
            sub.add_argument("--yes", action="store_true", default=os.environ.get("YES") == "1")
        if command == "render":
            sub.add_argument(
                "--describe-stacks", required=True, help="a saved `aws cloudformation describe-stacks` output"
            )
    args = parser.parse_args(argv)
    {"deploy": deploy, "destroy": destroy, "render": render}[args.command](args)


if __name__ == "__main__":
    main()
