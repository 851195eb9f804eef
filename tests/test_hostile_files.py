"""Checkpoints from anywhere: corrupted, truncated, lying or malicious files give a clean minibert
error (``CheckpointError``/``ConfigError``, both ValueErrors) and never run code."""

from __future__ import annotations

import json
import os
import pickle
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import minibert
from minibert import CheckpointError, MinibertError

CFG = minibert.BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=8, max_position_embeddings=8)


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    torch.manual_seed(0)
    minibert.BertModel(CFG).save_pretrained(folder)
    return folder


def with_weights(folder, data: bytes, name="model.safetensors"):
    (folder / "config.json").write_text(json.dumps(CFG.to_dict()))
    (folder / name).write_bytes(data)
    return folder


class Payload:
    """Unpickling this calls os.system: the classic pickle attack."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps({"embeddings.word_embeddings.weight": Payload(marker)})
    folder = with_weights(tmp_path, data, "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        minibert.BertModel.from_pretrained(folder)
    assert not marker.exists()
    # The same payload saved through torch.save (zip container) is refused too.
    torch.save({"x": Payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError):
        minibert.BertModel.from_pretrained(folder)
    assert not marker.exists()


def test_bin_that_is_not_a_state_dict(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        minibert.BertModel.from_pretrained(with_weights(tmp_path, (tmp_path / "pytorch_model.bin").read_bytes(),
                                                        "pytorch_model.bin"))


def safetensors_bytes(header: dict, payload: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + payload


@pytest.mark.parametrize("case", ["header length lies", "header not JSON", "offsets outside the file",
                                  "unknown dtype", "truncated", "empty file", "overlapping offsets"])
def test_corrupted_safetensors(tmp_path, good_dir, case):
    good = (good_dir / "model.safetensors").read_bytes()
    if case == "header length lies":
        data = struct.pack("<Q", 10**12) + good[8:]
    elif case == "header not JSON":
        data = struct.pack("<Q", 9) + b"not json!" + b"\0" * 16
    elif case == "offsets outside the file":
        data = safetensors_bytes({"embeddings.word_embeddings.weight": {
            "dtype": "F32", "shape": [20, 8], "data_offsets": [0, 640]}}, b"\0" * 64)
    elif case == "unknown dtype":
        data = safetensors_bytes({"embeddings.word_embeddings.weight": {
            "dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8)
    elif case == "overlapping offsets":
        data = safetensors_bytes({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                  "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12)
    elif case == "truncated":
        data = good[: len(good) // 2]
    else:
        data = b""
    with pytest.raises(CheckpointError, match="model.safetensors"):
        minibert.BertModel.from_pretrained(with_weights(tmp_path, data))


def test_tensor_with_wrong_dtype_is_named(tmp_path, good_dir):
    from safetensors.torch import load_file

    state = load_file(str(good_dir / "model.safetensors"))
    state["embeddings.LayerNorm.weight"] = torch.ones(8, dtype=torch.int32)
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((good_dir / "config.json").read_text())
    with pytest.raises(CheckpointError, match="LayerNorm.weight has dtype torch.int32"):
        minibert.BertModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("config, match", [
    ({"hidden_size": 10, "num_attention_heads": 3}, "multiple of"),
    ({"num_hidden_layers": -1}, "num_hidden_layers"),
    ({"hidden_act": "tanh"}, "hidden_act"),
    ({"vocab_size": "many"}, "vocab_size"),
    ({"layer_norm_eps": None}, "layer_norm_eps"),
])
def test_impossible_config_values(tmp_path, good_dir, config, match):
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes((good_dir / "model.safetensors").read_bytes())
    with pytest.raises(minibert.ConfigError, match=match):
        minibert.BertModel.from_pretrained(tmp_path)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_weight_files_give_only_clean_errors(tmp_path_factory, good_dir, data):
    good = (good_dir / "model.safetensors").read_bytes()
    kind = data.draw(st.sampled_from(["random", "mutated", "bin-random"]))
    if kind == "random":
        blob = data.draw(st.binary(max_size=2048))
        name = "model.safetensors"
    elif kind == "bin-random":
        blob = data.draw(st.binary(max_size=512))
        name = "pytorch_model.bin"
    else:
        blob = bytearray(good)
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(blob)))
        blob = bytes(blob[:cut]) if data.draw(st.booleans()) else bytes(blob)
        name = "model.safetensors"
    folder = with_weights(tmp_path_factory.mktemp("fuzz"), blob, name)
    try:
        model = minibert.BertModel.from_pretrained(folder)
    except MinibertError as exc:
        assert str(exc)  # a message, not a bare exception
        return
    # A mutation inside tensor data may still load: then every weight is at least a finite number.
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_weights_are_refused(tmp_path, good_dir):
    from safetensors.torch import load_file

    state = load_file(str(good_dir / "model.safetensors"))
    state["encoder.layer.0.attention.self.key.weight"][0, 0] = float("nan")
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((good_dir / "config.json").read_text())
    with pytest.raises(CheckpointError, match="attention.self.key.weight.*contains NaN"):
        minibert.BertModel.from_pretrained(tmp_path)
