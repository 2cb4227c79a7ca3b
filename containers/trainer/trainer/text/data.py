"""Records → vocabularies → padded tensor batches, with a deterministic train/held-out split.

The split and the batch order depend only on the seed and the record order, so a resumed
attempt sees the same held-out set and continues the same batch sequence from its step.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from contracts.job_config import FETCH, DataSource
from dataset_fetcher import iter_records
from trainer.text.config import TextConfig

log = logging.getLogger("trainer.text")

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)
IGNORE_INDEX = -100  # targets of padding and of the <s>/</s> tokens: no loss, no metric


def load_records(
    data: DataSource, task: str, headers: dict[str, str], should_stop: Callable[[], bool]
) -> list[dict]:
    """Streams the dataset endpoint's pages (fetched ahead, in order) into a list of records."""
    if data.type != FETCH:
        raise ValueError(
            f"{task} reads its records from a dataset endpoint (data.type 'fetch'); got {data.type!r}"
        )
    pagination = data.pagination or {}
    begin = int(pagination.get("begin_offset", 0))
    page_size = int(pagination.get("page_size", 100))
    max_pages = int(pagination.get("max_pages", 0))
    records = []
    for record in iter_records(data.url, headers, begin, page_size, max_pages, task):
        records.append(record)
        if should_stop():
            log.warning("Stop requested while fetching the dataset (%d records so far)", len(records))
            break
    log.info("Fetched %d records from offset %d (page size %d)", len(records), begin, page_size)
    return records


def split_records(records: list[dict], holdout_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    if len(records) < 2:
        raise ValueError(
            f"The dataset has {len(records)} record(s); at least 2 are needed to train and hold one out"
        )
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    held = min(len(records) - 1, max(1, round(len(records) * holdout_fraction)))
    heldout = sorted(order[:held])
    train = sorted(order[held:])
    return [records[i] for i in train], [records[i] for i in heldout]


def tokens_of(task: str, record: dict) -> list[str]:
    return record["tokens"] if task == "ml_tagger" else record["text"].split()


def labels_of(task: str, record: dict) -> list[str]:
    return record["tags"] if task == "ml_tagger" else [record["label"]]


def build_vocab(token_lists: Iterable[list[str]], vocab_size: int) -> list[str]:
    """Most frequent first (ties by text), after the specials; `vocab_size` caps the total."""
    counts = Counter(token for tokens in token_lists for token in tokens)
    words = sorted((w for w in counts if w not in SPECIALS), key=lambda w: (-counts[w], w))
    vocab = list(SPECIALS) + words
    if vocab_size > 0:
        if vocab_size <= len(SPECIALS):
            raise ValueError(
                f"Invalid hyper-parameter model.vocabSize={vocab_size}: it must exceed the "
                f"{len(SPECIALS)} special tokens ({', '.join(SPECIALS)})"
            )
        if len(vocab) > vocab_size:
            log.info(
                "Vocabulary capped at model.vocabSize=%d (of %d distinct tokens)", vocab_size, len(vocab)
            )
        vocab = vocab[:vocab_size]
    return vocab


def build_classes(label_lists: Iterable[list[str]], num_classes: int) -> list[str]:
    """Sorted labels (numerically when all are integers); a label's index is its class `no`."""
    labels = {label for labels in label_lists for label in labels}
    if all(label.lstrip("-").isdigit() for label in labels):
        classes = sorted(labels, key=int)
    else:
        classes = sorted(labels)
    if num_classes > 0 and len(classes) > num_classes:
        raise ValueError(
            f"Invalid hyper-parameter model.numClasses={num_classes}: the data has {len(classes)} classes "
            f"({', '.join(classes[:20])}{', ...' if len(classes) > 20 else ''}); use -1 to infer it"
        )
    return classes


@dataclass
class Example:
    ids: list[int]
    target: list[int] | int


@dataclass
class Batch:
    ids: torch.Tensor  # [B, T] token ids, PAD = 0
    lengths: torch.Tensor  # [B] on the CPU (pack_padded_sequence wants it there)
    target: torch.Tensor  # [B, T] tags (IGNORE_INDEX where none) or [B] labels

    def to(self, device: torch.device) -> Batch:
        return Batch(self.ids.to(device), self.lengths, self.target.to(device))

    def __len__(self) -> int:
        return self.ids.shape[0]


class Encoder:
    """Turns normalised records into id sequences with the vocabularies of one model."""

    def __init__(self, task: str, vocab: list[str], classes: list[str], add_start_end_words: bool):
        self.task = task
        self.vocab = vocab
        self.classes = classes
        self.add_start_end_words = add_start_end_words
        self.stoi = {w: i for i, w in enumerate(vocab)}
        self.class_index = {c: i for i, c in enumerate(classes)}
        self.unk = self.stoi[UNK]

    def ids(self, tokens: list[str]) -> list[int]:
        ids = [self.stoi.get(t, self.unk) for t in tokens]
        if self.add_start_end_words:
            ids = [self.stoi[BOS], *ids, self.stoi[EOS]]
        return ids

    def _class(self, label: str) -> int:
        try:
            return self.class_index[label]
        except KeyError:
            raise ValueError(
                f"Label {label!r} is not one of the model's classes ({', '.join(self.classes[:20])})"
            ) from None

    def encode(self, record: dict) -> Example:
        ids = self.ids(tokens_of(self.task, record))
        if self.task == "ml_topic":
            return Example(ids, self._class(record["label"]))
        tags = [self._class(t) for t in record["tags"]]
        if self.add_start_end_words:
            tags = [IGNORE_INDEX, *tags, IGNORE_INDEX]
        return Example(ids, tags)


def collate(examples: list[Example]) -> Batch:
    lengths = torch.tensor([len(e.ids) for e in examples], dtype=torch.long)
    width = int(lengths.max())
    ids = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        ids[row, : len(example.ids)] = torch.tensor(example.ids)
    if isinstance(examples[0].target, int):
        target = torch.tensor([e.target for e in examples], dtype=torch.long)
    else:
        target = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        for row, example in enumerate(examples):
            target[row, : len(example.target)] = torch.tensor(example.target)
    return Batch(ids, lengths, target)


class StepBatches:
    """Training batch number `step`: epoch `step // per_epoch` in a seeded per-epoch order.

    With several processes (`world` > 1) every rank draws the same epoch order and takes
    every `world`-th example of it from position `rank`, as torch's DistributedSampler
    does: disjoint shards of equal length (the ragged tail dropped), so every rank runs
    the same number of steps. `batch_size` is per process, as in the vision trainer.
    """

    def __init__(self, examples: list[Example], batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if len(examples) < world:
            raise ValueError(
                f"{len(examples)} training record(s) cannot be shared by {world} processes; "
                "add records or use fewer GPUs/instances"
            )
        self.examples = examples
        self.rank, self.world = rank, world
        self.shard = len(examples) // world
        self.batch_size = min(batch_size, self.shard)
        self.per_epoch = max(1, self.shard // self.batch_size)  # drop the ragged tail
        self.seed = seed
        self._order: tuple[int, list[int]] | None = None

    def epoch_of(self, step: int) -> int:
        return step // self.per_epoch

    def __call__(self, step: int) -> Batch:
        epoch, index = divmod(step, self.per_epoch)
        if self._order is None or self._order[0] != epoch:
            order = list(range(len(self.examples)))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
            self._order = (epoch, order[self.rank :: self.world][: self.shard])
        picked = self._order[1][index * self.batch_size : (index + 1) * self.batch_size]
        return collate([self.examples[i] for i in picked])


def eval_batches(examples: list[Example], batch_size: int, max_batches: int) -> Iterable[Batch]:
    """Held-out batches in order; `max_batches` 0 reads them all (process.eval.steps)."""
    count = 0
    for start in range(0, len(examples), batch_size):
        if max_batches and count >= max_batches:
            return
        count += 1
        yield collate(examples[start : start + batch_size])


@dataclass
class TextData:
    encoder: Encoder
    train: list[Example]
    heldout: list[Example]


def extend_vocab(base: list[str], token_lists: Iterable[list[str]], vocab_size: int) -> list[str]:
    """`base` unchanged (its ids keep their embeddings), then this data's new words, most frequent
    first; `vocab_size` > 0 caps the total, never below `base`."""
    known = set(base)
    counts = Counter(token for tokens in token_lists for token in tokens if token not in known)
    new = sorted(counts, key=lambda w: (-counts[w], w))
    room = max(0, vocab_size - len(base)) if vocab_size > 0 else len(new)
    if len(new) > room:
        log.info("Vocabulary extension capped at model.vocabSize=%d (%d new words)", vocab_size, len(new))
    return [*base, *new[:room]]


def check_labels(task: str, records: list[dict], classes: list[str], source: str) -> None:
    """A fine-tuned model keeps its source's classes (their `no` stays the same): the data may
    use fewer of them, never others."""
    unknown = sorted({label for r in records for label in labels_of(task, r)} - set(classes))
    if unknown:
        what = "tags" if task == "ml_tagger" else "labels"
        raise ValueError(
            f"model.finetuneFrom={source}: the data's {what} {', '.join(unknown[:20])} are not among the "
            f"source model's classes ({', '.join(classes[:40])}); fine-tune from a job trained on the same "
            f"{what}, or train from scratch without model.finetuneFrom"
        )


def prepare_data(
    task: str,
    records: list[dict],
    config: TextConfig,
    saved: dict | None = None,
    base: dict | None = None,
    base_name: str = "",
) -> TextData:
    """Splits and encodes; `saved` (a checkpoint's model.json) pins the vocabularies on resume;
    `base` (the fine-tuning source's model.json) is extended by this data's new words and must
    cover its labels."""
    train, heldout = split_records(records, config.holdout_fraction, config.seed)
    if saved is not None:
        vocab, classes = saved["vocab"], saved["classes"]
        add_start_end_words = bool(saved["model"]["add_start_end_words"])
    elif base is not None:
        classes = list(base["classes"])
        check_labels(task, records, classes, base_name)
        vocab = extend_vocab(list(base["vocab"]), (tokens_of(task, r) for r in train), config.vocab_size)
        add_start_end_words = bool(base["model"]["add_start_end_words"])
        log.info(
            "Fine-tuning from %s: %d known words, %d new",
            base_name,
            len(base["vocab"]),
            len(vocab) - len(base["vocab"]),
        )
    else:
        vocab = build_vocab((tokens_of(task, r) for r in train), config.vocab_size)
        classes = build_classes((labels_of(task, r) for r in records), config.num_classes)
        add_start_end_words = config.add_start_end_words
    encoder = Encoder(task, vocab, classes, add_start_end_words)
    log.info(
        "%d training and %d held-out records, %d tokens in the vocabulary, %d classes",
        len(train),
        len(heldout),
        len(vocab),
        len(classes),
    )
    return TextData(encoder, [encoder.encode(r) for r in train], [encoder.encode(r) for r in heldout])
