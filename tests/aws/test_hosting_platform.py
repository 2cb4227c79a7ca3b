from __future__ import annotations

import json

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from chalicelib.adapters.aws.hosting_platform import SageMakerHostingPlatform
from chalicelib.errors import Conflict, NotFound, Unavailable, ValidationError
from chalicelib.ports import CREATING, DEPLOY_FAILED, IN_SERVICE, Deployment, DeploymentCapReached
from tests.aws import service_model
from tests.aws.conftest import REGION

ROLE = "arn:aws:iam::123456789012:role/aifactory-sagemaker-dev"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/aifactory-inference:1.0.0"
CHECKPOINT = "s3://aifactory-artifacts/dev/jobs/20261122194501-8c0c/checkpoints/epoch-3"
NAME = "v15-20261122-194501-8c0c1d2e-e3-gpu0"
ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{NAME}"
RESULTS_URL = "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results"


def make_deployment(**overrides) -> Deployment:
    fields = dict(
        name=NAME,
        job_id="20261122194501-8c0c2f1e-4b4d-4c0b-9d7e-2a1f5e3c9b10",
        epoch=3,
        target_device_id=0,
        task="detection",
        model_uri=CHECKPOINT,
    )
    fields.update(overrides)
    return Deployment(**fields)


def expected_tags(deployment: Deployment) -> list[dict[str, str]]:
    return [
        {"Key": "aifactory:job_id", "Value": deployment.job_id},
        {"Key": "aifactory:epoch", "Value": str(deployment.epoch)},
        {"Key": "aifactory:target_device_id", "Value": str(deployment.target_device_id)},
        {"Key": "aifactory:task", "Value": deployment.task},
        {"Key": "aifactory:model_uri", "Value": deployment.model_uri},
        {"Key": "aifactory:tenant", "Value": deployment.tenant},  # whose: deploy/list and the cap
    ]


def make_platform(sagemaker, runtime, **overrides) -> SageMakerHostingPlatform:
    # moto's endpoint configs know an older list of instance types: g4dn rather than g5.
    options = dict(image=IMAGE, cpu_instance_type="ml.m5.large", gpu_instance_type="ml.g4dn.xlarge")
    options.update(overrides)
    return SageMakerHostingPlatform(sagemaker, runtime, ROLE, **options)


@pytest.fixture
def sent(sagemaker, runtime):
    """Every request made through moto, checked against botocore's model: (sagemaker, runtime)."""
    yield service_model.record_requests(sagemaker), service_model.record_requests(runtime)


@pytest.fixture
def runtime(aws):
    yield boto3.client("sagemaker-runtime", region_name=REGION)


@pytest.fixture
def platform(sagemaker, runtime, sent):
    yield make_platform(sagemaker, runtime)


@pytest.fixture
def offline():
    """Real clients that only ever talk to Stubbers (Stubber validates every request too)."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    service_model.record_requests(sagemaker)
    service_model.record_requests(runtime)
    with Stubber(sagemaker) as sagemaker_stub, Stubber(runtime) as runtime_stub:
        yield make_platform(sagemaker, runtime), sagemaker_stub, runtime_stub
        sagemaker_stub.assert_no_pending_responses()
        runtime_stub.assert_no_pending_responses()


def fail_once(client, operation: str, code: str, message: str) -> None:
    """The next `operation` call fails with `code` before it reaches moto."""
    calls = []

    def refuse(**_):
        if calls:
            return None
        calls.append(1)
        return AWSResponse("https://sagemaker", 400, {}, None), {"Error": {"Code": code, "Message": message}}

    client.meta.events.register(f"before-call.sagemaker.{operation}", refuse)


def our_resources(sagemaker) -> dict[str, list[str]]:
    return {
        "models": [m["ModelName"] for m in sagemaker.list_models()["Models"]],
        "configs": [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]],
        "endpoints": [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]],
    }


# -- deploy ------------------------------------------------------------------------------


def test_deploy_creates_model_config_and_endpoint_of_one_name(platform, sagemaker):
    platform.deploy(make_deployment())
    assert our_resources(sagemaker) == {"models": [NAME], "configs": [NAME], "endpoints": [NAME]}
    container = sagemaker.describe_model(ModelName=NAME)["PrimaryContainer"]
    assert container["Image"] == IMAGE
    assert container["ModelDataSource"] == {
        "S3DataSource": {"S3Uri": CHECKPOINT + "/", "S3DataType": "S3Prefix", "CompressionType": "None"}
    }
    assert container["Environment"] == {"AIFACTORY_DEVICE": "cuda:0"}
    (variant,) = sagemaker.describe_endpoint_config(EndpointConfigName=NAME)["ProductionVariants"]
    assert (variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        NAME,
        "ml.g4dn.xlarge",
        1,
    )
    assert sagemaker.describe_endpoint(EndpointName=NAME)["EndpointConfigName"] == NAME


def test_deploy_tags_all_three_with_the_deployment(platform, sagemaker):
    deployment = make_deployment()
    platform.deploy(deployment)
    arns = [
        sagemaker.describe_model(ModelName=NAME)["ModelArn"],
        sagemaker.describe_endpoint_config(EndpointConfigName=NAME)["EndpointConfigArn"],
        sagemaker.describe_endpoint(EndpointName=NAME)["EndpointArn"],
    ]
    for arn in arns:
        assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == expected_tags(deployment), arn


def test_cpu_target_deploys_on_the_cpu_instance_type(platform, sagemaker):
    platform.deploy(make_deployment(name="v15-x-e1-cpu", target_device_id=-1))
    (variant,) = sagemaker.describe_endpoint_config(EndpointConfigName="v15-x-e1-cpu")["ProductionVariants"]
    assert variant["InstanceType"] == "ml.m5.large"
    container = sagemaker.describe_model(ModelName="v15-x-e1-cpu")["PrimaryContainer"]
    assert container["Environment"] == {"AIFACTORY_DEVICE": "cpu"}


def test_deploy_sends_exactly_these_requests_and_does_not_wait(offline):
    platform, stub, _ = offline
    deployment = make_deployment()
    tags = expected_tags(deployment)
    stub.add_client_error(
        "describe_endpoint",
        service_error_code="ValidationException",
        service_message=f'Could not find endpoint "{ENDPOINT_ARN}".',
        expected_params={"EndpointName": NAME},
    )
    stub.add_response(
        "create_model",
        {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/x"},
        expected_params={
            "ModelName": NAME,
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {
                "Image": IMAGE,
                "ModelDataSource": {
                    "S3DataSource": {
                        "S3Uri": CHECKPOINT + "/",
                        "S3DataType": "S3Prefix",
                        "CompressionType": "None",
                    }
                },
                "Environment": {"AIFACTORY_DEVICE": "cuda:0"},
            },
            "Tags": tags,
        },
    )
    stub.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/x"},
        expected_params={
            "EndpointConfigName": NAME,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": NAME,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.g4dn.xlarge",
                    "InitialVariantWeight": 1.0,
                    # a GPU endpoint's AMI: NVIDIA driver 580, for the image's CUDA 12.8/13 build
                    "InferenceAmiVersion": "al2023-ami-sagemaker-inference-gpu-4-1",
                }
            ],
            "Tags": tags,
        },
    )
    stub.add_response(
        "create_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        expected_params={"EndpointName": NAME, "EndpointConfigName": NAME, "Tags": tags},
    )
    platform.deploy(deployment)  # no DescribeEndpoint after CreateEndpoint: a stub would be missing


def test_existing_endpoint_conflicts_and_is_left_alone(platform, sagemaker):
    platform.deploy(make_deployment())
    with pytest.raises(Conflict) as caught:
        platform.deploy(make_deployment(epoch=4))
    assert caught.value.message == f"Deployment '{NAME}' already exists."
    assert caught.value.status_code == 409
    assert platform.describe(NAME).epoch == 3
    assert our_resources(sagemaker) == {"models": [NAME], "configs": [NAME], "endpoints": [NAME]}


def test_failure_at_create_endpoint_leaves_no_model_and_no_config(platform, sagemaker):
    fail_once(sagemaker, "CreateEndpoint", "ResourceLimitExceeded", "ml.g4dn.xlarge for endpoint usage: 0")
    with pytest.raises(Unavailable) as caught:
        platform.deploy(make_deployment())
    assert caught.value.message == (
        f"SageMaker cannot deploy '{NAME}' now: ml.g4dn.xlarge for endpoint usage: 0"
    )
    assert our_resources(sagemaker) == {"models": [], "configs": [], "endpoints": []}


def test_failure_at_create_endpoint_config_leaves_no_model(platform, sagemaker):
    fail_once(sagemaker, "CreateEndpointConfig", "ThrottlingException", "Rate exceeded")
    with pytest.raises(Unavailable, match="Rate exceeded"):
        platform.deploy(make_deployment())
    assert our_resources(sagemaker) == {"models": [], "configs": [], "endpoints": []}


def test_left_over_model_conflicts_and_survives(platform, sagemaker):
    """A half-removed deployment: the model is not this call's to delete."""
    sagemaker.create_model(ModelName=NAME, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    fail_once(
        sagemaker,
        "CreateModel",
        "ValidationException",
        f'Cannot create already existing model "arn:aws:sagemaker:us-east-1:123456789012:model/{NAME}".',
    )
    with pytest.raises(Conflict, match="undeploy it first"):
        platform.deploy(make_deployment())
    assert our_resources(sagemaker) == {"models": [NAME], "configs": [], "endpoints": []}


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"name": "v15-" + "a" * 60}, "name", "1-63 letters"),
        ({"name": "v15_job-e1-cpu"}, "name", "not a SageMaker endpoint name"),
        ({"model_uri": "/home/me/checkpoints/epoch-3"}, "model_uri", "from S3"),
        ({"model_uri": "s3://b/" + "k" * 300}, "model_uri", "at most 256 characters"),
        ({"task": "détection!"}, "task", "SageMaker tag"),
        ({"target_device_id": 1}, "target_device_id", "use -1 for CPU or 0..0"),
    ],
)
def test_refuses_what_sagemaker_would_before_creating_anything(platform, sagemaker, overrides, field, words):
    with pytest.raises(ValidationError) as caught:
        platform.deploy(make_deployment(**overrides))
    assert caught.value.field == field
    assert words in caught.value.message
    assert our_resources(sagemaker) == {"models": [], "configs": [], "endpoints": []}


def test_device_count_is_the_gpu_instance_types_gpus(sagemaker, runtime):
    assert make_platform(sagemaker, runtime).device_count() == 1
    assert make_platform(sagemaker, runtime, gpu_instance_type="ml.g4dn.12xlarge").device_count() == 4
    assert make_platform(sagemaker, runtime, gpu_instance_type="").device_count() == 0


def test_a_second_gpu_deploys_on_a_multi_gpu_type(sagemaker, runtime, sent):
    platform = make_platform(sagemaker, runtime, gpu_instance_type="ml.g4dn.12xlarge")
    platform.deploy(make_deployment(name="v15-x-e1-gpu3", target_device_id=3))
    container = sagemaker.describe_model(ModelName="v15-x-e1-gpu3")["PrimaryContainer"]
    assert container["Environment"] == {"AIFACTORY_DEVICE": "cuda:3"}


def test_needs_a_role_and_an_image(sagemaker, runtime):
    with pytest.raises(ValueError, match="AIFACTORY_ENDPOINT_ROLE_ARN"):
        SageMakerHostingPlatform(
            sagemaker, runtime, "", image=IMAGE, cpu_instance_type="", gpu_instance_type=""
        )
    with pytest.raises(ValueError, match="AIFACTORY_INFERENCE_IMAGE"):
        make_platform(sagemaker, runtime, image="")


# -- undeploy ----------------------------------------------------------------------------


def test_undeploy_removes_all_three(platform, sagemaker, sent):
    platform.deploy(make_deployment())
    before = len(sent[0])
    platform.undeploy(NAME)
    assert [operation for operation, _ in sent[0][before:]] == [
        "DeleteEndpoint",
        "DeleteEndpointConfig",
        "DeleteModel",
    ]
    assert our_resources(sagemaker) == {"models": [], "configs": [], "endpoints": []}


def test_undeploy_removes_a_half_made_deployment(platform, sagemaker):
    sagemaker.create_model(ModelName=NAME, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    platform.undeploy(NAME)
    assert our_resources(sagemaker) == {"models": [], "configs": [], "endpoints": []}


def test_undeploy_of_nothing_is_not_found(platform):
    with pytest.raises(NotFound) as caught:
        platform.undeploy(NAME)
    assert caught.value.message == f"Deployment '{NAME}' not found."
    assert caught.value.status_code == 404


def test_undeploy_passes_other_errors_on(offline):
    platform, stub, _ = offline
    stub.add_client_error(
        "delete_endpoint", service_error_code="AccessDeniedException", service_message="not allowed"
    )
    with pytest.raises(Exception, match="not allowed"):
        platform.undeploy(NAME)


# -- describe and list -------------------------------------------------------------------


def test_describe_reads_the_deployment_back_from_tags(platform):
    deployment = make_deployment()
    platform.deploy(deployment)
    described = platform.describe(NAME)
    assert described == Deployment(
        **{
            **deployment.__dict__,
            "status": IN_SERVICE,  # moto is InService at once
            "instance_type": "ml.g4dn.xlarge",  # the stage's GPU type, target_device_id 0
            "memory_bytes": 16 * 1024**3,
        }
    )


def test_describe_of_nothing_is_not_found(platform):
    with pytest.raises(NotFound, match=f"Deployment '{NAME}' not found."):
        platform.describe(NAME)


def test_describe_maps_a_failed_endpoint(offline):
    platform, stub, _ = offline
    stub.add_response(
        "describe_endpoint",
        {
            "EndpointName": NAME,
            "EndpointArn": ENDPOINT_ARN,
            "EndpointStatus": "Failed",
            "FailureReason": "The primary container for production variant AllTraffic did not pass the ping health check.",
            "CreationTime": "2026-11-22T19:45:01Z",
            "LastModifiedTime": "2026-11-22T19:50:01Z",
        },
        expected_params={"EndpointName": NAME},
    )
    stub.add_response(
        "list_tags",
        {"Tags": expected_tags(make_deployment())[:2], "NextToken": "t"},
        expected_params={"ResourceArn": ENDPOINT_ARN},
    )
    stub.add_response(
        "list_tags",
        {"Tags": expected_tags(make_deployment())[2:]},
        expected_params={"ResourceArn": ENDPOINT_ARN, "NextToken": "t"},
    )
    described = platform.describe(NAME)
    assert described.status == DEPLOY_FAILED
    assert described.failure_reason.endswith("did not pass the ping health check.")
    assert (described.epoch, described.target_device_id, described.model_uri) == (3, 0, CHECKPOINT)


def test_list_returns_ours_only(platform, sagemaker):
    platform.deploy(make_deployment())
    platform.deploy(make_deployment(name="v15-20261122-194501-8c0c1d2e-e4-cpu", epoch=4, target_device_id=-1))
    # Look-alikes: a v15- name without our tags, and an unrelated endpoint.
    sagemaker.create_model(ModelName="other", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    variant = {
        "VariantName": "v",
        "ModelName": "other",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    sagemaker.create_endpoint_config(EndpointConfigName="other", ProductionVariants=[variant])
    for name in ("v15-someone-elses", "unrelated"):
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName="other")
    listed = platform.list()
    assert [(d.name, d.epoch, d.target_device_id, d.status) for d in listed] == [
        (NAME, 3, 0, IN_SERVICE),
        ("v15-20261122-194501-8c0c1d2e-e4-cpu", 4, -1, IN_SERVICE),
    ]


def test_list_pages_and_asks_why_a_failed_one_failed(offline):
    platform, stub, _ = offline
    summary = {"CreationTime": "2026-11-22T19:45:01Z", "LastModifiedTime": "2026-11-22T19:45:01Z"}
    other_arn = ENDPOINT_ARN.replace("gpu0", "cpu")
    list_params = {"NameContains": "v15-", "SortBy": "CreationTime", "SortOrder": "Ascending"}
    stub.add_response(
        "list_endpoints",
        {
            "Endpoints": [
                {"EndpointName": NAME, "EndpointArn": ENDPOINT_ARN, "EndpointStatus": "Creating", **summary}
            ],
            "NextToken": "page-2",
        },
        expected_params=list_params,
    )
    stub.add_response("list_tags", {"Tags": expected_tags(make_deployment())}, {"ResourceArn": ENDPOINT_ARN})
    stub.add_response(
        "list_endpoints",
        {
            "Endpoints": [
                {
                    "EndpointName": NAME[:-4] + "cpu",
                    "EndpointArn": other_arn,
                    "EndpointStatus": "Failed",
                    **summary,
                }
            ]
        },
        expected_params={**list_params, "NextToken": "page-2"},
    )
    stub.add_response(
        "list_tags",
        {"Tags": expected_tags(make_deployment(target_device_id=-1))},
        {"ResourceArn": other_arn},
    )
    stub.add_response(
        "describe_endpoint",
        {
            "EndpointName": NAME[:-4] + "cpu",
            "EndpointArn": other_arn,
            "EndpointStatus": "Failed",
            "FailureReason": "Could not access model data",
            **summary,
        },
        {"EndpointName": NAME[:-4] + "cpu"},
    )
    listed = platform.list()
    assert [(d.status, d.failure_reason, d.target_device_id) for d in listed] == [
        (CREATING, "", 0),
        (DEPLOY_FAILED, "Could not access model data", -1),
    ]


# -- invoke ------------------------------------------------------------------------------


def test_invoke_returns_the_endpoints_body(platform, sent):
    platform.deploy(make_deployment())
    answer = {"result": "OK", "base64_images": [], "predictions": [{"class": "cat", "prob": 0.9}]}
    queued = requests.post(
        RESULTS_URL,
        json={"region": REGION, "results": [{"Body": json.dumps(answer), "ContentType": "application/json"}]},
        timeout=5,
    )
    assert queued.status_code == 201
    status, body = platform.invoke(NAME, b'{"base64_image": "aGk="}', "application/json")
    assert (status, json.loads(body)) == (200, answer)
    (call,) = sent[1]
    assert call == (
        "InvokeEndpoint",
        {
            "EndpointName": NAME,
            "Body": b'{"base64_image": "aGk="}',
            "ContentType": "application/json",
            "Accept": "application/json",
        },
    )


def _invoke_fails(runtime_stub, code: str, message: str, **fields):
    runtime_stub.add_client_error(
        "invoke_endpoint",
        service_error_code=code,
        service_message=message,
        http_status_code=424 if code == "ModelError" else 400,
        modeled_fields=fields or None,
        expected_params={
            "EndpointName": NAME,
            "Body": b"\xff\xd8jpeg",
            "ContentType": "image/jpeg",
            "Accept": "application/json",
        },
    )


def _endpoint(stub, status: str, reason: str = "") -> None:
    response = {
        "EndpointName": NAME,
        "EndpointArn": ENDPOINT_ARN,
        "EndpointStatus": status,
        "CreationTime": "2026-11-22T19:45:01Z",
        "LastModifiedTime": "2026-11-22T19:45:01Z",
    }
    if reason:
        response["FailureReason"] = reason
    stub.add_response("describe_endpoint", response, {"EndpointName": NAME})


def test_invoke_while_creating_says_it_is_still_starting(offline):
    platform, stub, runtime_stub = offline
    _invoke_fails(runtime_stub, "ValidationError", f"Endpoint {NAME} of account 123456789012 not found.")
    _endpoint(stub, "Creating")
    with pytest.raises(Unavailable) as caught:
        platform.invoke(NAME, b"\xff\xd8jpeg", "image/jpeg")
    assert caught.value.message == f"Deployment '{NAME}' is still starting; try again in a few minutes."
    assert caught.value.status_code == 503


def test_invoke_of_a_failed_deployment_says_why(offline):
    platform, stub, runtime_stub = offline
    _invoke_fails(runtime_stub, "ValidationError", f"Endpoint {NAME} of account 123456789012 not found.")
    _endpoint(stub, "Failed", "Could not access model data at s3://aifactory-artifacts/dev/jobs/x/.")
    with pytest.raises(Unavailable) as caught:
        platform.invoke(NAME, b"\xff\xd8jpeg", "image/jpeg")
    assert caught.value.message == (
        f"Deployment '{NAME}' failed: Could not access model data at s3://aifactory-artifacts/dev/jobs/x/.; "
        "undeploy it and deploy again."
    )


def test_invoke_of_nothing_is_not_found(offline):
    platform, stub, runtime_stub = offline
    _invoke_fails(runtime_stub, "ValidationError", f"Endpoint {NAME} of account 123456789012 not found.")
    stub.add_client_error(
        "describe_endpoint",
        service_error_code="ValidationException",
        service_message=f'Could not find endpoint "{ENDPOINT_ARN}".',
    )
    with pytest.raises(NotFound, match=f"Deployment '{NAME}' not found."):
        platform.invoke(NAME, b"\xff\xd8jpeg", "image/jpeg")


def test_invoke_passes_the_containers_own_4xx_through(offline):
    platform, _, runtime_stub = offline
    container_body = json.dumps(
        {"result": "Error", "message": "Invalid 'lower_prob_thresh': must be in [0, 1]"}
    )
    _invoke_fails(
        runtime_stub,
        "ModelError",
        "Received client error (400) from primary with message ...",
        OriginalStatusCode=400,
        OriginalMessage=container_body,
    )
    assert platform.invoke(NAME, b"\xff\xd8jpeg", "image/jpeg") == (400, container_body.encode())


def test_invoke_without_a_container_status_is_unavailable(offline):
    platform, _, runtime_stub = offline
    _invoke_fails(
        runtime_stub,
        "ModelError",
        "Your invocation timed out while waiting for a response from container primary.",
    )
    with pytest.raises(Unavailable, match="did not answer: Your invocation timed out"):
        platform.invoke(NAME, b"\xff\xd8jpeg", "image/jpeg")


def test_invoke_when_sagemaker_is_busy_is_unavailable(offline):
    platform, _, runtime_stub = offline
    _invoke_fails(runtime_stub, "ServiceUnavailable", "Service is unavailable")
    with pytest.raises(Unavailable) as caught:
        platform.invoke(NAME, b"\xff\xd8jpeg", "image/jpeg")
    assert caught.value.message == (
        f"SageMaker could not run deployment '{NAME}' now (ServiceUnavailable): Service is unavailable"
    )


# -- the checker the tests above rely on -------------------------------------------------


def test_the_model_check_refuses_what_aws_would(sagemaker):
    operation = sagemaker.meta.service_model.operation_model("CreateEndpoint")
    service_model.validate(operation, {"EndpointName": NAME, "EndpointConfigName": NAME})
    with pytest.raises(AssertionError, match="more than 63"):
        service_model.validate(operation, {"EndpointName": "e" * 64, "EndpointConfigName": NAME})
    with pytest.raises(AssertionError, match="does not match"):
        service_model.validate(operation, {"EndpointName": "v15_x", "EndpointConfigName": NAME})
    with pytest.raises(AssertionError, match="does not match"):
        service_model.validate(
            operation,
            {"EndpointName": NAME, "EndpointConfigName": NAME, "Tags": [{"Key": "k", "Value": "a,b"}]},
        )
    config = sagemaker.meta.service_model.operation_model("CreateEndpointConfig")
    variant = {"VariantName": "v", "ModelName": "m", "InstanceType": "ml.nope.large"}
    with pytest.raises(AssertionError, match="is not one of"):
        service_model.validate(config, {"EndpointConfigName": "c", "ProductionVariants": [variant]})


# -- the deployment cap (issue 16) ---------------------------------------------------------

OTHER = "v15-20261122-194501-8c0c1d2e-e2-cpu"  # sorts before NAME: a creation-time tie keeps it first


def test_deploy_past_the_cap_is_refused_before_anything_is_made(platform, sagemaker):
    platform.deploy(make_deployment(name=OTHER, epoch=2, target_device_id=-1), max_live=1)
    with pytest.raises(DeploymentCapReached) as caught:
        platform.deploy(make_deployment(), max_live=1)
    assert (caught.value.limit, [d.name for d in caught.value.live]) == (1, [OTHER])
    assert caught.value.status_code == 409
    assert our_resources(sagemaker) == {"models": [OTHER], "configs": [OTHER], "endpoints": [OTHER]}


def test_a_deploy_that_loses_the_race_for_the_last_slot_removes_what_it_made(platform, sagemaker, runtime):
    """Another API Lambda makes its endpoint between this deploy's first count and its own
    CreateEndpoint: the count after CreateEndpoint finds it older, and this one undoes itself."""
    raced = []

    def another_lambda_deploys(**_):
        if not raced:
            raced.append(1)
            make_platform(sagemaker, runtime).deploy(
                make_deployment(name=OTHER, epoch=2, target_device_id=-1), max_live=1
            )

    sagemaker.meta.events.register("before-call.sagemaker.CreateEndpoint", another_lambda_deploys)
    with pytest.raises(DeploymentCapReached) as caught:
        platform.deploy(make_deployment(), max_live=1)
    assert [d.name for d in caught.value.live] == [OTHER]
    assert our_resources(sagemaker) == {"models": [OTHER], "configs": [OTHER], "endpoints": [OTHER]}


def test_list_says_which_instance_each_deployment_holds_and_its_memory(platform):
    platform.deploy(make_deployment())
    platform.deploy(make_deployment(name=OTHER, epoch=2, target_device_id=-1))
    listed = {d.name: (d.instance_type, d.memory_bytes) for d in platform.list()}
    assert listed == {NAME: ("ml.g4dn.xlarge", 16 * 1024**3), OTHER: ("ml.m5.large", 8 * 1024**3)}


def test_an_instance_type_of_unknown_memory_is_listed_with_none(sagemaker, runtime):
    platform = make_platform(sagemaker, runtime, cpu_instance_type="ml.r5.large")
    platform.deploy(make_deployment(name=OTHER, epoch=2, target_device_id=-1))
    (listed,) = platform.list()
    assert (listed.instance_type, listed.memory_bytes) == ("ml.r5.large", None)


def test_a_deployment_comes_back_with_its_tenant(platform):
    platform.deploy(make_deployment(tenant="t-abc"))
    assert platform.describe(NAME).tenant == "t-abc"
    assert [d.tenant for d in platform.list()] == ["t-abc"]


def test_the_cap_counts_only_the_tenants_own_deployments(platform):
    platform.deploy(make_deployment(name="v15-x-e1-g0", tenant="t-one"), max_live=1)
    platform.deploy(make_deployment(name="v15-y-e1-g0", job_id="y", tenant="t-two"), max_live=1)
    with pytest.raises(DeploymentCapReached):
        platform.deploy(make_deployment(name="v15-z-e1-g0", job_id="z", tenant="t-one"), max_live=1)
