"""The documented helper: `Predictor(checkpoint_dir).predict(path)` answers what the server answers."""

from __future__ import annotations

import io

import pytest
from inference.predict import Predictor
from PIL import Image

from tests.inference.conftest import TASKS
from tests.inference.test_server import first_image


@pytest.mark.parametrize("task", TASKS)
def test_predictor_on_a_file_equals_the_server(trained, servers, task):
    checkpoint, _ = trained(task)
    path = first_image(trained, task)
    body = Predictor(checkpoint, "cpu").predict(path, lower_prob_thresh=0.0, returns_images=False)
    served = servers(task).post(
        data=path.read_bytes(),
        headers={"Content-Type": "image/jpeg"},
        params={"lower_prob_thresh": "0", "returns_images": "false"},
    )
    assert body == served.json()


def test_predictor_takes_bytes_and_pil_images(trained):
    checkpoint, _ = trained("classification")
    path = first_image(trained, "classification")
    predictor = Predictor(checkpoint, "cpu")
    from_path = predictor.predict(path, lower_prob_thresh=0.0)
    assert predictor.predict(path.read_bytes(), lower_prob_thresh=0.0) == from_path
    with Image.open(io.BytesIO(path.read_bytes())) as image:
        assert predictor.predict(image, lower_prob_thresh=0.0) == from_path
    assert from_path["classification"]["category"] in ("red", "green")
    assert len(from_path["base64_images"]) == 1


def test_the_readme_shows_the_helper():
    from tests.servers import REPO

    readme = (REPO / "containers" / "inference" / "README.md").read_text()
    assert "from inference.predict import Predictor" in readme
    assert "predictor.predict(" in readme
