"""Checks on what callers pass to a model, done before any heavy work.

Every problem becomes an ``InputError`` (a ValueError) or ``InputTypeError`` (a TypeError) that names
the argument and the offending value, instead of an IndexError from deep inside an embedding lookup.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from minibert.config import BertConfig
from minibert.errors import InputError, InputTypeError

_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _as_tensor(name: str, value) -> Tensor:
    if not isinstance(value, Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _check_ids(name: str, ids: Tensor, upper: int, shape: tuple[int, ...], bound_name: str) -> Tensor:
    ids = _as_tensor(name, ids)
    if ids.dtype not in _INT_DTYPES:
        raise InputTypeError(f"{name} must be an integer tensor, got dtype {ids.dtype}")
    if tuple(ids.shape) != shape:
        raise InputError(f"{name} has shape {tuple(ids.shape)}, expected {shape} (the shape of input_ids)")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= upper:
        bad = lo if lo < 0 else hi
        raise InputError(f"{name} contains {bad}, outside [0, {bound_name}={upper})")
    return ids.long()


def check_inputs(config: BertConfig, input_ids: Tensor, attention_mask: Optional[Tensor],
                 token_type_ids: Optional[Tensor], position_ids: Optional[Tensor]
                 ) -> tuple[Tensor, Optional[Tensor], Tensor, Tensor]:
    """Validate and normalise. Returns (input_ids, attention_mask as bool (b, t) or None,
    token_type_ids (b, t), position_ids (b, t) or (1, t))."""
    input_ids = _as_tensor("input_ids", input_ids)
    if input_ids.dim() != 2:
        raise InputError(f"input_ids must have shape (batch, sequence), got shape {tuple(input_ids.shape)}")
    b, t = input_ids.shape
    if b == 0 or t == 0:
        raise InputError(f"input_ids is empty (shape {tuple(input_ids.shape)}): nothing to encode")
    if t > config.max_position_embeddings:
        raise InputError(
            f"input_ids has {t} positions, more than max_position_embeddings={config.max_position_embeddings}; "
            "truncate the input (tokenizer(..., truncation=True))"
        )
    input_ids = _check_ids("input_ids", input_ids, config.vocab_size, (b, t), "vocab_size")

    if attention_mask is not None:
        mask = _as_tensor("attention_mask", attention_mask)
        if tuple(mask.shape) != (b, t):
            raise InputError(f"attention_mask has shape {tuple(mask.shape)}, expected {(b, t)} like input_ids")
        if mask.dtype == torch.bool:
            attention_mask = mask
        elif mask.dtype in _INT_DTYPES or mask.is_floating_point():
            # One meaning for every dtype: 1 = attend, 0 = padding. Anything else is ambiguous.
            if not bool(((mask == 0) | (mask == 1)).all()):
                bad = mask[(mask != 0) & (mask != 1)][0].item()
                raise InputError(f"attention_mask must hold only 0 and 1 (1 = attend), found {bad}")
            attention_mask = mask == 1
        else:
            raise InputTypeError(f"attention_mask must be bool, integer or float, got dtype {mask.dtype}")

    if token_type_ids is None:
        token_type_ids = torch.zeros(b, t, dtype=torch.long, device=input_ids.device)
    else:
        token_type_ids = _check_ids("token_type_ids", token_type_ids, config.type_vocab_size, (b, t),
                                    "type_vocab_size")

    if position_ids is None:
        position_ids = torch.arange(t, device=input_ids.device).unsqueeze(0)  # (1, t)
    else:
        position_ids = _as_tensor("position_ids", position_ids)
        if position_ids.dim() == 1:
            position_ids = position_ids.unsqueeze(0)
        shape = (b, t) if position_ids.shape[0] == b else (1, t)
        position_ids = _check_ids("position_ids", position_ids, config.max_position_embeddings, shape,
                                  "max_position_embeddings")
    return input_ids, attention_mask, token_type_ids, position_ids
