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
import os
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from einops import rearrange

import minibert
from minibert import BertConfig, BertModel, MultiHeadAttention
from minibert.attention import mask_to_bias
from minibert.model import EncoderBlock

torch.manual_seed(0)
FIGURES = Path(os.environ.get("MINIBERT_FIGURES", "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

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
# The module runs the readable computation above and returns the weights. The fast paths in
# `minibert.fast` hand it PyTorch's fused kernel instead (`kernel=sdpa`), which keeps no weights.
# Both must equal our hand-built version. Same float32 arithmetic, so `atol=1e-6`.

# %%
from minibert.fast.sdpa import sdpa

readable, weights = mha(x)
fused, _ = mha(x, kernel=sdpa)
torch.testing.assert_close(by_hand, readable, atol=1e-6, rtol=0)
torch.testing.assert_close(by_hand, fused, atol=1e-6, rtol=0)
torch.testing.assert_close(weights, probs, atol=1e-6, rtol=0)
print("by hand == reference path == fused path")

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
# ## The source tutorial's §4.1 formula, beside BERT's
#
# The tutorial this project started from writes BERT's layer and output as
#
# $$f(x^1_i, x^2_i) = \mathrm{LayerNorm}\big(x^1_i + \mathrm{MultiHeadAttention}(Q = x^1_i, K = x^2_i, V = x^2_i)\big)$$
# $$\mathrm{MLP}\big(f(x^1_i, x^2_i), f(x^1_j, x^2_j)\big) = \mathrm{softmax}\big(W_o\,[\mathrm{concat}(f(x^1_i, x^2_i), f(x^1_j, x^2_j))] + b_o\big)$$
#
# with $x^1$, $x^2$ called "forward" and "backward" representations. BERT's actual layer, which we
# just checked against `EncoderBlock`, is
#
# $$x' = \mathrm{LN}\big(x + \mathrm{MHA}(Q = x, K = x, V = x)\big), \qquad
#   y = \mathrm{LN}\big(x' + \mathrm{FFN}(x')\big),$$
#
# stacked $N$ times, and its outputs are a softmax over the vocabulary at masked positions and a
# 2-way softmax on the pooled `[CLS]` vector (notebook 4) — never a softmax over two concatenated
# token vectors. The differences, each checkable:
#
# 1. there is one representation per position, not a forward and a backward one: "bidirectional"
#    means self-attention without a causal mask ($Q$, $K$, $V$ all come from the same $x$);
# 2. the tutorial's $f$ stops after the attention sub-layer: the feed-forward sub-layer, with its
#    own residual and LayerNorm, is missing.
#
# Taking the kindest reading ($x^1 = x^2 = x$), the tutorial's $f$ is the first half of the block:

# %%
def tutorial_f(x1, x2, blk):
    """The §4.1 formula as written: cross-attention from x1 to x2, one residual, one LayerNorm."""
    q = blk.attn.qkv(x1).chunk(3, dim=-1)[0]       # queries from x¹        (b, t, c)
    _, k, v = blk.attn.qkv(x2).chunk(3, dim=-1)    # keys and values from x²
    split = lambda z: rearrange(z, "b t (h d) -> b h t d", h=h)   # noqa: E731
    context, _ = minibert.scaled_dot_product_attention(split(q), split(k), split(v))
    return layer_norm(x1 + blk.attn.out(rearrange(context, "b h t d -> b t (h d)")), blk.attn_norm)


with torch.no_grad():
    first_half = tutorial_f(x, x, block)
    bert_layer, _ = block(x)
    torch.testing.assert_close(first_half, layer_norm(x + block.attn(x)[0], block.attn_norm), atol=1e-5, rtol=0)
    gap = (first_half - bert_layer).abs().max().item()
print(f"tutorial f(x, x) equals BERT's attention sub-layer; it differs from the whole layer by up to {gap:.2f}")
assert gap > 0.1   # the missing feed-forward sub-layer is not a rounding matter

# %% [markdown]
# ## Post-LN and pre-LN, with BERT's initialisation
#
# Many later Transformers move the norm *inside* the branch: $x + \mathrm{MHA}(\mathrm{LN}(x))$,
# "pre-LN", with one final LayerNorm after the last layer. Post-LN normalises every layer's output;
# pre-LN never normalises the residual stream, so it keeps an identity path from the loss to every
# layer.
#
# A claim often repeated is that the pre-LN residual stream "grows with depth". Whether it does at
# the start depends on the initialisation. With PyTorch's default `nn.Linear` init (weights of scale
# $1/\sqrt{c}$), each branch adds a vector comparable to its input and the stream grows. BERT
# initialises every weight from $\mathcal{N}(0, 0.02^2)$ (`BertModel.init_weights`): each branch then
# adds a vector about 50 times smaller than the stream, and through 12 layers its norm does not move.

# %%
depth_config = BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=12, num_attention_heads=4,
                          intermediate_size=256, max_position_embeddings=16)


def pre_ln_block(x, blk, bias=None):
    x = x + blk.attn(blk.attn_norm(x), bias)[0]
    return x + blk.ffn(blk.ffn_norm(x))


def stream_growth(blocks, x0):
    """Norm of the pre-LN residual stream after the last layer over its norm after the first."""
    norms, z = [], x0
    with torch.no_grad():
        for blk in blocks:
            z = pre_ln_block(z, blk)
            norms.append(z.norm(dim=-1).mean().item())
    return norms[-1] / norms[0]


torch.manual_seed(1)
pytorch_init = [EncoderBlock(depth_config).eval() for _ in range(12)]
torch.manual_seed(1)
bert_init = list(BertModel(depth_config).eval().layers)       # the same blocks, BERT's N(0, 0.02) init
x0 = torch.randn(4, 16, 64)
growth = {"PyTorch default init": stream_growth(pytorch_init, x0), "BERT init": stream_growth(bert_init, x0)}
for name, ratio in growth.items():
    print(f"{name:22s} pre-LN stream norm, layer 12 / layer 1: {ratio:.3f}")
assert growth["PyTorch default init"] > 1.2        # grows by > 20% through 12 layers
assert abs(growth["BERT init"] - 1) < 0.01          # does not move (within 1%)

# %% [markdown]
# ### Gradients per layer
#
# What reaches each layer in the backward pass? We back-propagate a mean-squared error against a
# random target through the 12 BERT-initialised blocks, once run post-LN and once pre-LN (plus the
# final LayerNorm), and take each layer's gradient norm, for its weight matrices and for its
# LayerNorm parameters separately.

# %%
def layer_gradients(blocks, order):
    for blk in blocks:
        blk.zero_grad()
    z = x0
    for blk in blocks:
        z = blk(z)[0] if order == "post-LN" else pre_ln_block(z, blk)
    if order == "pre-LN":
        z = F.layer_norm(z, (z.shape[-1],))
    F.mse_loss(z, torch.randn(z.shape, generator=torch.Generator().manual_seed(0))).backward()

    def norm(blk, is_layer_norm):
        return torch.stack([p.grad.norm() for name, p in blk.named_parameters()
                            if ("norm" in name) == is_layer_norm]).norm().item()
    return [norm(blk, False) for blk in blocks], [norm(blk, True) for blk in blocks]


gradients = {order: layer_gradients(bert_init, order) for order in ("post-LN", "pre-LN")}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
for order, (weights_grad, norms_grad) in gradients.items():
    axes[0].plot(range(1, 13), weights_grad, "o-", label=order)
    axes[1].plot(range(1, 13), norms_grad, "o-", label=order)
axes[0].set(xlabel="layer", ylabel="gradient norm", title="weight matrices", ylim=(0, None))
axes[1].set(xlabel="layer", ylabel="gradient norm", title="LayerNorm γ, β", ylim=(0, None))
axes[0].legend()
fig.suptitle("per-layer gradient norms at BERT's initialisation (12 layers)")
fig.savefig(FIGURES / "02_gradient_norms.png", dpi=120, bbox_inches="tight")
plt.show()
for order, (weights_grad, norms_grad) in gradients.items():
    print(f"{order}: weights {' '.join(f'{g:.3f}' for g in weights_grad)}")
    print(f"{' ' * len(order)}  norms   {' '.join(f'{g:.3f}' for g in norms_grad)}")

post_w, post_n = gradients["post-LN"]
pre_w, pre_n = gradients["pre-LN"]
# At initialisation both orders pass gradients evenly to every layer's weights (within 25%) ...
assert max(post_w) < 1.25 * min(post_w) and max(pre_w) < 1.25 * min(pre_w)
# ... and post-LN's last LayerNorm, which writes the output directly, gets > 2x any other layer's.
assert post_n[-1] > 2 * max(post_n[:-1])

# %% [markdown]
# So at BERT's initialisation the two orders look alike: small weights make every branch nearly
# silent, each layer is close to the identity, and gradients arrive evenly. They part once training
# moves the weights. In post-LN, each layer's LayerNorm divides by the norm of *residual + branch*;
# as branches grow, what a lower layer contributes is scaled down at every layer above it, so the
# output becomes very sensitive to the largest updates of the upper layers (the "amplification"
# Liu et al. 2020 measure), while pre-LN's identity path keeps every layer's contribution additive.
# This is one of the two reasons BERT's recipe warms the learning rate up (notebook 4 gives the other,
# Adam's early second-moment estimates).
#
# ## A post-LN checkpoint run as pre-LN
#
# The order is part of what a checkpoint *is*: the weights were trained to see normalised inputs.
# We run all-MiniLM-L6-v2 (trained post-LN) both ways and compare mean-pooled sentence embeddings.

# %%
checkpoint = BertModel.from_pretrained(minibert.DEFAULT_CHECKPOINT)
tokenizer = minibert.BertTokenizer.from_pretrained(minibert.DEFAULT_CHECKPOINT)
sentences = ["A cat sleeps on the warm windowsill.", "The kitten naps in the sun by the window.",
             "The bank raised its interest rates today.", "Interest rates were increased by the central bank."]
encoded = tokenizer(sentences, padding=True, return_tensors="pt")


def run_layers(order):
    with torch.no_grad():
        ids = encoded["input_ids"]
        z = checkpoint.embeddings(ids, encoded["token_type_ids"], torch.arange(ids.shape[1])[None])  # (b, t, c)
        bias = mask_to_bias(encoded["attention_mask"].bool()[:, None, None, :], z.dtype)              # (b, 1, 1, s)
        for blk in checkpoint.layers:
            z = blk(z, bias)[0] if order == "post-LN" else pre_ln_block(z, blk, bias)
        keep = encoded["attention_mask"][..., None].float()                                          # (b, t, 1)
        pooled = F.normalize((z * keep).sum(1) / keep.sum(1), dim=-1)                                 # (b, c)
    return z, pooled @ pooled.T


post_states, post_cos = run_layers("post-LN")
pre_states, pre_cos = run_layers("pre-LN")
torch.testing.assert_close(post_states, checkpoint(**encoded).last_hidden_state, atol=1e-5, rtol=0)
print("cosine similarities, post-LN (as trained):\n", post_cos.numpy().round(2))
print("cosine similarities, run as pre-LN:\n", pre_cos.numpy().round(2))
print(f"hidden-state norm: post-LN {post_states.norm(dim=-1).mean():.1f}, as pre-LN {pre_states.norm(dim=-1).mean():.1f}")

same_topic = [(0, 1), (2, 3)]
cross_topic = [(0, 2), (0, 3), (1, 2), (1, 3)]
# As trained: same-topic pairs are far more similar than cross-topic pairs.
assert min(post_cos[i, j] for i, j in same_topic) > max(post_cos[i, j] for i, j in cross_topic) + 0.3
# As pre-LN: every sentence looks like every other (cosine > 0.9), the topics are gone.
assert pre_cos.min() > 0.9

# %% [markdown]
# ## What we showed
#
# * the head split is a reshape, `b t (three h d) -> three b h t d`, and our by-hand multi-head
#   attention equals both of minibert's paths (`1e-6`) and `torch.nn.MultiheadAttention` (float64,
#   `1e-12`);
# * the post-LN block $\mathrm{LN}(x + \mathrm{MHA}(x))$, $\mathrm{LN}(x + \mathrm{FFN}(x))$ written
#   out equals `minibert.model.EncoderBlock` (`1e-5`), and padding does not leak into real positions;
# * the source tutorial's §4.1 $f$ is only the attention half of that layer, with a second input BERT
#   does not have;
# * with BERT's $\mathcal{N}(0, 0.02^2)$ init the pre-LN stream does not grow at the start (ratio 1.00;
#   it grows with PyTorch's default init), and gradients reach every layer evenly in both orders;
# * a post-LN checkpoint run as pre-LN loses its meaning: all sentence embeddings collapse together.
#
# Notebook 3 loads a trained checkpoint into a stack of these blocks.
