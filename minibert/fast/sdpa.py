"""Attention kernels for the fast paths: the reference formula, computed by PyTorch's fused kernel.

``F.scaled_dot_product_attention`` computes softmax(QKᵀ/√d + bias)V without handing back the weights,
so it can pick a fused implementation (no (b, h, t, s) tensor kept for the caller). Both kernels have
the ``attention.Kernel`` signature and are passed to ``MultiHeadAttention.forward`` by ``fast.run``.

One exception, measured: in bfloat16 on a CPU, for sequences up to ``EXPLICIT_MAX_LENGTH``, two batched
matmuls and a softmax are faster than the fused kernel (MiniLM's 12 heads of 32, t = 128, one thread:
275 vs 469 µs at batch 1, 2.3 vs 3.9 ms at batch 8); the (b, h, t, t) weights are small there.
Inside ``torch.compile`` the same case is written with the normalisation deferred (``_deferred``):
Inductor rewrites a matmul-softmax-matmul chain back into the fused kernel, which is the slower one
here, while this form it compiles into two matmuls and one fused pass for the softmax's statistics.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from minibert.attention import merge_heads, split_heads
from minibert.fast.compiled import compiling
from minibert.fast.unpad import Unpadding


EXPLICIT_MAX_LENGTH = 256


def sdpa(qkv: Tensor, bias: Tensor | None, heads: int, dropout_p: float) -> Tensor:
    """Fused projections (b, t, 3c) -> context (b, t, c), the padded grid, ``bias`` blocking padding."""
    q, k, v = split_heads(qkv, heads)                                               # (b, h, t, d) each
    if (qkv.dtype == torch.bfloat16 and qkv.device.type == "cpu" and dropout_p == 0.0
            and not torch.is_grad_enabled() and q.shape[-2] <= EXPLICIT_MAX_LENGTH):  # measured in inference only
        written_out = _deferred if compiling() else _explicit
        return merge_heads(written_out(q, k, v, bias))                              # (b, t, c)
    if bias is not None and bias.dtype != q.dtype:
        bias = bias.to(q.dtype)  # int8 mode: bf16 projections, float32 bias (not every kernel mixes them)
    context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)  # (b, h, t, d)
    return merge_heads(context)                                                     # (b, t, c)


def _explicit(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None) -> Tensor:
    """``attention.attend``'s maths for inference, scale and bias applied in place (two fewer (b, h, t, s)
    tensors; measured 1.5-1.8x faster than calling ``attend`` here); q, k, v (b, h, t, d) -> (b, h, t, d)."""
    scores = torch.matmul(q, k.transpose(-1, -2)).mul_(1.0 / math.sqrt(q.shape[-1]))  # (b, h, t, s)
    if bias is not None:
        scores.add_(bias)                                                           # padded keys blocked
    return torch.matmul(torch.softmax(scores, dim=-1), v)                           # (b, h, t, d)


def _deferred(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None) -> Tensor:
    """softmax(S)V computed as (exp(S - max S) V) / Σ exp(S - max S), S = QKᵀ/√d + bias: the same
    value, the division moved after the second matmul (onto (t, d) instead of (t, s)). The scores'
    statistics are at least float32; under ``torch.compile`` they cost no extra memory pass."""
    wide = torch.promote_types(q.dtype, torch.float32)                              # bf16 -> float32
    scores = torch.matmul(q, k.transpose(-1, -2)).to(wide) * (1.0 / math.sqrt(q.shape[-1]))  # (b, h, t, s)
    if bias is not None:
        scores = scores + bias.to(wide)                                             # padded keys blocked
    weights = torch.exp(scores - scores.amax(dim=-1, keepdim=True))                 # (b, h, t, s), ≤ 1
    context = torch.matmul(weights.to(v.dtype), v).to(wide)                         # (b, h, t, d)
    return (context / weights.sum(dim=-1, keepdim=True)).to(v.dtype)


def unpadded_sdpa(unpadding: Unpadding):
    """A kernel over packed real tokens: (n, 3c) -> (n, c). The k sequences of each length L attend as
    one (k, L, 3c) batch with no mask at all, since every key in it is real."""
    def kernel(qkv: Tensor, bias: Tensor | None, heads: int, dropout_p: float) -> Tensor:
        groups = unpadding.split(qkv)                                               # (k, L, 3c) views
        return torch.cat([sdpa(group, None, heads, dropout_p).flatten(0, 1) for group in groups])  # (n, c)
    return kernel
