"""The stage's Chalice config, rendered from the stack's outputs: no hand-copied ARNs.

The committed `infra/chalice/config.json` is the template: app-wide settings, the `local`
stage, and for `dev`/`prod` only what does not depend on the account (instance types,
limits, flags). Everything account- or region-specific comes from `describe-stacks`
(`OUTPUT_VARIABLES`), the image tag (`images.image_tag`), the deploy's data roots and,
once Chalice has created it, the REST API's URL.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aifactory_deploy.images import image_uri

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "infra" / "chalice" / "config.json"
STAGES = ("dev", "prod")

# stack output -> environment variable it becomes, verbatim
OUTPUT_VARIABLES = {
    "JobsTableName": "AIFACTORY_TABLE",
    "ArtifactBucketName": "AIFACTORY_BUCKET",
    "SageMakerExecutionRoleArn": "AIFACTORY_SAGEMAKER_ROLE_ARN",
    "EndpointExecutionRoleArn": "AIFACTORY_ENDPOINT_ROLE_ARN",
    "ArtifactPrefix": "AIFACTORY_ARTIFACT_PREFIX",
    "SecretPrefix": "AIFACTORY_SECRET_PREFIX",
    "CallbackSigningSecretArn": "AIFACTORY_CALLBACK_SIGNING_SECRET",
    "ModelLinkSecretArn": "AIFACTORY_MODEL_LINK_SECRET",
}
# outputs every render needs (ToolsFunctionName appears on the stack's second pass)
REQUIRED_OUTPUTS = (*OUTPUT_VARIABLES, "ApiLambdaRoleArn", "TrainerRepositoryUri", "InferenceRepositoryUri")
# values a committed template must never hold: they belong to one account and region
_ACCOUNT = re.compile(r"(?<!\d)\d{12}(?!\d)")
_REGION = re.compile(r"\b(?:us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d\b")


class RenderError(ValueError):
    """The stack (or the deploy's arguments) cannot give the stage what it needs."""


def stack_outputs(describe_stacks: dict[str, Any]) -> dict[str, str]:
    """`{OutputKey: OutputValue}` of the one stack in a DescribeStacks response."""
    stacks = describe_stacks.get("Stacks") or []
    if len(stacks) != 1:
        raise RenderError(f"Expected one stack in describe-stacks, got {len(stacks)}.")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []}


def data_bucket_arns(data_roots: list[str] | tuple[str, ...], partition: str = "aws") -> list[str]:
    """The stack's DataBucketArns for the stage's AIFACTORY_DATA_ROOTS (`s3://bucket/prefix/`)."""
    arns = []
    for root in data_roots:
        parsed = urlparse(root)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise RenderError(f"Data root '{root}' is not an s3:// prefix (s3://bucket/prefix/).")
        arn = f"arn:{partition}:s3:::{parsed.netloc}"
        if arn not in arns:
            arns.append(arn)
    return arns


def render(
    template: dict[str, Any],
    stage: str,
    outputs: dict[str, str],
    *,
    image_tag: str,
    data_roots: list[str] | tuple[str, ...] = (),
    public_url: str = "",
) -> dict[str, Any]:
    """The template with `stage` filled in from the stack's outputs; other stages untouched."""
    if stage not in template.get("stages", {}) or stage == "local":
        raise RenderError(f"Stage '{stage}' is not one of the template's AWS stages {STAGES}.")
    missing = [name for name in REQUIRED_OUTPUTS if not outputs.get(name)]
    if missing:
        raise RenderError(
            f"The stack has no output {', '.join(missing)}: deploy infra/cloudformation.yaml first "
            "(make deploy does), then render again."
        )
    data_bucket_arns(data_roots)  # the same check the stack's parameter gets
    config = copy.deepcopy(template)
    stage_config = config["stages"][stage]
    stage_config["iam_role_arn"] = outputs["ApiLambdaRoleArn"]
    variables = stage_config.setdefault("environment_variables", {})
    for output, variable in OUTPUT_VARIABLES.items():
        variables[variable] = outputs[output]
    trainer = outputs["TrainerRepositoryUri"]
    variables["AIFACTORY_TRAINER_IMAGE"] = image_uri(trainer, image_tag)
    variables["AIFACTORY_ALLOWED_IMAGES"] = trainer
    variables["AIFACTORY_INFERENCE_IMAGE"] = image_uri(outputs["InferenceRepositoryUri"], image_tag)
    variables["AIFACTORY_TOOLS_FUNCTION"] = outputs.get("ToolsFunctionName", "")
    variables["AIFACTORY_DATA_ROOTS"] = ",".join(data_roots)
    variables["AIFACTORY_PUBLIC_URL"] = public_url.rstrip("/")
    return config


def template_problems(template: dict[str, Any]) -> list[str]:
    """What makes a committed template account- or region-specific (an empty list when none)."""
    problems = []
    text = json.dumps(template)
    for pattern, what in ((_ACCOUNT, "an account id"), (_REGION, "a region")):
        problems += [f"{what}: {m.group(0)}" for m in pattern.finditer(text)]
    if "REPLACE" in text.upper():
        problems.append("a REPLACE placeholder")
    for stage in STAGES:
        stage_config = template.get("stages", {}).get(stage, {})
        if "iam_role_arn" in stage_config:
            problems.append(f"{stage}: iam_role_arn (rendered from ApiLambdaRoleArn)")
        rendered = {*OUTPUT_VARIABLES.values(), "AIFACTORY_TRAINER_IMAGE", "AIFACTORY_INFERENCE_IMAGE"}
        for variable in sorted(rendered & set(stage_config.get("environment_variables", {}))):
            problems.append(f"{stage}: {variable} (rendered from the stack)")
    return problems


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return json.loads(path.read_text())
