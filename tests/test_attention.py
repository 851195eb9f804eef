"""Attention: the properties the formula promises, and the fast path equal to the readable one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import minibert
from minibert.attention import MultiHeadAttention, attend, mask_to_bias
from minibert.fast.sdpa import sdpa


@st.composite
def qkv_and_mask(draw):
    b, h, t, s, d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 6)),
                     draw(st.integers(1, 6)), draw(st.integers(1, 8)))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    q, k, v = (torch.randn(b, h, n, d, generator=g, dtype=torch.float64) for n in (t, s, s))
    mask = torch.rand(b, 1, t, s, generator=g) < 0.7
    mask[..., 0] = True  # every query may attend to at least one key
    return q, k, v, mask


@settings(max_examples=60)
@given(qkv_and_mask())
def test_rows_sum_to_one_and_masked_keys_get_zero_weight(args):
    q, k, v, mask = args
    out, weights = minibert.scaled_dot_product_attention(q, k, v, mask)
    assert out.shape == q.shape[:-1] + (v.shape[-1],)
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)), atol=1e-12, rtol=0)
    assert (weights.masked_select(~mask.expand_as(weights)) == 0).all()


@settings(max_examples=60)
@given(qkv_and_mask())
def test_reference_equals_pytorch_sdpa(args):
    q, k, v, mask = args
    ours, _ = minibert.scaled_dot_product_attention(q, k, v, mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)


def test_mask_must_be_boolean():
    q = torch.randn(1, 1, 2, 4)
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        minibert.scaled_dot_product_attention(q, q, q, mask=torch.ones(1, 1, 2, 2))


def test_a_fully_masked_row_is_finite_not_nan():
    q = torch.randn(1, 1, 3, 4)
    mask = torch.tensor([[[[True, False, True], [False, False, False], [True, True, True]]]])
    out, weights = minibert.scaled_dot_product_attention(q, q, q, mask)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()


@settings(max_examples=30)
@given(seed=st.integers(0, 2**31), heads=st.integers(1, 4), t=st.integers(1, 9))
def test_module_fast_path_equals_reference_path(seed, heads, t):
    torch.manual_seed(seed)
    attn = MultiHeadAttention(heads * 4, heads).double().eval()
    hidden = torch.randn(2, t, heads * 4, dtype=torch.float64)
    mask = torch.ones(2, t, dtype=torch.bool)
    mask[1, torch.randint(1, t + 1, ()).item():] = False
    bias = mask_to_bias(mask[:, None, None, :], hidden.dtype)
    slow, weights = attn(hidden, bias)
    fast, none = attn(hidden, bias, kernel=sdpa)
    assert none is None and weights.shape == (2, heads, t, t)
    torch.testing.assert_close(fast, slow, atol=1e-12, rtol=0)


def tiny_model(**overrides):
    torch.manual_seed(0)
    cfg = minibert.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=24, max_position_embeddings=32, **overrides)
    return minibert.BertModel(cfg).double().eval()


@settings(max_examples=25)
@given(seed=st.integers(0, 2**31), length=st.integers(1, 10), extra=st.integers(1, 12))
def test_real_token_outputs_do_not_change_when_padding_is_added(seed, length, extra):
    model = tiny_model()
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 40, (1, length), generator=g)
    alone = model(ids)
    padded_ids = torch.cat([ids, torch.zeros(1, extra, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, length), torch.zeros(1, extra)], dim=1).long()
    padded = model(padded_ids, attention_mask=mask)
    torch.testing.assert_close(padded.last_hidden_state[:, :length], alone.last_hidden_state, atol=1e-12, rtol=0)
    torch.testing.assert_close(padded.pooler_output, alone.pooler_output, atol=1e-12, rtol=0)


def test_model_outputs_equal_with_and_without_attention_weights():
    model = tiny_model()
    ids = torch.randint(0, 40, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[0, 5:] = 0
    mask[2, 1:] = 0
    with_weights = model(ids, attention_mask=mask, output_attentions=True)
    without = model(ids, attention_mask=mask)
    torch.testing.assert_close(without.last_hidden_state, with_weights.last_hidden_state, atol=1e-12, rtol=0)
    for probs in with_weights.attentions:
        assert probs.shape == (3, 4, 9, 9)
        torch.testing.assert_close(probs.sum(-1), torch.ones(3, 4, 9, dtype=probs.dtype), atol=1e-12, rtol=0)
        assert (probs[0, :, :, 5:] == 0).all() and (probs[2, :, :, 1:] == 0).all()


@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.int64, torch.int32, torch.float32, torch.float64])
def test_bool_int_and_float_masks_mean_the_same(mask_dtype):
    model = tiny_model()
    ids = torch.randint(0, 40, (2, 7))
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    expected = model(ids, attention_mask=mask.bool()).last_hidden_state
    got = model(ids, attention_mask=mask.to(mask_dtype)).last_hidden_state
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
