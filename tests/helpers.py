"""Helpers shared by the training tests (imported as ``helpers``: tests/ is on the path under pytest)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from minibert import BertConfig, BertForPreTraining

VOCAB = 64


class BatchList:
    """A fixed list of batches served in a cycle, with a position that checkpoints."""

    def __init__(self, batches: Sequence[dict[str, Tensor]]):
        self.batches = list(batches)
        self.position = 0

    def __iter__(self) -> "BatchList":
        return self

    def __next__(self) -> dict[str, Tensor]:
        batch = self.batches[self.position % len(self.batches)]
        self.position += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.position = int(state["position"])


def tiny_model(seed: int = 0, dropout: float = 0.1, hidden_size: int = 32) -> BertForPreTraining:
    torch.manual_seed(seed)
    return BertForPreTraining(BertConfig(vocab_size=VOCAB, hidden_size=hidden_size, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=32,
                                         hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout))


def make_batches(n: int, batch_size: int = 4, t: int = 16, seed: int = 0, masked_per_row: int = 3) -> list[dict]:
    """Random pretraining batches with the same number of masked positions in every row."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        input_ids = torch.randint(5, VOCAB, (batch_size, t), generator=g)
        labels = torch.full((batch_size, t), -100)
        for row in range(batch_size):
            positions = torch.randperm(t - 2, generator=g)[:masked_per_row] + 1
            labels[row, positions] = input_ids[row, positions]
            input_ids[row, positions] = 4
        batches.append({"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
                        "token_type_ids": torch.zeros_like(input_ids), "labels": labels,
                        "next_sentence_label": torch.randint(0, 2, (batch_size,), generator=g)})
    return batches
