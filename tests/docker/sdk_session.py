"""A SageMaker Python SDK local-mode session that reaches nothing outside this machine.

Imported by the scripts the tests run in the SDK's own virtualenv (sagemaker_local_mode.py,
sagemaker_local_serving.py; `make docker-sagemaker-sdk`). The SDK sends telemetry to an AWS
host after each decorated call unless `SageMaker.PythonSDK.Modules.TelemetryOptOut` is set in
its config: the session is given that config directly (`sagemaker_config`), and the tests also
point the SDK's config files at the same opt-out (SAGEMAKER_USER_CONFIG_OVERRIDE,
SAGEMAKER_ADMIN_CONFIG_OVERRIDE), every AWS endpoint at a closed loopback port
(AWS_ENDPOINT_URL) and HTTPS at a loopback proxy that is not there (`sdk_env` in
conftest.py). Credentials are dummies; local mode needs none.
"""

from __future__ import annotations

import boto3
from sagemaker.local import LocalSession

TELEMETRY_OPT_OUT = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}


def offline_session(serving_port: int | None = None) -> LocalSession:
    boto_session = boto3.Session(
        region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    )
    session = LocalSession(boto_session=boto_session, sagemaker_config=TELEMETRY_OPT_OUT)
    session.config = {"local": {"local_code": True}}
    if serving_port:
        session.config["local"]["serving_port"] = serving_port  # the compose file's host port
        session.sagemaker_runtime_client.serving_port = serving_port  # read at session start
    return session
