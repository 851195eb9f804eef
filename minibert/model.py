"""BERT's encoder, top to bottom: embeddings -> N post-LN Transformer blocks -> pooler.

Read this file first. Dimension letters as in ``attention.py``: b batch, t positions, h heads,
d head size, c hidden size, f feed-forward (intermediate) size, v vocabulary.

    hidden_0 = LayerNorm(word[ids] + position[pos] + token_type[types])
    hidden_i = Block(hidden_{i-1}),  i = 1..N
    pooled   = tanh(W hidden_N[:, 0] + b)            # the [CLS] position

Each block is post-LN, as in the original BERT (and every public BERT checkpoint):

    x = LayerNorm(x + Dropout(MultiHeadAttention(x)))
    x = LayerNorm(x + Dropout(W2 act(W1 x)))
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
from torch import Tensor, nn

from minibert import checkpoints
from minibert.attention import MultiHeadAttention, mask_to_bias
from minibert.config import BertConfig
from minibert.errors import InputError
from minibert.inputs import check_inputs
from minibert.outputs import BaseModelOutput
from minibert.fast.unpad import Unpadding


def activation(name: str) -> nn.Module:
    """The activation module that config.hidden_act names."""
    # "gelu" is HF's exact erf GELU; Google's TF code used the tanh approximation ("gelu_new").
    return {
        "gelu": nn.GELU(),
        "gelu_new": nn.GELU(approximate="tanh"),
        "gelu_pytorch_tanh": nn.GELU(approximate="tanh"),
        "relu": nn.ReLU(),
        "silu": nn.SiLU(),
        "swish": nn.SiLU(),
    }[name]


def activation_(act: nn.Module, x: Tensor) -> Tensor:
    """``act(x)`` written into ``x`` itself (inference fast path): no new (n, f) tensor."""
    if isinstance(act, nn.GELU):
        return torch.ops.aten.gelu_(x, approximate=act.approximate)
    if isinstance(act, nn.ReLU):
        return x.relu_()
    if isinstance(act, nn.SiLU):
        return torch.nn.functional.silu(x, inplace=True)
    return x.copy_(act(x))


class Embeddings(nn.Module):
    """Token, position and segment embeddings, summed, then LayerNorm and dropout: ids -> (b, t, c)."""
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor, position_ids: Tensor) -> Tensor:
        # Summed in transformers' order, so float rounding is the same too; in place into the fresh
        # word vectors, which saves two (b, t, c) allocations (autograd allows it: neither the lookup's
        # nor the sum's backward reads this tensor).
        hidden = self.word(input_ids)                  # (b, t, c)
        hidden += self.token_type(token_type_ids)
        hidden += self.position(position_ids)
        return self.dropout(self.norm(hidden))


class FeedForward(nn.Module):
    """The position-wise MLP of a block: c -> f -> c with the configured activation between."""
    def __init__(self, config: BertConfig):
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)    # c -> f
        self.act = activation(config.hidden_act)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)  # f -> c

    def forward(self, hidden: Tensor) -> Tensor:
        return self.down(self.act(self.up(hidden)))


class EncoderBlock(nn.Module):
    """One post-LN Transformer layer: self-attention, then the feed-forward MLP, each wrapped in
    dropout, a residual connection and LayerNorm.
    """
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attn = MultiHeadAttention(config.hidden_size, config.num_attention_heads,
                                       config.attention_probs_dropout_prob)
        self.attn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = FeedForward(config)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: Tensor, bias: Optional[Tensor] = None, need_weights: bool = False,
                unpadding: Optional[Unpadding] = None) -> tuple[Tensor, Optional[Tensor]]:
        # hidden is (b, t, c), or (n, c) when unpadded: everything but attention is per position.
        attended, probs = self.attn(hidden, bias, need_weights, unpadding)   # (b, t, c), (b, h, t, t)
        hidden = self.attn_norm(hidden + self.dropout(attended))             # post-LN: norm after the residual
        hidden = self.ffn_norm(hidden + self.dropout(self.ffn(hidden)))      # (b, t, c)
        return hidden, probs

    def forward_in_place(self, hidden: Tensor, scratch: Tensor, bias: Optional[Tensor] = None,
                         unpadding: Optional[Unpadding] = None) -> Tensor:
        """The same block for inference (no autograd, no dropout), with fewer passes over memory.

        ``forward`` allocates about 18 values per token and hidden unit in every layer; on a CPU each
        fresh allocation of this size is new pages the kernel must fault in and zero, which costs as
        much as the element-wise work itself. Here:

        * the QKV and FFN-up products go into ``scratch`` (flat, at least n·max(3c, f) elements),
          one buffer that every layer reuses;
        * each residual is accumulated by the matmul itself: ``hidden += context Woᵀ`` is one
          ``addmm_`` (BLAS's C = A·B + C), so there is no separate residual sum;
        * the activation runs in place in ``scratch``.

        ``hidden`` (b, t, c) or (n, c) is overwritten: the caller passes its own intermediate tensor.
        Returns the block's output, equal to ``forward``'s up to float rounding (the bias is added
        after the residual instead of before); ``tests/test_fast_paths.py`` holds the two equal.
        """
        c = hidden.shape[-1]
        rows = hidden.view(-1, c)                                              # (n, c)
        n, f = rows.shape[0], self.ffn.up.out_features
        attn, ffn = self.attn, self.ffn

        qkv = torch.addmm(attn.qkv.bias, rows, attn.qkv.weight.t(), out=scratch[: n * 3 * c].view(n, 3 * c))
        context = attn.context(qkv.view(*hidden.shape[:-1], 3 * c), bias, unpadding)  # (b, t, c) or (n, c)
        rows.addmm_(context.reshape(n, c), attn.out.weight.t()).add_(attn.out.bias)  # residual + attention
        hidden = self.attn_norm(hidden)

        rows = hidden.view(-1, c)
        inner = torch.addmm(ffn.up.bias, rows, ffn.up.weight.t(), out=scratch[: n * f].view(n, f))  # (n, f)
        activation_(ffn.act, inner)
        rows.addmm_(inner, ffn.down.weight.t()).add_(ffn.down.bias)            # residual + FFN
        return self.ffn_norm(hidden)


class Pooler(nn.Module):
    """tanh(W h_[CLS] + b): the sentence-level vector NSP and sequence classification read."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: Tensor) -> Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (b, c)


class BertPreTrainedModel(nn.Module):
    """What every minibert model shares: BERT's initialisation and local checkpoint loading/saving."""

    def __init__(self, config: BertConfig):
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a minibert.BertConfig, got {type(config).__name__}")
        self.config = config
        self.load_report: Optional[checkpoints.LoadReport] = None

    def init_weights(self) -> None:
        """BERT's initialisation: N(0, initializer_range) weights, zero biases, LayerNorm 1/0,
        and a zero row for the padding token."""
        if next(self.parameters()).is_meta:
            return  # built on the meta device by checkpoint loading: there is no memory to draw into yet
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # A second pass: a decoder tied to the word embeddings may have re-drawn the padding row above.
        for module in self.modules():
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any):
        """Load a local checkpoint (folder, file, HF cache name or packaged name); see ``checkpoints.load``.

        Keyword arguments that are config fields (``num_labels=3``) override the checkpoint's config.
        The model comes back in ``eval()`` mode with ``model.load_report`` filled in.
        """
        return checkpoints.load(cls, name_or_path, **kwargs)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` + ``model.safetensors`` with HF names, which transformers loads unchanged."""
        checkpoints.save(self, directory)


def _autocast_on(device: torch.device) -> bool:
    try:
        return torch.is_autocast_enabled(device.type)
    except TypeError:  # torch < 2.4 has no device argument
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()


def _has_forward_hooks(root: nn.Module) -> bool:
    from torch.nn.modules import module as torch_module

    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in root.modules())


def plan_padding(mask: Optional[Tensor], unpad: Optional[bool], output_attentions: bool,
                 output_hidden_states: bool) -> tuple[Optional[Tensor], Optional[Unpadding]]:
    """The one place that decides how padding is handled. Returns (mask, unpadding), at most one set.

    * no padding at all: no mask, so attention adds no bias (and SDPA may take its unmasked kernel);
    * unpadded (``unpad.py``): the blocks run on real tokens only; padded positions of the outputs are
      zeros instead of the reference's values, which nothing downstream reads;
    * otherwise the reference: the padded grid, padding keys blocked by an additive bias.

    ``unpad=False`` (``BertModel``'s default) keeps the reference path, so ``last_hidden_state`` equals
    transformers' at every position, padded ones included. ``unpad=None`` (auto) unpads in inference
    (no autograd), with no per-layer outputs asked for and every sequence's first token real (the
    pooler reads position 0): the heads whose outputs never show padded positions (sequence
    classification, NSP, multiple choice) and ``SentenceEncoder`` (masked pooling) use it.
    ``unpad=True`` also unpads in training (gradients through real tokens are the same: no real token
    ever attends to a padded one).
    """
    if mask is None or bool(mask.all()):
        return None, None
    if unpad is None:
        unpad = (not torch.is_grad_enabled() and not output_attentions and not output_hidden_states
                 and bool(mask[:, 0].all()))
    if not unpad:
        return mask, None
    if output_attentions:
        raise InputError("unpad=True cannot return attention weights (they would cover real tokens only); "
                         "pass unpad=False with output_attentions=True")
    return None, Unpadding.from_mask(mask)


class BertModel(BertPreTrainedModel):
    """The bare encoder: ids in, one contextual vector per position (and a pooled one) out.

    ``unpad`` (an attribute, overridden per call by ``forward(unpad=...)``): False (default) is the
    reference path, None picks the unpadded fast path where padded outputs cannot be seen, True forces
    it; see ``plan_padding``. ``in_place`` (default True): in inference, the blocks run
    ``EncoderBlock.forward_in_place`` (same outputs, fewer memory passes); see ``runs_in_place``.
    """

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(EncoderBlock(config) for _ in range(config.num_hidden_layers))
        self.pooler = Pooler(config) if add_pooling_layer else None
        self.unpad: Optional[bool] = False
        self.in_place = True
        self.init_weights()

    def runs_in_place(self, output_attentions: bool = False, output_hidden_states: bool = False) -> bool:
        """Whether ``forward`` takes ``EncoderBlock.forward_in_place``: inference where nothing can tell.

        Not with autograd on (backward needs the tensors the fast path overwrites), not in training
        mode (dropout), not under autocast (which picks each op's dtype, while the fast path writes
        into buffers of the model's dtype), not when every layer's states or weights are returned (the
        next block would overwrite them), not when a forward hook sits anywhere in the encoder (the
        fast path does not call the submodules, so the hook would silently not run), and not when
        ``model.in_place`` is False (the switch for comparing the two paths).
        """
        if (torch.is_grad_enabled() or self.training or output_attentions or output_hidden_states
                or not self.in_place or _autocast_on(self.device)):
            return False
        return not _has_forward_hooks(self.layers)

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                token_type_ids: Optional[Tensor] = None, position_ids: Optional[Tensor] = None,
                output_attentions: bool = False, output_hidden_states: bool = False,
                return_dict: Optional[bool] = None, unpad: Optional[bool] = None) -> BaseModelOutput:
        input_ids, mask, token_type_ids, position_ids = check_inputs(
            self.config, input_ids, attention_mask, token_type_ids, position_ids)
        hidden = self.embeddings(input_ids, token_type_ids, position_ids)  # (b, t, c)

        mask, unpadding = plan_padding(mask, self.unpad if unpad is None else unpad,
                                       output_attentions, output_hidden_states)
        # Padding keys get a large negative score in every head and every query row.
        bias = None if mask is None else mask_to_bias(mask[:, None, None, :], hidden.dtype)  # (b, 1, 1, s)
        if unpadding is not None:
            hidden = unpadding.gather(hidden)  # (n, c): real tokens only, until the end

        # Back to (b, t, c) for the caller; padded positions are zeros when unpadded.
        to_batch = unpadding.scatter if unpadding is not None else (lambda x: x)
        all_hidden = [to_batch(hidden)] if output_hidden_states else None
        all_probs = [] if output_attentions else None
        in_place = self.runs_in_place(output_attentions, output_hidden_states)
        if in_place:  # one buffer for every block's QKV and FFN products (see EncoderBlock.forward_in_place)
            n = hidden.numel() // hidden.shape[-1]
            scratch = hidden.new_empty(n * max(3 * self.config.hidden_size, self.config.intermediate_size))
        for layer in self.layers:
            if in_place:
                hidden, probs = layer.forward_in_place(hidden, scratch, bias, unpadding), None
            else:
                hidden, probs = layer(hidden, bias, output_attentions, unpadding)
            if output_hidden_states:
                all_hidden.append(to_batch(hidden))
            if output_attentions:
                all_probs.append(probs)
        hidden = to_batch(hidden)  # (b, t, c)

        out = BaseModelOutput(
            last_hidden_state=hidden,
            pooler_output=self.pooler(hidden) if self.pooler is not None else None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_probs) if output_attentions else None,
        )
        return out.to_tuple() if return_dict is False else out
