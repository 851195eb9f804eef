"""Config values that used to pass validation and give garbage, memory bombs, and a fuzz of every
field: each ends in a ConfigError naming the field (or in a config that builds a working model)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st

import minibert
from minibert import BertConfig, ConfigError, MinibertError
from minibert.checks import physical_memory_bytes

TINY = dict(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
            max_position_embeddings=8)


@pytest.mark.parametrize("values, match", [
    ({"layer_norm_eps": math.inf}, "layer_norm_eps"),
    ({"layer_norm_eps": math.nan}, "layer_norm_eps"),
    ({"layer_norm_eps": 1e300}, "layer_norm_eps"),
    ({"initializer_range": math.inf}, "initializer_range"),
    ({"initializer_range": 1e300}, "initializer_range"),
    ({"hidden_dropout_prob": math.nan}, "hidden_dropout_prob"),
    ({"classifier_dropout": "0.1"}, "classifier_dropout"),
    ({"vocab_size": 20.0}, "vocab_size"),
    ({"num_labels": 2e8}, "num_labels"),
    ({"num_hidden_layers": True}, "num_hidden_layers"),
    ({"pad_token_id": True}, "pad_token_id"),
    ({"pad_token_id": -1}, "pad_token_id"),
    ({"hidden_act": ["gelu"]}, "hidden_act"),
    ({"problem_type": "single_label_classification", "num_labels": 1}, "needs num_labels >= 2"),
    ({"id2label": {"0": "a", "5": "b"}}, r"id2label keys must be the ids 0\.\.1, got \[0, 5\]"),
    ({"id2label": {"x": "a"}}, "id2label keys must be integer ids"),
    ({"id2label": ["a", "b"]}, "id2label must map ids"),
    ({"id2label": {"0": 3}}, r"id2label\['0'\] must be a label name"),
    ({"label2id": {"a": "0"}}, r"label2id\['a'\] must be an integer id"),
    ({"label2id": {"a": 0, "b": 7}}, r"label2id\['b'\]=7 is not a label id"),
    ({"architectures": "BertModel"}, "architectures must be a list"),
    ({"architectures": [1]}, "architectures must be a list"),
])
def test_values_that_used_to_give_garbage_are_refused(values, match):
    with pytest.raises(ConfigError, match=match):
        BertConfig.from_dict({**TINY, **values})


def test_regression_with_several_labels_is_multi_target_regression_as_in_transformers():
    # transformers accepts it: MSE over (b, num_labels) targets. So does minibert; the labels'
    # shape is checked when the model runs (tests/test_hardening_labels.py).
    ours = BertConfig.from_dict({**TINY, "problem_type": "regression", "num_labels": 2})
    theirs = transformers.BertConfig(**TINY, problem_type="regression", num_labels=2)
    assert ours.num_labels == theirs.num_labels == 2 and ours.problem_type == theirs.problem_type


@pytest.mark.parametrize("values, overrides", [
    ({"num_labels": 5, "id2label": {"0": "a", "1": "b"}}, {}),   # both in the file, disagreeing
    ({"id2label": {"0": "a", "1": "b"}}, {"num_labels": 4}),     # from_pretrained(num_labels=4)
    ({"id2label": {"0": "a", "1": "b", "2": "c"}}, {}),          # names alone set the count
    ({"num_labels": 3, "id2label": {"0": "a", "1": "b", "2": "c"}}, {}),
    ({"num_labels": 2}, {"id2label": {0: "x", 1: "y", 2: "z"}}),  # new names override a stale count
])
def test_num_labels_and_id2label_resolve_as_in_transformers(tmp_path, values, overrides):
    ours = BertConfig.from_dict({**TINY, **values}, **overrides)
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "model_type": "bert", **values}))
    theirs = transformers.BertConfig.from_pretrained(tmp_path, **overrides)
    assert ours.num_labels == theirs.num_labels
    assert (ours.id2label or {i: f"LABEL_{i}" for i in range(ours.num_labels)}) == theirs.id2label
    # What minibert writes, transformers reads back the same.
    ours.to_json_file(tmp_path / "config.json")
    assert transformers.BertConfig.from_pretrained(tmp_path).num_labels == ours.num_labels


def test_deeply_nested_json_is_a_clear_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"extra": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(minibert.CheckpointError, match="nests JSON .* too deeply"):
        BertConfig.from_json_file(path)


@pytest.mark.parametrize("field, value", [("num_labels", 200_000_000), ("num_hidden_layers", 2_000_000),
                                          ("vocab_size", 10**10), ("max_position_embeddings", 10**12),
                                          ("hidden_size", 10**7)])
def test_memory_bombs_are_refused_before_allocating(field, value):
    values = {**TINY, "hidden_size": 768, "num_attention_heads": 12, field: value}  # BERT-base width
    if field == "hidden_size":
        values["num_attention_heads"] = 1
    with pytest.raises(ConfigError, match=rf"config\..*\b{field}={value}\b.* \(.* parameters.* would need about "
                                          r"[\d.e+]+ [KMGTP]?B, more than this machine's"):
        BertConfig(**values)


def test_the_estimate_is_the_parameter_count():
    config = BertConfig(**TINY, num_labels=3)
    model = minibert.BertForPreTraining(config)
    classifier = minibert.BertForSequenceClassification(config)
    counted = sum(config.parameter_counts().values())
    # The estimate covers the largest model a config builds: the pre-training heads plus a classifier.
    assert counted == model.num_parameters() + 3 * 8 + 3
    assert counted >= classifier.num_parameters()
    assert 4 * counted < physical_memory_bytes()


# ------------------------------------------------------------------------------------ fuzz
FIELDS = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
          "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
          "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id", "num_labels",
          "classifier_dropout", "position_embedding_type", "problem_type", "id2label", "label2id",
          "architectures"]
ODD_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 40) | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
    | st.sampled_from(["gelu", "regression", "absolute", "0", "1", "true", "false"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3) | st.sampled_from(["0", "1"]),
                                                               inner, max_size=3),
    max_leaves=6)


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), ODD_VALUES, max_size=4))
def test_fuzzed_config_values_give_a_config_error_or_a_working_model(values):
    try:
        config = BertConfig.from_dict({**TINY, **values})
    except MinibertError as exc:
        assert isinstance(exc, (ValueError, TypeError)) and str(exc)
        return
    # Whatever is accepted describes a model that fits and computes finite numbers.
    if sum(config.parameter_counts().values()) > 2_000_000:
        return  # valid and large: too slow to build here, and the estimate has vouched for it
    torch.manual_seed(0)
    model = minibert.BertForSequenceClassification(config).eval()
    ids = torch.randint(0, config.vocab_size, (2, min(4, config.max_position_embeddings)))
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (2, config.num_labels) and torch.isfinite(logits).all()
    again = BertConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again.to_dict() == config.to_dict()
