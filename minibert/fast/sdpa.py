"""Attention kernels for the fast paths: the reference formula, computed by PyTorch's fused kernel.

``F.scaled_dot_product_attention`` computes softmax(QKᵀ/√d + bias)V without handing back the weights,
so it can pick a fused implementation (no (b, h, t, s) tensor kept for the caller). Both kernels have
the ``attention.Kernel`` signature and are passed to ``MultiHeadAttention.forward`` by ``fast.run``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from minibert.attention import merge_heads, split_heads
from minibert.fast.unpad import Unpadding


def sdpa(qkv: Tensor, bias: Tensor | None, heads: int, dropout_p: float) -> Tensor:
    """Fused projections (b, t, 3c) -> context (b, t, c), the padded grid, ``bias`` blocking padding."""
    q, k, v = split_heads(qkv, heads)                                               # (b, h, t, d) each
    context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)  # (b, h, t, d)
    return merge_heads(context)                                                     # (b, t, c)


def unpadded_sdpa(unpadding: Unpadding):
    """A kernel over packed real tokens: (n, 3c) -> (n, c). The k sequences of each length L attend as
    one (k, L, 3c) batch with no mask at all, since every key in it is real."""
    def kernel(qkv: Tensor, bias: Tensor | None, heads: int, dropout_p: float) -> Tensor:
        groups = unpadding.split(qkv)                                               # (k, L, 3c) views
        return torch.cat([sdpa(group, None, heads, dropout_p).flatten(0, 1) for group in groups])  # (n, c)
    return kernel
