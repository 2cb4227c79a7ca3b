"""Builds the adapters the stage asks for: the composition every entry point shares.

Entry points (the Chalice app, the local server, the job runner) call `adapters()`;
services and routes receive the result and never import an adapter themselves.
"""

from __future__ import annotations

import functools

from chalicelib import settings
from chalicelib.ai_factory import service as ai_factory
from chalicelib.ports import Adapters


def _stage_secret(secret_id: str) -> str:
    """Stage secrets (signing and model-link keys) live in Secrets Manager in every stage
    that names one; imported on first use so the local stage never loads boto3 for it."""
    from chalicelib.adapters.aws.secret_store import stage_secret

    return stage_secret(secret_id)


settings.read_secrets_with(_stage_secret)
# Each API surface registers its own part of the job lifecycle (services.events.on_job_end);
# the v1.5 surface has nothing to do when a job ends (monitor reads the settled record).
ai_factory.register_hooks()


def _local() -> Adapters:
    from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
    from chalicelib.adapters.local.data_store import LocalDataStore
    from chalicelib.adapters.local.hosting_platform import LocalHostingPlatform
    from chalicelib.adapters.local.job_store import SqliteJobStore
    from chalicelib.adapters.local.secret_store import FileSecretStore
    from chalicelib.adapters.local.tenant_store import KeysFileTenantStore
    from chalicelib.adapters.local.tool_runner import LocalToolRunner
    from chalicelib.adapters.local.training_platform import LocalTrainingPlatform
    from chalicelib.aws_limits import INVOKE_ENDPOINT_MAX_BYTES

    config = settings.current()
    platform = LocalTrainingPlatform(
        config.home,
        max_concurrent=config.max_concurrent_jobs,
        docker_enabled=lambda: config.docker_enabled,
        stop_grace_seconds=config.stop_grace_seconds,
    )
    return Adapters(
        jobs=SqliteJobStore(config.home / "jobs.sqlite3"),
        artifacts=DirectoryArtifactStore(config.home / "artifacts"),
        platform=platform,
        secrets=FileSecretStore(config.home / "secrets"),
        hosting=LocalHostingPlatform(
            config.home,
            device_count=lambda: len(platform.hardware().devices),
            payload_limit=None if config.relax_aws_limits else INVOKE_ENDPOINT_MAX_BYTES,
        ),
        tools=LocalToolRunner(DirectoryArtifactStore(config.home / "artifacts")),  # answers go there
        tenants=KeysFileTenantStore(config.home / "tenants.json", lambda: config.api_key),
        data=LocalDataStore(),
        settings=config,
    )


def _aws() -> Adapters:
    import boto3
    from botocore.config import Config

    from chalicelib.adapters.aws.artifact_store import S3ArtifactStore, make_s3_client
    from chalicelib.adapters.aws.data_store import S3DataStore
    from chalicelib.adapters.aws.hosting_platform import SageMakerHostingPlatform
    from chalicelib.adapters.aws.job_store import DynamoJobStore
    from chalicelib.adapters.aws.secret_store import SecretsManagerStore
    from chalicelib.adapters.aws.tenant_store import ApiGatewayTenantStore
    from chalicelib.adapters.aws.tool_runner import LambdaToolRunner
    from chalicelib.adapters.aws.training_platform import SageMakerTrainingPlatform

    config = settings.current()
    return Adapters(
        jobs=DynamoJobStore(boto3.client("dynamodb"), config.table_name),
        artifacts=S3ArtifactStore(make_s3_client(), config.bucket, config.artifact_prefix),
        platform=SageMakerTrainingPlatform(
            boto3.client("sagemaker"),
            config.sagemaker_role_arn,
            spot=config.spot_training,
            instance_type=config.v15_instance_type,
            logs_client=boto3.client("logs"),
            stage=config.stage,
        ),
        secrets=SecretsManagerStore(boto3.client("secretsmanager"), f"{config.secret_prefix}jobs/"),
        data=S3DataStore(make_s3_client()),
        hosting=SageMakerHostingPlatform(
            boto3.client("sagemaker"),
            # One attempt: SageMaker ends an invocation at 60 s, and a retry would outlive the API's own timeout.
            boto3.client(
                "sagemaker-runtime", config=Config(read_timeout=60, retries={"total_max_attempts": 1})
            ),
            config.endpoint_role_arn,  # the endpoints' own role, not the training jobs'
            image=config.inference_image,
            cpu_instance_type=config.hosting_cpu_instance_type,
            gpu_instance_type=config.hosting_gpu_instance_type,
            stage=config.stage,
            gpu_ami_version=config.hosting_gpu_ami_version,
        ),
        tools=LambdaToolRunner(  # an asynchronous invocation: Lambda answers 202 at once
            boto3.client(
                "lambda", config=Config(connect_timeout=5, read_timeout=5, retries={"total_max_attempts": 2})
            ),
            config.tools_function,
            S3ArtifactStore(make_s3_client(), config.bucket, config.artifact_prefix),  # answers go there
        )
        if config.tools_function
        else None,
        tenants=ApiGatewayTenantStore(boto3.client("apigateway"), config.stage),
        settings=config,
    )


@functools.cache
def adapters() -> Adapters:
    return _local() if settings.current().is_local else _aws()


def reset() -> None:
    adapters.cache_clear()
