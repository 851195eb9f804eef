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

_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.uint16, torch.uint32,
               torch.uint64)


def _as_tensor(name: str, value, device: Optional[torch.device] = None) -> Tensor:
    """``value`` if it is a dense tensor with values (on ``device`` when given)."""
    if not isinstance(value, Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.is_meta:
        raise InputError(f"{name} is on the meta device: it has a shape but no values to compute with")
    if value.layout != torch.strided or value.is_nested or value.is_quantized:
        raise InputTypeError(f"{name} must be a dense tensor, got layout {value.layout}"
                             + (" (nested)" if value.is_nested else " (quantized)" if value.is_quantized else ""))
    if device is not None and value.device != device:
        raise InputError(f"{name} is on {value.device}, but input_ids is on {device}; put both on one device")
    return value


def _check_ids(name: str, ids: Tensor, upper: int, shape: tuple[int, ...], bound_name: Optional[str],
               device: Optional[torch.device] = None, ignored: Optional[int] = None) -> Tensor:
    """Integer ids of ``shape`` in [0, upper); ``ignored`` (-100 for labels) may appear too."""
    ids = _as_tensor(name, ids, device)
    if ids.dtype not in _INT_DTYPES:
        raise InputTypeError(f"{name} must be an integer tensor, got dtype {ids.dtype}")
    if tuple(ids.shape) != shape:
        raise InputError(f"{name} has shape {tuple(ids.shape)}, expected {shape}")
    ids = ids.long()  # (also lets min/max run on uint16/32/64, which have no CPU kernels)
    if ids.numel() == 0:
        return ids
    counted = ids if ignored is None else ids[ids != ignored]
    if counted.numel():
        lo, hi = int(counted.min()), int(counted.max())
        if lo < 0 or hi >= upper:
            bad = lo if lo < 0 else hi
            also = "" if ignored is None else f" and not {ignored} (ignored)"
            bound = f"{bound_name}={upper}" if bound_name else upper
            raise InputError(f"{name} contains {bad}, outside [0, {bound}){also}")
    return ids


@torch.compiler.disable  # data-dependent checks: run eagerly, one graph break instead of one per check
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
    device = input_ids.device

    if attention_mask is not None:
        mask = _as_tensor("attention_mask", attention_mask, device)
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
                                    "type_vocab_size", device)

    if position_ids is None:
        position_ids = torch.arange(t, device=input_ids.device).unsqueeze(0)  # (1, t)
    else:
        position_ids = _as_tensor("position_ids", position_ids, device)
        if position_ids.dim() == 1:
            position_ids = position_ids.unsqueeze(0)
        shape = (b, t) if position_ids.shape[0] == b else (1, t)
        position_ids = _check_ids("position_ids", position_ids, config.max_position_embeddings, shape,
                                  "max_position_embeddings", device)
    return input_ids, attention_mask, token_type_ids, position_ids


# ------------------------------------------------------------------------------------------ labels
# One check per kind of label, run by each head before the encoder: a wrong label must be named,
# not turn into a raw torch error after a full forward, or worse, broadcast into a wrong loss.
IGNORE_INDEX = -100  # cross-entropy's default ignore_index: positions that carry no label


def _batch_shape(input_ids: Tensor, dims: int) -> tuple[int, ...]:
    """The leading shape of ``input_ids`` the labels must follow; bad ids are named here already."""
    input_ids = _as_tensor("input_ids", input_ids)
    if input_ids.dim() != dims:
        layout = "(batch, sequence)" if dims == 2 else "(batch, choices, sequence)"
        raise InputError(f"input_ids must have shape {layout}, got shape {tuple(input_ids.shape)}")
    return tuple(input_ids.shape)


def _one_per_row(name: str, labels: Tensor, b: int) -> Tensor:
    """(b,) or (b, 1) -> (b,): one label per sequence. Anything else (a (2, 2) for a batch of 2, a (1,)
    for a batch of 4) is refused rather than reshaped or broadcast."""
    if tuple(labels.shape) not in ((b,), (b, 1)):
        raise InputError(f"{name} has shape {tuple(labels.shape)}, expected ({b},): one label per sequence "
                         f"of the batch of {b}")
    return labels.reshape(b)


def check_class_labels(name: str, labels: Optional[Tensor], input_ids: Tensor, num_classes: int,
                       per_token: bool = False, bound_name: Optional[str] = "num_labels") -> Optional[Tensor]:
    """Class ids, one per sequence (b,) or per token (b, t), in [0, num_classes) or -100 (ignored)."""
    if labels is None:
        return None
    shape = _batch_shape(input_ids, 2)
    labels = _as_tensor(name, labels, input_ids.device)
    if not per_token:
        labels = _one_per_row(name, labels, shape[0])
    expected = shape if per_token else shape[:1]
    return _check_ids(name, labels, num_classes, expected, bound_name, input_ids.device, ignored=IGNORE_INDEX)


def check_choice_labels(labels: Optional[Tensor], input_ids: Tensor) -> Optional[Tensor]:
    """Multiple choice: the index of the right choice, (b,) in [0, n_choices)."""
    if labels is None:
        return None
    b, n, _ = _batch_shape(input_ids, 3)
    labels = _as_tensor("labels", labels, input_ids.device)
    return _check_ids("labels", _one_per_row("labels", labels, b), n, (b,), "n_choices", input_ids.device,
                      ignored=IGNORE_INDEX)


def check_span_positions(name: str, positions: Optional[Tensor], input_ids: Tensor) -> Optional[Tensor]:
    """Question answering: a start or end token index per sequence, (b,). Like transformers,
    positions outside the sequence are allowed: they are clamped and then ignored by the loss."""
    if positions is None:
        return None
    b = _batch_shape(input_ids, 2)[0]
    positions = _as_tensor(name, positions, input_ids.device)
    if positions.dtype not in _INT_DTYPES:
        raise InputTypeError(f"{name} must be an integer tensor of token positions, got dtype {positions.dtype}")
    return _one_per_row(name, positions, b).long()


def problem_type(config: BertConfig, labels: Tensor) -> str:
    """Which loss a sequence classifier uses, as transformers decides it: ``config.problem_type`` if
    set; else regression for one label, single-label for long/int labels, multi-label otherwise."""
    if config.problem_type is not None:
        return config.problem_type
    if config.num_labels == 1:
        return "regression"
    if isinstance(labels, Tensor) and labels.dtype in (torch.long, torch.int):
        return "single_label_classification"
    return "multi_label_classification"


def check_sequence_labels(config: BertConfig, labels: Optional[Tensor], input_ids: Tensor) -> Optional[Tensor]:
    """Labels of a sequence classifier, checked for the problem they will be scored as:
    class ids (b,); regression targets (b,) for one label or (b, num_labels); multi-label 0/1
    targets (b, num_labels). Returned in the shape the loss takes."""
    if labels is None:
        return None
    problem = problem_type(config, labels)
    if problem == "single_label_classification":
        return check_class_labels("labels", labels, input_ids, config.num_labels)
    b = _batch_shape(input_ids, 2)[0]
    n = config.num_labels
    labels = _as_tensor("labels", labels, input_ids.device)
    if not (labels.is_floating_point() or labels.dtype in _INT_DTYPES):
        raise InputTypeError(f"labels for {problem} must be a real (float or integer) tensor, got {labels.dtype}")
    if problem == "regression" and n == 1:
        labels = _one_per_row("labels", labels, b)
    elif tuple(labels.shape) != (b, n):
        raise InputError(f"labels for {problem} have shape {tuple(labels.shape)}, expected ({b}, {n}): "
                         f"one value per label (num_labels={n}) for each of the {b} sequences")
    if labels.is_floating_point() and labels.numel() and not bool(torch.isfinite(labels).all()):
        raise InputError(f"labels contain NaN or infinite values; the {problem} loss would be NaN")
    if problem == "multi_label_classification" and labels.numel() and not bool(((labels >= 0) & (labels <= 1)).all()):
        bad = labels[(labels < 0) | (labels > 1)][0].item()
        raise InputError(f"labels for multi-label classification must lie in [0, 1] (1 = the label applies), "
                         f"found {bad}")
    return labels


def check_choice_inputs(input_ids: Tensor, **others: Optional[Tensor]) -> tuple[int, int, int]:
    """Multiple choice: input_ids (b, n_choices, t) with at least one choice, and every other input
    (attention_mask=..., token_type_ids=..., position_ids=...) of that same shape. Returns (b, n, t)."""
    b, n, t = _batch_shape(input_ids, 3)
    if b == 0 or n == 0 or t == 0:
        raise InputError(f"input_ids is empty (shape {(b, n, t)}): multiple choice needs at least one "
                         "sequence, one choice and one token")
    for name, value in others.items():
        if value is not None and tuple(_as_tensor(name, value, input_ids.device).shape) != (b, n, t):
            raise InputError(f"{name} has shape {tuple(value.shape)}, expected {(b, n, t)} like input_ids "
                             "(batch, choices, sequence)")
    return b, n, t
