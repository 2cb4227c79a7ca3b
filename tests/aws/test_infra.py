"""The CloudFormation template and the Chalice policy agree with what the adapters call."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

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
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "job_name-index"
    assert index["KeySchema"] == [{"AttributeName": "job_name", "KeyType": "HASH"}]
    assert index["Projection"] == {"ProjectionType": "ALL"}  # get_by_name reads `doc` from the index
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_bucket_is_private_and_encrypted(template):
    bucket = template["Resources"]["ArtifactBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")


def test_repositories_roles_and_outputs(template):
    resources = template["Resources"]
    names = {
        r["Properties"]["RepositoryName"] for r in resources.values() if r["Type"] == "AWS::ECR::Repository"
    }
    assert names == {"aifactory-trainer", "aifactory-inference"}
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
    assert pass_role["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
    secrets = next(
        s
        for p in role["Policies"]
        for s in p["PolicyDocument"]["Statement"]
        if "secretsmanager:CreateSecret" in s["Action"]
    )
    assert secrets["Resource"]["Fn::Sub"].endswith(":secret:aifactory/jobs/*")


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
    in_policy = _actions([json.loads(POLICY.read_text())]) - {
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    assert in_policy == in_template
