"""Bad requests get their 4xx status and a message that says what to fix."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.inference.test_server import first_image


@pytest.fixture(scope="module")
def server(servers):
    return servers("classification")


@pytest.fixture(scope="module")
def jpeg(trained) -> bytes:
    return first_image(trained, "classification").read_bytes()


def check_error(response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"result": "Error", "message": message}


def png_of(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


FORMATS = "JPEG, PNG, BMP, WEBP, TIFF, GIF"


def test_bytes_that_are_not_an_image_get_400(server):
    response = server.post(data=b"hello, not an image", headers={"Content-Type": "image/jpeg"})
    check_error(response, 400, f"The body is not a readable image; send one of: {FORMATS}")


def test_an_image_format_the_trainer_does_not_read_gets_400(server):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PPM")
    response = server.post(data=buffer.getvalue(), headers={"Content-Type": "image/png"})
    check_error(response, 400, f"Unsupported image format PPM; send one of: {FORMATS}")


def test_a_truncated_image_gets_400(server, jpeg):
    response = server.post(data=jpeg[: len(jpeg) // 2], headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 400
    assert response.json()["message"].startswith("The image could not be decoded: ")


def test_an_empty_body_gets_400(server):
    check_error(server.post(data=b"", headers={"Content-Type": "image/png"}), 400, "The image is empty")


def test_unsupported_content_type_gets_415(server, jpeg):
    response = server.post(data=jpeg, headers={"Content-Type": "text/plain"})
    check_error(
        response,
        415,
        "Unsupported content type 'text/plain'; send application/json with base64_image, or the image bytes "
        "as image/jpeg, image/png, application/x-image, application/octet-stream",
    )


def test_a_body_over_the_cap_gets_413(server):
    cap = 6 * 1024 * 1024
    response = server.post(data=b"\0" * (cap + 1), headers={"Content-Type": "image/png"})
    check_error(response, 413, f"The request body is {cap + 1} bytes, more than the limit of {cap}")


def test_a_decompression_bomb_gets_413(server):
    bomb = png_of(Image.new("1", (8000, 8000)))  # 64 Mpixel in a few kB
    assert len(bomb) < 100_000
    response = server.post(json={"base64_image": base64.b64encode(bomb).decode()})
    check_error(response, 413, "The image is 8000x8000 = 64000000 pixels, more than the limit of 40000000")


def test_invalid_base64_gets_400(server):
    check_error(server.post(json={"base64_image": "not base64!"}), 400, "base64_image is not valid base64")


def test_missing_base64_image_gets_400(server):
    check_error(
        server.post(json={"lower_prob_thresh": 0.5}),
        400,
        "base64_image is required: a base64-encoded JPEG or PNG image",
    )


def test_a_body_that_is_not_json_gets_400(server):
    response = server.post(data=b"{nope", headers={"Content-Type": "application/json"})
    check_error(response, 400, "The body is not valid JSON")


def test_a_json_body_that_is_not_an_object_gets_400(server):
    check_error(server.post(json=["x"]), 400, 'The JSON body must be an object like {"base64_image": "..."}')


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"lower_prob_thresh": "abc"}, "lower_prob_thresh must be a number in [0, 1], got 'abc'"),
        ({"lower_prob_thresh": 1.5}, "lower_prob_thresh must be a number in [0, 1], got 1.5"),
        ({"upper_prob_thresh": -0.1}, "upper_prob_thresh must be a number in [0, 1], got -0.1"),
        ({"upper_prob_thresh": True}, "upper_prob_thresh must be a number in [0, 1], got true"),
        (
            {"lower_prob_thresh": 0.9, "upper_prob_thresh": 0.5},
            "lower_prob_thresh (0.9) must not exceed upper_prob_thresh (0.5)",
        ),
        ({"returns_images": "maybe"}, "returns_images must be true or false, got 'maybe'"),
    ],
)
def test_bad_arguments_in_json_get_400_naming_the_argument(server, jpeg, arguments, message):
    response = server.post(json={"base64_image": base64.b64encode(jpeg).decode(), **arguments})
    check_error(response, 400, message)


def test_a_bad_threshold_in_the_query_string_gets_400(server, jpeg):
    response = server.post(
        data=jpeg, headers={"Content-Type": "image/jpeg"}, params={"upper_prob_thresh": "nan"}
    )
    check_error(response, 400, "upper_prob_thresh must be a number in [0, 1], got 'nan'")


def test_an_unknown_route_gets_404(server):
    check_error(
        server.get("/predict"),
        404,
        "Not found: /predict; this server answers GET /ping and POST /invocations",
    )


def test_get_on_invocations_gets_405(server):
    check_error(server.get("/invocations"), 405, "GET is not allowed on /invocations; use POST")
