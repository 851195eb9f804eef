"""The fast path: the rules of ``rules.py``, with the work moved into C and a cache.

Natural text repeats its words all the time, and steps 2 and 4-7 depend on nothing but the word.
So the text is cut into words by C routines (``str.split`` when the text is plain ASCII, one
regular expression otherwise), and each word's result, computed once by
:meth:`TokenizerRules.word_pieces`, is cached: ``(tokens, ids, spans)`` with the spans relative to
the word. A cache hit costs one dictionary lookup; the offsets path reads the spans of the same
entries, so ids and offsets always come from one computation.

``tests/test_tokenizer_rules.py`` holds :class:`FastTokenizer` equal to :class:`TokenizerRules`
(tokens, ids and offsets) on arbitrary Unicode text.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from minibert.tokenizer.rules import (
    CJK_RANGES,
    BasicToken,
    BasicTokenizer,
    Piece,
    Span,
    TokenizerRules,
    WordpieceTokenizer,
    _check_text,
)

__all__ = ["FastTokenizer", "CachedBasicTokenizer", "SEPARATORS", "WORD_PATTERNS", "find_words", "ascii_basic_tokens"]

Entry = Tuple[Tuple[str, ...], Tuple[int, ...], Tuple[Span, ...]]  # (tokens, ids, spans in the word)
TOKENS, IDS = 0, 1  # the fields of an Entry that FastTokenizer.collect gathers

#: The characters that end a word (``rules.is_separator`` of the characters cleaning keeps): the
#: ``Zs`` spaces, tab, newline, carriage return, and U+2028/U+2029. A test compares this list with
#: the whole Unicode table.
SEPARATORS = " \t\n\r\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\u2028\u2029"
_CJK = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in CJK_RANGES)

#: A word as ``BasicTokenizer.words`` finds it: one CJK ideograph, or a run of anything else up to
#: a separator (deleted characters included: the word's own computation drops them).
WORD_PATTERNS = {
    True: re.compile(f"[{_CJK}]|[^{SEPARATORS}{_CJK}]+"),
    False: re.compile(f"[^{SEPARATORS}]+"),
}
#: ASCII characters that cleaning deletes; ``str.split`` would wrongly split on some of them
#: (``\x0b``, ``\x0c``, ``\x1c``-``\x1f``), so ASCII text holding one takes the regex path.
ASCII_DELETED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: Step 6 on an ASCII word: one punctuation character (every printable non-alphanumeric), or a
#: run without any.
ASCII_TOKEN = re.compile(r"[!-/:-@\[-`{-~]|[^!-/:-@\[-`{-~]+")


def find_words(text: str, pattern: "re.Pattern[str]") -> List[str]:
    """The words of ``text`` as ``BasicTokenizer.words`` finds them (``pattern``: from :data:`WORD_PATTERNS`)."""
    if text.isascii() and ASCII_DELETED.search(text) is None:
        return text.split()  # no CJK, nothing to delete, and only " \t\n\r" separate
    return pattern.findall(text)


def ascii_basic_tokens(word: str, keep: set, lowercase: bool) -> Optional[List[BasicToken]]:
    """``BasicTokenizer.split_word`` for a word of plain ASCII (else ``None``): most words.

    In ASCII, composing, decomposing and dropping marks change nothing, and lowercasing maps one
    character to one, so every character keeps its own span.
    """
    if not word.isascii() or ASCII_DELETED.search(word) is not None:
        return None
    if word not in keep and lowercase:
        word = word.lower()
    out: List[BasicToken] = []
    start = 0
    for token in [word] if word in keep else ASCII_TOKEN.findall(word):  # the tokens cover the word
        end = start + len(token)
        out.append((token, range(start, end), range(start + 1, end + 1)))
        start = end
    return out


class CachedBasicTokenizer(BasicTokenizer):
    """:class:`BasicTokenizer` for whole corpora (vocabulary training): the same tokens, with words
    found by C routines and each word's tokens remembered (up to ``cache_size`` words)."""

    cache_size: int = 1 << 18

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.word_pattern = WORD_PATTERNS[bool(self.tokenize_chinese_chars)]
        self.cache: Dict[str, List[str]] = {}

    def tokenize(self, text: str, never_split: Optional[Iterable[str]] = None) -> List[str]:
        if never_split:  # a one-off set: no cache
            return super().tokenize(text, never_split)
        _check_text(text, "text")
        out: List[str] = []
        for word in find_words(text, self.word_pattern):
            tokens = self.cache.get(word)
            if tokens is None:
                found = ascii_basic_tokens(word, self.never_split, bool(self.do_lower_case))
                found = self.split_word(word) if found is None else found
                tokens = [token for token, _, _ in found]
                if len(self.cache) >= self.cache_size:
                    self.cache.clear()
                self.cache[word] = tokens
            out += tokens
        return out


class FastTokenizer(TokenizerRules):
    """:class:`TokenizerRules` with words found by C routines and their results cached.

    ``vocab`` maps tokens to ids (tokens it lacks get ``unk_id``).
    """

    #: Entries kept at most; the cache is emptied when it grows past this.
    cache_size: int = 1 << 18
    #: Longer words are tokenized but not cached (they rarely repeat and would pin memory).
    cache_max_word: int = 128

    def __init__(
        self,
        basic: BasicTokenizer,
        wordpiece: WordpieceTokenizer,
        specials: Sequence[str],
        vocab: Dict[str, int],
        unk_id: int,
    ):
        super().__init__(basic, wordpiece, specials)
        self.vocab, self.unk_id = vocab, unk_id
        self.special_pattern = re.compile("|".join(re.escape(s) for s in self.specials))
        self.special_entries: Dict[str, Entry] = {
            s: ((s,), (vocab.get(s, unk_id),), ((0, len(s)),)) for s in self.specials
        }
        self.word_pattern = WORD_PATTERNS[bool(basic.tokenize_chinese_chars)]
        self.cache: Dict[str, Entry] = {}

    # -- one word -----------------------------------------------------------------------------

    def basic_tokens(self, word: str) -> List[BasicToken]:
        """The rules' answer, through :func:`ascii_basic_tokens` when the word allows."""
        found = ascii_basic_tokens(word, self.keep, self.basic.do_lower_case)
        return super().basic_tokens(word) if found is None else found

    def entry(self, word: str) -> Entry:
        """``(tokens, ids, spans)`` of one word: from the cache, else computed by the rules and cached."""
        found = self.cache.get(word)
        if found is not None:
            return found
        pieces = self.word_pieces(word)
        if pieces:
            tokens, starts, ends = zip(*pieces)
            get, unk = self.vocab.get, self.unk_id
            found = (tokens, tuple([get(token, unk) for token in tokens]), tuple(zip(starts, ends)))
        else:  # nothing left after cleaning (a lone accent, a control character)
            found = ((), (), ())
        if len(word) <= self.cache_max_word:
            if len(self.cache) >= self.cache_size:
                self.cache.clear()
            self.cache[word] = found
        return found

    # -- one text -----------------------------------------------------------------------------

    def segments(self, text: str) -> List[Tuple[int, int, bool]]:
        """Step 1 with one regular expression (the same answer as ``TokenizerRules.segments``)."""
        if self.special_pattern.search(text) is None:
            return [(0, len(text), False)] if text else []
        out: List[Tuple[int, int, bool]] = []
        at = 0
        for match in self.special_pattern.finditer(text):
            if at < match.start():
                out.append((at, match.start(), False))
            out.append((match.start(), match.end(), True))
            at = match.end()
        if at < len(text):
            out.append((at, len(text), False))
        return out

    def collect(self, text: str, field: int) -> list:
        """Field ``field`` (:data:`TOKENS` or :data:`IDS`) of every entry of ``text``, concatenated: the hot loop."""
        out: list = []
        cache, entry, pattern = self.cache, self.entry, self.word_pattern
        if self.special_pattern.search(text) is None:  # the usual case: no special token typed
            parts: Sequence[Tuple[str, bool]] = ((text, False),)
        else:
            parts = [(text[start:end], special) for start, end, special in self.segments(text)]
        for part, special in parts:
            if special:
                out += self.special_entries[part][field]
                continue
            for word in find_words(part, pattern):
                found = cache.get(word)
                out += (found if found is not None else entry(word))[field]
        return out

    def tokens(self, text: str) -> List[str]:
        """The WordPiece tokens of ``text``."""
        return self.collect(text, TOKENS)

    def ids(self, text: str) -> List[int]:
        """The token ids of ``text``."""
        return self.collect(text, IDS)

    def _entries(self, text: str) -> Iterator[Tuple[int, Entry]]:
        """``(where, entry)`` for each special token and word of ``text``, ``where`` its position."""
        for start, end, special in self.segments(text):
            if special:
                yield start, self.special_entries[text[start:end]]
                continue
            for match in self.word_pattern.finditer(text, start, end):
                yield match.start(), self.entry(match.group())

    def pieces(self, text: str) -> List[Piece]:
        """``(token, start, end)`` for every token of ``text``, read off the cached entries."""
        return [
            (token, where + s, where + e)
            for where, (tokens, _, spans) in self._entries(text)
            for token, (s, e) in zip(tokens, spans)
        ]

    def ids_and_offsets(self, text: str) -> Tuple[List[int], List[Span]]:
        """The ids of ``text`` and, for each, the ``(start, end)`` span of ``text`` it came from."""
        ids: List[int] = []
        offsets: List[Span] = []
        for where, (_, entry_ids, spans) in self._entries(text):
            ids += entry_ids
            offsets += [(where + s, where + e) for s, e in spans]
        return ids, offsets
