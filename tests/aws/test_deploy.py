"""`make deploy` without AWS: the stage config rendered from a recorded describe-stacks, the
one image tag scheme and how images are built and checked, the stack outputs the renderer
needs, a stack that a failed deploy left behind, and the smoke test. The whole deploy and
destroy against an emulated account is tests/aws/test_deploy_account.py."""

from __future__ import annotations

import json
import socket
import subprocess
from http.server import BaseHTTPRequestHandler

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from tests.aws.stack_fixture import (
    DATA_ROOTS,
    IMAGE_TAG,
    PUBLIC_URL,
    ROOT,
    cli,
    describe_stacks,
    images,
    rendered_config,
)
from tests.aws.stack_fixture import deploy_config as config
from tests.servers import LoopbackServer

ACCOUNT_REPO = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture
def outputs():
    return config.stack_outputs(describe_stacks("dev"))


def test_the_stage_is_rendered_from_the_stacks_outputs(outputs):
    dev = rendered_config(("dev",))["stages"]["dev"]
    variables = dev["environment_variables"]
    # Role names are global to the account: stage and region, so a second region deploys too.
    assert dev["iam_role_arn"] == "arn:aws:iam::111122223333:role/aifactory-api-dev-eu-west-1"
    assert variables["AIFACTORY_TABLE"] == "aifactory-jobs-dev"
    assert variables["AIFACTORY_BUCKET"] == outputs["ArtifactBucketName"]
    assert variables["AIFACTORY_ARTIFACT_PREFIX"] == "dev"  # the stage's keys, what its roles may touch
    assert variables["AIFACTORY_SAGEMAKER_ROLE_ARN"] == outputs["SageMakerExecutionRoleArn"]
    assert variables["AIFACTORY_ENDPOINT_ROLE_ARN"] == outputs["EndpointExecutionRoleArn"]
    assert variables["AIFACTORY_ENDPOINT_ROLE_ARN"] != variables["AIFACTORY_SAGEMAKER_ROLE_ARN"]
    assert variables["AIFACTORY_SECRET_PREFIX"] == "aifactory/dev/"
    assert variables["AIFACTORY_CALLBACK_SIGNING_SECRET"] == outputs["CallbackSigningSecretArn"]
    assert variables["AIFACTORY_MODEL_LINK_SECRET"] == outputs["ModelLinkSecretArn"]
    assert variables["AIFACTORY_TRAINER_IMAGE"] == f"{ACCOUNT_REPO}/aifactory-dev-trainer:{IMAGE_TAG}"
    assert variables["AIFACTORY_INFERENCE_IMAGE"] == f"{ACCOUNT_REPO}/aifactory-dev-inference:{IMAGE_TAG}"
    assert variables["AIFACTORY_ALLOWED_IMAGES"] == f"{ACCOUNT_REPO}/aifactory-dev-trainer"
    assert variables["AIFACTORY_TOOLS_FUNCTION"] == "aifactory-tools-dev"
    assert variables["AIFACTORY_DATA_ROOTS"] == ",".join(DATA_ROOTS)
    assert variables["AIFACTORY_PUBLIC_URL"] == PUBLIC_URL.rstrip("/")
    assert "AIFACTORY_CALLBACK_SIGNING_KEY" not in variables  # the key itself never enters the config
    # What the template says about the stage survives the rendering.
    assert (
        variables["AIFACTORY_ALLOWED_INSTANCE_TYPES"]
        == config.load_template()["stages"]["dev"]["environment_variables"][
            "AIFACTORY_ALLOWED_INSTANCE_TYPES"
        ]
    )


def test_rendering_one_stage_leaves_the_others_as_committed(outputs):
    template = config.load_template()
    rendered = config.render(template, "dev", outputs, image_tag=IMAGE_TAG)
    assert rendered["stages"]["prod"] == template["stages"]["prod"]
    assert rendered["stages"]["local"] == template["stages"]["local"]
    assert "iam_role_arn" not in template["stages"]["dev"]  # the template itself is not modified


def test_the_committed_config_holds_no_account_region_or_placeholder():
    assert config.template_problems(config.load_template()) == []


def test_an_account_specific_config_is_refused():
    problems = config.template_problems(rendered_config())
    assert "an account id: 111122223333" in problems
    assert "a region: eu-west-1" in problems
    assert "dev: iam_role_arn (rendered from ApiLambdaRoleArn)" in problems
    assert config.template_problems({"stages": {"dev": {"environment_variables": {"X": "REPLACE-ME"}}}}) == [
        "a REPLACE placeholder"
    ]


def test_a_stack_without_an_output_names_it(outputs):
    del outputs["CallbackSigningSecretArn"]
    with pytest.raises(config.RenderError, match="The stack has no output CallbackSigningSecretArn: deploy"):
        config.render(config.load_template(), "dev", outputs, image_tag=IMAGE_TAG)


def test_only_aws_stages_render(outputs):
    with pytest.raises(config.RenderError, match="Stage 'local' is not one of"):
        config.render(config.load_template(), "local", outputs, image_tag=IMAGE_TAG)


def test_describe_stacks_must_hold_one_stack():
    with pytest.raises(config.RenderError, match="Expected one stack in describe-stacks, got 0"):
        config.stack_outputs({"Stacks": []})


def test_the_template_outputs_everything_the_renderer_reads():
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "infra" / "cloudformation.yaml").read_text(), Loader=Loader)
    produced = set(template["Outputs"])
    assert set(config.REQUIRED_OUTPUTS) | {"ToolsFunctionName", "ApiKeyId"} <= produced
    recorded = set(config.stack_outputs(describe_stacks("dev")))
    assert recorded <= produced  # the fixture is a describe-stacks this template can give


def test_data_roots_become_bucket_arns():
    roots = ["s3://customer-data/voc/", "s3://customer-data/coco/", "s3://other/x"]
    assert config.data_bucket_arns(roots) == ["arn:aws:s3:::customer-data", "arn:aws:s3:::other"]
    assert config.data_bucket_arns(["s3://b/p"], "aws-cn") == ["arn:aws-cn:s3:::b"]
    with pytest.raises(config.RenderError, match="Data root '/data/voc' is not an s3:// prefix"):
        config.data_bucket_arns(["/data/voc"])


# -- one tag scheme --------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path):
    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True)

    git("init", "-q")
    (tmp_path / "f").write_text("1")
    git("add", "f")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    return tmp_path, git("rev-parse", "--short=12", "HEAD").stdout.strip()


def test_the_tag_is_the_commit_and_says_dirty(repo):
    import datetime as dt

    path, sha = repo
    assert images.image_tag(path, override="") == f"git-{sha}"
    (path / "f").write_text("2")
    now = dt.datetime(2026, 11, 22, 19, 45, 1, tzinfo=dt.UTC)
    assert images.image_tag(path, override="", now=now) == f"git-{sha}-dirty-20261122194501"


def test_an_explicit_tag_must_be_valid_for_ecr(repo):
    assert images.image_tag(repo[0], override="1.4.0") == "1.4.0"
    with pytest.raises(ValueError, match="'-bad' is not a valid image tag"):
        images.image_tag(repo[0], override="-bad")


def test_images_build_for_amd64_as_one_docker_v2_manifest_from_the_repository_root():
    trainer = images.IMAGES[0]
    command = images.build_command(
        trainer, "r/aifactory-dev-trainer:t", {"TORCH_INDEX_URL": "u", "BASE_IMAGE": ""}
    )
    # No provenance or SBOM attestation (buildx's default turns the push into an OCI index, which
    # Lambda refuses), Docker media types, pushed by the build itself.
    assert command == [
        "docker", "buildx", "build", "--platform", "linux/amd64",
        "--provenance=false", "--sbom=false",
        "--output", "type=image,name=r/aifactory-dev-trainer:t,push=true,oci-mediatypes=false",
        "-f", "containers/trainer/Dockerfile",
        "--build-arg", "TORCH_INDEX_URL=u",
        ".",
    ]  # fmt: skip
    assert images.BUILD_ENV == {"BUILDX_NO_DEFAULT_ATTESTATIONS": "1"}
    for image in images.IMAGES:
        dockerfile = (ROOT / image.dockerfile).read_text()
        assert "ARG BASE_IMAGE=python:3.11-slim-bookworm\nFROM ${BASE_IMAGE}" in dockerfile
        assert "ARG TORCH_INDEX_URL" in dockerfile and "ARG KEEP_BASE_TORCH=false" in dockerfile


def test_what_is_pushed_is_what_the_config_names(outputs, monkeypatch):
    ran, envs = [], []
    monkeypatch.setattr(
        cli.subprocess, "run", lambda command, **kw: (ran.append(command), envs.append(kw.get("env")))
    )
    session = boto3.session.Session(region_name="eu-west-1")
    ecr = session.client("ecr")
    monkeypatch.setattr(session, "client", lambda name: ecr)
    with Stubber(ecr) as stub:
        stub.add_response(
            "get_authorization_token", {"authorizationData": [{"authorizationToken": "QVdTOnB3"}]}
        )
        cli._push_images(session, outputs, IMAGE_TAG, {"TORCH_INDEX_URL": cli.CUDA12_TORCH})
    assert ran[0] == ["docker", "login", "--username", "AWS", "--password-stdin", ACCOUNT_REPO]
    builds = [(c, env) for c, env in zip(ran, envs, strict=True) if c[:3] == ["docker", "buildx", "build"]]
    pushed = {c[c.index("--output") + 1].split(",")[1].removeprefix("name=") for c, _ in builds}
    variables = config.render(config.load_template(), "dev", outputs, image_tag=IMAGE_TAG)["stages"]["dev"][
        "environment_variables"
    ]
    tools = images.tools_uri(outputs, IMAGE_TAG)
    assert tools == f"{outputs['TrainerRepositoryUri']}:{IMAGE_TAG}-tools"
    assert pushed == {variables["AIFACTORY_TRAINER_IMAGE"], variables["AIFACTORY_INFERENCE_IMAGE"], tools}
    for command, _ in builds:  # the GPU build's torch for SageMaker, a CPU torch for the tools function
        is_tools = f"name={tools}," in command[command.index("--output") + 1]
        wanted = "TORCH_VARIANT=cpu" if is_tools else f"TORCH_INDEX_URL={cli.CUDA12_TORCH}"
        assert [command[k + 1] for k, word in enumerate(command) if word == "--build-arg"] == [wanted]
        assert command[command.index("-f") + 1] == "containers/trainer/Dockerfile" or not is_tools
    assert all(env["BUILDX_NO_DEFAULT_ATTESTATIONS"] == "1" for _, env in builds)


def _run_step(tmp_path, build_args: dict[str, str], pip_list: str = "") -> list[str]:
    """The trainer Dockerfile's dependency step run by sh with stand-in `pip` and `python` that
    record their arguments (no network, no Docker): what it would install, and from where."""
    dockerfile = (ROOT / "containers" / "trainer" / "Dockerfile").read_text()
    step = dockerfile.split("\nRUN set -eu;", 1)[1].split("\n\n", 1)[0]
    script = "set -eu;" + step.replace("\\\n", " ").replace(
        "/opt/ml/code/requirements.txt", "requirements.txt"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    for tool, answer in (("pip", pip_list), ("python", "")):
        (bin_dir / tool).write_text(
            f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n'
            + (f'[ "$1" = list ] && printf "%s" "{answer}"\n' if tool == "pip" else "")
            + "exit 0\n"
        )
        (bin_dir / tool).chmod(0o755)
    (tmp_path / "requirements.txt").write_text((ROOT / "containers/trainer/requirements.txt").read_text())
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "KEEP_BASE_TORCH": "false",
        "TORCH_INDEX_URL": "",
        "TORCH_VARIANT": "",
    }
    done = subprocess.run(
        ["sh", "-c", script], cwd=tmp_path, env={**env, **build_args}, capture_output=True, text=True
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return [*calls, f"exit {done.returncode}"]


def test_the_tools_image_is_the_trainer_image_with_a_cpu_torch(tmp_path):
    """`TORCH_VARIANT=cpu`: torch and torchvision `+cpu` from PyTorch's CPU index (PyPI's torch
    is a CUDA build with ~3 GB of nvidia wheels), then the requirements (their `torch==X` pins
    are met by X+cpu), and the build fails if CUDA wheels got in anyway."""
    pins = [
        line
        for line in (ROOT / "containers/trainer/requirements.txt").read_text().split()
        if line.startswith(("torch==", "torchvision=="))
    ]
    assert len(pins) == 2
    calls = _run_step(tmp_path, images.TOOLS_BUILD_ARGS)
    assert (
        calls[0]
        == f"pip install --index-url https://download.pytorch.org/whl/cpu {pins[0]}+cpu {pins[1]}+cpu"
    )
    assert calls[1] == "pip install -r requirements.txt" and calls[-1] == "exit 0"
    assert any("torch.version.cuda is None" in call for call in calls)
    # a mirror of the CPU index, and a CPU build that still holds CUDA wheels
    (tmp_path / "mirror").mkdir()
    cuda_left = "nvidia-cublas-cu13 13.0\n"
    calls = _run_step(
        tmp_path / "mirror", {**images.TOOLS_BUILD_ARGS, "TORCH_INDEX_URL": "http://mirror/cpu"}, cuda_left
    )
    assert calls[0].startswith("pip install --index-url http://mirror/cpu torch==") and calls[-1] == "exit 1"
    # the SageMaker build is unchanged: the CUDA 12 index, pins as they are
    (tmp_path / "gpu").mkdir()
    calls = _run_step(tmp_path / "gpu", {"TORCH_INDEX_URL": cli.CUDA12_TORCH})
    assert (
        calls[0] == f"pip install --index-url {cli.CUDA12_TORCH} {pins[0]} {pins[1]}"
        and calls[-1] == "exit 0"
    )
    assert images.build_command(images.TOOLS, "r/t:x-tools", images.TOOLS_BUILD_ARGS)[-3:] == [
        "--build-arg",
        "TORCH_VARIANT=cpu",
        ".",
    ]


def _describe_images(stub, repository, tag, media_type):
    detail = {"repositoryName": repository, "imageTags": [tag], "imageDigest": "sha256:" + "0" * 64}
    if media_type:
        detail["imageManifestMediaType"] = media_type
    stub.add_response(
        "describe_images",
        {"imageDetails": [detail]},
        {"repositoryName": repository, "imageIds": [{"imageTag": tag}]},
    )


def test_pushed_images_must_be_single_manifests(outputs):
    ecr = boto3.client("ecr", region_name="eu-west-1")
    trainer = images.image_uri(outputs["TrainerRepositoryUri"], IMAGE_TAG)
    with Stubber(ecr) as stub:
        _describe_images(stub, "aifactory-dev-trainer", IMAGE_TAG, DOCKER_V2)
        assert images.check_manifest(ecr, trainer) == DOCKER_V2
        _describe_images(stub, "aifactory-dev-trainer", IMAGE_TAG, OCI_INDEX)
        with pytest.raises(
            images.ManifestError, match=r"is a application/vnd.oci.image.index.v1\+json .*--provenance=false"
        ):
            images.check_manifest(ecr, trainer)
        stub.add_response("describe_images", {"imageDetails": []})
        with pytest.raises(images.ManifestError, match="is not in ECR: build and push it"):
            images.check_manifest(ecr, trainer)


# -- smoke test ------------------------------------------------------------------------------


@pytest.fixture
def api():
    """An API Gateway stand-in on loopback: 403 until the key has "propagated", then /api/version."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("x-api-key")))
            ok = len(seen) > 2 and self.headers.get("x-api-key") == "k3y"
            body = json.dumps({"version": "1.5"} if ok else {"message": "Forbidden"}).encode()
            self.send_response(200 if ok else 403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with LoopbackServer(Handler, path="/api/") as server:
        yield server.url, seen


def test_smoke_test_calls_version_with_the_key_until_it_is_accepted(api):
    url, seen = api
    assert cli.smoke_test(url, "k3y", attempts=5, delay_s=0) == {"version": "1.5"}
    assert seen == [("/api/api/version", "k3y")] * 3


def test_smoke_test_fails_with_the_last_answer(api):
    url, _ = api
    with pytest.raises(RuntimeError, match=r"/api/api/version failed: HTTP 403"):
        cli.smoke_test(url, "wrong", attempts=4, delay_s=0)


def test_smoke_test_retries_while_the_new_apis_name_does_not_resolve(api, monkeypatch):
    """A new REST API's host name takes a while to resolve: socket.gaierror (in a URLError) is
    retried like a 403, then the API answers. Simulated: no test resolves a name."""
    url, seen = api
    real_urlopen = cli.urllib.request.urlopen
    failures = [socket.gaierror(-2, "Name or service not known")] * 2 + [ConnectionResetError(104, "reset")]

    def urlopen(request, timeout):
        if failures:
            raise cli.urllib.error.URLError(failures.pop(0))
        return real_urlopen(request, timeout=timeout)

    monkeypatch.setattr(cli.urllib.request, "urlopen", urlopen)
    assert cli.smoke_test(url, "k3y", attempts=10, delay_s=0) == {"version": "1.5"}
    assert not failures and len(seen) == 3  # three DNS/connection errors, two 403s, then 200


def test_smoke_test_gives_up_on_a_name_that_never_resolves(monkeypatch):
    def urlopen(request, timeout):
        raise cli.urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(cli.urllib.request, "urlopen", urlopen)
    with pytest.raises(RuntimeError, match="failed: gaierror: .*Name or service not known"):
        cli.smoke_test("https://nowhere.invalid/api/", "k", attempts=3, delay_s=0)
