"""The CloudFormation template and the Chalice policy agree with what the adapters call."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from chalicelib.adapters.aws.job_store import table_definition
from tests.aws.stack_fixture import rendered_config

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "cloudformation.yaml"
POLICY = ROOT / "infra" / "chalice" / "policy-dev.json"

# Every AWS call the API Lambda's adapters make (chalicelib/adapters/aws), as IAM actions.
LAMBDA_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:ListBucket",
    "sagemaker:CreateTrainingJob",
    "sagemaker:AddTags",
    "sagemaker:DescribeTrainingJob",
    "sagemaker:StopTrainingJob",
    "iam:PassRole",
    "secretsmanager:CreateSecret",
    "secretsmanager:PutSecretValue",
    "secretsmanager:GetSecretValue",
    "secretsmanager:DeleteSecret",
}
TRAINING_ACTIONS = {
    "s3:GetObject",
    "s3:PutObject",
    "s3:ListBucket",
    "ecr:GetAuthorizationToken",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "secretsmanager:GetSecretValue",
}


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short forms (!Ref, !Sub, ...) as {"Fn::X": ...} like the long form."""


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template():
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


def _walk(value):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def _actions(policy_documents) -> set[str]:
    found = set()
    for document in policy_documents:
        for statement in document["Statement"]:
            if statement["Effect"] == "Allow":
                actions = statement["Action"]
                found.update([actions] if isinstance(actions, str) else actions)
    return found


def test_every_reference_resolves(template):
    names = (
        set(template["Resources"])
        | set(template["Parameters"])
        | {"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::NoValue", "AWS::StackName"}
    )
    conditions = set(template["Conditions"])
    for node in _walk(template):
        if not isinstance(node, dict):
            continue
        if "Ref" in node:
            assert node["Ref"] in names, node
        if "Fn::GetAtt" in node:
            assert node["Fn::GetAtt"][0] in template["Resources"], node
        if "Fn::Sub" in node:
            text, local = (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]
            for ref in re.findall(r"\$\{([^}!]+)\}", text):
                assert ref.split(".")[0] in names | set(local), (ref, text)
        if "Fn::If" in node:
            assert node["Fn::If"][0] in conditions, node
    for name, entry in [*template["Resources"].items(), *template["Outputs"].items()]:
        if "Condition" in entry:
            assert entry["Condition"] in conditions, name


def test_table_matches_the_job_store(template):
    table = template["Resources"]["JobsTable"]["Properties"]
    wanted = table_definition("unused")  # the table the store and the moto tests use
    assert table["BillingMode"] == wanted["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == wanted["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == wanted["AttributeDefinitions"]
    assert table["GlobalSecondaryIndexes"] == wanted["GlobalSecondaryIndexes"]
    name_index, lane_index = table["GlobalSecondaryIndexes"]
    assert name_index["IndexName"] == "job_name-index"
    assert name_index["Projection"] == {"ProjectionType": "ALL"}  # get_by_name reads `doc` from the index
    assert lane_index["IndexName"] == "lane-index"  # sweeps and list pages read `doc` from it too
    assert lane_index["Projection"] == {"ProjectionType": "ALL"}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_the_lambda_may_query_the_tables_indexes(template):
    role = template["Resources"]["ApiLambdaRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    (table,) = [s for s in statements if "dynamodb:Query" in s["Action"]]
    assert {"Fn::Sub": "${JobsTable.Arn}/index/*"} in table["Resource"]
    policy = json.loads(POLICY.read_text())
    (rule,) = [s for s in policy["Statement"] if "dynamodb:Query" in s["Action"]]
    assert any(arn.endswith(":table/aifactory-jobs-dev/index/*") for arn in rule["Resource"])


def test_bucket_is_private_and_encrypted(template):
    bucket = template["Resources"]["ArtifactBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")


def test_repositories_roles_and_outputs(template):
    resources = template["Resources"]
    names = {
        r["Properties"]["RepositoryName"]["Fn::Sub"]
        for r in resources.values()
        if r["Type"] == "AWS::ECR::Repository"
    }
    assert names == {"aifactory-${Stage}-trainer", "aifactory-${Stage}-inference"}  # each stage its own
    assert {"ArtifactBucketName", "JobsTableName", "SageMakerExecutionRoleArn", "ApiLambdaRoleArn"} <= set(
        template["Outputs"]
    )
    plan = resources["ApiUsagePlan"]["Properties"]
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "RestApiId"}, "Stage": {"Ref": "ApiStageName"}}]
    assert resources["ApiUsagePlanKey"]["Properties"]["KeyId"] == {"Ref": "ApiKey"}


def test_lambda_role_allows_what_the_adapters_call(template):
    role = template["Resources"]["ApiLambdaRole"]["Properties"]
    allowed = _actions(p["PolicyDocument"] for p in role["Policies"])
    assert LAMBDA_ACTIONS <= allowed, sorted(LAMBDA_ACTIONS - allowed)
    pass_role = next(
        s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"] if s["Action"] == "iam:PassRole"
    )
    assert pass_role["Resource"] == [
        {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]},
        {"Fn::GetAtt": ["EndpointExecutionRole", "Arn"]},
    ]
    secrets = next(
        s
        for p in role["Policies"]
        for s in p["PolicyDocument"]["Statement"]
        if "secretsmanager:CreateSecret" in s["Action"]
    )
    # Per stage (was aifactory/jobs/*): the stage's job secrets only, as the wiring names them.
    assert secrets["Resource"]["Fn::Sub"].endswith(":secret:aifactory/${Stage}/jobs/*")


def test_sagemaker_role_can_run_the_trainer(template):
    role = template["Resources"]["SageMakerExecutionRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "sagemaker.amazonaws.com"
    }
    allowed = _actions(p["PolicyDocument"] for p in role["Policies"])
    assert TRAINING_ACTIONS <= allowed, sorted(TRAINING_ACTIONS - allowed)
    assert "secretsmanager:CreateSecret" not in allowed  # the trainer only reads its secret


def test_reference_policy_matches_the_lambda_role(template):
    role = template["Resources"]["ApiLambdaRole"]["Properties"]
    in_template = _actions(p["PolicyDocument"] for p in role["Policies"])
    in_policy = _actions([json.loads(POLICY.read_text())])
    assert in_policy == in_template


# -- serving: hosting (SageMaker endpoints) and the tools function ---------------------------

CONFIG = ROOT / "infra" / "chalice" / "config.json"
ADAPTERS = ROOT / "chalicelib" / "adapters" / "aws"
# (adapter file, attribute holding the client, boto3 service, IAM prefix)
SERVING_CLIENTS = [
    ("hosting_platform.py", "_sagemaker", "sagemaker", "sagemaker"),
    ("hosting_platform.py", "_runtime", "sagemaker-runtime", "sagemaker"),
    ("tool_runner.py", "_lambda", "lambda", "lambda"),
]
IAM_NAMES = {"lambda:Invoke": "lambda:InvokeFunction"}  # where IAM's name is not the operation's


def _serving_actions() -> set[str]:
    """The IAM actions of every call the serving adapters make, read from their source."""
    import boto3

    actions = set()
    for file, attribute, service, prefix in SERVING_CLIENTS:
        text = (ADAPTERS / file).read_text()
        methods = set(re.findall(rf"self\.{attribute}\.(\w+)\b", text)) - {"get_paginator", "meta"}
        methods |= set(re.findall(rf'self\.{attribute}\.get_paginator\("(\w+)"\)', text))
        assert methods, (file, attribute)
        mapping = boto3.client(service, region_name="us-east-1").meta.method_to_api_mapping
        for method in methods:
            action = f"{prefix}:{mapping[method]}"
            actions.add(IAM_NAMES.get(action, action))
        if "Tags" in text:  # Create* with Tags also needs AddTags
            actions.add(f"{prefix}:AddTags")
    return actions


def _statements(role) -> list[dict]:
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def test_lambda_role_allows_every_call_of_the_serving_adapters(template):
    needed = _serving_actions()
    assert {"sagemaker:CreateEndpoint", "sagemaker:InvokeEndpoint", "lambda:InvokeFunction"} <= needed
    role = template["Resources"]["ApiLambdaRole"]["Properties"]
    allowed = _actions(p["PolicyDocument"] for p in role["Policies"])
    assert needed <= allowed, sorted(needed - allowed)


def test_hosting_permissions_cover_our_deployments_only(template):
    from chalicelib.adapters.aws.hosting_platform import DEFAULT_NAME_CONTAINS

    for statement in _statements(template["Resources"]["ApiLambdaRole"]):
        actions = _listed(statement["Action"])
        if not any(a in actions for a in ("sagemaker:CreateEndpoint", "sagemaker:InvokeEndpoint")):
            continue
        resources = [r["Fn::Sub"] for r in _listed(statement["Resource"])]
        stage_names = f"/{DEFAULT_NAME_CONTAINS}${{Stage}}-*"
        assert resources and all(r.endswith(stage_names) for r in resources), resources
        assert {r.rsplit(":", 1)[1].split("/")[0] for r in resources} == {
            "model",
            "endpoint-config",
            "endpoint",
        }
    listing = [s for s in _statements(template["Resources"]["ApiLambdaRole"]) if s["Resource"] == "*"]
    assert {a for s in listing for a in _listed(s["Action"])} == {"sagemaker:ListEndpoints"}


def test_the_api_may_invoke_the_tools_function_only(template):
    resources = template["Resources"]
    (invoke,) = [
        s for s in _statements(resources["ApiLambdaRole"]) if "lambda:InvokeFunction" in _listed(s["Action"])
    ]
    assert _listed(invoke["Action"]) == ["lambda:InvokeFunction"]
    name = resources["ToolsFunction"]["Properties"]["FunctionName"]["Fn::Sub"]
    assert invoke["Resource"]["Fn::Sub"].endswith(f":function:{name}")
    config = json.loads(CONFIG.read_text())
    for stage in ("dev", "prod"):
        variables = config["stages"][stage]["environment_variables"]
        assert variables["AIFACTORY_TOOLS_FUNCTION"] == name.replace("${Stage}", stage)


def test_tools_function_runs_the_trainer_images_handler(template):
    resources = template["Resources"]
    function = resources["ToolsFunction"]
    props = function["Properties"]
    assert function["Condition"] == "HasToolsImage"  # the image must be pushed before the function exists
    assert props["PackageType"] == "Image"
    assert props["Code"] == {"ImageUri": {"Ref": "ToolsImageUri"}}
    assert props["ImageConfig"]["Command"] == ["trainer.tools.handler"]
    assert props["ImageConfig"]["EntryPoint"] == ["python", "-m", "awslambdaric"]
    # The handler's module is where the trainer Dockerfile puts the package.
    dockerfile = (ROOT / "containers" / "trainer" / "Dockerfile").read_text()
    workdir = re.search(r"^WORKDIR (\S+)", dockerfile, re.M).group(1)
    assert props["ImageConfig"]["WorkingDirectory"] == workdir
    assert f"COPY containers/trainer/trainer/ {workdir}/trainer/" in dockerfile
    # Sized for a checkpoint, within Lambda's limits, and no longer than the API waits.
    api_timeout = json.loads(CONFIG.read_text())["lambda_timeout"]
    assert 2048 <= props["MemorySize"] <= 10240
    assert 1024 <= props["EphemeralStorage"]["Size"] <= 10240
    assert props["Timeout"] <= api_timeout
    assert props["Role"] == {"Fn::GetAtt": ["ToolsFunctionRole", "Arn"]}


def test_tools_function_reads_and_writes_only_its_answers(template):
    resources = template["Resources"]
    policies = resources["ToolsFunctionRole"]["Properties"]["Policies"]
    allowed = _actions(p["PolicyDocument"] for p in policies)
    assert allowed == {
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    # its answers only: the prefixes tool_jobs reads them from (a job's, and the stage's)
    from chalicelib.v15 import tool_jobs

    (put,) = [
        s for s in _statements(resources["ToolsFunctionRole"]) if "s3:PutObject" in _listed(s["Action"])
    ]
    assert _listed(put["Action"]) == ["s3:PutObject"]
    assert [r["Fn::Sub"] for r in put["Resource"]] == [
        "${ArtifactBucket.Arn}/${Stage}/jobs/*/tools/*",
        "${ArtifactBucket.Arn}/${Stage}/tools/*",
    ]
    assert tool_jobs.job_prefix("j").endswith(f"/{tool_jobs.TOOLS}") and tool_jobs.STAGE_PREFIX == "tools"
    assert {"Ref": "ToolsFunctionRole"} in resources["SageMakerDataReadPolicy"]["Properties"]["Roles"]
    (pull,) = resources["TrainerRepository"]["Properties"]["RepositoryPolicyText"]["Statement"]
    assert pull["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert set(pull["Action"]) == {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}
    assert pull["Condition"]["StringEquals"]["aws:sourceArn"]["Fn::Sub"].endswith(
        ":function:aifactory-tools-${Stage}"
    )


def test_sagemaker_role_trains_and_trusts_our_account_only(template):
    """The training role; endpoints have their own (tests/aws/test_stage_isolation.py)."""
    role = template["Resources"]["SageMakerExecutionRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    statements = _statements({"Properties": role})
    pull = next(s for s in statements if "ecr:BatchGetImage" in _listed(s["Action"]))
    assert pull["Resource"] == {"Fn::GetAtt": ["TrainerRepository", "Arn"]}  # not the inference image
    artifacts = next(s for s in statements if "s3:GetObject" in _listed(s["Action"]))
    assert artifacts["Resource"] == {"Fn::Sub": "${ArtifactBucket.Arn}/${Stage}/*"}  # the stage's prefix
    logs = next(s for s in statements if "logs:PutLogEvents" in _listed(s["Action"]))
    assert {r["Fn::Sub"].rsplit(":", 1)[1] for r in logs["Resource"]} == {"aif-${Stage}-*", "v15-${Stage}-*"}


def test_stages_configure_hosting_sagemaker_accepts(template):
    import boto3

    from chalicelib.adapters.aws.training_platform import INSTANCE_GPUS

    model = boto3.client("sagemaker", region_name="us-east-1").meta.service_model
    hosting_types = model.shape_for("ProductionVariantInstanceType").enum
    # The images are rendered from the stack's outputs (make deploy), not committed.
    config = rendered_config()
    for stage in ("dev", "prod"):
        variables = config["stages"][stage]["environment_variables"]
        assert variables["AIFACTORY_HOSTING_CPU_INSTANCE_TYPE"] in hosting_types
        assert variables["AIFACTORY_HOSTING_GPU_INSTANCE_TYPE"] in hosting_types
        assert INSTANCE_GPUS[variables["AIFACTORY_HOSTING_GPU_INSTANCE_TYPE"]][0] >= 1
        assert (
            variables["AIFACTORY_INFERENCE_IMAGE"].rsplit(":", 1)[0].endswith(f"/aifactory-{stage}-inference")
        )
    outputs = template["Outputs"]
    assert outputs["InferenceRepositoryUri"]["Description"].startswith("push the inference image")
    assert outputs["ToolsFunctionName"]["Value"] == {"Ref": "ToolsFunction"}


def _lint(path: Path) -> list[str]:
    from cfnlint.api import ManualArgs, lint_file

    return [str(match) for match in lint_file(path, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))]


def test_cfn_lint_finds_nothing():
    assert _lint(TEMPLATE) == []


def test_cfn_lint_catches_a_broken_function(tmp_path):
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE.read_text().replace("PackageType: Image", "PackageType: Imagee"))
    (finding,) = _lint(broken)
    assert "'Imagee' is not one of ['Image', 'Zip']" in finding
