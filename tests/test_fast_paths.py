"""The fast paths (``minibert/fast/``) equal the readable reference path they sit beside.

* SDPA (used when no one asks for the weights) equals ``attend``, with and without padding;
* unpadding (``fast/unpad.py``) equals the padded path on every real token and on the pooled
  output, forward and backward: float64 to 1e-10, float32 to 1e-5; padded positions come back as zeros;
* ``fast.decide`` picks the unpadded path only where asked, or with ``unpad="auto"`` where the caller
  cannot see the difference;
* the in-place inference blocks (``fast/in_place.py``) equal ``EncoderBlock.forward`` (float64 1e-12),
  and are taken only where nothing can tell (no autograd, eval, no autocast, no hooks, no per-layer
  outputs, plain ``nn.Linear`` layers);
* every model class runs under ``quantize_dynamic``, ``.to(bfloat16)``, ``torch.autocast`` and
  ``torch.compile``, each equal to the reference path under the same conversion (tolerances stated);
* bf16 stays within a loose bound of float32; fully padded rows stay finite in every float type.

No test here times anything; speed is the benchmarks' business.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils import parametrize, prune

import minibert
from minibert import fast
from minibert.attention import MultiHeadAttention, attend, mask_to_bias, merge_heads, split_heads
from minibert.fast.sdpa import sdpa
from minibert.fast.unpad import Unpadding


def tiny_model(dtype=torch.float64, layers=2, seed=0, cls=minibert.BertModel, **config):
    torch.manual_seed(seed)
    cfg = minibert.BertConfig(**{**dict(vocab_size=97, hidden_size=24, num_hidden_layers=layers, num_attention_heads=3,
                                        intermediate_size=40, max_position_embeddings=40,
                                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), **config})
    model = cls(cfg).to(dtype).eval()
    with torch.no_grad():  # random biases and norms, so that a misplaced one cannot hide behind zeros
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def padded_batch(lengths: list[int], t: int, left: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 97, (len(lengths), t), generator=g)
    positions = torch.arange(t)
    lengths_t = torch.tensor(lengths)[:, None]
    mask = positions >= t - lengths_t if left else positions < lengths_t  # (b, t) bool, True = real
    return ids, mask


def max_err(a, b):
    return (a - b).abs().max().item() if a.numel() else 0.0


# ------------------------------------------------------------------------------------------- SDPA
@pytest.mark.parametrize("padded", [False, True])
def test_sdpa_equals_reference_attention(padded):
    torch.manual_seed(0)
    attn = MultiHeadAttention(24, 3).double().eval()
    hidden = torch.randn(3, 7, 24, dtype=torch.float64)  # (b, t, c)
    bias = None
    if padded:
        mask = torch.arange(7) < torch.tensor([7, 4, 1])[:, None]
        bias = mask_to_bias(mask[:, None, None, :], torch.float64)  # (b, 1, 1, s)
    fused, none = attn(hidden, bias, kernel=sdpa)
    ref, probs = attn(hidden, bias)
    assert none is None and probs.shape == (3, 3, 7, 7)
    assert max_err(fused, ref) < 1e-12


# ------------------------------------------------------------------------------------- unpadding
@settings(max_examples=25)
@given(lengths=st.lists(st.integers(1, 12), min_size=1, max_size=5), extra=st.integers(0, 3),
       seed=st.integers(0, 1000))
def test_unpadded_equals_padded_on_real_tokens_float64(lengths, extra, seed):
    model = tiny_model(seed=seed % 7)
    ids, mask = padded_batch(lengths, max(lengths) + extra, seed=seed)
    ref = model(ids, mask, unpad=False)
    fast = model(ids, mask, unpad=True)
    assert max_err(fast.last_hidden_state[mask], ref.last_hidden_state[mask]) < 1e-10
    assert max_err(fast.pooler_output, ref.pooler_output) < 1e-10
    assert fast.last_hidden_state[~mask].abs().max().item() == 0 if (~mask).any() else True


def test_unpadded_equals_padded_float32():
    model = tiny_model(torch.float32)
    ids, mask = padded_batch([12, 3, 9, 1, 12, 7], 14)
    with torch.no_grad():
        ref = model(ids, mask, unpad=False)
        fast = model(ids, mask, unpad=True)
    assert max_err(fast.last_hidden_state[mask], ref.last_hidden_state[mask]) < 1e-5
    assert max_err(fast.pooler_output, ref.pooler_output) < 1e-5


def test_unpadded_handles_left_padding_and_all_lengths_equal():
    model = tiny_model()
    ids, mask = padded_batch([5, 2, 8], 8, left=True)
    ref, fast = model(ids, mask, unpad=False), model(ids, mask, unpad=True)
    assert max_err(fast.last_hidden_state[mask], ref.last_hidden_state[mask]) < 1e-10
    ids, mask = padded_batch([6, 6, 6], 9)
    ref, fast = model(ids, mask, unpad=False), model(ids, mask, unpad=True)
    assert max_err(fast.last_hidden_state[mask], ref.last_hidden_state[mask]) < 1e-10


def test_unpadded_gradients_equal_padded_when_the_loss_reads_real_tokens():
    ids, mask = padded_batch([9, 4, 1, 7], 10)
    grads = []
    for unpad in (False, True):
        model = tiny_model().train()  # dropout is 0 in the tiny config: train mode, same maths
        out = model(ids, mask, unpad=unpad)
        weights = torch.linspace(-1, 1, 24, dtype=torch.float64)
        loss = (out.last_hidden_state[mask] * weights).sum() + out.pooler_output.sum()
        loss.backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for key in grads[0]:
        assert max_err(grads[0][key], grads[1][key]) < 1e-10, key


def test_unpadding_round_trip():
    ids, mask = padded_batch([3, 0, 5, 3], 6)
    plan = Unpadding.from_mask(mask)
    assert plan.groups == [(1, 5), (2, 3)]  # longest first; the empty row has no tokens
    x = torch.randn(4, 6, 2)
    packed = plan.gather(x)  # (n, 2)
    assert packed.shape == (11, 2)
    assert torch.equal(plan.scatter(packed), x * mask[..., None])
    assert [g.shape for g in plan.split(packed)] == [(1, 5, 2), (2, 3, 2)]


def test_the_path_is_chosen_where_the_caller_cannot_tell():
    model = tiny_model()
    ids, mask = padded_batch([6, 2], 6)
    with torch.no_grad():  # the bare encoder's default is the reference layout, padded positions included
        assert model(ids, mask).last_hidden_state[~mask].abs().max() > 0
        auto = model(ids, mask, unpad="auto").last_hidden_state
        assert auto[~mask].abs().max() == 0  # inference: unpadded, padded positions are zeros
        assert model(ids, mask, unpad="auto", output_hidden_states=True).last_hidden_state[~mask].abs().max() > 0
        ids_l, mask_l = padded_batch([6, 2], 6, left=True)
        assert model(ids_l, mask_l, unpad="auto").last_hidden_state[~mask_l].abs().max() > 0  # pooler reads 0
    assert model(ids, mask, unpad="auto").last_hidden_state[~mask].abs().max() > 0  # autograd on: reference layout
    with pytest.raises(minibert.InputError, match="unpad=True"):
        model(ids, mask, unpad=True, output_attentions=True)
    for bad in (None, 1, "yes", torch.tensor(True)):
        with pytest.raises(minibert.InputTypeError, match="unpad"):
            model(ids, mask, unpad=bad)


def test_heads_reach_the_unpadded_path_and_agree_on_real_tokens():
    model = tiny_model(cls=minibert.BertForTokenClassification)
    ids, mask = padded_batch([7, 3, 5], 8)
    with torch.no_grad():
        assert fast.explain(model, mask, unpad=True).unpad
        unpadded = model(ids, mask, unpad=True).logits  # padded positions would show in these logits: opt in
        ref = model(ids, mask).logits
    assert max_err(unpadded[mask], ref[mask]) < 1e-10


# ----------------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("unpad", [False, True])
def test_fully_padded_rows_stay_finite(dtype, unpad):
    model = tiny_model(dtype)
    ids, mask = padded_batch([5, 0, 3], 5)
    with torch.no_grad():
        out = model(ids, mask, unpad=unpad)
    assert torch.isfinite(out.last_hidden_state).all() and torch.isfinite(out.pooler_output).all()


def test_bf16_is_close_to_float32():
    model = tiny_model(torch.float32)
    ids, mask = padded_batch([10, 6, 3], 10)
    with torch.no_grad():
        ref = model(ids, mask).last_hidden_state[mask]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = model(ids, mask).last_hidden_state[mask].float()
        cast = model.to(torch.bfloat16)(ids, mask).last_hidden_state[mask].float()
    # LayerNorm outputs are O(1); bf16 keeps 8 bits of mantissa, so a few 1e-2 after two layers.
    for out in (autocast, cast):
        assert max_err(out, ref) < 0.1
        assert (out - ref).norm() / ref.norm() < 0.02


def test_pooled_only_heads_unpad_by_default_and_match_the_reference():
    model = tiny_model(cls=minibert.BertForSequenceClassification)
    ids, mask = padded_batch([7, 3, 5], 8)
    with torch.no_grad():
        assert fast.explain(model, mask).path == "in_place+unpad"
        unpadded = model(ids, mask).logits
        model.bert.fast_paths = False
        assert fast.explain(model, mask).path == "reference"
        ref = model(ids, mask).logits
    assert max_err(unpadded, ref) < 1e-10


# ------------------------------------------------------------------------------------- in place
@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu", "silu"])
@pytest.mark.parametrize("unpad", [False, True])
@pytest.mark.parametrize("intermediate", [40, 100])  # scratch sized by 3c (72) or by f (100)
def test_in_place_blocks_equal_the_reference_blocks(act, unpad, intermediate):
    model = tiny_model(layers=3, hidden_act=act, intermediate_size=intermediate)
    for lengths, t in (([9, 4, 9, 1], 9), ([7, 7], 7)):  # padded, and no padding at all
        ids, mask = padded_batch(lengths, t, seed=len(lengths))
        with torch.no_grad():
            assert fast.explain(model, mask, unpad=unpad).in_place
            fused = model(ids, mask, unpad=unpad)
            model.fast_paths = False
            ref = model(ids, mask)
            model.fast_paths = True
        real = mask[..., None].expand_as(ref.last_hidden_state)
        assert max_err(fused.last_hidden_state[real], ref.last_hidden_state[real]) < 1e-12
        assert max_err(fused.pooler_output, ref.pooler_output) < 1e-12


def test_in_place_float32_and_heads():
    model = tiny_model(torch.float32, layers=3, cls=minibert.BertForPreTraining)
    ids, mask = padded_batch([8, 5, 2], 8)
    with torch.no_grad():
        fused = model(ids, mask)
        model.bert.fast_paths = False
        ref = model(ids, mask)
    assert max_err(fused.prediction_logits, ref.prediction_logits) < 1e-5
    assert max_err(fused.seq_relationship_logits, ref.seq_relationship_logits) < 1e-5


def test_in_place_only_where_nothing_can_tell():
    model = tiny_model()
    ids, mask = padded_batch([6, 3], 6)

    def path(**kwargs):
        return fast.explain(model, mask, **kwargs).path

    assert path() == "sdpa"  # autograd on
    with torch.no_grad():
        assert path() == "in_place"
        assert path(output_attentions=True) == "reference"
        assert path(output_hidden_states=True) == "sdpa"
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert path() == "sdpa"
        model.train()
        assert path() == "sdpa"  # dropout
        model.eval()
        seen = []
        handle = model.layers[1].ffn.register_forward_hook(lambda module, args, out: seen.append(out.shape))
        assert path() == "sdpa" and "forward hook" in fast.explain(model, mask).reason
        model(ids, mask)
        assert seen == [(2, 6, 24)]  # the hook ran: the modules were called
        handle.remove()
        assert path() == "in_place"
        handle = torch.nn.modules.module.register_module_forward_pre_hook(lambda module, args: None)
        try:
            assert path() == "sdpa"  # a global hook counts too
        finally:
            handle.remove()


def test_in_place_keeps_every_returned_state_intact():
    # With per-layer states asked for, the blocks are not run in place: each state is its own tensor.
    model = tiny_model(layers=3)
    ids, mask = padded_batch([5, 5], 5)
    with torch.no_grad():
        states = model(ids, mask, output_hidden_states=True).hidden_states
        last = model(ids, mask).last_hidden_state
    assert len({s.data_ptr() for s in states}) == len(states)
    assert max_err(states[-1], last) < 1e-12
    embedded = model.embeddings(ids, torch.zeros_like(ids), torch.arange(5).expand(2, 5))
    assert max_err(states[0], embedded) < 1e-12


def test_modules_that_are_not_plain_layers_get_the_modules_path():
    model = tiny_model()
    ids, mask = padded_batch([6, 3], 6)
    with torch.no_grad():
        ref = model(ids, mask).last_hidden_state
        # A parametrized weight (what torch.nn.utils.parametrize and some pruning do) is computed in forward.
        parametrize.register_parametrization(model.layers[0].ffn.up, "weight", torch.nn.Identity())
        plan = fast.explain(model, mask)
        assert plan.path == "sdpa" and "ParametrizedLinear" in plan.reason
        assert max_err(model(ids, mask).last_hidden_state, ref) < 1e-12
        parametrize.remove_parametrizations(model.layers[0].ffn.up, "weight")
        # torch.nn.utils.prune keeps the nn.Linear but recomputes its weight in a forward pre-hook.
        prune.l1_unstructured(model.layers[1].attn.out, "weight", amount=0.5)
        assert "forward hook" in fast.explain(model, mask).reason
        pruned = model(ids, mask).last_hidden_state
        model.fast_paths = False
        assert max_err(pruned, model(ids, mask).last_hidden_state) < 1e-12 and max_err(pruned, ref) > 1e-3
        model.fast_paths = True
        prune.remove(model.layers[1].attn.out, "weight")
        model.layers[1].ffn.act = torch.nn.Tanh()  # an activation the in-place code does not know
        assert "ffn.act is a Tanh" in fast.explain(model, mask).reason


# ---------------------------------------------------------------- every class, every conversion
CLASSES = ["BertModel", "BertForPreTraining", "BertForMaskedLM", "BertForNextSentencePrediction",
           "BertForSequenceClassification", "BertForTokenClassification", "BertForQuestionAnswering",
           "BertForMultipleChoice"]


def class_inputs(name: str):
    ids, mask = padded_batch([7, 4, 2, 7], 7)
    if name == "BertForMultipleChoice":
        return ids.reshape(2, 2, 7), mask.reshape(2, 2, 7)
    return ids, mask


def outputs_of(model, ids, mask):
    out = model(ids, mask)
    return [out[key].float() for key in out.keys() if key not in ("hidden_states", "attentions")]


def fast_and_reference(model, ids, mask):
    fused = outputs_of(model, ids, mask)
    encoder = getattr(model, "bert", model)
    encoder.fast_paths = False
    try:
        return fused, outputs_of(model, ids, mask)
    finally:
        encoder.fast_paths = True


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:.*quantized tensor creation:UserWarning")
@pytest.mark.parametrize("name", CLASSES)
def test_every_class_quantized_bf16_and_autocast(name):
    model = tiny_model(torch.float32, cls=getattr(minibert, name))
    ids, mask = class_inputs(name)
    with torch.no_grad():
        # quantize_dynamic swaps every nn.Linear for a quantized one whose weight is a method: the
        # in-place path cannot read it, so the modules run. Activations are quantized with one scale
        # per tensor, taken from its range, so an unpadded tensor (real tokens only) rounds a little
        # differently from the padded one: a few 1e-3 here, hence 0.05.
        quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        assert "quantized.dynamic" in fast.explain(quantized, mask).reason
        for got, ref in zip(*fast_and_reference(quantized, ids, mask)):
            assert max_err(got, ref) < 0.05
        with torch.autocast("cpu", dtype=torch.bfloat16):  # both paths under autocast: bf16 rounding apart
            for got, ref in zip(*fast_and_reference(model, ids, mask)):
                assert max_err(got, ref) < 0.1
        model.to(torch.bfloat16)
        for got, ref in zip(*fast_and_reference(model, ids, mask)):
            assert max_err(got, ref) < 0.1


def test_torch_compile_matches_eager():
    # Inductor costs seconds per graph, so it compiles the bare encoder once (padded: the in-place blocks
    # and the attention bias). Dynamo with the eager backend (tracing, no code generation) then takes
    # the heads whose forwards hold code of their own: the MLM and NSP heads (pre-training; masked-LM
    # and NSP alone are parts of it), the (b, n, t) reshape of multiple choice, QA's unbind. Sequence
    # and token classification are dropout + Linear on the same encoder output.
    model = tiny_model(torch.float32, layers=1)
    ids, mask = padded_batch([6, 3], 6)
    with torch.no_grad():
        for got, ref in zip(outputs_of(fast.compile(model), ids, mask), outputs_of(model, ids, mask)):
            assert max_err(got, ref) < 1e-5  # fast.compile: torch.compile with minibert's Inductor options
        for name in ("BertForPreTraining", "BertForMultipleChoice", "BertForQuestionAnswering"):
            model = tiny_model(torch.float32, layers=1, cls=getattr(minibert, name))
            ids, mask = class_inputs(name)
            compiled = torch.compile(model, backend="eager")
            for got, ref in zip(outputs_of(compiled, ids, mask), outputs_of(model, ids, mask)):
                assert max_err(got, ref) < 1e-6, name


@pytest.mark.parametrize("padded", [False, True])
def test_bfloat16_attention_written_out_is_as_close_as_the_fused_kernel(padded):
    """In bf16 on a CPU, short sequences take the written-out softmax(QKᵀ/√d + bias)V (faster there).
    Against float32 attention on the same values it must stay near the fused bf16 kernel's error: the
    fused kernel keeps its scores in float32, the written-out one rounds them to bf16 (measured here:
    3.5x the fused kernel's mean error, pooled MiniLM embeddings unchanged at cosine 0.99995), so a
    margin; a wrong scale or an unblocked padded key is far outside it."""
    torch.manual_seed(0)
    b, t, heads, d = 3, 37, 4, 16
    qkv = (torch.randn(b, t, 3 * heads * d) * 2).bfloat16()                           # (b, t, 3c)
    mask = torch.ones(b, t, dtype=torch.bool)
    if padded:
        mask[1, 20:] = False
        mask[2, 5:] = False
    bias = mask_to_bias(mask[:, None, None, :], torch.bfloat16) if padded else None   # (b, 1, 1, t)

    def fused(dtype):
        q, k, v = (x.to(dtype).view(b, t, heads, d).transpose(1, 2) for x in qkv.chunk(3, dim=-1))
        out = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=None if bias is None else bias.to(dtype))                 # (b, h, t, d)
        return out.transpose(1, 2).reshape(b, t, heads * d).float()

    with torch.inference_mode():  # the written-out kernel is for inference; with autograd on, SDPA's runs
        written_out = sdpa(qkv, bias, heads, 0.0)                                      # (b, t, c)
    assert written_out.dtype == torch.bfloat16
    # The reference formula, computed out of place, gives the very same bf16 values.
    reference, _ = attend(*split_heads(qkv, heads), bias)                              # (b, h, t, d)
    assert torch.equal(written_out, merge_heads(reference))
    exact = fused(torch.float32)
    error, fused_error = (written_out.float() - exact).abs(), (fused(torch.bfloat16) - exact).abs()
    assert error.mean() <= 5 * fused_error.mean(), (error.mean(), fused_error.mean())
    assert error.max() <= 8 * fused_error.max(), (error.max(), fused_error.max())


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_deferred_normalisation_equals_the_softmax_first(dtype):
    """``_deferred`` divides by the softmax's sum after the second matmul: the same value as softmax
    first (float64: to 1e-12), padded keys blocked, rows whose scores are all large still finite. In
    bf16 its error against float64 stays within 1.5x that of the eager written-out kernel (measured
    0.88x here: its statistics are float32)."""
    from minibert.fast.sdpa import _deferred, _explicit

    torch.manual_seed(0)
    b, heads, t, d = 3, 4, 19, 8
    q, k, v = (torch.randn(b, heads, t, d, dtype=torch.float64) * 3 for _ in range(3))   # (b, h, t, d)
    q[0, 0, 0] *= 100                                          # scores ~1e4: exp overflows unless shifted
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 11:] = False
    bias = mask_to_bias(mask[:, None, None, :], torch.float32)                           # (b, 1, 1, s)
    reference, _ = attend(q, k, v, bias.double())
    low = [x.to(dtype) for x in (q, k, v)]
    got = _deferred(*low, bias)
    assert got.dtype == dtype and torch.isfinite(got).all()
    if dtype == torch.float64:
        assert max_err(got, reference) < 1e-12
    else:
        eager = _explicit(*low, bias.to(dtype)).double()
        assert max_err(got.double(), reference) <= 1.5 * max_err(eager, reference)


def test_compiled_bfloat16_attention_takes_the_deferred_form():
    """Under torch.compile, bf16 attention on a CPU is traced as ``_deferred`` (no softmax in the graph,
    which Inductor would turn back into the slower fused kernel); eagerly, it stays ``_explicit``."""
    graphs = []

    def keep_graph(graph_module, example_inputs):
        graphs.append(graph_module.code)
        return graph_module.forward

    model = tiny_model(torch.bfloat16, layers=1)
    ids, mask = padded_batch([6, 4], 6)
    with torch.inference_mode():
        compiled = torch.compile(model, backend=keep_graph)
        got, want = compiled(ids, mask).last_hidden_state, model(ids, mask).last_hidden_state
    code = "\n".join(graphs)
    assert "softmax" not in code and "scaled_dot_product" not in code and "exp" in code
    assert max_err(got.float(), want.float()) < 0.05   # bf16 rounding apart: normalised before or after


def test_fast_compile_adds_its_inductor_options_and_keeps_the_callers(monkeypatch):
    seen = {}
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: seen.update(kwargs) or model)
    model = tiny_model(torch.float32, layers=1)
    assert fast.compile(model) is model
    assert seen["options"] == fast.compiled.INDUCTOR_OPTIONS and seen["dynamic"] is None
    fast.compile(model, dynamic=False, options={"realize_cpu_opcount_threshold": 3, "freezing": True})
    assert seen["options"] == {**fast.compiled.INDUCTOR_OPTIONS, "realize_cpu_opcount_threshold": 3, "freezing": True}
    assert seen["dynamic"] is False
    seen.clear()
    fast.compile(model, backend="eager")          # Inductor's options are for Inductor only
    assert "options" not in seen
    with pytest.raises(minibert.errors.InputTypeError, match="torch.nn.Module"):
        fast.compile("bert")


def test_compiled_model_still_names_bad_input():
    """The checks run eagerly before the graph (``torch.compiler.disable``), so compiled models raise
    the same errors."""
    model = tiny_model(torch.float32, layers=1)
    compiled = torch.compile(model, backend="eager")
    ids, mask = padded_batch([6, 4], 6)
    with torch.inference_mode():
        compiled(ids, mask)
        with pytest.raises(minibert.errors.InputError, match="input_ids contains"):
            compiled(ids + 10_000, mask)
        with pytest.raises(minibert.errors.InputError, match="attention_mask must hold only 0 and 1"):
            compiled(ids, mask.long() * 2)
