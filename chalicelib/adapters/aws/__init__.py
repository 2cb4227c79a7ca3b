"""AWS adapters for the ports (`chalicelib.ports`): DynamoDB, S3, SageMaker, Secrets Manager.

Each adapter receives its boto3 client from the wiring, so importing this package never
touches AWS and tests can hand in moto or Stubber-backed clients.
"""

from chalicelib.adapters.aws.artifact_store import S3ArtifactStore, make_s3_client
from chalicelib.adapters.aws.job_store import DynamoJobStore
from chalicelib.adapters.aws.secret_store import SecretsManagerStore
from chalicelib.adapters.aws.training_platform import SageMakerTrainingPlatform, model_artifact_key

__all__ = [
    "DynamoJobStore",
    "S3ArtifactStore",
    "SageMakerTrainingPlatform",
    "SecretsManagerStore",
    "make_s3_client",
    "model_artifact_key",
]
