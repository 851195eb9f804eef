"""Pretraining data as in the original BERT recipe, streamed so that a corpus of any size fits.

The pipeline, one stage per function:

    text file / folder / pydoc topics
        -> documents (a document is a list of sentences)            ``minibert.data.corpus``
        -> token ids per sentence                                     ``tokenize_document``
        -> segment pairs A, B with a next-sentence label              ``create_segment_pairs``
        -> [CLS] A [SEP] B [SEP] with 15% of the tokens masked       ``build_example``, ``mask_tokens``
        -> padded tensors                                              ``minibert.data.batches.collate``

``PretrainingStream`` runs the stages lazily and yields batches forever, epoch after epoch.

Why it looks the way it does:

* Streaming. Files are read line by line. BERT picks the "random next segment" of an NSP pair from
  any other document of the corpus, which needs the whole corpus in memory; here documents are
  processed in chunks of ``buffer_documents`` and the random segment comes from another document of
  the same chunk. The examples of one chunk are shuffled together before they are yielded (BERT
  shuffles all examples of the corpus). Memory is bounded by one chunk of tokenised documents.
* Determinism. All randomness comes from a ``random.Random`` seeded with (seed, rank, epoch), so
  the same seed gives the same examples in the same order, on every run.
* Resumption. The position in the stream is the number of examples already consumed. Restoring it
  regenerates the stream from the start and drops that many examples: nothing else has to be saved,
  at the price of re-tokenising what was skipped (cheap next to training).
* Sharding. Under data parallelism, rank ``r`` of ``w`` keeps the training documents whose index is
  ``r`` modulo ``w``, so each rank reads its own part of the corpus.

Labels follow transformers: ``labels`` holds the original id at masked positions and -100
elsewhere; ``next_sentence_label`` is 0 when B really follows A and 1 when B is random.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

from torch import Tensor

from minibert.checks import check_int
from minibert.data.batches import collate
from minibert.data.corpus import Corpus, Document, DocumentFactory
# Re-exported: the pipeline's first stage lives in minibert.data.corpus; notebooks import them from here.
from minibert.data.corpus import (document_factory, documents_of_lines, open_corpus, pydoc_documents,  # noqa: F401
                                  read_documents, split_sentences, text_to_document)
from minibert.errors import InputError

TokenizedDocument = list[list[int]]  # token ids of each sentence

# --------------------------------------------------------------------------------------- documents

def split_documents(documents: Iterable[Document], split: str, heldout_every: int,
                    rank: int = 0, world_size: int = 1) -> Iterator[tuple[int, Document]]:
    """Yield (index, document) of one split: every ``heldout_every``-th document (0, n, 2n, ...) is
    held out for evaluation (``split="eval"``), the rest is training data (``split="train"``), of which
    rank ``r`` keeps every ``world_size``-th. ``heldout_every=0`` puts everything in "train"."""
    if split not in ("train", "eval"):
        raise InputError(f"split must be 'train' or 'eval', got {split!r}")
    train_index = 0
    for index, document in enumerate(documents):
        heldout = heldout_every > 0 and index % heldout_every == 0
        if split == "eval":
            if heldout:
                yield index, document
        elif not heldout:
            if train_index % world_size == rank:
                yield index, document
            train_index += 1


def check_enough_documents(corpus: Corpus, heldout_every: int, world_size: int = 1) -> None:
    """InputError, before any work, when ``corpus`` cannot feed next-sentence pairs: the held-out
    split needs a document, and each of ``world_size`` ranks two training documents (a random "next"
    segment comes from another document). Reads only as many documents as that takes."""
    needed = {"train": 2 * world_size, "eval": 1}
    found = {"train": 0, "eval": 0}
    for index, _ in enumerate(corpus.documents()):
        found["eval" if heldout_every and index % heldout_every == 0 else "train"] += 1
        if all(found[k] >= needed[k] for k in needed):
            return
    total = found["train"] + found["eval"]
    why = " (documents are separated by blank lines; this corpus has none between its lines)" if total == 1 else ""
    raise InputError(f"corpus {corpus.name} holds {total} document(s){why}: with --heldout-every {heldout_every} "
                     f"that is {found['train']} for training and {found['eval']} held out; next-sentence pairs "
                     f"need at least {needed['train']} training document(s) ({world_size} process(es)) and 1 held out")


# ---------------------------------------------------------------------------------- special tokens

@dataclass(frozen=True)
class Vocabulary:
    """What the data pipeline needs to know about a vocabulary: its size, the special ids, and which
    ids are word continuations ("##ing"), for whole-word masking."""
    size: int
    pad_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    special_ids: frozenset[int]
    continuation_ids: frozenset[int]

    @classmethod
    def from_tokens(cls, tokens: Sequence[str]) -> "Vocabulary":
        """From the vocabulary as a list, index = id (the lines of vocab.txt)."""
        ids = {token: i for i, token in enumerate(tokens)}
        missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t not in ids]
        if missing:
            raise InputError(f"the vocabulary lacks the special token(s) {missing}")
        special = {i for t, i in ids.items() if t.startswith("[") and t.endswith("]") and len(t) > 2}
        return cls(size=len(tokens), pad_id=ids["[PAD]"], cls_id=ids["[CLS]"], sep_id=ids["[SEP]"],
                   mask_id=ids["[MASK]"], special_ids=frozenset(special),
                   continuation_ids=frozenset(i for t, i in ids.items() if t.startswith("##")))

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> "Vocabulary":
        """From a tokenizer with a ``vocab`` dict (token -> id), like ``minibert.BertTokenizer``."""
        vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else tokenizer.vocab
        tokens = [""] * (max(vocab.values()) + 1)
        for token, i in vocab.items():
            tokens[i] = token
        return cls.from_tokens(tokens)


def tokenize_document(document: Document, tokenizer: Any) -> TokenizedDocument:
    """Sentences -> lists of WordPiece ids; sentences that tokenise to nothing are dropped."""
    out = []
    for sentence in document:
        ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(sentence))
        if ids:
            out.append(ids)
    return out


# ---------------------------------------------------------------------------------- segment pairs

@dataclass
class SegmentPair:
    tokens_a: list[int]
    tokens_b: list[int]
    is_random_next: bool  # the NSP label: True (1) when B comes from another document


def truncate_pair(tokens_a: list[int], tokens_b: list[int], max_tokens: int, rng: random.Random) -> None:
    """Shorten the longer segment, one token at a time from its front or back (a coin flip), until
    both fit in ``max_tokens``. Cutting at random ends avoids always losing the same side."""
    while len(tokens_a) + len(tokens_b) > max_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def create_segment_pairs(documents: Sequence[TokenizedDocument], doc_index: int, max_seq_length: int,
                         short_seq_prob: float, rng: random.Random) -> list[SegmentPair]:
    """All segment pairs of ``documents[doc_index]``, BERT's ``create_instances_from_document``.

    Sentences are gathered until they reach a target length (``max_seq_length - 3``, the room left by
    [CLS] and two [SEP]; with probability ``short_seq_prob`` a random shorter target, so the model also
    sees short inputs). The gathered sentences are cut at a random sentence boundary into A and B.
    Half the time (always, when there is a single sentence) B is replaced by a run of sentences from
    another document of ``documents``, and the sentences of the true B are given back to be used
    next. Finally the pair is truncated to fit.
    """
    document = documents[doc_index]
    max_tokens = max_seq_length - 3
    target = max_tokens
    if rng.random() < short_seq_prob:
        target = rng.randint(2, max_tokens)

    pairs: list[SegmentPair] = []
    chunk: list[list[int]] = []
    chunk_length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
            tokens_b: list[int] = []
            is_random_next = len(chunk) == 1 or rng.random() < 0.5
            if is_random_next and len(documents) > 1:
                # Another document (a few tries are enough when there are several).
                other = doc_index
                for _ in range(10):
                    other = rng.randrange(len(documents))
                    if other != doc_index:
                        break
                if other == doc_index:
                    # Ten misses (likely only with two or three documents): pick among the others directly,
                    # or the "random" B would come from A's own document under label 1.
                    other = (doc_index + 1 + rng.randrange(len(documents) - 1)) % len(documents)
                random_document = documents[other]
                target_b = max(1, target - len(tokens_a))
                start = rng.randrange(len(random_document))
                for sentence in random_document[start:]:
                    tokens_b.extend(sentence)
                    if len(tokens_b) >= target_b:
                        break
                i -= len(chunk) - a_end  # the unused sentences of this chunk come back
            else:
                is_random_next = False
                tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
            if tokens_a and tokens_b:
                truncate_pair(tokens_a, tokens_b, max_tokens, rng)
                pairs.append(SegmentPair(tokens_a, tokens_b, is_random_next))
            chunk, chunk_length = [], 0
        i += 1
    return pairs


# ------------------------------------------------------------------------------------------ masking

def mask_tokens(input_ids: Sequence[int], rng: random.Random, *, vocab_size: int, mask_id: int,
                special_ids: Iterable[int], masked_lm_prob: float = 0.15, max_predictions_per_seq: int = 20,
                whole_word: bool = False, continuation_ids: Iterable[int] = ()) -> tuple[list[int], list[int]]:
    """BERT's masked-LM corruption. Returns (corrupted ids, labels).

    ``n = min(max_predictions_per_seq, max(1, round(masked_lm_prob * m)))`` positions are chosen at
    random among the ``m`` non-special tokens (special tokens are never chosen). Each chosen position
    becomes ``[MASK]`` with probability 0.8, a random token with 0.1 and stays unchanged with 0.1; its
    label is the original id. Every other label is -100. Random tokens are drawn uniformly from the
    non-special ids. With ``whole_word=True`` a word and its "##" continuations are chosen together
    (a word that would overshoot ``n`` is skipped, so at most ``n`` are chosen).
    """
    if not 0.0 <= masked_lm_prob <= 1.0:
        raise InputError(f"masked_lm_prob must be in [0, 1], got {masked_lm_prob!r}")
    if not isinstance(max_predictions_per_seq, int) or max_predictions_per_seq < 0:
        raise InputError(f"max_predictions_per_seq must be a non-negative integer, got {max_predictions_per_seq!r}")
    special = set(special_ids)
    if len(special) >= vocab_size:
        raise InputError(f"vocab_size={vocab_size} leaves no non-special token to draw")
    continuation = set(continuation_ids) if whole_word else set()

    # Candidate groups of positions: single tokens, or whole words.
    groups: list[list[int]] = []
    for position, token in enumerate(input_ids):
        if token in special:
            continue
        if token in continuation and groups and groups[-1][-1] == position - 1:
            groups[-1].append(position)
        else:
            groups.append([position])
    n_candidates = sum(len(g) for g in groups)
    n_to_predict = min(max_predictions_per_seq, max(1, round(masked_lm_prob * n_candidates))) if n_candidates else 0

    rng.shuffle(groups)
    chosen: list[int] = []
    for group in groups:
        if len(chosen) >= n_to_predict:
            break
        if len(chosen) + len(group) > n_to_predict:
            continue
        chosen.extend(group)

    corrupted = list(input_ids)
    labels = [-100] * len(corrupted)
    for position in sorted(chosen):
        labels[position] = corrupted[position]
        draw = rng.random()
        if draw < 0.8:
            corrupted[position] = mask_id
        elif draw >= 0.9:
            replacement = rng.randrange(vocab_size)
            while replacement in special:
                replacement = rng.randrange(vocab_size)
            corrupted[position] = replacement
        # else (0.8 <= draw < 0.9): unchanged
    return corrupted, labels


def build_example(pair: SegmentPair, vocab: Vocabulary, rng: random.Random, *, masked_lm_prob: float = 0.15,
                  max_predictions_per_seq: int = 20, whole_word: bool = False) -> dict[str, Any]:
    """[CLS] A [SEP] B [SEP] with token types 0...0 1...1, masked; plain lists, one example."""
    ids = [vocab.cls_id, *pair.tokens_a, vocab.sep_id, *pair.tokens_b, vocab.sep_id]
    token_type_ids = [0] * (len(pair.tokens_a) + 2) + [1] * (len(pair.tokens_b) + 1)
    input_ids, labels = mask_tokens(ids, rng, vocab_size=vocab.size, mask_id=vocab.mask_id,
                                    special_ids=vocab.special_ids, masked_lm_prob=masked_lm_prob,
                                    max_predictions_per_seq=max_predictions_per_seq, whole_word=whole_word,
                                    continuation_ids=vocab.continuation_ids)
    return {"input_ids": input_ids, "token_type_ids": token_type_ids, "labels": labels,
            "next_sentence_label": int(pair.is_random_next)}


# ------------------------------------------------------------------------------------------ stream

class PretrainingStream:
    """Endless, deterministic, resumable, sharded batches of pretraining examples.

    ``next(stream)`` gives a batch from ``collate``. ``state_dict()`` is the position (examples
    consumed); ``load_state_dict`` returns to it. Each epoch re-reads the documents and draws new
    segment boundaries, NSP partners and masks (BERT's ``dupe_factor``, done lazily).
    ``cache_tokens=True`` keeps the tokenised documents in memory after the first epoch, for corpora
    small enough (like pydoc) — then later epochs skip tokenisation.
    """

    def __init__(self, corpus: Union[str, os.PathLike, Sequence[Document], DocumentFactory], tokenizer: Any, *,
                 batch_size: int, max_seq_length: int = 128, short_seq_prob: float = 0.1,
                 masked_lm_prob: float = 0.15, max_predictions_per_seq: int = 20, whole_word_mask: bool = False,
                 buffer_documents: int = 1000, split: str = "train", heldout_every: int = 0, seed: int = 0,
                 rank: int = 0, world_size: int = 1, cache_tokens: bool = False,
                 vocab: Optional[Vocabulary] = None):
        for name, value, low in (("batch_size", batch_size, 1), ("max_seq_length", max_seq_length, 5),
                                 ("buffer_documents", buffer_documents, 1), ("world_size", world_size, 1),
                                 ("heldout_every", heldout_every, 0)):
            check_int(name, value, minimum=low)
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise InputError(f"rank must be in [0, world_size={world_size}), got {rank!r}")
        if not 0.0 <= short_seq_prob <= 1.0:
            raise InputError(f"short_seq_prob must be in [0, 1], got {short_seq_prob!r}")
        if not 0.0 < masked_lm_prob <= 1.0:
            raise InputError(f"masked_lm_prob must be in (0, 1], got {masked_lm_prob!r}")
        self.documents = corpus if callable(corpus) else document_factory(corpus)
        self.tokenizer = tokenizer
        self.vocab = vocab or Vocabulary.from_tokenizer(tokenizer)
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.short_seq_prob = short_seq_prob
        self.masked_lm_prob = masked_lm_prob
        self.max_predictions_per_seq = max_predictions_per_seq
        self.whole_word_mask = whole_word_mask
        self.buffer_documents = buffer_documents
        self.split = split
        self.heldout_every = heldout_every
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.cache_tokens = cache_tokens
        self._token_cache: Optional[list[TokenizedDocument]] = None
        self.examples_consumed = 0
        self._examples = self._generate()

    # -- the stages, lazily
    def _tokenized_documents(self) -> Iterator[TokenizedDocument]:
        if self._token_cache is not None:
            yield from self._token_cache
            return
        cache: list[TokenizedDocument] = []
        for _, document in split_documents(self.documents(), self.split, self.heldout_every,
                                           self.rank, self.world_size):
            tokenized = tokenize_document(document, self.tokenizer)
            if tokenized:
                if self.cache_tokens:
                    cache.append(tokenized)
                yield tokenized
        if self.cache_tokens:
            self._token_cache = cache

    def _chunks(self) -> Iterator[list[TokenizedDocument]]:
        chunk: list[TokenizedDocument] = []
        for document in self._tokenized_documents():
            chunk.append(document)
            if len(chunk) == self.buffer_documents:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _generate(self) -> Iterator[dict[str, Any]]:
        epoch = 0
        while True:
            rng = random.Random(f"minibert-pretraining/{self.seed}/{self.rank}/{epoch}")
            produced = 0
            previous: list[TokenizedDocument] = []
            for chunk in self._chunks():
                # A lone document (a short last chunk) borrows NSP partners from the chunk before.
                pool = chunk if len(chunk) > 1 else previous[-self.buffer_documents:] + chunk
                pairs = [pair for index in range(len(pool) - len(chunk), len(pool))
                         for pair in create_segment_pairs(pool, index, self.max_seq_length,
                                                          self.short_seq_prob, rng)]
                rng.shuffle(pairs)
                for pair in pairs:
                    produced += 1
                    yield build_example(pair, self.vocab, rng, masked_lm_prob=self.masked_lm_prob,
                                        max_predictions_per_seq=self.max_predictions_per_seq,
                                        whole_word=self.whole_word_mask)
                previous = chunk
            if produced == 0:
                raise InputError(f"the {self.split} split of rank {self.rank}/{self.world_size} holds no "
                                 "document with text: the corpus is empty, or has too few documents (separated by "
                                 "blank lines) for this many ranks")
            epoch += 1

    # -- iteration and position
    def next_example(self) -> dict[str, Any]:
        self.examples_consumed += 1
        return next(self._examples)

    def __iter__(self) -> "PretrainingStream":
        return self

    def __next__(self) -> dict[str, Tensor]:
        return collate([self.next_example() for _ in range(self.batch_size)], self.vocab.pad_id)

    def take(self, n_examples: int) -> list[dict[str, Tensor]]:
        """The next ``n_examples`` examples as a list of batches (the last one may be smaller):
        a fixed evaluation set, when called on a fresh stream of the "eval" split."""
        batches = []
        while n_examples > 0:
            size = min(self.batch_size, n_examples)
            batches.append(collate([self.next_example() for _ in range(size)], self.vocab.pad_id))
            n_examples -= size
        return batches

    def state_dict(self) -> dict[str, int]:
        return {"examples_consumed": self.examples_consumed, "seed": self.seed, "rank": self.rank,
                "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        for key in ("seed", "rank", "world_size"):
            if key in state and state[key] != getattr(self, key):
                raise InputError(f"the saved data position has {key}={state[key]}, this stream has "
                                 f"{key}={getattr(self, key)}: resume with the same settings")
        self.examples_consumed = 0
        self._examples = self._generate()
        for _ in range(int(state["examples_consumed"])):
            self.next_example()
