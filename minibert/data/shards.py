"""Pretraining examples read from a prepared folder (``minibert.data.prepare``), each one a pure
function of its global index: resuming at any step seeks straight to its place.

Three layers, each usable alone:

    PreparedCorpus   the folder, opened: manifest checked, shard checksums verified, arrays
                     memory-mapped; global numbering of documents, sentences' tokens and chunks
    ShardExamples    example ``i`` of a split (train or held-out) = f(seed, split, i)
    ShardBatches     the batches of one rank, built in ``DataLoader`` workers, with a position that
                     checkpoints (the number of batches consumed)

How example ``i`` is drawn (BERT's recipe, made random-access):

    epoch, position = divmod(i, n)            n = chunks of the split (prepare cut them)
    chunk = permutation_epoch(position)       a pseudo-random permutation evaluated at one point
    rng = Random(seed, split, i)              everything else comes from this generator:
    target length (short with short_seq_prob), A = the chunk's first sentences, B = the rest or, half
    the time (always for a one-sentence chunk), sentences of a random other document of the split;
    then truncation and masking exactly as in ``minibert.data.pretraining``.

Nothing depends on the examples before ``i``, so no example is generated twice or skipped to reach
a position. The permutation is a Feistel network (``feistel_permutation``): a shuffle of n items
that needs no array of n entries, so the cost of an example is the same at step 10 and step 10^6.

Batches and ranks. Batch ``p`` of rank ``r`` among ``w`` holds examples ``(p*w + r)*b ... + b - 1``:
ranks read disjoint examples, and ``w`` ranks with batch ``b`` see in one step the examples that one
process with batch ``b`` and ``w`` gradient-accumulation micro-batches sees, in the same order.

Unlike the text stream, the random NSP partner comes from any document of the split, not from a
chunk of neighbours, and when B is random the unused sentences of the chunk are not given back
(each chunk is drawn whole once per epoch).
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np
import torch
from torch import Tensor

from minibert.checks import check_int, read_json
from minibert.data.prepare import FORMAT, MANIFEST, SHARD_FILES, file_sha256, tokenizer_settings, vocab_sha256
from minibert.data.batches import collate
from minibert.data.pretraining import SegmentPair, Vocabulary, build_example, truncate_pair
from minibert.errors import InputError


# --------------------------------------------------------------------------------- the permutation

def feistel_permutation(index: int, n: int, key: bytes, rounds: int = 4) -> int:
    """Position ``index`` of a pseudo-random permutation of ``range(n)`` chosen by ``key``, in O(1).

    A Feistel network maps the numbers of ``2 * half`` bits one to one whatever its round function
    (here keyed BLAKE2b). Where the image falls outside ``range(n)`` the network is applied again
    ("cycle walking"): following the cycle from ``index`` must reach ``range(n)`` again, and since
    the bit width is at most 4n, that takes fewer than 4 tries on average.
    """
    half = max(1, ((n - 1).bit_length() + 1) // 2)
    mask = (1 << half) - 1
    value = index
    while True:
        left, right = value >> half, value & mask
        for round_ in range(rounds):
            digest = hashlib.blake2b(right.to_bytes(8, "little") + bytes([round_]), key=key, digest_size=8)
            left, right = right, left ^ (int.from_bytes(digest.digest(), "little") & mask)
        value = (left << half) | right
        if value < n:
            return value


# ------------------------------------------------------------------------------- prepared folder

def read_manifest(folder: Union[str, os.PathLike]) -> dict[str, Any]:
    """The manifest of a prepared folder, checked for its format (InputError otherwise)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InputError(f"{str(folder)!r} is not a prepared folder: it has no {MANIFEST} "
                         "(run `minibert prepare` first)")
    manifest = read_json(path, error=InputError)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{path} is not a {FORMAT} manifest (format: "
                         f"{manifest.get('format') if isinstance(manifest, dict) else None!r})")
    return manifest


def is_prepared(path: Union[str, os.PathLike]) -> bool:
    return (Path(path) / MANIFEST).is_file()


class PreparedCorpus:
    """A prepared folder, opened for reading.

    Checks, before any data is read: the manifest's format; that it was made with the vocabulary
    ``tokenizer`` holds (when given) and for ``max_seq_length`` (when given); that every shard file
    has the size and (``verify=True``) the SHA-256 the manifest lists. The tokenizer's settings
    (lower-casing, accents, ...) must be the folder's too. Each failure is an InputError
    naming the folder or file and the two values that differ.

    The arrays are memory-mapped on first use in each process, so the object pickles cheaply into
    ``DataLoader`` workers and the operating system's page cache is shared between them.
    """

    def __init__(self, folder: Union[str, os.PathLike], *, tokenizer: Any = None,
                 max_seq_length: Optional[int] = None, verify: bool = True):
        self.folder = Path(folder)
        self.manifest = manifest = read_manifest(self.folder)
        if tokenizer is not None and vocab_sha256(tokenizer) != manifest["vocab_sha256"]:
            raise InputError(f"{self.folder} was prepared with another vocabulary (SHA-256 "
                             f"{manifest['vocab_sha256'][:12]}..., {manifest['vocab_size']} tokens) than the one given "
                             f"({vocab_sha256(tokenizer)[:12]}..., {len(tokenizer.ids_to_tokens)} tokens): "
                             "prepare the corpus again with this vocabulary, or train with the folder's own")
        if tokenizer is not None and tokenizer_settings(tokenizer) != manifest["tokenizer"]:
            raise InputError(f"{self.folder} was prepared with the tokenizer settings {manifest['tokenizer']}, the "
                             f"tokenizer given has {tokenizer_settings(tokenizer)}: prepare the corpus again with it")
        if max_seq_length is not None and max_seq_length != manifest["max_seq_length"]:
            raise InputError(f"{self.folder} was prepared for max_seq_length={manifest['max_seq_length']}, "
                             f"not {max_seq_length}: its chunks are cut for that length; run `minibert prepare "
                             f"--max-seq-length {max_seq_length}` into another folder")
        self.shards = manifest["shards"]
        if not self.shards or manifest["totals"]["documents"] == 0:
            raise InputError(f"{self.folder} holds no documents")
        for shard in self.shards:
            self._check_shard(shard, verify)
        counts = lambda key: np.concatenate([[0], np.cumsum([s[key] for s in self.shards])]).astype(np.int64)
        self.document_base = counts("documents")   # (n_shards + 1,) first global document of each shard
        self.chunk_base = counts("chunks")         # (n_shards + 1,) first global chunk of each shard
        self.max_seq_length = int(manifest["max_seq_length"])
        self._arrays: Optional[list[dict[str, np.ndarray]]] = None

    def _check_shard(self, shard: dict[str, Any], verify: bool) -> None:
        for name in SHARD_FILES:
            path = self.folder / "shards" / shard["name"] / name
            expected = shard["files"][name]
            if not path.is_file():
                raise InputError(f"shard file {path} listed in {self.folder / MANIFEST} is missing")
            if path.stat().st_size != expected["bytes"]:
                raise InputError(f"shard file {path} has {path.stat().st_size} bytes, the manifest says "
                                 f"{expected['bytes']}: it is truncated or was changed; prepare again")
            if verify and file_sha256(path) != expected["sha256"]:
                raise InputError(f"shard file {path} fails its checksum (SHA-256 {file_sha256(path)[:12]}..., "
                                 f"the manifest says {expected['sha256'][:12]}...): it is corrupted; prepare again")

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None}   # workers map the files themselves

    @property
    def arrays(self) -> list[dict[str, np.ndarray]]:
        if self._arrays is None:
            self._arrays = [{name.removesuffix(".npy"): np.load(self.folder / "shards" / s["name"] / name,
                                                                 mmap_mode="r", allow_pickle=False)
                             for name in SHARD_FILES} for s in self.shards]
        return self._arrays

    @property
    def n_documents(self) -> int:
        return int(self.document_base[-1])

    @property
    def n_chunks(self) -> int:
        return int(self.chunk_base[-1])

    # -- lookups by global number; every one costs two binary searches at most
    def chunk(self, chunk: int) -> tuple[int, int, list[np.ndarray]]:
        """(global document, shard, the chunk's sentences as arrays of token ids)."""
        shard = int(np.searchsorted(self.chunk_base, chunk, side="right")) - 1
        arrays = self.arrays[shard]
        local = chunk - int(self.chunk_base[shard])
        first, end = int(arrays["chunks"][local]), int(arrays["chunks"][local + 1])
        document = int(np.searchsorted(arrays["documents"], first, side="right")) - 1
        return int(self.document_base[shard]) + document, shard, self._sentences(arrays, first, end)

    def document(self, document: int) -> list[np.ndarray]:
        """The sentences of a global document, as arrays of token ids."""
        shard = int(np.searchsorted(self.document_base, document, side="right")) - 1
        arrays = self.arrays[shard]
        local = document - int(self.document_base[shard])
        return self._sentences(arrays, int(arrays["documents"][local]), int(arrays["documents"][local + 1]))

    @staticmethod
    def _sentences(arrays: dict[str, np.ndarray], first: int, end: int) -> list[np.ndarray]:
        bounds = arrays["sentences"][first:end + 1].tolist()
        tokens = arrays["tokens"]
        return [tokens[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def chunk_documents(self) -> np.ndarray:
        """The global document of every chunk, (n_chunks,) int64 (for splitting by document)."""
        return np.concatenate([np.searchsorted(a["documents"], a["chunks"][:-1], side="right") - 1 + base
                               for a, base in zip(self.arrays, self.document_base[:-1].tolist())])


# -------------------------------------------------------------------------------------- examples

def is_heldout(document: int, heldout_every: int) -> bool:
    """Documents 0, n, 2n, ... are held out for evaluation (as in ``split_documents``)."""
    return heldout_every > 0 and document % heldout_every == 0


class ShardExamples:
    """Example ``i`` of one split of a prepared corpus, as a pure function of (seed, split, i)."""

    def __init__(self, corpus: PreparedCorpus, vocab: Vocabulary, *, split: str = "train", heldout_every: int = 0,
                 seed: int = 0, short_seq_prob: float = 0.1, masked_lm_prob: float = 0.15,
                 max_predictions_per_seq: int = 20, whole_word_mask: bool = False):
        if split not in ("train", "eval"):
            raise InputError(f"split must be 'train' or 'eval', got {split!r}")
        check_int("heldout_every", heldout_every, minimum=1 if split == "eval" else 0)
        self.corpus, self.vocab, self.split, self.seed = corpus, vocab, split, seed
        self.heldout_every = heldout_every
        self.short_seq_prob, self.masked_lm_prob = short_seq_prob, masked_lm_prob
        self.max_predictions_per_seq, self.whole_word_mask = max_predictions_per_seq, whole_word_mask
        heldout = corpus.chunk_documents() % heldout_every == 0 if heldout_every else None
        in_split = np.ones(corpus.n_chunks, bool) if heldout is None else (heldout if split == "eval" else ~heldout)
        # The split's chunks, in corpus order: 8 bytes per chunk, the one index this class keeps.
        self.chunks = np.flatnonzero(in_split)                                    # (n,) int64
        n_documents = len(np.unique(corpus.chunk_documents()[self.chunks]))
        if n_documents < 2:
            raise InputError(f"the {split} split of {corpus.folder} holds {n_documents} document(s); next-sentence "
                             "pairs need at least two (a bigger corpus, or another --heldout-every)")
        self.materialised = 0  # examples built by this object: what a seek costs

    def __len__(self) -> int:
        """Chunks of the split: examples per epoch."""
        return len(self.chunks)

    def _rng(self, index: int) -> random.Random:
        return random.Random(f"minibert-shards/{self.seed}/{self.split}/{index}")

    def chunk_of(self, index: int) -> int:
        """The global chunk example ``index`` is made from: a new permutation of the split each epoch."""
        epoch, position = divmod(index, len(self.chunks))
        key = hashlib.blake2b(f"{self.seed}/{self.split}/{epoch}".encode(), digest_size=16).digest()
        return int(self.chunks[feistel_permutation(position, len(self.chunks), key)])

    def _random_document(self, own: int, rng: random.Random) -> list[np.ndarray]:
        """Sentences of a document of the split other than ``own`` (rejection: a few tries on average)."""
        n = self.corpus.n_documents
        while True:
            document = rng.randrange(n)
            if document != own and is_heldout(document, self.heldout_every) == (self.split == "eval"):
                sentences = self.corpus.document(document)
                if sentences:
                    return sentences

    def example(self, index: int) -> dict[str, Any]:
        """Example ``index``: [CLS] A [SEP] B [SEP], masked, as plain lists (see ``build_example``)."""
        self.materialised += 1
        rng = self._rng(index)
        document, _, sentences = self.corpus.chunk(self.chunk_of(index))
        max_tokens = self.corpus.max_seq_length - 3
        target = rng.randint(2, max_tokens) if rng.random() < self.short_seq_prob else max_tokens
        taken, length = [], 0
        for sentence in sentences:   # a shorter target keeps the chunk's first sentences only
            taken.append(sentence)
            length += len(sentence)
            if length >= target:
                break
        a_end = rng.randint(1, len(taken) - 1) if len(taken) >= 2 else 1
        tokens_a = [int(t) for sentence in taken[:a_end] for t in sentence]
        is_random_next = len(taken) == 1 or rng.random() < 0.5
        if is_random_next:
            other = self._random_document(document, rng)
            tokens_b: list[int] = []
            for sentence in other[rng.randrange(len(other)):]:
                tokens_b.extend(int(t) for t in sentence)
                if len(tokens_b) >= max(1, target - len(tokens_a)):
                    break
        else:
            tokens_b = [int(t) for sentence in taken[a_end:] for t in sentence]
        truncate_pair(tokens_a, tokens_b, max_tokens, rng)
        return build_example(SegmentPair(tokens_a, tokens_b, is_random_next), self.vocab, rng,
                             masked_lm_prob=self.masked_lm_prob, max_predictions_per_seq=self.max_predictions_per_seq,
                             whole_word=self.whole_word_mask)

    def batches(self, n_examples: int, batch_size: int) -> list[dict[str, Tensor]]:
        """Examples 0 .. n_examples - 1 as batches: a fixed evaluation set."""
        return [collate([self.example(i) for i in range(start, min(start + batch_size, n_examples))],
                        self.vocab.pad_id) for start in range(0, n_examples, batch_size)]


# --------------------------------------------------------------------------------------- batches

class _BatchAt(torch.utils.data.Dataset):
    """Map-style view for ``DataLoader``: item ``p`` is this rank's batch number ``p``."""

    def __init__(self, batches: "ShardBatches"):
        self.batches = batches

    def __getitem__(self, position: int) -> dict[str, Tensor]:
        return self.batches.batch(position)


class ShardBatches:
    """This rank's endless batches of ``examples``, with a position that checkpoints.

    ``num_workers > 0`` builds them in ``DataLoader`` worker processes, ``prefetch`` batches ahead
    each, so the training loop finds them ready; ``wait_seconds`` adds up the time ``next`` waited.
    ``load_state_dict`` only sets the position: the next batch is built from its index.
    """

    def __init__(self, examples: ShardExamples, *, batch_size: int, rank: int = 0, world_size: int = 1,
                 num_workers: int = 0, prefetch: int = 4):
        for name, value, low in (("batch_size", batch_size, 1), ("world_size", world_size, 1),
                                 ("num_workers", num_workers, 0), ("prefetch", prefetch, 1)):
            check_int(name, value, minimum=low)
        check_int("rank", rank, minimum=0, maximum=world_size - 1)
        self.examples, self.batch_size, self.rank, self.world_size = examples, batch_size, rank, world_size
        self.num_workers, self.prefetch = num_workers, prefetch
        self.position = 0            # batches consumed
        self.wait_seconds = 0.0      # time spent in next(), waiting for data
        self._loader: Optional[Iterator[dict[str, Tensor]]] = None

    def example_indices(self, position: int) -> range:
        """The global example indices of this rank's batch ``position``."""
        first = (position * self.world_size + self.rank) * self.batch_size
        return range(first, first + self.batch_size)

    def batch(self, position: int) -> dict[str, Tensor]:
        return collate([self.examples.example(i) for i in self.example_indices(position)], self.examples.vocab.pad_id)

    def _start_loader(self) -> Iterator[dict[str, Tensor]]:
        if self.num_workers == 0:
            return (self.batch(p) for p in range(self.position, 2**62))
        # A generator of its own: by default DataLoader draws its workers' seeds from torch's global
        # generator, which would shift the training's dropout masks (the examples need no seed).
        loader = torch.utils.data.DataLoader(_BatchAt(self), batch_size=None, sampler=range(self.position, 2**62),
                                             num_workers=self.num_workers, prefetch_factor=self.prefetch,
                                             generator=torch.Generator().manual_seed(0))
        return iter(loader)

    def __iter__(self) -> "ShardBatches":
        return self

    def __next__(self) -> dict[str, Tensor]:
        started = time.perf_counter()
        if self._loader is None:
            self._loader = self._start_loader()
        batch = next(self._loader)
        self.position += 1
        self.wait_seconds += time.perf_counter() - started
        return batch

    def close(self) -> None:
        """Stop the workers (they stop by themselves when this object is garbage)."""
        self._loader = None

    def state_dict(self) -> dict[str, Any]:
        return {"batches_consumed": self.position, "seed": self.examples.seed, "rank": self.rank,
                "world_size": self.world_size, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("seed", "rank", "world_size", "batch_size"):
            mine = self.examples.seed if key == "seed" else getattr(self, key)
            if key in state and state[key] != mine:
                raise InputError(f"the saved data position has {key}={state[key]}, these batches have "
                                 f"{key}={mine}: resume with the same settings")
        if "batches_consumed" not in state:
            raise InputError(f"the saved data position {state!r} is not one of prepared-folder batches "
                             "(was the run started from a text corpus?)")
        self.position = int(state["batches_consumed"])
        self._loader = None   # the next batch is built from the new position, nothing is replayed
