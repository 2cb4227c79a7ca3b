"""What each route takes and returns, written from the two specs (shared/spec, copied in docs/).

`OPERATIONS` is keyed by (method, path) with every path parameter written `{}`, so a route
the lead names `{job_id}` or `{id}` finds its entry alike. Request bodies of `/train` and
`/create_training_job` come from the contracts tables (`arguments`); response shapes are
the specs' examples as JSON Schema: the keys the spec shows are required, more are allowed.
"""

from __future__ import annotations

from typing import Any

from contracts import statuses, text_hyperparameters, v15_arguments

from . import arguments

V15 = "/api/v1.5.0"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        **extra,
    }


def ok(**fields: Any) -> dict[str, Any]:
    """A v1.5 success body: `{"result": "OK", ...}`."""
    return obj({"result": {"const": "OK"}, **fields})


def ok_aif(**fields: Any) -> dict[str, Any]:
    """An AI Factory success body: `{"status": "success", ...}`."""
    return obj({"status": {"const": "success"}, **fields})


NUMBER = {"type": "number"}
INTEGER = {"type": "integer"}
STRING = {"type": "string"}
BASE64_JPEG = {"type": "string", "contentEncoding": "base64", "contentMediaType": "image/jpeg"}
NUMBERS = {"type": "array", "items": NUMBER}
FLAG = {"enum": [0, 1]}
METRICS_FIELD = {
    "type": "boolean",
    "default": False,
    "description": "also the `#metric name=value;` lines the trainers print for SageMaker's metric regexes",
}

# ------------------------------------------------------------------------ components


def _checkpoint_summary(metric: str) -> dict[str, Any]:
    return obj(
        {"epoch": INTEGER, "avg_loss": NUMBER, metric: NUMBER, "is_best": FLAG, "is_available": FLAG},
        {"bytes": {"type": "integer", "description": "Bytes the checkpoint holds (added to the spec)."}},
    )


def components() -> dict[str, Any]:
    exception = obj(
        {"code": {"enum": [*statuses.EXCEPTION_CODES.values(), statuses.OTHER_EXCEPTION]}, "type": STRING},
        {"message": STRING, "traceback": STRING},
    )
    log_page = obj(
        {
            "lines": {"type": "array", "items": STRING},
            "offset": INTEGER,
            "next_offset": INTEGER,
            "complete": {"type": "boolean"},
            "metrics": {"type": "boolean"},
        },
        description=(
            "A page of the trainer's stdout/stderr (secrets scrubbed); ask again from `next_offset`. "
            "`#metric` lines are left out unless `metrics` is true; offsets count every line, "
            "metric lines included."
        ),
    )
    schemas: dict[str, Any] = {
        "V15Error": obj(
            {"result": {"const": "Error"}, "message": STRING},
            description="Every v1.5 error: the status code says which kind.",
        ),
        "AiFactoryError": obj(
            {"status": {"const": "error"}, "message": STRING},
            description="Every AI Factory error: the status code says which kind.",
        ),
        "GatewayMessage": obj(
            {"message": STRING},
            description="Refused before any route runs: a missing or wrong `x-api-key` (API Gateway's shape).",
        ),
        "V15Ok": ok(),
        "V15Exception": {"oneOf": [{"type": "null"}, exception]},
        "V15Monitor": obj(
            ok(
                status={"enum": [*statuses.V15_ORDER, *statuses.V15_TERMINAL]},
                datetime=STRING,
                epoch=INTEGER,
                total_epoch=INTEGER,
                batch=INTEGER,
                total_batch=INTEGER,
                avg_loss=NUMBER,
                learning_rate=NUMBER,
                samples_per_sec=NUMBER,
                eta_hr=NUMBER,
                exception=ref("V15Exception"),
            )["properties"],
            {  # added to the spec's fields
                "phase": {
                    "enum": [statuses.TRAINING, statuses.EVALUATING, None],
                    "description": "While running: `training`, or `evaluating` during the validation pass "
                    "(eta_hr is then -1, unknown); null otherwise.",
                },
                "billable_seconds": {
                    "type": ["integer", "null"],
                    "description": "Instance seconds billed so far (SageMaker's BillableTimeInSeconds); "
                    "null until the platform reports it.",
                },
                "secondary_status": {
                    "type": "string",
                    "description": "The platform's secondary status: `WaitingForCapacity` while the job "
                    "waits in the capacity queue, `Interrupted`/`Restarting` after a spot interruption, ...",
                },
                "status_message": {"type": "string", "description": "Why the job waits, when it does."},
            },
        ),
        "V15Environment": ok(
            environment=obj(
                {
                    "hardware": obj({"devices": {"type": "array", "items": {"type": "object"}}}),
                    "software": obj(
                        {},
                        {
                            "python_version": {"type": ["string", "null"]},
                            "cuda_version": {"type": ["string", "null"]},
                            "cudnn_version": {"type": ["string", "null"]},
                        },
                    ),
                }
            )
        ),
        "V15Devices": ok(devices={"type": "array", "items": {"type": "object"}}),
        "V15HyperParameters": ok(**{"hyper-parameters": {"type": "object"}}),
        "V15Losses": ok(losses=NUMBERS),
        "V15Checkpoints": obj(
            ok(
                checkpoints={
                    "type": "array",
                    "items": {"anyOf": [_checkpoint_summary("accuracy"), _checkpoint_summary("mean_ap")]},
                }
            )["properties"],
            {  # added to the spec's fields
                "disk_bytes": {
                    "type": "integer",
                    "description": "Bytes the job holds in the artifact store (checkpoints, logs, plots, model).",
                },
            },
        ),
        "V15Reclaimed": ok(
            freed_bytes=INTEGER,
            disk_bytes=INTEGER,
            removed={"type": "array", "items": STRING},
        ),
        "V15Checkpoint": ok(
            checkpoint=obj(
                {
                    "epoch": INTEGER,
                    "avg_loss": NUMBER,
                    "metrics": obj({}, {"overall": {"type": "object"}, "specific": {"type": "object"}}),
                    "base64_metric_plot": {"anyOf": [BASE64_JPEG, {"type": "null"}]},
                    "is_best": FLAG,
                    "is_available": FLAG,
                },
                {
                    "classes": obj(
                        {
                            "total": INTEGER,
                            "offset": INTEGER,
                            "count": INTEGER,
                            "next_offset": {"type": ["integer", "null"]},
                        },
                        description="Only when the per-class metrics come a page at a time (over 3 MB "
                        "of them, or `class_offset` given): which classes this answer carries.",
                    )
                },
            )
        ),
        "V15Jobs": ok(
            jobs={
                "type": "array",
                "items": obj({"job_id": STRING, "task": STRING, "status": STRING, "created_at": STRING}),
            },
            next_token={"type": ["string", "null"], "description": "the next page's token; null on the last"},
        ),
        "LogPage": log_page,
        "V15Deployments": ok(
            deployments={
                "type": "array",
                "items": obj(
                    {"job_id": STRING, "epoch": INTEGER, "target_device_id": INTEGER},
                    {
                        "status": STRING,
                        "failure_reason": STRING,
                        # What the deployment holds: the server's RSS (children included) locally,
                        # the endpoint instance's memory on AWS; null when unknown.
                        "instance_type": {"type": ["string", "null"]},
                        "memory_bytes": {"type": ["integer", "null"], "minimum": 0},
                        "memory": {"type": ["string", "null"], "example": "812.4 MiB"},
                    },
                ),
            }
        ),
        "AiFactoryHyperParameters": arguments.hyperparameters_schema(),
        "AiFactoryCreate": _create_request(),
        "AiFactoryCreated": obj({"status": {"const": "success"}, "job_name": STRING}),
        "AiFactoryJobName": obj({"job_name": {"type": "string", "minLength": 1, "maxLength": 63}}),
        "TenantQuotas": obj(
            {},
            {
                "max_concurrent_jobs": {"type": ["integer", "null"], "minimum": 0},
                "max_deployments": {"type": ["integer", "null"], "minimum": 0},
                "instance_types": {"type": "array", "items": STRING},
            },
            description="A tenant's limits; null or empty is the stage's own limit.",
        ),
        "Tenant": obj(
            {
                "tenant_id": STRING,
                "name": STRING,
                "admin": {"type": "boolean"},
                "quotas": ref("TenantQuotas"),
            },
            {
                "key_prefix": STRING,
                "key_id": STRING,
                "created_at": STRING,
                "revoked_at": {"type": ["string", "null"]},
            },
            description="An API key's tenant: its jobs, deployments and links are seen by it (and admin keys) only.",
        ),
        "AiFactoryJobs": {
            "type": "array",
            "items": obj(
                {"TrainingJobStatus": STRING, "TrainingJobName": STRING, "CreationTime": STRING},
                {"TrainingEndTime": STRING},
            ),
        },
        "AiFactoryStatus": obj(
            {"status": STRING},
            {
                "message": STRING,
                "progress": obj(
                    {},
                    {
                        "step": INTEGER,
                        "total_steps": INTEGER,
                        "loss": NUMBER,
                        "learning_rate": NUMBER,
                        "samples_per_sec": NUMBER,
                        "eta_hr": NUMBER,
                        "updated_at": {"type": ["string", "null"]},
                    },
                ),
            },
        ),
        "AiFactoryStopped": obj(
            {"status": {"const": "success"}, "job_name": STRING, "TrainingJobStatus": STRING}
        ),
        "AiFactoryLogsRequest": obj(
            {"job_name": STRING},
            {
                "offset": {"type": "integer", "minimum": 0},
                "limit": {"type": "integer", "minimum": 1},
                "metrics": METRICS_FIELD,
            },
        ),
    }
    for task in v15_arguments.TASKS:
        title = "".join(part.title() for part in task.split("_"))
        schemas[f"V15Train{title}Form"] = arguments.train_schema(task, json_body=False)
        schemas[f"V15Train{title}Json"] = arguments.train_schema(task, json_body=True)
    return schemas


def _create_request() -> dict[str, Any]:
    headers = {"type": "object", "additionalProperties": STRING, "maxProperties": 50}
    url = {"type": "string", "format": "uri", "maxLength": 2048}
    return obj(
        {
            "callback_url": obj({"url": url}, {"headers": headers}),
            "dataset_endpoint": obj(
                {"url": url},
                {
                    "type": {"enum": ["fetch"], "default": "fetch"},
                    "headers": headers,
                    "pagination": obj(
                        {},
                        {
                            "begin_offset": {"type": "integer", "minimum": 0, "default": 0},
                            "page_size": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 100},
                            "max_pages": {"type": "integer", "minimum": 0, "default": 0},
                        },
                    ),
                },
            ),
            "training_model": obj(
                {
                    "image": {"type": "string", "minLength": 1, "maxLength": 512},
                    "resource": obj(
                        {"InstanceType": {"type": "string", "minLength": 1, "maxLength": 64}},
                        {
                            "InstanceCount": {"type": "integer", "minimum": 1, "default": 1},
                            "VolumeSizeInGB": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 16384,
                                "default": 5,
                            },
                        },
                    ),
                },
                {"hyperparameters": ref("AiFactoryHyperParameters")},
            ),
            "task_def": {"enum": ["ml_tagger", "ml_topic"]},
            "creator": {"type": "string", "minLength": 1, "maxLength": 256},
        },
        description=(
            "The spec's payload, as a JSON body or as form-data whose one field holds it. "
            f"Known hyper-parameters ({len(text_hyperparameters.ROWS)}) are checked by their rule."
        ),
    )


# ------------------------------------------------------------------------ operations


def _train_body() -> dict[str, Any]:
    def one_of(suffix: str) -> dict[str, Any]:
        names = ["V15TrainClassification", "V15TrainDetection", "V15TrainInstanceSegmentation"]
        return {"oneOf": [ref(name + suffix) for name in names]}

    return {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": one_of("Form")},
            "multipart/form-data": {"schema": one_of("Form")},
            "application/json": {"schema": one_of("Json")},
        },
    }


def _form(fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": fields, "required": required}
    return {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": schema},
            "multipart/form-data": {"schema": schema},
            "application/json": {"schema": schema},
        },
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": schema}, "multipart/form-data": {"schema": schema}},
    }


TASK = {"enum": list(v15_arguments.TASKS)}
EPOCH = {"type": "integer", "minimum": 1}
DEVICE = {"type": "integer", "minimum": -1}
THRESH = {"type": "number", "minimum": 0, "maximum": 1}
INFER_FIELDS = {
    "task": TASK,
    "epoch": EPOCH,
    "lower_prob_thresh": {**THRESH, "default": 0.7},
    "upper_prob_thresh": {**THRESH, "default": 1.0},
    "device_ids": {"type": "string", "example": "[0]"},
}
AUG_FIELDS = {
    "task": TASK,
    "data_dir": STRING,
    "index": {"type": "integer", "minimum": 0},
    **{
        arg.name: arguments.argument_schema(arg, json_body=False)
        for arg in v15_arguments.arguments_for("classification")
        if arg.name.startswith("aug_")
    },
}
LOG_QUERY = [
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {"name": "metrics", "in": "query", "schema": METRICS_FIELD},
]

# (method, path with `{}` parameters) -> summary, request body, success response, extras
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/create_training_job"): {
        "summary": "Start a text training job (ml_tagger, ml_topic)",
        "requestBody": _json(ref("AiFactoryCreate")),
        "ok": ref("AiFactoryCreated"),
    },
    ("POST", "/check_trained_job"): {"summary": "List AI Factory training jobs", "ok": ref("AiFactoryJobs")},
    ("GET", "/check_trained_job"): {"summary": "List AI Factory training jobs", "ok": ref("AiFactoryJobs")},
    ("POST", "/status"): {
        "summary": "Status and progress of an AI Factory job",
        "requestBody": _json(ref("AiFactoryJobName")),
        "ok": ref("AiFactoryStatus"),
    },
    ("POST", "/stop_training_job"): {
        "summary": "Stop an AI Factory job",
        "requestBody": _json(ref("AiFactoryJobName")),
        "ok": ref("AiFactoryStopped"),
    },
    ("POST", "/logs"): {
        "summary": "A page of an AI Factory job's logs",
        "requestBody": _json(ref("AiFactoryLogsRequest")),
        "ok": ref("LogPage"),
    },
    ("GET", "/models/{}"): {
        "summary": "Download a finished job's model.tar.gz (the callback's `model` URL)",
        "binary": "application/gzip",
    },
    ("GET", "/models/{}/signed"): {
        "summary": "Download a finished job's model.tar.gz with the callback's signed link (no API key)",
        "binary": "application/gzip",
        "parameters": [
            {"name": "expires", "in": "query", "required": True, "schema": {"type": "integer"}},
            {"name": "signature", "in": "query", "required": True, "schema": {"type": "string"}},
        ],
    },
    ("GET", "/tenants"): {
        "summary": "List the stage's tenants (API keys); the stage's key or an admin key",
        "ok": ok_aif(tenants={"type": "array", "items": ref("Tenant")}),
    },
    ("POST", "/tenants"): {
        "summary": "Make a tenant and its API key (shown once); the stage's key or an admin key",
        "requestBody": _json(
            obj({"name": STRING}, {"admin": {"type": "boolean"}, "quotas": ref("TenantQuotas")})
        ),
        "ok": ok_aif(tenant=ref("Tenant"), api_key=STRING),
    },
    ("DELETE", "/tenants/{}"): {
        "summary": "Revoke a tenant's keys (its work stays, seen by admin keys)",
        "ok": ok_aif(tenant=ref("Tenant")),
    },
    ("GET", "/api/version"): {"summary": "The v1.5 API version", "text": {"const": "v1.5.0"}},
    ("GET", V15 + "/environment"): {"summary": "Hardware and software", "ok": ref("V15Environment")},
    ("GET", V15 + "/devices"): {"summary": "Device usage", "ok": ref("V15Devices")},
    ("POST", V15 + "/train"): {
        "summary": "Start, resume or fine-tune a training job",
        "requestBody": _train_body(),
        # ignored_arguments: the arguments of another task the form carried (accepted, unused).
        "ok": ok(job_id=STRING, ignored_arguments={"type": "array", "items": STRING}),
    },
    ("GET", V15 + "/train"): {
        "summary": "List v1.5 training jobs, newest first, a page at a time",
        "parameters": [
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 100},
            },
            {"name": "next_token", "in": "query", "schema": {"type": "string"}},
        ],
        "ok": ref("V15Jobs"),
    },
    ("PATCH", V15 + "/train/{}"): {"summary": "Stop a training job", "ok": ref("V15Ok")},
    ("PUT", V15 + "/train/{}"): {"summary": "Restore (resume) a stopped job", "ok": ref("V15Ok")},
    ("DELETE", V15 + "/train/{}"): {"summary": "Clear a stopped or finished job", "ok": ref("V15Ok")},
    ("POST", V15 + "/train/{}/reclaim"): {
        "summary": "Free a finished job's space: weights of all but the best and deployed checkpoints, "
        "and the optimizer state (a later restore resumes with a fresh optimizer)",
        "ok": ref("V15Reclaimed"),
    },
    ("GET", V15 + "/train/{}"): {"summary": "Monitor a training job", "ok": ref("V15Monitor")},
    ("GET", V15 + "/train/{}/hyper-parameters"): {
        "summary": "The job's resolved hyper-parameters",
        "ok": ref("V15HyperParameters"),
    },
    ("GET", V15 + "/train/{}/losses"): {"summary": "Loss history", "ok": ref("V15Losses")},
    ("GET", V15 + "/train/{}/logs"): {
        "summary": "A page of the job's logs",
        "parameters": LOG_QUERY,
        "ok": ref("LogPage"),
    },
    ("GET", V15 + "/train/{}/checkpoints"): {"summary": "All checkpoints", "ok": ref("V15Checkpoints")},
    ("GET", V15 + "/train/{}/checkpoints/epoch/{}"): {
        "summary": "One checkpoint with its metrics and metric plot",
        "ok": ref("V15Checkpoint"),
        "parameters": [
            {
                "name": "class_offset",
                "in": "query",
                "schema": {"type": "integer", "minimum": 0, "default": 0},
                "description": "the first class of the page of per-class metrics (`classes.next_offset`)",
            }
        ],
    },
    ("GET", V15 + "/train/{}/plots/model-graph"): {
        "summary": "Plot of the model graph",
        "ok": ok(base64_model_graph_plot=BASE64_JPEG),
    },
    ("GET", V15 + "/train/{}/plots/loss"): {
        "summary": "Plot of the loss curve",
        "ok": ok(base64_loss_plot=BASE64_JPEG),
    },
    ("GET", V15 + "/train/{}/plots/confusion-matrix/epoch/{}"): {
        "summary": "Plot of a checkpoint's confusion matrix",
        "ok": ok(base64_confusion_matrix_plot=BASE64_JPEG),
    },
    ("GET", V15 + "/train/{}/plots/threshold/epoch/{}/class/{}"): {
        "summary": "Plot of threshold versus precision/recall (class 0 = mean)",
        "ok": ok(base64_threshold_plot=BASE64_JPEG),
    },
    ("POST", V15 + "/infer/{}"): {
        "summary": "Infer an image",
        "requestBody": _form(
            {
                **INFER_FIELDS,
                "returns_images": {"type": "boolean", "default": True},
                "path_to_image": STRING,
                "base64_image": BASE64_JPEG,
            },
            ["task", "epoch"],
        ),
        "ok": ok(),
    },
    ("POST", V15 + "/infer_multiple/{}"): {
        "summary": "Infer multiple images",
        "requestBody": _form(
            {
                **INFER_FIELDS,
                "path_to_image_pattern_list": {"type": "string", "example": "['/data/A/*.jpg']"},
            },
            ["task", "epoch", "path_to_image_pattern_list"],
        ),
        "ok": ok(),
    },
    ("GET", V15 + "/deploy/list"): {"summary": "List deployed checkpoints", "ok": ref("V15Deployments")},
    ("POST", V15 + "/deploy/{}"): {
        "summary": "Deploy a checkpoint",
        "requestBody": _form(
            {"task": TASK, "epoch": EPOCH, "target_device_id": DEVICE}, ["task", "epoch", "target_device_id"]
        ),
        "ok": ref("V15Ok"),
    },
    ("DELETE", V15 + "/deploy/{}"): {
        "summary": "Undeploy a checkpoint",
        "requestBody": _form({"epoch": EPOCH, "target_device_id": DEVICE}, ["epoch", "target_device_id"]),
        "ok": ref("V15Ok"),
    },
    ("POST", V15 + "/upgrade/{}"): {
        "summary": "Upgrade a job",
        "requestBody": _form({"task": TASK}, ["task"]),
        "ok": ok(upgraded={"type": "boolean"}, exception={"type": ["object", "null"]}),
    },
    ("POST", V15 + "/aug"): {
        "summary": "Preview data augmentation",
        "requestBody": _form(AUG_FIELDS, ["task", "data_dir", "index"]),
        "ok": ok(base64_aug_image=BASE64_JPEG),
    },
    ("POST", V15 + "/summarize/{}"): {
        "summary": "Summarize a checkpoint (FLOPs, parameters)",
        "requestBody": _form({"task": TASK, "epoch": EPOCH}, ["task", "epoch"]),
        "ok": ok(flops=STRING, params=STRING, param_keys={"type": "array", "items": STRING}),
    },
    ("POST", V15 + "/visualize/{}"): {
        "summary": "Visualize a parameter of a checkpoint",
        "requestBody": _form(
            {"task": TASK, "epoch": EPOCH, "param_key": STRING}, ["task", "epoch", "param_key"]
        ),
        "ok": ok(base64_image=BASE64_JPEG),
    },
}
