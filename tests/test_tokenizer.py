"""The WordPiece tokenizer against transformers' two BERT tokenizers, id for id.

transformers 5 ships two: ``BertTokenizerLegacy`` (pure Python, Google's original rules) and
``BertTokenizer`` (Rust, the ``tokenizers`` library). They disagree on a few corner cases; where they
do, minibert follows the pure-Python one, and ``test_known_reference_differences`` pins each case.
"""

from __future__ import annotations

import collections
import json
import random
import re
import unicodedata
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydoc_data.topics import topics

from minibert.errors import CheckpointError, InputError, InputTypeError
from minibert.checkpoints.hub import resolve
from minibert.tokenizer import BasicTokenizer, BatchEncoding, BertTokenizer, WordpieceTokenizer

transformers = pytest.importorskip("transformers")
try:
    from transformers import BertTokenizerLegacy
except ImportError:  # pragma: no cover - older layouts
    from transformers.models.bert import BertTokenizerLegacy
RustBertTokenizer = transformers.BertTokenizer

CORPUS = "\n".join(topics.values())
LINES = CORPUS.split("\n")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Characters chosen to hit every rule: controls and format characters (deleted), odd whitespace,
# combining marks (NFC/NFD), case oddities, CJK (spaced), other scripts, emoji, punctuation.
FRAGMENTS = [
    "\x00", "\x01", "\x0b", "\x0c", "\x1c", "\x7f", "\x85", "\ufffd", "\ufeff", "\u200b", "\u200d",
    "\u00ad", "\u2060", "\U000e0001", "\ue000", "\U0010fffd", "\u0378",
    " ", "\t", "\n", "\r", "\u00a0", "\u1680", "\u2000", "\u2009", "\u202f", "\u3000", "\u2028", "\u2029",
    "\u0301", "\u0308", "\u0323", "\u0338", "\u0345", "\u0f73", "\u0344", "e\u0301", "A\u030a", "<\u0338",
    "é", "É", "ß", "ẞ", "İ", "ı", "Σ", "ς", "ΟΔΟΣ", "ǅ", "ﬁ", "Ω", "Å", "\u212b", "\u0958",
    "中", "文", "\uf900", "\U00020000", "\u2f00", "한국어", "\u1100\u1161\u11a8", "ひらがな", "カタカナ",
    "русский", "עברית", "العربية", "हिन्दी", "ภาษาไทย", "ქართული",
    "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "\u2603\ufe0f",
    "[SEP]", "[CLS]", "[MASK]", "[C\x00LS]", "[sep]", "##", "##ing",
    ".", ",", "!", "?", "-", "'", '"', "$", "+", "^", "|", "~", "`", "¿", "«", "»", "—", "…", "、", "。", "‽",
    "hello", "Hello", "WORLD", "unaffable", "don't", "can't", "3.14", "1,000", "e-mail", "x" * 101,
]  # fmt: skip


def _random_text(rng: random.Random, max_parts: int = 12) -> str:
    """A random mix of the fragments, random code points of any plane and ASCII words."""
    parts = []
    for _ in range(rng.randrange(max_parts + 1)):
        kind = rng.random()
        if kind < 0.45:
            parts.append(rng.choice(FRAGMENTS))
        elif kind < 0.7:
            parts.append(chr(rng.randrange(0x110000)).encode("utf-8", "replace").decode("utf-8", "replace"))
        elif kind < 0.85:
            parts.append(chr(rng.randrange(0x3000)))
        else:
            parts.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEF0123456789") for _ in range(rng.randrange(1, 9))))
    return "".join(parts)


texts = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.characters(exclude_categories=("Cs",)), st.text(max_size=6)),
    max_size=14,
).map("".join)


# ---------------------------------------------------------------------------------------------
# Fixtures: the real uncased vocabulary, and a cased one built here
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return resolve("sentence-transformers/all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def uncased_vocab(minilm):
    return minilm / "vocab.txt"


@pytest.fixture(scope="module")
def cased_vocab(tmp_path_factory):
    """A small cased WordPiece-style vocabulary: specials, frequent corpus words, their suffix pieces,
    and every character we feed the tests both bare and as a ``##`` continuation."""
    words = collections.Counter(re.findall(r"[^\W\d_]+|\d+", CORPUS))
    chars = set(CORPUS) | set("".join(FRAGMENTS)) | {chr(c) for c in range(0x20, 0x250)}
    chars |= set("ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩαβγδεζηθικλμνξοπρστυφχψωςабвгдежзийклмнопрстуфхцчшщъыьэюя")
    chars = {c for c in chars if not c.isspace() and unicodedata.category(c)[0] != "C"}
    tokens = list(SPECIALS)
    tokens += [w for w, _ in words.most_common(3000)]
    tokens += ["Straße", "café", "Café", "naïve", "résumé", "Ωmega", "ΟΔΟΣ", "οδος", "οδοσ", "İstanbul"]
    tokens += ["##" + w[-k:] for w, _ in words.most_common(400) for k in (2, 3, 4) if len(w) > k]
    tokens += sorted(chars) + ["##" + c for c in sorted(chars)]
    unique = list(dict.fromkeys(tokens))
    path = tmp_path_factory.mktemp("cased") / "vocab.txt"
    path.write_text("".join(t + "\n" for t in unique), encoding="utf-8")
    return path


# (name, vocab fixture, constructor keywords): every combination the parity tests run.
CONFIGS = {
    "uncased": ("uncased_vocab", dict(do_lower_case=True)),
    "uncased-keep-accents": ("uncased_vocab", dict(do_lower_case=True, strip_accents=False)),
    "cased": ("cased_vocab", dict(do_lower_case=False)),
    "cased-strip-accents": ("cased_vocab", dict(do_lower_case=False, strip_accents=True)),
    "cased-no-cjk": ("cased_vocab", dict(do_lower_case=False, tokenize_chinese_chars=False)),
}


@pytest.fixture(scope="module")
def pair_for(request):
    cache = {}

    def make(name):
        if name not in cache:
            vocab_name, kwargs = CONFIGS[name]
            vocab = request.getfixturevalue(vocab_name)
            cache[name] = (BertTokenizer(vocab, **kwargs), BertTokenizerLegacy(str(vocab), **kwargs))
        return cache[name]

    return make


@pytest.fixture(scope="module")
def ours(minilm):
    return BertTokenizer.from_pretrained(minilm)


@pytest.fixture(scope="module")
def legacy(minilm):
    return BertTokenizerLegacy.from_pretrained(str(minilm))


@pytest.fixture(scope="module")
def rust(minilm):
    return RustBertTokenizer.from_pretrained(str(minilm))


# ---------------------------------------------------------------------------------------------
# Id parity
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["uncased", "cased"])
def test_pydoc_corpus_line_by_line_matches_legacy(config, pair_for):
    mine, ref = pair_for(config)
    mismatches = [line for line in LINES if mine.encode(line) != ref.encode(line)]
    assert not mismatches, f"{len(mismatches)} of {len(LINES)} lines differ, first: {mismatches[0]!r}"


def test_pydoc_corpus_matches_rust_and_batch_equals_line_by_line(ours, rust):
    batch = ours(LINES)["input_ids"]
    assert batch == [ours.encode(line) for line in LINES]
    assert batch == rust(LINES)["input_ids"]


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_random_unicode_matches_legacy(config, pair_for):
    """Thousands of seeded random strings from all planes and the tricky fragments, every config."""
    mine, ref = pair_for(config)
    rng = random.Random(f"wordpiece-{config}")
    for _ in range(1500):
        text = _random_text(rng)
        assert mine.tokenize(text) == ref.tokenize(text), repr(text)
        assert mine.encode(text) == ref.encode(text), repr(text)


@settings(max_examples=700, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=texts)
def test_hypothesis_uncased_matches_legacy(pair_for, text):
    mine, ref = pair_for("uncased")
    assert mine.tokenize(text) == ref.tokenize(text)
    assert mine.encode(text) == ref.encode(text)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=texts, config=st.sampled_from(["uncased-keep-accents", "cased", "cased-strip-accents", "cased-no-cjk"]))
def test_hypothesis_other_configs_match_legacy(pair_for, text, config):
    mine, ref = pair_for(config)
    assert mine.tokenize(text) == ref.tokenize(text)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(max_codepoint=0x24F, exclude_categories=("C",)), max_size=40))
def test_hypothesis_latin_matches_rust(ours, rust, text):
    """On Latin text the two references agree, so minibert must match the Rust one too."""
    assert ours.encode(text) == rust.encode(text)


def test_basic_and_wordpiece_match_legacy_components(uncased_vocab):
    from transformers.models.bert.tokenization_bert_legacy import BasicTokenizer as RefBasic
    from transformers.models.bert.tokenization_bert_legacy import WordpieceTokenizer as RefWordpiece

    rng = random.Random(3)
    vocab = BertTokenizer(uncased_vocab).vocab
    for kwargs in (dict(), dict(do_lower_case=False), dict(strip_accents=True, do_lower_case=False), dict(never_split=["Hello-World"])):
        mine, ref = BasicTokenizer(**kwargs), RefBasic(**kwargs)
        for _ in range(300):
            text = _random_text(rng) + " Hello-World hello-world"
            assert mine.tokenize(text) == ref.tokenize(text), (kwargs, text)
    mine_wp, ref_wp = WordpieceTokenizer(vocab), RefWordpiece(vocab, "[UNK]")
    for word in ["unaffable", "hello world", "x" * 100, "x" * 101, "##ing", "abc\u0301", ""]:
        assert mine_wp.tokenize(word) == ref_wp.tokenize(word)


def test_never_split_is_rechecked_after_lowercasing(uncased_vocab):
    """The reference keeps a word whole if it is in never_split before *or after* case folding."""
    kwargs = dict(never_split=["hello-world", "Foo.Bar"])
    mine, ref = BertTokenizer(uncased_vocab, **kwargs), BertTokenizerLegacy(str(uncased_vocab), **kwargs)
    for text in ["Hello-World", "hello-world", "Foo.Bar foo.bar", "HELLO-WORLD!"]:
        assert mine.tokenize(text) == ref.tokenize(text)
        assert mine.encode(text) == ref.encode(text)
        assert [t for t, _, _ in mine.tokenize_with_offsets(text)] == mine.tokenize(text)


# ---------------------------------------------------------------------------------------------
# Where the two references disagree: minibert follows the pure-Python one
# ---------------------------------------------------------------------------------------------

# (text, config, note). Each case: legacy != rust, and minibert == legacy.
KNOWN_DIFFERENCES = [
    ("ΟΔΟΣ.", "uncased", "Python's str.lower() gives the word-final sigma ς; Rust lowercases each char to σ"),
    ("[C\x00LS]", "uncased", "cleaning makes '[CLS]' out of it, which the Python one then keeps whole"),
    ("<\u0338", "cased", "the Python one applies NFC ('≮', a symbol) before splitting punctuation"),
    ("e\u0301", "cased", "NFC composes é in the Python one; Rust keeps e + combining accent"),
]


@pytest.mark.parametrize("text,config,note", KNOWN_DIFFERENCES)
def test_known_reference_differences(text, config, note, pair_for, uncased_vocab, cased_vocab):
    mine, ref = pair_for(config)
    vocab = uncased_vocab if config == "uncased" else cased_vocab
    rust_tok = RustBertTokenizer.from_pretrained(str(vocab.parent), **CONFIGS[config][1])
    assert ref.encode(text) != rust_tok.encode(text), f"references now agree on {text!r} ({note})"
    assert mine.encode(text) == ref.encode(text), note


def test_longest_first_tie_breaks_like_legacy(ours, legacy, rust):
    """With two equally long sequences and an odd excess, the Python one trims the second more."""
    a, b = "a b c", "d e f"
    ref = legacy(a, b, truncation=True, max_length=6)["input_ids"]
    assert ref != rust(a, b, truncation=True, max_length=6)["input_ids"]
    assert ours(a, b, truncation=True, max_length=6)["input_ids"] == ref


@pytest.mark.parametrize(
    "first,second,kwargs",
    [
        ("a b c d e f g", "h i j k l", dict(truncation="only_first", max_length=5)),
        ("a b c d e", "h i j k l", dict(truncation="only_first", max_length=8)),  # would empty the first
        ("a b c d e", "h i j k l", dict(truncation="only_second", max_length=8)),
        ("a b c d", None, dict(truncation="only_second", max_length=4)),  # no second sequence to cut
        (["a", "a b c d e f g"], ["h", "h"], dict(truncation="only_second", max_length=5, padding=True)),
    ],
)
def test_impossible_truncation_raises_like_rust(ours, legacy, rust, first, second, kwargs):
    """Where a strategy cannot reach max_length, the Rust tokenizer raises and so does minibert; the
    Python one empties the sequence (or does nothing) and returns more tokens than max_length."""
    with pytest.raises(Exception, match="Truncation error"):
        rust(first, second, **kwargs)
    with pytest.raises(InputError, match=r"truncation='only_(first|second)'.*(text\[1\]|the text)"):
        ours(first, second, **kwargs)
    legacy(first, second, **kwargs)  # the Python tokenizer does not raise: the references disagree here


# ---------------------------------------------------------------------------------------------
# Pairs, truncation, padding, tensors
# ---------------------------------------------------------------------------------------------

PAIR_TEXTS = [line for line in LINES if line.strip()][100:112]


def _reference_encode(legacy, rust, args, kwargs):
    """legacy's result, or the exception minibert must raise instead.

    minibert raises where either reference raises, and also where a pair has room for its three
    special tokens only while an ``only_*`` strategy asks to keep the other segment: the Python
    tokenizer then exceeds max_length and the Rust one empties both segments, ignoring the strategy.
    """
    if kwargs["truncation"] in ("only_first", "only_second") and kwargs["max_length"] == 3 and len(args) == 2:
        return InputError
    try:
        rust(*args, **kwargs)
    except Exception:  # its truncation errors are plain Exceptions, its option errors ValueErrors
        return InputError
    try:
        return legacy(*args, return_token_type_ids=True, return_special_tokens_mask=True, **kwargs)
    except ValueError:
        return InputError


# padding_side only matters where something is padded: (False, "left") would repeat (False, "right").
@pytest.mark.parametrize("padding, padding_side", [(False, "right")] + [
    (padding, side) for padding in (True, "longest", "max_length") for side in ("right", "left")])
@pytest.mark.parametrize("truncation", [False, True, "longest_first", "only_first", "only_second"])
def test_pairs_truncation_padding_match_legacy(ours, legacy, rust, truncation, padding, padding_side):
    firsts, seconds = PAIR_TEXTS[::2], PAIR_TEXTS[1::2]
    seconds = seconds[:-1] + ["short"]
    keys = ("input_ids", "token_type_ids", "attention_mask", "special_tokens_mask")
    checked = 0
    for max_length in (None, 3, 4, 7, 16, 40):
        for multiple in (None, 8):
            kwargs = dict(truncation=truncation, padding=padding, max_length=max_length, pad_to_multiple_of=multiple,
                          padding_side=padding_side)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for args in ((firsts, seconds), (firsts[0], seconds[0])):
                    ref = _reference_encode(legacy, rust, args, kwargs)
                    if ref is InputError:
                        with pytest.raises(InputError):
                            ours(*args, return_special_tokens_mask=True, **kwargs)
                        continue
                    got = ours(*args, return_special_tokens_mask=True, **kwargs)
                    for key in keys:
                        assert got[key] == ref[key], (key, kwargs)
                    checked += 1
    assert checked >= 8  # most combinations are possible and compared


def test_left_padding_puts_the_pads_first(ours, legacy):
    enc = ours(["a", "a b c"], padding=True, padding_side="left", return_special_tokens_mask=True,
               return_offsets_mapping=True)
    assert enc.input_ids[0] == [0, 0, 101, 1037, 102] and enc.attention_mask[0] == [0, 0, 1, 1, 1]
    assert enc.special_tokens_mask[0][:2] == [1, 1] and enc.offset_mapping[0][:3] == [(0, 0)] * 3
    left = BertTokenizer.from_pretrained(ours.vocab_file.parent, padding_side="left")
    assert left(["a", "a b c"], padding=True).input_ids == enc.input_ids
    assert left(["a", "a b c"], padding=True, padding_side="right").input_ids[0] == [101, 1037, 102, 0, 0]


def test_pairs_match_rust_without_ties(ours, rust):
    firsts, seconds = PAIR_TEXTS[::2], PAIR_TEXTS[1::2]
    for truncation in ("only_first", "only_second"):
        got = ours(firsts, seconds, truncation=truncation, max_length=64, padding="max_length")
        ref = rust(firsts, seconds, truncation=truncation, max_length=64, padding="max_length")
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            assert got[key] == ref[key]


@pytest.mark.parametrize("kind", ["pt", "np"])
def test_return_tensors(ours, legacy, kind):
    batch = ["Hello world!", "A longer sentence, with more words in it."]
    enc = ours(batch, padding=True, return_tensors=kind)
    ref = legacy(batch, padding=True, return_tensors=kind, return_token_type_ids=True)
    assert isinstance(enc, BatchEncoding) and isinstance(enc, dict)
    assert list(enc.keys()) == ["input_ids", "token_type_ids", "attention_mask"]
    for key in enc:
        assert enc[key].dtype == (torch.long if kind == "pt" else np.int64)
        assert enc[key].tolist() == ref[key].tolist()
    single = ours("Hello world!", return_tensors=kind)
    assert tuple(single.input_ids.shape) == (1, 5)
    if kind == "pt":
        assert enc.to("cpu") is enc and enc.input_ids.device.type == "cpu"
    with pytest.raises(InputError, match="padding=True"):
        ours(batch, return_tensors=kind)


def test_batch_encoding_attribute_access(ours):
    enc = ours("hello", return_special_tokens_mask=True, return_length=True)
    assert enc.input_ids is enc["input_ids"] and enc.special_tokens_mask == [1, 0, 1] and enc.length == 3
    assert "input_ids" in dir(enc)
    with pytest.raises(AttributeError, match="no field"):
        enc.offset_mapping
    assert ours("a", return_attention_mask=False, return_token_type_ids=False).keys() == {"input_ids"}


def test_add_special_tokens_false_and_empty_inputs(ours, legacy):
    for text in ["", "   ", "\x00\u200b", "hello"]:
        assert ours.encode(text) == legacy.encode(text)
        assert ours.encode(text, add_special_tokens=False) == legacy.encode(text, add_special_tokens=False)
    assert ours([])["input_ids"] == []
    for kwargs in (dict(), dict(truncation="only_second", max_length=3), dict(padding="max_length", max_length=6)):
        got = ours("a b", "c d", add_special_tokens=False, return_special_tokens_mask=True, **kwargs)
        ref = legacy("a b", "c d", add_special_tokens=False, return_special_tokens_mask=True,
                     return_token_type_ids=True, **kwargs)
        assert {k: got[k] for k in ref} == dict(ref), kwargs  # token types all 0 without special tokens


def test_too_long_warns_not_raises(ours):
    with pytest.warns(UserWarning, match="longer than model_max_length"):
        enc = ours("word " * 600)
    assert len(enc.input_ids) == 602
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(ours("word " * 600, truncation=True).input_ids) == 512
        assert len(ours("word " * 600, max_length=20).input_ids) == 20  # max_length alone truncates


# ---------------------------------------------------------------------------------------------
# Offsets
# ---------------------------------------------------------------------------------------------


def _normalized(tok: BertTokenizer, text: str) -> str:
    """``text`` through the basic tokenizer, with the pieces glued back together."""
    return "".join(tok.basic_tokenizer.tokenize(text, never_split=tok.all_special_tokens))


def _check_offsets(tok: BertTokenizer, text: str) -> None:
    """Every non-special token's span, normalised, spells the token.

    Tokens whose spans overlap were cut from one normalisation group (say ``İ`` -> ``i`` + dot,
    split across two pieces), so they are checked together: their concatenation must spell the
    normalised union of their spans.
    """
    triples = tok.tokenize_with_offsets(text)
    assert [t for t, _, _ in triples] == tok.tokenize(text)
    groups = []
    for token, start, end in triples:
        assert 0 <= start < end <= len(text), (token, start, end)
        if token == tok.unk_token:  # nothing to spell; but nothing sharing its span can be checked either
            if groups and start < groups[-1][2]:
                groups[-1][3] = True
            else:
                groups.append([[], start, end, True])
            continue
        if token in tok.all_special_tokens:  # typed in the text, or made by cleaning ("[C\x00LS]")
            assert tok.basic_tokenizer.clean(text[start:end]) == token
            continue
        piece = token[2:] if token.startswith("##") else token  # a basic token never starts with '#'
        if groups and start < groups[-1][2]:
            groups[-1][0].append(piece)
            groups[-1][2] = max(groups[-1][2], end)
        else:
            groups.append([[piece], start, end, False])
    for pieces, start, end, has_unk in groups:
        if has_unk:
            continue
        # Word-final sigma depends on context outside the span, so compare sigma-insensitively.
        want = _normalized(tok, text[start:end]).replace("ς", "σ")
        assert "".join(pieces).replace("ς", "σ") == want, (pieces, text[start:end])


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=texts, config=st.sampled_from(sorted(CONFIGS)))
def test_hypothesis_offsets_spell_the_tokens(pair_for, text, config):
    mine, _ = pair_for(config)
    _check_offsets(mine, text)


def test_offsets_on_random_unicode(pair_for):
    rng = random.Random("offsets")
    for config in CONFIGS:
        mine, _ = pair_for(config)
        for _ in range(300):
            _check_offsets(mine, _random_text(rng))


def test_offsets_match_rust_on_corpus(ours, rust):
    lines = [line for line in LINES if line.strip()][::3]
    got = ours(lines, return_offsets_mapping=True)
    ref = rust(lines, return_offsets_mapping=True)
    assert got["input_ids"] == ref["input_ids"]
    assert [[tuple(p) for p in row] for row in got["offset_mapping"]] == [[tuple(p) for p in row] for row in ref["offset_mapping"]]


def test_offsets_examples(ours):
    text = "Héllo, wörld! 中文 [SEP] unaffable"
    enc = ours(text, return_offsets_mapping=True)
    spans = [text[s:e] for s, e in enc.offset_mapping]
    assert enc.offset_mapping[0] == (0, 0) and enc.offset_mapping[-1] == (0, 0)
    assert spans[1:-1] == ["Héllo", ",", "wörld", "!", "中", "文", "[SEP]", "una", "ffa", "ble"]
    assert enc.input_ids == ours.encode(text)
    decomposed = "Cafe\u0301 ok"
    assert [(t, decomposed[s:e]) for t, s, e in ours.tokenize_with_offsets(decomposed)] == [
        ("cafe", "Cafe\u0301"),
        ("ok", "ok"),
    ]


# ---------------------------------------------------------------------------------------------
# Robustness and errors
# ---------------------------------------------------------------------------------------------


def test_million_character_inputs_finish(ours):
    rng = random.Random(1)
    parts, size = [], 0
    while size < 1_000_000:
        parts.append(_random_text(rng, 8))
        size += len(parts[-1])
    mixed = "".join(parts)[:1_000_000]
    assert len(mixed) == 1_000_000
    for text in (mixed, "a" * 1_000_000, "中" * 1_000_000, ("a," * 500_000), "\u0301" * 1_000_000):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ids = ours(text, truncation=False)["input_ids"]
        assert ids[0] == ours.cls_token_id and ids[-1] == ours.sep_token_id
    assert len(ours.tokenize_with_offsets(mixed)) == len(ours.tokenize(mixed))


@pytest.mark.parametrize("bad", [None, 3, 2.5, b"bytes", ["ok", 1], ("ok", None), {"text": "x"}])
def test_non_string_input_is_a_type_error(ours, bad):
    with pytest.raises(TypeError, match="must be a str"):
        ours(bad)
    assert issubclass(InputTypeError, TypeError)


def test_type_errors_name_the_argument(ours):
    with pytest.raises(InputTypeError, match=r"text must be a str.*int"):
        ours.tokenize(5)
    with pytest.raises(InputTypeError, match=r"text_pair must be a str.*bytes"):
        ours("a", b"b")
    with pytest.raises(InputTypeError, match=r"text\[1\] must be a str.*NoneType"):
        ours(["a", None])
    with pytest.raises(InputTypeError, match="text_pair must be a list"):
        ours(["a"], "b")
    with pytest.raises(InputError, match="1 items but text_pair has 2"):
        ours(["a"], ["b", "c"])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(padding="longest_first"), "padding must be one of.*'longest_first'"),
        (dict(padding="yes"), "padding must be one of"),
        (dict(truncation="only_third"), "truncation must be one of.*only_third"),
        (dict(truncation=[1]), "truncation must be one of"),
        (dict(max_length=-1), "max_length must be"),
        (dict(pad_to_multiple_of=0), "pad_to_multiple_of must be"),
        (dict(return_tensors="tf"), "return_tensors must be"),
        (dict(padding_side="middle"), "padding_side must be"),
        (dict(truncation=True, padding=True, max_length=10, pad_to_multiple_of=8), "multiple of pad_to_multiple_of"),
    ],
)
def test_bad_options_are_input_errors(ours, kwargs, match):
    with pytest.raises(InputError, match=match):
        ours("hello", **kwargs)


# ---------------------------------------------------------------------------------------------
# Vocabulary, decoding, saving
# ---------------------------------------------------------------------------------------------


def test_convert_tokens_and_ids_match_legacy(ours, legacy):
    tokens = ["hello", "##ing", "[CLS]", "not-a-token", "[UNK]"]
    assert ours.convert_tokens_to_ids(tokens) == legacy.convert_tokens_to_ids(tokens)
    assert ours.convert_tokens_to_ids("hello") == legacy.convert_tokens_to_ids("hello")
    ids = [101, 7592, 2088, 102, 0, 100]
    assert ours.convert_ids_to_tokens(ids) == legacy.convert_ids_to_tokens(ids)
    assert ours.convert_ids_to_tokens(ids, skip_special_tokens=True) == legacy.convert_ids_to_tokens(ids, skip_special_tokens=True)
    assert ours.convert_ids_to_tokens(7592) == "hello"
    assert ours.vocab_size == len(ours) == 30522 and ours.get_vocab() == legacy.vocab


def test_decode_matches_legacy(ours, legacy):
    lines = [line for line in LINES if line.strip()][:300] + ["Hello, world! Don't stop [SEP] it's ##x", "unaffable"]
    for line in lines:
        ids = ours.encode(line)
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == legacy.decode(ids, skip_special_tokens=skip)
    ids = ours(lines[:4], padding=True, return_tensors="pt").input_ids
    assert ours.batch_decode(ids, skip_special_tokens=True) == legacy.batch_decode(ids.tolist(), skip_special_tokens=True)
    assert ours.decode(ids[0].clone()) == ours.decode(ids[0].tolist())


@pytest.mark.parametrize("config", ["uncased", "cased-strip-accents", "cased-no-cjk"])
def test_save_pretrained_round_trips_into_transformers(config, pair_for, tmp_path):
    mine, _ = pair_for(config)
    mine.save_pretrained(tmp_path)
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8") == mine.vocab_file.read_text(encoding="utf-8")
    saved = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert saved["do_lower_case"] == mine.do_lower_case and saved["strip_accents"] == mine.strip_accents
    back_legacy = BertTokenizerLegacy.from_pretrained(str(tmp_path))
    back_rust = RustBertTokenizer.from_pretrained(str(tmp_path))
    back_ours = BertTokenizer.from_pretrained(tmp_path)
    assert back_legacy.model_max_length == back_ours.model_max_length == mine.model_max_length
    rng = random.Random(config)
    samples = [line for line in LINES if line.strip()][:200] + ["Straße café naïve ΟΔΟΣ 中文"]
    samples += [_random_text(rng) for _ in range(200)]
    for text in samples:
        want = mine.encode(text)
        assert back_legacy.encode(text) == want, text
        assert back_ours.encode(text) == want, text
    for text in samples[:200]:  # corpus lines: the two references agree on those
        assert back_rust.encode(text) == mine.encode(text), text


def test_from_pretrained_name_folder_and_file(minilm):
    by_name = BertTokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    by_folder = BertTokenizer.from_pretrained(minilm)
    by_file = BertTokenizer.from_pretrained(minilm / "vocab.txt")
    assert by_name.vocab_file == by_folder.vocab_file == by_file.vocab_file
    assert by_name.model_max_length == 512 and by_name.do_lower_case
    cased = BertTokenizer.from_pretrained(minilm, do_lower_case=False)
    assert cased.tokenize("Hello") != by_name.tokenize("Hello")


def test_vocab_with_duplicates_and_blank_lines_matches_legacy(tmp_path):
    vocab = SPECIALS + ["hello", "", "world", "hello", "##s", "", "a"]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="more than once"):
        mine = BertTokenizer(path)
    ref = BertTokenizerLegacy(str(path))
    for text in ["hello worlds", "a hello", "b"]:
        assert mine.encode(text) == ref.encode(text)
    assert mine.convert_tokens_to_ids("hello") == 8  # the last occurrence wins, as in the reference
    assert mine.convert_ids_to_tokens([5, 6, 7, 8]) == ["hello", "", "world", "hello"]


def test_vocab_without_special_tokens_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("hello\nworld\n[CLS]\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"no entry for unk_token='\[UNK\]'.*sep_token"):
        BertTokenizer(path)
    with pytest.raises(CheckpointError):
        BertTokenizer(tmp_path / "missing.txt")
    with pytest.raises(InputTypeError, match="vocab_file"):
        BertTokenizer(42)


def test_unlimited_model_max_length_pads_and_truncates_nothing(minilm):
    tok = BertTokenizer.from_pretrained(minilm, model_max_length=int(1e30))
    ref = BertTokenizerLegacy.from_pretrained(str(minilm), model_max_length=int(1e30))
    for kwargs in (dict(padding="max_length"), dict(truncation=True), dict(padding="max_length", truncation=True)):
        assert tok("a b c", **kwargs)["input_ids"] == ref("a b c", **kwargs)["input_ids"] == [101, 1037, 1038, 1039, 102]
