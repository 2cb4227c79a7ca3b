"""Two stages in one AWS account never see or act on each other (issue 17 §3).

dev and prod share one emulated account (moto) here: each lists only its own deployments,
and neither describes, invokes, undeploys, describes a job of, or stops the other's; make
destroy of one leaves the other's endpoints and jobs alone. The IAM policies (the
CloudFormation template and the Chalice reference policy) carry the stage in every resource
pattern, so the same holds on AWS where code would not: a test reads them. Endpoints run
with their own role, which may read the stage's checkpoints, pull its image and log, and no more.
"""

from __future__ import annotations

import json
import re

import boto3
import pytest
import yaml
from botocore.awsrequest import AWSResponse
from moto.core import DEFAULT_ACCOUNT_ID

from chalicelib import settings, stage_names, wiring
from chalicelib.adapters.aws.hosting_platform import GPU_INFERENCE_AMI_VERSION, SageMakerHostingPlatform
from chalicelib.adapters.aws.training_platform import SageMakerTrainingPlatform
from chalicelib.errors import NotFound, ValidationError
from chalicelib.ports import Deployment, TrainingRequest
from chalicelib.services import jobs
from tests.aws import service_model
from tests.aws.conftest import REGION
from tests.aws.stack_fixture import cli
from tests.aws.test_infra import CfnLoader, _listed, _statements

ROOT = cli.ROOT
TEMPLATE = ROOT / "infra" / "cloudformation.yaml"
POLICY = ROOT / "infra" / "chalice" / "policy-dev.json"
TRAINING_ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/aifactory-sagemaker-{{stage}}-{REGION}"
ENDPOINT_ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/aifactory-endpoint-{{stage}}-{REGION}"
IMAGE = f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/aifactory-{{stage}}-inference:1.0"
STAGES = ("dev", "prod")


def job_name(stage: str, api: str = "v15") -> str:
    return jobs.new_ids(api, stage=stage)[1]


def deployment(stage: str, name: str | None = None) -> Deployment:
    name = name or f"{job_name(stage)}-e1-cpu"
    uri = f"s3://aifactory-{stage}-artifacts/{stage}/jobs/j-{stage}/checkpoints/epoch-1"
    return Deployment(name, f"j-{stage}", 1, -1, "classification", uri)


def hosting(sagemaker, runtime, stage: str) -> SageMakerHostingPlatform:
    return SageMakerHostingPlatform(
        sagemaker,
        runtime,
        ENDPOINT_ROLE.format(stage=stage),
        image=IMAGE.format(stage=stage),
        cpu_instance_type="ml.m5.large",
        gpu_instance_type="ml.g4dn.xlarge",
        stage=stage,
    )


def training(sagemaker, stage: str) -> SageMakerTrainingPlatform:
    return SageMakerTrainingPlatform(sagemaker, TRAINING_ROLE.format(stage=stage), stage=stage)


def training_request(stage: str, name: str) -> TrainingRequest:
    return TrainingRequest(
        job_id=f"j-{stage}",
        training_job_name=name,
        image=f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/aifactory-{stage}-trainer:1.0",
        hyperparameters={},
        instance_type="ml.m5.xlarge",
        instance_count=1,
        volume_size_gb=10,
        artifact_uri=f"s3://aifactory-{stage}-artifacts/{stage}/jobs/j-{stage}",
    )


@pytest.fixture
def runtime(aws):
    yield boto3.client("sagemaker-runtime", region_name=REGION)


@pytest.fixture
def calls(sagemaker, runtime):
    """Every SageMaker operation sent, by name, from either client."""
    sent = []
    for client in (sagemaker, runtime):
        client.meta.events.register("before-call.*.*", lambda model, **_: sent.append(model.name))
    return sent


def in_progress(name: str) -> None:
    """moto finishes a training job at once; a running one is what destroy and stop look for."""
    from moto.sagemaker.models import sagemaker_backends

    sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION].training_jobs[name].training_job_status = "InProgress"


def answer_stop(stopped: list[str]):
    """moto has no StopTrainingJob: a `before-call` handler answers it for the client (botocore
    then sends nothing) and records the name."""

    def stop(params, **_):
        stopped.append(json.loads(params["body"])["TrainingJobName"])
        return AWSResponse("http://127.0.0.1/", 200, {}, None), {}

    return stop


def stop_is_recorded(sagemaker, stopped: list[str]) -> None:
    sagemaker.meta.events.register("before-call.sagemaker.StopTrainingJob", answer_stop(stopped))


# -- names -------------------------------------------------------------------------------------


def test_names_carry_the_stage_on_aws_and_stay_as_they_were_locally():
    assert re.fullmatch(r"v15-dev-\d{8}-\d{6}-[0-9a-f]{8}", job_name("dev"))
    assert re.fullmatch(r"aif-prod-\d{8}-\d{6}-[0-9a-f]{8}", job_name("prod", "aif"))
    assert re.fullmatch(r"aif-\d{8}-\d{6}-[0-9a-f]{8}", job_name("local", "aif"))
    # The longest name a deployment gets stays within SageMaker's 63 characters.
    longest = f"{jobs.attempt_name(job_name('prod'), 99)}-e9999-gpu7"
    assert len(longest) <= 63, longest
    assert stage_names.belongs_to(job_name("dev"), "dev")
    assert not stage_names.belongs_to(job_name("prod"), "dev")
    assert not stage_names.belongs_to("v15-dev2-20261207-000000-00000000", "dev")
    with pytest.raises(ValueError, match="'dev-2' is not a stage name"):
        stage_names.job_name_prefix("v15", "dev-2")  # `v15-dev-*` would match its names


# -- hosting -----------------------------------------------------------------------------------


def test_each_stage_lists_only_its_own_deployments(sagemaker, runtime):
    dev, prod = hosting(sagemaker, runtime, "dev"), hosting(sagemaker, runtime, "prod")
    mine, theirs = deployment("dev"), deployment("prod")
    dev.deploy(mine)
    prod.deploy(theirs)
    # A look-alike: dev's name shape and our tags, but prod's stage tag (or a name that only
    # contains dev's prefix: ListEndpoints' NameContains matches anywhere).
    for name, stage_tag in ((f"{job_name('dev')}-e2-cpu", "prod"), (f"x{job_name('dev')}-e3-cpu", "dev")):
        sagemaker.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {"VariantName": "v", "ModelName": theirs.name, "InstanceType": "ml.m5.large"}
            ],
        )
        sagemaker.create_endpoint(
            EndpointName=name,
            EndpointConfigName=name,
            Tags=[
                {"Key": "aifactory:job_id", "Value": "j"},
                {"Key": stage_names.STAGE_TAG, "Value": stage_tag},
            ],
        )
    assert [d.name for d in dev.list()] == [mine.name]
    assert [d.name for d in prod.list()] == [theirs.name]
    tags = {
        t["Key"]: t["Value"]
        for t in sagemaker.list_tags(ResourceArn=_endpoint_arn(sagemaker, mine.name))["Tags"]
    }
    assert tags[stage_names.STAGE_TAG] == "dev"


def _endpoint_arn(sagemaker, name: str) -> str:
    return sagemaker.describe_endpoint(EndpointName=name)["EndpointArn"]


def test_a_stage_cannot_describe_invoke_or_undeploy_anothers_deployment(sagemaker, runtime, calls):
    dev, prod = hosting(sagemaker, runtime, "dev"), hosting(sagemaker, runtime, "prod")
    theirs = deployment("prod")
    prod.deploy(theirs)
    calls.clear()
    for act in (dev.describe, dev.undeploy, lambda name: dev.invoke(name, b"{}", "application/json")):
        with pytest.raises(NotFound, match=f"Deployment '{theirs.name}' not found"):
            act(theirs.name)
    assert calls == []  # refused before any request: nothing of prod's was even described
    with pytest.raises(ValidationError, match="is not a deployment name of stage 'dev'"):
        dev.deploy(deployment("prod"))  # a prod-named deployment is never made by dev
    assert sagemaker.describe_endpoint(EndpointName=theirs.name)["EndpointStatus"]
    assert prod.describe(theirs.name).name == theirs.name


def test_gpu_endpoints_get_an_inference_ami_for_the_images_cuda_and_cpu_ones_none(sagemaker, runtime):
    platform = hosting(sagemaker, runtime, "dev")
    gpu = deployment("dev", f"{job_name('dev')}-e1-gpu0")
    gpu = Deployment(gpu.name, gpu.job_id, 1, 0, gpu.task, gpu.model_uri)
    (variant,) = platform.build_requests(gpu)["create_endpoint_config"]["ProductionVariants"]
    assert variant["InferenceAmiVersion"] == GPU_INFERENCE_AMI_VERSION
    (variant,) = platform.build_requests(deployment("dev"))["create_endpoint_config"]["ProductionVariants"]
    assert "InferenceAmiVersion" not in variant
    # botocore's enum: the newest GPU AMI (driver 580, CUDA 13.0) and the setting's default.
    enum = sagemaker.meta.service_model.shape_for("ProductionVariant").members["InferenceAmiVersion"].enum
    gpu_amis = [v for v in enum if "-gpu-" in v]
    assert GPU_INFERENCE_AMI_VERSION in gpu_amis
    assert GPU_INFERENCE_AMI_VERSION == max(
        gpu_amis, key=lambda v: [int(n) for n in re.findall(r"\d+", v)][-2:]
    )
    assert settings.Settings({}).hosting_gpu_ami_version == GPU_INFERENCE_AMI_VERSION
    operation = sagemaker.meta.service_model.operation_model("CreateEndpointConfig")
    service_model.validate(operation, platform.build_requests(gpu)["create_endpoint_config"])


# -- training ----------------------------------------------------------------------------------


def test_a_stage_cannot_describe_or_stop_anothers_training_job(sagemaker, calls):
    dev, prod = training(sagemaker, "dev"), training(sagemaker, "prod")
    name = job_name("dev")
    dev.start(training_request("dev", name))
    in_progress(name)
    stopped: list[str] = []
    stop_is_recorded(sagemaker, stopped)
    calls.clear()
    for act in (prod.describe, prod.stop):
        with pytest.raises(NotFound, match=f"Training job '{name}' not found"):
            act(name)
    assert calls == [] and stopped == []
    with pytest.raises(ValidationError, match=f"'{name}' is not a job name of stage 'prod'"):
        prod.start(training_request("prod", name))
    dev.stop(name)
    assert stopped == [name]
    arn = sagemaker.describe_training_job(TrainingJobName=name)["TrainingJobArn"]
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=arn)["Tags"]}
    assert tags[stage_names.STAGE_TAG] == "dev"


def test_destroying_one_stage_leaves_the_others_endpoints_and_jobs(sagemaker, runtime):
    session = boto3.session.Session(region_name=REGION)
    stopped: list[str] = []
    session.events.register("before-call.sagemaker.StopTrainingJob", answer_stop(stopped))
    made = {}
    for stage in STAGES:
        platform = hosting(sagemaker, runtime, stage)
        made[stage] = deployment(stage)
        platform.deploy(made[stage])
        name = job_name(stage)
        training(sagemaker, stage).start(training_request(stage, name))
        in_progress(name)
        made[f"{stage}-job"] = name
    cli._stage_resources(session, "dev")
    assert stopped == [made["dev-job"]]
    assert [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]] == [made["prod"].name]
    assert [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]] == [
        made["prod"].name
    ]
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == [made["prod"].name]


# -- the endpoints' own role -------------------------------------------------------------------


@pytest.fixture
def aws_stage(monkeypatch, aws):
    """The wiring of stage dev, with the roles the stack outputs."""
    monkeypatch.setenv("AIFACTORY_STAGE", "dev")
    monkeypatch.setenv("AIFACTORY_SAGEMAKER_ROLE_ARN", TRAINING_ROLE.format(stage="dev"))
    monkeypatch.setenv("AIFACTORY_ENDPOINT_ROLE_ARN", ENDPOINT_ROLE.format(stage="dev"))
    monkeypatch.setenv("AIFACTORY_INFERENCE_IMAGE", IMAGE.format(stage="dev"))
    monkeypatch.setenv("AIFACTORY_BUCKET", "aifactory-dev-artifacts")
    monkeypatch.setenv("AIFACTORY_ARTIFACT_PREFIX", "dev")
    monkeypatch.setenv("AIFACTORY_HOSTING_GPU_INSTANCE_TYPE", "ml.g4dn.xlarge")
    settings.reset()
    wiring.reset()
    yield wiring.adapters()
    settings.reset()
    wiring.reset()


def test_endpoints_run_with_their_own_role_not_the_training_role(aws_stage):
    svc = aws_stage
    assert svc.platform.role_arn == TRAINING_ROLE.format(stage="dev")
    assert svc.hosting.role_arn == ENDPOINT_ROLE.format(stage="dev")
    assert svc.hosting.stage == svc.platform.stage == "dev"
    name = f"{job_name('dev')}-e1-cpu"
    svc.hosting.deploy(deployment("dev", name))
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    assert sagemaker.describe_model(ModelName=name)["ExecutionRoleArn"] == ENDPOINT_ROLE.format(stage="dev")
    # The job names the stage's services make carry the stage.
    assert stage_names.belongs_to(jobs.new_ids("v15", settings.current().stage)[1], "dev")


@pytest.fixture(scope="module")
def template():
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


def test_the_endpoint_role_reads_the_stages_checkpoints_pulls_and_logs_only(template):
    role = template["Resources"]["EndpointExecutionRole"]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    statements = _statements(role)
    allowed = {a for s in statements for a in _listed(s["Action"])}
    assert allowed == {
        "s3:ListBucket",
        "s3:GetObject",
        "ecr:GetAuthorizationToken",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogStreams",
        "cloudwatch:PutMetricData",
    }  # no PutObject, DeleteObject, secrets or data buckets
    (read,) = [s for s in statements if "s3:GetObject" in _listed(s["Action"])]
    assert read["Resource"] == {"Fn::Sub": "${ArtifactBucket.Arn}/${Stage}/jobs/*/checkpoints/*"}
    (pull,) = [s for s in statements if "ecr:BatchGetImage" in _listed(s["Action"])]
    assert pull["Resource"] == {"Fn::GetAtt": ["InferenceRepository", "Arn"]}
    assert {"Ref": "EndpointExecutionRole"} not in template["Resources"]["SageMakerDataReadPolicy"][
        "Properties"
    ]["Roles"]
    # The checkpoint a deployment serves is under the prefix it may read.
    uri = deployment("dev").model_uri
    assert re.fullmatch(r"s3://[^/]+/dev/jobs/[^/]+/checkpoints/.+", uri)
    assert template["Outputs"]["EndpointExecutionRoleArn"]["Value"] == {
        "Fn::GetAtt": ["EndpointExecutionRole", "Arn"]
    }


# -- every IAM resource pattern carries the stage ----------------------------------------------

# Resources that cannot carry it, each for a reason: what a list action or a shared
# AWS-owned group allows has no resource of ours (the adapters filter by name and tag there).
UNSCOPED = {
    ("sagemaker:ListEndpoints", "*"),  # a list action has no resource-level permission
    ("ecr:GetAuthorizationToken", "*"),  # account-wide by nature: the pull itself is scoped
    ("cloudwatch:PutMetricData", "*"),  # scoped by its namespace condition instead
    ("logs:DescribeLogStreams", "log-group:/aws/sagemaker/TrainingJobs"),  # SageMaker's shared group
    ("logs:CreateLogGroup", "log-group:/aws/sagemaker/TrainingJobs"),
    ("apigateway:GET", "::/apikeys"),  # listing keys and plans: no resource to name (tenants)
    ("apigateway:GET", "::/usageplans"),
}
# Resources of the stack whose names carry the stage (generated names start with the stack's,
# aifactory-<stage>-), or whose statements scope them to the stage by condition.
STAGE_RESOURCES = {
    "ArtifactBucket",
    "JobsTable",
    "TrainerRepository",
    "InferenceRepository",
    "SageMakerExecutionRole",
    "EndpointExecutionRole",
    "CallbackSigningSecret",
    "ModelLinkSecret",
}


def _tag_scoped(statement) -> bool:
    """Scoped by the stage's tag instead of a name (API Gateway keys and usage plans have ids)."""
    for keys in statement.get("Condition", {}).values():
        for key, value in keys.items():
            if key in ("aws:ResourceTag/aifactory:stage", "aws:RequestTag/aifactory:stage"):
                return value == {"Ref": "Stage"}
    return False


def _stage_scoped(resource, statement) -> bool:
    """Whether a template resource pattern names only the stage's resources."""
    if _tag_scoped(statement):
        return True
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        text = resource["Fn::Sub"] if isinstance(resource["Fn::Sub"], str) else resource["Fn::Sub"][0]
        if "${Stage}" in text.split(":", 5)[-1]:  # in the resource part, not the account's
            return True
        # under a stage resource of the stack; not the bucket's, whose keys must name the stage
        owner = re.match(r"\$\{(\w+)\.Arn\}", text)
        return bool(owner) and owner.group(1) in STAGE_RESOURCES - {"ArtifactBucket"}
    if isinstance(resource, dict) and ("Fn::GetAtt" in resource or "Ref" in resource):
        target = resource["Fn::GetAtt"][0] if "Fn::GetAtt" in resource else resource["Ref"]
        if target == "ArtifactBucket" and "s3:ListBucket" in _listed(statement["Action"]):
            prefix = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix", {})
            return "${Stage}/" in (prefix.get("Fn::Sub", "") if isinstance(prefix, dict) else "")
        return target in STAGE_RESOURCES
    return False


def _unscoped_allowed(statement, resource) -> bool:
    text = resource if isinstance(resource, str) else resource.get("Fn::Sub", "")
    return all(
        any(action == a and text.endswith(r) for a, r in UNSCOPED) for action in _listed(statement["Action"])
    )


def test_every_iam_resource_pattern_of_the_template_carries_the_stage(template):
    checked = 0
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            assert "ManagedPolicyArns" not in resource["Properties"], name  # AWS's own: any resource
            assert "${Stage}" in resource["Properties"]["RoleName"]["Fn::Sub"]
            assert "${AWS::Region}" in resource["Properties"]["RoleName"]["Fn::Sub"]  # IAM is global
            statements = _statements(resource)
        elif resource["Type"] == "AWS::IAM::Policy":
            statements = resource["Properties"]["PolicyDocument"]["Statement"]
            if resource["Properties"]["PolicyDocument"] and name == "SageMakerDataReadPolicy":
                continue  # DataBucketArns: the stage's own data roots, read-only, a parameter of the stage
        else:
            continue
        for statement in statements:
            for item in _listed(statement["Resource"]):
                checked += 1
                assert _stage_scoped(item, statement) or _unscoped_allowed(statement, item), (name, statement)
    assert checked >= 40


def test_every_resource_of_the_chalice_reference_policy_carries_the_stage():
    policy = json.loads(POLICY.read_text())
    for statement in policy["Statement"]:
        for resource in _listed(statement["Resource"]):
            scoped = re.search(r"(^|[/:-])dev([/:-]|$)", resource.split(":", 5)[-1]) is not None
            by_condition = statement.get("Condition", {}).get("StringLike", {}).get(
                "s3:prefix", ""
            ).startswith("dev/") or "dev" in [
                value
                for key, value in statement.get("Condition", {}).get("StringEquals", {}).items()
                if key in ("aws:ResourceTag/aifactory:stage", "aws:RequestTag/aifactory:stage")
            ]
            unscoped = any(
                a == action and resource.endswith(r)
                for action in _listed(statement["Action"])
                for a, r in UNSCOPED
            )
            assert (
                scoped
                or by_condition
                or unscoped
                or resource.endswith("log-group:/aws/sagemaker/TrainingJobs")
            ), (
                statement["Sid"],
                resource,
            )


def test_the_stack_names_every_stage_resource_with_the_stage(template):
    named = {
        "ArtifactBucket": None,  # generated: aifactory-<stage>-artifactbucket-...
        "JobsTable": "TableName",
        "TrainerRepository": "RepositoryName",
        "InferenceRepository": "RepositoryName",
        "CallbackSigningSecret": "Name",
        "ModelLinkSecret": "Name",
        "ToolsFunction": "FunctionName",
        "ToolsLogGroup": "LogGroupName",
        "ApiKey": "Name",
        "ApiUsagePlan": "UsagePlanName",
    }
    for logical, field in named.items():
        properties = template["Resources"][logical]["Properties"]
        if field is None:
            continue
        value = json.dumps(properties[field])
        assert "${Stage}" in value, (logical, value)
    for logical, resource in template["Resources"].items():
        if "Tags" in resource.get("Properties", {}) and isinstance(resource["Properties"]["Tags"], list):
            assert {"Key": "aifactory:stage", "Value": {"Ref": "Stage"}} in resource["Properties"]["Tags"], (
                logical
            )
