"""Issue 17: infer_multiple's answer stays under Lambda's 6 MB by design. 100 instance
segmentations of 4000x3000 images answered 6.34 MB (10 instances each) to 45 MB (100 each),
a 502 on AWS and locally (bench/bench_answer_sizes.py); entries now leave out their map, then
their polygons, past what fits, and say so (chalicelib/v15/answer_size.py)."""

from __future__ import annotations

import base64
import os

from chalicelib.aws_limits import LAMBDA_MAX_RESPONSE_BYTES
from chalicelib.v15 import answer_size
from chalicelib.v15.answer_size import ANSWER_BUDGET, in_proxy_output


def segmentation(index: int, instances: int = 10, map_bytes: int = 45_000, points: int = 200) -> dict:
    return {
        "path": f"/data/images/{index:03d}.jpg",
        "instance_segmentations": [
            {
                "bbox": [10.5, 20.25, 300.0, 400.75],
                "category": "cat",
                "prob": 0.9,
                "color": k + 1,
                "area": 12345,
                "polygons": [{"x": list(range(1000, 1000 + points)), "y": list(range(2000, 2000 + points))}],
            }
            for k in range(instances)
        ],
        "instance_segmentation_base64_map": base64.b64encode(os.urandom(map_bytes)).decode(),
    }


def answer_bytes(images: list[dict]) -> int:
    return in_proxy_output({"result": "OK", "images": images})


def test_an_answer_that_fits_is_the_specs_unchanged():
    images = [segmentation(i) for i in range(10)]
    assert answer_size.bounded_images(images) is images


def test_100_images_over_6_mb_leave_out_maps_from_the_last_entries_first():
    images = [segmentation(i) for i in range(100)]
    assert answer_bytes(images) > LAMBDA_MAX_RESPONSE_BYTES  # about 8.1 MB
    bounded = answer_size.bounded_images(images)
    assert answer_bytes(bounded) <= ANSWER_BUDGET < LAMBDA_MAX_RESPONSE_BYTES
    full = [entry for entry in bounded if "omitted" not in entry]
    assert full == images[: len(full)] and 50 < len(full) < 100  # earlier entries keep everything
    for entry, original in zip(bounded[len(full) :], images[len(full) :], strict=True):
        assert entry["omitted"] == ["instance_segmentation_base64_map"]
        assert entry["instance_segmentation_base64_map"] is None
        assert entry["instance_segmentations"] == original["instance_segmentations"]  # polygons kept
    assert [e["path"] for e in bounded] == [e["path"] for e in images]


def test_when_maps_are_not_enough_polygons_go_too_and_boxes_always_stay():
    images = [segmentation(i, instances=100, map_bytes=150_000, points=250) for i in range(100)]
    assert answer_bytes(images) > 7 * LAMBDA_MAX_RESPONSE_BYTES  # about 59 MB
    bounded = answer_size.bounded_images(images)
    assert answer_bytes(bounded) <= ANSWER_BUDGET
    assert {tuple(e.get("omitted", ())) for e in bounded} >= {
        ("instance_segmentation_base64_map", "polygons")
    }
    for entry, original in zip(bounded, images, strict=True):
        kept = [{k: v for k, v in i.items() if k != "polygons"} for i in entry["instance_segmentations"]]
        assert kept == [
            {k: v for k, v in i.items() if k != "polygons"} for i in original["instance_segmentations"]
        ]


def test_classification_and_detection_entries_are_never_cut():
    detections = [
        {
            "path": f"/d/{i}.jpg",
            "detections": [{"bbox": [1.0, 2.0, 3.0, 4.0], "category": "cat", "prob": 0.5}] * 100,
        }
        for i in range(100)
    ]
    assert answer_size.bounded_images(detections) is detections


def test_the_route_bounds_what_infer_multiple_answers(client, api_headers, monkeypatch):
    images = [segmentation(i) for i in range(100)]
    monkeypatch.setattr(
        "chalicelib.v15.deployments.infer_multiple", lambda *a: {"result": "OK", "images": images}
    )
    monkeypatch.setattr("chalicelib.v15.routes.adapters", lambda: None)
    headers = {**api_headers, "Content-Type": "application/x-www-form-urlencoded"}
    response = client.http.post(
        "/api/v1.5.0/infer_multiple/any", headers=headers, body="task=instance_segmentation"
    )
    assert response.status_code == 200
    body = response.json_body
    assert answer_bytes(body["images"]) <= ANSWER_BUDGET and len(body["images"]) == 100
    assert any(entry.get("omitted") for entry in body["images"])
