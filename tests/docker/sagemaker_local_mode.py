"""Trains one job in an image with the SageMaker Python SDK's local mode.

Runs in its own virtualenv (`make docker-sagemaker-sdk`: the SDK 2.x pins, numpy<2 among
them, do not fit the project's), so the test drives it as a child process:

    python sagemaker_local_mode.py IMAGE CONFIG_DIR DATA_DIR OUTPUT_DIR

`Estimator(instance_type="local")` is the SDK's own `docker run <image> train` (through
docker compose): it writes /opt/ml/input/config, mounts each `file://` channel under
/opt/ml/input/data, and packs /opt/ml/model into OUTPUT_DIR/<job>/model.tar.gz. No AWS
account is used: `file://` channels and output need none, and the session reaches nothing
outside this machine (sdk_session.py: telemetry off, AWS endpoints on loopback).
"""

from __future__ import annotations

import json
import sys

from sagemaker.estimator import Estimator
from sdk_session import offline_session


def main(image: str, config_dir: str, data_dir: str, output_dir: str) -> int:
    session = offline_session()
    estimator = Estimator(  # no hyper-parameters: the trainer reads them from job.json only
        image_uri=image,
        role="arn:aws:iam::123456789012:role/aifactory-local",
        instance_count=1,
        instance_type="local",
        output_path=f"file://{output_dir}",
        sagemaker_session=session,
        base_job_name="aifactory-sdk",
    )
    estimator.fit({"config": f"file://{config_dir}", "training": f"file://{data_dir}"}, wait=True, logs=True)
    print(json.dumps({"job_name": estimator.latest_training_job.name, "model_data": estimator.model_data}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
