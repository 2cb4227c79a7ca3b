"""The contracts between the API (chalicelib) and the containers (trainer, inference).

Each rule the two sides share is written here once and imported by both: the Lambda
gets this package through `vendor/contracts`, the images copy it beside their code.
Standard library only, so the lean API Lambda can ship it.

- `layout`: where every artifact of a job lives (`jobs/<job_id>/...`) and job.json's version.
- `job_config`: `JobConfig`, job.json itself (the one writer and reader of the file).
- `metrics`: metric names the trainers print and the SageMaker MetricDefinitions built from them.
- `statuses`: platform (SageMaker) statuses, v1.5 monitor statuses, exception codes.
- `text_hyperparameters`: the AI Factory text tasks' hyper-parameter table.
- `v15_arguments`: the v1.5 `/train` argument table, defaults and resolution.
- `errors`: `ArgumentError`, the one exception both sides raise for a bad value.
- `api_names`: the two API surfaces' names, as a job record's `api` field holds them.
- `heartbeat`: progress.json's fields and defaults (the trainer writes, both APIs read).
- `timeutil`: the one time format ("YYYY-mm-dd HH:MM:SS", UTC) both sides stamp.

docs/contracts.md describes the files; this package is their executable form.
"""
