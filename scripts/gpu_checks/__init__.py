"""The paths `make gpu-check` (scripts/gpu_check.py) runs, one module each.

Each path runs the project's own code (the trainer's data pipeline, engine and models, the
inference server, the probe behind `/api/v1.5.0/devices`, the trainer image) and returns one
`common.Row` for the table. Only the standard library, torch and what the GPU machine's
python3 already holds are imported, so the check runs there with no project venv.
"""
