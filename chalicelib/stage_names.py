"""The stage in every AWS name: what two stages in one account are kept apart by.

On an aws stage a job's name is `<api>-<stage>-<time>-<hex>` (`aif-dev-20261207-101500-8c0c1d2e`,
`v15-prod-...`; `chalicelib.services.jobs.new_ids`), so everything named after it begins with
`<api>-<stage>-`: its SageMaker training jobs (`<name>` and `<name>-r<N>`), their log streams,
and the model, endpoint config and endpoint of each deployment (`<name>-e<epoch>-<device>`).
The IAM patterns of infra/cloudformation.yaml (`training-job/v15-${Stage}-*`, ...) and the aws
adapters' filters match that prefix; the adapters also tag what they make with `STAGE_TAG`
and list only what carries their stage's tag. The local stage keeps `<api>-<time>-<hex>`:
nothing of it is shared with another stage.
"""

from __future__ import annotations

import re

API_PREFIXES = ("aif", "v15")  # AI Factory jobs, v1.5 jobs
STAGE_TAG = "aifactory:stage"
LOCAL = "local"
# A stage is one word: with a hyphen, `aif-dev-*` would also match a stage `dev-2`'s names.
_STAGE = re.compile(r"[a-z][a-z0-9]{0,15}")


def check_stage(stage: str) -> str:
    if not _STAGE.fullmatch(stage or ""):
        raise ValueError(
            f"'{stage}' is not a stage name: 1-16 lowercase letters and digits, starting with a letter "
            "(a hyphen would make one stage's names match another's patterns)"
        )
    return stage


def job_name_prefix(api: str, stage: str) -> str:
    """`aif`/`v15` on the local stage, `<api>-<stage>` on an aws stage."""
    return api if stage == LOCAL else f"{api}-{check_stage(stage)}"


def name_prefixes(stage: str, apis: tuple[str, ...] = API_PREFIXES) -> tuple[str, ...]:
    """What every name of the stage's jobs (and of what is named after them) starts with."""
    return tuple(f"{job_name_prefix(api, stage)}-" for api in apis)


def belongs_to(name: str, stage: str, apis: tuple[str, ...] = API_PREFIXES) -> bool:
    """Whether `name` is one of the stage's names (an aws stage; the local stage owns all)."""
    return stage == LOCAL or name.startswith(name_prefixes(stage, apis))
