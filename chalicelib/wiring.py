"""Builds the adapters the stage asks for. Routes and services get them from `services()`."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from chalicelib import settings
from chalicelib.ports import ArtifactStore, JobStore, SecretStore, TrainingPlatform


@dataclass
class Services:
    jobs: JobStore
    artifacts: ArtifactStore
    platform: TrainingPlatform
    secrets: SecretStore


def _local() -> Services:
    from chalicelib.adapters.local.artifact_store import DirectoryArtifactStore
    from chalicelib.adapters.local.job_store import SqliteJobStore
    from chalicelib.adapters.local.secret_store import FileSecretStore
    from chalicelib.adapters.local.training_platform import LocalTrainingPlatform

    home = settings.home()
    return Services(
        jobs=SqliteJobStore(home / "jobs.sqlite3"),
        artifacts=DirectoryArtifactStore(home / "artifacts"),
        platform=LocalTrainingPlatform(
            home,
            max_concurrent=settings.max_concurrent_jobs(),
            docker_enabled=settings.docker_enabled,
            stop_grace_seconds=settings.stop_grace_seconds(),
        ),
        secrets=FileSecretStore(home / "secrets"),
    )


def _aws() -> Services:
    import boto3

    from chalicelib.adapters.aws.artifact_store import S3ArtifactStore, make_s3_client
    from chalicelib.adapters.aws.job_store import DynamoJobStore
    from chalicelib.adapters.aws.secret_store import SecretsManagerStore
    from chalicelib.adapters.aws.training_platform import SageMakerTrainingPlatform

    return Services(
        jobs=DynamoJobStore(boto3.client("dynamodb"), settings.table_name()),
        artifacts=S3ArtifactStore(make_s3_client(), settings.bucket(), settings.artifact_prefix()),
        platform=SageMakerTrainingPlatform(
            boto3.client("sagemaker"), settings.sagemaker_role_arn(), spot=settings.spot_training()
        ),
        secrets=SecretsManagerStore(boto3.client("secretsmanager")),
    )


@functools.cache
def services() -> Services:
    return _local() if settings.is_local() else _aws()


def reset() -> None:
    services.cache_clear()
