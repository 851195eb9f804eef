"""The optimiser and the learning-rate schedule, one builder for pretraining and fine-tuning alike.

* AdamW with two parameter groups: weight decay pulls weights towards zero, which makes no sense for
  biases and LayerNorm gains/offsets, so those get none (BERT's recipe).
* ``eps = 1e-6`` by default: the value of Google's BERT optimiser for pretraining and fine-tuning
  both (``optimization.py``). PyTorch's and transformers' default is 1e-8; the difference only shows
  for parameters whose gradients are tiny, and one value for both entry points is simpler to reason
  about. ``--adam-eps`` changes it.
* Fused AdamW (one kernel for the whole update) where the platform has it, torch's default otherwise.
* Linear warm-up then linear decay to 0 (``LambdaLR``): Adam's early updates are noisy; a small
  learning rate at first keeps a post-LN Transformer from diverging.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

DEFAULT_ADAM_EPS = 1e-6


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: matrices and embeddings decay; biases and LayerNorm parameters do not.
    A tied parameter (the MLM decoder is the word-embedding matrix) appears once."""
    no_decay_ids = set()
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay, seen = [], [], set()
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        if id(param) in no_decay_ids or name.endswith("bias"):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, learning_rate: float, weight_decay: float,
                   betas: tuple[float, float] = (0.9, 0.999), eps: float = DEFAULT_ADAM_EPS,
                   fused: bool = True) -> torch.optim.AdamW:
    """AdamW over ``param_groups``; fused when asked for and supported, else torch's default kernel."""
    groups = param_groups(model, weight_decay)
    options = dict(lr=learning_rate, betas=tuple(betas), eps=eps)
    if fused:
        try:
            return torch.optim.AdamW(groups, fused=True, **options)
        except (RuntimeError, TypeError, ValueError):
            pass  # this device/dtype has no fused kernel
    return torch.optim.AdamW(groups, **options)


def linear_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning-rate factor rising linearly 0 -> 1 over ``warmup_steps``, then falling linearly to 0
    at ``total_steps``."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps  # never exactly 0: the first update already moves
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
