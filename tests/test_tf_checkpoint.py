"""The TensorFlow checkpoint reader, checked against checkpoints that real TensorFlow wrote.

The fixtures under tests/fixtures/tf/ come from make_fixtures.py (run once, by hand, with TensorFlow
in a throwaway venv); nothing here imports TensorFlow. Besides the real files, a tiny table *writer*
below builds hand-made indexes, to reach the error paths that a CRC would otherwise guard.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minibert.checkpoints.tf as tfc
from minibert.errors import CheckpointError, CheckpointNotFoundError
from minibert.checkpoints.tf import (
    GOOGLE_TO_HF,
    crc32c,
    is_tf_checkpoint,
    load_tf_bert,
    map_google_name,
    read_google_config,
    read_tf_checkpoint,
    read_tf_index,
)

FIXTURES = Path(__file__).parent / "fixtures" / "tf"
TINY = FIXTURES / "tiny_bert"
SHARDED = FIXTURES / "tiny_bert_sharded"
DTYPES = FIXTURES / "dtypes"


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def raw_bytes_for_hash(array: np.ndarray, dtype_name: str) -> bytes:
    """The bytes make_fixtures.py hashed: little-endian, C order, bfloat16 as its 16-bit pattern."""
    if dtype_name == "bfloat16":
        array = (array.view(np.uint32) >> 16).astype(np.uint16)
    elif dtype_name == "bool":
        array = array.astype(np.uint8)
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


# ---------------------------------------------------------------------------------------------
# CRC-32C
# ---------------------------------------------------------------------------------------------

def test_crc32c_known_values():
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283          # the standard check value
    assert crc32c(bytes(32)) == 0x8A9136AA             # RFC 3720 test vectors
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E


@pytest.mark.parametrize("n", [65535, 65536, 65537, 200_003])
def test_crc32c_parallel_path_matches_bytewise(n):
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    assert crc32c(data) == tfc._crc_register_bytewise(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    assert crc32c(data[1000:], crc32c(data[:1000])) == crc32c(data)


# ---------------------------------------------------------------------------------------------
# The real fixtures: every tensor as TensorFlow saw it.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("folder", [TINY, SHARDED, DTYPES], ids=lambda p: p.name)
def test_every_tensor_matches_tensorflow(folder):
    expected = manifest(folder)
    tensors = read_tf_checkpoint(folder)
    numeric = {n for n, e in expected.items() if e["dtype"] != "string"}
    assert set(tensors) == numeric                       # strings are skipped, nothing else
    _, entries = read_tf_index(folder)
    assert set(entries) == set(expected)
    for name in numeric:
        want = expected[name]
        got = tensors[name]
        assert entries[name].dtype_name == want["dtype"], name
        assert list(got.shape) == want["shape"], name
        digest = hashlib.sha256(raw_bytes_for_hash(got, want["dtype"])).hexdigest()
        assert digest == want["sha256"], f"values of {name} differ from TensorFlow's"
        assert got.flags.writeable and got.flags.c_contiguous


def test_dtypes_come_back_as_numpy_types():
    t = read_tf_checkpoint(DTYPES)
    assert t["odd/float16"].dtype == np.float16
    assert t["odd/bfloat16"].dtype == np.float32        # widened exactly
    assert t["odd/float64"].dtype == np.float64
    assert t["odd/int32"].dtype == np.int32
    assert t["odd/int64"].tolist() == [-(2**62), -1, 0, 1, 2**62]
    assert t["odd/bool"].tolist() == [[True, False, True], [False, False, True]]
    assert t["odd/scalar"].shape == () and float(t["odd/scalar"]) == 3.25
    assert t["odd/empty"].shape == (0, 3)
    assert "odd/string" not in t


def test_string_tensors_on_request(tmp_path):
    strings = read_tf_checkpoint(DTYPES, include_strings=True)["odd/string"]
    assert strings.dtype == object and strings.tolist() == [b"hello", b"", b"world!"]
    folder = tmp_path / "d"
    shutil.copytree(DTYPES, folder)
    _, entries = read_tf_index(folder)
    data = folder / "model.ckpt.data-00000-of-00001"
    patch(data, entries["odd/string"].offset + entries["odd/string"].size - 1, xor=1)   # in "world!"
    read_tf_checkpoint(folder)                                  # skipped by default: not even read
    with pytest.raises(CheckpointError, match="'odd/string'.*checksum mismatch"):
        read_tf_checkpoint(folder, include_strings=True)
    patch(data, entries["odd/string"].offset, xor=1)            # a length: 5 -> 4
    with pytest.raises(CheckpointError, match="'odd/string'"):
        read_tf_checkpoint(folder, include_strings=True)


def test_index_header_and_shards():
    header, entries = read_tf_index(TINY)
    assert header.num_shards == 1 and not header.big_endian
    assert entries["global_step"].dtype_name == "int64"
    header, entries = read_tf_index(SHARDED)
    assert header.num_shards == 2
    assert {e.shard_id for e in entries.values()} == {0, 1}


def test_paths_prefix_index_file_and_folder():
    by_folder = read_tf_checkpoint(TINY)
    by_prefix = read_tf_checkpoint(TINY / "bert_model.ckpt")
    by_index = read_tf_checkpoint(str(TINY / "bert_model.ckpt.index"))
    assert by_folder.keys() == by_prefix.keys() == by_index.keys()
    assert is_tf_checkpoint(TINY) and is_tf_checkpoint(TINY / "bert_model.ckpt")
    assert is_tf_checkpoint(TINY / "bert_model.ckpt.index")
    assert not is_tf_checkpoint(FIXTURES) and not is_tf_checkpoint(TINY / "vocab.txt")
    assert not is_tf_checkpoint(TINY / "nope.ckpt")


def test_path_errors(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="no TensorFlow checkpoint"):
        read_tf_checkpoint(tmp_path)
    with pytest.raises(CheckpointNotFoundError, match="looked for"):
        read_tf_checkpoint(tmp_path / "bert_model.ckpt")
    for name in ("a.ckpt", "b.ckpt"):
        for f in TINY.glob("bert_model.ckpt.*"):
            shutil.copy(f, tmp_path / f.name.replace("bert_model.ckpt", name))
    with pytest.raises(CheckpointError, match="several TensorFlow checkpoints"):
        read_tf_checkpoint(tmp_path)
    assert "bert/pooler/dense/bias" in read_tf_checkpoint(tmp_path / "a.ckpt")


# ---------------------------------------------------------------------------------------------
# Google names -> Hugging Face names, and a forward pass that must match TensorFlow's.
# ---------------------------------------------------------------------------------------------

def expected_hf_names(layers: int, heads: bool) -> set:
    names = set()
    for tf_name, (hf_name, _) in GOOGLE_TO_HF.items():
        if tf_name.startswith("cls/") and not heads:
            continue
        names |= {hf_name.format(n) for n in range(layers)} if "{}" in hf_name else {hf_name}
    return names


def test_load_tf_bert_names_transposes_and_skips():
    state, skipped = load_tf_bert(TINY)
    assert set(state) == expected_hf_names(2, heads=True)
    assert skipped == sorted(["global_step"] + [f"{v}/{s}" for v in (
        "bert/embeddings/LayerNorm/gamma", "bert/encoder/layer_1/output/dense/bias",
        "cls/seq_relationship/output_bias") for s in ("adam_m", "adam_v")])
    raw = read_tf_checkpoint(TINY)
    for name, tensor in state.items():
        assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    q = state["bert.encoder.layer.1.attention.self.query.weight"].numpy()
    np.testing.assert_array_equal(q, raw["bert/encoder/layer_1/attention/self/query/kernel"].T)
    inter = state["bert.encoder.layer.0.intermediate.dense.weight"]
    assert tuple(inter.shape) == (37, 32)                  # torch Linear: (out, in)
    assert tuple(state["bert.encoder.layer.0.output.dense.weight"].shape) == (32, 37)
    nsp = state["cls.seq_relationship.weight"].numpy()     # NOT transposed: already (2, hidden)
    np.testing.assert_array_equal(nsp, raw["cls/seq_relationship/output_weights"])
    np.testing.assert_array_equal(state["cls.predictions.bias"].numpy(), raw["cls/predictions/output_bias"])
    np.testing.assert_array_equal(state["bert.embeddings.LayerNorm.weight"].numpy(),
                                  raw["bert/embeddings/LayerNorm/gamma"])


def test_load_tf_bert_without_heads_and_unknown_names():
    state, skipped = load_tf_bert(SHARDED)
    assert set(state) == expected_hf_names(1, heads=False) and skipped == []
    # Not BERT at all: nothing maps, nothing is optimizer state, so everything is kept by TF name
    # (the model loader then reports the names as unexpected); string tensors are listed as skipped.
    state, skipped = load_tf_bert(DTYPES)
    assert "odd/float16" in state and skipped == ["odd/string"]


def test_map_google_name():
    assert map_google_name("bert/encoder/layer_11/output/LayerNorm/beta") == (
        "bert.encoder.layer.11.output.LayerNorm.bias", tfc.AS_IS)
    assert map_google_name("bert/encoder/layer_3/attention/self/key/kernel") == (
        "bert.encoder.layer.3.attention.self.key.weight", tfc.TRANSPOSE)
    assert map_google_name("bert/encoder/layer_x/output/dense/bias") is None
    assert map_google_name("bert/encoder/layer_1/output/dense/bias/adam_m") is None


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def layer_norm(x, w, b, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def reference_forward(state: dict, config: dict, ids, types, mask):
    """BERT in float64 numpy from a Hugging Face-named state dict (torch Linear layout: y = x W^T + b)."""
    p = {k: v.double().numpy() for k, v in state.items()}

    def linear(x, prefix):
        return x @ p[prefix + ".weight"].T + p[prefix + ".bias"]

    batch, seq = ids.shape
    heads = config["num_attention_heads"]
    head_dim = config["hidden_size"] // heads
    x = (p["bert.embeddings.word_embeddings.weight"][ids] + p["bert.embeddings.token_type_embeddings.weight"][types]
         + p["bert.embeddings.position_embeddings.weight"][:seq])
    x = layer_norm(x, p["bert.embeddings.LayerNorm.weight"], p["bert.embeddings.LayerNorm.bias"])
    adder = (1.0 - mask[:, None, None, :]) * -10000.0
    split = lambda t: t.reshape(batch, seq, heads, head_dim).transpose(0, 2, 1, 3)  # noqa: E731
    for n in range(config["num_hidden_layers"]):
        pre = f"bert.encoder.layer.{n}."
        q, k, v = (split(linear(x, pre + f"attention.self.{part}")) for part in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim) + adder
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, -1)
        attn = layer_norm(linear(context, pre + "attention.output.dense") + x,
                          p[pre + "attention.output.LayerNorm.weight"], p[pre + "attention.output.LayerNorm.bias"])
        assert config["hidden_act"] == "gelu_new"   # the tanh form, which is what we compute here
        inter = gelu_tanh(linear(attn, pre + "intermediate.dense"))
        x = layer_norm(linear(inter, pre + "output.dense") + attn,
                       p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"])
    out = {"sequence_output": x, "pooled_output": np.tanh(linear(x[:, 0], "bert.pooler.dense"))}
    if "cls.predictions.bias" in p:
        t = gelu_tanh(linear(x, "cls.predictions.transform.dense"))
        t = layer_norm(t, p["cls.predictions.transform.LayerNorm.weight"], p["cls.predictions.transform.LayerNorm.bias"])
        out["mlm_logits"] = t @ p["bert.embeddings.word_embeddings.weight"].T + p["cls.predictions.bias"]
        out["nsp_logits"] = linear(out["pooled_output"], "cls.seq_relationship")
    return out


@pytest.mark.parametrize("folder", [TINY, SHARDED], ids=lambda p: p.name)
def test_forward_matches_tensorflow_outputs(folder):
    state, _ = load_tf_bert(folder)
    config = read_google_config(folder)
    ref = np.load(folder / "reference.npz")
    ours = reference_forward(state, config, ref["input_ids"], ref["token_type_ids"],
                             ref["attention_mask"].astype(np.float64))
    expected_keys = {"sequence_output", "pooled_output"} | ({"mlm_logits", "nsp_logits"} if folder == TINY else set())
    assert set(ours) == expected_keys
    for key in expected_keys:
        np.testing.assert_allclose(ours[key], ref[key], atol=1e-5, rtol=1e-5, err_msg=key)


def test_read_google_config(tmp_path):
    config = read_google_config(TINY / "bert_config.json")
    raw = json.loads((TINY / "bert_config.json").read_text())
    assert raw["hidden_act"] == "gelu" and config["hidden_act"] == "gelu_new"
    assert config["layer_norm_eps"] == 1e-12 and config["model_type"] == "bert"
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size"):
        assert config[key] == raw[key]
    (tmp_path / "bert_config.json").write_text('{"hidden_act": "relu"}')
    assert read_google_config(tmp_path)["hidden_act"] == "relu"
    (tmp_path / "bert_config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="JSON"):
        read_google_config(tmp_path)
    (tmp_path / "bert_config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="JSON object"):
        read_google_config(tmp_path)
    with pytest.raises(CheckpointNotFoundError):
        read_google_config(tmp_path / "missing")


def test_module_imports_no_tensorflow_or_transformers():
    code = ("import sys, minibert.checkpoints.tf as m; m.read_tf_checkpoint(sys.argv[1]); "
            "bad = [x for x in ('tensorflow', 'transformers') if x in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code, str(DTYPES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# Damaged real files.
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def tiny_copy(tmp_path) -> Path:
    folder = tmp_path / "ckpt"
    shutil.copytree(TINY, folder)
    return folder


def patch(path: Path, offset: int, value: bytes = None, xor: int = None):
    data = bytearray(path.read_bytes())
    if xor is not None:
        data[offset] ^= xor
    else:
        data[offset:offset + len(value)] = value
    path.write_bytes(bytes(data))


def test_flipped_data_byte_is_a_checksum_error(tiny_copy):
    data = tiny_copy / "bert_model.ckpt.data-00000-of-00001"
    patch(data, 1000, xor=0x10)
    with pytest.raises(CheckpointError, match=r"data-00000-of-00001.*checksum mismatch.*download"):
        read_tf_checkpoint(tiny_copy)
    # Without verification the bad bytes come through silently: that is what the CRC is for.
    assert "bert/embeddings/word_embeddings" in read_tf_checkpoint(tiny_copy, verify_checksums=False)


def test_truncated_data_file(tiny_copy):
    data = tiny_copy / "bert_model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="outside the .*-byte file"):
        read_tf_checkpoint(tiny_copy)


def test_missing_shard(tmp_path):
    folder = tmp_path / "sharded"
    shutil.copytree(SHARDED, folder)
    (folder / "bert_model.ckpt.data-00001-of-00002").unlink()
    with pytest.raises(CheckpointError, match=r"data shard 1 of 2 is missing"):
        read_tf_checkpoint(folder)
    read_tf_index(folder)   # the index alone is still fine


def test_bad_magic(tiny_copy):
    patch(tiny_copy / "bert_model.ckpt.index", -1 % (tiny_copy / "bert_model.ckpt.index").stat().st_size, xor=1)
    with pytest.raises(CheckpointError, match="bad magic number"):
        read_tf_checkpoint(tiny_copy)


@pytest.mark.parametrize("keep", [0, 10, 47, 100, -1])
def test_truncated_index(tiny_copy, keep):
    index = tiny_copy / "bert_model.ckpt.index"
    index.write_bytes(index.read_bytes()[:keep])
    with pytest.raises(CheckpointError, match="bert_model.ckpt.index"):
        read_tf_checkpoint(tiny_copy)


def test_flipped_index_byte_is_a_block_checksum_error(tiny_copy):
    patch(tiny_copy / "bert_model.ckpt.index", 20, xor=0x04)
    with pytest.raises(CheckpointError, match="block checksum mismatch"):
        read_tf_checkpoint(tiny_copy)


def test_index_that_is_not_a_table(tmp_path):
    (tmp_path / "x.ckpt.index").write_bytes(b"hello world" * 10)
    with pytest.raises(CheckpointError, match="bad magic"):
        read_tf_checkpoint(tmp_path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_fuzz_real_index_only_checkpoint_errors(tmp_path_factory, edits, cut):
    folder = tmp_path_factory.mktemp("fuzz")
    original = (TINY / "bert_model.ckpt.index").read_bytes()
    data = bytearray(original)
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    (folder / "bert_model.ckpt.index").write_bytes(bytes(data))
    shutil.copy(TINY / "bert_model.ckpt.data-00000-of-00001", folder)
    try:
        tensors = read_tf_checkpoint(folder)
    except CheckpointError:
        return
    assert len(tensors) == len(read_tf_checkpoint(TINY))   # only harmless bytes (footer padding) changed


# ---------------------------------------------------------------------------------------------
# Hand-made tables, to reach what the CRCs protect (a minimal writer of the same format).
# ---------------------------------------------------------------------------------------------

def varint(n: int) -> bytes:
    n &= (1 << 64) - 1   # negative numbers as protobuf sends them
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def pb_varint(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def pb_bytes(field: int, value: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(value)) + value


def header_proto(num_shards=1, endianness=0) -> bytes:
    return pb_varint(1, num_shards) + pb_varint(2, endianness) + pb_bytes(3, pb_varint(1, 1))


def entry_proto(dtype, shape, offset, size, crc, shard=0, slices=False) -> bytes:
    shape_msg = b"".join(pb_bytes(2, pb_varint(1, d)) for d in shape)
    out = pb_varint(1, dtype) + pb_bytes(2, shape_msg) + pb_varint(3, shard) + pb_varint(4, offset)
    out += pb_varint(5, size) + varint(6 << 3 | 5) + struct.pack("<I", mask(crc))
    return out + (pb_bytes(7, b"\x0a\x00") if slices else b"")


def block(records, restart_interval=2) -> bytes:
    out, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(records):
        shared = 0
        if i % restart_interval:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        previous = key
    restarts = restarts or [0]
    return bytes(out) + b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))


def snappy_literals(data: bytes) -> bytes:
    out = bytearray(varint(len(data)))
    for start in range(0, len(data), 60):
        chunk = data[start:start + 60]
        out += bytes([(len(chunk) - 1) << 2]) + chunk
    return bytes(out)


def table(records, per_block=3, compression=0) -> bytes:
    out, index = bytearray(), []

    def add_block(contents: bytes):
        payload = snappy_literals(contents) if compression == 1 else contents
        handle = varint(len(out)) + varint(len(payload))
        trailer = bytes([compression])
        out.extend(payload + trailer + struct.pack("<I", mask(crc32c(payload + trailer))))
        return handle

    for start in range(0, len(records), per_block):
        chunk = records[start:start + per_block]
        index.append((chunk[-1][0], add_block(block(chunk))))
    meta_handle = add_block(block([]))
    index_handle = add_block(block(index, restart_interval=1))
    footer = (meta_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    return bytes(out) + footer


def write_checkpoint(folder: Path, tensors: dict, *, big_endian=False, overrides=None, compression=0,
                     per_block=3, num_shards=1) -> Path:
    """Write a one-shard checkpoint of numpy arrays; ``overrides[name]`` replaces entry fields."""
    data, records = bytearray(), [(b"", header_proto(num_shards, 1 if big_endian else 0))]
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        raw = array.astype(array.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
        dtype = {np.float32: 1, np.float64: 2, np.int32: 3, np.int64: 9}[array.dtype.type]
        fields = dict(dtype=dtype, shape=array.shape, offset=len(data), size=len(raw), crc=crc32c(raw))
        fields.update((overrides or {}).get(name, {}))
        records.append((name.encode(), entry_proto(**fields)))
        data += raw
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.ckpt.index").write_bytes(table(records, per_block, compression))
    for shard in range(num_shards):
        (folder / f"model.ckpt.data-{shard:05d}-of-{num_shards:05d}").write_bytes(bytes(data))
    return folder / "model.ckpt"


SAMPLE = {f"var_{i}": np.arange(i * 3, dtype=np.float32).reshape(i, 3) * (i + 0.5) for i in range(1, 8)}
SAMPLE["counter"] = np.array(7, np.int64)


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("compression", [0, 1])
def test_handmade_table_roundtrip(tmp_path, big_endian, compression):
    prefix = write_checkpoint(tmp_path / "c", SAMPLE, big_endian=big_endian, compression=compression)
    got = read_tf_checkpoint(prefix)
    assert got.keys() == SAMPLE.keys()
    for name, value in SAMPLE.items():
        np.testing.assert_array_equal(got[name], value)
        assert got[name].dtype == value.dtype and got[name].dtype.isnative


def test_unknown_compression(tmp_path):
    prefix = write_checkpoint(tmp_path / "c", SAMPLE, compression=7)
    with pytest.raises(CheckpointError, match="unknown block compression type 7"):
        read_tf_checkpoint(prefix)


def test_snappy_copies():
    # "abc" as a literal, then a 1-byte-offset copy of 9 bytes reaching back 3 (overlapping).
    stream = varint(12) + bytes([2 << 2]) + b"abc" + bytes([1 | (9 - 4) << 2, 3])
    assert tfc._snappy_decompress(stream, "t") == b"abcabcabcabc"
    stream = varint(7) + bytes([0]) + b"z" + bytes([2 | (6 - 1) << 2]) + struct.pack("<H", 1)
    assert tfc._snappy_decompress(stream, "t") == b"z" * 7
    with pytest.raises(CheckpointError, match="back-reference"):
        tfc._snappy_decompress(varint(5) + bytes([1 | 1 << 2, 9]), "t")
    with pytest.raises(CheckpointError, match="promised"):
        tfc._snappy_decompress(varint(5) + bytes([0]) + b"a", "t")


@pytest.mark.parametrize("override, message", [
    (dict(dtype=99), "unknown dtype enum 99"),
    (dict(dtype=20), "unknown dtype enum 20"),         # DT_RESOURCE: not data
    (dict(offset=10**9), "outside the"),
    (dict(size=5), "needs 24 bytes, the index says 5"),
    (dict(crc=1234), "checksum mismatch"),
    (dict(shard=3), "shard 3, but the header declares 1"),
    (dict(slices=True), "partitioned"),
    (dict(shape=(-1, 3)), "negative dimension"),
    (dict(offset=-5), "negative byte range"),
])
def test_handmade_bad_entries(tmp_path, override, message):
    prefix = write_checkpoint(tmp_path / "c", SAMPLE, overrides={"var_2": override})
    with pytest.raises(CheckpointError, match=message) as info:
        read_tf_checkpoint(prefix)
    assert "model.ckpt" in str(info.value)


def test_handmade_bad_header(tmp_path):
    prefix = write_checkpoint(tmp_path / "c", SAMPLE, num_shards=0)
    with pytest.raises(CheckpointError, match="0 data shards"):
        read_tf_index(prefix)
    index = prefix.with_name("model.ckpt.index")
    index.write_bytes(table([(b"a", entry_proto(1, (1,), 0, 4, 0))]))
    with pytest.raises(CheckpointError, match="no header entry"):
        read_tf_index(prefix)
    index.write_bytes(table([(b"", header_proto()), (b"b", b""), (b"a", b"")], per_block=1))
    with pytest.raises(CheckpointError, match="out of order"):
        read_tf_index(prefix)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.binary(max_size=40), key=st.binary(min_size=1, max_size=8))
def test_fuzz_entry_protobuf_only_checkpoint_errors(tmp_path_factory, value, key):
    """Random BundleEntryProto bytes behind a valid table (CRCs fine) reach the protobuf decoder."""
    folder = tmp_path_factory.mktemp("pb")
    (folder / "m.ckpt.index").write_bytes(table([(b"", header_proto()), (key, value)]))
    (folder / "m.ckpt.data-00000-of-00001").write_bytes(bytes(64))
    try:
        read_tf_checkpoint(folder / "m.ckpt")
    except CheckpointError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(contents=st.binary(max_size=60), index_contents=st.one_of(st.none(), st.binary(max_size=30)))
def test_fuzz_block_contents_only_checkpoint_errors(tmp_path_factory, contents, index_contents):
    """Random block bytes with a correct trailer CRC reach the record and restart-array parser."""
    folder = tmp_path_factory.mktemp("blk")

    def framed(payload):
        return payload + b"\0" + struct.pack("<I", mask(crc32c(payload + b"\0")))

    data_block = framed(contents)
    if index_contents is None:
        index_contents = block([(b"\xff", varint(0) + varint(len(contents)))])
    index_block = framed(index_contents)
    footer = (varint(0) + varint(0) + varint(len(data_block)) + varint(len(index_contents))).ljust(40, b"\0")
    (folder / "m.ckpt.index").write_bytes(data_block + index_block + footer + struct.pack("<Q", 0xDB4775248B80FB57))
    try:
        read_tf_index(folder / "m.ckpt")
    except CheckpointError:
        pass


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=30), count=st.integers(0, 6), verify=st.booleans())
def test_fuzz_string_payload_only_checkpoint_errors(raw, count, verify):
    entry = tfc.TensorEntry(name="s", dtype=7, shape=(count,), shard_id=0, offset=0, size=len(raw),
                            masked_crc32c=0, partitioned=False)
    try:
        out = tfc._decode_strings(entry, bytearray(raw), verify, "fuzz")
    except CheckpointError:
        return
    assert out.shape == (count,)
