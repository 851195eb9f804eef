"""In-place inference: the encoder block's maths with fewer passes over memory.

``EncoderBlock.forward`` allocates about 18 values per token and hidden unit in every layer; on a CPU
each fresh allocation of this size is new pages the kernel must fault in and zero, which costs as much
as the element-wise work itself. ``block_in_place`` computes the same block:

* the QKV and FFN-up products go into ``scratch`` (flat, at least n·max(3c, f) elements), one buffer
  that every layer reuses;
* each residual is accumulated by the matmul itself: ``hidden += context Woᵀ`` is one ``addmm_``
  (BLAS's C = A·B + C), so there is no separate residual sum;
* the activation runs in place in ``scratch``.

It reads the block's ``nn.Linear`` weights directly instead of calling the modules, so it is only
taken where that is the same thing (``fast.plan.decide``): inference, plain layers, no hooks. On a
CPU in float32 or bfloat16 the same block runs through oneDNN instead (``fast/onednn.py``: bias,
activation and residual fused into the matmuls; MKL's sgemm is several times slower on AMD CPUs).
``tests/test_fast_paths.py`` holds it equal to the reference block.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from minibert.attention import Kernel
from minibert.fast import onednn

# The activations that can run in place, by exact type (a subclass could compute something else).
IN_PLACE_ACTIVATIONS = (nn.GELU, nn.ReLU, nn.SiLU)


def activation_(act: nn.Module, x: Tensor) -> Tensor:
    """``act(x)`` written into ``x`` itself: no new (n, f) tensor. ``act`` is one of IN_PLACE_ACTIVATIONS."""
    if type(act) is nn.GELU:
        return torch.ops.aten.gelu_(x, approximate=act.approximate)
    if type(act) is nn.ReLU:
        return x.relu_()
    return torch.nn.functional.silu(x, inplace=True)


def block_in_place(block: nn.Module, hidden: Tensor, scratch: Tensor, bias: Optional[Tensor],
                   kernel: Kernel) -> Tensor:
    """One ``EncoderBlock`` for inference (no autograd, no dropout); ``hidden`` (b, t, c) or (n, c) is
    overwritten, so the caller passes its own intermediate tensor. Returns the block's output, equal to
    ``forward``'s up to float rounding (each bias is added after the residual instead of before)."""
    if onednn.usable(hidden):
        return onednn.block(block, hidden, bias, kernel)
    attn, ffn = block.attn, block.ffn
    c = hidden.shape[-1]
    rows = hidden.view(-1, c)                                                   # (n, c)
    n, f = rows.shape[0], ffn.up.out_features

    qkv = torch.addmm(attn.qkv.bias, rows, attn.qkv.weight.t(), out=scratch[: n * 3 * c].view(n, 3 * c))
    context = kernel(qkv.view(*hidden.shape[:-1], 3 * c), bias, attn.num_heads, 0.0)  # (b, t, c) or (n, c)
    rows.addmm_(context.reshape(n, c), attn.out.weight.t()).add_(attn.out.bias)  # residual + attention
    hidden = block.attn_norm(hidden)

    rows = hidden.view(-1, c)
    inner = torch.addmm(ffn.up.bias, rows, ffn.up.weight.t(), out=scratch[: n * f].view(n, f))  # (n, f)
    activation_(ffn.act, inner)
    rows.addmm_(inner, ffn.down.weight.t()).add_(ffn.down.bias)                 # residual + FFN
    return block.ffn_norm(hidden)


def scratch_for(blocks: nn.ModuleList, hidden: Tensor) -> Tensor:
    """One flat buffer for every block's QKV (n, 3c) and FFN-up (n, f) products."""
    n, c = hidden.numel() // hidden.shape[-1], hidden.shape[-1]
    f = max(block.ffn.up.out_features for block in blocks)
    return hidden.new_empty(n * max(3 * c, f))
