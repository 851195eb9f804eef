"""Train a WordPiece vocabulary on a corpus, so that BERT can be pretrained from scratch on new text.

The result is a WordPiece vocabulary (``##`` continuation pieces, read by ``WordpieceTokenizer``'s
greedy longest match). By default it is learned with **BPE's merge rule**: merge the most frequent
adjacent pair of pieces. WordPiece's own rule, which ranks pairs by likelihood gain, is an option. The steps:

1. Pre-tokenise with ``BasicTokenizer`` (the tokenizer's own first stage: lower-casing, accents,
   punctuation), and count the words.
2. Write each word as characters, the first as it is and the others with the continuation prefix:
   ``"hello" -> h ##e ##l ##l ##o``. The characters are the initial vocabulary, so every word made of
   known characters can be tokenised without ``[UNK]``.
3. Repeatedly merge the best adjacent pair of pieces, among the pairs seen at least
   ``min_frequency`` times, until the vocabulary has ``vocab_size`` entries. Two scores are offered:

       "frequency"   score(a, b) = count(a b)                          (BPE's merge rule; the default)
       "likelihood"  score(a, b) = count(a b) / (count(a) * count(b))  (WordPiece's likelihood gain)

   The likelihood score prefers pairs whose parts rarely occur apart; on a small corpus it spends
   the vocabulary on rare long words and numbers before common words ("the" stays "th ##e" for a
   long time, because "##e" is everywhere), so the frequency score is the default, as in the
   WordPiece trainer of Hugging Face's ``tokenizers``.

Counts are updated incrementally (only the words that contain the merged pair are re-counted), and
the best pair comes from a heap with lazy deletion: an entry is pushed whenever a pair's score
changes, and entries whose stored score is no longer the pair's current score are skipped.

Layout of the result: ``[PAD] [UNK] [CLS] [SEP] [MASK]`` at ids 0-4 ([PAD] must be 0, BERT's padding
id), then the characters, then the merged pieces in the order they were learned. ``BertTokenizer``
finds the special tokens by name, so this small-vocabulary layout loads like BERT's own.
"""

from __future__ import annotations

import argparse
import heapq
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

from minibert.data.corpus import open_corpus, read_lines, text_files
from minibert.errors import InputError, InputTypeError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CONTINUATION = "##"
MAX_WORD_CHARS = 100  # longer words become [UNK] in WordpieceTokenizer anyway: not worth learning

TextOrPath = Union[str, os.PathLike]


def _lines(texts_or_files: Union[TextOrPath, Iterable[TextOrPath]]) -> Iterator[str]:
    """Strings are text; ``os.PathLike`` objects are files or folders of ``.txt`` files, read line by line
    (``minibert.data.corpus.read_lines``: UTF-8 text only)."""
    if isinstance(texts_or_files, (str, os.PathLike)):
        texts_or_files = [texts_or_files]
    for item in texts_or_files:
        if isinstance(item, os.PathLike):
            path = Path(item)
            if not path.exists():
                raise InputError(f"vocabulary training input {str(path)!r} does not exist")
            for file in text_files(path):
                yield from read_lines(file)
        elif isinstance(item, str):
            yield item
        else:
            raise InputTypeError(f"texts_or_files must hold str (text) or os.PathLike (files), "
                                 f"got {type(item).__name__}")


def count_words(texts_or_files: Union[TextOrPath, Iterable[TextOrPath]], lowercase: bool = True) -> Counter:
    """Word frequencies after ``BasicTokenizer`` pre-tokenisation."""
    from minibert.tokenizer.fast import CachedBasicTokenizer

    basic = CachedBasicTokenizer(do_lower_case=lowercase)  # BasicTokenizer's tokens, faster on a corpus
    counts: Counter = Counter()
    for line in _lines(texts_or_files):
        counts.update(basic.tokenize(line))
    return counts


class _PairCounts:
    """Adjacent-piece statistics of the corpus, kept up to date as pieces merge."""

    def __init__(self, words: list[list[str]], freqs: list[int], track_piece_counts: bool):
        # With the likelihood score, a pair's score also changes when one of its pieces' counts does.
        self.track_piece_counts = track_piece_counts
        self.words = words                                   # each word as its current pieces
        self.freqs = freqs                                   # how often each word occurs
        self.piece_count: Counter = Counter()                # piece -> occurrences in the corpus
        self.pair_count: Counter = Counter()                 # (a, b) -> occurrences
        self.words_with: dict = defaultdict(set)             # (a, b) -> indices of words holding it
        self.pairs_with: dict = defaultdict(set)             # piece -> pairs it is part of
        for index in range(len(words)):
            self._add_word(index, +1)

    def _add_word(self, index: int, sign: int) -> set:
        """Add (sign=+1) or remove (sign=-1) one word's pieces and pairs; return the pairs touched."""
        pieces, freq = self.words[index], self.freqs[index] * sign
        for piece in pieces:
            self.piece_count[piece] += freq
        touched = set()
        for pair in zip(pieces, pieces[1:]):
            self.pair_count[pair] += freq
            touched.add(pair)
            if sign > 0:
                self.words_with[pair].add(index)
                self.pairs_with[pair[0]].add(pair)
                self.pairs_with[pair[1]].add(pair)
            elif self.pair_count[pair] == 0:
                del self.pair_count[pair], self.words_with[pair]
                self.pairs_with[pair[0]].discard(pair)
                self.pairs_with[pair[1]].discard(pair)
            else:
                self.words_with[pair].discard(index)
        return touched

    def score(self, pair: tuple[str, str], kind: str) -> float:
        if kind == "frequency":
            return float(self.pair_count[pair])
        a, b = pair
        return self.pair_count[pair] / (self.piece_count[a] * self.piece_count[b])

    def merge(self, pair: tuple[str, str]) -> tuple[str, set]:
        """Replace every occurrence of ``a b`` by the joined piece; return it and the pairs whose score
        may have changed (their count changed, or the count of one of their pieces did)."""
        a, b = pair
        joined = a + b[len(CONTINUATION):]
        before = Counter({a: self.piece_count[a], b: self.piece_count[b]})
        changed = set()
        for index in list(self.words_with[pair]):
            changed |= self._add_word(index, -1)
            pieces, merged, i = self.words[index], [], 0
            while i < len(pieces):
                if i + 1 < len(pieces) and pieces[i] == a and pieces[i + 1] == b:
                    merged.append(joined)
                    i += 2
                else:
                    merged.append(pieces[i])
                    i += 1
            self.words[index] = merged
            changed |= self._add_word(index, +1)
        if self.track_piece_counts:
            for piece in (a, b, joined):
                if piece in before and self.piece_count[piece] == before[piece]:
                    continue
                changed |= self.pairs_with[piece]
        return joined, {p for p in changed if p in self.pair_count}


def train_wordpiece(texts_or_files: Union[TextOrPath, Iterable[TextOrPath]], vocab_size: int,
                    min_frequency: int = 2, lowercase: bool = True, score: str = "frequency") -> list[str]:
    """Learn a WordPiece vocabulary of at most ``vocab_size`` tokens; returns the tokens, index = id.

    ``texts_or_files``: text (``str``), files or folders (``pathlib.Path``), or an iterable of them.
    ``min_frequency``: a pair of pieces must occur this often to be merged.
    ``lowercase``: lower-case (and strip accents) first, for an uncased model; must match the
    tokenizer's ``do_lower_case`` when the vocabulary is used.
    ``score``: "frequency" (BPE-style, default) or "likelihood" (see the module docstring).
    """
    if score not in ("frequency", "likelihood"):
        raise InputError(f"score must be 'frequency' or 'likelihood', got {score!r}")
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size <= len(SPECIAL_TOKENS):
        raise InputError(f"vocab_size must be an integer > {len(SPECIAL_TOKENS)}, got {vocab_size!r}")
    if not isinstance(min_frequency, int) or min_frequency < 1:
        raise InputError(f"min_frequency must be a positive integer, got {min_frequency!r}")
    word_counts = count_words(texts_or_files, lowercase)
    word_counts = {w: c for w, c in word_counts.items() if len(w) <= MAX_WORD_CHARS}
    if not word_counts:
        raise InputError("no words to learn a vocabulary from: the input is empty")

    words = [[w[0]] + [CONTINUATION + ch for ch in w[1:]] for w in word_counts]
    stats = _PairCounts(words, list(word_counts.values()), track_piece_counts=score == "likelihood")

    initials = sorted({p for p in stats.piece_count if not p.startswith(CONTINUATION)})
    continuations = sorted({p for p in stats.piece_count if p.startswith(CONTINUATION)})
    vocab = list(SPECIAL_TOKENS) + initials + continuations
    if len(vocab) > vocab_size:
        raise InputError(f"vocab_size={vocab_size} is too small: the corpus has {len(vocab) - len(SPECIAL_TOKENS)} "
                         f"distinct characters (as initial and continuation pieces) plus {len(SPECIAL_TOKENS)} "
                         "special tokens")
    known = set(vocab)

    # Max-heap of (-score, pair); ties go to the alphabetically first pair, for determinism.
    heap = [(-stats.score(p, score), p) for p, n in stats.pair_count.items() if n >= min_frequency]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        negative_score, pair = heapq.heappop(heap)
        if stats.pair_count.get(pair, 0) < min_frequency or stats.score(pair, score) != -negative_score:
            continue  # stale entry: the pair's current score was pushed again when it changed
        joined, changed = stats.merge(pair)
        if joined not in known:
            known.add(joined)
            vocab.append(joined)
        for p in changed:
            if stats.pair_count[p] >= min_frequency:
                heapq.heappush(heap, (-stats.score(p, score), p))
    return vocab


def save_vocab(tokens: Sequence[str], path: Union[str, os.PathLike], do_lower_case: bool = True) -> Path:
    """Write a vocabulary. ``path`` ending in ``.txt`` is the file itself; anything else is a folder that
    receives ``vocab.txt`` and ``tokenizer_config.json`` (so ``BertTokenizer.from_pretrained(folder)``
    gets ``do_lower_case`` right). Written atomically. Returns the path of vocab.txt."""
    from minibert.checkpoints.hf import _atomic_write

    if not tokens or len(set(tokens)) != len(tokens):
        raise InputError("tokens must be a non-empty list without duplicates")
    for token in tokens:
        if not isinstance(token, str) or not token or any(ch in token for ch in "\r\n"):
            raise InputError(f"vocabulary token {token!r} is not a non-empty single-line string")
    path = Path(path)
    folder = path.parent if path.suffix == ".txt" else path
    vocab_file = path if path.suffix == ".txt" else path / "vocab.txt"
    folder.mkdir(parents=True, exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write("".join(token + "\n" for token in tokens))

    _atomic_write(vocab_file, write)
    if path.suffix != ".txt":
        from minibert.tokenizer import BertTokenizer

        BertTokenizer(vocab_file, do_lower_case=do_lower_case).save_pretrained(folder)
    return vocab_file


# ------------------------------------------------------------------------------------------- CLI

def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    """The ``train-vocab`` command's options (fills ``parser`` when given, e.g. a sub-command's)."""
    if parser is None:
        parser = argparse.ArgumentParser(prog="python -m minibert.data.vocab",
                                         description="Train a WordPiece vocabulary (vocab.txt) on a corpus.")
    parser.add_argument("inputs", nargs="+",
                        help="text files or folders of .txt files, or 'pydoc' for the pydoc_data.topics corpus")
    parser.add_argument("-o", "--output", required=True,
                        help="vocab.txt to write, or a folder (gets vocab.txt and tokenizer_config.json)")
    parser.add_argument("--vocab-size", type=int, default=8000, help="number of tokens, specials included")
    parser.add_argument("--min-frequency", type=int, default=2, help="least count of a pair to merge it")
    parser.add_argument("--score", choices=("frequency", "likelihood"), default="frequency",
                        help="how pairs of pieces are ranked for merging (see minibert.data.vocab)")
    parser.add_argument("--cased", action="store_true", help="keep case and accents (default: lower-case)")
    return parser


def corpus_inputs(inputs: Sequence[str]) -> Iterator[str]:
    """Command-line inputs (files, folders of .txt files, or 'pydoc') -> their sentences, streamed
    through ``minibert.data.corpus.open_corpus``, the reader pretraining uses."""
    corpora = [open_corpus(item) for item in inputs]  # every input checked before the first is read
    for corpus in corpora:
        for document in corpus.documents():
            yield from document


def main(argv: Union[Sequence[str], argparse.Namespace, None] = None) -> int:
    """Train a vocabulary from the command line (``minibert train-vocab``) and write vocab.txt."""
    args = argv if isinstance(argv, argparse.Namespace) else build_parser().parse_args(argv)
    tokens = train_wordpiece(corpus_inputs(args.inputs), args.vocab_size, args.min_frequency,
                             lowercase=not args.cased, score=args.score)
    path = save_vocab(tokens, args.output, do_lower_case=not args.cased)
    print(f"wrote {len(tokens)} tokens to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
