"""Checks dataset records and normalises them to what the text trainer consumes.

Normalised shapes: `{"tokens": [str, ...], "tags": [str, ...]}` for ml_tagger and
`{"text": str, "label": str}` for ml_topic. Tags and labels may arrive as ints (class
indices); they are turned into strings so one vocabulary type serves both.
"""

from __future__ import annotations

from typing import Any

from dataset_fetcher.errors import DatasetError

TASKS = ("ml_tagger", "ml_topic")


def _label(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int):
        return str(value)
    return None


def _bad(offset: int, problem: str) -> DatasetError:
    return DatasetError(f"Malformed dataset record at offset {offset}: {problem}")


def _tagger(record: dict, offset: int) -> dict:
    tags = record.get("tags")
    if not isinstance(tags, list):
        raise _bad(offset, "'tags' must be a list of tags")
    if "tokens" in record:
        tokens = record["tokens"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            raise _bad(offset, "'tokens' must be a list of non-empty strings")
    elif isinstance(record.get("text"), str):
        tokens = record["text"].split()
    else:
        raise _bad(offset, "expected {'tokens': [...], 'tags': [...]} or {'text': '...', 'tags': [...]}")
    if not tokens:
        raise _bad(offset, "the record has no tokens")
    if len(tokens) != len(tags):
        raise _bad(offset, f"{len(tokens)} tokens but {len(tags)} tags; each token needs exactly one tag")
    labels = [_label(t) for t in tags]
    if None in labels:
        index = labels.index(None)
        raise _bad(offset, f"tag {index} is {tags[index]!r}; tags must be non-empty strings or integers")
    return {"tokens": list(tokens), "tags": labels}


def _topic(record: dict, offset: int) -> dict:
    text = record.get("text")
    if not isinstance(text, str) or not text.split():
        raise _bad(offset, "'text' must be a non-empty string")
    if "label" not in record:
        raise _bad(offset, "missing 'label'; expected {'text': '...', 'label': '...'}")
    label = _label(record["label"])
    if label is None:
        raise _bad(offset, f"'label' is {record['label']!r}; it must be a non-empty string or an integer")
    return {"text": text, "label": label}


def validate_record(task: str | None, record: Any, offset: int) -> dict:
    """Returns the normalised record or raises DatasetError naming `offset` and the problem.

    `task=None` only checks that the record is a JSON object, for callers that just page.
    """
    if not isinstance(record, dict):
        raise _bad(offset, f"expected a JSON object, got {type(record).__name__}")
    if task is None:
        return record
    if task == "ml_tagger":
        return _tagger(record, offset)
    if task == "ml_topic":
        return _topic(record, offset)
    raise ValueError(f"Invalid task {task!r} for dataset records. Choose one of: {', '.join(TASKS)}")
