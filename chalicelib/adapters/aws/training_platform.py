"""SageMaker training jobs for our trainer image.

One `TrainingRequest` becomes one CreateTrainingJob call laid out the way the trainer
expects (docs/contracts.md): the resolved job travels as `job.json` in the `config`
channel, the v1.5 `data_dir` as the `training` channel, checkpoints sync with the job's
artifact prefix. Nothing is added beyond the request: secrets stay out of
hyper-parameters, tags and environment because DescribeTrainingJob shows them all.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import stage_names
from chalicelib.errors import Conflict, NotFound, Unavailable, ValidationError
from chalicelib.ports import CapacityError, Hardware, TrainingDescription, TrainingRequest
from contracts import layout, metrics, timeutil

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
# SageMaker's ceiling for a warm pool's KeepAlivePeriodInSeconds (botocore's model: 0 to 21600).
MAX_KEEP_ALIVE_S = 21600
# CreateTrainingJob's error for "not now" (an account quota of instances or jobs is used up)
# rather than "never": the job waits in the API's queue (chalicelib.services.jobs).
CAPACITY_ERRORS = frozenset({"ResourceLimitExceeded"})
# SageMaker's ceiling for MaxRuntimeInSeconds and MaxWaitTimeInSeconds: 28 days.
MAX_RUNTIME_LIMIT_S = 28 * 24 * 3600
CONFIG_CHANNEL = "config"
DATA_CHANNEL = "training"
JOB_FILE = layout.JOB_FILE

DEFAULT_METRIC_NAMES = metrics.NAMES


def default_metric_definitions(names=DEFAULT_METRIC_NAMES) -> list[dict[str, str]]:
    """Built from the names the trainers print (contracts.metrics): one list for both sides."""
    return metrics.metric_definitions(tuple(names))


# GPUs per SageMaker instance type: (count, name, memory in MiB).
INSTANCE_GPUS = {
    "ml.p3.2xlarge": (1, "Tesla V100-SXM2-16GB", 16160),
    "ml.p3.8xlarge": (4, "Tesla V100-SXM2-16GB", 16160),
    "ml.p3.16xlarge": (8, "Tesla V100-SXM2-16GB", 16160),
    "ml.p3dn.24xlarge": (8, "Tesla V100-SXM2-32GB", 32510),
    "ml.g4dn.xlarge": (1, "Tesla T4", 15360),
    "ml.g4dn.2xlarge": (1, "Tesla T4", 15360),
    "ml.g4dn.4xlarge": (1, "Tesla T4", 15360),
    "ml.g4dn.8xlarge": (1, "Tesla T4", 15360),
    "ml.g4dn.12xlarge": (4, "Tesla T4", 15360),
    "ml.g4dn.16xlarge": (1, "Tesla T4", 15360),
    "ml.g5.xlarge": (1, "NVIDIA A10G", 23028),
    "ml.g5.2xlarge": (1, "NVIDIA A10G", 23028),
    "ml.g5.4xlarge": (1, "NVIDIA A10G", 23028),
    "ml.g5.8xlarge": (1, "NVIDIA A10G", 23028),
    "ml.g5.12xlarge": (4, "NVIDIA A10G", 23028),
    "ml.g5.16xlarge": (1, "NVIDIA A10G", 23028),
    "ml.g5.24xlarge": (4, "NVIDIA A10G", 23028),
    "ml.g5.48xlarge": (8, "NVIDIA A10G", 23028),
    "ml.g6.xlarge": (1, "NVIDIA L4", 23034),
    "ml.g6.12xlarge": (4, "NVIDIA L4", 23034),
    "ml.g6.48xlarge": (8, "NVIDIA L4", 23034),
    "ml.p4d.24xlarge": (8, "NVIDIA A100-SXM4-40GB", 40960),
    "ml.p4de.24xlarge": (8, "NVIDIA A100-SXM4-80GB", 81920),
    "ml.p5.48xlarge": (8, "NVIDIA H100 80GB HBM3", 81559),
    "ml.p5e.48xlarge": (8, "NVIDIA H200", 143771),
}


def model_artifact_key(artifact_prefix_key: str, training_job_name: str) -> str:
    """Where SageMaker leaves model.tar.gz for S3OutputPath `<artifacts>/output`."""
    return f"{artifact_prefix_key.strip('/')}/{layout.model_output(training_job_name)}"


def _format_time(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return timeutil.fmt(value)
    return str(value)


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _error_message(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Message", "")


def _looks_missing(error: ClientError) -> bool:
    message = _error_message(error).lower()
    return "not found" in message or "could not find" in message or "does not exist" in message


class SageMakerTrainingPlatform:
    """ports.TrainingPlatform on SageMaker.

    `spot` (the stage's default) or a request's `use_spot` turns on managed spot training;
    SageMaker then waits up to the request's `max_wait_s` or the stage's `max_wait_s`
    (default twice the request's runtime) for capacity, and the trainer resumes from
    `/opt/ml/checkpoints` after an interruption. A request's `keep_alive_s` keeps its
    instances in a warm pool (ResourceConfig.KeepAlivePeriodInSeconds). `vpc_config` is passed through as
    SageMaker's VpcConfig (`{"SecurityGroupIds": [...], "Subnets": [...]}`).

    `stage` (an aws stage's name; None in tests of the requests alone) keeps the platform to its
    stage's jobs: it starts only names of the stage (`aif-<stage>-`, `v15-<stage>-`), tags each
    job `aifactory:stage`, and answers another stage's name as not found, never describing or
    stopping it (the API role's IAM patterns refuse it too).
    """

    def __init__(
        self,
        sagemaker_client,
        role_arn: str,
        *,
        metric_definitions: list[dict] | None = None,
        spot: bool = False,
        vpc_config: dict[str, Any] | None = None,
        max_wait_s: int | None = None,
        instance_type: str = "",
        logs_client=None,
        stage: str | None = None,
    ):
        if not role_arn:
            raise ValueError(
                "SageMakerTrainingPlatform needs an execution role ARN (AIFACTORY_SAGEMAKER_ROLE_ARN)."
            )
        self.stage = stage_names.check_stage(stage) if stage is not None else None
        self._sagemaker = sagemaker_client
        self._logs = logs_client
        self.role_arn = role_arn
        self.metric_definitions = (
            default_metric_definitions() if metric_definitions is None else list(metric_definitions)
        )
        self.spot = spot
        self.vpc_config = vpc_config
        self.max_wait_s = max_wait_s
        self.instance_type = instance_type  # what v1.5 jobs train on: the fleet `environment` reports

    def check_image(self, image: str) -> None:
        """SageMaker pulls any ECR image the role may read; the allow-list is the request's business."""

    def recover(self) -> None:
        """SageMaker settles its own jobs; EventBridge reports them."""

    def hardware(self) -> Hardware:
        count, name, memory = INSTANCE_GPUS.get(self.instance_type, (0, "", 0))
        return Hardware([{"id": i, "name": name, "memory_in_mb": memory} for i in range(count)], None)

    def live_devices(self) -> list[dict[str, Any]] | None:
        return None  # the Lambda has no GPUs: readings come from the running jobs' heartbeats

    def _ours(self, training_job_name: str) -> bool:
        return self.stage is None or stage_names.belongs_to(training_job_name, self.stage)

    def _not_found(self, training_job_name: str) -> NotFound:
        return NotFound(f"Training job '{training_job_name}' not found.")

    def build_request(self, request: TrainingRequest) -> dict[str, Any]:
        """The exact CreateTrainingJob parameters (also what tests compare against)."""
        if not self._ours(request.training_job_name):
            raise ValidationError(
                "job_name",
                f"'{request.training_job_name}' is not a job name of stage '{self.stage}' "
                f"(they start with {' or '.join(stage_names.name_prefixes(self.stage))})",
            )
        artifacts = request.artifact_uri.rstrip("/")
        if not artifacts.startswith("s3://"):
            raise ValidationError(
                "artifact_uri", f"SageMaker needs an s3:// artifact location, got '{artifacts}'."
            )
        not_strings = sorted(k for k, v in request.hyperparameters.items() if not isinstance(v, str))
        if not_strings:
            raise ValueError(
                f"SageMaker hyper-parameters must be strings; not strings: {', '.join(not_strings)}"
            )

        channels = [
            {
                "ChannelName": CONFIG_CHANNEL,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"{artifacts}/{JOB_FILE}",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "application/json",
            }
        ]
        if request.data_uri:
            if not request.data_uri.startswith("s3://"):
                raise ValidationError(
                    "data_dir",
                    f"SageMaker training reads data from S3; give an s3:// prefix, not '{request.data_uri}'.",
                )
            channels.append(
                {
                    "ChannelName": DATA_CHANNEL,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": request.data_uri,
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                }
            )

        spot = bool(self.spot or request.use_spot)
        stopping = self._stopping_condition(int(request.max_runtime_s), spot, request.max_wait_s)
        resources: dict[str, Any] = {
            "InstanceType": request.instance_type,
            "InstanceCount": int(request.instance_count),
            "VolumeSizeInGB": int(request.volume_size_gb),
        }
        keep_alive = int(request.keep_alive_s or 0)
        if keep_alive:
            if not 0 < keep_alive <= MAX_KEEP_ALIVE_S:
                raise ValidationError(
                    "keep_alive",
                    f"{keep_alive} s is outside SageMaker's warm pool limit (0 to {MAX_KEEP_ALIVE_S} s)",
                )
            if spot:
                raise ValidationError(
                    "keep_alive", "warm pools cannot be used with managed spot training; choose one"
                )
            resources["KeepAlivePeriodInSeconds"] = keep_alive
        params: dict[str, Any] = {
            "TrainingJobName": request.training_job_name,
            "AlgorithmSpecification": {
                "TrainingImage": request.image,
                "TrainingInputMode": "File",
                "MetricDefinitions": self.metric_definitions,
            },
            "RoleArn": self.role_arn,
            "HyperParameters": dict(request.hyperparameters),
            "InputDataConfig": channels,
            "OutputDataConfig": {"S3OutputPath": f"{artifacts}/{layout.OUTPUT_PREFIX}"},
            "ResourceConfig": resources,
            "StoppingCondition": stopping,
            "CheckpointConfig": {"S3Uri": f"{artifacts}/checkpoints", "LocalPath": CHECKPOINT_LOCAL_PATH},
        }
        if spot:
            params["EnableManagedSpotTraining"] = True
        if self.vpc_config:
            params["VpcConfig"] = self.vpc_config
        tags = dict(request.tags)
        if self.stage is not None:
            tags[stage_names.STAGE_TAG] = self.stage
        if tags:
            params["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        return params

    def _stopping_condition(self, runtime: int, spot: bool, max_wait_s: int | None) -> dict[str, int]:
        """MaxRuntime within SageMaker's 28 days (a 400 beyond, before anything is created); with
        spot, MaxWait (default twice the runtime) between the runtime and the same limit."""
        if not 1 <= runtime <= MAX_RUNTIME_LIMIT_S:
            raise ValidationError(
                "max_runtime",
                f"{runtime} s is outside SageMaker's limits for MaxRuntimeInSeconds "
                f"(1 to {MAX_RUNTIME_LIMIT_S} s, 28 days); lower AIFACTORY_MAX_RUNTIME_S",
            )
        stopping = {"MaxRuntimeInSeconds": runtime}
        if spot:
            max_wait = self.max_wait_s if max_wait_s is None else max_wait_s
            if max_wait is None:
                wait = min(2 * runtime, MAX_RUNTIME_LIMIT_S)
            elif runtime <= max_wait <= MAX_RUNTIME_LIMIT_S:
                wait = int(max_wait)
            else:
                raise ValidationError(
                    "max_wait",
                    f"{max_wait} s must lie between MaxRuntimeInSeconds ({runtime} s) and "
                    f"SageMaker's limit of {MAX_RUNTIME_LIMIT_S} s (28 days)",
                )
            stopping["MaxWaitTimeInSeconds"] = wait
        return stopping

    def start(self, request: TrainingRequest) -> None:
        params = self.build_request(request)
        try:
            self._sagemaker.create_training_job(**params)
        except ClientError as error:
            code = _error_code(error)
            if code == "ResourceInUse":
                raise Conflict(
                    f"A training job named '{request.training_job_name}' already exists."
                ) from error
            if code in CAPACITY_ERRORS:
                raise CapacityError(f"{code}: {_error_message(error)}") from error
            raise

    LOG_GROUP = "/aws/sagemaker/TrainingJobs"

    def logs(self, training_job_name: str, offset: int, limit: int) -> tuple[list[str], bool]:
        """The job's CloudWatch streams (`<name>/algo-N-...`), host by host, as one numbered list of lines."""
        if self._logs is None:
            raise Unavailable("This stage has no CloudWatch Logs client configured.")
        if not self._ours(training_job_name):
            raise self._not_found(training_job_name)
        streams = []
        paginator = self._logs.get_paginator("describe_log_streams")
        try:
            for page in paginator.paginate(
                logGroupName=self.LOG_GROUP, logStreamNamePrefix=f"{training_job_name}/"
            ):
                streams.extend(item["logStreamName"] for item in page.get("logStreams", []))
        except ClientError as error:
            if _error_code(error) != "ResourceNotFoundException":
                raise
        lines: list[str] = []
        seen = 0
        for stream in sorted(streams):
            token = None
            while True:
                kwargs = {"nextToken": token} if token else {}
                page = self._logs.get_log_events(
                    logGroupName=self.LOG_GROUP, logStreamName=stream, startFromHead=True, **kwargs
                )
                for event in page.get("events", []):
                    if seen >= offset:
                        lines.append(event["message"].rstrip("\n"))
                        if len(lines) >= limit:
                            return lines, True
                    seen += 1
                if not page.get("events") or page.get("nextForwardToken") in (None, token):
                    break
                token = page["nextForwardToken"]
        status = self.describe(training_job_name).status
        return lines, status not in ("Completed", "Failed", "Stopped")

    def describe(self, training_job_name: str) -> TrainingDescription:
        if not self._ours(training_job_name):
            raise self._not_found(training_job_name)
        try:
            job = self._sagemaker.describe_training_job(TrainingJobName=training_job_name)
        except ClientError as error:
            if _error_code(error) in ("ValidationException", "ResourceNotFound"):
                raise NotFound(f"Training job '{training_job_name}' not found.") from error
            raise
        return TrainingDescription(
            status=job["TrainingJobStatus"],
            secondary_status=job.get("SecondaryStatus", ""),
            failure_reason=job.get("FailureReason", ""),
            creation_time=_format_time(job.get("CreationTime")),
            end_time=_format_time(job.get("TrainingEndTime")),
            billable_seconds=job.get("BillableTimeInSeconds"),
        )

    def stop(self, training_job_name: str) -> None:
        if not self._ours(training_job_name):
            raise self._not_found(training_job_name)
        try:
            self._sagemaker.stop_training_job(TrainingJobName=training_job_name)
        except ClientError as error:
            if _error_code(error) == "ValidationException":
                if _looks_missing(error):
                    raise NotFound(f"Training job '{training_job_name}' not found.") from error
                # The AI Factory API answers with botocore's own text for a finished job.
                raise Conflict(str(error)) from error
            raise
