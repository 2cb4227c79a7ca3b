"""What this machine offers for training: software versions and live GPU readings.

`python -m trainer.probe` prints it as JSON; the local API calls it (the API itself never
imports torch) and the trainer records it as `environment.json` beside its heartbeat.
"""

from __future__ import annotations

import json
import platform
import sys


def gpu_devices(live: bool = True) -> list[dict]:
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    devices = []
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            item = {
                "id": index,
                "name": name.decode() if isinstance(name, bytes) else name,
                "memory_in_mb": memory.total // 2**20,
            }
            if live:
                item.update(_live(pynvml, handle, memory))
            devices.append(item)
    finally:
        pynvml.nvmlShutdown()
    return devices


def _live(pynvml, handle, memory) -> dict:
    def read(fn, default=-1):
        try:
            return fn()
        except pynvml.NVMLError:
            return default

    return {
        "utilization_in_percent": read(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
        "memory_total_in_mb": memory.total // 2**20,
        "memory_used_in_mb": memory.used // 2**20,
        "memory_free_in_mb": memory.free // 2**20,
        "power_limit_in_watt": read(lambda: pynvml.nvmlDeviceGetPowerManagementLimit(handle) // 1000),
        "power_usage_in_watt": read(lambda: pynvml.nvmlDeviceGetPowerUsage(handle) // 1000),
    }


def software() -> dict:
    info = {
        "python_version": platform.python_version(),
        "cuda_version": None,
        "cudnn_version": None,
        "torch_version": None,
    }
    try:
        import torch

        info["torch_version"] = torch.__version__
        if torch.cuda.is_available():
            info["cuda_version"] = torch.version.cuda
            cudnn = torch.backends.cudnn.version()
            info["cudnn_version"] = str(cudnn) if cudnn else None
    except ImportError:
        pass
    return info


def probe() -> dict:
    return {"software": software(), "devices": gpu_devices(live=True)}


if __name__ == "__main__":
    # `--devices`: live GPU readings only (pynvml, no torch import: fast enough per request).
    json.dump(gpu_devices(live=True) if "--devices" in sys.argv[1:] else probe(), sys.stdout)
