"""Hostile and odd tokenizer inputs: options, side files, memory bombs (issue 14's tokenizer classes).

Every bad value ends in a minibert error that names the argument or field (and the file), raised
before any heavy work; nothing is silently reinterpreted.
"""

from __future__ import annotations

import json
import re
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibert.errors import CheckpointError, InputError, InputTypeError, MinibertError
from minibert.tokenizer import BertTokenizer, encoding

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["hello", "world", "a", "b", "c", "d", "e", "f", "g", "h", "##s", ".", "<mask>", "[MY_MASK]"]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(SPECIALS + WORDS) + "\n", encoding="utf-8")
    return tmp_path


@pytest.fixture
def tok(folder):
    return BertTokenizer(folder / "vocab.txt")


def _with_config(folder, **fields):
    (folder / "tokenizer_config.json").write_text(json.dumps(fields), encoding="utf-8")
    return folder


# ---------------------------------------------------------------------------------------------
# Truncation and padding requests that cannot be met
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,kwargs,match",
    [
        (("a b c",), dict(truncation=True, max_length=1), r"max_length=1 leaves no room.*2 positions"),
        (("a b c", "d"), dict(truncation=True, max_length=2), r"max_length=2 leaves no room.*3 positions"),
        (("a b c",), dict(max_length=1), r"max_length=1"),  # max_length alone truncates
        (("a b c",), dict(truncation="only_first", max_length=0), r"max_length=0"),
        (("a b c",), dict(truncation=True, max_length=0, add_special_tokens=False), r"max_length=0"),
    ],
)
def test_max_length_below_the_special_tokens_is_an_error(tok, args, kwargs, match):
    with pytest.raises(InputError, match=match):
        tok(*args, **kwargs)


def test_max_length_equal_to_the_special_tokens_keeps_them_alone(tok):
    """Both references return the special tokens alone here, so minibert does too."""
    assert tok("a b c", truncation=True, max_length=2).input_ids == [2, 3]
    assert tok("a b c", "d", truncation=True, max_length=3).input_ids == [2, 3, 3]


def test_model_max_length_below_the_special_tokens_names_it(folder):
    tiny = BertTokenizer(folder / "vocab.txt", model_max_length=1)
    with pytest.raises(InputError, match=r"model_max_length=1"):
        tiny("a b", truncation=True)


def test_tensor_error_says_what_to_pass(tok, folder):
    batch = ["a", "a b c d e f"]
    with pytest.raises(InputError, match="pass padding=True"):
        tok(batch, return_tensors="pt")
    with pytest.raises(InputError, match=r"longer than max_length=4: pass truncation=True") as info:
        tok(batch, padding="max_length", max_length=4, truncation=False, return_tensors="pt")
    assert "padding=True" not in str(info.value)
    unlimited = BertTokenizer(folder / "vocab.txt", model_max_length=int(1e30))
    with pytest.raises(InputError, match="no length to pad to: pass max_length"):
        unlimited(batch, padding="max_length", return_tensors="np")


def test_unknown_option_is_a_type_error(tok):
    with pytest.raises(InputTypeError, match="stride"):
        tok("a", stride=2)


# ---------------------------------------------------------------------------------------------
# Memory bombs: padding to an absurd length is refused before anything is allocated
# ---------------------------------------------------------------------------------------------


def test_padding_to_a_huge_model_max_length_is_refused(folder, monkeypatch):
    monkeypatch.setattr(encoding, "available_memory", lambda: 8 << 30)  # as on a small machine
    bomb = BertTokenizer.from_pretrained(_with_config(folder, model_max_length=1e8))
    assert bomb.model_max_length == 100_000_000
    with pytest.raises(InputError, match=r"model_max_length=100000000.*about 2\.2 GiB"):
        bomb("hello", padding="max_length")
    assert bomb("hello world").input_ids == [2, 5, 6, 3]  # without padding it is harmless


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(padding="max_length", max_length=10**12), r"max_length=1000000000000"),
        (dict(padding=True, pad_to_multiple_of=10**12), r"the longest row"),
        (dict(padding="max_length", max_length=10**11, return_tensors="pt"), r"GiB"),
    ],
)
def test_padding_that_cannot_fit_anywhere_is_refused(tok, kwargs, match):
    with pytest.raises(InputError, match=match):
        tok(["hello", "a"], **kwargs)


# ---------------------------------------------------------------------------------------------
# Special tokens and constructor values
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", " ", "\t\n"])
@pytest.mark.parametrize("name", ["mask_token", "unk_token", "pad_token", "cls_token", "sep_token"])
def test_empty_special_tokens_are_errors(folder, name, value):
    with pytest.raises(InputError, match=rf"{name} must not be empty or whitespace.*{re.escape(repr(value))}"):
        BertTokenizer(folder / "vocab.txt", **{name: value})


def test_special_token_of_the_wrong_type(folder):
    with pytest.raises(InputTypeError, match="mask_token must be a str, got NoneType"):
        BertTokenizer(folder / "vocab.txt", mask_token=None)


def test_custom_special_token_is_cut_out_whole(folder):
    tok = BertTokenizer(folder / "vocab.txt", mask_token="[MY_MASK]")
    assert tok.tokenize("hello[MY_MASK]world") == ["hello", "[MY_MASK]", "world"]


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(do_lower_case=None), InputTypeError, "do_lower_case must be true or false"),
        (dict(do_lower_case="maybe"), InputTypeError, "do_lower_case must be true or false.*maybe"),
        (dict(tokenize_chinese_chars=1), InputTypeError, "tokenize_chinese_chars"),
        (dict(strip_accents="sometimes"), InputTypeError, "strip_accents"),
        (dict(model_max_length=16.5), InputTypeError, "model_max_length must be a positive whole number.*16.5"),
        (dict(model_max_length=0), InputError, "model_max_length"),
        (dict(model_max_length=True), InputTypeError, "model_max_length"),
        (dict(padding_side="middle"), InputError, "padding_side"),
    ],
)
def test_bad_constructor_values(folder, kwargs, error, match):
    with pytest.raises(error, match=match):
        BertTokenizer(folder / "vocab.txt", **kwargs)


def test_constructor_reads_bool_words_and_whole_floats(folder):
    tok = BertTokenizer(folder / "vocab.txt", do_lower_case="false", model_max_length=16.0)
    assert tok.do_lower_case is False and tok.model_max_length == 16
    assert tok.tokenize("Hello") == ["[UNK]"]  # cased: "Hello" is not in the lowercase vocabulary


# ---------------------------------------------------------------------------------------------
# Side files
# ---------------------------------------------------------------------------------------------


def test_do_lower_case_written_as_a_string(folder):
    tok = BertTokenizer.from_pretrained(_with_config(folder, do_lower_case="false"))
    assert tok.do_lower_case is False and tok.tokenize("Hello hello") == ["[UNK]", "hello"]
    tok = BertTokenizer.from_pretrained(_with_config(folder, do_lower_case="True", strip_accents="false"))
    assert tok.do_lower_case is True and tok.strip_accents is False


def test_model_max_length_written_as_a_float(folder):
    assert BertTokenizer.from_pretrained(_with_config(folder, model_max_length=16.0)).model_max_length == 16
    assert BertTokenizer.from_pretrained(_with_config(folder, model_max_length=1e30)).model_max_length == 512


@pytest.mark.parametrize(
    "fields,match",
    [
        (dict(do_lower_case="no"), "do_lower_case must be true or false.*'no'"),
        (dict(do_lower_case=0), "do_lower_case must be true or false.*int"),
        (dict(clean_up_tokenization_spaces=[]), "clean_up_tokenization_spaces"),
        (dict(model_max_length=16.5), "model_max_length.*16.5"),
        (dict(model_max_length="512"), "model_max_length.*'512'"),
        (dict(model_max_length=-3), "model_max_length.*-3"),
        (dict(model_max_length=float("inf")), "model_max_length.*inf"),
        (dict(mask_token=""), "mask_token must not be empty"),
        (dict(mask_token={"content": ""}), "mask_token must not be empty"),
        (dict(unk_token=7), "unk_token must be a str"),
        (dict(never_split="hello"), "never_split must be a list of str"),
        (dict(padding_side="center"), "padding_side"),
        (dict(do_basic_tokenize=False), "do_basic_tokenize is false"),
        (dict(truncation_side="left"), "truncation_side must be 'right'"),
    ],
)
def test_bad_side_file_values_name_the_file_and_field(folder, fields, match):
    _with_config(folder, **fields)
    with pytest.raises(CheckpointError, match=rf"tokenizer_config\.json: {match}"):
        BertTokenizer.from_pretrained(folder)


def test_side_file_of_the_wrong_shape(folder):
    (folder / "special_tokens_map.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"special_tokens_map\.json must hold a JSON object, got list"):
        BertTokenizer.from_pretrained(folder)
    (folder / "special_tokens_map.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"cannot read .*special_tokens_map\.json"):
        BertTokenizer.from_pretrained(folder)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
_FIELDS = ["do_lower_case", "tokenize_chinese_chars", "strip_accents", "clean_up_tokenization_spaces",
           "model_max_length", "never_split", "padding_side", "do_basic_tokenize", "truncation_side",
           "unk_token", "sep_token", "pad_token", "cls_token", "mask_token", "tokenizer_class"]
_field_values = st.one_of(
    _json_values,
    st.sampled_from(["true", "false", "False", "left", "right", "[MASK]", "[UNK]", "", " ", 512, 16.0, 1e30]),
    st.fixed_dictionaries({"content": st.sampled_from(["[MASK]", "", "<mask>", "x"])}),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=st.dictionaries(st.sampled_from(_FIELDS), _field_values, max_size=6))
def test_fuzzed_tokenizer_config_loads_or_fails_clearly(folder, config):
    """Any tokenizer_config.json: a working tokenizer with well-typed settings, or a CheckpointError."""
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    try:
        tok = BertTokenizer.from_pretrained(folder)
    except CheckpointError as exc:
        assert "tokenizer_config.json" in str(exc) or "vocabulary" in str(exc)
        return
    assert isinstance(tok.do_lower_case, bool) and isinstance(tok.tokenize_chinese_chars, bool)
    assert tok.strip_accents in (None, True, False)
    assert type(tok.model_max_length) is int and tok.model_max_length > 0
    assert all(isinstance(t, str) and t.strip() for t in tok.all_special_tokens)
    enc = tok("hello world", padding="max_length", max_length=8, truncation=True, padding_side="right")
    assert enc.input_ids[:2] == [tok.cls_token_id, 5] and len(enc.input_ids) == 8


_options = st.fixed_dictionaries(
    {},
    optional={
        "padding": st.sampled_from([False, True, "longest", "max_length", "do_not_pad", "yes", None, 1]),
        "truncation": st.sampled_from([None, False, True, "longest_first", "only_first", "only_second", "x"]),
        "max_length": st.one_of(st.none(), st.integers(-2, 12), st.sampled_from([2.0, "8"])),
        "pad_to_multiple_of": st.one_of(st.none(), st.integers(-1, 5)),
        "padding_side": st.sampled_from([None, "left", "right", "up"]),
        "return_tensors": st.sampled_from([None, "pt", "np", "tf"]),
        "add_special_tokens": st.booleans(),
        "return_offsets_mapping": st.booleans(),
        "return_special_tokens_mask": st.booleans(),
        "return_length": st.booleans(),
    },
)
_texts = st.lists(st.text(alphabet="abcdefgh .", max_size=20), min_size=1, max_size=3)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(options=_options, firsts=_texts, seconds=st.one_of(st.none(), _texts), batched=st.booleans())
def test_fuzzed_options_give_consistent_rows_or_clear_errors(tok, options, firsts, seconds, batched):
    text = firsts if batched else firsts[0]
    pair = None if seconds is None else ((seconds + firsts)[: len(firsts)] if batched else seconds[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            enc = tok(text, pair, **options)
        except (InputError, InputTypeError) as exc:
            assert isinstance(exc, MinibertError)
            return
    def rows(name):  # a column as a list of rows, whatever the form (tensors always have a batch axis)
        column = enc[name].tolist() if hasattr(enc[name], "tolist") else enc[name]
        return column if batched or hasattr(enc[name], "tolist") else [column]

    ids, masks = rows("input_ids"), rows("attention_mask")
    for name in enc:
        if name != "length":
            assert [len(r) for r in rows(name)] == [len(r) for r in ids], name
    if options.get("padding") in (True, "longest"):
        assert len({len(r) for r in ids}) == 1
    max_length = options.get("max_length")
    truncation, padding = options.get("truncation"), options.get("padding", False)
    truncating = truncation not in (None, False) or (max_length is not None and padding is False and truncation is None)
    if truncating and isinstance(max_length, int) and max_length > 0:
        assert all(sum(m) <= max_length for m in masks)
    side = options.get("padding_side") or "right"
    for mask, row in zip(masks, ids):
        assert mask == sorted(mask, reverse=side == "right")  # the padding is all on one side
        assert all(i == 0 for i, m in zip(row, mask) if m == 0)  # [PAD] is id 0 here
