"""From encoded rows to padded batches, for pretraining and fine-tuning alike.

A row is a dict of plain lists and numbers: ``input_ids``, ``token_type_ids`` (per token),
``labels`` (per token for masked LM, one number for classification), ``next_sentence_label``.
``collate`` pads a list of rows to the longest one; ``EpochBatches`` serves a list of rows as
endless, shuffled, resumable batches (an epoch after another) for the ``Trainer``.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from minibert.checks import check_positive_int
from minibert.errors import InputError

IGNORE_INDEX = -100  # the label the losses skip: padding and unmasked positions

Row = dict[str, Any]


def collate(rows: Sequence[Row], pad_id: int = 0) -> dict[str, Tensor]:
    """Pad rows to the longest one. Per-token lists become (b, t) tensors, padded with ``pad_id`` for
    ``input_ids``, -100 for ``labels`` (ignored by the loss) and 0 otherwise; per-row values become
    (b,) tensors. ``attention_mask`` (b, t) is 1 on real tokens, 0 on padding."""
    if not rows:
        raise InputError("collate needs at least one row")
    b, t = len(rows), max(len(row["input_ids"]) for row in rows)
    batch: dict[str, Tensor] = {}
    for key in rows[0]:
        values = [row[key] for row in rows]
        if isinstance(values[0], (list, tuple)):  # one value per token
            fill = pad_id if key == "input_ids" else IGNORE_INDEX if key == "labels" else 0
            padded = torch.full((b, t), fill, dtype=torch.long)                    # (b, t)
            for i, value in enumerate(values):
                padded[i, :len(value)] = torch.tensor(value, dtype=torch.long)
            batch[key] = padded
        else:  # one value per row
            batch[key] = torch.tensor(values)                                      # (b,)
    if "attention_mask" not in batch:
        lengths = torch.tensor([len(row["input_ids"]) for row in rows])            # (b,)
        batch["attention_mask"] = (torch.arange(t) < lengths[:, None]).long()       # (b, t)
    return batch


class EpochBatches:
    """Endless batches of ``rows``: each epoch a new order (seeded by ``seed`` and the epoch number,
    the same on every rank), cut into batches of ``batch_size``; under DDP rank ``r`` of ``w`` takes
    every ``w``-th row of that order (a remainder of fewer than ``w`` rows sits the epoch out, so all
    ranks see the same number of batches). The position (batches served) is its whole state:
    ``state_dict``/``load_state_dict`` resume exactly."""

    def __init__(self, rows: Sequence[Row], batch_size: int, collate_rows: Callable[[Sequence[Row]], Any] = collate,
                 *, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1):
        check_positive_int("batch_size", batch_size)
        check_positive_int("world_size", world_size)
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise InputError(f"rank must be in [0, world_size={world_size}), got {rank!r}")
        self.rows = list(rows)
        self.rows_per_rank = len(self.rows) // world_size
        if self.rows_per_rank == 0:
            raise InputError(f"{len(self.rows)} row(s) cannot be shared among {world_size} process(es)")
        self.batch_size, self.collate_rows = batch_size, collate_rows
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, seed, rank, world_size
        self.batches_per_epoch = math.ceil(self.rows_per_rank / batch_size)
        self.position = 0
        self._epoch, self._mine = -1, []

    def _rows_of_epoch(self, epoch: int) -> list[int]:
        order = list(range(len(self.rows)))
        if self.shuffle:
            random.Random(f"minibert-epochs/{self.seed}/{epoch}").shuffle(order)
        return order[self.rank:self.rows_per_rank * self.world_size:self.world_size]

    def __iter__(self) -> "EpochBatches":
        return self

    def __next__(self) -> Any:
        epoch, index = divmod(self.position, self.batches_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._mine = epoch, self._rows_of_epoch(epoch)
        chosen = self._mine[index * self.batch_size:(index + 1) * self.batch_size]
        self.position += 1
        return self.collate_rows([self.rows[i] for i in chosen])

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position, "seed": self.seed, "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        for key in ("seed", "world_size"):
            if state.get(key, getattr(self, key)) != getattr(self, key):
                raise InputError(f"the saved data position has {key}={state[key]}, these batches have "
                                 f"{key}={getattr(self, key)}: resume with the same settings")
        self.position = int(state["position"])
