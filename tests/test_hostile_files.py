"""Checkpoints from anywhere: corrupted, truncated, lying or malicious files give a clean minibert
error (``CheckpointError``/``ConfigError``, both ValueErrors) and never run code. The second half:
values that overflow only after the cast, dtypes a weight never has, tensors without values, a
checkpoint whose names fill nothing, and the saved files' permissions."""

from __future__ import annotations

import json
import os
import pickle
import stat
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

import minibert
from minibert import CheckpointError, ConfigError, MinibertError

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
    state = load_file(str(good_dir / "model.safetensors"))
    state["encoder.layer.0.attention.self.key.weight"][0, 0] = float("nan")
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((good_dir / "config.json").read_text())
    with pytest.raises(CheckpointError, match="attention.self.key.weight.*contains NaN"):
        minibert.BertModel.from_pretrained(tmp_path)


# ------------------------------------------------------------------ second round (issue 14)
KEY = "encoder.layer.0.attention.self.key.weight"


def folder_with(tmp_path, good_dir, state, name="model.safetensors"):
    (tmp_path / "config.json").write_text((good_dir / "config.json").read_text())
    if name.endswith(".bin"):
        torch.save(state, tmp_path / name)
    else:
        save_file(state, str(tmp_path / name))
    return tmp_path


def good_state(good_dir):
    return load_file(str(good_dir / "model.safetensors"))


@pytest.mark.parametrize("stored, value, load_as", [
    (torch.float64, 1e300, torch.float32),
    (torch.float64, 1e300, None),          # the default dtype is float32
    (torch.float32, 1e6, torch.float16),
    (torch.float32, 1e39 / 1e3, torch.bfloat16),
])
def test_values_that_overflow_after_the_cast_are_refused(tmp_path, good_dir, stored, value, load_as):
    state = {k: v.to(stored) for k, v in good_state(good_dir).items()}
    state[KEY][0, 0] = value
    folder = folder_with(tmp_path, good_dir, state)
    if load_as is torch.bfloat16:  # bfloat16 has float32's range: this one fits and must load
        model = minibert.BertModel.from_pretrained(folder, dtype=load_as)
        assert all(torch.isfinite(p).all() for p in model.parameters())
        return
    with pytest.raises(CheckpointError, match=rf"{KEY} holds .* which overflows {load_as or torch.float32}"):
        minibert.BertModel.from_pretrained(folder, dtype=load_as)


def test_the_same_file_loads_in_a_wide_enough_dtype(tmp_path, good_dir):
    state = good_state(good_dir)
    state[KEY][0, 0] = 1e6
    model = minibert.BertModel.from_pretrained(folder_with(tmp_path, good_dir, state), dtype=torch.float32)
    assert model.state_dict()["layers.0.attn.qkv.weight"][8, 0] == 1e6  # rows [c, 2c) are the key


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2, torch.complex64])
def test_float8_and_complex_weights_are_refused_at_load(tmp_path, good_dir, dtype):
    state = good_state(good_dir)
    state[KEY] = state[KEY].to(dtype)
    with pytest.raises(CheckpointError, match=rf"{KEY} has dtype {dtype}"):
        minibert.BertModel.from_pretrained(folder_with(tmp_path, good_dir, state))


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.complex64, torch.int64, "complex128", "int8",
                                   "float8_e5m2", 3])
def test_loading_in_a_dtype_that_is_not_a_weight_dtype_is_refused(good_dir, dtype):
    with pytest.raises(ConfigError, match="dtype must be one of"):
        minibert.BertModel.from_pretrained(good_dir, dtype=dtype)


@pytest.mark.parametrize("kind", ["meta", "sparse_coo", "sparse_csr"])
def test_bin_holding_tensors_without_plain_values_is_a_clear_error(tmp_path, good_dir, kind):
    state = good_state(good_dir)
    if kind == "meta":
        state[KEY] = torch.empty(8, 8, device="meta")
    else:
        state[KEY] = state[KEY].to_sparse() if kind == "sparse_coo" else state[KEY].to_sparse_csr()
    folder = folder_with(tmp_path, good_dir, state, "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=rf"pytorch_model.bin: tensor '{KEY}' is (meta|layout)"):
        minibert.BertModel.from_pretrained(folder)


@pytest.mark.parametrize("rename, found", [
    (lambda k: "model." + k, r"'model\.' \(23\)"),                # a training wrapper's prefix
    (lambda k: k.replace("encoder.layer", "transformer.h"), r"'transformer\.' \(16\)"),
    (lambda k: "roberta." + k, "'roberta.'"),
])
def test_checkpoint_that_fills_none_of_the_encoder_names_what_it_found(tmp_path, good_dir, rename, found):
    state = {rename(k): v for k, v in good_state(good_dir).items()}
    with pytest.raises(CheckpointError, match=rf"fills only \d+ of the encoder's 19 tensors.*{found}"):
        minibert.BertForSequenceClassification.from_pretrained(folder_with(tmp_path, good_dir, state))


def test_checkpoint_that_fills_most_of_the_encoder_still_loads_with_a_report(tmp_path, good_dir):
    state = good_state(good_dir)
    del state["pooler.dense.weight"], state["pooler.dense.bias"]  # masked-LM checkpoints have no pooler
    model = minibert.BertModel.from_pretrained(folder_with(tmp_path, good_dir, state))
    assert model.load_report.missing == ["pooler.dense.weight", "pooler.dense.bias"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_files_get_the_permissions_the_umask_gives(tmp_path, umask):
    old = os.umask(umask)
    try:
        minibert.BertModel(CFG).save_pretrained(tmp_path / "out")
    finally:
        os.umask(old)
    for name in ("config.json", "model.safetensors"):
        assert stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) == 0o666 & ~umask, name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_tensor_values_and_dtypes_load_finite_or_fail_cleanly(tmp_path_factory, good_dir, data):
    state = good_state(good_dir)
    key = data.draw(st.sampled_from(sorted(state)))
    stored = data.draw(st.sampled_from([torch.float64, torch.float32, torch.float16, torch.bfloat16,
                                        torch.float8_e5m2, torch.int32, torch.complex64]))
    value = data.draw(st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e300, -1e6, 7e4]))
    tensor = state[key].to(torch.float64).clone()
    tensor.view(-1)[0] = value
    state[key] = tensor.to(stored)
    load_as = data.draw(st.sampled_from([None, torch.float16, torch.bfloat16, torch.float64, "auto"]))
    folder = folder_with(tmp_path_factory.mktemp("fuzz"), good_dir, state)
    try:
        model = minibert.BertModel.from_pretrained(folder, dtype=load_as)
    except MinibertError as exc:
        assert isinstance(exc, (ValueError, TypeError)) and str(exc)
        return
    # What loads is finite in the dtype it was loaded in (a finite but huge value, 1e154 in float64,
    # may still overflow in the forward: loading bounds no magnitudes, real checkpoints vary too much).
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("index", [[1], {"weight_map": ["a"]}, {"weight_map": {"x": 5}}, {"weight_map": {"x": None}},
                                   {"no_map": {}}, "[" * 100_000])
def test_hostile_shard_index_is_a_checkpoint_error(tmp_path, good_dir, index):
    (tmp_path / "config.json").write_text((good_dir / "config.json").read_text())
    text = index if isinstance(index, str) else json.dumps(index)
    (tmp_path / "model.safetensors.index.json").write_text(text)
    with pytest.raises(CheckpointError, match="model.safetensors.index.json"):
        minibert.BertModel.from_pretrained(tmp_path)


def test_config_argument_of_the_wrong_type_is_a_type_error(good_dir):
    with pytest.raises(minibert.InputTypeError, match="config must be a minibert BertConfig or None, got dict"):
        minibert.BertModel.from_pretrained(good_dir, config={"hidden_size": 8})
