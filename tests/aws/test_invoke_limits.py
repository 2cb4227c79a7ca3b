"""Issue 17: the SageMaker hosting adapter refuses a body over InvokeEndpoint's 6 MB itself,
with the local platform's words (413 naming the limit), instead of sending it to be refused."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.adapters.aws.hosting_platform import SageMakerHostingPlatform
from chalicelib.aws_limits import INVOKE_ENDPOINT_MAX_BYTES, PayloadTooLarge
from tests.aws.conftest import REGION

NAME = "v15-20261122-194501-8c0c1d2e-e3-gpu0"


def test_a_body_over_6_mb_is_refused_before_invoke_endpoint():
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    platform = SageMakerHostingPlatform(
        sagemaker,
        runtime,
        "arn:aws:iam::123456789012:role/r",
        image="aifactory-inference:1",
        cpu_instance_type="ml.m5.large",
        gpu_instance_type="ml.g5.xlarge",
    )
    with Stubber(runtime) as runtime_stub, Stubber(sagemaker):  # any call would fail: none is queued
        with pytest.raises(PayloadTooLarge) as refused:
            platform.invoke(NAME, b"x" * (INVOKE_ENDPOINT_MAX_BYTES + 1), "application/json")
        runtime_stub.assert_no_pending_responses()
    assert refused.value.status_code == 413
    assert "SageMaker's InvokeEndpoint takes at most 6,291,456 bytes (6 MB)" in refused.value.message


def platform_with(runtime, sagemaker) -> SageMakerHostingPlatform:
    return SageMakerHostingPlatform(
        sagemaker,
        runtime,
        "arn:aws:iam::123456789012:role/r",
        image="aifactory-inference:1",
        cpu_instance_type="ml.m5.large",
        gpu_instance_type="ml.g5.xlarge",
    )


def test_an_image_goes_raw_with_the_arguments_in_custom_attributes():
    """infer's request as InvokeEndpoint takes it: the image's bytes, its media type, and the
    arguments in CustomAttributes (botocore validates the request against its model)."""
    import io

    from botocore.response import StreamingBody

    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    platform = platform_with(runtime, sagemaker)
    attributes = "lower_prob_thresh=0.5,upper_prob_thresh=1.0,returns_images=false"
    answer = b'{"result": "OK"}'
    with Stubber(runtime) as runtime_stub:
        runtime_stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(answer), len(answer)), "ContentType": "application/json"},
            {
                "EndpointName": NAME,
                "Body": b"\xff\xd8\xffjpeg",
                "ContentType": "image/jpeg",
                "Accept": "application/json",
                "CustomAttributes": attributes,
            },
        )
        assert platform.invoke(NAME, b"\xff\xd8\xffjpeg", "image/jpeg", attributes) == (200, answer)
        runtime_stub.assert_no_pending_responses()


@pytest.mark.parametrize("attributes", ["a=" + "1" * 1023, "category=chat\u00e9"])
def test_custom_attributes_over_1024_characters_or_not_ascii_are_refused_before_the_call(attributes):
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    platform = platform_with(runtime, boto3.client("sagemaker", region_name=REGION))
    with Stubber(runtime) as runtime_stub, pytest.raises(ValueError, match="CustomAttributes must be ASCII"):
        platform.invoke(NAME, b"\xff\xd8\xffjpeg", "image/jpeg", attributes)
    runtime_stub.assert_no_pending_responses()
