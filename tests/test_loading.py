"""Checkpoint loading: every layout found in the wild, local name resolution, and the load report."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
import transformers
from safetensors.torch import load_file, save_file

import minibert
from minibert import CheckpointError, CheckpointNotFoundError

CFG = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=24,
           max_position_embeddings=32)


@pytest.fixture
def hf_pretraining_dir(tmp_path):
    """A BertForPreTraining checkpoint written by transformers itself (random init)."""
    torch.manual_seed(0)
    model = transformers.BertForPreTraining(transformers.BertConfig(**CFG))
    model.save_pretrained(tmp_path / "hf")
    return tmp_path / "hf", model.eval()


def outputs_equal(ours, ref, ids):
    with torch.no_grad():
        a, b = ours(ids), ref(input_ids=ids)
    for name in ("prediction_logits", "seq_relationship_logits", "last_hidden_state", "logits"):
        if hasattr(b, name) and getattr(b, name) is not None:
            torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-5, rtol=1e-5)


def test_loads_in_eval_mode_with_a_clean_report(hf_pretraining_dir):
    folder, ref = hf_pretraining_dir
    ours = minibert.BertForPreTraining.from_pretrained(folder)
    assert not ours.training
    assert ours.load_report.missing == [] and ours.load_report.unexpected == []
    outputs_equal(ours, ref, torch.randint(0, 50, (2, 7)))


def test_pytorch_model_bin_with_legacy_names_and_buffers(hf_pretraining_dir, tmp_path):
    folder, ref = hf_pretraining_dir
    state = load_file(str(folder / "model.safetensors"))
    legacy = {}
    for key, tensor in state.items():
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        legacy[key] = tensor
    legacy["bert.embeddings.position_ids"] = torch.arange(32)[None]
    legacy["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    out = tmp_path / "bin"
    out.mkdir()
    shutil.copy(folder / "config.json", out / "config.json")
    torch.save(legacy, out / "pytorch_model.bin")
    ours = minibert.BertForPreTraining.from_pretrained(out)
    assert ours.load_report.missing == [] and ours.load_report.unexpected == []
    outputs_equal(ours, ref, torch.randint(0, 50, (2, 5)))


def test_encoder_checkpoint_without_prefix_into_a_head_model_initialises_the_head(tmp_path):
    torch.manual_seed(1)
    encoder = transformers.BertModel(transformers.BertConfig(**CFG)).eval()
    encoder.save_pretrained(tmp_path)
    assert not any(k.startswith("bert.") for k in load_file(str(tmp_path / "model.safetensors")))
    clf = minibert.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
    assert sorted(clf.load_report.missing) == ["classifier.bias", "classifier.weight"]
    assert clf.classifier.weight.shape == (3, 16) and clf.classifier.weight.std() > 0
    ids = torch.randint(0, 50, (2, 6))
    with torch.no_grad():
        torch.testing.assert_close(clf.bert(ids).last_hidden_state, encoder(input_ids=ids).last_hidden_state,
                                   atol=1e-5, rtol=1e-5)


def test_head_checkpoint_into_bare_encoder_reports_the_head_as_unexpected(hf_pretraining_dir):
    folder, ref = hf_pretraining_dir
    enc = minibert.BertModel.from_pretrained(folder)
    assert enc.load_report.missing == []
    assert "cls.seq_relationship.weight" in enc.load_report.unexpected
    model, info = minibert.BertModel.from_pretrained(folder, output_loading_info=True)
    assert info["unexpected_keys"] == enc.load_report.unexpected


def test_shape_mismatch_names_the_parameter_and_both_shapes(hf_pretraining_dir):
    folder, _ = hf_pretraining_dir
    with pytest.raises(CheckpointError, match=r"word_embeddings.*\(50, 16\).*embeddings\.word\.weight.*\(60, 16\)"):
        minibert.BertForPreTraining.from_pretrained(folder, vocab_size=60)


def test_ignore_mismatched_sizes_reinitialises(tmp_path):
    clf = minibert.BertForSequenceClassification(minibert.BertConfig(**CFG, num_labels=2))
    clf.save_pretrained(tmp_path)
    again = minibert.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=5, ignore_mismatched_sizes=True)
    assert [m[0] for m in again.load_report.mismatched] == ["classifier.weight", "classifier.bias"]


def test_weights_file_path_and_sharded_index(hf_pretraining_dir, tmp_path):
    folder, ref = hf_pretraining_dir
    ids = torch.randint(0, 50, (1, 4))
    outputs_equal(minibert.BertForPreTraining.from_pretrained(folder / "model.safetensors"), ref, ids)
    state = load_file(str(folder / "model.safetensors"))
    keys = sorted(state)
    shard = tmp_path / "sharded"
    shard.mkdir()
    shutil.copy(folder / "config.json", shard)
    halves = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, names in halves.items():
        save_file({k: state[k].contiguous() for k in names}, str(shard / name))
    index = {"metadata": {}, "weight_map": {k: n for n, names in halves.items() for k in names}}
    (shard / "model.safetensors.index.json").write_text(json.dumps(index))
    outputs_equal(minibert.BertForPreTraining.from_pretrained(shard), ref, ids)


def test_hugging_face_cache_layout(hf_pretraining_dir, tmp_path, monkeypatch):
    folder, ref = hf_pretraining_dir
    repo = tmp_path / "cache" / "models--someorg--tiny-bert"
    snapshot = repo / "snapshots" / "abc123"
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert minibert.resolve("someorg/tiny-bert") == snapshot
    outputs_equal(minibert.BertForPreTraining.from_pretrained("someorg/tiny-bert"), ref, torch.randint(0, 50, (1, 3)))
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    (tmp_path / "hub").symlink_to(tmp_path / "cache")
    assert minibert.resolve("someorg/tiny-bert").resolve() == snapshot.resolve()


def test_unknown_name_is_a_clear_error_that_never_downloads():
    with pytest.raises(CheckpointNotFoundError, match="never downloads"):
        minibert.BertModel.from_pretrained("bert-base-uncased-that-does-not-exist")


def test_folder_without_weights_or_config(tmp_path):
    with pytest.raises(CheckpointError, match="no weights"):
        minibert.BertModel.from_pretrained(tmp_path)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="no config.json"):
        minibert.BertModel.from_pretrained(tmp_path)


def test_unknown_keyword_is_a_type_error(hf_pretraining_dir):
    with pytest.raises(TypeError, match="num_lables"):
        minibert.BertModel.from_pretrained(hf_pretraining_dir[0], num_lables=3)


def test_save_then_transformers_loads_every_head(tmp_path):
    for name in ("BertModel", "BertForMaskedLM", "BertForSequenceClassification", "BertForTokenClassification"):
        torch.manual_seed(0)
        ours = getattr(minibert, name)(minibert.BertConfig(**CFG)).eval()
        ours.save_pretrained(tmp_path / name)
        ref, info = getattr(transformers, name).from_pretrained(tmp_path / name, output_loading_info=True)
        assert info["missing_keys"] == set() or not info["missing_keys"], (name, info)
        assert not info["unexpected_keys"], (name, info)
        outputs_equal(ours, ref.eval(), torch.randint(0, 50, (2, 5)))


def test_google_tf_checkpoint_folder_loads_and_matches_tensorflow():
    from pathlib import Path

    folder = Path(__file__).parent / "fixtures" / "tf" / "tiny_bert"
    model = minibert.BertForPreTraining.from_pretrained(folder, dtype=torch.float64)
    assert model.config.hidden_act == "gelu_new"  # Google's GELU is the tanh form
    assert model.load_report.missing == [] and model.load_report.unexpected == []
    ref = np.load(folder / "reference.npz")
    inputs = {k: torch.from_numpy(ref[k]).long() for k in ("input_ids", "token_type_ids", "attention_mask")}
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    real = inputs["attention_mask"].bool()
    seq = torch.from_numpy(ref["sequence_output"]).double()
    torch.testing.assert_close(out.hidden_states[-1][real], seq[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.seq_relationship_logits, torch.from_numpy(ref["nsp_logits"]).double(),
                               atol=1e-5, rtol=1e-5)
    mlm = torch.from_numpy(ref["mlm_logits"]).double()
    torch.testing.assert_close(out.prediction_logits[real], mlm[real], atol=1e-5, rtol=1e-5)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40) | st.sampled_from(["x" * 5000, "~nouser_xyz/model", "a\x00b", "../" * 50, "~"])
       | st.binary(max_size=8))
def test_any_name_resolves_or_is_a_clear_error(name):
    from minibert.checkpoints.hub import resolve

    try:
        resolve(name)
    except minibert.MinibertError as exc:
        assert isinstance(exc, (ValueError, TypeError)) and str(exc)
