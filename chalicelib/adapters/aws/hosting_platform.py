"""Deployed checkpoints as SageMaker real-time endpoints.

One `Deployment` becomes three SageMaker resources of the same name: a model (the
inference image over the checkpoint prefix, loaded as uncompressed model data), an
endpoint config (one variant on the stage's CPU or GPU instance type) and an endpoint.
All three carry the deployment's fields as tags, so `describe` and `list` read them back
without a table of their own. Nothing here waits for an endpoint: SageMaker takes minutes
to bring one InService, and the API Lambda answers at once; `invoke` says clearly when
the endpoint is not ready yet.

Every endpoint is an instance billed by the hour, so `deploy` may be given a cap. SageMaker
has no lock to count under and API Lambdas run concurrently, so the cap is checked twice:
before anything is made (the usual refusal, which makes nothing), and again after the
endpoint exists, ranking the live endpoints by creation time (then name): a deploy that
finds `max_live` older ones removes what it made and is refused. Every deploy that keeps its
endpoint saw all older endpoints, so at most `max_live` survive a race (a race may refuse
one more than needed, never admit one too many).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import stage_names
from chalicelib.adapters.aws.training_platform import INSTANCE_GPUS
from chalicelib.aws_limits import INVOKE_ENDPOINT_MAX_BYTES, check_custom_attributes, invoke_request_too_large
from chalicelib.errors import Conflict, NotFound, Unavailable, ValidationError
from chalicelib.ports import (
    CREATING,
    DELETING,
    DEPLOY_FAILED,
    IN_SERVICE,
    Deployment,
    DeploymentCapReached,
    holds_resources,
    same_tenant,
)
from chalicelib.tenancy import DEFAULT as DEFAULT_TENANT_ID

log = logging.getLogger(__name__)

VARIANT_NAME = "AllTraffic"  # SageMaker's own default variant name
ACCEPT = "application/json"
DEFAULT_NAME_CONTAINS = "v15-"  # v1.5 job names (chalicelib.services.jobs.new_ids("v15"))
# The AMI of GPU endpoints (ProductionVariant.InferenceAmiVersion): its NVIDIA driver must run the
# image's CUDA build. SageMaker's default hosting AMI has an older driver than the images need
# (infra/README.md, GPU driver); al2023-ami-sagemaker-inference-gpu-4-1 has driver 580, CUDA 13.0,
# which runs the cu128 build that make deploy pushes and PyPI's CUDA 13 torch alike. The newest GPU
# value of botocore's enum (tests/aws/test_stage_isolation.py checks); CPU variants set none.
GPU_INFERENCE_AMI_VERSION = "al2023-ami-sagemaker-inference-gpu-4-1"

# The fields a deployment keeps in its tags (key = tags_prefix + field).
TAG_FIELDS = ("job_id", "epoch", "target_device_id", "task", "model_uri", "tenant")

# Memory (GiB) of the hosting instance types a stage is likely to use, for deploy/list:
# an endpoint holds its whole instance. Types not here are listed with memory unknown.
HOSTING_INSTANCE_MEMORY_GIB = {
    "ml.t2.medium": 4,
    "ml.t2.large": 8,
    "ml.m5.large": 8,
    "ml.m5.xlarge": 16,
    "ml.m5.2xlarge": 32,
    "ml.m5.4xlarge": 64,
    "ml.c5.large": 4,
    "ml.c5.xlarge": 8,
    "ml.c5.2xlarge": 16,
    "ml.c5.4xlarge": 32,
    "ml.g4dn.xlarge": 16,
    "ml.g4dn.2xlarge": 32,
    "ml.g4dn.4xlarge": 64,
    "ml.g5.xlarge": 16,
    "ml.g5.2xlarge": 32,
    "ml.g5.4xlarge": 64,
    "ml.g6.xlarge": 16,
    "ml.g6.2xlarge": 32,
}

# SageMaker's limits (botocore's model: EndpointName, ModelName, TagValue). The tag pattern
# is `[\p{L}\p{Z}\p{N}_.:/=+\-@]*`; our values are ASCII, so its ASCII part decides.
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_TAG_VALUE = re.compile(r"[a-zA-Z0-9 _.:/=+\-@]{0,256}")

_NOT_READY = {
    CREATING: "is still starting; try again in a few minutes",
    "Updating": "is being updated; try again in a few minutes",
    "SystemUpdating": "is being updated by SageMaker; try again in a few minutes",
    "RollingBack": "is rolling back an update; try again in a few minutes",
    DELETING: "is being deleted",
    "OutOfService": "is out of service",
}


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _error_message(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Message", "")


def _is_missing(error: ClientError) -> bool:
    """SageMaker answers ValidationException 'Could not find ...' for a name it does not have."""
    return _error_code(error) in ("ValidationException", "ResourceNotFound") and (
        "could not find" in _error_message(error).lower() or "not found" in _error_message(error).lower()
    )


def _already_exists(error: ClientError) -> bool:
    message = _error_message(error).lower()
    return _error_code(error) in ("ValidationException", "ResourceInUse") and (
        "already exist" in message or "in use" in message
    )


class SageMakerHostingPlatform:
    """ports.HostingPlatform on SageMaker real-time endpoints.

    `image` is the inference image (containers/inference), `role_arn` the endpoints' own
    execution role (the stack's EndpointExecutionRole: it may pull that image, read the stage's
    checkpoints and write the endpoint's logs, nothing else). `target_device_id == -1` deploys
    on `cpu_instance_type`, any GPU index on `gpu_instance_type` with `gpu_ami_version`.
    `name_contains` is what every deployment name holds (our job names' prefix): `list` asks
    SageMaker for those endpoints only and keeps the ones carrying our tags.

    `stage` (an aws stage's name; None in tests of the requests alone) keeps the platform to its
    stage: names start with `v15-<stage>-` (the default `name_contains`), everything made is
    tagged `aifactory:stage`, `list` keeps only endpoints with the stage's tag, and another
    stage's name is not found by describe, undeploy and invoke (the IAM patterns refuse it too).
    """

    def __init__(
        self,
        sagemaker_client,
        runtime_client,
        role_arn: str,
        *,
        image: str,
        cpu_instance_type: str,
        gpu_instance_type: str,
        tags_prefix: str = "aifactory:",
        name_contains: str | None = None,
        stage: str | None = None,
        gpu_ami_version: str = GPU_INFERENCE_AMI_VERSION,
    ):
        if not role_arn:
            raise ValueError(
                "SageMakerHostingPlatform needs the endpoints' execution role ARN (AIFACTORY_ENDPOINT_ROLE_ARN)."
            )
        if not image:
            raise ValueError(
                "SageMakerHostingPlatform needs the inference image (AIFACTORY_INFERENCE_IMAGE)."
            )
        self._sagemaker = sagemaker_client
        self._runtime = runtime_client
        self.role_arn = role_arn
        self.image = image
        self.cpu_instance_type = cpu_instance_type
        self.gpu_instance_type = gpu_instance_type
        self.tags_prefix = tags_prefix
        self.stage = stage_names.check_stage(stage) if stage is not None else None
        if name_contains is None:
            name_contains = (
                DEFAULT_NAME_CONTAINS if stage is None else f"{stage_names.job_name_prefix('v15', stage)}-"
            )
        self.name_contains = name_contains
        self.gpu_ami_version = gpu_ami_version

    def _stage_name(self, name: str) -> bool:
        """Whether `name` may be one of this stage's deployments (always, without a stage)."""
        return self.stage is None or stage_names.belongs_to(name, self.stage, ("v15",))

    # -- what the stage offers -------------------------------------------------------------

    def device_count(self) -> int:
        return INSTANCE_GPUS.get(self.gpu_instance_type, (0, "", 0))[0]

    def instance_type(self, target_device_id: int) -> str:
        return self.cpu_instance_type if int(target_device_id) == -1 else self.gpu_instance_type

    # -- requests (also what tests compare against) ----------------------------------------

    def tags(self, deployment: Deployment) -> list[dict[str, str]]:
        values = {field: str(getattr(deployment, field)) for field in TAG_FIELDS}
        for field, value in values.items():
            if not _TAG_VALUE.fullmatch(value):
                raise ValidationError(
                    field,
                    f"'{value}' cannot be kept as a SageMaker tag (at most 256 characters of "
                    "letters, digits, spaces and _.:/=+-@).",
                )
        tags = [{"Key": self.tags_prefix + field, "Value": value} for field, value in values.items()]
        if self.stage is not None:
            tags.append({"Key": stage_names.STAGE_TAG, "Value": self.stage})
        return tags

    def build_requests(self, deployment: Deployment) -> dict[str, dict[str, Any]]:
        """CreateModel, CreateEndpointConfig and CreateEndpoint parameters for `deployment`."""
        name = deployment.name
        if len(name) > 63 or not _NAME.fullmatch(name):
            raise ValidationError(
                "name",
                f"'{name}' is not a SageMaker endpoint name (1-63 letters, digits and hyphens, "
                "starting and ending with a letter or digit).",
            )
        if not self._stage_name(name):
            raise ValidationError(
                "name",
                f"'{name}' is not a deployment name of stage '{self.stage}' (they start with {self.name_contains})",
            )
        if not deployment.model_uri.startswith("s3://"):
            raise ValidationError(
                "model_uri", f"SageMaker hosting reads model data from S3, not '{deployment.model_uri}'."
            )
        device = int(deployment.target_device_id)
        if device != -1 and not 0 <= device < self.device_count():
            raise ValidationError(
                "target_device_id",
                f"{device} is not a GPU of {self.gpu_instance_type or 'the hosting instance'} "
                f"(use -1 for CPU or 0..{self.device_count() - 1}).",
            )
        tags = self.tags(deployment)
        variant = {
            "VariantName": VARIANT_NAME,
            "ModelName": name,
            "InitialInstanceCount": 1,
            "InstanceType": self.instance_type(device),
            "InitialVariantWeight": 1.0,
        }
        if device != -1 and self.gpu_ami_version:
            variant["InferenceAmiVersion"] = self.gpu_ami_version  # a driver for the image's CUDA
        return {
            "create_model": {
                "ModelName": name,
                "ExecutionRoleArn": self.role_arn,
                "PrimaryContainer": {
                    "Image": self.image,
                    "ModelDataSource": {
                        "S3DataSource": {
                            # The checkpoint directory as it is: SageMaker copies the prefix to /opt/ml/model.
                            "S3Uri": deployment.model_uri.rstrip("/") + "/",
                            "S3DataType": "S3Prefix",
                            "CompressionType": "None",
                        }
                    },
                    # Which device the server uses; nothing secret (DescribeModel shows it).
                    "Environment": {"AIFACTORY_DEVICE": "cpu" if device == -1 else f"cuda:{device}"},
                },
                "Tags": tags,
            },
            "create_endpoint_config": {
                "EndpointConfigName": name,
                "ProductionVariants": [variant],
                "Tags": tags,
            },
            "create_endpoint": {"EndpointName": name, "EndpointConfigName": name, "Tags": tags},
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def deploy(self, deployment: Deployment, max_live: int | None = None) -> None:
        requests = self.build_requests(deployment)
        name = deployment.name
        if self._describe_endpoint(name) is not None:
            raise Conflict(f"Deployment '{name}' already exists.")
        if max_live is not None:
            live = self._live_before(deployment)
            if len(live) >= max_live:
                raise DeploymentCapReached(max_live, live)  # nothing made yet
        created: list[str] = []  # what this call made, undone in reverse when a later step fails
        steps = (
            ("create_model", self._sagemaker.create_model),
            ("create_endpoint_config", self._sagemaker.create_endpoint_config),
            ("create_endpoint", self._sagemaker.create_endpoint),
        )
        try:
            for operation, call in steps:
                call(**requests[operation])
                created.append(operation)
        except ClientError as error:
            self._roll_back(name, created)
            if _already_exists(error):
                raise Conflict(
                    f"Deployment '{name}' already exists (or a half-removed one does: undeploy it first)."
                ) from error
            if _error_code(error) in ("ResourceLimitExceeded", "ValidationException", "ThrottlingException"):
                raise Unavailable(f"SageMaker cannot deploy '{name}' now: {_error_message(error)}") from error
            raise
        except BaseException:
            self._roll_back(name, created)
            raise
        if max_live is not None:
            try:
                live = self._live_before(deployment)
            except BaseException:
                self._roll_back(name, created)
                raise
            if len(live) >= max_live:  # another deploy made its endpoint first
                self._roll_back(name, created)
                raise DeploymentCapReached(max_live, live)

    def _live_before(self, deployment: Deployment) -> list[Deployment]:
        """Live deployments of its tenant that count before it, oldest first: all of them while
        its endpoint does not exist, else those created before it (ties broken by name)."""
        ranked = []
        for summary, tags in self._ours():
            found = self._deployment(summary["EndpointName"], summary["EndpointStatus"], "", tags)
            if holds_resources(found) and same_tenant(found, deployment):
                ranked.append(((summary["CreationTime"], found.name), found))
        ranked.sort(key=lambda row: row[0])
        mine = next((key for key, found in ranked if found.name == deployment.name), None)
        return [
            found for key, found in ranked if found.name != deployment.name and (mine is None or key < mine)
        ]

    def _roll_back(self, name: str, created: list[str]) -> None:
        undo = {
            "create_endpoint": lambda: self._sagemaker.delete_endpoint(EndpointName=name),
            "create_endpoint_config": lambda: self._sagemaker.delete_endpoint_config(EndpointConfigName=name),
            "create_model": lambda: self._sagemaker.delete_model(ModelName=name),
        }
        for operation in reversed(created):
            try:
                undo[operation]()
            except ClientError:  # the original error is what the caller needs; undeploy cleans up later
                log.exception("could not roll back %s of deployment %s", operation, name)

    def undeploy(self, name: str) -> None:
        if not self._stage_name(name):
            raise NotFound(f"Deployment '{name}' not found.")
        removed = [
            self._delete(lambda: self._sagemaker.delete_endpoint(EndpointName=name)),
            self._delete(lambda: self._sagemaker.delete_endpoint_config(EndpointConfigName=name)),
            self._delete(lambda: self._sagemaker.delete_model(ModelName=name)),
        ]
        if not any(removed):
            raise NotFound(f"Deployment '{name}' not found.")

    @staticmethod
    def _delete(call) -> bool:
        """True when the resource was there; a missing one is what a half-made deployment has."""
        try:
            call()
        except ClientError as error:
            if _is_missing(error):
                return False
            raise
        return True

    # -- reading back ------------------------------------------------------------------------

    def _describe_endpoint(self, name: str) -> dict[str, Any] | None:
        try:
            return self._sagemaker.describe_endpoint(EndpointName=name)
        except ClientError as error:
            if _is_missing(error):
                return None
            raise

    def _tags_of(self, arn: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        for page in self._sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn):
            tags.update({tag["Key"]: tag["Value"] for tag in page.get("Tags", [])})
        return tags

    def _deployment(self, name: str, status: str, failure_reason: str, tags: dict[str, str]) -> Deployment:
        def tag(field: str) -> str:
            return tags.get(self.tags_prefix + field, "")

        def number(field: str, default: int) -> int:
            try:
                return int(tag(field))
            except ValueError:
                return default

        device = number("target_device_id", -1)
        # The stage's instance type for that device (DescribeEndpointConfig would cost a call and
        # a permission per deployment); an endpoint made before the setting changed keeps its own.
        instance_type = self.instance_type(device) or None
        gib = HOSTING_INSTANCE_MEMORY_GIB.get(instance_type or "")
        return Deployment(
            name=name,
            job_id=tag("job_id"),
            epoch=number("epoch", 0),
            target_device_id=device,
            task=tag("task"),
            model_uri=tag("model_uri"),
            status=status,
            failure_reason=failure_reason or "",
            tenant=tag("tenant") or DEFAULT_TENANT_ID,  # endpoints from before tenants: the default's
            instance_type=instance_type,
            memory_bytes=gib * 1024**3 if gib else None,
        )

    def describe(self, name: str) -> Deployment:
        endpoint = self._describe_endpoint(name) if self._stage_name(name) else None
        if endpoint is None:
            raise NotFound(f"Deployment '{name}' not found.")
        return self._deployment(
            name,
            endpoint["EndpointStatus"],
            endpoint.get("FailureReason", ""),
            self._tags_of(endpoint["EndpointArn"]),
        )

    def _ours(self):
        """(endpoint summary, tags) of every endpoint that carries our tags, oldest first."""
        pages = self._sagemaker.get_paginator("list_endpoints").paginate(
            NameContains=self.name_contains, SortBy="CreationTime", SortOrder="Ascending"
        )
        for page in pages:
            for summary in page.get("Endpoints", []):
                if not self._stage_name(summary["EndpointName"]):
                    continue  # NameContains matches anywhere in the name: `xv15-dev-...`
                tags = self._tags_of(summary["EndpointArn"])
                if self.tags_prefix + "job_id" not in tags:
                    continue  # a look-alike name someone else made
                if self.stage is not None and tags.get(stage_names.STAGE_TAG) != self.stage:
                    continue  # our name's shape, not our stage's tag
                yield summary, tags

    def list(self) -> list[Deployment]:
        found = []
        for summary, tags in self._ours():
            reason = ""
            if summary["EndpointStatus"] == DEPLOY_FAILED:  # the summary lacks the reason
                described = self._describe_endpoint(summary["EndpointName"]) or {}
                reason = described.get("FailureReason", "")
            found.append(self._deployment(summary["EndpointName"], summary["EndpointStatus"], reason, tags))
        return found

    # -- inference ---------------------------------------------------------------------------

    def recover(self) -> None:
        """SageMaker keeps endpoints running; nothing to restart."""

    def invoke(
        self, name: str, body: bytes, content_type: str, custom_attributes: str | None = None
    ) -> tuple[int, bytes]:
        """The container's answer. Its own 4xx/5xx come back as (status, its body): SageMaker
        wraps them in ModelError. The endpoint is only described when the call fails, so a
        healthy infer costs one request. A body over InvokeEndpoint's 6 MB is refused here
        (413 naming the limit, the local platform's words) instead of by SageMaker's bare 413.
        `custom_attributes` is InvokeEndpoint's CustomAttributes (the server reads the arguments
        of a raw image there)."""
        check_custom_attributes(custom_attributes)
        if len(body) > INVOKE_ENDPOINT_MAX_BYTES:
            raise invoke_request_too_large(name, len(body))
        if not self._stage_name(name):
            raise NotFound(f"Deployment '{name}' not found.")
        try:
            extra = {"CustomAttributes": custom_attributes} if custom_attributes is not None else {}
            response = self._runtime.invoke_endpoint(
                EndpointName=name, Body=body, ContentType=content_type, Accept=ACCEPT, **extra
            )
        except ClientError as error:
            code = _error_code(error)
            if code == "ModelError":
                status = int(error.response.get("OriginalStatusCode") or 0)
                if 400 <= status <= 599:
                    return status, (error.response.get("OriginalMessage") or "").encode()
                raise Unavailable(
                    f"The model server of deployment '{name}' did not answer: {_error_message(error)}"
                ) from error
            if code == "ValidationError":
                self._raise_not_ready(name, error)
            if code in (
                "ServiceUnavailable",
                "ModelNotReadyException",
                "ThrottlingException",
                "InternalDependencyException",
                "InternalFailure",
            ):
                raise Unavailable(
                    f"SageMaker could not run deployment '{name}' now ({code}): {_error_message(error)}"
                ) from error
            raise
        return 200, response["Body"].read()

    def _raise_not_ready(self, name: str, error: ClientError) -> None:
        """InvokeEndpoint says 'not found' for an endpoint that is still Creating: ask why."""
        endpoint = self._describe_endpoint(name)
        if endpoint is None:
            raise NotFound(f"Deployment '{name}' not found.") from error
        status = endpoint["EndpointStatus"]
        if status == DEPLOY_FAILED:
            raise Unavailable(
                f"Deployment '{name}' failed: {endpoint.get('FailureReason') or 'no reason given'}; "
                "undeploy it and deploy again."
            ) from error
        if status != IN_SERVICE:
            reason = _NOT_READY.get(status, f"is {status}")
            raise Unavailable(f"Deployment '{name}' {reason}.") from error
        raise ValidationError("body", _error_message(error)) from error
