"""Inference precision (``minibert/fast/precision.py``): what each mode does and the error it costs.

Tolerances, on all-MiniLM-L6-v2 and 16 windows of pydoc text (real text: BERT's outlier features
only show on it), smallest cosine of mean-pooled embeddings against fp32:
    bf16 ≥ 0.999 (measured 0.9999), int8 ≥ 0.995 (measured ~0.997: the issue's bar).
``Int8Linear`` alone is exact where its inputs are representable, and within 1% of the float product
on random data.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import minibert
from minibert.errors import InputError, InputTypeError
from minibert.fast import precision
from minibert.fast.precision import Int8Linear, precision_of, resolve_precision, set_precision


@pytest.fixture(scope="module")
def pydoc_batch(minilm_dir):
    from pydoc_data.topics import topics

    tokenizer = minibert.BertTokenizer.from_pretrained(minilm_dir)
    texts = [topics[name] for name in sorted(topics)][:40:2]
    enc = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


@pytest.fixture(scope="module")
def fp32_pooled(minilm_dir, pydoc_batch):
    return pooled(minibert.BertModel.from_pretrained(minilm_dir), *pydoc_batch)


@pytest.fixture(scope="module")
def converted(minilm_dir):
    """MiniLM in each reduced mode, built once for the tests below (they do not modify it)."""
    return {mode: set_precision(minibert.BertModel.from_pretrained(minilm_dir), mode) for mode in ("bf16", "int8")}


def pooled(model, ids, mask) -> torch.Tensor:
    with torch.inference_mode():
        hidden = model(ids, mask).last_hidden_state.float()       # (b, t, c)
    weights = mask.unsqueeze(-1).float()
    return (hidden * weights).sum(1) / weights.sum(1)             # (b, c)


# ------------------------------------------------------------------------------------- the switch
@pytest.mark.parametrize("mode, least_cosine", [("bf16", 0.999), ("int8", 0.995)])
def test_pooled_embeddings_stay_within_the_stated_error(converted, pydoc_batch, fp32_pooled, mode, least_cosine):
    model = converted[mode]
    assert precision_of(model) == mode
    cosine = F.cosine_similarity(pooled(model, *pydoc_batch), fp32_pooled)
    assert cosine.min() >= least_cosine
    assert cosine.min() < 1 - 1e-6  # the mode really changed the arithmetic


def test_int8_replaces_the_encoder_linears_and_keeps_the_rest_float(converted):
    model = converted["int8"]
    layer = model.layers[0]
    for linear in (layer.attn.qkv, layer.attn.out, layer.ffn.up, layer.ffn.down, model.pooler.dense):
        assert isinstance(linear, Int8Linear) and linear.weight_t.dtype == torch.int8
    assert model.embeddings.word.weight.dtype == torch.float32
    assert layer.attn_norm.weight.dtype == torch.float32


def test_heads_take_every_mode_and_keep_tied_or_tiny_linears_float():
    config = minibert.BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=32, num_labels=3)
    ids = torch.randint(1, 96, (2, 9))
    for cls in (minibert.BertForSequenceClassification, minibert.BertForMaskedLM, minibert.BertForPreTraining):
        for mode in ("bf16", "int8"):
            torch.manual_seed(0)
            model = set_precision(cls(config).eval(), mode)
            assert precision_of(model) == mode
            with torch.inference_mode():
                out = model(ids)
            assert torch.isfinite(out[0].float()).all()
        if hasattr(model, "mlm"):  # the decoder shares the word-embedding matrix: never quantized
            assert type(model.mlm.decoder) is nn.Linear
        if hasattr(model, "classifier"):  # 3 outputs: not a multiple of 8, stays float
            assert type(model.classifier) is nn.Linear


def test_from_pretrained_takes_a_precision(minilm_dir):
    model = minibert.BertForSequenceClassification.from_pretrained(minilm_dir, precision="int8", num_labels=2)
    assert precision_of(model) == "int8" and isinstance(model.bert.layers[0].ffn.up, Int8Linear)


def test_auto_takes_bf16_only_where_the_cpu_computes_it(monkeypatch):
    for flags, expected in (({"avx512_bf16": True}, "bf16"), ({"amx_bf16": True}, "bf16"),
                            ({"avx512_vnni": True, "avx2": True}, "fp32"), ({}, "fp32")):
        features = {name: flags.get(name, False) for name in precision.FEATURES}
        monkeypatch.setattr(precision, "cpu_features", lambda features=features: features)
        assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("int8", "cpu") == "int8"  # explicit modes are taken as given


def test_bad_precisions_are_named(converted):
    with pytest.raises(InputError, match="'fp16'"):
        resolve_precision("fp16")
    with pytest.raises(InputTypeError, match="list"):
        set_precision([], "fp32")
    with pytest.raises(InputError, match="load the checkpoint again"):
        set_precision(converted["int8"], "fp32")  # refused before anything changes


def test_sentence_encoder_and_embed_take_a_precision(minilm_dir, capsys):
    from minibert.cli import main

    encoder = minibert.SentenceEncoder.from_pretrained(minilm_dir, precision="bf16")
    assert precision_of(encoder.model) == "bf16"
    texts = ["A cat sits on the mat.", "Stock prices fell sharply."]
    reference = minibert.SentenceEncoder.from_pretrained(minilm_dir).encode(texts)
    assert F.cosine_similarity(torch.tensor(encoder.encode(texts)), torch.tensor(reference)).min() > 0.999
    assert main(["embed", "--precision", "int8", "--json", *texts]) == 0
    assert main(["embed", "--precision", "fp8", "x"]) == 2  # argparse's choices


# ------------------------------------------------------------------------------------ Int8Linear
def test_int8_linear_is_exact_on_representable_values():
    # Rows whose largest magnitude is 127 and whose values are integers quantize without rounding.
    torch.manual_seed(0)
    weight = torch.randint(-127, 128, (16, 24)).float()
    weight[:, 0] = 127
    x = torch.randint(-127, 128, (5, 3, 24)).float()
    x[..., 1] = -127
    linear = nn.Linear(24, 16)
    linear.weight.data = weight
    expected = linear(x)
    assert torch.equal(Int8Linear(linear)(x), expected)


def test_int8_linear_is_within_one_percent_on_random_data():
    torch.manual_seed(0)
    linear = nn.Linear(64, 32)
    x = torch.randn(7, 64) * torch.logspace(-1, 1, 7)[:, None]  # rows of very different scales
    expected = linear(x)
    got = Int8Linear(linear)(x)
    assert ((got - expected).norm(dim=1) / expected.norm(dim=1)).max() < 0.01


# ------------------------------------------------------------------ int8's attention dtype
@pytest.mark.parametrize("native", [True, False])
def test_int8_attention_runs_in_bf16_only_where_the_cpu_has_it(monkeypatch, native):
    """Where bf16 is native, int8 mode's fused Q/K/V projection outputs bf16 (attention's products
    then run in bf16); elsewhere float32. Every other quantized linear outputs float32."""
    monkeypatch.setattr(precision, "bf16_native", lambda device="cpu": native)
    model = set_precision(tiny_bert(), "int8")
    attention_dtype = torch.bfloat16 if native else torch.float32
    for layer in model.layers:
        assert layer.attn.qkv.out_dtype == attention_dtype
        assert {layer.attn.out.out_dtype, layer.ffn.up.out_dtype, layer.ffn.down.out_dtype} == {torch.float32}
    x = torch.randn(2, 5, model.config.hidden_size)
    assert model.layers[0].attn.qkv(x).dtype == attention_dtype
    assert model.layers[0].ffn.up(x).dtype == torch.float32


@pytest.mark.parametrize("native", [True, False])
def test_int8_with_bf16_attention_on_every_path(monkeypatch, native):
    """bf16 projections meet a float32 padding bias on every path: the reference formula (attention
    weights asked for), the padded grid, unpadded groups, and sequences past the written-out kernel's
    length (PyTorch's fused kernel). All agree with the float32 model to int8's error."""
    from minibert.fast import sdpa

    monkeypatch.setattr(precision, "bf16_native", lambda device="cpu": native)
    monkeypatch.setattr(sdpa, "EXPLICIT_MAX_LENGTH", 8)      # t = 12 below: past it, the fused kernel
    reference = tiny_bert()
    model = set_precision(tiny_bert(), "int8")
    ids = torch.randint(1, 90, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    with torch.inference_mode():
        want = reference(ids, mask).last_hidden_state
        for kwargs in ({"output_attentions": True}, {"unpad": False}, {"unpad": True}):
            got = model(ids, mask, **kwargs).last_hidden_state
            real = mask.bool()
            assert got.dtype == torch.float32
            assert F.cosine_similarity(got[real], want[real], dim=-1).min() > 0.99, kwargs
        monkeypatch.setattr(sdpa, "EXPLICIT_MAX_LENGTH", 256)  # the written-out bf16 kernel
        got = model(ids, mask, unpad=False).last_hidden_state
        assert F.cosine_similarity(got[mask.bool()], want[mask.bool()], dim=-1).min() > 0.99


def tiny_bert() -> minibert.BertModel:
    torch.manual_seed(0)
    config = minibert.BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=64, max_position_embeddings=40)
    return minibert.BertModel(config).eval()
