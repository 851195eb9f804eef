"""BERT's encoder, top to bottom: embeddings -> N post-LN Transformer blocks -> pooler.

Read this file first. Dimension letters as in ``attention.py``: b batch, t positions, h heads,
d head size, c hidden size, f feed-forward (intermediate) size, v vocabulary.

    hidden_0 = LayerNorm(word[ids] + position[pos] + token_type[types])
    hidden_i = Block(hidden_{i-1}),  i = 1..N
    pooled   = tanh(W hidden_N[:, 0] + b)            # the [CLS] position

Each block is post-LN, as in the original BERT (and every public BERT checkpoint):

    x = LayerNorm(x + Dropout(MultiHeadAttention(x)))
    x = LayerNorm(x + Dropout(W2 act(W1 x)))

This is the reference path. ``BertModel.forward`` asks ``minibert.fast.decide`` once per call whether
a faster path gives the same values (fused attention, unpadding, in-place inference) and hands the
blocks to ``minibert.fast.encode`` if so; ``minibert.fast.explain(model, mask)`` shows the choice.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from minibert import fast
from minibert.attention import Kernel, MultiHeadAttention, mask_to_bias
from minibert.checkpoints.pretrained import PretrainedMixin
from minibert.fast.precision import set_precision
from minibert.config import BertConfig
from minibert.inputs import check_inputs
from minibert.outputs import BaseModelOutput, returned


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
        return self.down(self.act(self.up(hidden)))  # (b, t, f) inside, (b, t, c) out


class EncoderBlock(nn.Module):
    """One post-LN Transformer layer: self-attention, then the feed-forward MLP, each wrapped in
    dropout, a residual connection and LayerNorm."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attn = MultiHeadAttention(config.hidden_size, config.num_attention_heads,
                                       config.attention_probs_dropout_prob)
        self.attn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = FeedForward(config)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: Tensor, bias: Optional[Tensor] = None,
                kernel: Optional[Kernel] = None) -> tuple[Tensor, Optional[Tensor]]:
        # hidden is (b, t, c), or (n, c) with an unpadded kernel: everything but attention is per position.
        attended, probs = self.attn(hidden, bias, kernel)                    # (b, t, c), (b, h, t, s)
        hidden = self.attn_norm(hidden + self.dropout(attended))             # post-LN: norm after the residual
        hidden = self.ffn_norm(hidden + self.dropout(self.ffn(hidden)))      # (b, t, c)
        return hidden, probs


class Pooler(nn.Module):
    """tanh(W h_[CLS] + b): the sentence-level vector NSP and sequence classification read."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: Tensor) -> Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (b, c)


class BertPreTrainedModel(PretrainedMixin, nn.Module):
    """What every minibert model shares: a config, BERT's initialisation, and (from the mixin)
    ``from_pretrained`` / ``save_pretrained``."""

    def __init__(self, config: BertConfig):
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a minibert.BertConfig, got {type(config).__name__}")
        self.config = config

    @classmethod
    def from_pretrained(cls, name_or_path, precision: Optional[str] = None, **kwargs):
        """The mixin's loading, then ``precision`` ("auto", "fp32", "bf16", "int8"; see
        ``minibert.fast.precision``) converts the model for inference; None keeps the checkpoint's float32."""
        model = super().from_pretrained(name_or_path, **kwargs)
        if precision is not None:
            set_precision(model, precision)
        return model

    def init_weights(self, only: Optional[set[str]] = None) -> None:
        """BERT's initialisation: N(0, initializer_range) weights, zero biases, LayerNorm 1/0, and a zero
        row for the padding token. ``only``: just these parameter names (what a checkpoint lacked).
        Parameters on the meta device (a model being loaded) have no memory yet and are skipped."""
        std, seen = self.config.initializer_range, set()
        with torch.no_grad():
            for prefix, module in self.named_modules():
                for name, param in module.named_parameters(prefix=prefix, recurse=False):
                    # A tensor shared with an earlier module (the MLM decoder's, tied to the word
                    # embeddings) is drawn once, by its first owner.
                    if id(param) in seen or param.is_meta or (only is not None and name not in only):
                        continue
                    name = name.rsplit(".", 1)[-1]
                    seen.add(id(param))
                    if name == "weight" and isinstance(module, (nn.Linear, nn.Embedding)):
                        param.normal_(0.0, std)
                    else:  # biases (the MLM head's own one too) start at 0, LayerNorm's scale at 1
                        param.fill_(1.0 if name == "weight" and isinstance(module, nn.LayerNorm) else 0.0)
                    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                        param[module.padding_idx] = 0

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())


class BertModel(BertPreTrainedModel):
    """The bare encoder: ids in, one contextual vector per position (and a pooled one) out.

    ``fast_paths`` (default True): let ``minibert.fast.decide`` pick a faster path with the same values;
    False runs the reference path on every call (to compare, or to debug).
    """

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True, init: bool = True):
        super().__init__(config)
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(EncoderBlock(config) for _ in range(config.num_hidden_layers))
        self.pooler = Pooler(config) if add_pooling_layer else None
        self.fast_paths = True
        if init:  # a head model passes init=False and initialises everything, this encoder included, once
            self.init_weights()

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                token_type_ids: Optional[Tensor] = None, position_ids: Optional[Tensor] = None,
                output_attentions: bool = False, output_hidden_states: bool = False,
                return_dict: Optional[bool] = None, unpad: fast.UnpadMode = False) -> BaseModelOutput:
        """``unpad``: False keeps transformers' padded layout (``last_hidden_state`` equal at every
        position); True runs the blocks on real tokens only, padded positions then come back as zeros;
        "auto" does so where it cannot be seen (inference, no per-layer outputs). See ``fast.decide``."""
        input_ids, mask, token_type_ids, position_ids = check_inputs(
            self.config, input_ids, attention_mask, token_type_ids, position_ids)
        plan = fast.decide(self, mask, unpad, output_attentions, output_hidden_states)
        hidden = self.embeddings(input_ids, token_type_ids, position_ids)  # (b, t, c)

        if plan.path != "reference":
            hidden, states = fast.encode(self.layers, hidden, mask, plan, output_hidden_states)
            probs = None
        else:
            # Padding keys get a large negative score in every head and every query row.
            bias = None if mask is None else mask_to_bias(mask[:, None, None, :], hidden.dtype)  # (b, 1, 1, s)
            states, probs = [hidden], []
            for layer in self.layers:
                hidden, layer_probs = layer(hidden, bias)  # (b, t, c), (b, h, t, s)
                states.append(hidden)
                probs.append(layer_probs)

        out = BaseModelOutput(
            last_hidden_state=hidden,
            pooler_output=self.pooler(hidden) if self.pooler is not None else None,
            hidden_states=tuple(states) if output_hidden_states else None,
            attentions=tuple(probs) if output_attentions else None,
        )
        return returned(out, return_dict)
