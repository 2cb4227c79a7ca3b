"""The stage's CloudFormation stack: create or update it and wait, read its outputs.

`aws cloudformation deploy` semantics through a change set: nothing to change is not an
error, a failed change set is deleted, parameters not given keep their previous values.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "infra" / "cloudformation.yaml"
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]


def stack_name(stage: str) -> str:
    return f"aifactory-{stage}"


def describe(cloudformation, name: str) -> dict[str, Any] | None:
    """The DescribeStacks response for `name`, or None when there is no such stack."""
    try:
        response = cloudformation.describe_stacks(StackName=name)
    except ClientError as error:
        if "does not exist" in error.response.get("Error", {}).get("Message", ""):
            return None
        raise
    stack = response["Stacks"][0]
    return None if stack["StackStatus"] == "REVIEW_IN_PROGRESS" else response


def deploy(
    cloudformation, name: str, parameters: dict[str, str], template: Path = TEMPLATE
) -> dict[str, Any]:
    """Creates or updates the stack with `parameters` (others keep their values); returns describe-stacks."""
    existing = describe(cloudformation, name)
    previous = {p["ParameterKey"] for p in existing["Stacks"][0].get("Parameters", [])} if existing else set()
    given = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
    kept = [{"ParameterKey": k, "UsePreviousValue": True} for k in sorted(previous - set(parameters))]
    change_set = f"aifactory-{int(time.time())}"
    kind = "UPDATE" if existing else "CREATE"
    cloudformation.create_change_set(
        StackName=name,
        ChangeSetName=change_set,
        ChangeSetType=kind,
        TemplateBody=template.read_text(),
        Parameters=given + kept,
        Capabilities=CAPABILITIES,
        Tags=[{"Key": "aifactory:stack", "Value": name}],
    )
    try:
        cloudformation.get_waiter("change_set_create_complete").wait(
            StackName=name, ChangeSetName=change_set, WaiterConfig={"Delay": 5, "MaxAttempts": 120}
        )
    except Exception:  # noqa: BLE001 - an empty change set "fails"; anything else is re-raised below
        status = cloudformation.describe_change_set(StackName=name, ChangeSetName=change_set)
        reason = status.get("StatusReason", "")
        cloudformation.delete_change_set(StackName=name, ChangeSetName=change_set)
        if "didn't contain changes" in reason or "No updates" in reason:
            print(f"  {name}: no changes")
            return cloudformation.describe_stacks(StackName=name)
        raise RuntimeError(f"Change set for {name} failed: {reason}") from None
    cloudformation.execute_change_set(StackName=name, ChangeSetName=change_set)
    waiter = "stack_create_complete" if kind == "CREATE" else "stack_update_complete"
    print(f"  {name}: {kind.lower()} in progress (a few minutes)")
    cloudformation.get_waiter(waiter).wait(StackName=name, WaiterConfig={"Delay": 10, "MaxAttempts": 360})
    return cloudformation.describe_stacks(StackName=name)


def delete(cloudformation, name: str) -> None:
    if describe(cloudformation, name) is None:
        print(f"  {name}: no stack")
        return
    cloudformation.delete_stack(StackName=name)
    cloudformation.get_waiter("stack_delete_complete").wait(
        StackName=name, WaiterConfig={"Delay": 10, "MaxAttempts": 360}
    )
