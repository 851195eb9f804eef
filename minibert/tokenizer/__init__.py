"""BERT's WordPiece tokenizer, written from the rules up, id for id with the reference.

A BERT model only ever sees integers, so the tokenizer decides what the model can learn from a
text. The checkpoints we load were trained with one particular tokenizer (Google's original, which
transformers' pure-Python ``BertTokenizer`` reproduces); any deviation, however small, hands the
model ids it never saw in that context. That is why this module aims at *exact* agreement, and why
every rule below is stated precisely, odd corners included.

The pipeline, in order
----------------------
1. **Special tokens first.** ``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]`` and ``[MASK]`` typed in the
   text are cut out before anything else and kept whole. The pieces between them are tokenized
   independently (so Unicode normalisation never reaches across a special token).
2. **Cleaning.** NUL, U+FFFD (the replacement character) and every control or format character
   (Unicode category ``C*``: ``Cc``, ``Cf``, ``Cs``, ``Co``, ``Cn``) are deleted, except tab, newline
   and carriage return, which become spaces together with every ``Zs`` space separator. Deleting
   (rather than spacing) means ``"a\\u200bb"`` is the single word ``"ab"``.
3. **CJK spacing.** Each CJK ideograph (eight fixed code-point blocks) gets a space on each side,
   so it becomes a word of its own: Chinese has no spaces between words, so BERT treats every
   ideograph as one.
4. **NFC.** The text is put in canonical composed form, so ``"e" + U+0301`` and ``"é"`` are the same
   word. Then it is split on whitespace (``str.split``, which also splits on U+2028 and U+2029).
5. **Case and accents, per word.** Unless the word is in ``never_split``, it is lowercased
   (``str.lower``: full Unicode case mapping, including the word-final sigma) when ``do_lower_case``;
   accents are stripped (NFD, then drop every non-spacing mark, category ``Mn``) when
   ``strip_accents`` is true, or when it is ``None`` and ``do_lower_case`` is on.
6. **Punctuation split.** Every punctuation character becomes a token of its own. "Punctuation" is
   Unicode category ``P*`` plus *every* ASCII character that is neither a letter nor a digit
   (``$``, ``+``, ``^``, ``|`` ... are symbols to Unicode but punctuation to BERT).
7. **WordPiece.** Each resulting token is cut greedily, longest vocabulary match first, from the
   left; pieces after the first carry the ``##`` prefix. A token with more than 100 characters, or
   with any stretch no vocabulary entry covers, becomes ``[UNK]`` as a whole.

Finally ``[CLS] A [SEP]`` (or ``[CLS] A [SEP] B [SEP]`` with token types 0 then 1) is built, then
truncated and padded as asked.

Why it is fast without leaving Python
-------------------------------------
Almost all the per-character work happens inside C routines of the standard library:

* cleaning is ``str.translate`` with a lazily filled code-point table (and, for pure-ASCII text,
  just a regular-expression check that there is nothing to delete);
* word splitting is ``str.split``; NFC is ``unicodedata.normalize``, which returns at once for text
  that is already composed;
* steps 5-7 depend only on the word, and natural text repeats its words all the time, so the whole
  result (tokens and ids) is cached per word. A cache hit costs one dictionary lookup.

The slower, per-character path is only taken to compute character offsets
(``return_offsets_mapping=True``), which the pure-Python reference cannot do at all.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import unicodedata
import warnings
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

from minibert.errors import CheckpointError, CheckpointNotFoundError, InputError, InputTypeError

__all__ = ["BasicTokenizer", "WordpieceTokenizer", "BertTokenizer", "BatchEncoding"]

# ---------------------------------------------------------------------------------------------
# Character classes
# ---------------------------------------------------------------------------------------------

#: The code-point blocks BERT calls "Chinese characters" (CJK Unified Ideographs, extensions A-E
#: and the two compatibility blocks). Hangul, Hiragana and Katakana are *not* in the list: those
#: scripts separate words with spaces, so they are tokenized like any other alphabet.
CJK_RANGES: Tuple[Tuple[int, int], ...] = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_cjk(cp: int) -> bool:
    """True for a code point in one of the CJK ideograph blocks of :data:`CJK_RANGES`."""
    for lo, hi in CJK_RANGES:
        if lo <= cp <= hi:
            return True
    return False


def is_whitespace(ch: str) -> bool:
    """Space, tab, newline, carriage return, or any ``Zs`` space separator (NBSP, EN SPACE...)."""
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_control(ch: str) -> bool:
    """Any ``C*`` category character except tab, newline and carriage return (those are spaces)."""
    return ch not in "\t\n\r" and unicodedata.category(ch)[0] == "C"


def is_punctuation(ch: str) -> bool:
    """Unicode punctuation (``P*``), or any printable ASCII character that is not a letter or digit."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch)[0] == "P"


class _CleanTable(dict):
    """A ``str.translate`` table for steps 2-3, filled one code point at a time on first sight.

    A full table would need an entry for each of the 1.1 million code points (most of them
    unassigned, hence "control" and deleted). Instead, ``__missing__`` classifies a code point the
    first time ``str.translate`` asks and remembers the answer, so the dictionary only ever holds
    the characters that actually occurred.
    """

    def __init__(self, space_cjk: bool):
        super().__init__()
        self.space_cjk = space_cjk

    def __missing__(self, cp: int):
        ch = chr(cp)
        if cp == 0 or cp == 0xFFFD or is_control(ch):
            value: Any = None  # delete
        elif is_whitespace(ch):
            value = " "
        elif self.space_cjk and is_cjk(cp):
            value = f" {ch} "
        else:
            value = cp  # keep unchanged
        self[cp] = value
        return value


class _WordTable(dict):
    """A ``str.translate`` table for step 6 (and the "drop ``Mn``" half of accent stripping).

    Punctuation ``p`` maps to ``" p "`` so that a following ``str.split`` separates it; with
    ``drop_marks`` every non-spacing mark is deleted. Deleting marks and spacing punctuation are
    both decisions about one character at a time, so one table can do both in a single pass.
    """

    def __init__(self, drop_marks: bool):
        super().__init__()
        self.drop_marks = drop_marks

    def __missing__(self, cp: int):
        ch = chr(cp)
        if self.drop_marks and unicodedata.category(ch) == "Mn":
            value: Any = None
        elif is_punctuation(ch):
            value = f" {ch} "
        else:
            value = cp
        self[cp] = value
        return value


# Shared by all tokenizers: the classification of a character never depends on the vocabulary.
_CLEAN = {True: _CleanTable(space_cjk=True), False: _CleanTable(space_cjk=False)}
_WORD = {True: _WordTable(drop_marks=True), False: _WordTable(drop_marks=False)}

# In ASCII text the only characters cleaning deletes are these C0 controls and DEL; tab, newline
# and carriage return are left for ``str.split``, which treats them as spaces anyway.
_ASCII_DELETED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# ---------------------------------------------------------------------------------------------
# Basic tokenizer: steps 2-6
# ---------------------------------------------------------------------------------------------


class BasicTokenizer:
    """Cleaning, CJK spacing, NFC, case folding, accent stripping and punctuation splitting.

    ``strip_accents`` follows the reference: ``None`` means "strip when lowercasing", ``True``
    strips even without lowercasing, ``False`` never strips. Words in ``never_split`` are kept
    exactly as written (no lowercasing, no punctuation split).
    """

    def __init__(
        self,
        do_lower_case: bool = True,
        never_split: Optional[Iterable[str]] = None,
        tokenize_chinese_chars: bool = True,
        strip_accents: Optional[bool] = None,
    ):
        self.do_lower_case = bool(do_lower_case)
        self.never_split = set(never_split or ())
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.strip_accents = strip_accents
        # The reference's rule, reduced to one flag.
        self.strips = bool(strip_accents) or (self.do_lower_case and strip_accents is not False)
        self._clean_table = _CLEAN[self.tokenize_chinese_chars]
        self._word_table = _WORD[self.strips]

    # -- whole text -------------------------------------------------------------------------

    def clean(self, text: str) -> str:
        """Steps 2-4 up to the whitespace split: delete, space, compose."""
        if text.isascii():
            # ASCII has no CJK, nothing to compose, and usually nothing to delete.
            return _ASCII_DELETED.sub("", text) if _ASCII_DELETED.search(text) else text
        return unicodedata.normalize("NFC", text.translate(self._clean_table))

    def words(self, text: str) -> List[str]:
        """The whitespace-separated words of the cleaned text."""
        return self.clean(text).split()

    # -- one word ---------------------------------------------------------------------------

    def normalize_word(self, word: str) -> str:
        """Step 5 for one word that is not in ``never_split``: lowercase, then NFD if stripping."""
        if self.do_lower_case:
            word = word.lower()
        if self.strips and not word.isascii():
            word = unicodedata.normalize("NFD", word)
        return word

    def split_word(self, word: str, never_split: Optional[set] = None) -> List[str]:
        """Steps 5-6 for one word: the basic tokens it becomes (possibly none, e.g. a lone accent)."""
        keep = self.never_split if never_split is None else never_split
        if word in keep:
            return [word]
        word = self.normalize_word(word)
        if word in keep:  # the reference checks again after case folding, before splitting
            return [word]
        return word.translate(self._word_table).split()

    def tokenize(self, text: str, never_split: Optional[Iterable[str]] = None) -> List[str]:
        """Basic tokens of ``text`` (no WordPiece). ``never_split`` adds to the constructor's set."""
        _check_text(text, "text")
        keep = self.never_split | set(never_split) if never_split else self.never_split
        return [tok for word in self.words(text) for tok in self.split_word(word, keep)]

    # -- with offsets -----------------------------------------------------------------------

    def tokenize_with_offsets(
        self, text: str, never_split: Optional[Iterable[str]] = None, start: int = 0, end: Optional[int] = None
    ) -> List[Tuple[str, List[Tuple[int, int]]]]:
        """Basic tokens of ``text[start:end]``, each with the original span of every one of its characters.

        Returns ``(token, spans)`` pairs where ``spans[k]`` is the ``(begin, end)`` slice of ``text``
        that produced ``token[k]``. Usually that is one original character, but normalisation can
        merge characters (``e`` + combining acute -> ``é``) or expand one (``İ`` -> ``i`` + dot),
        in which case every output character of the group gets the span of the whole group.

        The tokens are exactly those of :meth:`tokenize`; only the bookkeeping is extra, and it is
        done per character in Python, so this is several times slower than :meth:`tokenize`.
        """
        keep = self.never_split | set(never_split) if never_split else self.never_split
        end = len(text) if end is None else end
        out: List[Tuple[str, List[Tuple[int, int]]]] = []
        with _gc_paused():
            for word, positions in self._words_with_positions(text, start, end):
                out.extend(self._split_word_with_spans(word, positions, keep))
        return out

    def _words_with_positions(self, text: str, start: int, end: int):
        """Yield ``(word, positions)``: each cleaned, not yet composed word and where its characters came from."""
        table = self._clean_table
        chars: List[str] = []
        positions: List[int] = []
        for i in range(start, end):
            ch = text[i]
            mapped = table[ord(ch)]
            if mapped is None:
                continue  # deleted by cleaning
            if mapped == " " or ch.isspace():  # whitespace, or U+2028/U+2029 which str.split honours
                if chars:
                    yield "".join(chars), positions
                    chars, positions = [], []
            elif isinstance(mapped, str):  # a spaced CJK ideograph: a word on its own
                if chars:
                    yield "".join(chars), positions
                    chars, positions = [], []
                yield ch, [i]
            else:
                chars.append(ch)
                positions.append(i)
        if chars:
            yield "".join(chars), positions

    def _split_word_with_spans(self, raw: str, positions: List[int], keep: set):
        """Steps 4-6 for one word, carrying original spans through every normalisation."""
        if raw.isascii():
            # ASCII: NFC and accent stripping are no-ops and lower() maps one character to one.
            word = raw
            spans = [(p, p + 1) for p in positions]
            if word in keep:
                return [(word, spans)]
            if self.do_lower_case:
                word = word.lower()
            if word in keep:
                return [(word, spans)]
        else:
            word, spans, kept = self._normalize_with_spans(raw, positions, keep)
            if kept or word in keep:  # in never_split: no (further) normalisation, no punctuation split
                return [(word, spans)]
        # Step 6 on the normalized word, keeping the per-character spans aligned.
        table = self._word_table
        tokens = []
        current: List[str] = []
        cur_spans: List[Tuple[int, int]] = []
        for ch, span in zip(word, spans):
            mapped = table[ord(ch)]
            if mapped is None:
                continue
            if isinstance(mapped, str) and mapped != ch:  # punctuation: a token of its own
                if current:
                    tokens.append(("".join(current), cur_spans))
                    current, cur_spans = [], []
                tokens.append((ch, [span]))
            else:
                current.append(ch)
                cur_spans.append(span)
        if current:
            tokens.append(("".join(current), cur_spans))
        return tokens

    def _normalize_with_spans(self, raw: str, positions: List[int], keep: set):
        """NFC, lowercasing and NFD of a non-ASCII word, with a span for each output character.

        The word is cut into *clusters* at points where normalisation provably does not look
        across: before a character whose composed form would not merge with the character before
        it. Each cluster is normalised on its own and all its output characters get the cluster's
        span. If, against expectation, the clusters do not reproduce the normalisation of the
        whole word, the whole word becomes one cluster: coarser spans, never different tokens.
        """
        nfc = unicodedata.normalize
        clusters: List[Tuple[str, int, int]] = []  # (text, first position, last position)
        begin = 0
        for k in range(1, len(raw) + 1):
            if k == len(raw) or _is_boundary(raw, begin, k):
                clusters.append((raw[begin:k], positions[begin], positions[k - 1] + 1))
                begin = k
        composed = [nfc("NFC", c) for c, _, _ in clusters]
        word = "".join(composed)
        if word != nfc("NFC", raw):
            composed, clusters = [nfc("NFC", raw)], [(raw, positions[0], positions[-1] + 1)]
            word = composed[0]
        if word in keep:
            return word, [(clusters[0][1], clusters[-1][2])] * len(word), True
        if self.do_lower_case:
            # lower() is context sensitive only for the final sigma, which keeps the length; so
            # lowercase the whole word and cut it where the clusters' own lowercasings end.
            lowered = word.lower()
            parts, at = [], 0
            for c in composed:
                n = len(c.lower())
                parts.append(lowered[at : at + n])
                at += n
            composed = parts
        if self.strips:
            parts = [nfc("NFD", c) for c in composed]
            if "".join(parts) != nfc("NFD", "".join(composed)):
                whole = nfc("NFD", "".join(composed))
                parts, clusters = [whole], [(raw, clusters[0][1], clusters[-1][2])]
            composed = parts
        out_spans: List[Tuple[int, int]] = []
        for c, (original, b, e) in zip(composed, clusters):
            if c == original and e - b == len(c) and not (self.strips and _has_mark(c)):
                # Normalisation leaves this cluster alone and deletes nothing inside it (no
                # control character in between, no accent about to be stripped): each character
                # keeps its own span.
                out_spans.extend((p, p + 1) for p in range(b, e))
            else:
                out_spans.extend([(b, e)] * len(c))
        return "".join(composed), out_spans, False


_PAIR_COMPOSES: dict = {}  # (last character of a composed cluster, next starter) -> do they merge?


def _is_boundary(raw: str, begin: int, k: int) -> bool:
    """Whether NFC can be applied separately to ``raw[begin:k]`` and to what follows from ``k`` on.

    True when ``raw[k]`` is a starter (canonical combining class 0) whose decomposition also starts
    with a starter, and which does not compose with the last character of NFC(``raw[begin:k]``):
    a starter can only ever compose with the character right before it, so that character is all
    that needs checking. An ASCII character is always such a boundary (none composes with what
    precedes it). The caller double-checks the whole word, so a wrong "True" costs precision only.
    """
    ch = raw[k]
    if ch < "\x80":
        return True
    if unicodedata.combining(ch) or unicodedata.combining(unicodedata.normalize("NFD", ch)[0]):
        return False
    # Only the tail matters for the last composed character; bound it so a long run of marks
    # cannot make this quadratic.
    last = unicodedata.normalize("NFC", raw[max(begin, k - 16) : k])[-1:]
    key = (last, ch)
    merges = _PAIR_COMPOSES.get(key)
    if merges is None:
        merges = unicodedata.normalize("NFC", last + ch) != last + unicodedata.normalize("NFC", ch)
        _PAIR_COMPOSES[key] = merges
    return not merges


# ---------------------------------------------------------------------------------------------
# WordPiece: step 7
# ---------------------------------------------------------------------------------------------


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece over a fixed vocabulary.

    "unaffable" becomes ``un ##aff ##able`` when those are in the vocabulary: from the current
    position take the longest vocabulary entry that matches (with ``##`` in front unless at the
    start of the word), move past it, repeat. If some position has no match at all, the whole
    word becomes ``unk_token``: a partial split would pretend to know more than it does.
    """

    def __init__(self, vocab, unk_token: str = "[UNK]", max_input_chars_per_word: int = 100):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        # No vocabulary entry is longer than this, so no longer candidate needs a lookup.
        self.max_piece_chars = max((len(t) for t in vocab), default=0)
        # Every character that some entry contains: a word with any other character is [UNK].
        self.vocab_chars = frozenset("".join(vocab))

    def split(self, token: str) -> Tuple[str, ...]:
        """The pieces of one basic token (a single word with no whitespace)."""
        n = len(token)
        if n > self.max_input_chars_per_word:
            return (self.unk_token,)
        vocab = self.vocab
        if token in vocab:
            return (token,)
        if not self.vocab_chars.issuperset(token):
            # A character that occurs in no vocabulary entry can be covered by no piece.
            return (self.unk_token,)
        pieces = []
        start = 0
        longest = self.max_piece_chars
        while start < n:
            end = start + longest if start + longest < n else n
            while end > start:
                piece = token[start:end] if start == 0 else "##" + token[start:end]
                if piece in vocab:
                    break
                end -= 1
            else:
                return (self.unk_token,)
            pieces.append(piece)
            start = end
        return tuple(pieces)

    def tokenize(self, text: str) -> List[str]:
        """WordPiece every whitespace-separated word of ``text``."""
        return [piece for word in text.split() for piece in self.split(word)]


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


class BatchEncoding(dict):
    """What :meth:`BertTokenizer.__call__` returns: a dict, with attribute access as well.

    ``enc["input_ids"]`` and ``enc.input_ids`` are the same object. With ``return_tensors="pt"``,
    ``enc.to(device)`` moves every tensor and returns the encoding itself, so
    ``model(**tok(texts, return_tensors="pt").to("cuda"))`` works.
    """

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no field {name!r}; it has {sorted(self)}") from None

    def to(self, device) -> "BatchEncoding":
        """Move every tensor value to ``device`` (a no-op on lists and numpy arrays)."""
        for key, value in self.items():
            if hasattr(value, "to") and callable(value.to) and not isinstance(value, BatchEncoding):
                self[key] = value.to(device)
        return self

    def __dir__(self):
        return list(super().__dir__()) + [k for k in self if isinstance(k, str)]


# ---------------------------------------------------------------------------------------------
# Helpers for argument checking
# ---------------------------------------------------------------------------------------------

_PADDING = {False: None, "do_not_pad": None, True: "longest", "longest": "longest", "max_length": "max_length"}
_TRUNCATION = {
    None: None,
    False: None,
    "do_not_truncate": None,
    True: "longest_first",
    "longest_first": "longest_first",
    "only_first": "only_first",
    "only_second": "only_second",
}
# transformers' sentinel for "no limit" (int(1e30)); any model_max_length above this means none.
_NO_LIMIT = int(1e20)


def _check_text(value, name: str) -> None:
    if not isinstance(value, str):
        raise InputTypeError(f"{name} must be a str, got {type(value).__name__}: {_short_repr(value)}")


def _short_repr(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _lookup(table: dict, value, name: str, allowed: str):
    try:
        return table[value]
    except (KeyError, TypeError):  # TypeError: an unhashable value such as a list
        raise InputError(f"{name} must be one of {allowed}, got {_short_repr(value)}") from None


def _read_vocab(path: Path) -> List[str]:
    """The lines of a vocab.txt: token ``i`` is line ``i``, newline removed (nothing else is stripped)."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"vocabulary file {path} is not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise CheckpointNotFoundError(f"cannot read vocabulary file {path}: {exc}") from None
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()  # the newline that ends the last line does not start another token
    return tokens


def _token_text(value) -> Optional[str]:
    """A special token from a config: a plain string, or the dict transformers writes for an AddedToken."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------

_SPECIAL_NAMES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class BertTokenizer:
    """BERT's WordPiece tokenizer: text in, ``input_ids`` / ``token_type_ids`` / ``attention_mask`` out.

    Args:
        vocab_file: a ``vocab.txt``, one token per line; the line number is the id.
        do_lower_case: lowercase words before WordPiece (uncased checkpoints).
        tokenize_chinese_chars: make every CJK ideograph a word of its own.
        strip_accents: ``None`` = strip accents iff lowercasing; ``True``/``False`` force it.
        model_max_length: the longest sequence the model accepts; the default for truncation and
            ``padding="max_length"``, and the length above which a warning is issued.
        never_split: extra words to keep whole (special tokens always are).

    Vocabulary files are read as the reference reads them: a blank line is an (unreachable) token,
    so later ids stay put; if a token appears twice, its *last* line wins when encoding (with a
    warning), while decoding still maps every id to its own line. A vocabulary that lacks one of
    the five special tokens is rejected with :class:`~minibert.errors.CheckpointError`.
    """

    #: Word -> (tokens, ids) entries kept at most; the cache is emptied when it grows past this.
    cache_size: int = 1 << 18
    #: Longer words are tokenized but not cached (they rarely repeat and would pin memory).
    cache_max_word: int = 128

    def __init__(
        self,
        vocab_file: Union[str, os.PathLike],
        do_lower_case: bool = True,
        tokenize_chinese_chars: bool = True,
        strip_accents: Optional[bool] = None,
        model_max_length: int = 512,
        *,
        never_split: Optional[Iterable[str]] = None,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        padding_side: str = "right",
        clean_up_tokenization_spaces: bool = True,
    ):
        if not isinstance(vocab_file, (str, os.PathLike)):
            raise InputTypeError(f"vocab_file must be a str or os.PathLike, got {type(vocab_file).__name__}")
        if strip_accents not in (None, True, False):
            raise InputError(f"strip_accents must be None, True or False, got {strip_accents!r}")
        if padding_side not in ("right", "left"):
            raise InputError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        if not isinstance(model_max_length, int) or model_max_length <= 0:
            raise InputError(f"model_max_length must be a positive int, got {model_max_length!r}")
        self.vocab_file = Path(vocab_file)
        if not self.vocab_file.is_file():
            raise CheckpointNotFoundError(f"vocabulary file not found: {self.vocab_file}")

        self.ids_to_tokens: List[str] = _read_vocab(self.vocab_file)
        self.vocab = {token: index for index, token in enumerate(self.ids_to_tokens)}  # last line wins
        if len(self.vocab) != len(self.ids_to_tokens):
            seen, dupes = set(), []
            for token in self.ids_to_tokens:
                if token in seen and token not in dupes:
                    dupes.append(token)
                seen.add(token)
            warnings.warn(
                f"vocabulary {self.vocab_file} lists {len(dupes)} token(s) more than once "
                f"(e.g. {dupes[:3]!r}); encoding uses the last occurrence, as transformers does",
                stacklevel=2,
            )

        self.unk_token, self.sep_token, self.pad_token = unk_token, sep_token, pad_token
        self.cls_token, self.mask_token = cls_token, mask_token
        missing = [f"{name}={getattr(self, name)!r}" for name in _SPECIAL_NAMES if getattr(self, name) not in self.vocab]
        if missing:
            raise CheckpointError(
                f"vocabulary {self.vocab_file} has no entry for {', '.join(missing)}; "
                "a BERT vocabulary needs all five special tokens (pass the right names if they differ)"
            )
        self.unk_token_id = self.vocab[unk_token]
        self.sep_token_id = self.vocab[sep_token]
        self.pad_token_id = self.vocab[pad_token]
        self.cls_token_id = self.vocab[cls_token]
        self.mask_token_id = self.vocab[mask_token]

        self.do_lower_case = bool(do_lower_case)
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.strip_accents = strip_accents
        self.model_max_length = model_max_length
        self.padding_side = padding_side
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.basic_tokenizer = BasicTokenizer(do_lower_case, never_split, tokenize_chinese_chars, strip_accents)
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab, unk_token)

        self.all_special_tokens = [cls_token, sep_token, pad_token, unk_token, mask_token]
        self.all_special_ids = [self.vocab[t] for t in self.all_special_tokens]
        self._special_id_set = frozenset(self.all_special_ids)
        # Words kept whole by step 5: the user's never_split plus the special tokens.
        self._never_split = self.basic_tokenizer.never_split | set(self.all_special_tokens)
        # Step 1: special tokens typed in the text. Longest first, so that one special token that is
        # a prefix of another can never shadow it.
        alternatives = sorted(set(self.all_special_tokens), key=len, reverse=True)
        self._special_re = re.compile("|".join(re.escape(t) for t in alternatives))
        self._cache: dict = {}
        self._reset_cache()

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, os.PathLike], **overrides) -> "BertTokenizer":
        """Load from a checkpoint folder, a ``vocab.txt``, or a checkpoint name (see :func:`minibert.checkpoints.hub.resolve`).

        ``tokenizer_config.json`` (and ``special_tokens_map.json``) next to the vocabulary supply
        ``do_lower_case``, ``strip_accents``, ``tokenize_chinese_chars``, ``model_max_length``,
        ``never_split`` and the special tokens; keyword arguments override them. A config with
        ``model_max_length`` of transformers' "unlimited" sentinel falls back to 512.
        """
        from minibert.checkpoints.hub import resolve

        path = resolve(name_or_path)
        if path.is_file():
            folder = path.parent
            vocab_file = path if path.suffix == ".txt" else folder / "vocab.txt"
        else:
            folder, vocab_file = path, path / "vocab.txt"
        if not vocab_file.is_file():
            raise CheckpointNotFoundError(f"no vocab.txt for {name_or_path!r} (looked for {vocab_file})")
        kwargs: dict = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the latter has the last word
            config_path = folder / name
            if not config_path.is_file():
                continue
            try:
                config = json.loads(config_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise CheckpointError(f"cannot read {config_path}: {exc}") from None
            if not isinstance(config, dict):
                raise CheckpointError(f"{config_path} must hold a JSON object, got {type(config).__name__}")
            for key in ("do_lower_case", "tokenize_chinese_chars", "strip_accents", "clean_up_tokenization_spaces"):
                if key in config:
                    kwargs[key] = config[key]
            if isinstance(config.get("model_max_length"), int) and 0 < config["model_max_length"] < _NO_LIMIT:
                kwargs["model_max_length"] = config["model_max_length"]
            if isinstance(config.get("never_split"), list):
                kwargs["never_split"] = config["never_split"]
            if config.get("padding_side") in ("left", "right"):
                kwargs["padding_side"] = config["padding_side"]
            for key in _SPECIAL_NAMES:
                token = _token_text(config.get(key))
                if token is not None:
                    kwargs[key] = token
        kwargs.update(overrides)
        return cls(vocab_file, **kwargs)

    def save_pretrained(self, save_directory: Union[str, os.PathLike]) -> Tuple[str, str]:
        """Write ``vocab.txt`` and ``tokenizer_config.json``; both transformers tokenizers read them back."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        vocab_path = folder / "vocab.txt"
        with open(vocab_path, "w", encoding="utf-8", newline="\n") as handle:
            handle.write("".join(token + "\n" for token in self.ids_to_tokens))
        config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.do_lower_case,
            "do_basic_tokenize": True,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "strip_accents": self.strip_accents,
            "never_split": sorted(self.basic_tokenizer.never_split) or None,
            "model_max_length": self.model_max_length,
            "padding_side": self.padding_side,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
        }
        for name in _SPECIAL_NAMES:
            config[name] = getattr(self, name)
        config_path = folder / "tokenizer_config.json"
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return str(vocab_path), str(config_path)

    # -- vocabulary -------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids (lines of ``vocab.txt``)."""
        return len(self.ids_to_tokens)

    def __len__(self) -> int:
        return len(self.ids_to_tokens)

    def get_vocab(self) -> dict:
        """A copy of the token -> id mapping."""
        return dict(self.vocab)

    def convert_tokens_to_ids(self, tokens: Union[str, Sequence[str]]):
        """Id of one token, or ids of a list of tokens; tokens not in the vocabulary map to ``[UNK]``."""
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_token_id)
        get, unk = self.vocab.get, self.unk_token_id
        return [get(_checked_token(t), unk) for t in tokens]

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        """Token of one id, or tokens of a sequence of ids; ids outside the vocabulary give ``[UNK]``."""
        if _is_int(ids):
            return self._id_to_token(int(ids))
        tokens = []
        for i in _as_id_list(ids):
            if skip_special_tokens and i in self._special_id_set:
                continue
            tokens.append(self._id_to_token(i))
        return tokens

    def _id_to_token(self, i: int) -> str:
        return self.ids_to_tokens[i] if 0 <= i < len(self.ids_to_tokens) else self.unk_token

    # -- tokenizing ---------------------------------------------------------------------------

    def _reset_cache(self) -> None:
        """Forget cached words, then seed the cache with the special tokens (step 1's answers)."""
        self._cache.clear()
        for token in self.all_special_tokens:
            self._cache[token] = ((token,), (self.vocab[token],))

    def _word_entry(self, word: str):
        """Steps 5-7 for one cleaned word: ``(tokens, ids)``, computed and cached on first sight."""
        basic = self.basic_tokenizer
        basic_tokens = basic.split_word(word, self._never_split)
        split, whole = self.wordpiece_tokenizer.split, basic.never_split
        # As in the reference, a basic token in the user's never_split skips WordPiece, even when
        # it only became that token by lowercasing; special tokens do go through WordPiece (where
        # they are found whole, being in the vocabulary).
        tokens = tuple(p for tok in basic_tokens for p in ((tok,) if tok in whole else split(tok)))
        get, unk = self.vocab.get, self.unk_token_id
        entry = (tokens, tuple(get(t, unk) for t in tokens))
        if len(word) <= self.cache_max_word:
            if len(self._cache) >= self.cache_size:
                self._reset_cache()
            self._cache[word] = entry
        return entry

    def _segment_words(self, text: str) -> List[str]:
        """Cleaned words of ``text``, with special tokens cut out first (step 1) and kept as words."""
        if self._special_re.search(text) is None:
            return self.basic_tokenizer.words(text)
        words: List[str] = []
        at = 0
        for match in self._special_re.finditer(text):
            words += self.basic_tokenizer.words(text[at : match.start()])
            words.append(match.group())  # its cache entry is the special token itself
            at = match.end()
        words += self.basic_tokenizer.words(text[at:])
        return words

    def _ids(self, text: str) -> List[int]:
        """Token ids of one text, without special tokens: the hot loop, one dict lookup per word."""
        cache = self._cache
        miss = self._word_entry
        ids: List[int] = []
        for word in self._segment_words(text):
            entry = cache.get(word)
            if entry is None:
                entry = miss(word)
            ids += entry[1]
        return ids

    def tokenize(self, text: str) -> List[str]:
        """The WordPiece tokens of ``text`` (no ``[CLS]``/``[SEP]`` added)."""
        _check_text(text, "text")
        cache = self._cache
        tokens: List[str] = []
        for word in self._segment_words(text):
            entry = cache.get(word)
            if entry is None:
                entry = self._word_entry(word)
            tokens += entry[0]
        return tokens

    def tokenize_with_offsets(self, text: str) -> List[Tuple[str, int, int]]:
        """``(token, start, end)`` for each WordPiece token: ``text[start:end]`` is where it came from.

        ``[UNK]`` covers the whole basic token it replaced; a special token typed in the text
        covers itself. When normalisation merged several characters into one (or one into
        several), pieces cut from inside that group share the group's span.
        """
        _check_text(text, "text")
        out: List[Tuple[str, int, int]] = []
        at = 0
        with _gc_paused():
            for match in list(self._special_re.finditer(text)) + [None]:
                stop = len(text) if match is None else match.start()
                self._pieces_with_offsets(text, at, stop, out)
                if match is not None:
                    out.append((match.group(), match.start(), match.end()))
                    at = match.end()
        return out

    def _pieces_with_offsets(self, text: str, start: int, stop: int, out: list) -> None:
        basic, wordpiece = self.basic_tokenizer, self.wordpiece_tokenizer
        for token, spans in basic.tokenize_with_offsets(text, self._never_split, start, stop):
            if token in basic.never_split:
                pieces: Tuple[str, ...] = (token,)
            else:
                pieces = wordpiece.split(token)
            if pieces == (self.unk_token,) and token != self.unk_token:
                out.append((pieces[0], spans[0][0], spans[-1][1]))
                continue
            at = 0
            for k, piece in enumerate(pieces):
                n = len(piece) - (2 if k else 0)  # a continuation's "##" is not in the text
                out.append((piece, spans[at][0], spans[at + n - 1][1]))
                at += n

    # -- encoding -------------------------------------------------------------------------------

    def encode(self, text: str, text_pair: Optional[str] = None, add_special_tokens: bool = True, **kwargs) -> List[int]:
        """The ``input_ids`` of one text (or pair) as a plain list; keyword arguments as in ``__call__``."""
        _check_text(text, "text")
        if text_pair is not None:
            _check_text(text_pair, "text_pair")
        return list(self(text, text_pair, add_special_tokens=add_special_tokens, **kwargs)["input_ids"])

    def __call__(
        self,
        text: Union[str, Sequence[str]],
        text_pair: Union[str, Sequence[str], None] = None,
        *,
        add_special_tokens: bool = True,
        padding: Union[bool, str] = False,
        truncation: Union[bool, str, None] = None,
        max_length: Optional[int] = None,
        pad_to_multiple_of: Optional[int] = None,
        padding_side: Optional[str] = None,
        return_tensors: Optional[str] = None,
        return_token_type_ids: Optional[bool] = None,
        return_attention_mask: Optional[bool] = None,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Encode one text, one pair, or a batch of either, for the model.

        ``text`` is a ``str`` (one sequence) or a list of ``str`` (a batch); ``text_pair`` likewise
        adds second segments (``[CLS] A [SEP] B [SEP]``, token types 0 then 1).

        * ``padding``: ``False``; ``True``/``"longest"`` (to the longest in the batch);
          ``"max_length"`` (to ``max_length``, else ``model_max_length``). ``pad_to_multiple_of``
          then rounds the padded length up.
        * ``truncation``: ``False``; ``True``/``"longest_first"`` (trim the longer sequence of a pair
          first); ``"only_first"``; ``"only_second"``, to ``max_length`` (else ``model_max_length``).
          As in transformers, giving ``max_length`` with neither padding nor truncation means
          ``"longest_first"``.
        * ``return_tensors``: ``None`` (lists), ``"pt"`` (torch, int64) or ``"np"`` (numpy, int64).
          A single text then gets a batch axis of 1.
        * ``return_offsets_mapping``: ``(start, end)`` character spans into the original text(s),
          ``(0, 0)`` for added special tokens and padding.

        Token type ids are returned by default (BERT uses them), attention masks too.
        """
        batched = not isinstance(text, str)
        if batched:
            if not isinstance(text, (list, tuple)):
                raise InputTypeError(
                    f"text must be a str or a list of str, got {type(text).__name__}: {_short_repr(text)}"
                )
            for i, t in enumerate(text):
                _check_text(t, f"text[{i}]")
            texts = list(text)
            if text_pair is None:
                pairs: Optional[list] = None
            else:
                if not isinstance(text_pair, (list, tuple)):
                    raise InputTypeError(
                        f"text_pair must be a list of str when text is a list, got {type(text_pair).__name__}"
                    )
                if len(text_pair) != len(texts):
                    raise InputError(f"text has {len(texts)} items but text_pair has {len(text_pair)}")
                for i, t in enumerate(text_pair):
                    _check_text(t, f"text_pair[{i}]")
                pairs = list(text_pair)
        else:
            texts = [text]
            if text_pair is None:
                pairs = None
            else:
                _check_text(text_pair, "text_pair")
                pairs = [text_pair]

        pad_mode = _lookup(_PADDING, padding, "padding", "False, True, 'longest', 'max_length' or 'do_not_pad'")
        trunc_mode = _lookup(
            _TRUNCATION,
            truncation,
            "truncation",
            "None, False, True, 'longest_first', 'only_first', 'only_second' or 'do_not_truncate'",
        )
        if max_length is not None and (not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 0):
            raise InputError(f"max_length must be a non-negative int or None, got {_short_repr(max_length)}")
        if pad_to_multiple_of is not None and (
            not isinstance(pad_to_multiple_of, int) or isinstance(pad_to_multiple_of, bool) or pad_to_multiple_of <= 0
        ):
            raise InputError(f"pad_to_multiple_of must be a positive int or None, got {_short_repr(pad_to_multiple_of)}")
        side = self.padding_side if padding_side is None else padding_side
        if side not in ("left", "right"):
            raise InputError(f"padding_side must be 'left' or 'right', got {_short_repr(padding_side)}")
        if return_tensors not in (None, "pt", "np"):
            raise InputError(f"return_tensors must be None, 'pt' or 'np', got {_short_repr(return_tensors)}")

        # transformers' rules for combining the options (kept so results match it exactly).
        if max_length is not None and pad_mode is None and truncation is None:
            trunc_mode = "longest_first"
        if pad_mode == "longest" and max_length is not None and trunc_mode is None and verbose:
            warnings.warn(
                "max_length is ignored when padding=True and truncation is off; "
                "use padding='max_length' to pad to max_length",
                stacklevel=2,
            )
        limit = max_length
        if limit is None and (pad_mode == "max_length" or trunc_mode is not None):
            if self.model_max_length < _NO_LIMIT:
                limit = self.model_max_length
            else:  # "no maximum": nothing to pad or truncate to, as in transformers
                pad_mode = None if pad_mode == "max_length" else pad_mode
                trunc_mode = None
        if trunc_mode and pad_mode and pad_to_multiple_of and limit is not None and limit % pad_to_multiple_of:
            raise InputError(
                f"truncation to max_length={limit} and pad_to_multiple_of={pad_to_multiple_of} contradict each "
                "other: max_length must be a multiple of pad_to_multiple_of"
            )
        if return_token_type_ids is None:
            return_token_type_ids = True
        if return_attention_mask is None:
            return_attention_mask = True

        rows = []
        for i, first in enumerate(texts):
            second = None if pairs is None else pairs[i]
            if return_offsets_mapping:
                a_tok = self.tokenize_with_offsets(first)
                a_ids = [self.vocab.get(t, self.unk_token_id) for t, _, _ in a_tok]
                a_off = [(s, e) for _, s, e in a_tok]
                if second is not None:
                    b_tok = self.tokenize_with_offsets(second)
                    b_ids = [self.vocab.get(t, self.unk_token_id) for t, _, _ in b_tok]
                    b_off: Optional[list] = [(s, e) for _, s, e in b_tok]
                else:
                    b_ids, b_off = None, None
            else:
                a_ids, a_off = self._ids(first), None
                b_ids = None if second is None else self._ids(second)
                b_off = None
            rows.append(
                self._build(a_ids, b_ids, a_off, b_off, add_special_tokens, trunc_mode, limit, max_length, verbose)
            )

        columns = ["input_ids"]
        if return_token_type_ids:
            columns.append("token_type_ids")
        if return_attention_mask:
            columns.append("attention_mask")
        if return_special_tokens_mask:
            columns.append("special_tokens_mask")
        if return_offsets_mapping:
            columns.append("offset_mapping")

        if pad_mode is not None and rows:
            target = max(len(r["input_ids"]) for r in rows) if pad_mode == "longest" else limit
            if pad_to_multiple_of and target % pad_to_multiple_of:
                target += pad_to_multiple_of - target % pad_to_multiple_of
            for r in rows:
                self._pad(r, target, side)

        out = BatchEncoding()
        for name in columns:
            column = [r[name] for r in rows]
            out[name] = column if batched else column[0]
        if return_length:
            lengths = [len(r["input_ids"]) for r in rows]
            out["length"] = lengths if batched else lengths[0]
        if return_tensors is not None:
            self._to_tensors(out, return_tensors, batched)
        return out

    def _build(self, ids, pair_ids, offsets, pair_offsets, add_special, trunc_mode, limit, max_length, verbose):
        """Truncate, add special tokens, and produce every column for one example."""
        n_special = (3 if pair_ids is not None else 2) if add_special else 0
        total = len(ids) + (len(pair_ids) if pair_ids is not None else 0) + n_special
        if trunc_mode is not None and limit and total > limit:
            cut_a, cut_b = self._truncation_plan(len(ids), pair_ids, total - limit, trunc_mode)
            if cut_a:
                ids = ids[:-cut_a]
                offsets = offsets[:-cut_a] if offsets is not None else None
            if cut_b:
                pair_ids = pair_ids[:-cut_b]
                pair_offsets = pair_offsets[:-cut_b] if pair_offsets is not None else None
        na = len(ids)
        nb = len(pair_ids) if pair_ids is not None else 0
        if add_special:
            cls, sep = self.cls_token_id, self.sep_token_id
            if pair_ids is None:
                input_ids = [cls, *ids, sep]
                types = [0] * (na + 2)
                special = [1] + [0] * na + [1]
            else:
                input_ids = [cls, *ids, sep, *pair_ids, sep]
                types = [0] * (na + 2) + [1] * (nb + 1)
                special = [1] + [0] * na + [1] + [0] * nb + [1]
        else:
            input_ids = ids + (pair_ids or [])
            types = [0] * len(input_ids)
            special = [0] * len(input_ids)
        if max_length is None and len(input_ids) > self.model_max_length and verbose:
            warnings.warn(
                f"sequence of {len(input_ids)} tokens is longer than model_max_length={self.model_max_length}; "
                "the model cannot take it as is (pass truncation=True to cut it)",
                stacklevel=3,
            )
        row = {
            "input_ids": input_ids,
            "token_type_ids": types,
            "attention_mask": [1] * len(input_ids),
            "special_tokens_mask": special,
        }
        if offsets is not None:
            none = (0, 0)
            if add_special:
                if pair_ids is None:
                    row["offset_mapping"] = [none, *offsets, none]
                else:
                    row["offset_mapping"] = [none, *offsets, none, *pair_offsets, none]
            else:
                row["offset_mapping"] = offsets + (pair_offsets or [])
        return row

    @staticmethod
    def _truncation_plan(len_a: int, pair_ids, excess: int, mode: str) -> Tuple[int, int]:
        """How many tokens to drop from the end of the first and of the second sequence.

        Matches transformers' pure-Python tokenizer, including its corner cases:

        * ``longest_first`` on a pair first trims the longer sequence down to the length of the
          shorter, then splits the rest evenly, the odd token coming off the *second* sequence when
          both had the same length and off the *first* when it was the longer one. (The Rust
          tokenizer breaks that tie the other way; the tests pin this difference.)
        * ``only_first``/``only_second`` empty the sequence if it cannot absorb the whole excess,
          and ``only_second`` on a single sequence does nothing; the result can then still be
          longer than ``max_length`` (the Rust tokenizer raises an error instead).
        """
        if pair_ids is None or mode == "only_first":
            if mode == "only_second":
                return 0, 0
            return min(excess, len_a), 0
        len_b = len(pair_ids)
        if mode == "only_second":
            return 0, min(excess, len_b) if len_b else 0
        first = min(abs(len_b - len_a), excess)
        rest = excess - first
        if len_a > len_b:
            cut_a, cut_b = first + rest // 2, rest - rest // 2
        else:
            cut_a, cut_b = rest // 2, first + rest - rest // 2
        return min(cut_a, len_a), min(cut_b, len_b)

    def _pad(self, row: dict, target: int, side: str) -> None:
        missing = target - len(row["input_ids"])
        if missing <= 0:
            return
        fill = {
            "input_ids": self.pad_token_id,
            "token_type_ids": 0,
            "attention_mask": 0,
            "special_tokens_mask": 1,
            "offset_mapping": (0, 0),
        }
        for name, value in fill.items():
            if name in row:
                padding = [value] * missing
                row[name] = row[name] + padding if side == "right" else padding + row[name]

    @staticmethod
    def _to_tensors(out: BatchEncoding, kind: str, batched: bool) -> None:
        """Turn every column into an int64 tensor (torch imported only now, so ``import minibert`` stays light)."""
        for name, column in list(out.items()):
            rows = column if batched else [column]
            if rows and isinstance(rows[0], list) and len({len(r) for r in rows}) > 1:
                raise InputError(
                    f"cannot make a tensor of {name}: the sequences have different lengths "
                    f"({sorted({len(r) for r in rows})}); pass padding=True"
                )
            if kind == "pt":
                import torch

                out[name] = torch.tensor(rows, dtype=torch.long)
            else:
                import numpy as np

                out[name] = np.array(rows, dtype=np.int64)
            if not batched and name == "length":
                out[name] = out[name].reshape(1)

    # -- decoding -----------------------------------------------------------------------------

    def decode(self, token_ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: Optional[bool] = None) -> str:
        """Ids back to text: tokens joined by spaces, ``##`` continuations glued to their word.

        The text is the *normalised* one (lowercased, accents gone for uncased vocabularies), and
        with ``clean_up_tokenization_spaces`` the spaces BERT put before ``. , ! ?`` and inside
        English contractions (``don ' t``) are taken out again, as transformers does.
        """
        tokens = self.convert_ids_to_tokens(_as_id_list(token_ids), skip_special_tokens=skip_special_tokens)
        text = " ".join(tokens).replace(" ##", "").strip()
        cleanup = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        if cleanup:
            for before, after in (
                (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
                (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
            ):  # fmt: skip
                text = text.replace(before, after)
        return text

    def batch_decode(self, sequences, skip_special_tokens: bool = False, clean_up_tokenization_spaces: Optional[bool] = None) -> List[str]:
        """:meth:`decode` for each sequence of a batch (a list of lists, or a 2-D tensor/array)."""
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        if not isinstance(sequences, (list, tuple)):
            raise InputTypeError(f"sequences must be a list of id lists or a 2-D tensor, got {type(sequences).__name__}")
        return [self.decode(s, skip_special_tokens, clean_up_tokenization_spaces) for s in sequences]

    def __repr__(self) -> str:
        return (
            f"BertTokenizer(vocab_file={str(self.vocab_file)!r}, vocab_size={self.vocab_size}, "
            f"do_lower_case={self.do_lower_case}, tokenize_chinese_chars={self.tokenize_chinese_chars}, "
            f"strip_accents={self.strip_accents}, model_max_length={self.model_max_length})"
        )


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while building millions of small tuples.

    The offset path allocates a few tuples per character and none of them form cycles; on a
    megabyte of text the collector would otherwise rescan the growing heap again and again
    (about half the run time). It is switched back on only if it was on before.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _has_mark(text: str) -> bool:
    return any(unicodedata.category(ch) == "Mn" for ch in text)


def _is_int(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    # A 0-d tensor or numpy scalar.
    return hasattr(value, "ndim") and getattr(value, "ndim") == 0 and hasattr(value, "item")


def _as_id_list(ids) -> List[int]:
    """Ids as a flat list of ints, from an int, a list/tuple, or a 0-/1-D tensor or array."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if isinstance(ids, int) and not isinstance(ids, bool):
        return [ids]
    if not isinstance(ids, (list, tuple)):
        raise InputTypeError(f"token_ids must be an int, a list of ints or a 1-D tensor, got {type(ids).__name__}")
    out = []
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise InputTypeError(f"token_ids must contain ints, got {type(i).__name__}: {_short_repr(i)}")
        out.append(i)
    return out


def _checked_token(token) -> str:
    if not isinstance(token, str):
        raise InputTypeError(f"tokens must be str, got {type(token).__name__}: {_short_repr(token)}")
    return token
