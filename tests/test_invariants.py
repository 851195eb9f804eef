"""The properties the notebooks teach, held over drawn values (hypothesis), not only over shapes and seeds.

* attention rows are probability distributions, whatever the scores (large ones included);
* without position information the encoder is permutation-equivariant: shuffling the tokens shuffles
  the outputs the same way, and nothing else changes;
* padding is invisible: the real positions' outputs do not depend on how much padding follows or on
  which ids sit in the padded positions;
* LayerNorm forgets a row's shift and (positive) scale: LN(a·x + b) = LN(x).

Everything runs in float64 so that the tolerances are about the maths, not about rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import minibert
from minibert.attention import MultiHeadAttention, mask_to_bias

C, HEADS, VOCAB, MAX_POS = 16, 4, 50, 24


def finite(low: float, high: float):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)


def tensor(shape, low=-10.0, high=10.0):
    """A float64 tensor of the given shape whose every entry hypothesis chooses."""
    return arrays(np.float64, shape, elements=finite(low, high)).map(torch.from_numpy)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = minibert.BertConfig(vocab_size=VOCAB, hidden_size=C, num_hidden_layers=2, num_attention_heads=HEADS,
                                 intermediate_size=32, max_position_embeddings=MAX_POS)
    return minibert.BertModel(config).double().eval()


# ------------------------------------------------------------------------------------- attention rows

@st.composite
def scores_and_values(draw):
    t, s, d = draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 4))
    q = draw(tensor((1, 1, t, d), -30.0, 30.0))  # large enough that q·k reaches the hundreds
    k = draw(tensor((1, 1, s, d), -30.0, 30.0))
    v = draw(tensor((1, 1, s, d)))
    mask = draw(arrays(np.bool_, (1, 1, t, s))).copy()
    mask[..., draw(st.integers(0, s - 1))] = True  # each query may see at least one key
    return q, k, v, torch.from_numpy(mask)


@settings(max_examples=40)
@given(scores_and_values())
def test_attention_rows_are_distributions_over_allowed_keys(args):
    q, k, v, mask = args
    out, weights = minibert.scaled_dot_product_attention(q, k, v, mask)  # (1, 1, t, d), (1, 1, t, s)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1], dtype=torch.float64),
                               atol=1e-12, rtol=0)
    assert (weights[~mask] == 0).all()
    # Each output is a convex combination of values: inside their range, coordinate by coordinate.
    assert (out <= v.amax(-2, keepdim=True) + 1e-9).all() and (out >= v.amin(-2, keepdim=True) - 1e-9).all()


# --------------------------------------------------------------------------- permutation equivariance

@settings(max_examples=20)
@given(data=st.data(), t=st.integers(2, 8))
def test_attention_is_permutation_equivariant(data, t):
    torch.manual_seed(0)
    attention = MultiHeadAttention(C, HEADS).double().eval()
    hidden = data.draw(tensor((1, t, C)))
    order = torch.tensor(data.draw(st.permutations(range(t))))
    out, _ = attention(hidden)
    shuffled_out, _ = attention(hidden[:, order])
    torch.testing.assert_close(shuffled_out, out[:, order], atol=1e-10, rtol=1e-10)


@settings(max_examples=15)
@given(data=st.data(), t=st.integers(2, 10))
def test_encoder_without_positions_is_permutation_equivariant(model, data, t):
    ids = torch.tensor([data.draw(st.lists(st.integers(0, VOCAB - 1), min_size=t, max_size=t))])  # (1, t)
    order = torch.tensor(data.draw(st.permutations(range(t))))
    same_position = torch.zeros_like(ids)  # every token gets position 0's vector: no order information
    with torch.no_grad():
        out = model(ids, position_ids=same_position).last_hidden_state              # (1, t, c)
        shuffled = model(ids[:, order], position_ids=same_position).last_hidden_state
    torch.testing.assert_close(shuffled, out[:, order], atol=1e-10, rtol=1e-10)


def test_position_embeddings_break_the_symmetry(model):
    """The control for the test above: with positions, swapping two different tokens changes the outputs."""
    ids = torch.tensor([[5, 9, 17, 23]])
    swapped = ids[:, [1, 0, 2, 3]]
    with torch.no_grad():
        out = model(ids).last_hidden_state
        out_swapped = model(swapped).last_hidden_state
    assert not torch.allclose(out_swapped[:, [1, 0, 2, 3]], out, atol=1e-3)


# ----------------------------------------------------------------------------------- padding invariance

@settings(max_examples=15)
@given(data=st.data(), t=st.integers(1, 8), pad=st.integers(1, 8))
def test_padding_does_not_change_real_positions(model, data, t, pad):
    ids = data.draw(st.lists(st.integers(1, VOCAB - 1), min_size=t, max_size=t))
    junk = data.draw(st.lists(st.integers(0, VOCAB - 1), min_size=pad, max_size=pad))  # any ids under the mask
    types = data.draw(st.lists(st.integers(0, 1), min_size=t, max_size=t))
    alone = torch.tensor([ids])
    padded = torch.tensor([ids + junk])
    mask = torch.tensor([[1] * t + [0] * pad])
    with torch.no_grad():
        out = model(alone, token_type_ids=torch.tensor([types])).last_hidden_state                  # (1, t, c)
        out_padded = model(padded, mask, token_type_ids=torch.tensor([types + [0] * pad])).last_hidden_state
    torch.testing.assert_close(out_padded[:, :t], out, atol=1e-10, rtol=1e-10)


# ------------------------------------------------------------------------------------------- LayerNorm

@settings(max_examples=30)
@given(data=st.data(), scale=finite(0.05, 50.0), shift=finite(-100.0, 100.0))
def test_layer_norm_forgets_shift_and_scale(model, data, scale, shift):
    norm = model.layers[0].attn_norm  # the model's own LayerNorm (eps 1e-12), with its gain and bias
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 1.5, C, dtype=torch.float64))
        norm.bias.copy_(torch.linspace(-0.2, 0.2, C, dtype=torch.float64))
    rows = data.draw(tensor((3, C)).filter(lambda x: bool((x.std(-1) > 1e-2).all())))
    with torch.no_grad():
        # float64 still loses digits to cancellation when a shift of 100 meets a spread of 1e-3
        # (about 1e-16 * |mean| / std); 1e-6 leaves room for that and none for a missed term.
        torch.testing.assert_close(norm(scale * rows + shift), norm(rows), atol=1e-6, rtol=1e-6)
        # Normalised rows have mean 0 and variance 1 before the gain and bias (biased variance, as BERT).
        plain = torch.nn.functional.layer_norm(rows, (C,), eps=1e-12)
    torch.testing.assert_close(plain.mean(-1), torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(plain.var(-1, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-8, rtol=0)


@settings(max_examples=25)
@given(rows=tensor((2, 5), -50.0, 50.0), shift=finite(-100.0, 100.0))
def test_softmax_forgets_a_shift_of_the_scores(rows, shift):
    """Why a padding bias only needs to be very negative, not -inf: a row's common shift cancels."""
    torch.testing.assert_close((rows + shift).softmax(-1), rows.softmax(-1), atol=1e-12, rtol=1e-9)
    bias = mask_to_bias(torch.tensor([True, True, True, False, False]), torch.float64)
    weights = (rows + bias).softmax(-1)
    assert (weights[:, 3:] == 0).all()
