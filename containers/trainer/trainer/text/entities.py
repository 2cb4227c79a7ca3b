"""Entity-level precision, recall and F1 of a tagger, as seqeval (and CoNLL's conlleval) count them.

Per-tag scores say how many tokens were right; a slot filler needs whole spans: an entity
counts only when its type, first and last token all match. Spans are read the way seqeval's
default mode reads them (`seqeval.metrics.sequence_labeling.get_entities`, itself
conlleval's rules): IOB1/IOB2 and IOBES prefixes (`B-`, `I-`, `E-`, `S-`), an `I-` after
`O` or after another type starts a span, a type change ends one. Scores are micro averages
over all entities (seqeval's `f1_score` default); `support` is the number of true entities.

Written out here (about forty lines) rather than pinned: seqeval's last release (1.2.2,
2020) pulls scikit-learn into the image for a report we format ourselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PREFIXES = ("B", "I", "E", "S")


def is_span_scheme(classes: Iterable[str]) -> bool:
    """True when every class is `O` or `<B|I|E|S>-<type>` and at least one is an entity tag."""
    classes = list(classes)
    entity = [c for c in classes if c != "O"]
    return bool(entity) and all(len(c) > 2 and c[0] in PREFIXES and c[1] == "-" for c in entity)


def _split(tag: str) -> tuple[str, str]:
    if tag == "O" or len(tag) < 3 or tag[1] != "-" or tag[0] not in PREFIXES:
        return "O", ""
    return tag[0], tag[2:]


def _ends(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (
        prev_tag in ("E", "S")
        or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
        or (prev_tag != "O" and prev_type != type_)
    )


def _starts(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (
        tag in ("B", "S")
        or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
        or (tag != "O" and prev_type != type_)
    )


def spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """`(type, first, last)` of every entity in one sentence's tags (anything else reads as O)."""
    found = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, chunk in enumerate([*tags, "O"]):
        tag, type_ = _split(chunk)
        if _ends(prev_tag, tag, prev_type, type_):
            found.append((prev_type, begin, i - 1))
        if _starts(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return found


@dataclass
class EntityCounts:
    """Matched, predicted and true entities, accumulated sentence by sentence."""

    correct: int = 0
    predicted: int = 0
    true: int = 0
    by_type: dict[str, list[int]] = field(default_factory=dict)  # type -> [correct, predicted, true]

    def add(self, true_tags: Sequence[str], predicted_tags: Sequence[str]) -> None:
        true, predicted = set(spans(true_tags)), set(spans(predicted_tags))
        self.correct += len(true & predicted)
        self.predicted += len(predicted)
        self.true += len(true)
        for index, group in enumerate((true & predicted, predicted, true)):
            for type_, _, _ in group:
                self.by_type.setdefault(type_, [0, 0, 0])[index] += 1

    def scores(self) -> dict:
        """Floats, zero where undefined (seqeval's zero_division default); plus `types`."""
        return {**_prf(self.correct, self.predicted, self.true), "types": self._types()}

    def _types(self) -> dict[str, dict]:
        return {t: _prf(*counts) for t, counts in sorted(self.by_type.items())}


def _prf(correct: int, predicted: int, true: int) -> dict:
    precision = correct / predicted if predicted else 0.0
    recall = correct / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1-score": f1, "support": true}


def callback_entry(scores: dict) -> dict:
    """The callback's string format (two decimals, support an integer), as `log.avg`."""
    out = {key: f"{scores[key]:.2f}" for key in ("precision", "recall", "f1-score")}
    out["support"] = str(scores["support"])
    return out
