"""A job that asked for the GPU on a GPU instance fails (E01, with advice) when CUDA sees none;
without a SageMaker instance type (the local platform) it trains on the CPU as before."""

from __future__ import annotations

import json

import pytest
import torch
from trainer import gpu_required
from trainer.text.main import pick_device
from trainer.vision import engine

from contracts.statuses import exception_code, parse_failure_reason
from tests.trainer.test_vision_train import CLASSIFICATION, Job


def no_cuda() -> bool:
    return False


def gpu_host(instance_type: str = "ml.g5.xlarge") -> dict:
    return {"current_host": "algo-1", "hosts": ["algo-1"], "current_instance_type": instance_type}


@pytest.fixture
def no_gpu(monkeypatch):
    """No CUDA device, whatever the machine."""
    monkeypatch.setattr(torch.cuda, "is_available", no_cuda)


@pytest.mark.parametrize("name", ["ml.g4dn.xlarge", "ml.g5.2xlarge", "ml.g6e.xlarge", "ml.p4d.24xlarge"])
def test_gpu_instance_types(name):
    assert gpu_required.is_gpu_instance(name)


@pytest.mark.parametrize("name", ["ml.m5.xlarge", "ml.c5.2xlarge", "ml.trn1.2xlarge", "", "local"])
def test_cpu_instance_types(name):
    assert not gpu_required.is_gpu_instance(name)


def test_asked_on_a_gpu_instance_without_cuda_is_e01_with_advice():
    with pytest.raises(RuntimeError) as caught:
        gpu_required.check(
            True, no_cuda, gpu_host("ml.g5.xlarge"), diagnosis=lambda: "torch 2.14.1 built for CUDA 13.0"
        )
    assert exception_code(caught.value) == "E01"
    message = str(caught.value)
    assert message.startswith("The job asked for the GPU and runs on ml.g5.xlarge, but CUDA sees no device")
    assert "built for CUDA 13.0" in message and "CUDA 12.x torch" in message and "infra/README.md" in message


def test_the_instance_group_of_the_current_host_counts():
    config = {
        "current_host": "algo-2",
        "instance_groups": [
            {"instance_group_name": "cpu", "instance_type": "ml.m5.xlarge", "hosts": ["algo-1"]},
            {"instance_group_name": "gpu", "instance_type": "ml.p4d.24xlarge", "hosts": ["algo-2"]},
        ],
    }
    with pytest.raises(RuntimeError, match="runs on ml.p4d.24xlarge"):
        gpu_required.check(True, no_cuda, config, diagnosis=str)


@pytest.mark.parametrize(
    "asked, config, cuda",
    [
        (False, gpu_host(), False),  # the job chose the CPU
        (True, {"current_host": "algo-1", "hosts": ["algo-1"]}, False),  # local platform: no instance type
        (True, gpu_host("ml.m5.xlarge"), False),  # a CPU instance
        (True, gpu_host(), True),  # the GPU is there
    ],
)
def test_nothing_to_refuse(asked, config, cuda):
    gpu_required.check(asked, lambda: cuda, config, diagnosis=str)


def test_the_diagnosis_names_torch_and_the_driver():
    text = gpu_required._diagnosis()
    assert f"torch {torch.__version__}" in text
    assert "NVIDIA driver" in text


@pytest.mark.parametrize("visible_devices", [None, [0]])
def test_v15_select_device_refuses_the_cpu_on_a_gpu_instance(no_gpu, visible_devices):
    with pytest.raises(RuntimeError, match="asked for the GPU and runs on ml.g5.xlarge"):
        engine.select_device(visible_devices, gpu_host())


def test_v15_select_device_keeps_the_cpu_when_asked_for_it_or_local(no_gpu):
    assert engine.select_device([], gpu_host()) == torch.device("cpu")
    assert engine.select_device(None, {"current_host": "algo-1", "hosts": ["algo-1"]}) == torch.device("cpu")


def test_text_pick_device_refuses_the_cpu_on_a_gpu_instance(no_gpu):
    with pytest.raises(RuntimeError, match="runs on ml.g4dn.xlarge"):
        pick_device(True, gpu_host("ml.g4dn.xlarge"))
    assert pick_device(False, gpu_host("ml.g4dn.xlarge")) == torch.device("cpu")


def test_a_v15_job_on_a_gpu_instance_without_cuda_fails_with_e01(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", no_cuda)
    hp = {**CLASSIFICATION, "visible_devices": None}  # automatic: the GPU when there is one
    job = Job(tmp_path, "classification", hp, num_images=4, image_size=32)
    (job.config / "resourceconfig.json").write_text(json.dumps(gpu_host("ml.g5.xlarge")))
    assert job.run(monkeypatch) == 1
    reason = parse_failure_reason(job.failure.split("\n\n", 1)[0])
    assert reason["code"] == "E01"
    assert "asked for the GPU and runs on ml.g5.xlarge" in job.failure
    assert job.read("progress.json")["exception"]["code"] == "E01"


def test_the_cpu_fallback_is_logged_once(no_gpu, caplog):
    from trainer.text.config import TextConfig
    from trainer.text.main import pick_devices

    local = {"current_host": "algo-1", "hosts": ["algo-1"]}
    with caplog.at_level("INFO", logger="trainer.text"):
        assert (
            pick_devices(TextConfig(using_gpu=True, eval_using_gpu=True), local) == (torch.device("cpu"),) * 2
        )
    assert [r.getMessage() for r in caplog.records] == [
        "using_gpu (and eval_using_gpu) is true but this machine has no CUDA device, so it runs on the CPU."
    ]


def test_a_job_without_its_configuration_reports_under_the_one_opt_ml_base(tmp_path, monkeypatch):
    """The failure file of a trainer that could not read job.json lies where every other path
    does (environment.opt_ml_base): one base directory, worked out in one place."""
    from trainer import entry

    monkeypatch.setenv("AIFACTORY_OPT_ML", str(tmp_path))
    monkeypatch.delenv("SM_OUTPUT_DIR", raising=False)
    assert entry.main() == 1
    reason = parse_failure_reason((tmp_path / "output" / "failure").read_text())
    assert (reason["code"], reason["type"]) == ("E04", "FileNotFoundError")
    assert str(tmp_path / "input" / "data" / "config") in reason["message"]
