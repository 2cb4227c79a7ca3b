import pytest

from dataset_fetcher import DatasetError, validate_record


@pytest.mark.parametrize(
    ("task", "record", "problem"),
    [
        ("ml_tagger", ["a"], "expected a JSON object"),
        ("ml_tagger", {"tokens": ["a"]}, "'tags' must be a list"),
        ("ml_tagger", {"tokens": "a b", "tags": ["O", "O"]}, "'tokens' must be a list"),
        ("ml_tagger", {"text": "", "tags": []}, "no tokens"),
        ("ml_tagger", {"text": "a b", "tags": ["O", None]}, "tag 1 is None"),
        ("ml_tagger", {"tags": ["O"]}, "expected {'tokens'"),
        ("ml_topic", {"text": "a"}, "missing 'label'"),
        ("ml_topic", {"text": " ", "label": "x"}, "'text' must be a non-empty string"),
        ("ml_topic", {"text": "a", "label": 1.5}, "'label' is 1.5"),
    ],
)
def test_malformed(task, record, problem):
    with pytest.raises(DatasetError, match=f"record at offset 42: .*{problem[:12]}"):
        validate_record(task, record, 42)


def test_int_tags_become_strings():
    assert validate_record("ml_tagger", {"tokens": ["a", "b"], "tags": [0, 1]}, 0)["tags"] == ["0", "1"]


def test_unknown_task():
    with pytest.raises(ValueError, match="Choose one of: ml_tagger, ml_topic"):
        validate_record("detection", {}, 0)
