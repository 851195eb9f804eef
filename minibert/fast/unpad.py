"""Unpadding: run the encoder on real tokens only, so that its cost follows them, not the padded shape.

A padded batch of b sequences of lengths L_1..L_b is stored as (b, t, c) with t = max L. Everything in
a block except attention treats positions independently (projections, FFN, LayerNorm, residuals), so it
can run on the n = sum L_i real tokens packed as (n, c): the padding never enters a matmul.

Attention needs each sequence's keys side by side. The packing puts whole sequences one after another,
longest first, so the sequences that share a length L form one contiguous slice of the packed tensor:
a (k, L, ...) view, no copy. Each such group runs attention with no mask at all (every key is real), so
attention's cost also follows real tokens: sum L_i², not b · t².

    (b, t, c) --gather once--> (n, c) --per block: qkv, attention per length group, out, FFN, norms--> (n, c)
              <--scatter once--

Real tokens keep their order within a sequence, so real positions come out equal to the padded path
(to float rounding: softmax sums over L keys instead of L keys and t - L exact zeros). Padded
positions are not computed: they come back as zeros. The reference path computes values there (a
padding query still attends to the real keys), which no loss or pooling reads; ``BertModel.forward``
documents when each path is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Unpadding:
    """Where the real tokens of a padded (b, t) batch sit, and the maps between the two layouts.

    ``index`` (n,) holds the real tokens' flat positions in the (b * t) batch, in packed order: whole
    sequences, longest first, each in its own order. ``groups`` lists (k, L): k sequences of length L,
    consecutive in the packing, in that order.
    """

    batch: int
    length: int                    # t: the padded length
    index: Tensor                  # (n,) positions in (b * t)
    groups: list[tuple[int, int]]  # (k sequences, of length L), covering the n packed tokens in order

    @classmethod
    def from_mask(cls, mask: Tensor) -> "Unpadding":
        """mask (b, t) bool, True = real token; real tokens need not be contiguous (left padding works)."""
        b, t = mask.shape
        lengths = mask.sum(dim=1)                                     # (b,)
        order = torch.argsort(lengths, descending=True, stable=True)  # longest sequence first
        index = (order[:, None] * t + torch.arange(t, device=mask.device))[mask[order]]  # (n,)
        sizes = torch.unique_consecutive(lengths[order], return_counts=True)
        groups = [(int(k), int(L)) for L, k in zip(*sizes) if L > 0]  # fully padded rows have no tokens
        return cls(b, t, index, groups)

    def gather(self, padded: Tensor) -> Tensor:
        """(b, t, ...) -> (n, ...): real tokens only, packed."""
        return padded.flatten(0, 1).index_select(0, self.index)

    def scatter(self, packed: Tensor) -> Tensor:
        """(n, ...) -> (b, t, ...), zeros at padded positions."""
        out = packed.new_zeros(self.batch * self.length, *packed.shape[1:])
        return out.index_copy(0, self.index, packed).unflatten(0, (self.batch, self.length))

    def split(self, packed: Tensor) -> list[Tensor]:
        """(n, ...) -> one (k, L, ...) view per group of k sequences of equal length L."""
        chunks = packed.split([k * L for k, L in self.groups])
        return [chunk.unflatten(0, (k, L)) for chunk, (k, L) in zip(chunks, self.groups)]
