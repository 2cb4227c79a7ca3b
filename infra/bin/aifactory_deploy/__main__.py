"""`make deploy STAGE=dev` / `make destroy STAGE=dev` (infra/README.md walks through each step).

deploy: stack -> images -> stack with the tools function -> rendered Chalice config ->
`chalice deploy` -> stack with the usage plan and key -> smoke test of /api/version.
destroy: running jobs and endpoints of the stage -> the Chalice app -> the stack -> what the
stack keeps on deletion (bucket, table, job secrets, the stage's repositories).
The region is the caller's (AWS_REGION / AWS_DEFAULT_REGION / the profile's `region`).
Everything it lists, it lists through boto3's paginators.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from aifactory_deploy import chalice_app, config, images
from aifactory_deploy.stack import Retained, Stack, StackError, stack_name

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # chalicelib.stage_names: the one definition of a stage's names
from chalicelib import stage_names  # noqa: E402

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


def clear_retained(session, retained: list[Retained]) -> None:
    """What a failed first create made and kept (DeletionPolicy Retain) blocks the next create on
    its name: remove it when it is empty (a failed first create stored nothing), else say how."""
    blocked = []
    for resource in retained:
        kind, name = resource["ResourceType"], resource["PhysicalResourceId"]
        if kind == "AWS::S3::Bucket":
            s3 = session.client("s3")
            if s3.list_objects_v2(Bucket=name, MaxKeys=1).get("KeyCount", 0) == 0:
                s3.delete_bucket(Bucket=name)
            else:
                blocked.append(f"bucket {name} holds objects: `aws s3 rb s3://{name} --force`")
                continue
        elif kind == "AWS::DynamoDB::Table":
            dynamodb = session.client("dynamodb")
            if dynamodb.scan(TableName=name, Limit=1, Select="COUNT")["Count"] == 0:
                dynamodb.delete_table(TableName=name)
                dynamodb.get_waiter("table_not_exists").wait(TableName=name, WaiterConfig={"Delay": 2})
            else:
                blocked.append(f"table {name} holds items: `aws dynamodb delete-table --table-name {name}`")
                continue
        elif kind == "AWS::ECR::Repository":
            ecr = session.client("ecr")
            if not ecr.describe_images(repositoryName=name, maxResults=1)["imageDetails"]:
                ecr.delete_repository(repositoryName=name)
            else:
                blocked.append(
                    f"repository {name} holds images: `aws ecr delete-repository --repository-name {name} --force`"
                )
                continue
        else:
            blocked.append(f"{kind} {name}: delete it by hand")
            continue
        print(f"  removed {kind} {name}, kept by the failed create")
    if blocked:
        raise StackError(
            "The failed first create kept resources whose names the new stack needs; "
            + "; ".join(blocked)
            + ". Then make deploy again."
        )


def _push_images(session, outputs: dict[str, str], tag: str, build_args: dict[str, str]) -> None:
    registry = outputs["TrainerRepositoryUri"].split("/", 1)[0]
    ecr = session.client("ecr")
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    import base64

    user, password = base64.b64decode(token).decode().split(":", 1)
    subprocess.run(
        ["docker", "login", "--username", user, "--password-stdin", registry],
        input=password.encode(),
        check=True,
    )
    env = {**os.environ, **images.BUILD_ENV}
    for image in images.IMAGES:
        uri = images.image_uri(outputs[image.output], tag)
        print(f"  build and push {uri}")
        subprocess.run(images.build_command(image, uri, build_args), check=True, cwd=ROOT, env=env)
    uri = images.tools_uri(outputs, tag)  # the trainer's sources, CPU torch (not the GPU build args)
    print(f"  build and push {uri}")
    subprocess.run(
        images.build_command(images.TOOLS, uri, images.TOOLS_BUILD_ARGS), check=True, cwd=ROOT, env=env
    )


def _check_images(session, outputs: dict[str, str], tag: str) -> None:
    """Every tag (the tools image's too) is in ECR as a single manifest, before Lambda or
    SageMaker is pointed at it."""
    ecr = session.client("ecr")
    for uri in [images.image_uri(outputs[image.output], tag) for image in images.IMAGES] + [
        images.tools_uri(outputs, tag)
    ]:
        print(f"  {uri}: {images.check_manifest(ecr, uri)}")


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


def _transient(error: urllib.error.URLError) -> bool:
    """A new API's name not resolving yet (its DNS record takes a while), a refused or reset
    connection, a timeout: worth another try, as a 403 of a key not yet accepted is."""
    return isinstance(error.reason, (socket.gaierror, ConnectionError, TimeoutError))


def smoke_test(url: str, api_key: str, attempts: int = 24, delay_s: float = 5.0) -> dict[str, Any]:
    """GET <url>/api/version with the key; a new key takes a little while to be accepted (403),
    and a new API's host name to resolve."""
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
        except urllib.error.URLError as error:
            last = f"{type(error.reason).__name__}: {error.reason}"
            if not _transient(error):
                break
        except (ConnectionError, TimeoutError) as error:  # while reading the answer
            last = f"{type(error).__name__}: {error}"
        time.sleep(delay_s)
    raise RuntimeError(f"Smoke test of {request.full_url} failed: {last}")


def _backfill_job_index(session, outputs: dict[str, str]) -> None:
    """Jobs written before the sweep index (or before tenants) get their lane once, right after
    the stack update that adds it; a table already indexed is read once and left as it is."""
    from chalicelib.adapters.aws.job_store import DynamoJobStore

    counts = DynamoJobStore(session.client("dynamodb"), outputs["JobsTableName"]).backfill_index()
    if counts["written"]:
        print(f"  job index: {counts['written']} of {counts['scanned']} jobs given their lane")


def deploy(args: argparse.Namespace) -> None:
    session = _session()
    stage = args.stage
    stack = Stack(session.client("cloudformation"), stack_name(stage))
    state = _state(stage)
    if args.data_roots is not None:
        state["data_roots"] = [r.strip() for r in args.data_roots.split(",") if r.strip()]
    state.setdefault("data_roots", [])
    partition = session.get_partition_for_region(session.region_name)
    print(f"1/6 stack {stack.name} in {session.region_name}")
    parameters = {
        "Stage": stage,
        "DataBucketArns": ",".join(config.data_bucket_arns(state["data_roots"], partition)),
    }
    outputs = config.stack_outputs(stack.deploy(parameters, lambda kept: clear_retained(session, kept)))
    _backfill_job_index(session, outputs)

    state["image_tag"] = images.image_tag(ROOT, args.image_tag)
    if args.skip_images:
        print(f"2/6 images: skipped, using tag {state['image_tag']} (must already be pushed)")
    else:
        print(f"2/6 images, tag {state['image_tag']}")
        build_args = {"BASE_IMAGE": args.base_image, "TORCH_INDEX_URL": args.torch_index_url}
        if args.base_image:
            build_args.update(KEEP_BASE_TORCH="true", TORCH_INDEX_URL="")
        _push_images(session, outputs, state["image_tag"], build_args)
    _check_images(session, outputs, state["image_tag"])
    _save_state(stage, state)

    print("3/6 tools function")
    tools_image = images.tools_uri(outputs, state["image_tag"])  # the CPU-torch build
    outputs = config.stack_outputs(stack.deploy({"ToolsImageUri": tools_image}))

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
    outputs = config.stack_outputs(stack.deploy({"RestApiId": api["rest_api_id"], "ApiStageName": api_stage}))
    key = session.client("apigateway").get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)["value"]
    key_path = chalice_app.BUILD / stage / "api_key"
    key_path.write_text(key)
    key_path.chmod(0o600)

    print(f"6/6 smoke test {api['rest_api_url']}{SMOKE_ROUTE}")
    version = smoke_test(api["rest_api_url"], key)
    print(f"Deployed {stage}: {api['rest_api_url']} answers {version}")
    print(f"API key (x-api-key) in {key_path}")


def _tags(sagemaker, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for page in sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn):
        tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
    return tags


def _stage_resources(session, stage: str) -> None:
    """Stops the stage's running training jobs and deletes its endpoints, endpoint configs and
    models (endpoints bill by the hour). The stage's own only: names start with its prefixes
    (`aif-<stage>-`, `v15-<stage>-`; NameContains matches anywhere, so the start is checked) and
    endpoints carry its `aifactory:stage` tag; another stage's are never touched."""
    prefixes = stage_names.name_prefixes(stage)
    sagemaker = session.client("sagemaker")
    for prefix in prefixes:
        pages = sagemaker.get_paginator("list_training_jobs").paginate(
            NameContains=prefix, StatusEquals="InProgress"
        )
        for page in pages:
            for job in page["TrainingJobSummaries"]:
                if job["TrainingJobName"].startswith(prefix):
                    print(f"  stop training job {job['TrainingJobName']}")
                    sagemaker.stop_training_job(TrainingJobName=job["TrainingJobName"])
    for prefix in (p for p in prefixes if p.startswith("v15-")):
        for page in sagemaker.get_paginator("list_endpoints").paginate(NameContains=prefix):
            for endpoint in page["Endpoints"]:
                name = endpoint["EndpointName"]
                if not name.startswith(prefix):
                    continue
                if _tags(sagemaker, endpoint["EndpointArn"]).get(stage_names.STAGE_TAG) != stage:
                    continue  # our names' shape without our stage's tag: not ours to delete
                print(f"  delete endpoint {name}")
                sagemaker.delete_endpoint(EndpointName=name)
        # What deployments leave beside their endpoints (and half-made ones without one).
        for paginator, key, delete, field in (
            (
                "list_endpoint_configs",
                "EndpointConfigs",
                sagemaker.delete_endpoint_config,
                "EndpointConfigName",
            ),
            ("list_models", "Models", sagemaker.delete_model, "ModelName"),
        ):
            for page in sagemaker.get_paginator(paginator).paginate(NameContains=prefix):
                for found in page[key]:
                    if found[field].startswith(prefix):
                        try:
                            delete(**{field: found[field]})
                        except ClientError:
                            pass  # gone meanwhile


def destroy(args: argparse.Namespace) -> None:
    session = _session()
    stage = args.stage
    if not args.yes:
        answer = input(
            f"Delete every AI Factory resource of stage '{stage}' in {session.region_name}, "
            f"artifacts and job records included? Type the stage name: "
        )
        if answer.strip() != stage:
            sys.exit("Nothing deleted.")
    stack = Stack(session.client("cloudformation"), stack_name(stage))
    described = stack.describe()
    outputs = config.stack_outputs(described) if described else {}
    print("1/4 running jobs and endpoints")
    _stage_resources(session, stage)
    print("2/4 chalice delete")
    project = chalice_app.project_dir(stage)
    if chalice_app.deployed(project, stage):
        chalice_app.chalice(project, "delete", "--stage", stage)
    else:
        print(f"  no record of a Chalice deployment in {project}")
    print(f"3/4 stack {stack.name}")
    stack.delete()
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
    ecr = session.client("ecr")
    for image in images.IMAGES:  # the stage's own repositories (aifactory-<stage>-<image>)
        repository = images.repository_name(image, stage)
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
    try:
        {"deploy": deploy, "destroy": destroy, "render": render}[args.command](args)
    except (StackError, images.ManifestError) as error:
        sys.exit(f"{args.command} failed: {error}")


if __name__ == "__main__":
    main()
