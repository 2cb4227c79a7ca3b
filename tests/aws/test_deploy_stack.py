"""The stack wrapper of `make deploy` (infra/bin/aifactory_deploy/stack.py) on states a real
account gets into and moto never does: a failed first deploy's ROLLBACK_COMPLETE, a rollback
that failed, an operation still running. CloudFormation is a scripted stand-in here whose
waiters move the stack along; what a failed create kept (DeletionPolicy Retain) is removed
from moto's emulated account by make deploy's `clear_retained`."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError, WaiterError

from tests.aws.conftest import REGION, TABLE
from tests.aws.stack_fixture import cli
from tests.aws.stack_fixture import stack as stack_module

Stack, StackError = stack_module.Stack, stack_module.StackError
NAME = "aifactory-dev"
CREATE_FAILURE = [  # describe-stack-events, newest first, of a create that failed on a role's name
    {"LogicalResourceId": NAME, "ResourceStatus": "ROLLBACK_COMPLETE"},
    {
        "LogicalResourceId": "ApiLambdaRole",
        "ResourceStatus": "CREATE_FAILED",
        "ResourceStatusReason": "aifactory-api-dev already exists in stack arn:...:stack/aifactory-dev/1",
    },
    {"LogicalResourceId": "JobsTable", "ResourceStatus": "CREATE_COMPLETE"},
    {
        "LogicalResourceId": NAME,
        "ResourceStatus": "CREATE_IN_PROGRESS",
        "ResourceStatusReason": "User Initiated",
    },
]


class FakeWaiter:
    def __init__(self, cloudformation: FakeCloudFormation, name: str):
        self.cloudformation, self.name = cloudformation, name

    def wait(self, **kwargs):
        cf = self.cloudformation
        cf.calls.append(("wait", self.name))
        if self.name == "change_set_create_complete":
            return
        cf.status = cf.after.pop(0) if cf.after else cf.status
        failures = {
            "stack_create_complete": ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED"),
            "stack_update_complete": ("UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED"),
            "stack_delete_complete": ("DELETE_FAILED",),
        }.get(self.name, ())
        if cf.status in failures:
            raise WaiterError(self.name, f"Waiter encountered a terminal failure state: {cf.status}", {})


class Pages:
    def __init__(self, pages):
        self.pages = pages

    def paginate(self, **kwargs):
        return iter(self.pages)


class FakeCloudFormation:
    """Stack status, resources and events as scripted; `after`: the states waiters move to."""

    def __init__(self, status=None, resources=(), events=(), parameters=(), after=()):
        self.status = status
        self.resources = list(resources)
        self.events = list(events)
        self.parameters = list(parameters)
        self.after = list(after)
        self.calls = []

    def describe_stacks(self, StackName):
        if self.status is None:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationError",
                        "Message": f"Stack with id {StackName} does not exist",
                    }
                },
                "DescribeStacks",
            )
        stack = {"StackName": StackName, "StackStatus": self.status, "Parameters": self.parameters}
        return {"Stacks": [{**stack, "Outputs": [{"OutputKey": "ArtifactPrefix", "OutputValue": "dev"}]}]}

    def delete_stack(self, StackName):
        self.calls.append(("delete_stack",))
        self.status = "DELETE_IN_PROGRESS"
        self.after = [None, *self.after]

    def create_change_set(self, **kwargs):
        self.calls.append(("create_change_set", kwargs["ChangeSetType"], kwargs["Parameters"]))
        self.kind = kwargs["ChangeSetType"]
        if self.status is None:
            self.status = "REVIEW_IN_PROGRESS"

    def execute_change_set(self, **kwargs):
        self.calls.append(("execute_change_set", self.kind))
        self.status = f"{self.kind}_IN_PROGRESS"

    def get_waiter(self, name):
        return FakeWaiter(self, name)

    def get_paginator(self, name):
        if name == "list_stack_resources":
            return Pages([{"StackResourceSummaries": self.resources}])
        if name == "describe_stack_events":
            return Pages([{"StackEvents": self.events}])
        raise AssertionError(name)


def test_a_stack_a_failed_first_deploy_left_is_deleted_and_created_again():
    kept = []
    cloudformation = FakeCloudFormation(
        "ROLLBACK_COMPLETE",
        resources=[
            {
                "LogicalResourceId": "JobsTable",
                "ResourceType": "AWS::DynamoDB::Table",
                "PhysicalResourceId": "aifactory-jobs-dev",
                "ResourceStatus": "DELETE_SKIPPED",
            },
            {
                "LogicalResourceId": "ApiLambdaRole",
                "ResourceType": "AWS::IAM::Role",
                "ResourceStatus": "DELETE_COMPLETE",
            },
        ],
        events=CREATE_FAILURE,
        after=["CREATE_COMPLETE"],
    )
    said = []
    stack = Stack(cloudformation, NAME, delay_s=0, say=said.append)
    described = stack.deploy({"Stage": "dev"}, on_retained=kept.extend)
    assert described["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert [c[:2] for c in cloudformation.calls] == [
        ("delete_stack",),
        ("wait", "stack_delete_complete"),  # boto3's waiter, not a sleep loop
        ("create_change_set", "CREATE"),  # not an UPDATE, which CloudFormation refuses
        ("wait", "change_set_create_complete"),
        ("execute_change_set", "CREATE"),
        ("wait", "stack_create_complete"),
    ]
    assert kept == [
        {
            "LogicalResourceId": "JobsTable",
            "ResourceType": "AWS::DynamoDB::Table",
            "PhysicalResourceId": "aifactory-jobs-dev",
        }
    ]
    assert (
        "ROLLBACK_COMPLETE after a failed create (ApiLambdaRole: aifactory-api-dev already exists" in said[0]
    )


def test_a_create_that_fails_says_why_and_what_the_next_deploy_does():
    cloudformation = FakeCloudFormation(None, events=CREATE_FAILURE, after=["ROLLBACK_COMPLETE"])
    with pytest.raises(StackError) as failed:
        Stack(cloudformation, NAME, delay_s=0, say=lambda _: None).deploy({"Stage": "dev"})
    message = str(failed.value)
    assert message.startswith(
        "aifactory-dev create failed, now ROLLBACK_COMPLETE: ApiLambdaRole: aifactory-api-dev"
    )
    assert message.endswith("the next make deploy deletes the stack and creates it again.")


def test_a_failed_update_rollback_names_the_command_that_resolves_it():
    cloudformation = FakeCloudFormation("UPDATE_ROLLBACK_FAILED", events=CREATE_FAILURE)
    with pytest.raises(
        StackError, match=r"`aws cloudformation continue-update-rollback --stack-name aifactory-dev`"
    ):
        Stack(cloudformation, NAME, delay_s=0, say=lambda _: None).deploy({"Stage": "dev"})
    assert not any(call[0] == "create_change_set" for call in cloudformation.calls)


def test_a_failed_deletion_names_what_to_retain():
    stuck = {
        "LogicalResourceId": "ArtifactBucket",
        "ResourceType": "AWS::S3::Bucket",
        "ResourceStatus": "DELETE_FAILED",
    }
    cloudformation = FakeCloudFormation("DELETE_FAILED", resources=[stuck], events=CREATE_FAILURE)
    with pytest.raises(
        StackError, match="delete-stack --stack-name aifactory-dev --retain-resources ArtifactBucket`"
    ):
        Stack(cloudformation, NAME, delay_s=0, say=lambda _: None).deploy({"Stage": "dev"})


def test_an_operation_in_progress_is_waited_for_then_updated():
    parameters = [
        {"ParameterKey": "Stage", "ParameterValue": "dev"},
        {"ParameterKey": "CreateRepositories", "ParameterValue": "true"},  # an older template's
        {"ParameterKey": "DataBucketArns", "ParameterValue": ""},
    ]
    cloudformation = FakeCloudFormation(
        "UPDATE_IN_PROGRESS", parameters=parameters, after=["UPDATE_COMPLETE", "UPDATE_COMPLETE"]
    )
    Stack(cloudformation, NAME, delay_s=0, say=lambda _: None).deploy({"ToolsImageUri": "x"})
    assert cloudformation.calls[0] == ("wait", "stack_update_complete")
    (change_set,) = [c for c in cloudformation.calls if c[0] == "create_change_set"]
    assert change_set[1] == "UPDATE"
    # What the stack had keeps its value, except a parameter the template no longer declares.
    assert change_set[2] == [
        {"ParameterKey": "ToolsImageUri", "ParameterValue": "x"},
        {"ParameterKey": "DataBucketArns", "UsePreviousValue": True},
        {"ParameterKey": "Stage", "UsePreviousValue": True},
    ]


# -- what a failed first create kept, in an emulated account ---------------------------------


def _kept(kind, name):
    return {"LogicalResourceId": "X", "ResourceType": kind, "PhysicalResourceId": name}


def test_empty_resources_a_failed_create_kept_are_removed(dynamodb):
    session = boto3.session.Session(region_name=REGION)
    session.client("s3").create_bucket(Bucket="aifactory-dev-artifactbucket-x")
    session.client("ecr").create_repository(repositoryName="aifactory-dev-trainer")
    cli.clear_retained(
        session,
        [
            _kept("AWS::S3::Bucket", "aifactory-dev-artifactbucket-x"),
            _kept("AWS::ECR::Repository", "aifactory-dev-trainer"),
            _kept("AWS::DynamoDB::Table", TABLE),
        ],
    )
    assert session.client("s3").list_buckets()["Buckets"] == []
    assert session.client("ecr").describe_repositories()["repositories"] == []
    assert dynamodb.list_tables()["TableNames"] == []


def test_a_kept_resource_holding_data_is_left_and_named(aws):
    session = boto3.session.Session(region_name=REGION)
    s3 = session.client("s3")
    s3.create_bucket(Bucket="aifactory-dev-artifactbucket-x")
    s3.put_object(Bucket="aifactory-dev-artifactbucket-x", Key="dev/jobs/j/job.json", Body=b"{}")
    with pytest.raises(
        StackError, match=r"bucket aifactory-dev-artifactbucket-x holds objects: `aws s3 rb s3://"
    ):
        cli.clear_retained(session, [_kept("AWS::S3::Bucket", "aifactory-dev-artifactbucket-x")])
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["aifactory-dev-artifactbucket-x"]
