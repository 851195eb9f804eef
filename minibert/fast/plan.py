"""The one place that decides, per call, which path ``BertModel.forward`` takes, and says why.

    reference   each block's modules, attention by ``attention.attend`` (weights kept): transformers' eager maths
    sdpa        each block's modules, attention by PyTorch's fused kernel (``fast/sdpa.py``)
    unpad       ... on the real tokens only, packed (``fast/unpad.py``)
    in_place    the blocks by ``fast/in_place.py``: fewer passes over memory, reading the Linear weights directly

Every path gives the reference's values at real positions (to float rounding; the tests hold them
equal), so the choice only ever depends on what the caller could tell apart or what the fast code
cannot run: the decision is made from the call (grad mode, training, autocast, requested outputs, the
``unpad`` argument, the mask) and from the model's structure (plain layers, no hooks). A model that is
not what the fast code expects (quantized or LoRA-wrapped Linears, parametrized or pruned weights,
hooks) gets a slower path, never an error.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Literal, Optional, Union

import torch
from torch import Tensor, nn

from minibert.errors import InputError, InputTypeError
from minibert.fast.in_place import IN_PLACE_ACTIVATIONS

UnpadMode = Union[bool, Literal["auto"]]


@dataclass(frozen=True)
class Plan:
    """Which path one forward takes (``path``) and why (``reason``, one clause per decision)."""

    sdpa: bool      # attention by the fused kernel, weights not kept
    unpad: bool     # the blocks run on the real tokens only
    in_place: bool  # the blocks run in place (inference only)
    padding: bool   # the batch has padded positions
    reason: str

    @property
    def path(self) -> str:
        if not self.sdpa:
            return "reference"
        return "+".join(name for name, on in (("in_place", self.in_place), ("unpad", self.unpad)) if on) or "sdpa"


@torch.compiler.disable  # reads the mask's values: run eagerly under torch.compile
def decide(model: nn.Module, mask: Optional[Tensor], unpad: UnpadMode = False, output_attentions: bool = False,
           output_hidden_states: bool = False) -> Plan:
    """The path ``BertModel.forward`` takes for this call. ``mask`` is the checked (b, t) bool mask or None."""
    if not isinstance(unpad, (bool, str)) or unpad not in (True, False, "auto"):
        raise InputTypeError(f"unpad must be True, False or 'auto', got {unpad!r}")
    padding = mask is not None and not bool(mask.all())
    if output_attentions and unpad is True and padding:
        raise InputError("unpad=True cannot return attention weights (they would cover real tokens only); "
                         "pass unpad=False with output_attentions=True")
    if not getattr(model, "fast_paths", True):
        return Plan(False, False, False, padding, "model.fast_paths is False")
    if output_attentions:
        return Plan(False, False, False, padding, "output_attentions=True: the weights come from the reference formula")

    do_unpad, unpad_why = _unpad(mask, padding, unpad, output_hidden_states)
    in_place, in_place_why = _in_place(model, output_hidden_states)
    return Plan(True, do_unpad, in_place, padding, f"sdpa: no attention weights asked for; unpad: {unpad_why}; "
                                                   f"in_place: {in_place_why}")


def _unpad(mask: Optional[Tensor], padding: bool, unpad: UnpadMode, output_hidden_states: bool) -> tuple[bool, str]:
    """Unpad where asked (True), or with "auto" where the padded positions' values cannot be seen."""
    if not padding:
        return False, "no (no padding in the batch)"
    if unpad is True:
        return True, "yes (unpad=True)"
    if unpad is False:
        return False, "no (unpad=False: padded positions are computed, as in transformers)"
    if torch.is_grad_enabled():
        return False, "no (auto, but autograd is on)"
    if output_hidden_states:
        return False, "no (auto, but every layer's states are returned)"
    if not bool(mask[:, 0].all()):
        return False, "no (auto, but a sequence starts with padding and the pooler reads position 0)"
    return True, "yes (auto: inference, padded positions not read)"


def _in_place(model: nn.Module, output_hidden_states: bool) -> tuple[bool, str]:
    """In place only in inference and where the model is exactly what ``block_in_place`` reads."""
    if torch.is_grad_enabled():
        return False, "no (autograd is on: backward needs the tensors it would overwrite)"
    if model.training:
        return False, "no (training mode: dropout)"
    if output_hidden_states:
        return False, "no (every layer's states are returned: the next block would overwrite them)"
    dtype = model.embeddings.word.weight.dtype
    if torch.is_autocast_enabled(model.embeddings.word.weight.device.type):
        return False, "no (autocast picks each op's dtype; the fast blocks write into buffers of the model's)"
    blocks = getattr(model, "layers", ())
    for i, block in enumerate(blocks):
        unusual = _not_plain(block, dtype)
        if unusual:
            return False, f"no (layers.{i}: {unusual})"
    return True, "yes"


def _not_plain(block: nn.Module, dtype: torch.dtype) -> str:
    """What in ``block`` the in-place code could not read as written ("" if nothing)."""
    try:
        linears = {"attn.qkv": block.attn.qkv, "attn.out": block.attn.out, "ffn.up": block.ffn.up,
                   "ffn.down": block.ffn.down}
        act = block.ffn.act
    except AttributeError as exc:
        return f"not an EncoderBlock ({exc})"
    for name, layer in linears.items():
        # Exact type: quantized, LoRA-wrapped and parametrized (pruned) layers compute their weight
        # in forward, which the in-place code never calls.
        if type(layer) is not nn.Linear:
            return f"{name} is a {type(layer).__module__}.{type(layer).__qualname__}, not a plain torch.nn.Linear"
        if layer.weight.dtype != dtype or layer.bias is None:
            return f"{name} has dtype {layer.weight.dtype} or no bias"
    if type(act) not in IN_PLACE_ACTIVATIONS:
        return f"ffn.act is a {type(act).__name__}"
    if _has_forward_hooks(block):
        return "a forward hook would not run"
    return ""


def _has_forward_hooks(root: nn.Module) -> bool:
    # PyTorch has public calls to register hooks but none to ask whether any are registered, so this
    # reads the dictionaries nn.Module.__call__ itself consults (private names, stable since 1.x).
    from torch.nn.modules import module as torch_module

    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in root.modules())


def explain(model: nn.Module, attention_mask: Optional[Tensor] = None, *, unpad: Optional[UnpadMode] = None,
            output_attentions: bool = False, output_hidden_states: bool = False) -> Plan:
    """The ``Plan`` that ``model(ids, attention_mask, ...)`` would follow if called now (same grad mode,
    autocast and train/eval state). Works on ``BertModel`` and every head; ``unpad=None`` means the
    model's own default (``"auto"`` for the heads that read only the pooled vector).

        with torch.no_grad():
            print(minibert.fast.explain(model, batch["attention_mask"]).path)   # e.g. "in_place+unpad"
    """
    encoder = getattr(model, "bert", model)
    if unpad is None:
        unpad = inspect.signature(model.forward).parameters["unpad"].default
    mask = None
    if attention_mask is not None:
        mask = attention_mask.reshape(-1, attention_mask.shape[-1]) != 0  # (b, t); multiple choice flattened
    return decide(encoder, mask, unpad, output_attentions, output_hidden_states)
