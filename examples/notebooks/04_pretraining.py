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
# mask 80/10/10, write the loss out by hand, train a 2-layer model for a couple of hundred steps, and
# measure what it learned against the baseline that matters: a model that knows only how frequent
# each word piece is. A few hundred steps on a CPU reach that baseline and no further: learning
# which piece fits *this* context takes far more data and steps than a notebook can spend. The last
# section measures a model that was trained that long, the one minibert ships for fill-mask.

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
# most frequent adjacent pair of pieces — BPE's merge rule; WordPiece proper ranks pairs by likelihood
# gain instead, an option of the same function). The first five ids are the special tokens.

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


def fill_mask_with(model, tokenizer, sentence, word):
    """Replace ``word`` by [MASK]; return the top-5 pieces and the probability of the true one."""
    masked = sentence.replace(word, tokenizer.mask_token, 1)
    enc = tokenizer(masked, return_tensors="pt")
    position = enc["input_ids"][0].tolist().index(tokenizer.mask_token_id)
    with torch.no_grad():
        probs = model(**enc).prediction_logits[0, position].softmax(-1)   # (v,)
    top = probs.topk(5)
    target = tokenizer.convert_tokens_to_ids(word.lower())
    return tokenizer.convert_ids_to_tokens(top.indices.tolist()), probs[target].item()


def fill_mask(model, sentence, word):
    return fill_mask_with(model, tokenizer, sentence, word)


PROBE_WORDS = ["the", "to", "is"]
before = {s: fill_mask(model, s, w) for s, w in zip(PROBES, PROBE_WORDS)}
for s, (top, p) in before.items():
    print(f"{s!r}: top-5 {top}, p(true) = {p:.5f}")

# %% [markdown]
# ## Why warm up the learning rate
#
# BERT's recipe raises the learning rate linearly from 0 over the first steps (10,000 in the paper)
# before decaying it. Two reasons, both about the start of training:
#
# 1. **Adam's second-moment estimate is made of very few gradients.** Adam divides each coordinate's
#    step by $\sqrt{\hat v}$, a running mean of its squared gradients. After one step $\hat v = g^2$
#    exactly, so the first update is $\mathrm{lr} \cdot g/|g| = \pm\mathrm{lr}$ for *every*
#    coordinate, however small or noisy its gradient: a full-size step in a direction chosen by a
#    single batch. Until $\hat v$ has averaged many batches, its scale is unreliable; warm-up keeps
#    those steps small (Liu et al. 2019 analyse this variance).
# 2. **Post-LN puts the largest gradients next to the output.** Notebook 2 measured it at
#    initialisation: the last layer's LayerNorm receives a gradient several times larger than any
#    other layer's, and as the weights grow, each post-LN layer rescales what the layers below
#    contribute (Xiong et al. 2020; Liu et al. 2020). Large early steps there can push training
#    into a bad region it does not recover from; pre-LN models tolerate much shorter warm-up.
#
# The first claim is a fact about Adam we can check on this model: one step with learning rate
# $10^{-3}$ moves every parameter that received a gradient by $10^{-3}$, whether its gradient was
# $10^{-6}$ or $10^{-1}$.

# %%
probe_model = BertForPreTraining(config)
before_step = {n: p.detach().clone() for n, p in probe_model.named_parameters()}
adam = torch.optim.AdamW(probe_model.parameters(), lr=1e-3, weight_decay=0.0)
probe_model(**next(train_stream), sparse_mlm=True).loss.backward()
grads = torch.cat([p.grad.flatten() for p in probe_model.parameters() if p.grad is not None])
adam.step()
moves = torch.cat([(p.detach() - before_step[n]).flatten() for n, p in probe_model.named_parameters()
                   if p.grad is not None])
live = grads.abs() > 1e-6                      # coordinates that received a gradient
print(f"gradient sizes span {grads[live].abs().min():.1e} .. {grads[live].abs().max():.1e}")
print(f"first-step moves: median {moves[live].abs().median():.2e}, min {moves[live].abs().min():.2e}, "
      f"max {moves[live].abs().max():.2e}")
assert grads[live].abs().max() / grads[live].abs().min() > 1e4   # gradients differ by > 4 orders of magnitude
torch.testing.assert_close(moves[live].abs(), torch.full_like(moves[live], 1e-3), rtol=0.02, atol=0)  # yet every move is lr

# %% [markdown]
# ## A short training run
#
# AdamW, learning rate $2\cdot10^{-3}$ with 20 warm-up steps and linear decay, 200 steps of 32
# sequences. `sparse_mlm=True` runs the vocabulary projection only at the masked positions (the loss
# is the same; it saves work). We record the two losses separately: they measure different things
# and fall at different rates. Every 50 steps we evaluate on the held-out batches: masked-LM loss
# and accuracy, and NSP accuracy on held-out pairs.
#
# The baseline is a **unigram model**: it ignores the input and predicts every masked piece with the
# frequencies of the pieces masked in the training batches (add-one smoothing). Its loss on the
# held-out masked positions is the entropy of word frequency; a model has learned something about
# *context* only when it goes below it.

# %%
steps, warmup = 200, 20
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
schedule = torch.optim.lr_scheduler.LambdaLR(
    optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / (steps - warmup))))
masked_counts = torch.zeros(vocab.size)


def losses(out, batch):
    """Mean masked-LM and NSP cross-entropies of a sparse_mlm forward."""
    targets = batch["labels"][batch["labels"] != -100]                                  # (n,)
    mlm = F.cross_entropy(out.prediction_logits, targets)
    nsp = F.cross_entropy(out.seq_relationship_logits, batch["next_sentence_label"])
    return mlm, nsp


def held_out(model):
    """Masked-LM loss and accuracy, NSP accuracy, on the fixed held-out batches."""
    model.eval()
    mlm_sum = correct = masked = nsp_correct = pairs = 0
    with torch.no_grad():
        for b in eval_batches:
            out = model(**b, sparse_mlm=True)
            targets = b["labels"][b["labels"] != -100]
            mlm_sum += F.cross_entropy(out.prediction_logits, targets, reduction="sum").item()
            correct += (out.prediction_logits.argmax(-1) == targets).sum().item()
            masked += targets.numel()
            nsp_correct += (out.seq_relationship_logits.argmax(-1) == b["next_sentence_label"]).sum().item()
            pairs += len(b["next_sentence_label"])
    model.train()
    return {"mlm_loss": mlm_sum / masked, "mlm_accuracy": correct / masked, "nsp_accuracy": nsp_correct / pairs}


history = {"mlm": [], "nsp": []}
evals = [(0, held_out(model))]
model.train()
for step in range(1, steps + 1):
    batch = next(train_stream)
    masked_counts += torch.bincount(batch["labels"][batch["labels"] != -100], minlength=vocab.size)
    out = model(**batch, sparse_mlm=True)
    mlm, nsp = losses(out, batch)
    optimizer.zero_grad()
    (mlm + nsp).backward()              # the same sum as out.loss
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    history["mlm"].append(mlm.item())
    history["nsp"].append(nsp.item())
    if step % 50 == 0:
        evals.append((step, held_out(model)))
        print(f"step {step:4d}  train MLM {sum(history['mlm'][-50:]) / 50:.3f}  NSP {sum(history['nsp'][-50:]) / 50:.3f}"
              f"  | held-out MLM {evals[-1][1]['mlm_loss']:.3f}, acc {evals[-1][1]['mlm_accuracy']:.3f},"
              f" NSP acc {evals[-1][1]['nsp_accuracy']:.3f}")
model.eval()

# The unigram baseline on the same held-out masked positions.
unigram = (masked_counts + 1) / (masked_counts.sum() + vocab.size)                    # (v,)
heldout_targets = torch.cat([b["labels"][b["labels"] != -100] for b in eval_batches])
unigram_loss = -unigram[heldout_targets].log().mean().item()
unigram_accuracy = (heldout_targets == unigram.argmax()).float().mean().item()
final = evals[-1][1]
print(f"unigram baseline: loss {unigram_loss:.3f}, accuracy {unigram_accuracy:.3f} (always "
      f"{tokenizer.convert_ids_to_tokens(int(unigram.argmax()))!r});  model: loss {final['mlm_loss']:.3f}, "
      f"accuracy {final['mlm_accuracy']:.3f}")

# %%
def smooth(values, window=20):
    return [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
            for i in range(len(values))]


fig, (ax_mlm, ax_nsp) = plt.subplots(1, 2, figsize=(11, 4))
x = range(1, steps + 1)
ax_mlm.plot(x, history["mlm"], alpha=0.3, label="train, per step")
ax_mlm.plot(x, smooth(history["mlm"]), label="train, 20-step mean")
ax_mlm.plot([s for s, _ in evals], [e["mlm_loss"] for _, e in evals], "o-", label="held-out")
ax_mlm.axhline(unigram_loss, color="red", ls="--", label=f"unigram baseline ({unigram_loss:.2f})")
ax_mlm.axhline(math.log(vocab.size), color="gray", ls=":", label=f"uniform guess, log {vocab.size}")
ax_mlm.set(xlabel="step", ylabel="nats", title="masked LM loss")
ax_mlm.legend(fontsize=8)
ax_nsp.plot(x, history["nsp"], alpha=0.3, label="train loss, per step")
ax_nsp.plot(x, smooth(history["nsp"]), label="train loss, 20-step mean")
ax_nsp.axhline(math.log(2), color="gray", ls=":", label="log 2: a coin flip")
ax_nsp.set(xlabel="step", ylabel="nats", title="next sentence prediction")
twin = ax_nsp.twinx()
twin.plot([s for s, _ in evals], [e["nsp_accuracy"] for _, e in evals], "o-", color="C2", label="held-out accuracy")
twin.set(ylabel="held-out accuracy", ylim=(0.3, 1.0))
ax_nsp.legend(loc="lower left", fontsize=8)
twin.legend(loc="upper right", fontsize=8)
fig.suptitle("pretraining a 2-layer BERT on pydoc text, 200 steps")
fig.savefig(FIGURES / "04_loss_curve.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# ## What 200 steps learned: word frequency
#
# The held-out MLM loss fell from about $\log 2000 \approx 7.6$ nats to the unigram baseline, and
# not much below it: the model has learned *which pieces are common*, which is the first and
# easiest thing to learn, but barely anything about which piece fits *this* context. Its top
# guesses are nearly the same common pieces for every sentence:

# %%
after = {s: fill_mask(model, s, w) for s, w in zip(PROBES, PROBE_WORDS)}
for s in PROBES:
    print(f"{s!r}\n   before: {before[s][0]} p(true) = {before[s][1]:.5f}"
          f"\n   after:  {after[s][0]} p(true) = {after[s][1]:.5f}")

# The loss went from uniform (log 2000) to the frequency level: within 0.2 nats of the unigram
# model's, so the model has learned at least as much as word frequency and little else.
assert evals[0][1]["mlm_loss"] > unigram_loss + 1.5
assert abs(final["mlm_loss"] - unigram_loss) < 0.2

# %% [markdown]
# ## Beyond frequency: the same losses, trained for longer
#
# What a notebook cannot afford, minibert has done once and ships: `"minibert/fill-mask"`
# (`docs/results/fillmask.md`) was trained with exactly these two losses, by `minibert pretrain`
# (sparse MLM + NSP), on 60 MB of English documentation and dictionary text, for 1,500 steps of 32
# sequences on two CPU cores (47 minutes). It did not start from random weights: 4-layer BERTs
# trained from scratch on this text (2,343 steps in 26 minutes; 800 steps in an earlier hour) were
# still at word frequency (the results page has their numbers: the long flat stretch this
# notebook's curve enters takes far more steps to leave).
# So the shipped model continued from the encoder of all-MiniLM-L6-v2 (`--init-from`:
# *continued pretraining*), and its masked-LM and NSP heads were trained from scratch.
#
# The measure that cannot be gamed: clozes cut from documents set aside before any training, every
# hidden piece replaced by `[MASK]` (no 80/10/10 hints), against the frequency baseline; then the
# same clozes with their visible pieces shuffled. A model that only knows which pieces are common
# would score the same on both.

# %%
import json

from minibert import FILL_MASK_CHECKPOINT
from minibert.train.cloze import cloze_accuracy, frequency_accuracy, shuffled_context

heldout = json.loads(Path("reference/fill_mask_heldout.json").read_text(encoding="utf-8"))
shipped_tokenizer = BertTokenizer.from_pretrained(FILL_MASK_CHECKPOINT)
shipped = BertForPreTraining.from_pretrained(FILL_MASK_CHECKPOINT).eval()

rng = random.Random(0)
scores = {
    "word frequency": frequency_accuracy(heldout["clozes"], heldout["unigram_top5"]),  # `. the , to a`
    "shuffled context": cloze_accuracy(shipped, shipped_tokenizer,
                                       [shuffled_context(c, rng) for c in heldout["clozes"]]),
    "in context": cloze_accuracy(shipped, shipped_tokenizer, heldout["clozes"]),
}
print(f"{len(heldout['clozes'])} held-out segments, {scores['in context']['masked']} masked pieces")
for name, score in scores.items():
    print(f"  {name:17s} top-1 {score['top1']:.3f}   top-5 {score['top5']:.3f}")

fig, ax = plt.subplots(figsize=(6, 3.5))
for offset, k in ((-0.2, "top1"), (0.2, "top5")):
    ax.bar([i + offset for i in range(len(scores))], [v[k] for v in scores.values()], width=0.4, label=k)
ax.set_xticks(range(len(scores)), list(scores))
ax.set(ylabel="accuracy on held-out masked pieces", title="minibert/fill-mask: what the context adds")
ax.legend()
fig.savefig(FIGURES / "04_beyond_frequency.png", dpi=120, bbox_inches="tight")
plt.show()

# Context, not frequency: far above the baseline, and most of the gain gone when the words are shuffled.
assert scores["in context"]["top1"] >= scores["word frequency"]["top1"] + 0.15
assert scores["in context"]["top5"] >= scores["word frequency"]["top5"] + 0.15
assert scores["shuffled context"]["top1"] <= scores["in context"]["top1"] - 0.10

# %% [markdown]
# The probes from the start of the notebook, now with the shipped model: different answers for
# different sentences, and the true word far more likely than the 200-step model made it.

# %%
shipped_probes = {s: fill_mask_with(shipped, shipped_tokenizer, s, w) for s, w in zip(PROBES, PROBE_WORDS)}
for s, (top, p) in shipped_probes.items():
    print(f"{s!r}\n   shipped model: {top} p(true) = {p:.4f}   (200 steps: {after[s][1]:.4f})")
assert len({tuple(top) for top, _ in shipped_probes.values()}) == len(PROBES)   # no single frequency list
assert all(shipped_probes[s][1] > after[s][1] for s in PROBES)

# %% [markdown]
# **Next sentence prediction on held-out pairs.** Half of the pairs are two consecutive sentences of
# a held-out document, half take B from another held-out document. Label 0 means "B follows A", as in
# BERT and transformers.

# %%
pairs = heldout["pairs"]
encoded = shipped_tokenizer([p["a"] for p in pairs], [p["b"] for p in pairs], padding=True, truncation=True,
                            max_length=128, return_tensors="pt")
with torch.no_grad():
    says_next = shipped(**encoded).seq_relationship_logits.argmax(-1) == 0          # (n,)
truth = torch.tensor([p["is_next"] for p in pairs])
nsp_accuracy = (says_next == truth).float().mean().item()
print(f"NSP accuracy on {len(pairs)} held-out pairs: {nsp_accuracy:.3f} (a coin flip: 0.5)")
assert nsp_accuracy >= 0.75

# %% [markdown]
# ## What we showed
#
# * NSP pairs: about half NotNext, `[CLS] A [SEP] B [SEP]` within the length budget;
# * masking: 15% of the ordinary tokens chosen, then 80% `[MASK]` / 10% random / 10% unchanged,
#   each within ±2 points, labels equal to the original tokens and -100 elsewhere;
# * the loss is exactly mean masked-token cross-entropy plus NSP cross-entropy (`1e-5`);
# * Adam's first step moves every coordinate by the full learning rate, whatever its gradient: one
#   of the two reasons for warm-up (the other, post-LN's gradient at the output, is in notebook 2);
# * 200 steps on a CPU take the held-out MLM loss from uniform to the unigram baseline, i.e. they
#   learn word frequency, and little beyond it; MLM and NSP are tracked apart, NSP on held-out pairs;
# * the same losses trained for longer (the shipped `minibert/fill-mask`) predict held-out masked
#   pieces far above word frequency, and lose most of that when the context is shuffled: they use
#   the context; its NSP head tells consecutive held-out sentences from unrelated ones.
#
# The full-size pretraining entry point is `minibert.train.pretrain` (see `docs/training.md`).
