"""Server settings from the environment (SageMaker's names where it has one).

| variable | default | meaning |
|---|---|---|
| `SAGEMAKER_BIND_TO_PORT` | 8080 | port (SageMaker hosting sets it when it needs another) |
| `AIFACTORY_HOST` | 0.0.0.0 | address to listen on (the local platform uses 127.0.0.1) |
| `AIFACTORY_MODEL_DIR` | `/opt/ml/model` | the checkpoint directory (`epoch-<N>/` as the trainer writes it) |
| `AIFACTORY_MAX_BATCH_SIZE` | 8 | most requests grouped into one forward pass |
| `AIFACTORY_MAX_BATCH_WAIT_MS` | 2 | how long a batch waits to fill once its first request is in |
| `AIFACTORY_MAX_REQUEST_BYTES` | 6291456 | request body cap (SageMaker's real-time payload limit, 6 MB) |
| `AIFACTORY_MAX_IMAGE_PIXELS` | 40000000 | width x height cap: a small file must not decode into gigabytes |
| `AIFACTORY_SERVER_THREADS` | 16 | waitress worker threads (concurrent requests being decoded/encoded) |
| `AIFACTORY_DEVICE` | auto | `cpu`, `cuda`, `cuda:1`; auto = first GPU when there is one |
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_MODEL_DIR = "/opt/ml/model"


def _int(environ, name: str, default: int, minimum: int) -> int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    model_dir: str = DEFAULT_MODEL_DIR
    host: str = "0.0.0.0"
    port: int = 8080
    max_batch_size: int = 8
    max_batch_wait_ms: int = 2
    max_request_bytes: int = 6 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    threads: int = 16
    device: str | None = None

    @classmethod
    def from_env(cls, environ=None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            model_dir=env.get("AIFACTORY_MODEL_DIR") or DEFAULT_MODEL_DIR,
            host=env.get("AIFACTORY_HOST") or "0.0.0.0",
            port=_int(env, "SAGEMAKER_BIND_TO_PORT", 8080, 1),
            max_batch_size=_int(env, "AIFACTORY_MAX_BATCH_SIZE", 8, 1),
            max_batch_wait_ms=_int(env, "AIFACTORY_MAX_BATCH_WAIT_MS", 2, 0),
            max_request_bytes=_int(env, "AIFACTORY_MAX_REQUEST_BYTES", 6 * 1024 * 1024, 1),
            max_image_pixels=_int(env, "AIFACTORY_MAX_IMAGE_PIXELS", 40_000_000, 1),
            threads=_int(env, "AIFACTORY_SERVER_THREADS", 16, 1),
            device=env.get("AIFACTORY_DEVICE") or None,
        )
