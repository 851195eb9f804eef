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
# # 6. Sentence embeddings
#
# BERT gives one vector per *token*. Search, clustering and deduplication want one vector per
# *text*, such that similar meanings give nearby vectors. all-MiniLM-L6-v2 was trained for exactly
# that, with this recipe:
#
# 1. run the encoder: $H \in \mathbb{R}^{t \times c}$, one row per token;
# 2. **mean pooling**: average the rows of the real tokens, $u = \frac{1}{\sum_i m_i}\sum_i m_i H_i$,
#    with $m_i = 1$ for real tokens and $0$ for padding;
# 3. **normalise**: $\hat u = u / \lVert u \rVert_2$, so that the dot product of two embeddings is
#    their cosine similarity, $\cos(u, v) = u \cdot v / (\lVert u \rVert \lVert v \rVert)$.
#
# We do it by hand, compare with `minibert.sentence.SentenceEncoder` and with reference values computed
# by `transformers`, draw the similarity matrix, and search a small collection of sentences.

# %%
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from minibert import DEFAULT_CHECKPOINT
from minibert.sentence import SentenceEncoder

FIGURES = Path(os.environ.get("MINIBERT_FIGURES", "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
REFERENCE = json.loads(Path("reference/minilm_reference.json").read_text(encoding="utf-8"))

encoder = SentenceEncoder.from_pretrained(DEFAULT_CHECKPOINT)
print(encoder)

# %% [markdown]
# ## Mean pooling by hand
#
# Six sentences, two on each of three topics. They have different lengths, so the batch is padded,
# and the mask keeps the padding out of the average: the encoder's outputs at padded positions mean
# nothing (transformers computes some values there, minibert's unpadded fast path leaves zeros), and
# a sentence's embedding must not depend on the batch it happened to be in.

# %%
sentences = REFERENCE["sentences"]
batch = encoder.tokenizer(sentences, padding=True, return_tensors="pt")
with torch.no_grad():
    hidden = encoder.model(**batch).last_hidden_state                 # (b, t, c)
mask = batch["attention_mask"].unsqueeze(-1).float()                  # (b, t, 1)
mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1)                   # (b, c)
by_hand = mean / mean.norm(dim=-1, keepdim=True)                      # (b, c), unit rows
print("token vectors", tuple(hidden.shape), "-> sentence vectors", tuple(by_hand.shape))
print(batch["attention_mask"])

# %% [markdown]
# `SentenceEncoder.encode` reads the pooling and normalisation settings from the checkpoint's
# `modules.json` and does the same. It also sorts texts by length before batching, so its padding
# differs from ours: we allow float32 rounding, `atol=1e-6`. Against the stored transformers reference
# (first 8 coordinates of each embedding, and the full cosine matrix) we allow `1e-5`.

# %%
vectors = torch.from_numpy(encoder.encode(sentences))                 # (b, c)
torch.testing.assert_close(vectors, by_hand, atol=1e-6, rtol=0)
torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(len(sentences)), atol=1e-6, rtol=0)
n = REFERENCE["n_dims"]
torch.testing.assert_close(vectors[:, :n], torch.tensor(REFERENCE["sentence_embeddings_first_dims"]),
                           atol=1e-5, rtol=0)
cosine = vectors @ vectors.T                                          # (b, b): unit rows, dot = cosine
torch.testing.assert_close(cosine, torch.tensor(REFERENCE["cosine_similarity"]), atol=1e-5, rtol=0)
print("by hand == SentenceEncoder (1e-6) == transformers reference (1e-5)")

# %% [markdown]
# ## The similarity matrix
#
# Sentences on the same topic (the 2×2 blocks on the diagonal) should be more similar to each other
# than to anything else, even when they share few words ("playing a guitar on stage" / "performs a
# song with an acoustic guitar").

# %%
fig, ax = plt.subplots(figsize=(7, 6))
image = ax.imshow(cosine, cmap="magma", vmin=0, vmax=1)
short = [s if len(s) < 38 else s[:35] + "..." for s in sentences]
ax.set_xticks(range(len(sentences)), short, rotation=50, ha="right", fontsize=8)
ax.set_yticks(range(len(sentences)), short, fontsize=8)
for i in range(len(sentences)):
    for j in range(len(sentences)):
        ax.text(j, i, f"{cosine[i, j]:.2f}", ha="center", va="center",
                color="black" if cosine[i, j] > 0.5 else "white", fontsize=8)
ax.set_title("cosine similarity, all-MiniLM-L6-v2")
fig.colorbar(image, ax=ax, shrink=0.8)
fig.savefig(FIGURES / "06_similarity_matrix.png", dpi=120, bbox_inches="tight")
plt.show()

topic = torch.arange(len(sentences)) // 2                             # 0 0 1 1 2 2
off_diagonal = cosine - 2 * torch.eye(len(sentences))                 # ignore self-similarity
nearest = off_diagonal.argmax(dim=1)
print("nearest neighbour of each sentence:", nearest.tolist())
assert torch.equal(topic[nearest], topic)                            # each one's nearest is its topic partner
same = cosine[topic[:, None] == topic[None, :]].reshape(-1)
assert cosine[topic[:, None] != topic[None, :]].max() < same.min()   # every same-topic pair beats every cross pair

# %% [markdown]
# ## Nearest-neighbour search
#
# Semantic search is the same computation at a larger scale: embed a collection once, embed each
# query, and rank the collection by cosine similarity. With unit vectors that is one matrix product
# and a `topk`.

# %%
collection = [
    "The train to Paris leaves from platform four at noon.",
    "Our flight was delayed by three hours because of fog.",
    "Add a pinch of salt before the water boils.",
    "Bake the bread for forty minutes until golden.",
    "The goalkeeper saved a penalty in the last minute.",
    "The team won the championship after extra time.",
    "Regular exercise lowers the risk of heart disease.",
    "The doctor prescribed antibiotics for the infection.",
    "The new phone has a larger battery and a brighter screen.",
    "Restart the router if the wifi keeps disconnecting.",
]
queries = {
    "How do I fix my internet connection?": 9,
    "Which match did the football club win?": 5,
    "Tips for cooking pasta": 2,
    "When does my plane take off?": 1,
    "What medicine treats a bacterial infection?": 7,
}
index = torch.from_numpy(encoder.encode(collection))                  # (n, c), computed once
query_vectors = torch.from_numpy(encoder.encode(list(queries)))       # (q, c)
scores = query_vectors @ index.T                                      # (q, n)
top = scores.topk(3, dim=1)
for (query, expected), idx, val in zip(queries.items(), top.indices, top.values):
    print(query)
    for rank, (i, v) in enumerate(zip(idx.tolist(), val.tolist()), 1):
        print(f"   {rank}. {v:.3f}  {collection[i]}")
    assert idx[0].item() == expected, (query, collection[idx[0]])

# %% [markdown]
# ## What we showed
#
# * masked mean pooling + L2 normalisation written by hand equals `SentenceEncoder.encode` (`1e-6`),
#   and both equal the transformers reference (`1e-5`);
# * in the cosine matrix, every same-topic pair is more similar than every cross-topic pair;
# * nearest-neighbour search by cosine finds the intended sentence for each query.
