"""Serves one checkpoint in an image with the SageMaker Python SDK's local mode and predicts.

Runs in the SDK's own virtualenv (`make docker-sagemaker-sdk`), driven by
tests/docker/test_inference_image.py as a child process:

    python sagemaker_local_serving.py IMAGE MODEL_DIR IMAGE_FILE PORT

`Model(..., predictor_cls=Predictor).deploy(instance_type="local")` is the SDK's own
`docker run <image> serve` (through docker compose) with MODEL_DIR at /opt/ml/model and the
container's 8080 on PORT; it waits for `GET /ping`, then `predict` POSTs the image's bytes to
`/invocations` as SageMaker's InvokeEndpoint does. The endpoint is deleted (the container
stopped) whatever happens. Prints the answer as JSON on its last line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sagemaker.deserializers import JSONDeserializer
from sagemaker.model import Model
from sagemaker.predictor import Predictor
from sagemaker.serializers import IdentitySerializer
from sdk_session import offline_session


def main(image: str, model_dir: str, image_file: str, port: str) -> int:
    session = offline_session(int(port))
    model = Model(
        image_uri=image,
        model_data=f"file://{Path(model_dir).resolve()}",
        role="arn:aws:iam::123456789012:role/aifactory-local",
        predictor_cls=Predictor,
        env={"AIFACTORY_DEVICE": "cpu"},
        sagemaker_session=session,
    )
    predictor = model.deploy(
        initial_instance_count=1,
        instance_type="local",
        serializer=IdentitySerializer(content_type="image/jpeg"),
        deserializer=JSONDeserializer(),
    )
    try:
        answer = predictor.predict(Path(image_file).read_bytes())
    finally:
        predictor.delete_endpoint()
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
