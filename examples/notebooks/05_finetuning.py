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
# # 5. Fine-tuning for classification
#
# The tutorial this project started from (its §4.2) shows the usual workflow: tokenizer → dataset →
# `DataLoader` → `BertForSequenceClassification` → predictions. The shape of that workflow is right,
# but the code as written does not run, and would not predict anything useful if it did:
#
# 1. its `Dataset.__getitem__` tokenizes one sentence at a time with `padding=True` and
#    `return_tensors='pt'`, so every item has its own length and an extra batch axis, `(1, t)`;
#    the default `collate_fn` then fails to stack items of different lengths;
# 2. it feeds `bert-base-uncased` to `BertForSequenceClassification` and predicts at once: the
#    classification layer is *new* (randomly initialised), so without fine-tuning the predictions are
#    noise;
# 3. it loops under `model.eval()` but without `torch.no_grad()` (every forward pass builds an
#    autograd graph for nothing), and uses a `device` variable it never defines.
#
# Below we reproduce problem 1, then do the workflow properly: a dataset of raw texts, padding per
# batch in a collate function, a short fine-tuning run, then `model.eval()` + `torch.no_grad()` for
# predictions. The base model is all-MiniLM-L6-v2 (small enough for a CPU).
#
# Fine-tuning only earns its keep if it beats the cheap alternatives, so every number below is set
# against two of them, on the same held-out sentences: the *frozen* checkpoint's sentence vectors
# with a classifier that never touches the encoder, and the same architecture trained from *random*
# weights. The task is chosen so that the frozen vectors cannot solve it: telling a well-formed
# sentence of Python's documentation from the same sentence with two words exchanged (a small
# relative of CoLA, the acceptability task of the GLUE benchmark). The last part fine-tunes a
# *sentence-pair* classifier, the input format of BERT's next-sentence objective.

# %%
import os
import random
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from pydoc_data.topics import topics
from torch.utils.data import DataLoader, Dataset

from minibert import DEFAULT_CHECKPOINT, BertForSequenceClassification, BertModel, InputError
from minibert.data.pretraining import text_to_document
from minibert.fast.precision import bf16_native
from minibert.sentence import pool
from minibert.tokenizer import BertTokenizer
from minibert.train.optim import linear_schedule, make_optimizer

SEED = 0                       # data order, corruptions, new classifier weights: all drawn from it
torch.manual_seed(SEED)
device = torch.device("cpu")   # the tutorial's code uses `device` without defining it
FIGURES = Path(os.environ.get("MINIBERT_FIGURES", "figures"))  # where the pictures are saved
FIGURES.mkdir(parents=True, exist_ok=True)
MAX_LENGTH = 32                # tokens per sentence: the sentences below have at most 16 words
BATCH_SIZE = 16

# %% [markdown]
# ## Data: sentences, intact or with two words exchanged
#
# Every CPython ships the text of its `help()` topics in `pydoc_data.topics`, so the data needs no
# download. We keep the sentences that read as prose (8 to 16 words, no code symbols, nearly every word
# alphabetic), once each. Every second sentence is *corrupted*: two of its words, neither the first
# one nor one carrying punctuation, change places. Such a corruption keeps exactly the same words,
# so a representation that mostly records *which* words occur, and not in what order, hardly changes;
# a model that reads the sentence notices that "the list of returns elements" is not English.
# Label 1 is acceptable, 0 is corrupted, as in CoLA.
#
# The first 200 sentences are the held-out test split, the next 48 a validation split (used only to
# choose the learning rate), the next 320 the training split. Each sentence appears in one split, in
# one form only.

# %%
def is_prose(sentence):
    words = sentence.split()
    return (8 <= len(words) <= 16 and sentence[0].isupper() and sentence.endswith(".")
            and not any(symbol in sentence for symbol in "*>=_[]{}")
            and sum(w.strip(",.;:()'\"").isalpha() for w in words) >= 0.9 * len(words))


def swap_two_words(sentence, rng):
    words = sentence.split()
    # Whole words only, and never the first: moving "list." or the capital of the first word would
    # leave a mark that gives the answer away without reading the sentence.
    movable = [i for i in range(1, len(words)) if words[i].isalpha()]
    i, j = sorted(rng.sample(movable, 2))
    while words[i].lower() == words[j].lower():   # exchanging "the" with "the" changes nothing
        i, j = sorted(rng.sample(movable, 2))
    words[i], words[j] = words[j], words[i]
    return " ".join(words)


rng = random.Random(SEED)
sentences = list(dict.fromkeys(s for name in sorted(topics) for s in text_to_document(topics[name])
                               if is_prose(s)))
rng.shuffle(sentences)
rows = [(s, 1) if k % 2 == 0 else (swap_two_words(s, rng), 0) for k, s in enumerate(sentences[:568])]
test_rows, validation_rows, train_rows = rows[:200], rows[200:248], rows[248:]
labels_names = ["corrupted", "acceptable"]
print(len(sentences), "prose sentences;", len(train_rows), "train,", len(validation_rows), "validation,",
      len(test_rows), "test")
assert len(train_rows) == 320 and len({s for s, _ in rows}) == len(rows)   # no sentence in two splits
for text, label in train_rows[:4]:
    print(f"[{labels_names[label]}] {text}")

tokenizer = BertTokenizer.from_pretrained(DEFAULT_CHECKPOINT)

# %% [markdown]
# ## Problem 1, reproduced
#
# The tutorial's dataset, unchanged apart from using minibert's tokenizer:

# %%
class TutorialDataset(Dataset):
    def __init__(self, sentences, labels):
        self.sentences = sentences
        self.labels = labels

    def __len__(self):
        return len(self.sentences)

    def __getitem__(self, idx):
        inputs = tokenizer(self.sentences[idx], padding=True, truncation=True, max_length=64, return_tensors="pt")
        inputs["labels"] = torch.tensor(self.labels[idx])
        return inputs


tutorial = TutorialDataset(["I love deep learning.", "BERT is amazing."], [1, 0])
print({k: tuple(v.shape) for k, v in tutorial[0].items()}, {k: tuple(v.shape) for k, v in tutorial[1].items()})
try:
    next(iter(DataLoader(tutorial, batch_size=2)))
    failed = None
except RuntimeError as error:
    failed = error
print("default collate:", failed)
assert failed is not None   # 7 tokens and 6 tokens cannot be stacked into one tensor

# %% [markdown]
# Even with sentences of equal length the batch would be `(b, 1, t)`, not the `(b, t)` a model
# takes; minibert says so instead of failing somewhere inside:

# %%
same_length = TutorialDataset(["I love deep learning.", "I like deep learning."], [1, 0])
batch = next(iter(DataLoader(same_length, batch_size=2)))
print({k: tuple(v.shape) for k, v in batch.items()})
model = BertForSequenceClassification.from_pretrained(DEFAULT_CHECKPOINT, num_labels=2)
try:
    model(**batch)
except InputError as error:
    print("InputError:", error)
else:
    raise AssertionError("a (b, 1, t) batch should have been rejected")

# %% [markdown]
# ## The fix: raw texts in the dataset, padding in the collate function
#
# The dataset returns what it stores, `(text, label)`. The collate function receives a list of those
# and tokenizes them *together*, so `padding=True` pads to the longest sentence of that batch, and
# returns `(b, t)` tensors plus `attention_mask`, which tells the model which positions are padding.
# Batches of short sentences stay short.

# %%
class TextDataset(Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, idx):
        return self.rows[idx]                     # (text, label): no tensors yet


def collate(rows):
    texts, labels = zip(*rows)
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    batch["labels"] = torch.tensor(labels)        # (b,)
    return batch


def loader(rows, shuffle=False, collate_fn=collate):
    """Batches of BATCH_SIZE; a shuffled loader draws its order from its own seeded generator."""
    return DataLoader(TextDataset(rows), batch_size=BATCH_SIZE, shuffle=shuffle, collate_fn=collate_fn,
                      generator=torch.Generator().manual_seed(SEED) if shuffle else None)


batch = next(iter(loader(train_rows, shuffle=True)))
print({k: tuple(v.shape) for k, v in batch.items()})
assert batch["input_ids"].dim() == 2 and batch["attention_mask"].shape == batch["input_ids"].shape
# Padding sits where the mask is 0, and only there.
assert ((batch["input_ids"] == tokenizer.pad_token_id) == (batch["attention_mask"] == 0)).all()

# %% [markdown]
# Padding must not change a sentence's prediction: the logits of a sentence alone and inside a
# padded batch agree (float32 rounding differs with the length, hence `1e-5`).

# %%
model.eval()
with torch.no_grad():
    alone = model(**tokenizer([test_rows[0][0]], return_tensors="pt")).logits
    in_batch = model(**tokenizer([test_rows[0][0], test_rows[1][0], test_rows[-1][0]], padding=True,
                                 return_tensors="pt")).logits[:1]
torch.testing.assert_close(alone, in_batch, atol=1e-5, rtol=0)

# %% [markdown]
# ## Problem 2: the new classification layer
#
# Loading reports the two tensors the checkpoint does not have: the classifier's weight and bias,
# freshly initialised. Before fine-tuning, held-out accuracy is no better than a coin flip.

# %%
print(model.load_report)
assert set(model.load_report.missing) == {"classifier.weight", "classifier.bias"}


def evaluate(model, rows, collate_fn=collate):
    model.eval()                                   # dropout off: deterministic predictions
    correct = 0
    with torch.no_grad():                          # no autograd graph: less memory, faster
        for batch in loader(rows, collate_fn=collate_fn):
            batch = {k: v.to(device) for k, v in batch.items()}
            labels = batch.pop("labels")
            predictions = model(**batch).logits.argmax(dim=-1)   # (b,)
            correct += (predictions == labels).sum().item()
    return correct / len(rows)


accuracy_before = evaluate(model, test_rows)
print(f"accuracy before fine-tuning: {accuracy_before:.3f}")
assert abs(accuracy_before - 0.5) < 0.1

# %% [markdown]
# ## Problem 3: predictions, done right
#
# `evaluate` above calls both, where the tutorial's loop had only the first. `model.eval()` turns
# dropout off, so the same input always gives the same output; in train mode two passes differ (this
# model was loaded with BERT's dropout of 0.1). `torch.no_grad()` skips building the autograd graph:
# no gradient is needed to predict, and the graph would hold every intermediate tensor until the
# output is dropped.

# %%
probe = tokenizer([text for text, _ in test_rows[:2]], padding=True, return_tensors="pt")
model.train()
with torch.no_grad():
    noisy_a, noisy_b = model(**probe).logits, model(**probe).logits
model.eval()
with torch.no_grad():
    clean_a, clean_b = model(**probe).logits, model(**probe).logits
assert not torch.equal(noisy_a, noisy_b) and torch.equal(clean_a, clean_b)
assert model(**probe).logits.requires_grad and not clean_a.requires_grad   # a graph only without no_grad

# %% [markdown]
# ## Baseline 1: the frozen checkpoint's vectors
#
# Before training anything, what do the pretrained vectors already know? We run the encoder once,
# frozen, and summarise each sentence two ways: the mean of its token vectors (how all-MiniLM-L6-v2
# was trained to be used) and the vector at `[CLS]` (what `BertForSequenceClassification` reads,
# through its pooler). Two classifiers use them, both fitted on the 320 training sentences only:
#
# * *nearest centroid*: the mean (normalised) vector of each class; a sentence takes the label of
#   the closer one by cosine. No training at all.
# * a *logistic-regression probe*: one linear layer on the standardised features, fitted to the
#   minimum of the cross-entropy (L-BFGS, a small L2 penalty). If the information is in the vector
#   in any linearly readable form, the probe finds it.

# %%
encoder = BertModel.from_pretrained(DEFAULT_CHECKPOINT).eval()


@torch.no_grad()
def sentence_vectors(texts, encoder=encoder):
    encoder.eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    hidden = encoder(**batch).last_hidden_state                                      # (n, t, c)
    return {"mean": pool(hidden, batch["attention_mask"], "mean"), "[CLS]": hidden[:, 0]}  # (n, c) each


def nearest_centroid(train_x, train_y, test_x):
    train_x, test_x = F.normalize(train_x, dim=-1), F.normalize(test_x, dim=-1)
    centroids = torch.stack([F.normalize(train_x[train_y == c].mean(0), dim=0) for c in (0, 1)])  # (2, c)
    return (test_x @ centroids.T).argmax(-1)                                                   # (n,)


def logistic_probe(train_x, train_y, test_x, l2=1e-3):
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    probe = torch.nn.Linear(train_x.shape[1], 2)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def loss_and_grad():
        optimizer.zero_grad()
        loss = F.cross_entropy(probe(train_x), train_y) + l2 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(loss_and_grad)
    with torch.no_grad():
        return probe(test_x).argmax(-1)


train_y = torch.tensor([label for _, label in train_rows])
test_y = torch.tensor([label for _, label in test_rows])
train_vectors = sentence_vectors([text for text, _ in train_rows])
test_vectors = sentence_vectors([text for text, _ in test_rows])
frozen = {}
for pooling in ("mean", "[CLS]"):
    frozen[f"nearest centroid, {pooling}"] = (
        nearest_centroid(train_vectors[pooling], train_y, test_vectors[pooling]) == test_y).float().mean().item()
    frozen[f"logistic probe, {pooling}"] = (
        logistic_probe(train_vectors[pooling], train_y, test_vectors[pooling]) == test_y).float().mean().item()
for name, accuracy in frozen.items():
    print(f"frozen {name:28s} {accuracy:.3f}")
best_frozen = max(frozen.values())
assert best_frozen < 0.65   # the frozen vectors barely see word order

# %% [markdown]
# ## Fine-tuning, and how to choose the learning rate
#
# Fine-tuning trains every weight, the encoder's and the new layer's, on the labelled sentences:
# `model.train()` switches dropout on, and the model computes the cross-entropy of its logits
# against `labels` when they are passed. The optimiser is minibert's (AdamW, no weight decay on biases
# and LayerNorm parameters), with the learning rate rising linearly over the first 10 % of the steps
# and falling linearly to 0 after: at the start the classifier is random, so the gradients it sends
# back into the encoder carry no information yet, and small first steps keep them from undoing
# pretrained weights.
# Where the CPU multiplies bfloat16 matrices natively, the forward pass runs under bf16 autocast
# (weights and optimiser stay float32), as `minibert finetune --bf16` does; on this project's CPU
# (AVX512-BF16) a step takes about half as long.
#
# Three epochs of 20 batches of 16 is 60 steps, tiny next to BERT's own fine-tuning (2 to 4 epochs
# over thousands of examples). The learning rate is the setting that matters most. The BERT paper
# searched 2e-5 to 5e-5 for its 110M-parameter base model over hundreds to thousands of steps; the
# grid Google published with its smaller BERTs goes up to 3e-4. Two reasons a short run of a small
# model takes a larger rate: Adam moves every weight by roughly the learning rate per step whatever its
# gradient, so the distance covered is about steps × rate, and 60 steps is few; and a unit of a
# 384-wide layer sums 384 such changes, not 768, so the same rate disturbs it less.
# Rather than argue, we try three rates a factor of 10 apart, start each from the same weights, the
# same new classifier and the same batch order, and compare them on the *validation* split; the test
# split stays unseen until the choice is made. A second measure says what each rate did to the
# encoder: the cosine between the fine-tuned encoder's mean sentence vector and the frozen one, for
# the validation sentences: 1 means the pretrained features are untouched.

# %%
EPOCHS = 3
BF16 = bf16_native()   # bf16 matrix products where the CPU has them (AVX512-BF16 or AMX)


def fine_tune(model, rows, lr, collate_fn=collate, epochs=EPOCHS):
    """Train every weight of `model` on `rows`; return the loss of each step."""
    batches = loader(rows, shuffle=True, collate_fn=collate_fn)   # the same order in every run
    total_steps = epochs * len(batches)
    optimizer = make_optimizer(model, lr, weight_decay=0.01)
    schedule = linear_schedule(optimizer, warmup_steps=total_steps // 10, total_steps=total_steps)
    model.to(device).train()                                      # dropout on
    losses = []
    for epoch in range(epochs):
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=BF16):
                loss = model(**batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
    return losses


def from_checkpoint():
    torch.manual_seed(SEED)   # the same new classifier in every run
    return BertForSequenceClassification.from_pretrained(DEFAULT_CHECKPOINT, num_labels=2)


validation_texts = [text for text, _ in validation_rows]
frozen_validation = sentence_vectors(validation_texts)["mean"]                      # (48, c)


def features_kept(model):
    tuned = sentence_vectors(validation_texts, encoder=model.bert)["mean"]          # (48, c)
    return F.cosine_similarity(tuned, frozen_validation).mean().item()


sweep = {}
for lr in (2e-5, 2e-4, 2e-3):
    candidate = from_checkpoint()
    losses = fine_tune(candidate, train_rows, lr)
    sweep[lr] = {"losses": losses, "validation": evaluate(candidate, validation_rows),
                 "kept": features_kept(candidate), "model": candidate}
    print(f"lr {lr:.0e}: last 10 losses {sum(losses[-10:]) / 10:.3f}, validation accuracy "
          f"{sweep[lr]['validation']:.3f}, features kept (cosine) {sweep[lr]['kept']:.3f}")
best_lr = max(sweep, key=lambda lr: sweep[lr]["validation"])
model = sweep[best_lr]["model"]
print("chosen on validation:", best_lr)

# %% [markdown]
# What the three runs show:
#
# * **too low (2e-5)**: the encoder hardly moves (its sentence vectors keep a cosine near 1 with the
#   frozen ones) and the loss stays near ln 2 ≈ 0.69, a coin flip's loss: 60 small steps are not
#   enough to learn anything;
# * **too high (2e-3)**: the encoder moves furthest from its pretrained state, and the loss does
#   not fall either: the steps throw away the features pretraining built, and nothing better
#   replaces them in 60 steps;
# * **in between (2e-4)**: the loss falls well below ln 2, and the model reads word order.

# %%
low, chosen, high = sweep[2e-5], sweep[2e-4], sweep[2e-3]
assert best_lr == 2e-4
assert low["kept"] > chosen["kept"] > high["kept"]       # the larger the rate, the further from pretraining
assert low["kept"] > 0.95                               # too low: the features barely moved
assert sum(low["losses"][-10:]) / 10 > 0.6 and sum(high["losses"][-10:]) / 10 > 0.6
assert sum(chosen["losses"][-10:]) / 10 < 0.55
assert chosen["validation"] >= max(low["validation"], high["validation"]) + 0.1
del low["model"], high["model"]                         # keep only the chosen model in memory

# %% [markdown]
# ## Baseline 2: the same architecture from random weights
#
# Is it the *pretraining* that helps, or would the architecture learn the task anyway from these 320
# sentences? The same model class, built from the same config but with BERT's random initialisation
# instead of the checkpoint's weights, trained with the same recipe, rate and batches.

# %%
torch.manual_seed(SEED)
scratch = BertForSequenceClassification(model.config)     # random weights, same shapes
scratch_losses = fine_tune(scratch, train_rows, best_lr)

results = {"frozen: nearest centroid": max(v for k, v in frozen.items() if k.startswith("nearest")),
           "frozen: logistic probe": max(v for k, v in frozen.items() if k.startswith("logistic")),
           "random init, trained": evaluate(scratch, test_rows),
           "pretrained, fine-tuned": evaluate(model, test_rows)}
for name, accuracy in results.items():
    print(f"{name:26s} test accuracy {accuracy:.3f}")

fine_tuned = results["pretrained, fine-tuned"]
assert fine_tuned >= results["frozen: nearest centroid"] + 0.1
assert fine_tuned >= results["frozen: logistic probe"] + 0.1
assert fine_tuned >= results["random init, trained"] + 0.1

# %% [markdown]
# ## Sentence pairs: `[CLS] A [SEP] B [SEP]`
#
# BERT reads two texts as one sequence: `[CLS]`, the first text, `[SEP]`, the second, `[SEP]`. The
# tokenizer builds it when given two texts, and returns `token_type_ids`: 0 for `[CLS]`, the first
# text and its `[SEP]`, 1 for the rest. The model adds a learned *segment* vector (one of two) to every
# token's embedding, so attention can tell the two texts apart; classification reads `[CLS]` as
# before, which can now attend to both.

# %%
def halves(sentence):
    words = sentence.split()
    return " ".join(words[:len(words) // 2]), " ".join(words[len(words) // 2:])


first, second = halves(test_rows[0][0])
pair = tokenizer(first, second)
tokens = tokenizer.convert_ids_to_tokens(pair["input_ids"])
print(" ".join(f"{token}/{segment}" for token, segment in zip(tokens, pair["token_type_ids"])))
separators = [i for i, token in enumerate(tokens) if token == "[SEP]"]
assert tokens[0] == "[CLS]" and len(separators) == 2 and separators[1] == len(tokens) - 1
assert pair["token_type_ids"] == [0] * (separators[0] + 1) + [1] * (len(tokens) - separators[0] - 1)

segments = encoder.embeddings.token_type.weight                                      # (2, c)
segment_cosine = F.cosine_similarity(segments[0], segments[1], dim=0).item()
print(f"cosine of the checkpoint's two segment vectors: {segment_cosine:.3f}")
assert segment_cosine > 0.9

# %% [markdown]
# The two segment vectors of all-MiniLM-L6-v2 are nearly the same: it was trained as a sentence
# encoder, each text of a training pair encoded on its own, so nothing pushed them apart (BERT's own
# checkpoints learn the difference from next-sentence prediction). Whatever the pair classifier needs
# about "which text is which", fine-tuning has to teach it.
#
# The pair task keeps the spirit of BERT's pretraining pairs, where A and B are spans of running
# text, not necessarily whole sentences: each sentence is cut in the middle into A and B; in every
# second pair a word of A and a word of B change places across the cut, twice. Checking that a word
# belongs on the other side of the cut needs both spans in one input, which is what the pair encoding
# gives. The run uses the recipe and the rate chosen above. The frozen baseline is the usual one for
# pairs: the cosine of the two mean sentence vectors, with the threshold that best separates the
# training pairs; a second frozen baseline fits a logistic probe on `(u, v, |u - v|, u * v)`, the
# features Sentence-BERT classifies pairs with. The sentences are the ones above, in the same splits,
# so no test sentence was seen in training in either form.

# %%
def exchanges(first, second):
    """The (word of A, word of B) positions that may change places: whole words that differ, never A's first."""
    a, b = first.split(), second.split()
    return [(i, j) for i in range(1, len(a)) for j in range(len(b))
            if a[i].isalpha() and b[j].isalpha() and a[i].lower() != b[j].lower()]


def exchange_across(first, second, rng):
    a, b = first.split(), second.split()
    for _ in range(2):                          # two exchanges: one is too faint for 60 steps
        i, j = rng.choice(exchanges(" ".join(a), " ".join(b)))
        a[i], b[j] = b[j], a[i]
    return " ".join(a), " ".join(b)


pair_rng = random.Random(SEED + 1)


def pair_rows_of(split):
    cut = [halves(s) for s in split]
    cut = [ab for ab in cut if exchanges(*ab)]
    return [(ab, 1) if k % 2 else (exchange_across(*ab, pair_rng), 0) for k, ab in enumerate(cut)]


pair_test, pair_train = pair_rows_of(sentences[:200]), pair_rows_of(sentences[248:568])   # task 1's splits
print(len(pair_train), "training pairs,", len(pair_test), "test pairs")
for (a, b), label in pair_train[:2]:
    print(f"[{labels_names[label]}] A: {a!r}  B: {b!r}")


def pair_collate(rows):
    pairs, labels = zip(*rows)
    firsts, seconds = zip(*pairs)
    batch = tokenizer(list(firsts), list(seconds), padding=True, truncation=True, max_length=MAX_LENGTH + 8,
                      return_tensors="pt")                           # (b, t) each, token_type_ids included
    batch["labels"] = torch.tensor(labels)
    return batch


def sbert_features(u, v):
    return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)                         # (n, 4c)


def pair_vectors(rows):
    u = sentence_vectors([a for (a, _), _ in rows])["mean"]                          # (n, c)
    v = sentence_vectors([b for (_, b), _ in rows])["mean"]                          # (n, c)
    return u, v


pair_train_y = torch.tensor([label for _, label in pair_train])
pair_test_y = torch.tensor([label for _, label in pair_test])
(u_train, v_train), (u_test, v_test) = pair_vectors(pair_train), pair_vectors(pair_test)
cos_train, cos_test = F.cosine_similarity(u_train, v_train), F.cosine_similarity(u_test, v_test)   # (n,)
thresholds = cos_train.sort().values
train_accuracy = torch.stack([((cos_train >= t).long() == pair_train_y).float().mean() for t in thresholds])
threshold = thresholds[train_accuracy.argmax()]
pair_results = {"frozen: cosine threshold": ((cos_test >= threshold).long() == pair_test_y).float().mean().item()}
probe_predictions = logistic_probe(sbert_features(u_train, v_train), pair_train_y, sbert_features(u_test, v_test))
pair_results["frozen: probe on (u, v, |u-v|, u*v)"] = (probe_predictions == pair_test_y).float().mean().item()

pair_model = from_checkpoint()
pair_losses = fine_tune(pair_model, pair_train, best_lr, collate_fn=pair_collate)
pair_results["pretrained, fine-tuned on pairs"] = evaluate(pair_model, pair_test, collate_fn=pair_collate)
for name, accuracy in pair_results.items():
    print(f"{name:36s} test accuracy {accuracy:.3f}")
pair_fine_tuned = pair_results["pretrained, fine-tuned on pairs"]
assert pair_fine_tuned >= pair_results["frozen: cosine threshold"] + 0.1
assert pair_fine_tuned >= pair_results["frozen: probe on (u, v, |u-v|, u*v)"] + 0.05

# %% [markdown]
# ## The picture
#
# Left, the training loss of every run, smoothed over 5 steps; ln 2 is the loss of a coin flip.
# Right, held-out accuracy of each approach on both tasks.

# %%
def smooth(values, width=5):
    return [sum(values[max(0, i - width + 1):i + 1]) / len(values[max(0, i - width + 1):i + 1])
            for i in range(len(values))]


fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
for lr, run in sweep.items():
    left.plot(smooth(run["losses"]), label=f"pretrained, lr {lr:.0e}")
left.plot(smooth(scratch_losses), "--", label=f"random init, lr {best_lr:.0e}")
left.plot(smooth(pair_losses), ":", label=f"pairs, pretrained, lr {best_lr:.0e}")
left.axhline(0.6931, color="gray", lw=0.8)
left.set(xlabel="step", ylabel="training loss", title="Fine-tuning runs")
left.legend(fontsize=8)
names = [f"word order: {name}" for name in results] + [f"pairs: {name}" for name in pair_results]
values = list(results.values()) + list(pair_results.values())
right.barh(names, values, color=["C7", "C7", "C3", "C0", "C7", "C7", "C0"])
right.axvline(0.5, color="gray", lw=0.8)
right.set(xlim=(0, 1), xlabel="test accuracy", title="Held-out accuracy")
fig.tight_layout()
fig.savefig(FIGURES / "05_finetuning.png", dpi=120, bbox_inches="tight")
plt.show()

# %% [markdown]
# ## What we showed
#
# * the tutorial's per-item tokenization cannot be batched by the default collate function
#   (`RuntimeError`), and gives `(b, 1, t)` batches even when it can;
# * padding per batch in a `collate_fn` gives `(b, t)` tensors whose padding is marked by
#   `attention_mask` and does not change predictions (`1e-5`);
# * a new classification layer predicts at chance until fine-tuned;
# * the frozen checkpoint's vectors, read by a nearest-centroid rule or a fitted logistic probe,
#   barely tell an intact sentence from one with two words exchanged (< 0.65); 60 steps of
#   fine-tuning beat them, and the same architecture trained from random weights, by at least 10
#   points on the same held-out sentences;
# * of three learning rates a factor of 10 apart, the small one leaves the pretrained features
#   untouched and learns nothing in 60 steps, the large one moves them furthest and learns nothing
#   either; the middle one, chosen on validation, is the one that works;
# * the tokenizer encodes a pair as `[CLS] A [SEP] B [SEP]` with `token_type_ids` 0 then 1, and this
#   checkpoint's two segment vectors are nearly equal (cosine > 0.9); a pair classifier fine-tuned
#   this way beats the cosine of frozen sentence vectors by at least 10 points, and a probe on them
#   by at least 5;
# * `model.eval()` makes predictions deterministic; `torch.no_grad()` makes them cheap.
#
# For real tasks, `minibert.train.finetune` does the same with validation, learning-rate schedule and
# checkpointing (`docs/training.md`).
