"""Held-out clozes: how well a masked LM fills in hidden word pieces from their context.

A cloze is ``{"tokens": [...], "answers": [...]}``: word pieces with ``[MASK]`` where a piece is
hidden, and the hidden pieces in order. Every hidden piece is ``[MASK]`` (no 80/10/10 as in training),
so the model gets no hint. Three measures, used by ``scripts/fill_mask_model.py``, notebook 4 and
``tests/test_fill_mask_model.py`` (``docs/results/fillmask.md`` reports them):

* ``cloze_accuracy``: the model's top-1 / top-5 accuracy;
* ``frequency_accuracy``: the baseline that ignores the context, always the most frequent pieces;
* ``shuffled_context``: the same cloze with its visible pieces in a random order, masks in place: a
  model that only learnt which pieces are common scores the same on it.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import torch
from torch import nn

from minibert.errors import InputError

Cloze = dict[str, Any]


@torch.inference_mode()
def cloze_accuracy(model: nn.Module, tokenizer: Any, clozes: Sequence[Cloze],
                   batch_size: int = 32) -> dict[str, float]:
    """Top-1 and top-5 accuracy of a masked LM on clozes: each ``{"tokens": [...], "answers": [...]}``,
    word pieces with ``[MASK]`` where a piece is hidden and the hidden pieces in order. Every hidden
    piece is ``[MASK]``. Runs the model in eval mode (no dropout) and gives it back in the mode it came in."""
    was_training = model.training
    model.eval()
    try:
        return _cloze_hits(model, tokenizer, clozes, batch_size)
    finally:
        model.train(was_training)


def _cloze_hits(model: nn.Module, tokenizer: Any, clozes: Sequence[Cloze], batch_size: int) -> dict[str, float]:
    hits1 = hits5 = total = 0
    for start in range(0, len(clozes), batch_size):
        rows, answers = [], []
        for number, cloze in enumerate(clozes[start:start + batch_size], start):
            tokens, hidden = list(cloze["tokens"]), list(cloze["answers"])
            if tokens.count(tokenizer.mask_token) != len(hidden):
                raise InputError(f"cloze {number} has {tokens.count(tokenizer.mask_token)} {tokenizer.mask_token} "
                                 f"and {len(hidden)} answers")
            rows.append(tokenizer.convert_tokens_to_ids([tokenizer.cls_token, *tokens, tokenizer.sep_token]))
            answers += tokenizer.convert_tokens_to_ids(hidden)
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)                    # (b, t)
        for i, row in enumerate(rows):
            input_ids[i, :len(row)] = torch.tensor(row)
        attention_mask = (torch.arange(width) < torch.tensor([len(r) for r in rows])[:, None]).long()  # (b, t)
        out = model(input_ids, attention_mask)  # BertForMaskedLM: .logits; BertForPreTraining: .prediction_logits
        logits = out.prediction_logits if hasattr(out, "prediction_logits") else out.logits  # (b, t, v)
        top5 = logits[input_ids == tokenizer.mask_token_id].topk(5, dim=-1).indices          # (n, 5), in order
        targets = torch.tensor(answers)                                                      # (n,)
        hits1 += int((top5[:, 0] == targets).sum())
        hits5 += int((top5 == targets[:, None]).any(-1).sum())
        total += len(answers)
    return {"top1": hits1 / max(total, 1), "top5": hits5 / max(total, 1), "masked": total}


def frequency_accuracy(clozes: Sequence[Cloze], most_frequent: Sequence[str]) -> dict[str, float]:
    """Top-1 / top-5 accuracy of always answering ``most_frequent`` (pieces, most frequent first)."""
    answers = [a for cloze in clozes for a in cloze["answers"]]
    top5 = set(most_frequent[:5])
    return {"top1": sum(a == most_frequent[0] for a in answers) / max(len(answers), 1),
            "top5": sum(a in top5 for a in answers) / max(len(answers), 1), "masked": len(answers)}


def shuffled_context(cloze: Cloze, rng: random.Random, mask_token: str = "[MASK]") -> Cloze:
    """``cloze`` with its visible pieces shuffled by ``rng``; the masks and answers stay where they are."""
    visible = [t for t in cloze["tokens"] if t != mask_token]
    rng.shuffle(visible)
    pieces = iter(visible)
    return {"tokens": [t if t == mask_token else next(pieces) for t in cloze["tokens"]], "answers": cloze["answers"]}
