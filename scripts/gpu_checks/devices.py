"""The GPUs as `GET /api/v1.5.0/devices` reports them: `trainer.probe.gpu_devices(live=True)`
(pynvml), the readings the local platform's `live_devices` returns and a job's heartbeat
carries, checked against the spec's fields and against what torch sees.
"""

from __future__ import annotations

import os

import torch

from scripts.gpu_checks.common import OK, Config, Row, maybe_fail

# docs/spec/v1.5-web-api.md, "Query devices usage": every device carries these, with these types.
SPEC_FIELDS = {
    "id": int,
    "name": str,
    "utilization_in_percent": int,
    "memory_total_in_mb": int,
    "memory_used_in_mb": int,
    "memory_free_in_mb": int,
    "power_limit_in_watt": int,
    "power_usage_in_watt": int,
}


def shape_problems(devices: list[dict]) -> list[str]:
    problems = []
    for i, device in enumerate(devices):
        for name, kind in SPEC_FIELDS.items():
            if name not in device:
                problems.append(f"device {i} lacks {name}")
            elif not isinstance(device[name], kind) or isinstance(device[name], bool):
                problems.append(f"device {i}: {name} is {type(device[name]).__name__}, not {kind.__name__}")
    return problems


def run(config: Config) -> Row:
    maybe_fail(config, "devices")
    from trainer import probe

    devices = probe.gpu_devices(live=True)
    software = probe.software()
    problems = shape_problems(devices)
    if config.cuda:
        problems += _against_torch(devices, software)
    if problems:
        raise RuntimeError("; ".join(problems))
    numbers = {"devices": devices, "software": software}
    if not devices:
        return Row("devices", OK, "no NVIDIA device", "spec fields", _pynvml_note(), numbers)
    first = devices[0]
    measured = (
        f"{len(devices)} x {first['name']}, {first['memory_total_in_mb']} MiB, "
        f"{first['power_usage_in_watt']}/{first['power_limit_in_watt']} W, {first['utilization_in_percent']}%"
    )
    note = f"CUDA {software['cuda_version']}, cuDNN {software['cudnn_version']}"
    return Row("devices", OK, measured, "spec fields, = torch", note, numbers)


def _against_torch(devices: list[dict], software: dict) -> list[str]:
    problems = []
    if not devices:
        return ["pynvml reports no device while torch sees CUDA"]
    if software.get("cuda_version") != torch.version.cuda:
        problems.append(
            f"probe's cuda_version {software.get('cuda_version')} != torch's {torch.version.cuda}"
        )
    if not os.environ.get("CUDA_VISIBLE_DEVICES"):  # NVML numbers every GPU; torch only the visible ones
        if len(devices) != torch.cuda.device_count():
            problems.append(f"pynvml sees {len(devices)} devices, torch {torch.cuda.device_count()}")
        elif devices[0]["name"] != torch.cuda.get_device_name(0):
            problems.append(
                f"device 0 is {devices[0]['name']!r} to pynvml, {torch.cuda.get_device_name(0)!r} to torch"
            )
    return problems


def _pynvml_note() -> str:
    try:
        import pynvml
    except ImportError:
        return "pynvml (nvidia-ml-py) is not installed: the route answers []"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return f"NVML: {exc}; the route answers []"
    pynvml.nvmlShutdown()
    return "NVML runs and counts no GPU; the route answers []"
