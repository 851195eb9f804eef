"""BERT's tokenization rules as plain code: the basic tokenizer, then greedy longest-match WordPiece.

This is the version to read. It follows the steps of Google's original ``tokenization.py`` (with
the NFC step transformers added) one character at a time, and carries along, for every character,
the span of the original text it came from, so the same code gives tokens, ids and offsets.
``fast.py`` gets the same answers faster; a property test holds the two equal.

The steps, for one text
-----------------------
1. **Special tokens first.** ``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]``, ``[MASK]`` typed in the text
   are cut out and kept whole; the pieces between them are tokenized on their own.
2. **Cleaning.** NUL, U+FFFD and every control or format character (Unicode category ``C*``) are
   deleted, except tab, newline and carriage return, which are spaces like every ``Zs`` separator.
   Deleting, not spacing: ``"a\\u200bb"`` is the one word ``"ab"``.
3. **CJK spacing.** Each CJK ideograph (:data:`CJK_RANGES`) is a word of its own: Chinese has no
   spaces between words, so BERT treats every ideograph as one.
4. **Words, then NFC.** The text is split at spaces (and at U+2028/U+2029, which ``str.split``
   honours too); each word is put in canonical composed form, so ``"e" + U+0301`` and ``"é"`` agree.
5. **Case and accents.** Unless the word is in ``never_split``, it is lowercased (``str.lower``:
   full Unicode case mapping, word-final sigma included) when ``do_lower_case``; accents are
   stripped (NFD, then drop every non-spacing mark, category ``Mn``) when ``strip_accents`` is true,
   or when it is ``None`` and ``do_lower_case`` is on.
6. **Punctuation split.** Unless the word is (now) in ``never_split``, every punctuation character
   becomes a token of its own: category ``P*`` plus *every* ASCII character that is neither a letter
   nor a digit (``$ + ^ |`` are symbols to Unicode but punctuation to BERT).
7. **WordPiece.** Each token is cut greedily from the left, longest vocabulary entry first; pieces
   after the first carry ``##``. A token longer than 100 characters, or with a stretch no entry
   covers, becomes ``[UNK]`` as a whole. Tokens in the user's ``never_split`` skip this step.

Offsets
-------
Steps 4-5 can merge characters (``e`` + U+0301 becomes ``é``) or expand one (``İ`` lowercases to
``i`` + U+0307). So the normalisations run on *clusters*: a character and the combining marks after
it. Every character a cluster turns into gets the cluster's span; a cluster that comes out exactly
as it went in keeps one span per character. If normalising cluster by cluster would not give the
same word as normalising the whole word (Hangul jamo, which compose without marks), the word is
one cluster: coarser spans, never different tokens.
"""

from __future__ import annotations

import unicodedata
from typing import Iterable, List, Optional, Sequence, Tuple

from minibert.errors import InputTypeError

__all__ = ["CJK_RANGES", "BasicTokenizer", "WordpieceTokenizer", "TokenizerRules", "Span", "Piece", "BasicToken"]

Span = Tuple[int, int]  # (start, end): text[start:end] is where a token came from
Piece = Tuple[str, int, int]  # (token, start, end)
#: A basic token and, for each of its characters k, the span ``(starts[k], ends[k])`` it came from.
BasicToken = Tuple[str, Sequence[int], Sequence[int]]

#: The blocks BERT calls "Chinese characters": CJK Unified Ideographs, extensions A-E and the two
#: compatibility blocks. Hangul, Hiragana and Katakana are not among them: those scripts put spaces
#: between words, so they are tokenized like any other alphabet.
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


def is_cjk(ch: str) -> bool:
    """True for a CJK ideograph (a code point in one of :data:`CJK_RANGES`)."""
    cp = ord(ch)
    for lo, hi in CJK_RANGES:
        if lo <= cp <= hi:
            return True
    return False


def is_whitespace(ch: str) -> bool:
    """Space, tab, newline, carriage return, or a ``Zs`` space separator (NBSP, EN SPACE, ...)."""
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_deleted(ch: str) -> bool:
    """Step 2's deletions: NUL, U+FFFD, and every ``C*`` character except tab, newline and CR."""
    return ch == "\ufffd" or (ch not in "\t\n\r" and unicodedata.category(ch)[0] == "C")


def is_separator(ch: str) -> bool:
    """Whether a (kept) character ends a word: whitespace, or U+2028/U+2029, which ``str.split`` splits on."""
    return is_whitespace(ch) or ch.isspace()


def is_punctuation(ch: str) -> bool:
    """Unicode punctuation (``P*``), or a printable ASCII character that is neither letter nor digit."""
    if ch.isascii() and ch.isprintable() and not ch.isalnum() and ch != " ":
        return True
    return unicodedata.category(ch)[0] == "P"


def _check_text(value, name: str) -> None:
    if not isinstance(value, str):
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise InputTypeError(f"{name} must be a str, got {type(value).__name__}: {shown}")


# ---------------------------------------------------------------------------------------------
# Steps 2-6: the basic tokenizer
# ---------------------------------------------------------------------------------------------


class _Cluster:
    """A character and the combining marks after it, with the span of the text it came from."""

    __slots__ = ("text", "original", "start", "end")

    def __init__(self, text: str, start: int, end: int):
        self.text = self.original = text
        self.start, self.end = start, end

    def spans(self) -> Tuple[Sequence[int], Sequence[int]]:
        """Each character's start and end: its own if the cluster is untouched and contiguous, else the cluster's."""
        n = len(self.text)
        if self.text == self.original and self.end - self.start == n:
            return range(self.start, self.end), range(self.start + 1, self.end + 1)
        return [self.start] * n, [self.end] * n


class BasicTokenizer:
    """Steps 2-6: cleaning, CJK spacing, NFC, case folding, accent stripping, punctuation split.

    ``strip_accents`` follows the reference: ``None`` means "strip when lowercasing", ``True``
    strips even without lowercasing, ``False`` never strips. Words in ``never_split`` are kept as
    written (no lowercasing, no punctuation split).
    """

    def __init__(
        self,
        do_lower_case: bool = True,
        never_split: Optional[Iterable[str]] = None,
        tokenize_chinese_chars: bool = True,
        strip_accents: Optional[bool] = None,
    ):
        self.do_lower_case = do_lower_case
        self.never_split = set(never_split or ())
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = strip_accents
        # The reference's accent rule, reduced to one flag.
        self.strips = bool(strip_accents) or (bool(do_lower_case) and strip_accents is not False)

    # -- steps 2-4: words -------------------------------------------------------------------

    def words(self, text: str, start: int = 0, end: Optional[int] = None) -> List[Tuple[str, int]]:
        """``(word, where)`` for each word of ``text[start:end]``: a run of characters between
        separators (deleted characters included, cleaning of the word comes later), or one CJK
        ideograph. ``where`` is the word's position in ``text``."""
        end = len(text) if end is None else end
        found: List[Tuple[str, int]] = []
        begin = None  # where the current word started
        for i in range(start, end):
            ch = text[i]
            cjk = self.tokenize_chinese_chars and is_cjk(ch)
            if cjk or (not is_deleted(ch) and is_separator(ch)):
                if begin is not None:
                    found.append((text[begin:i], begin))
                    begin = None
                if cjk:
                    found.append((ch, i))
            elif begin is None:
                begin = i
        if begin is not None:
            found.append((text[begin:end], begin))
        return found

    def clean(self, text: str) -> str:
        """Step 2 on its own: ``text`` with deleted characters gone and every whitespace a plain space."""
        return "".join(" " if is_whitespace(ch) else ch for ch in text if not is_deleted(ch))

    # -- steps 4-6: one word ----------------------------------------------------------------

    def split_word(self, word: str, keep: Optional[set] = None) -> List[BasicToken]:
        """The basic tokens of one word from :meth:`words`, each with one span (into ``word``) per character.

        ``keep`` (default: ``never_split``) holds the words kept whole; it is looked at before
        case folding and again after, as the reference does.
        """
        keep = self.never_split if keep is None else keep
        clusters = _clusters(word)
        if not clusters:
            return []
        clusters = _normalize(clusters, lambda s: unicodedata.normalize("NFC", s))
        if _joined(clusters) not in keep:
            if self.do_lower_case:
                clusters = _lowercase(clusters)
            if self.strips:
                clusters = _normalize(clusters, lambda s: unicodedata.normalize("NFD", s))
                for cluster in clusters:
                    cluster.text = "".join(ch for ch in cluster.text if unicodedata.category(ch) != "Mn")
        chars = _joined(clusters)
        starts: List[int] = []
        ends: List[int] = []
        for cluster in clusters:
            cluster_starts, cluster_ends = cluster.spans()
            starts += cluster_starts
            ends += cluster_ends
        if not chars:
            return []  # a lone accent, stripped
        if chars in keep:
            return [(chars, starts, ends)]
        return split_on_punctuation(chars, starts, ends)

    def tokenize(self, text: str, never_split: Optional[Iterable[str]] = None) -> List[str]:
        """The basic tokens of ``text`` (no WordPiece). ``never_split`` adds to the constructor's set."""
        _check_text(text, "text")
        keep = self.never_split | set(never_split) if never_split else self.never_split
        return [token for word, _ in self.words(text) for token, _, _ in self.split_word(word, keep)]


def _clusters(word: str) -> List[_Cluster]:
    """Step 2 inside a word (deleted characters dropped), then the word cut before every starter."""
    clusters: List[_Cluster] = []
    current: List[str] = []  # the kept characters of the cluster being read
    start = end = 0
    for i, ch in enumerate(word):
        if is_deleted(ch):
            continue
        if current and not unicodedata.combining(ch):
            clusters.append(_Cluster("".join(current), start, end))
            current = []
        if not current:
            start = i
        current.append(ch)
        end = i + 1
    if current:
        clusters.append(_Cluster("".join(current), start, end))
    return clusters


def _joined(clusters: Sequence[_Cluster]) -> str:
    return "".join(cluster.text for cluster in clusters)


def _as_one(clusters: List[_Cluster], text: str) -> List[_Cluster]:
    """All clusters merged into one that spans them all and now reads ``text``."""
    merged = _Cluster(_joined(clusters), clusters[0].start, clusters[-1].end)
    merged.original = "".join(cluster.original for cluster in clusters)
    merged.text = text
    return [merged]


def _normalize(clusters: List[_Cluster], form) -> List[_Cluster]:
    """Apply a normalisation to each cluster, or to the whole word if cluster by cluster differs."""
    whole = form(_joined(clusters))
    parts = [form(cluster.text) for cluster in clusters]
    if "".join(parts) != whole:
        return _as_one(clusters, whole)
    for cluster, part in zip(clusters, parts):
        cluster.text = part
    return clusters


def _lowercase(clusters: List[_Cluster]) -> List[_Cluster]:
    """``str.lower`` of the whole word, handed back to the clusters.

    Lowercasing looks at context in one place only, the Greek word-final sigma (``Σ`` -> ``ς``), and
    that keeps the length; so the word is lowercased whole and cut where each cluster's own
    lowercasing would end.
    """
    whole = _joined(clusters).lower()
    lengths = [len(cluster.text.lower()) for cluster in clusters]
    if sum(lengths) != len(whole):
        return _as_one(clusters, whole)
    at = 0
    for cluster, n in zip(clusters, lengths):
        cluster.text = whole[at : at + n]
        at += n
    return clusters


def split_on_punctuation(chars: str, starts: Sequence[int], ends: Sequence[int]) -> List[BasicToken]:
    """Step 6: every punctuation character a token of its own, the runs between them tokens too."""
    tokens: List[BasicToken] = []
    begin = 0
    for i, ch in enumerate(chars):
        if is_punctuation(ch):
            if begin < i:
                tokens.append((chars[begin:i], starts[begin:i], ends[begin:i]))
            tokens.append((ch, starts[i : i + 1], ends[i : i + 1]))
            begin = i + 1
    if begin < len(chars):
        tokens.append((chars[begin:], starts[begin:], ends[begin:]))
    return tokens


# ---------------------------------------------------------------------------------------------
# Step 7: WordPiece
# ---------------------------------------------------------------------------------------------


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece over a fixed vocabulary.

    ``"unaffable"`` becomes ``un ##aff ##able`` when those are in the vocabulary: from the current
    position take the longest entry that matches (``##`` in front unless at the start of the
    word), move past it, repeat. If some position has no match at all, the whole word becomes
    ``unk_token``: a partial split would pretend to know more than it does.
    """

    def __init__(self, vocab, unk_token: str = "[UNK]", max_input_chars_per_word: int = 100):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        # No entry is longer than this, so no longer candidate needs looking up.
        self.longest_entry = max((len(token) for token in vocab), default=0)

    def split(self, token: str) -> Tuple[str, ...]:
        """The pieces of one basic token."""
        if len(token) > self.max_input_chars_per_word:
            return (self.unk_token,)
        if token in self.vocab:  # the longest match there can be: the whole token
            return (token,)
        pieces = []
        start = 0
        while start < len(token):
            end = min(len(token), start + self.longest_entry)
            while end > start:
                piece = token[start:end] if start == 0 else "##" + token[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            else:  # nothing matches at `start`
                return (self.unk_token,)
            pieces.append(piece)
            start = end
        return tuple(pieces)

    def tokenize(self, text: str) -> List[str]:
        """WordPiece every whitespace-separated word of ``text``."""
        return [piece for word in text.split() for piece in self.split(word)]


# ---------------------------------------------------------------------------------------------
# Steps 1-7 together
# ---------------------------------------------------------------------------------------------


class TokenizerRules:
    """The whole pipeline for one text, written plainly: ``(token, start, end)`` for every piece.

    ``specials`` are the tokens of step 1 (typed in the text, they are kept whole); ``never_split``
    those the user asked to keep whole (they skip WordPiece as well).
    """

    def __init__(self, basic: BasicTokenizer, wordpiece: WordpieceTokenizer, specials: Sequence[str]):
        self.basic = basic
        self.wordpiece = wordpiece
        # Longest first, so that a special token that starts another cannot shadow it.
        self.specials = sorted(set(specials), key=len, reverse=True)
        # Words kept whole by steps 5-6: the user's never_split plus the special tokens.
        self.keep = basic.never_split | set(specials)

    def segments(self, text: str) -> List[Tuple[int, int, bool]]:
        """Step 1: ``(start, end, is_special)`` for the special tokens in ``text`` and the stretches between."""
        out: List[Tuple[int, int, bool]] = []
        at = begin = 0
        while at < len(text):
            special = next((s for s in self.specials if text.startswith(s, at)), None)
            if special is None:
                at += 1
                continue
            out.append((begin, at, False))
            out.append((at, at + len(special), True))
            at = begin = at + len(special)
        out.append((begin, len(text), False))
        return [segment for segment in out if segment[0] < segment[1]]

    def basic_tokens(self, word: str) -> List[BasicToken]:
        """Steps 2 and 4-6 for one word (special tokens kept whole too)."""
        return self.basic.split_word(word, self.keep)

    def word_pieces(self, word: str) -> List[Piece]:
        """Steps 2 and 4-7 for one word: ``(piece, start, end)`` with spans into ``word``."""
        out: List[Piece] = []
        for token, starts, ends in self.basic_tokens(word):
            pieces = (token,) if token in self.basic.never_split else self.wordpiece.split(token)
            if len(pieces) == 1:  # the whole token, or the [UNK] that stands for all of it
                out.append((pieces[0], starts[0], ends[-1]))
                continue
            at = 0
            for k, piece in enumerate(pieces):
                n = len(piece) - (2 if k else 0)  # a continuation's "##" is not in the text
                out.append((piece, starts[at], ends[at + n - 1]))
                at += n
        return out

    def pieces(self, text: str) -> List[Piece]:
        """``(token, start, end)`` for every WordPiece token of ``text``; ``text[start:end]`` produced it."""
        _check_text(text, "text")
        out: List[Piece] = []
        for start, end, special in self.segments(text):
            if special:
                out.append((text[start:end], start, end))
                continue
            for word, where in self.basic.words(text, start, end):
                out.extend((piece, where + s, where + e) for piece, s, e in self.word_pieces(word))
        return out
