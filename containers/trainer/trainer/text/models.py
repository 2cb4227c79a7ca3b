"""BiLSTM models of the text tasks, rebuilt from model.json's `model` block alone.

ml_tagger: embedding → BiLSTM (`nHiddenGate` units each way) → per-token projection
(`nHiddenTag`, tanh) → class scores. ml_topic: the same encoder, masked mean and max
pooling over time, then the same head. Sequences are packed, so padding never reaches
the LSTM and a sentence's scores do not depend on the batch it was in.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

ARCHITECTURES = {"ml_tagger": "bilstm_tagger", "ml_topic": "bilstm_pool_classifier"}


class BiLSTMEncoder(nn.Module):
    def __init__(self, vocab_size: int, embedding_size: int, hidden_gate: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(embedding_size, hidden_gate, batch_first=True, bidirectional=True)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.dropout(self.embedding(ids))
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = self.lstm(packed)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=ids.shape[1])
        return self.dropout(output)  # [B, T, 2 * hidden_gate]


def _head(inputs: int, hidden_tag: int, num_classes: int) -> nn.Module:
    if hidden_tag == 0:
        return nn.Linear(inputs, num_classes)
    return nn.Sequential(nn.Linear(inputs, hidden_tag), nn.Tanh(), nn.Linear(hidden_tag, num_classes))


class SlotTagger(nn.Module):
    def __init__(self, vocab_size, num_classes, embedding_size, hidden_gate, hidden_tag, dropout):
        super().__init__()
        self.encoder = BiLSTMEncoder(vocab_size, embedding_size, hidden_gate, dropout)
        self.head = _head(2 * hidden_gate, hidden_tag, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ids, lengths))  # [B, T, C]


class TopicClassifier(nn.Module):
    def __init__(self, vocab_size, num_classes, embedding_size, hidden_gate, hidden_tag, dropout):
        super().__init__()
        self.encoder = BiLSTMEncoder(vocab_size, embedding_size, hidden_gate, dropout)
        self.head = _head(4 * hidden_gate, hidden_tag, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        states = self.encoder(ids, lengths)
        mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths.to(ids.device)[:, None]
        mask = mask.unsqueeze(-1)
        mean = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
        peak = states.masked_fill(~mask, float("-inf")).amax(1)
        return self.head(torch.cat([mean, peak], dim=-1))  # [B, C]


def model_spec(task: str, vocab_size: int, num_classes: int, config) -> dict:
    """The `model` block of model.json: everything `build_model` needs."""
    return {
        "architecture": ARCHITECTURES[task],
        "vocab_size": vocab_size,
        "num_classes": num_classes,
        "embedding_size": config.embedding_size,
        "hidden_gate": config.hidden_gate,
        "hidden_tag": config.hidden_tag,
        "dropout": config.dropout,
        "add_start_end_words": config.add_start_end_words,
    }


def build_model(spec: dict) -> nn.Module:
    kind = {"bilstm_tagger": SlotTagger, "bilstm_pool_classifier": TopicClassifier}.get(spec["architecture"])
    if kind is None:
        raise ValueError(
            f"Unknown text architecture {spec['architecture']!r}. Choose one of: "
            f"{', '.join(ARCHITECTURES.values())}"
        )
    return kind(
        spec["vocab_size"],
        spec["num_classes"],
        spec["embedding_size"],
        spec["hidden_gate"],
        spec["hidden_tag"],
        spec["dropout"],
    )
