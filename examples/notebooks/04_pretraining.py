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
# # 4. Pretraining a tiny BERT
#
# BERT learns from unlabelled text with two tasks at once:
#
# * **masked language modelling (MLM)**: hide about 15% of the tokens and predict them from both
#   sides of the context;
# * **next sentence prediction (NSP)**: given two segments A and B, say whether B really followed A
#   in the text or was taken from elsewhere.
#
# This notebook goes through the whole pipeline on real English — the Python reference topics that
# ship with every CPython (`pydoc_data`) — at toy scale: learn a WordPiece vocabulary, build NSP pairs,
# mask 80/10/10, write the loss out by hand, train a 2-layer model for a couple of hundred steps and
# look at fill-mask before and after. A real BERT trains for a million steps on billions of words; the
# point here is to see every part work, not to get a good model.

# %%
import math
import os
import random
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from minibert import BertConfig, BertForPreTraining
from minibert.data.pretraining import (PretrainingStream, Vocabulary, build_example, create_segment_pairs,
                                       pydoc_documents, tokenize_document)
from minibert.tokenizer import BertTokenizer
from minibert.data.vocab import save_vocab, train_wordpiece

torch.manual_seed(0)
FIGURES = Path(os.environ.get("MINIBERT_FIGURES", "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## A corpus and a vocabulary
#
# A *document* is a list of sentences; each pydoc topic is one document. BERT's vocabulary of
# 30,522 pieces is far more than this small corpus needs, so we learn a 2,000-piece WordPiece
# vocabulary from it (`minibert.data.vocab.train_wordpiece`: start from characters, repeatedly merge the
# most frequent adjacent pair of pieces). The first five ids are the special tokens.

# %%
documents = pydoc_documents()
print(len(documents), "documents,", sum(len(d) for d in documents), "sentences")
print(documents[5][:2])

vocab_tokens = train_wordpiece([" ".join(d) for d in documents], vocab_size=2000)
vocab_dir = tempfile.mkdtemp()
save_vocab(vocab_tokens, vocab_dir)
tokenizer = BertTokenizer.from_pretrained(vocab_dir)
vocab = Vocabulary.from_tokenizer(tokenizer)
print(vocab_tokens[:8], "...", vocab_tokens[-5:])
print(tokenizer.tokenize("The with statement wraps a block in a context manager."))
assert vocab.size == 2000 and vocab_tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# %% [markdown]
# ## NSP pairs
#
# For each document, sentences are gathered until they fill the sequence length, then cut at a
# random sentence boundary into A and B. Half the time B is kept (label 0, *IsNext*); otherwise B is
# replaced by sentences from a random other document (label 1, *NotNext*). The input is
#
# `[CLS] A [SEP] B [SEP]`, with token type 0 on `[CLS] A [SEP]` and 1 on `B [SEP]`.

# %%
rng = random.Random(0)
tokenized = [tokenize_document(d, tokenizer) for d in documents]
pairs = [pair for i in range(len(tokenized)) for pair in create_segment_pairs(tokenized, i, 64, 0.1, rng)]
random_fraction = sum(p.is_random_next for p in pairs) / len(pairs)
print(f"{len(pairs)} pairs, {random_fraction:.1%} NotNext")
readable = [p for p in pairs if "*" not in tokenizer.decode(p.tokens_a + p.tokens_b)]  # skip heading rules
for label in (False, True):
    pair = next(p for p in readable if p.is_random_next == label)
    print("\nNotNext" if label else "IsNext")
    print("  A:", tokenizer.decode(pair.tokens_a))
    print("  B:", tokenizer.decode(pair.tokens_b))
# About half (a bit more: a chunk of a single sentence always gets a random B).
assert 0.45 < random_fraction < 0.65
assert all(len(p.tokens_a) + len(p.tokens_b) <= 64 - 3 for p in pairs)

# %% [markdown]
# ## Masking: 15%, then 80 / 10 / 10
#
# 15% of the non-special positions are chosen for prediction. A chosen token becomes `[MASK]` 80% of
# the time, a random token 10% of the time, and stays as it is 10% of the time; its label is the
# original id, and every other label is -100 (ignored by the loss). Why not always `[MASK]`? The
# model never sees `[MASK]` when it is used later on real text; the random and unchanged cases force
# it to produce a good representation for *every* token, since any of them might be a target.

# %%
example = build_example(readable[0], vocab, random.Random(1))
shown = []
for token_id, label in zip(example["input_ids"], example["labels"]):
    token = tokenizer.convert_ids_to_tokens([token_id])[0]
    shown.append(token if label == -100 else f"{token}<{tokenizer.convert_ids_to_tokens([label])[0]}>")
print(" ".join(shown))
print("(masked positions are written token<original>)")

# %% [markdown]
# The proportions are a claim we can measure. Masking every pair 5 times gives about 85,000 chosen
# positions: the sampling error of each rate is then about 0.1 percentage points, so we can demand
# that each is within ±2 points of its target.

# %%
rng = random.Random(2)
chosen = masked = randomised = unchanged = candidates = 0
special = vocab.special_ids
for _ in range(5):
    for pair in pairs:
        original = [vocab.cls_id, *pair.tokens_a, vocab.sep_id, *pair.tokens_b, vocab.sep_id]
        ex = build_example(pair, vocab, rng)
        candidates += sum(t not in special for t in original)
        for before, after, label in zip(original, ex["input_ids"], ex["labels"]):
            if label == -100:
                assert after == before          # unchosen positions are never touched
                continue
            assert label == before              # the label is the original token
            chosen += 1
            masked += after == vocab.mask_id
            unchanged += after == before
            randomised += after not in (before, vocab.mask_id)
rates = {"chosen": chosen / candidates, "[MASK]": masked / chosen, "random": randomised / chosen,
         "unchanged": unchanged / chosen}
print({k: round(v, 4) for k, v in rates.items()}, f"({chosen} chosen positions)")
assert abs(rates["chosen"] - 0.15) < 0.02
assert abs(rates["[MASK]"] - 0.80) < 0.02
assert abs(rates["random"] - 0.10) < 0.02
assert abs(rates["unchanged"] - 0.10) < 0.02

# %% [markdown]
# ## The model and its loss, written out
#
# A tiny configuration: 2 layers, hidden size 64, 2 heads, sequences of at most 64 tokens.
# `BertForPreTraining` puts two heads on the encoder: the MLM head (dense → GELU → LayerNorm → a
# decoder that shares the word-embedding matrix) at every position, and a 2-way linear layer on the
# pooled `[CLS]` vector for NSP. Its loss is
#
# $$\mathcal{L} = -\frac{1}{|M|}\sum_{i \in M} \log p_\theta(x_i \mid \tilde{x})
#   \;-\; \frac{1}{B}\sum_{j=1}^{B} \log p_\theta(y_j \mid \tilde{x}^{(j)})$$
#
# where $M$ is the set of masked positions in the batch, $x_i$ the original token there, $\tilde x$
# the corrupted input, and $y_j \in \{\text{IsNext}, \text{NotNext}\}$ the NSP label of example $j$.
# Both terms are cross-entropies; we compute them by hand and compare with the model's `loss`.

# %%
config = BertConfig(vocab_size=vocab.size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=256, max_position_embeddings=64)
model = BertForPreTraining(config)
print(f"{model.num_parameters():,} parameters")

train_stream = PretrainingStream(documents, tokenizer, batch_size=32, max_seq_length=64, heldout_every=10,
                                 seed=0, cache_tokens=True)
eval_stream = PretrainingStream(documents, tokenizer, batch_size=32, max_seq_length=64, heldout_every=10,
                                split="eval", seed=0)
eval_batches = [next(eval_stream) for _ in range(4)]   # fixed held-out batches (documents 0, 10, 20, ...)

batch = next(train_stream)
print({k: tuple(v.shape) for k, v in batch.items()})
model.eval()
with torch.no_grad():
    out = model(**batch)
log_probs = out.prediction_logits.log_softmax(-1)                     # (b, t, v)
is_target = batch["labels"] != -100                                   # (b, t): the set M
target_log_probs = log_probs[is_target].gather(-1, batch["labels"][is_target][:, None])  # (|M|, 1)
mlm_loss = -target_log_probs.mean()
nsp_log_probs = out.seq_relationship_logits.log_softmax(-1)           # (b, 2)
nsp_loss = -nsp_log_probs.gather(-1, batch["next_sentence_label"][:, None]).mean()
print(f"MLM {mlm_loss:.4f} + NSP {nsp_loss:.4f} = {mlm_loss + nsp_loss:.4f};  model: {out.loss:.4f}")
torch.testing.assert_close(mlm_loss + nsp_loss, out.loss, atol=1e-5, rtol=0)
# At initialisation the model is close to guessing: MLM ≈ log(vocabulary size), NSP ≈ log 2.
print(f"log(2000) = {math.log(2000):.2f}, log 2 = {math.log(2):.2f}")
assert abs(mlm_loss - math.log(2000)) < 0.5 and abs(nsp_loss - math.log(2)) < 0.2

# %% [markdown]
# ## Fill-mask before training
#
# A helper that masks one word and lists the model's five most likely pieces for it.

# %%
PROBES = ["The return statement leaves the current function call.",
          "A dictionary maps keys to values.",
          "The loop ends when the condition is false."]


def fill_mask(model, sentence, word):
    """Replace ``word`` by [MASK]; return the top-5 pieces and the probability of the true one."""
    masked = sentence.replace(word, tokenizer.mask_token, 1)
    enc = tokenizer(masked, return_tensors="pt")
    position = enc["input_ids"][0].tolist().index(tokenizer.mask_token_id)
    with torch.no_grad():
        probs = model(**enc).prediction_logits[0, position].softmax(-1)   # (v,)
    top = probs.topk(5)
    target = tokenizer.convert_tokens_to_ids(word.lower())
    return tokenizer.convert_ids_to_tokens(top.indices.tolist()), probs[target].item()


def eval_loss(model):
    model.eval()
    with torch.no_grad():
        losses = [model(**{k: v for k, v in b.items() if k != "next_sentence_label"}).loss for b in eval_batches]
    return torch.stack(losses).mean().item()


PROBE_WORDS = ["the", "to", "is"]
before = {s: fill_mask(model, s, w) for s, w in zip(PROBES, PROBE_WORDS)}
for s, (top, p) in before.items():
    print(f"{s!r}: top-5 {top}, p(true) = {p:.5f}")
eval_before = eval_loss(model)
print(f"held-out MLM loss before training: {eval_before:.3f}")

# %% [markdown]
# ## A short training run
#
# AdamW, learning rate $2\cdot10^{-3}$ with 20 warm-up steps and linear decay, 200 steps of 32
# sequences. `sparse_mlm=True` runs the vocabulary projection only at the masked positions (the loss
# is the same; it saves work). Post-LN models want the warm-up: without it the first large updates
# pass through every LayerNorm unchecked.

# %%
steps, warmup = 200, 20
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
schedule = torch.optim.lr_scheduler.LambdaLR(
    optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / (steps - warmup))))
history, evals = [], [(0, eval_before)]
model.train()
for step in range(1, steps + 1):
    batch = next(train_stream)
    loss = model(**batch, sparse_mlm=True).loss
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    history.append(loss.item())
    if step % 50 == 0:
        evals.append((step, eval_loss(model)))
        model.train()
        print(f"step {step:4d}  train loss {sum(history[-50:]) / 50:.3f}  held-out MLM {evals[-1][1]:.3f}")
model.eval()

# %%
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(range(1, steps + 1), history, alpha=0.4, label="train loss (MLM + NSP), per step")
smooth = [sum(history[max(0, i - 19):i + 1]) / len(history[max(0, i - 19):i + 1]) for i in range(steps)]
ax.plot(range(1, steps + 1), smooth, label="train loss, 20-step mean")
ax.plot(*zip(*evals), "o-", label="held-out MLM loss")
ax.axhline(math.log(2000), color="gray", ls=":", label="log(2000): uniform guess")
ax.set_xlabel("step")
ax.set_ylabel("loss (nats)")
ax.set_title("pretraining a 2-layer BERT on pydoc text")
ax.legend()
fig.savefig(FIGURES / "04_loss_curve.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# ## Fill-mask after training
#
# After 200 small steps the model has learned mostly which pieces are frequent (its top guesses are
# the same common pieces for every sentence); its predictions are far from BERT's, but the
# probability it gives to the right answer has gone up, and so has its held-out MLM likelihood.

# %%
after = {s: fill_mask(model, s, w) for s, w in zip(PROBES, PROBE_WORDS)}
for s in PROBES:
    print(f"{s!r}\n   before: {before[s][0]} p(true) = {before[s][1]:.5f}"
          f"\n   after:  {after[s][0]} p(true) = {after[s][1]:.5f}")
eval_after = evals[-1][1]
print(f"held-out MLM loss: {eval_before:.3f} -> {eval_after:.3f}")

# The held-out MLM loss falls by at least one nat (e ≈ 2.7 times more probability on the right piece),
assert eval_after < eval_before - 1.0
# and on the probes the true word became more probable.
assert all(after[s][1] > before[s][1] for s in PROBES)

# %% [markdown]
# ## What we showed
#
# * NSP pairs: about half NotNext, `[CLS] A [SEP] B [SEP]` within the length budget;
# * masking: 15% of the ordinary tokens chosen, then 80% `[MASK]` / 10% random / 10% unchanged,
#   each within ±2 points, labels equal to the original tokens and -100 elsewhere;
# * the loss is exactly mean masked-token cross-entropy plus NSP cross-entropy (`1e-5`);
# * 200 steps lower the held-out MLM loss by more than a nat and raise the probability of the
#   right word in fill-mask.
#
# The full-size pretraining entry point is `minibert.train.pretrain` (see `docs/training.md`).
