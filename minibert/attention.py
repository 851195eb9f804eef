"""Scaled dot-product attention and the multi-head attention module: the reference formula only.

Dimension letters, used in every shape comment and einops pattern of minibert:
    b batch, t query positions, s key positions, h heads, d head size, c hidden size (= h * d).

    Attention(Q, K, V) = softmax(Q Kᵀ / √d + bias) V

``bias`` is 0 where a query may attend and a very large negative number where it may not, so that
the softmax gives those keys (numerically) zero weight. This file computes exactly that and keeps the
weights. Faster kernels for the same formula (PyTorch's fused SDPA, attention over unpadded tokens)
live in ``minibert/fast/`` and are handed to ``MultiHeadAttention.forward`` as ``kernel``.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from minibert.errors import InputError, InputTypeError

# A fast kernel: fused projections (b, t, 3c) or (n, 3c), bias, heads, dropout -> context, same shape with c.
Kernel = Callable[[Tensor, Optional[Tensor], int, float], Tensor]


def mask_to_bias(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Boolean mask (True = attend) -> additive bias (0 = attend, dtype's minimum = blocked).

    The minimum rather than -inf keeps a row whose keys are all blocked finite: its softmax is uniform
    instead of NaN, which is also what transformers computes for fully padded rows.
    """
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def attend(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor] = None,
           dropout_p: float = 0.0) -> tuple[Tensor, Tensor]:
    """The reference computation on (..., t, d) queries and (..., s, d) keys/values, additive bias."""
    d = q.shape[-1]
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))  # (b, h, t, s)
    if bias is not None:
        scores = scores + bias.to(scores.dtype)  # the bias in the scores' dtype (int8 mode's are bf16)
    probs = scores.softmax(dim=-1)  # (b, h, t, s), each row sums to 1
    probs = F.dropout(probs, p=dropout_p, training=dropout_p > 0)
    return probs @ v, probs  # (b, h, t, d), (b, h, t, s)


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor] = None,
                                 dropout_p: float = 0.0) -> tuple[Tensor, Tensor]:
    """softmax(QKᵀ/√d)V on (..., t, d) inputs; ``mask`` is boolean, True = attend, broadcast to (..., t, s).

    Returns ``(output, weights)`` with shapes (..., t, d) and (..., t, s).
    """
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise InputTypeError(f"mask must be a bool tensor (True = attend), got {getattr(mask, 'dtype', type(mask))}")
        mask = mask_to_bias(mask, q.dtype)
    return attend(q, k, v, mask, dropout_p)


def split_heads(qkv: Tensor, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """Fused projections (b, t, 3c) -> q, k, v, each (b, h, t, d)."""
    q, k, v = rearrange(qkv, "b t (three h d) -> three b h t d", three=3, h=heads)
    return q, k, v


def merge_heads(context: Tensor) -> Tensor:
    """(b, h, t, d) -> (b, t, c): the heads side by side again."""
    return rearrange(context, "b h t d -> b t (h d)")


class MultiHeadAttention(nn.Module):
    """h heads of attention over the same sequence (self-attention), then an output projection.

    Q, K and V come from one fused projection (one matmul instead of three); checkpoints store them as
    three separate HF matrices, which ``checkpoints/hf.py`` concatenates on load and splits on save.
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if hidden_size % num_heads:
            raise InputError(f"hidden_size ({hidden_size}) must be a multiple of num_heads ({num_heads})")
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden: Tensor, bias: Optional[Tensor] = None,
                kernel: Optional[Kernel] = None) -> tuple[Tensor, Optional[Tensor]]:
        """hidden (b, t, c); bias additive, broadcastable to (b, h, t, s). Returns (b, t, c) and the weights.

        ``kernel`` (from ``minibert.fast``) computes the same context another way and keeps no weights
        (None is returned for them); with an unpadded kernel, hidden is (n, c), real tokens only.
        """
        dropout_p = self.dropout if self.training else 0.0
        qkv = self.qkv(hidden)  # (b, t, 3c)
        if kernel is not None:
            return self.out(kernel(qkv, bias, self.num_heads, dropout_p)), None
        q, k, v = split_heads(qkv, self.num_heads)                 # (b, h, t, d) each
        context, probs = attend(q, k, v, bias, dropout_p)         # (b, h, t, d), (b, h, t, s)
        return self.out(merge_heads(context)), probs              # (b, t, c)
