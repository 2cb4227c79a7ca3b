"""The stage's CloudFormation stack: create or update it and wait, recover it, read its outputs.

`aws cloudformation deploy` semantics through a change set: nothing to change is not an
error, a failed change set is deleted, parameters not given keep their previous values (those
the template still declares). Every wait is a boto3 waiter.

A stack is not always in a state CloudFormation updates. `Stack.deploy` first settles it:

- an operation still in progress (a deploy interrupted by Ctrl-C, another terminal) is waited for;
- `ROLLBACK_COMPLETE`, what a failed first deploy leaves, cannot be updated, only deleted: the
  stack is deleted and created again. Resources the template retains (`DeletionPolicy: Retain`:
  bucket, table, repositories) that the failed attempt made outlive the rollback
  (`DELETE_SKIPPED`) and would make the new stack fail on their names; `deploy` hands them to
  `on_retained`, which removes them when they are empty (make deploy's `clear_retained`);
- a state only a person can resolve (`UPDATE_ROLLBACK_FAILED`, `DELETE_FAILED`,
  `ROLLBACK_FAILED`) raises `StackError` naming the exact command to run.

A create or update that fails raises `StackError` with CloudFormation's first failure reason
and what the next `make deploy` will do about the state it left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError, WaiterError

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "infra" / "cloudformation.yaml"
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
# Operations in progress, and the waiter that waits for each to end (botocore's waiters).
_IN_PROGRESS = {
    "CREATE_IN_PROGRESS": "stack_create_complete",
    "UPDATE_IN_PROGRESS": "stack_update_complete",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS": "stack_update_complete",
    "UPDATE_ROLLBACK_IN_PROGRESS": "stack_rollback_complete",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS": "stack_rollback_complete",
    "ROLLBACK_IN_PROGRESS": "stack_create_complete",  # a create's rollback: it fails on ROLLBACK_COMPLETE
    "DELETE_IN_PROGRESS": "stack_delete_complete",
}


class StackError(RuntimeError):
    """The stack cannot be brought to the template; the message says what to run."""


def stack_name(stage: str) -> str:
    return f"aifactory-{stage}"


def template_parameters(body: str) -> set[str]:
    """The parameters a template declares (its short forms, !Ref and co., read as nothing)."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return set((yaml.load(body, Loader=Loader) or {}).get("Parameters") or {})


Retained = dict[str, str]  # {"LogicalResourceId", "ResourceType", "PhysicalResourceId"}


class Stack:
    """One CloudFormation stack, through `cloudformation` (a boto3 client)."""

    def __init__(
        self,
        cloudformation,
        name: str,
        template: Path = TEMPLATE,
        *,
        delay_s: float = 10,
        max_attempts: int = 360,
        say: Callable[[str], None] = print,
    ):
        self.client = cloudformation
        self.name = name
        self.template = template
        self._wait_config = {"Delay": delay_s, "MaxAttempts": max_attempts}
        self._say = say

    # -- reading ---------------------------------------------------------------------------

    def describe(self) -> dict[str, Any] | None:
        """The DescribeStacks response, or None when there is no stack (or only an unexecuted
        change set's REVIEW_IN_PROGRESS placeholder, which a CREATE change set reuses)."""
        response = self._describe()
        if response is None or response["Stacks"][0]["StackStatus"] == "REVIEW_IN_PROGRESS":
            return None
        return response

    def _describe(self) -> dict[str, Any] | None:
        try:
            return self.client.describe_stacks(StackName=self.name)
        except ClientError as error:
            if "does not exist" in error.response.get("Error", {}).get("Message", ""):
                return None
            raise

    def status(self) -> str | None:
        response = self._describe()
        return response["Stacks"][0]["StackStatus"] if response else None

    def parameters(self) -> dict[str, str]:
        described = self.describe()
        stack = described["Stacks"][0] if described else {}
        return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}

    def resources(self) -> list[dict[str, Any]]:
        found = []
        for page in self.client.get_paginator("list_stack_resources").paginate(StackName=self.name):
            found.extend(page["StackResourceSummaries"])
        return found

    def _first_failure(self) -> str:
        """CloudFormation's first failure reason of the stack's latest operation."""
        failures = []
        for page in self.client.get_paginator("describe_stack_events").paginate(StackName=self.name):
            for event in page["StackEvents"]:  # newest first
                if event.get("ResourceStatus", "").endswith("_FAILED") and event.get("ResourceStatusReason"):
                    failures.append(f"{event['LogicalResourceId']}: {event['ResourceStatusReason']}")
                if event.get("LogicalResourceId") == self.name and event.get("ResourceStatusReason") == (
                    "User Initiated"
                ):
                    return failures[-1] if failures else "no reason given"
        return failures[-1] if failures else "no reason given"

    def _wait(self, waiter: str) -> None:
        self.client.get_waiter(waiter).wait(StackName=self.name, WaiterConfig=self._wait_config)

    # -- settling a stack that cannot be updated -------------------------------------------

    def settle(self, on_retained: Callable[[list[Retained]], None] | None = None) -> str | None:
        """Brings the stack to a state a change set can act on; returns that status (None: no
        stack). See the module's docstring for what each state gets."""
        while True:
            status = self.status()
            if status in _IN_PROGRESS:
                self._say(f"  {self.name}: {status}, waiting for it to end")
                try:
                    self._wait(_IN_PROGRESS[status])
                except WaiterError:
                    pass  # it ended in another state: look again
                continue
            if status == "ROLLBACK_COMPLETE":
                self._recreate(on_retained)
                return None
            if status == "UPDATE_ROLLBACK_FAILED":
                raise StackError(
                    f"{self.name} is UPDATE_ROLLBACK_FAILED ({self._first_failure()}). Run "
                    f"`aws cloudformation continue-update-rollback --stack-name {self.name}`, wait for "
                    "UPDATE_ROLLBACK_COMPLETE, then make deploy again."
                )
            if status in ("DELETE_FAILED", "ROLLBACK_FAILED"):
                stuck = [
                    r["LogicalResourceId"] for r in self.resources() if r["ResourceStatus"] == "DELETE_FAILED"
                ]
                retain = f" --retain-resources {' '.join(stuck)}" if stuck else ""
                raise StackError(
                    f"{self.name} is {status} ({self._first_failure()}). Remove what blocks the deletion, "
                    f"or keep it with `aws cloudformation delete-stack --stack-name {self.name}{retain}`, "
                    "then make deploy again."
                )
            return status

    def _recreate(self, on_retained: Callable[[list[Retained]], None] | None) -> None:
        """ROLLBACK_COMPLETE: a first create that failed. Only deletion gets it out of that state."""
        reason = self._first_failure()
        retained = [
            {k: r.get(k, "") for k in ("LogicalResourceId", "ResourceType", "PhysicalResourceId")}
            for r in self.resources()
            if r["ResourceStatus"] == "DELETE_SKIPPED" and r.get("PhysicalResourceId")
        ]
        self._say(
            f"  {self.name}: ROLLBACK_COMPLETE after a failed create ({reason}); deleting it to create it again"
        )
        self.client.delete_stack(StackName=self.name)
        self._wait("stack_delete_complete")
        if retained and on_retained:
            on_retained(retained)

    # -- changing it -----------------------------------------------------------------------

    def deploy(
        self, parameters: dict[str, str], on_retained: Callable[[list[Retained]], None] | None = None
    ) -> dict[str, Any]:
        """Creates or updates the stack with `parameters` (others keep their values); returns describe-stacks."""
        status = self.settle(on_retained)
        existing = self.describe() if status else None
        body = self.template.read_text()
        # A parameter the template no longer declares (an older stack's) is dropped, not kept:
        # CloudFormation refuses a change set that names one.
        declared = template_parameters(body)
        previous = (
            {p["ParameterKey"] for p in existing["Stacks"][0].get("Parameters", [])} if existing else set()
        )
        given = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
        kept = [
            {"ParameterKey": k, "UsePreviousValue": True}
            for k in sorted((previous & declared) - set(parameters))
        ]
        change_set = f"aifactory-{int(time.time() * 1000)}"
        kind = "UPDATE" if existing else "CREATE"
        self.client.create_change_set(
            StackName=self.name,
            ChangeSetName=change_set,
            ChangeSetType=kind,
            TemplateBody=body,
            Parameters=given + kept,
            Capabilities=CAPABILITIES,
            Tags=[{"Key": "aifactory:stack", "Value": self.name}],
        )
        try:
            self.client.get_waiter("change_set_create_complete").wait(
                StackName=self.name, ChangeSetName=change_set, WaiterConfig={"Delay": 5, "MaxAttempts": 120}
            )
        except WaiterError:  # an empty change set "fails"; anything else is raised below
            described = self.client.describe_change_set(StackName=self.name, ChangeSetName=change_set)
            reason = described.get("StatusReason", "")
            self.client.delete_change_set(StackName=self.name, ChangeSetName=change_set)
            if "didn't contain changes" in reason or "No updates" in reason:
                self._say(f"  {self.name}: no changes")
                return self.client.describe_stacks(StackName=self.name)
            raise StackError(f"Change set for {self.name} failed: {reason}") from None
        self.client.execute_change_set(StackName=self.name, ChangeSetName=change_set)
        self._say(f"  {self.name}: {kind.lower()} in progress (a few minutes)")
        try:
            self._wait("stack_create_complete" if kind == "CREATE" else "stack_update_complete")
        except WaiterError:
            status = self.status()
            then = {
                "ROLLBACK_COMPLETE": "the next make deploy deletes the stack and creates it again",
                "UPDATE_ROLLBACK_COMPLETE": "the stack is as it was; fix the cause and make deploy again",
            }.get(status or "", "see the stack's events in the CloudFormation console")
            raise StackError(
                f"{self.name} {kind.lower()} failed, now {status}: {self._first_failure()}; {then}."
            ) from None
        return self.client.describe_stacks(StackName=self.name)

    def delete(self) -> None:
        if self._describe() is None:
            self._say(f"  {self.name}: no stack")
            return
        self.client.delete_stack(StackName=self.name)
        self._wait("stack_delete_complete")
