"""The fast path equals the rules: tokens, ids and offsets, on arbitrary Unicode text.

``minibert/tokenizer/rules.py`` is the plain version (one character at a time);
``minibert/tokenizer/fast.py`` cuts words with C routines and caches each word's result. Both
must give the same ``(token, start, end)`` triples and ids, whatever the text and the options,
with the cache cold or warm. transformers is not needed here: ``test_tokenizer.py`` holds the
rules to the reference.
"""

from __future__ import annotations

import gc
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibert.tokenizer import BertTokenizer
from minibert.tokenizer.fast import ASCII_DELETED, WORD_PATTERNS, FastTokenizer
from minibert.tokenizer.rules import (
    CJK_RANGES,
    BasicTokenizer,
    TokenizerRules,
    WordpieceTokenizer,
    is_cjk,
    is_deleted,
    is_separator,
)

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Characters that exercise every rule: deleted ones, odd spaces, marks that compose or reorder,
# case oddities (final sigma, dotted I), CJK, Hangul jamo that compose without marks, punctuation.
FRAGMENTS = [
    "\x00", "\x0b", "\x1c", "\x7f", "\x85", "\ufffd", "\u200b", "\U000e0001", "\ue000", "\u0378",
    " ", "\t", "\n", "\u00a0", "\u2000", "\u3000", "\u2028", "\u2029",
    "\u0301", "\u0308", "\u0323", "\u0345", "\u0f73", "\u0344", "e\u0301", "A\u030a", "<\u0338",
    "\u0b47\u0b3e", "\u1100\u1161\u11a8", "ΟΔΟΣ", "İ", "ß", "ﬁ", "\u212b", "中", "\uf900", "\U00020000",
    "[SEP]", "[CLS]", "[C\x00LS]", "[MASK", "##", ".", ",", "$", "-", "'", "¿", "…", "、",
    "hello", "Hello", "WORLD", "unaffable", "don't", "e-mail", "E-Mail", "O'Neil", "Café.", "x" * 101,
]  # fmt: skip
texts = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.characters(), st.text(max_size=5)),
    max_size=16,
).map("".join)

VOCAB = SPECIALS + [
    "hello", "world", "un", "##aff", "##able", "e", "##e", "mail", "-", ".", ",", "'", "t", "don", "##t",
    "café", "cafe", "ο", "##δ", "##ος", "##οσ", "i", "##̇", "中", "x", "##x", "a", "##a", "ss", "fi",
]  # fmt: skip
VOCAB += [chr(c) for c in range(0x21, 0x7F)] + ["##" + chr(c) for c in range(0x61, 0x7B)]
VOCAB = list(dict.fromkeys(VOCAB))

CONFIGS = {
    "uncased": dict(do_lower_case=True),
    "uncased-keep-accents": dict(do_lower_case=True, strip_accents=False),
    "cased": dict(do_lower_case=False),
    "cased-strip-accents": dict(do_lower_case=False, strip_accents=True),
    "no-cjk": dict(do_lower_case=True, tokenize_chinese_chars=False),
    "never-split": dict(do_lower_case=True, never_split=["e-mail", "Don't", "cafe.", "o'neil"]),
}


def _pair(config: str):
    kwargs = dict(CONFIGS[config])
    never_split = kwargs.pop("never_split", None)
    vocab = {token: i for i, token in enumerate(VOCAB)}
    basic = BasicTokenizer(never_split=never_split, **kwargs)
    wordpiece = WordpieceTokenizer(vocab)
    return TokenizerRules(basic, wordpiece, SPECIALS), FastTokenizer(basic, wordpiece, SPECIALS, vocab, vocab["[UNK]"])


PAIRS = {name: _pair(name) for name in CONFIGS}


def _assert_same(rules: TokenizerRules, fast: FastTokenizer, text: str) -> None:
    want = rules.pieces(text)
    unk = fast.unk_id
    for _ in range(2):  # cold, then from the cache
        assert fast.pieces(text) == want
        assert fast.tokens(text) == [token for token, _, _ in want]
        ids, offsets = fast.ids_and_offsets(text)
        assert ids == fast.ids(text) == [fast.vocab.get(token, unk) for token, _, _ in want]
        assert offsets == [(start, end) for _, start, end in want]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, config=st.sampled_from(sorted(CONFIGS)))
def test_fast_path_equals_the_rules(text, config):
    rules, fast = PAIRS[config]
    fast.cache.clear()
    _assert_same(rules, fast, text)


@settings(max_examples=60, deadline=None)
@given(words=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=30), config=st.sampled_from(sorted(CONFIGS)))
def test_fast_path_equals_the_rules_with_a_warm_cache(words, config):
    """The same words in new company: a cached entry must not depend on what came before it."""
    rules, fast = PAIRS[config]
    _assert_same(rules, fast, " ".join(words))
    _assert_same(rules, fast, "".join(reversed(words)))


def test_offsets_examples_from_the_rules():
    rules, _ = PAIRS["uncased"]
    assert rules.pieces("Cafe\u0301 ok")[0] == ("cafe", 0, 5)  # the accent's span joins its letter's
    assert rules.pieces("unaffable.") == [("un", 0, 2), ("##aff", 2, 5), ("##able", 5, 9), (".", 9, 10)]
    assert rules.pieces("a\u200bb") == [("a", 0, 1), ("##b", 2, 3)]  # one word: the ZWSP is deleted
    assert rules.pieces("ΟΔΟΣ") == [("ο", 0, 1), ("##δ", 1, 2), ("##ος", 2, 4)]  # final sigma, spans kept
    assert rules.pieces("x\x00[SEP]中") == [("x", 0, 1), ("[SEP]", 2, 7), ("中", 7, 8)]


def test_never_split_is_looked_at_before_and_after_case_folding():
    basic = PAIRS["never-split"][0].basic
    assert basic.tokenize("Don't DON'T O'Neil E-MAIL Café.") == ["Don't", "don", "'", "t", "o'neil", "e-mail", "cafe."]


def test_a_cluster_left_as_it_was_keeps_a_span_per_character():
    """q + combining dot above has no composed form: NFC leaves it, so each character keeps its own span;
    e + combining acute becomes é, which takes the span of both."""
    basic = BasicTokenizer(do_lower_case=False)
    assert [(t, list(s), list(e)) for t, s, e in basic.split_word("q\u0307x")] == [("q\u0307x", [0, 1, 2], [1, 2, 3])]
    assert [(t, list(s), list(e)) for t, s, e in basic.split_word("e\u0301x")] == [("éx", [0, 2], [2, 3])]


def test_word_pattern_separators_are_the_rules_separators():
    """Every code point: ends a word in the fast path exactly when it does in the rules."""
    everything = "".join(map(chr, range(0x110000)))
    fast = set(WORD_PATTERNS[False].sub("", everything))  # what the pattern never takes into a word
    # Only str.isspace() characters and Zs spaces can be separators in the rules.
    candidates = [ch for ch in everything if ch.isspace() or unicodedata.category(ch) == "Zs"]
    assert fast == {ch for ch in candidates if not is_deleted(ch) and is_separator(ch)}
    for lo, hi in CJK_RANGES:
        for cp in (lo - 1, lo, hi, hi + 1):
            match = WORD_PATTERNS[True].match(chr(cp) + "a")
            assert (match is not None and match.group() == chr(cp)) == is_cjk(chr(cp)), hex(cp)


def test_ascii_shortcut_sees_every_deleted_ascii_character():
    """Plain ``str.split`` is used on ASCII text without these; it must be exactly the deleted ones."""
    for cp in range(128):
        assert bool(ASCII_DELETED.match(chr(cp))) == (is_deleted(chr(cp)) and chr(cp) not in "\t\n\r"), cp


def test_no_process_wide_side_effects(tmp_path, monkeypatch):
    """Tokenizing a large text with offsets leaves the garbage collector (and everything else) alone."""
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tok = BertTokenizer(tmp_path / "vocab.txt")

    def refuse():
        raise AssertionError("the tokenizer must not switch the garbage collector off")

    monkeypatch.setattr(gc, "disable", refuse)
    text = "Hello, wörld! e\u0301 中文 " * 20_000
    assert len(tok(text, return_offsets_mapping=True, verbose=False)["offset_mapping"]) > 100_000
    assert gc.isenabled()


def test_a_million_combining_marks_stay_linear():
    rules, fast = PAIRS["cased"]
    text = "a" + "\u0301" * 50_000 + " b"
    assert fast.pieces(text) == rules.pieces(text) == [("[UNK]", 0, 50_001), ("b", 50_002, 50_003)]


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_basic_tokenizer_tokenize_is_the_rules(config):
    rules, _ = PAIRS[config]
    text = "Hello, WORLD! e-mail Don't cafe\u0301. ΟΔΟΣ İ 中文"
    words = [token for word, _ in rules.basic.words(text) for token, _, _ in rules.basic.split_word(word)]
    assert rules.basic.tokenize(text) == words
