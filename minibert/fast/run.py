"""The encoder's blocks on a fast path chosen by ``fast.plan.decide``; ``model.py`` has the reference loop."""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from minibert.attention import mask_to_bias
from minibert.fast.in_place import block_in_place, scratch_for
from minibert.fast.plan import Plan
from minibert.fast.sdpa import sdpa, unpadded_sdpa
from minibert.fast.unpad import Unpadding


def encode(blocks: nn.ModuleList, hidden: Tensor, mask: Optional[Tensor], plan: Plan,
           output_hidden_states: bool = False) -> tuple[Tensor, Optional[list[Tensor]]]:
    """Embeddings (b, t, c) -> last hidden state (b, t, c), and every layer's state if asked for.

    Unpadded, the blocks see (n, c), real tokens only, and padded positions come back as zeros.
    """
    bias, kernel, unpadding = None, sdpa, None
    if plan.unpad:
        unpadding = Unpadding.from_mask(mask)
        hidden, kernel = unpadding.gather(hidden), unpadded_sdpa(unpadding)  # (n, c): real tokens only
    elif plan.padding:  # padding keys blocked in every head and query row; none at all: SDPA's unmasked kernel
        bias = mask_to_bias(mask[:, None, None, :], hidden.dtype)           # (b, 1, 1, s)

    def to_batch(x: Tensor) -> Tensor:
        return unpadding.scatter(x) if unpadding is not None else x         # (b, t, c)

    states = [to_batch(hidden)] if output_hidden_states else None
    scratch = scratch_for(blocks, hidden) if plan.in_place else None
    for block in blocks:
        if plan.in_place:
            hidden = block_in_place(block, hidden, scratch, bias, kernel)
        else:
            hidden, _ = block(hidden, bias, kernel)
        if states is not None:
            states.append(to_batch(hidden))
    return to_batch(hidden), states
