"""What the inference image ships: its Dockerfile's files, its pins, and `serve` run the SageMaker way.

No Docker daemon here: the image's /opt/ml/code and /usr/local/bin are laid out from the
Dockerfile's own COPY lines in a temporary directory, and `serve` is started from there with
nothing else on PYTHONPATH, so a package the image forgets to copy fails this test.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.inference.harness import InferenceServer
from tests.servers import REPO

INFERENCE = REPO / "containers" / "inference"
COPY = re.compile(r"^COPY\s+(?:--\S+\s+)*(\S+)\s+(\S+)\s*$", re.M)


def copies() -> list[tuple[str, str]]:
    return [tuple(m.groups()) for m in COPY.finditer((INFERENCE / "Dockerfile").read_text())]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[re.sub(r"\[.*\]", "", name).lower()] = version
    return found


def test_every_copied_path_exists_and_travels_in_the_build_context():
    ignore = (INFERENCE / "Dockerfile.dockerignore").read_text().splitlines()
    assert copies(), "the Dockerfile copies nothing?"
    for source, _ in copies():
        assert (REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert f"!{source}" in ignore, f"Dockerfile.dockerignore leaves out {source}"
    assert dict(copies())["containers/inference/serve"] == "/usr/local/bin/serve"


def test_serve_is_an_executable_script_on_path():
    script = INFERENCE / "serve"
    assert os.access(script, os.X_OK), "SageMaker runs `serve` directly: it must be executable"
    assert 'exec python -m inference.serve "$@"' in script.read_text().splitlines()


def test_inference_pins_reuse_the_trainer_pins_and_match_the_dev_environment():
    lines = (INFERENCE / "requirements.txt").read_text().splitlines()
    assert "-r ../trainer/requirements.txt" in lines
    own = pins(INFERENCE / "requirements.txt")
    dev = pins(REPO / "requirements-dev.txt")
    assert own and {name: dev.get(name) for name in own} == own
    trainer = pins(REPO / "containers" / "trainer" / "requirements.txt")
    assert not set(own) & set(trainer), "a pin the trainer already has must come from its file"


def test_inference_imports_are_pinned():
    modules = set()
    for file in (INFERENCE / "inference").rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                modules.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - {"inference", "trainer"}
    distributions = {"cv2": "opencv-python-headless", "PIL": "pillow"}
    pinned = set(pins(INFERENCE / "requirements.txt")) | set(
        pins(REPO / "containers/trainer/requirements.txt")
    )
    assert {distributions.get(m, m).lower() for m in third_party} <= pinned | {"numpy"}  # numpy: torch's


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    """/opt/ml/code and /usr/local/bin as the Dockerfile fills them."""
    root = tmp_path_factory.mktemp("image")
    for source, dest in copies():
        target = root / dest.lstrip("/")
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / source, target)
    return root


def test_serve_answers_the_sagemaker_contract_from_the_image_layout(image_root, trained, tmp_path):
    checkpoint, _ = trained("classification")
    model = tmp_path / "opt_ml_model"
    shutil.copytree(checkpoint, model)  # what SageMaker copies to /opt/ml/model
    bin_dir = image_root / "usr" / "local" / "bin"
    server = InferenceServer(
        None,
        tmp_path / "serve.log",
        command=[str(bin_dir / "serve")],
        PATH=f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=str(image_root / "opt" / "ml" / "code"),
        AIFACTORY_MODEL_DIR=str(model),
    )
    try:
        assert server.get("/ping").json() == {"result": "OK", "task": "classification"}
        image = sorted((checkpoint.parents[2] / "data" / "images").iterdir())[0]
        response = server.post(
            data=image.read_bytes(),
            headers={
                "Content-Type": "image/jpeg",
                "X-Amzn-SageMaker-Custom-Attributes": "lower_prob_thresh=0",
            },
        )
        assert response.status_code == 200 and response.json()["classification"]["category"] in (
            "red",
            "green",
        )
    finally:
        server.stop()


def test_serve_without_a_model_exits_with_the_reason(image_root, tmp_path):
    import subprocess

    from tests.inference.harness import server_env

    env = server_env(PYTHONPATH=str(image_root / "opt" / "ml" / "code"), AIFACTORY_MODEL_DIR=str(tmp_path))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(
        [str(image_root / "usr" / "local" / "bin" / "serve")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert f"cannot load the model: {tmp_path} has no model.json" in result.stderr
