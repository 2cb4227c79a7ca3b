"""A stage's config rendered from a recorded `describe-stacks` (no AWS): what `make deploy`
would give Chalice for the stacks in tests/aws/fixtures."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "infra" / "bin") not in sys.path:
    sys.path.insert(0, str(ROOT / "infra" / "bin"))

from aifactory_deploy import __main__ as cli  # noqa: E402
from aifactory_deploy import config as deploy_config  # noqa: E402
from aifactory_deploy import images, stack  # noqa: E402

__all__ = ["cli", "deploy_config", "images", "stack"]

FIXTURES = Path(__file__).parent / "fixtures"
IMAGE_TAG = "git-0123456789ab"
DATA_ROOTS = ("s3://customer-data/datasets/",)
PUBLIC_URL = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/api/"


def describe_stacks(stage: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"describe-stacks-{stage}.json").read_text())


def rendered_config(stages: tuple[str, ...] = deploy_config.STAGES) -> dict[str, Any]:
    config = deploy_config.load_template()
    for stage in stages:
        config = deploy_config.render(
            config,
            stage,
            deploy_config.stack_outputs(describe_stacks(stage)),
            image_tag=IMAGE_TAG,
            data_roots=DATA_ROOTS,
            public_url=PUBLIC_URL,
        )
    return config
