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
# # 7. Positions and context
#
# Two facts make BERT what it is, and this notebook checks both on trained checkpoints:
#
# 1. **Attention alone does not know the order of its inputs.** Shuffle the tokens and every
#    output is shuffled the same way, nothing more. Word order reaches the model only through the
#    position embeddings added at the input.
# 2. **The output for a token depends on its context.** The same word gets a different vector in
#    different sentences, and a masked slot gets different predictions.
#
# We use all-MiniLM-L6-v2, the default checkpoint (512 learned positions), and for the last section
# the masked LM that ships with minibert.

# %%
import os
import random
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import minibert
from minibert import BertModel, BertTokenizer

torch.manual_seed(0)
FIGURES = Path(os.environ.get("MINIBERT_FIGURES", "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

model = BertModel.from_pretrained(minibert.DEFAULT_CHECKPOINT)
tokenizer = BertTokenizer.from_pretrained(minibert.DEFAULT_CHECKPOINT)

# %% [markdown]
# ## Without positions, order does not exist
#
# `position_ids` picks which row of the position table is added to each token. Giving every token
# the same row (all zeros) removes the order information and nothing else. Then, for any permutation
# $\pi$ of the tokens, $\mathrm{BERT}(x_{\pi}) = \mathrm{BERT}(x)_{\pi}$: each token's output is the
# same wherever it stands. With the real positions it is not.

# %%
encoded = tokenizer("the cat chased the dog across the garden", return_tensors="pt")
ids = encoded["input_ids"]                                     # (1, t)
t = ids.shape[1]
inner = list(range(1, t - 1))
random.Random(0).shuffle(inner)
order = torch.tensor([0, *inner, t - 1])                       # shuffle the words, keep [CLS] and [SEP]
print(tokenizer.decode(ids[0]), "->", tokenizer.decode(ids[0, order]))

no_positions = torch.zeros_like(ids)
with torch.no_grad():
    out = model(ids, position_ids=no_positions).last_hidden_state                  # (1, t, c)
    out_shuffled = model(ids[:, order], position_ids=no_positions).last_hidden_state
    with_pos = model(ids).last_hidden_state
    with_pos_shuffled = model(ids[:, order]).last_hidden_state

gap_without = (out_shuffled - out[:, order]).abs().max().item()
gap_with = (with_pos_shuffled - with_pos[:, order]).abs().max().item()
print(f"without positions: max |BERT(x_π) - BERT(x)_π| = {gap_without:.2e}")
print(f"with positions:    max |BERT(x_π) - BERT(x)_π| = {gap_with:.2f}")
assert gap_without < 1e-4          # equivariant up to float32 rounding
assert gap_with > 0.5              # order matters once positions are added

# %% [markdown]
# ## What the learned positions look like
#
# BERT does not use the sinusoids of the original Transformer: its 512 position vectors are
# parameters, learned like word embeddings. The cosine similarity between every pair of them shows
# what was learned: a bright band along the diagonal (neighbouring positions are alike) fading with
# distance. Nothing told the model that position 7 is next to position 8; it learned it from text.

# %%
positions = F.normalize(model.embeddings.position.weight.detach(), dim=-1)    # (512, c)
similarity = positions @ positions.T                                           # (512, 512)
by_offset = {k: torch.diagonal(similarity, k).mean().item() for k in (1, 2, 4, 16, 64, 256)}
print("mean cosine between positions i and i+k:", {k: round(v, 3) for k, v in by_offset.items()})

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
image = left.imshow(similarity, cmap="RdBu_r", vmin=-1, vmax=1)
left.set(title="cosine similarity of position embeddings", xlabel="position", ylabel="position")
fig.colorbar(image, ax=left, shrink=0.8)
right.imshow(similarity[:64, :64], cmap="RdBu_r", vmin=-1, vmax=1)
right.set(title="the first 64 positions", xlabel="position", ylabel="position")
fig.savefig(FIGURES / "07_position_similarity.png", dpi=120, bbox_inches="tight")
plt.show()

# Neighbours are alike, far positions are not: similarity falls with distance.
assert by_offset[1] > 0.7
assert by_offset[1] > by_offset[16] > by_offset[256]
assert by_offset[256] < 0.2

# %% [markdown]
# ## The same word in different sentences
#
# The input embedding of "bank" is one row of the word table, the same in every sentence. After
# six layers of attention, its vector depends on the sentence: the two river banks end up closer to
# each other than to either money bank, and the two money banks likewise.

# %%
sentences = ["He sat on the bank of the river and watched the water.",
             "The boat drifted toward the muddy bank of the stream.",
             "She deposited the money at the bank on Monday.",
             "The bank approved his loan for the new house."]
bank_id = tokenizer.convert_tokens_to_ids("bank")


def vector_of(word_id, sentence, layer):
    """The hidden vector of the first occurrence of word_id in sentence, at a layer (0 = embeddings)."""
    enc = tokenizer(sentence, return_tensors="pt")
    position = enc["input_ids"][0].tolist().index(word_id)
    with torch.no_grad():
        states = model(**enc, output_hidden_states=True).hidden_states
    return states[layer][0, position]


def cosines(layer):
    vectors = F.normalize(torch.stack([vector_of(bank_id, s, layer) for s in sentences]), dim=-1)
    return vectors @ vectors.T


last = model.config.num_hidden_layers
print("'bank' at the input layer (word + position + type, then LayerNorm):\n", cosines(0).numpy().round(3))
print("'bank' after the last layer:\n", cosines(last).numpy().round(3))

contextual = cosines(last)
river, money = [(0, 1)], [(2, 3)]
across = [(i, j) for i in (0, 1) for j in (2, 3)]
within = min(contextual[i, j].item() for i, j in river + money)
between = max(contextual[i, j].item() for i, j in across)
print(f"least similar same-sense pair {within:.3f} > most similar cross-sense pair {between:.3f}")
assert within > between
# At the input only the position differs: the vectors are near-identical.
assert cosines(0).min() > 0.9

# %% [markdown]
# ## Filling a mask: the context decides
#
# The same fact seen from the output. minibert ships a BERT with a trained masked-LM head,
# `"minibert/fill-mask"` (notebook 4 measures it on held-out text). Its prediction for a `[MASK]` is
# a probability over the whole vocabulary, computed from the words around the slot: put the slot in
# another sentence and the distribution moves.

# %%
from minibert import FILL_MASK_CHECKPOINT, BertForMaskedLM

mlm_tokenizer = BertTokenizer.from_pretrained(FILL_MASK_CHECKPOINT)
mlm = BertForMaskedLM.from_pretrained(FILL_MASK_CHECKPOINT).eval()


def mask_distribution(text):
    """The model's probabilities over the vocabulary at the single [MASK] of text: (v,)."""
    enc = mlm_tokenizer(text, return_tensors="pt")
    position = enc["input_ids"][0].tolist().index(mlm_tokenizer.mask_token_id)
    with torch.no_grad():
        return mlm(**enc).logits[0, position].softmax(-1)


contexts = ["The function returns the [MASK] of the list.", "The [MASK] of the river was muddy."]
distributions = [mask_distribution(text) for text in contexts]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
for ax, text, probabilities in zip(axes, contexts, distributions):
    top = probabilities.topk(8)
    ax.barh(mlm_tokenizer.convert_ids_to_tokens(top.indices.tolist())[::-1], top.values.flip(0).tolist())
    ax.set(title=text, xlabel="probability")
    print(f"{text!r}: " + ", ".join(f"{mlm_tokenizer.convert_ids_to_tokens(i)} {p:.3f}"
                                     for i, p in zip(top.indices.tolist(), top.values.tolist())))
fig.tight_layout()
fig.savefig(FIGURES / "07_fill_mask.png", dpi=120, bbox_inches="tight")
plt.show()

# One slot, two contexts: each context's likely words are unlikely in the other.
code_word, river_word = (mlm_tokenizer.convert_tokens_to_ids(w) for w in ("list", "water"))
assert distributions[0].argmax() != distributions[1].argmax()
assert distributions[0][code_word] > 10 * distributions[1][code_word]
assert distributions[1][river_word] > 10 * distributions[0][river_word]

# %% [markdown]
# ## What we showed
#
# * without position information the encoder is permutation-equivariant (to `1e-4` in float32); with
#   it, order changes the outputs;
# * the learned position embeddings are similar for neighbouring positions and not for distant ones
#   (figure);
# * one word, "bank", gets vectors that group by meaning after six layers, while its input vectors
#   are near-identical;
# * a trained masked LM's probabilities for one `[MASK]` move with the sentence around it (figure).
