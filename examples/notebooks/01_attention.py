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
# # 1. Scaled dot-product attention
#
# Everything in BERT that mixes information *between* positions goes through one formula:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right)V$$
#
# Each of the $t$ query rows of $Q$ is compared with each of the $s$ key rows of $K$ by a dot product;
# the softmax turns one row of scores into weights that are positive and sum to one; the output row
# is the weighted average of the value rows of $V$. In this notebook we build that formula from plain
# tensor operations, check it against minibert's `scaled_dot_product_attention` and PyTorch's fused
# kernel, add masks, and draw the weights.
#
# Dimension letters used in every comment (the same as in `minibert/attention.py`): `b` batch,
# `t` query positions, `s` key positions, `d` size of one query/key/value vector.
#
# *Running it:* `pip install -e .` from the repository root (on Colab: clone the repository first),
# then run the cells top to bottom. It takes a few seconds on a laptop CPU.

# %%
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import minibert

torch.manual_seed(0)
FIGURES = Path(os.environ.get("MINIBERT_FIGURES", "figures"))  # where the pictures are saved
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The formula, one operation at a time
#
# Three random inputs: a batch of 2 sequences, 5 positions each, vectors of size 8. In
# self-attention (BERT's case) queries, keys and values all come from the same sequence, so $t = s$;
# the formula itself does not need that.

# %%
b, t, s, d = 2, 5, 5, 8
q = torch.randn(b, t, d)
k = torch.randn(b, s, d)
v = torch.randn(b, s, d)


def attention(q, k, v, mask=None):
    """softmax(Q Kᵀ / √d) V. ``mask`` is boolean, True where a query may look at a key."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])   # (b, t, s): every query against every key
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))         # blocked keys: weight exp(-inf) = 0
    weights = scores.softmax(dim=-1)                              # (b, t, s): each row sums to 1
    return weights @ v, weights                                   # (b, t, d), (b, t, s)


out, weights = attention(q, k, v)
print("output", tuple(out.shape), " weights", tuple(weights.shape))
print("row sums of the weights:", weights.sum(-1)[0])

# %% [markdown]
# Two properties follow from the softmax, and we check them rather than take them on trust: every
# weight is in $[0, 1]$, and every row of weights sums to 1 (to float32 rounding, `1e-6`). The output
# is therefore a *convex combination* of value rows: each coordinate lies between the smallest and
# the largest value in that column.

# %%
assert (weights >= 0).all() and (weights <= 1).all()
torch.testing.assert_close(weights.sum(-1), torch.ones(b, t), atol=1e-6, rtol=0)
assert (out <= v.max(dim=1, keepdim=True).values + 1e-6).all()
assert (out >= v.min(dim=1, keepdim=True).values - 1e-6).all()

# %% [markdown]
# ## Why divide by √d?
#
# If the coordinates of $q$ and $k$ are independent with mean 0 and variance 1, their dot product
# $q \cdot k = \sum_{i=1}^{d} q_i k_i$ is a sum of $d$ terms of variance 1, so its variance is $d$.
# With $d = 64$ (BERT-base's head size) raw scores have a standard deviation of 8: the softmax then
# puts almost all its weight on one key, and its gradient with respect to the other scores almost
# vanishes. Dividing by $\sqrt{d}$ brings the standard deviation back to 1 whatever $d$ is.

# %%
for dim in (4, 64, 1024):
    qs, ks = torch.randn(20000, dim), torch.randn(20000, dim)
    raw = (qs * ks).sum(-1)
    print(f"d={dim:5d}  std of q·k = {raw.std():7.2f}   std of q·k/√d = {(raw / math.sqrt(dim)).std():.3f}")
    assert abs(raw.std() / math.sqrt(dim) - 1) < 0.05   # std of the raw score is √d, within 5%
    assert abs((raw / math.sqrt(dim)).std() - 1) < 0.05  # after scaling: 1, within 5%

# %% [markdown]
# ### What goes wrong without it: saturation
#
# The standard deviation is only the cause; the effect is on the softmax. For head sizes from 16 to
# 1024 we draw 256 queries against 64 keys (unit-variance coordinates, as above), and measure two
# things, with and without the $1/\sqrt{d}$:
#
# * the **largest weight** in each row, averaged over rows: near $1$ means the softmax has become an
#   argmax and the output is a copy of one value row;
# * the **gradient norm** that reaches the scores when a loss is back-propagated through the softmax
#   (a random upstream gradient of unit scale per weight). The softmax's Jacobian is
#   $\mathrm{diag}(p) - pp^\top$: when one $p_j \to 1$ every entry tends to 0, so the scores, and
#   through them $W_Q$ and $W_K$, stop learning.

# %%
def saturation(dim, scaled, queries=256, keys=64):
    g = torch.Generator().manual_seed(dim)
    q, k = torch.randn(queries, dim, generator=g), torch.randn(keys, dim, generator=g)
    scores = (q @ k.T) / (math.sqrt(dim) if scaled else 1.0)      # (t, s)
    scores.requires_grad_(True)
    probs = scores.softmax(dim=-1)                               # (t, s)
    upstream = torch.randn(queries, keys, generator=g)           # dLoss/dprobs, unit scale
    (probs * upstream).sum().backward()
    return probs.max(-1).values.mean().item(), scores.grad.norm(dim=-1).mean().item()


dims = [16, 64, 256, 1024]
curves = {scaled: [saturation(dim, scaled) for dim in dims] for scaled in (False, True)}
for dim, raw, div in zip(dims, curves[False], curves[True]):
    print(f"d={dim:5d}  without √d: largest weight {raw[0]:.3f}, grad norm {raw[1]:.4f}   "
          f"with √d: largest weight {div[0]:.3f}, grad norm {div[1]:.4f}")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
for scaled, style in ((False, "o-"), (True, "s-")):
    label = "q·k/√d" if scaled else "q·k (no scaling)"
    left.semilogx(dims, [w for w, _ in curves[scaled]], style, base=2, label=label)
    right.loglog(dims, [g for _, g in curves[scaled]], style, base=2, label=label)
left.set(xlabel="head size d", ylabel="largest weight per row (mean)", title="the softmax saturates", ylim=(0, 1.05))
right.set(xlabel="head size d", ylabel="gradient norm at the scores", title="and its gradient vanishes")
left.legend()
right.legend()
fig.savefig(FIGURES / "01_softmax_saturation.png", dpi=120, bbox_inches="tight")
plt.show()

raw_weight, raw_grad = zip(*curves[False])
div_weight, div_grad = zip(*curves[True])
# Without scaling, rows become nearly one-hot as d grows and the gradient shrinks (by > 3x from
# d = 16 to d = 1024, to less than half of the scaled version's);
assert raw_weight[-1] > 0.9 and raw_grad[-1] < raw_grad[0] / 3 and raw_grad[-1] < div_grad[-1] / 2
# with it, both stay where they were at d = 16 (within a factor 1.5).
assert max(div_weight) < 1.5 * min(div_weight) and max(div_grad) < 1.5 * min(div_grad)

# %% [markdown]
# ## Checked against minibert and PyTorch
#
# `minibert.scaled_dot_product_attention(q, k, v, mask)` returns `(output, weights)` like our
# function. It performs the same operations in the same order, so in float32 we hold it to
# `atol=1e-6` (a few units in the last place).
#
# PyTorch's `F.scaled_dot_product_attention` is a fused kernel that may sum in a different order.
# To compare the *maths* rather than rounding, that comparison runs in float64, where we can demand
# `atol=1e-12`.

# %%
ours, ours_weights = attention(q, k, v)
theirs, theirs_weights = minibert.scaled_dot_product_attention(q, k, v)
torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
torch.testing.assert_close(ours_weights, theirs_weights, atol=1e-6, rtol=0)

q64, k64, v64 = q.double(), k.double(), v.double()
torch.testing.assert_close(attention(q64, k64, v64)[0], F.scaled_dot_product_attention(q64, k64, v64),
                           atol=1e-12, rtol=0)
print("our attention == minibert's (float32, 1e-6) == PyTorch's (float64, 1e-12)")

# %% [markdown]
# ## Masks
#
# Batches hold sentences of different lengths, padded to the longest with `[PAD]` tokens. Padding
# must not influence real tokens, so every query is forbidden to look at padding *keys*. A boolean
# mask, True = may attend, broadcast over the query axis, does this: the blocked scores become
# $-\infty$ before the softmax, and $e^{-\infty} = 0$.
#
# minibert uses a very large negative number (the dtype's minimum) instead of $-\infty$: a row whose
# keys are *all* blocked then gets uniform weights instead of `0/0 = NaN`. For rows that have at least
# one allowed key, both give weight exactly 0 to the blocked keys.
#
# Below, sequence 0 is 5 tokens long and sequence 1 only 3 (positions 3 and 4 are padding).

# %%
lengths = torch.tensor([5, 3])
key_is_real = torch.arange(s)[None, :] < lengths[:, None]     # (b, s)
padding_mask = key_is_real[:, None, :]                         # (b, 1, s): the same for every query
print(padding_mask.int())

out_masked, w_masked = attention(q, k, v, padding_mask)
mb_out, mb_w = minibert.scaled_dot_product_attention(q, k, v, mask=padding_mask)
torch.testing.assert_close(out_masked, mb_out, atol=1e-6, rtol=0)
torch.testing.assert_close(w_masked, mb_w, atol=1e-6, rtol=0)
assert (mb_w[1, :, 3:] == 0).all()                 # padding keys get exactly zero weight
torch.testing.assert_close(mb_w.sum(-1), torch.ones(b, t), atol=1e-6, rtol=0)

# %% [markdown]
# The test that matters: the output at real positions must not depend on what the padding holds.
# Fill the padded keys and values of sequence 1 with garbage and nothing changes (exactly, not
# approximately: the garbage is multiplied by weights that are exactly 0).

# %%
k_garbage, v_garbage = k.clone(), v.clone()
k_garbage[1, 3:] = 1e3 * torch.randn(2, d)
v_garbage[1, 3:] = 1e3 * torch.randn(2, d)
out_garbage, _ = minibert.scaled_dot_product_attention(q, k_garbage, v_garbage, mask=padding_mask)
assert torch.equal(out_garbage[1], mb_out[1])
print("padding content has no effect on the output")

# %% [markdown]
# A second kind of mask, not used by BERT but by left-to-right models such as GPT: the *causal*
# mask lets position $i$ see only positions $\le i$. BERT's attention is bidirectional — each token
# sees the whole sentence, left and right — which is the "B" in its name. PyTorch's `is_causal=True`
# builds this mask itself; we check that ours matches it (float64, `1e-12`).

# %%
causal = torch.ones(t, s, dtype=torch.bool).tril()          # (t, s): lower triangle
out_causal, w_causal = attention(q64, k64, v64, causal)
torch.testing.assert_close(out_causal, F.scaled_dot_product_attention(q64, k64, v64, is_causal=True),
                           atol=1e-12, rtol=0)
assert (w_causal.triu(diagonal=1) == 0).all()
print(causal.int())

# %% [markdown]
# ## A picture of the weights
#
# Each row is one query; each column one key; the colour is the weight. Left: no mask. Middle: the
# padded sequence 1 — the last two columns are empty. Right: the causal mask — an upper triangle of
# zeros.

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
panels = [(weights[1], "no mask"), (mb_w[1], "padding mask (length 3)"), (w_causal[1].float(), "causal mask")]
for ax, (w, title) in zip(axes, panels):
    image = ax.imshow(w.detach(), vmin=0, vmax=1, cmap="viridis")
    ax.set_title(title)
    ax.set_xlabel("key position s")
    ax.set_ylabel("query position t")
    ax.set_xticks(range(s))
    ax.set_yticks(range(t))
fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
fig.savefig(FIGURES / "01_attention_weights.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# ## What we showed
#
# * softmax$(QK^\top/\sqrt{d})V$ written with three tensor operations gives the same numbers as
#   `minibert.scaled_dot_product_attention` (float32, `1e-6`) and PyTorch's fused kernel (float64,
#   `1e-12`);
# * the $1/\sqrt{d}$ keeps scores at unit scale whatever the head size; without it the softmax
#   saturates as $d$ grows (largest weight → 1) and the gradient reaching the scores vanishes;
# * a boolean padding mask gives padded keys exactly zero weight, so padding cannot change real
#   outputs.
#
# Next, notebook 2 runs many of these attentions side by side (heads) inside BERT's encoder block.
