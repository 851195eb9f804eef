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
# # 8. The cost of attention, and the 512-token limit
#
# Every position attends to every position, so one attention layer compares $t^2$ pairs. Everything
# else in a BERT layer (the Q/K/V and output projections, the feed-forward network) works on one
# position at a time and costs $t$ times a constant. This notebook counts both exactly, measures
# time and memory against $t$, finds where the quadratic part takes over, and shows where the
# 512-token limit of BERT checkpoints comes from.
#
# Dimension letters: `b` batch, `t` positions, `h` heads, `d` head size, `c` hidden size ($c = hd$),
# `f` feed-forward size.

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch.utils.flop_counter import FlopCounterMode

import minibert
from minibert import BertConfig, BertModel
from minibert.model import EncoderBlock

torch.manual_seed(0)
FIGURES = Path(os.environ.get("MINIBERT_FIGURES", "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Counting multiply-adds
#
# For one layer and one sequence, with matrix products counted as 2 floating-point operations per
# multiply-add:
#
# | part | shapes | FLOPs |
# |---|---|---|
# | Q, K, V and output projections | $(t, c) \times (c, c)$, four times | $8tc^2$ |
# | feed-forward, up and down | $(t, c) \times (c, f)$ and back | $4tcf$ |
# | scores $QK^\top$, all heads | $h \times (t, d) \times (d, t)$ | $2t^2c$ |
# | weights times values | $h \times (t, t) \times (t, d)$ | $2t^2c$ |
#
# So the linear part is $t(8c^2 + 4cf)$ and the quadratic part $4t^2c$. With BERT's $f = 4c$ they
# are equal when $4t^2c = 24tc^2$, i.e. at $t = 6c$: 4,608 positions for BERT-base ($c = 768$),
# 2,304 for MiniLM ($c = 384$). Up to 512 tokens, the projections and the MLP dominate the
# arithmetic. We check the table against PyTorch's own FLOP counter on a real `EncoderBlock`.

# %%
def block_flops(config, t):
    """FLOPs of one EncoderBlock forward on one sequence of t positions, counted by PyTorch."""
    block = EncoderBlock(config).eval()
    hidden = torch.randn(1, t, config.hidden_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        block(hidden)  # the readable path (the block's default): two matmuls for attention
    return counter.get_total_flops()


config = BertConfig(hidden_size=256, num_attention_heads=4, intermediate_size=1024, max_position_embeddings=4096)
c, f = config.hidden_size, config.intermediate_size
for t in (64, 256, 1024, 1536):
    counted = block_flops(config, t)
    linear, quadratic = t * (8 * c * c + 4 * c * f), 4 * t * t * c
    print(f"t={t:5d}  counted {counted / 1e9:7.3f} GFLOP  formula {(linear + quadratic) / 1e9:7.3f}  "
          f"attention share {quadratic / (linear + quadratic):.0%}")
    assert counted == linear + quadratic  # the table is exact: matmuls only, 2 FLOPs per multiply-add
print("crossover at t = 6c =", 6 * c)

# %% [markdown]
# ## Memory: the weights are a $(b, h, t, t)$ tensor
#
# Arithmetic is not the whole story. The attention weights of one layer hold $h \cdot t^2$ numbers
# per sequence, and training keeps them (and the scores) for the backward pass. Doubling $t$
# multiplies that memory by four, while the hidden states $(b, t, c)$ only double. The fused kernel
# (`F.scaled_dot_product_attention`, which minibert uses when the weights are not asked for) never
# stores the whole matrix at once on GPUs; the readable path always does.

# %%
b, h = 8, 12  # BERT-base heads
rows = []
for t in (128, 256, 512, 1024, 2048):
    weights_bytes = b * h * t * t * 4      # float32 (b, h, t, t)
    hidden_bytes = b * t * 768 * 4         # float32 (b, t, c) for c = 768
    rows.append((t, weights_bytes, hidden_bytes))
    print(f"t={t:5d}  weights of one layer {weights_bytes / 2**20:8.1f} MiB   hidden states {hidden_bytes / 2**20:6.1f} MiB")

# Measured, not just computed: the weights tensor minibert returns has exactly that size.
q = torch.randn(1, h, 256, 64)
_, probs = minibert.scaled_dot_product_attention(q, q, q)
assert probs.shape == (1, h, 256, 256) and probs.numel() * probs.element_size() == h * 256 * 256 * 4
for (t1, w1, s1), (t2, w2, s2) in zip(rows, rows[1:]):
    assert w2 == 4 * w1 and s2 == 2 * s1  # quadratic against linear
print("at t=512, one layer's weights for a batch of 8:", rows[2][1] // 2**20, "MiB; BERT-base has 12 layers")

# %% [markdown]
# ## Time against t
#
# We time the attention core alone (scores, softmax, weighted sum) and a whole block, for growing
# $t$, on one CPU thread. Timings on a shared machine are noisy; the picture, not the third digit,
# is the point, so nothing below asserts a time.

# %%
torch.set_num_threads(1)
small = BertConfig(hidden_size=128, num_attention_heads=2, intermediate_size=512, max_position_embeddings=4096)
block = EncoderBlock(small).eval()
lengths = [64, 128, 256, 512, 1024, 2048]


def best_time(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


attention_times, block_times = [], []
with torch.no_grad():
    for t in lengths:
        hidden = torch.randn(1, t, small.hidden_size)
        qh = torch.randn(1, small.num_attention_heads, t, 64)
        attention_times.append(best_time(lambda: minibert.scaled_dot_product_attention(qh, qh, qh)))
        block_times.append(best_time(lambda: block(hidden)))
        print(f"t={t:5d}  attention core {attention_times[-1] * 1e3:8.2f} ms   whole block {block_times[-1] * 1e3:8.2f} ms")

fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(lengths, attention_times, "o-", label="attention core (scores, softmax, sum)")
ax.loglog(lengths, block_times, "s-", label="whole encoder block, c=128")
reference = [attention_times[-1] * (t / lengths[-1]) ** 2 for t in lengths]
ax.loglog(lengths, reference, "k:", label="slope 2 (∝ t²)")
ax.axvline(512, color="gray", ls="--", label="BERT's 512 positions")
ax.set_xlabel("sequence length t")
ax.set_ylabel("seconds (best of 3, one thread)")
ax.set_title("attention cost grows as t²")
ax.legend(fontsize=8)
fig.savefig(FIGURES / "08_attention_cost.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# ## Where 512 comes from
#
# Attention itself has no length limit: the formula works for any $t$. The limit is in the
# *embeddings*: BERT learns one position vector per position, `max_position_embeddings = 512` of
# them, and position 512 has no vector at all. The tokenizer truncates to `model_max_length` (512)
# when asked to; minibert's model refuses a longer input with an error that says why, instead of
# an index error deep inside `nn.Embedding`.

# %%
model = BertModel.from_pretrained(minibert.DEFAULT_CHECKPOINT)
tokenizer = minibert.BertTokenizer.from_pretrained(minibert.DEFAULT_CHECKPOINT)
print("position embeddings:", tuple(model.embeddings.position.weight.shape))
assert model.config.max_position_embeddings == 512 == tokenizer.model_max_length

long_text = "attention compares every token with every other token. " * 120
encoded = tokenizer(long_text, truncation=True, return_tensors="pt")
print("tokens after truncation:", encoded["input_ids"].shape[1])
assert encoded["input_ids"].shape[1] == 512

too_long = torch.full((1, 513), tokenizer.convert_tokens_to_ids("the"))
try:
    model(too_long)
    refused = None
except minibert.InputError as error:
    refused = error
print("513 positions:", refused)
assert refused is not None and "max_position_embeddings=512" in str(refused)

# %% [markdown]
# (On a CPU the readable attention core, which writes out the whole $(h, t, t)$ weights tensor, can
# end up slower than the whole block, whose attention runs in PyTorch's fused kernel: past a few
# hundred positions the cost is in moving the $t^2$ weights through memory, not in the arithmetic.)
#
# Longer documents are split into windows of at most 512 tokens (overlapping, so that every token
# has some context on both sides) and the windows' outputs combined; models built for long inputs
# replace full attention by sparse or linear-time patterns, or use relative positions that are not
# tied to a table of fixed size.
#
# ## What we showed
#
# * a layer's FLOPs are exactly $t(8c^2 + 4cf) + 4t^2c$ (PyTorch's counter agrees to the FLOP);
#   attention's quadratic part overtakes the rest only at $t = 6c$;
# * the weights tensor is $(b, h, t, t)$: doubling $t$ quadruples it, while hidden states double;
# * the time of the attention core grows like $t^2$ (figure);
# * 512 is the size of the learned position table: the tokenizer truncates to it and the model
#   refuses position 512 with an error that names the limit.
