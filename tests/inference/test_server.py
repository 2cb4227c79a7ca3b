"""The SageMaker hosting contract through real HTTP: one server process per task's checkpoint."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.inference.conftest import TASKS
from tests.inference.harness import IMAGE_SIZE
from tests.inference.trainer_output import trainer_predictions

RESULT_KEY = {
    "classification": "classification",
    "detection": "detections",
    "instance_segmentation": "instance_segmentations",
}
NUM_IMAGES = {"classification": 1, "detection": 1, "instance_segmentation": 2}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def first_image(trained, task: str):
    _, data = trained(task)
    return sorted((data / "images").iterdir())[0]


def decode_jpeg(text: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(text)))
    image.load()
    return image


@pytest.mark.parametrize("task", TASKS)
def test_ping_answers_200_once_the_model_is_loaded(servers, task):
    response = servers(task).get("/ping")
    assert response.status_code == 200
    assert response.json() == {"result": "OK", "task": task}


@pytest.mark.parametrize("task", TASKS)
def test_json_base64_infer_returns_the_spec_body_with_images(servers, trained, task):
    path = first_image(trained, task)
    response = servers(task).post(json={"base64_image": b64(path.read_bytes()), "lower_prob_thresh": 0.0})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    expected = ["result", "base64_images", RESULT_KEY[task]]
    if task == "instance_segmentation":
        expected.append("instance_segmentation_base64_map")
    assert list(body) == expected and body["result"] == "OK"
    assert len(body["base64_images"]) == NUM_IMAGES[task]
    for text in body["base64_images"]:
        drawn = decode_jpeg(text)
        assert drawn.format == "JPEG" and drawn.size == (IMAGE_SIZE, IMAGE_SIZE)


@pytest.mark.parametrize("task", TASKS)
def test_raw_bytes_infer_equals_json_infer(servers, trained, task):
    path = first_image(trained, task)
    server = servers(task)
    raw = server.post(
        data=path.read_bytes(),
        headers={"Content-Type": "image/jpeg"},
        params={"lower_prob_thresh": "0", "returns_images": "false"},
    )
    as_json = server.post(
        json={"base64_image": b64(path.read_bytes()), "lower_prob_thresh": 0, "returns_images": False}
    )
    assert raw.status_code == as_json.status_code == 200
    assert raw.json() == as_json.json()
    assert "base64_images" not in raw.json()


@pytest.mark.parametrize("task", TASKS)
def test_custom_attributes_carry_the_arguments_for_raw_bytes(servers, trained, task):
    path = first_image(trained, task)
    server = servers(task)
    by_header = server.post(
        data=path.read_bytes(),
        headers={
            "Content-Type": "application/x-image",
            "X-Amzn-SageMaker-Custom-Attributes": "lower_prob_thresh=0.0,returns_images=false",
        },
    )
    by_query = server.post(
        data=path.read_bytes(),
        headers={"Content-Type": "application/x-image"},
        params={"lower_prob_thresh": "0.0", "returns_images": "false"},
    )
    assert by_header.status_code == 200 and by_header.json() == by_query.json()


@pytest.mark.parametrize("task", ["detection", "instance_segmentation"])
def test_thresholds_keep_only_predictions_inside_the_band(servers, trained, task):
    path = first_image(trained, task)
    server = servers(task)
    everything = server.post(json={"base64_image": b64(path.read_bytes()), "lower_prob_thresh": 0.0})
    items = everything.json()[RESULT_KEY[task]]
    probs = sorted(item["prob"] for item in items)
    assert len(probs) >= 3, "the tiny checkpoint must predict several boxes for this test to mean anything"
    lower, upper = probs[len(probs) // 3], probs[2 * len(probs) // 3]
    band = server.post(
        json={
            "base64_image": b64(path.read_bytes()),
            "lower_prob_thresh": lower,
            "upper_prob_thresh": upper,
            "returns_images": False,
        }
    ).json()[RESULT_KEY[task]]
    expected = [item for item in items if lower <= item["prob"] <= upper]
    assert [(i["bbox"], i["prob"]) for i in band] == [(i["bbox"], i["prob"]) for i in expected]
    assert 0 < len(band) < len(items)


def test_classification_outside_the_band_has_no_category(servers, trained):
    path = first_image(trained, "classification")
    server = servers("classification")
    body = server.post(json={"base64_image": b64(path.read_bytes()), "lower_prob_thresh": 0.0}).json()
    top = body["classification"]["prob"]
    assert body["classification"]["category"] in ("red", "green")
    above = server.post(
        json={"base64_image": b64(path.read_bytes()), "lower_prob_thresh": min(1.0, top + 1e-6)}
    ).json()
    assert above["classification"] == {"category": None, "prob": top}


def test_instance_segmentation_fields_match_the_map(servers, trained):
    path = first_image(trained, "instance_segmentation")
    body = servers("instance_segmentation").post(
        json={"base64_image": b64(path.read_bytes()), "lower_prob_thresh": 0.0, "returns_images": False}
    )
    body = body.json()
    assert "base64_images" not in body
    items = body["instance_segmentations"]
    assert items, "the tiny checkpoint must predict instances"
    assert [i["color"] for i in items] == list(range(1, len(items) + 1))
    assert [list(i) for i in items] == [["bbox", "category", "prob", "color", "area", "polygons"]] * len(
        items
    )
    instance_map = Image.open(io.BytesIO(base64.b64decode(body["instance_segmentation_base64_map"])))
    assert instance_map.format == "PNG" and instance_map.mode == "P"
    assert instance_map.size == (IMAGE_SIZE, IMAGE_SIZE)  # mapped back from the model's 40 x 40 input
    values = set(instance_map.tobytes())
    assert values <= set(range(len(items) + 1))
    top = items[0]
    assert top["area"] > 0 and instance_map.tobytes().count(1) <= top["area"]  # overlaps go to the likelier
    for polygon in top["polygons"]:
        assert len(polygon["x"]) == len(polygon["y"]) > 0
        assert all(0 <= x < IMAGE_SIZE for x in polygon["x"]) and all(
            0 <= y < IMAGE_SIZE for y in polygon["y"]
        )
        assert all(isinstance(v, int) for v in polygon["x"] + polygon["y"])


@pytest.mark.parametrize("task", TASKS)
def test_server_answers_equal_the_trainers_own_predictions(servers, trained, task):
    checkpoint, data = trained(task)
    paths, outputs = trainer_predictions(checkpoint, data)
    server = servers(task)
    for path, output in zip(paths, outputs, strict=True):
        body = server.post(
            data=path.read_bytes(),
            headers={"Content-Type": "image/jpeg"},
            params={"lower_prob_thresh": "0", "returns_images": "false"},
        ).json()
        if task == "classification":
            prob, index = output.max(dim=0)
            assert body["classification"]["category"] == ["red", "green"][int(index)]
            assert body["classification"]["prob"] == pytest.approx(float(prob), abs=1e-5)
            continue
        # The trainer's eval pipeline may resize (instance segmentation: 48 -> 40 px); the server
        # answers in the original image's pixels.
        scale = IMAGE_SIZE / 40 if task == "instance_segmentation" else 1.0
        items = body[RESULT_KEY[task]]
        assert len(items) == len(output["scores"]) > 0
        for item, box, score in zip(items, output["boxes"].tolist(), output["scores"].tolist(), strict=True):
            assert item["prob"] == pytest.approx(score, abs=1e-5)
            assert item["bbox"] == pytest.approx([v * scale for v in box], abs=1e-3)


@pytest.mark.parametrize("task", TASKS)
def test_the_apis_raw_request_and_an_older_json_request_get_the_same_answer(servers, trained, task):
    """Issue 17: the API sends the image as it is, its arguments in CustomAttributes
    (`chalicelib.v15.deployments.custom_attributes`); a client or an older API that still sends
    `{"base64_image": ...}` gets the same answer from the same server."""
    from chalicelib.v15.deployments import custom_attributes

    path = first_image(trained, task)
    media = "image/png" if path.suffix == ".png" else "image/jpeg"
    server = servers(task)
    raw = server.post(
        data=path.read_bytes(),
        headers={
            "Content-Type": media,
            "X-Amzn-SageMaker-Custom-Attributes": custom_attributes(0.0, 1.0, True),
        },
    )
    old = server.post(
        json={
            "base64_image": b64(path.read_bytes()),
            "lower_prob_thresh": 0.0,
            "upper_prob_thresh": 1.0,
            "returns_images": True,
        }
    )
    assert raw.status_code == old.status_code == 200, (raw.text, old.text)
    assert raw.json() == old.json() and raw.json()["base64_images"]
