"""BertConfig: HF field names, validation with clear errors, JSON both ways."""

from __future__ import annotations

import json

import pytest
import transformers

import minibert
from minibert import BertConfig, ConfigError


@pytest.mark.parametrize("field, value, match", [
    ("num_attention_heads", 5, "multiple of"),
    ("hidden_act", "gelu_fast", "hidden_act"),
    ("position_embedding_type", "relative_key", "position_embedding_type"),
    ("vocab_size", 0, "vocab_size"),
    ("hidden_dropout_prob", 1.5, "hidden_dropout_prob"),
    ("layer_norm_eps", -1.0, "layer_norm_eps"),
    ("pad_token_id", 10**6, "pad_token_id"),
    ("problem_type", "ranking", "problem_type"),
    ("num_labels", 0, "num_labels"),
])
def test_impossible_values_are_named(field, value, match):
    with pytest.raises(ConfigError, match=match):
        BertConfig(**{field: value})


def test_unknown_keys_are_kept_and_written_back(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 64, "num_attention_heads": 4, "my_flag": [1, 2],
                                "transformers_version": "4.0", "gradient_checkpointing": False}))
    cfg = BertConfig.from_json_file(path)
    assert cfg.hidden_size == 64 and cfg.extra == {"my_flag": [1, 2], "gradient_checkpointing": False}
    cfg.to_json_file(tmp_path / "out.json")
    again = json.loads((tmp_path / "out.json").read_text())
    assert again["my_flag"] == [1, 2] and again["model_type"] == "bert"


def test_num_labels_follows_id2label_and_transformers_agrees(tmp_path):
    cfg = BertConfig.from_dict({"id2label": {"0": "neg", "1": "neu", "2": "pos"}})
    assert cfg.num_labels == 3 and cfg.id2label[2] == "pos"
    cfg.to_json_file(tmp_path / "config.json")
    assert transformers.BertConfig.from_pretrained(tmp_path).num_labels == 3

    five = BertConfig(num_labels=5)
    five.to_json_file(tmp_path / "config.json")
    assert transformers.BertConfig.from_pretrained(tmp_path).num_labels == 5


def test_override_num_labels_drops_stale_label_names():
    cfg = BertConfig.from_dict({"id2label": {"0": "a", "1": "b"}}, num_labels=4)
    assert cfg.num_labels == 4 and cfg.id2label is None


def test_config_json_that_is_not_json_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(minibert.CheckpointError, match="not valid JSON"):
        BertConfig.from_json_file(tmp_path / "config.json")
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        BertConfig.from_json_file(tmp_path / "config.json")


def test_hf_config_round_trip_is_exact(minilm_dir):
    cfg = BertConfig.from_json_file(minilm_dir / "config.json")
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.vocab_size) == (384, 6, 12, 30522)
    assert BertConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()
