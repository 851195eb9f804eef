# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Multi-head attention and the post-LN encoder block
#
# Notebook 1 built one attention. A BERT layer runs $h$ of them side by side on $d = c / h$-sized
# slices of the hidden vector ("heads"), so each head can learn a different notion of which tokens
# matter, then mixes the heads back together with a linear layer. Around that sit a position-wise
# feed-forward network, two residual connections and two LayerNorms. We rebuild all of it by hand,
# print the shapes at each step, and check every piece against `minibert`.
#
# Dimension letters: `b` batch, `t` query positions, `s` key positions, `h` heads, `d` head size,
# `c` hidden size ($c = h \cdot d$), `f` feed-forward size.

# %%
import math

import torch
import torch.nn.functional as F
from einops import rearrange

from minibert import BertConfig, MultiHeadAttention
from minibert.attention import mask_to_bias
from minibert.model import EncoderBlock

torch.manual_seed(0)

# %% [markdown]
# ## Multi-head attention by hand
#
# A tiny configuration keeps the printout readable: hidden size $c = 32$ split into $h = 4$ heads
# of $d = 8$. `MultiHeadAttention` holds two linear layers: `qkv`, one fused $c \to 3c$ projection
# (the query, key and value projections stacked, one matrix multiply instead of three), and `out`,
# the $c \to c$ projection that mixes the heads.

# %%
b, t, c, h = 2, 6, 32, 4
d = c // h
mha = MultiHeadAttention(hidden_size=c, num_heads=h).eval()
x = torch.randn(b, t, c)
print(mha)

# %% [markdown]
# The head split is only a reshape: the $3c$ outputs of the projection are read as
# `(three h d)` — which of q/k/v, which head, which coordinate — and moved so that heads become a
# batch-like axis. `einops.rearrange` says this layout in the pattern itself.

# %%
qkv = mha.qkv(x)
print("qkv       ", tuple(qkv.shape), "  (b, t, 3c)")
q, k, v = rearrange(qkv, "b t (three h d) -> three b h t d", three=3, h=h)
print("q, k, v   ", tuple(q.shape), "  (b, h, t, d)")
scores = q @ k.transpose(-2, -1) / math.sqrt(d)
print("scores    ", tuple(scores.shape), "  (b, h, t, s)")
probs = scores.softmax(-1)
context = probs @ v
print("context   ", tuple(context.shape), "  (b, h, t, d)")
merged = rearrange(context, "b h t d -> b t (h d)")
print("merged    ", tuple(merged.shape), "  (b, t, c): heads side by side again")
by_hand = mha.out(merged)
print("output    ", tuple(by_hand.shape), "  (b, t, c)")

# %% [markdown]
# The module offers two paths: with `need_weights=True` it runs the readable computation above and
# returns the weights; otherwise it calls PyTorch's fused kernel. Both must equal our hand-built
# version. Same float32 arithmetic, so `atol=1e-6`.

# %%
readable, weights = mha(x, need_weights=True)
fused, _ = mha(x)
torch.testing.assert_close(by_hand, readable, atol=1e-6, rtol=0)
torch.testing.assert_close(by_hand, fused, atol=1e-6, rtol=0)
torch.testing.assert_close(weights, probs, atol=1e-6, rtol=0)
print("by hand == need_weights path == fused path")

# %% [markdown]
# PyTorch ships its own multi-head attention, `torch.nn.MultiheadAttention`, whose `in_proj_weight`
# is laid out exactly like our fused `qkv` (query rows, then key rows, then value rows). Copying our
# weights into it gives an independent check of the head split, in float64 at `1e-12`.

# %%
torch_mha = torch.nn.MultiheadAttention(c, h, batch_first=True).double().eval()
with torch.no_grad():
    torch_mha.in_proj_weight.copy_(mha.qkv.weight)
    torch_mha.in_proj_bias.copy_(mha.qkv.bias)
    torch_mha.out_proj.weight.copy_(mha.out.weight)
    torch_mha.out_proj.bias.copy_(mha.out.bias)
mha64, x64 = mha.double(), x.double()
theirs, _ = torch_mha(x64, x64, x64, need_weights=False)
torch.testing.assert_close(mha64(x64)[0], theirs, atol=1e-12, rtol=0)
mha.float()
print("minibert.MultiHeadAttention == torch.nn.MultiheadAttention (float64, 1e-12)")

# %% [markdown]
# Splitting into heads does not add parameters: 4 heads of size 8 use the same $3c^2 + 3c$ and
# $c^2 + c$ numbers as one head of size 32. What changes is that each head computes its *own*
# softmax, so it can attend sharply to a different position than its neighbours.

# %%
n_params = sum(p.numel() for p in mha.parameters())
assert n_params == (3 * c * c + 3 * c) + (c * c + c)
print(f"{n_params} parameters = 4c² + 4c with c = {c}")

# %% [markdown]
# ## The encoder block: residuals and LayerNorm, post-LN
#
# One BERT layer is
#
# $$x' = \mathrm{LN}\big(x + \mathrm{MHA}(x)\big), \qquad
#   y = \mathrm{LN}\big(x' + W_2\,\mathrm{GELU}(W_1 x' + b_1) + b_2\big)$$
#
# with LayerNorm over the hidden axis, for each position separately:
# $\mathrm{LN}(z) = \gamma \odot (z - \mu)/\sqrt{\sigma^2 + \varepsilon} + \beta$, where $\mu$ and
# $\sigma^2$ are the mean and the (biased) variance of the $c$ coordinates of $z$.
#
# The norm comes *after* adding the residual: "post-LN", the arrangement of the original
# Transformer and of BERT. Every public BERT checkpoint was trained this way, so loading one
# requires it. (Dropout sits on each branch before the addition; in `eval()` mode it is the
# identity, which is what we compare here.)

# %%
config = BertConfig(vocab_size=100, hidden_size=c, num_hidden_layers=1, num_attention_heads=h,
                    intermediate_size=4 * c, max_position_embeddings=16)
block = EncoderBlock(config).eval()
for module in block.modules():  # give the LayerNorms non-trivial γ, β so the check means something
    if isinstance(module, torch.nn.LayerNorm):
        torch.nn.init.normal_(module.weight, 1.0, 0.1)
        torch.nn.init.normal_(module.bias, 0.0, 0.1)


def layer_norm(z, norm):
    mu = z.mean(-1, keepdim=True)
    var = z.var(-1, keepdim=True, unbiased=False)
    return norm.weight * (z - mu) / torch.sqrt(var + norm.eps) + norm.bias


def post_ln_block(x, blk):
    x = layer_norm(x + blk.attn(x)[0], blk.attn_norm)                 # (b, t, c)
    ffn = blk.ffn.down(F.gelu(blk.ffn.up(x)))                         # c -> f -> c, erf GELU
    return layer_norm(x + ffn, blk.ffn_norm)                          # (b, t, c)


ours = post_ln_block(x, block)
theirs, _ = block(x)
torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
print("hand-written post-LN block == minibert.model.EncoderBlock (float32, 1e-5)")

# %% [markdown]
# The tolerance is `1e-5` here rather than `1e-6`: our LayerNorm formula and PyTorch's fused
# `layer_norm` round differently, and the errors pass through a 128-wide feed-forward layer.
#
# A padding mask enters the block as an additive *bias* on the scores (0 = attend, very negative =
# blocked), built once per batch by `mask_to_bias`. As in notebook 1, padding must not change the
# real positions:

# %%
attention_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
bias = mask_to_bias(attention_mask[:, None, None, :], x.dtype)      # (b, 1, 1, s)
x_garbage = x.clone()
x_garbage[1, 4:] = 100 * torch.randn(2, c)
clean, _ = block(x, bias)
dirty, _ = block(x_garbage, bias)
torch.testing.assert_close(clean[1, :4], dirty[1, :4], atol=1e-5, rtol=0)
print("real positions ignore what sits in the padding")

# %% [markdown]
# ## Why post-LN, and what pre-LN changes
#
# Many later Transformers move the norm *inside* the branch: $x + \mathrm{MHA}(\mathrm{LN}(x))$,
# "pre-LN". The two are not interchangeable; a checkpoint trained one way gives garbage the other
# way. What differs:
#
# * **Post-LN** (BERT): every layer's output is normalised, so the hidden vectors that leave each
#   layer have mean 0 and variance 1 per position (before $\gamma$, $\beta$). Gradients reaching the
#   lower layers pass through every LayerNorm on the way, and deep post-LN stacks are known to need
#   learning-rate warm-up to train stably; BERT's recipe has one (10,000 steps).
# * **Pre-LN**: the residual stream $x$ is never normalised. Each layer adds its output to it, so its
#   size grows with depth, and there is an identity path from the loss to every layer. Deep models
#   train with less warm-up; a final LayerNorm is added after the last layer.
#
# Both points can be seen numerically. Below, 12 freshly initialised blocks (PyTorch's default
# initialisation) are run both ways, with the same weights, on the same input.

# %%
torch.manual_seed(1)
blocks = [EncoderBlock(config).eval() for _ in range(12)]


def pre_ln_block(x, blk):
    x = x + blk.attn(blk.attn_norm(x))[0]
    return x + blk.ffn(blk.ffn_norm(x))


x0 = torch.randn(b, t, c)
post, pre = x0, x0
post_std, pre_norm = [], []
with torch.no_grad():
    for blk in blocks:
        post, _ = blk(post)
        pre = pre_ln_block(pre, blk)
        post_std.append(post.std(-1, unbiased=False).mean().item())
        pre_norm.append(pre.norm(dim=-1).mean().item())
print("post-LN: std of each layer's output  ", " ".join(f"{v:.2f}" for v in post_std))
print("pre-LN:  norm of the residual stream ", " ".join(f"{v:.1f}" for v in pre_norm))

# Post-LN: every layer's output is normalised (γ = 1, β = 0 at initialisation), std 1 within 1e-3.
assert all(abs(v - 1) < 1e-3 for v in post_std)
# Pre-LN: the residual stream is never normalised; it grows as layers add to it (here by > 20%).
assert pre_norm[-1] > 1.2 * pre_norm[0]

# %% [markdown]
# ## What we showed
#
# * the head split is a reshape, `b t (three h d) -> three b h t d`, and our by-hand multi-head
#   attention equals both of minibert's paths (`1e-6`) and `torch.nn.MultiheadAttention` (float64,
#   `1e-12`);
# * the post-LN block $\mathrm{LN}(x + \mathrm{MHA}(x))$, $\mathrm{LN}(x + \mathrm{FFN}(x))$ written
#   out equals `minibert.model.EncoderBlock` (`1e-5`), and padding does not leak into real positions;
# * post-LN keeps each layer's output normalised; pre-LN lets the residual stream grow.
#
# Notebook 3 loads a trained checkpoint into a stack of these blocks.
