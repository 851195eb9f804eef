"""Every minibert model equals transformers' on random small configs, in float64, to 1e-9:
hidden states, attentions, pooled output, logits, loss, and gradients after backward.

Weights cross the boundary through files in both directions (minibert saves and transformers
loads, or the other way round), so the tests also hold the checkpoint name table to account.
"""

from __future__ import annotations

import tempfile

import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st

import minibert
from minibert.checkpoints import hf_names_for

TOL = 1e-9
CLASSES = ["BertModel", "BertForPreTraining", "BertForMaskedLM", "BertForNextSentencePrediction",
           "BertForSequenceClassification", "BertForTokenClassification", "BertForQuestionAnswering",
           "BertForMultipleChoice"]


@st.composite
def configs(draw):
    heads = draw(st.integers(1, 4))
    head_size = draw(st.integers(2, 8))
    return dict(
        vocab_size=draw(st.integers(10, 60)),
        hidden_size=heads * head_size,
        num_hidden_layers=draw(st.integers(1, 3)),
        num_attention_heads=heads,
        intermediate_size=draw(st.integers(4, 40)),
        hidden_act=draw(st.sampled_from(["gelu", "gelu_new", "relu", "silu"])),
        max_position_embeddings=draw(st.integers(8, 24)),
        type_vocab_size=draw(st.integers(1, 3)),
        layer_norm_eps=draw(st.sampled_from([1e-12, 1e-5])),
        initializer_range=draw(st.sampled_from([0.02, 0.2])),
        num_labels=draw(st.integers(1, 4)),
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def make_pair(name: str, cfg: dict, seed: int, minibert_first: bool):
    """The same weights in a minibert model and a transformers model, float64, crossing through a file."""
    if name == "BertForQuestionAnswering":
        cfg = {**cfg, "num_labels": 2}  # transformers sizes qa_outputs by num_labels: start and end
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as folder:
        if minibert_first:
            ours = getattr(minibert, name)(minibert.BertConfig(**cfg)).double()
            # Random biases and LayerNorm parameters, so a swapped bias or norm cannot hide behind zeros.
            with torch.no_grad():
                for p in ours.parameters():
                    p.add_(torch.randn_like(p) * 0.1)
            ours.save_pretrained(folder)
            ref = getattr(transformers, name).from_pretrained(folder, attn_implementation="eager",
                                                              dtype=torch.float64)
        else:
            ref = getattr(transformers, name)(transformers.BertConfig(**cfg, attn_implementation="eager"))
            ref = ref.double()
            with torch.no_grad():
                for p in ref.parameters():
                    p.add_(torch.randn_like(p) * 0.1)
            ref.save_pretrained(folder)
            ours = getattr(minibert, name).from_pretrained(folder, dtype=torch.float64)
            assert ours.load_report.missing == [] and ours.load_report.unexpected == []
    return ours, ref


def make_inputs(name: str, cfg: dict, data, labels_kind: str):
    b = data.draw(st.integers(1, 3), label="batch")
    t = data.draw(st.integers(1, cfg["max_position_embeddings"]), label="length")
    shape = (b, data.draw(st.integers(2, 3), label="choices"), t) if name == "BertForMultipleChoice" else (b, t)
    ids = torch.randint(0, cfg["vocab_size"], shape)
    types = torch.randint(0, cfg["type_vocab_size"], shape)
    # Padding: each row keeps a random number (>= 1) of leading real tokens.
    lengths = torch.randint(1, t + 1, shape[:-1])
    mask = (torch.arange(t) < lengths[..., None]).long()
    inputs = dict(input_ids=ids, attention_mask=mask, token_type_ids=types)
    labels: dict = {}
    n = cfg["num_labels"]
    if name == "BertForPreTraining":
        mlm = torch.randint(0, cfg["vocab_size"], shape)
        mlm[torch.rand(shape) < 0.5] = -100
        mlm.view(-1)[0] = 1  # at least one labelled position: a mean over none is NaN on both sides
        labels = dict(labels=mlm, next_sentence_label=torch.randint(0, 2, (b,)))
    elif name == "BertForMaskedLM":
        mlm = torch.randint(0, cfg["vocab_size"], shape)
        mlm[torch.rand(shape) < 0.5] = -100
        mlm.view(-1)[0] = 1  # at least one labelled position: a mean over none is NaN on both sides
        labels = dict(labels=mlm)
    elif name == "BertForNextSentencePrediction":
        labels = dict(labels=torch.randint(0, 2, (b,)))
    elif name == "BertForSequenceClassification":
        if n == 1:
            labels = dict(labels=torch.randn(b, dtype=torch.float64))
        elif labels_kind == "multi":
            labels = dict(labels=torch.randint(0, 2, (b, n)).double())
        else:
            labels = dict(labels=torch.randint(0, n, (b,)))
    elif name == "BertForTokenClassification":
        tags = torch.randint(0, n, shape)
        tags[mask == 0] = -100
        labels = dict(labels=tags)
    elif name == "BertForQuestionAnswering":
        # Positions past the end are clamped and ignored; the first row always has a real span.
        start, end = torch.randint(0, t + 2, (b,)), torch.randint(0, t + 2, (b,))
        start[0], end[0] = torch.randint(0, t, (2,))
        labels = dict(start_positions=start, end_positions=end)
    elif name == "BertForMultipleChoice":
        labels = dict(labels=torch.randint(0, shape[1], (b,)))
    return inputs, labels


def close(a, b, what):
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    err = (a - b).abs().max().item() if a.numel() else 0.0
    assert err <= TOL, f"{what}: max abs difference {err:.3e} > {TOL}"


def grads_by_hf_name(model) -> dict[str, torch.Tensor]:
    bare = isinstance(model, minibert.BertModel)
    out = {}
    for key, p in model.named_parameters():  # the tied decoder weight is listed once, as the embedding
        if p.grad is None:
            continue
        names = hf_names_for("bert." + key if bare else key)
        for hf_name, part in zip(names, p.grad.chunk(len(names)) if len(names) > 1 else (p.grad,)):
            out[hf_name[5:] if bare else hf_name] = part
    return out


@pytest.mark.parametrize("name", CLASSES)
@settings(max_examples=8)
@given(cfg=configs(), seed=st.integers(0, 2**16), minibert_first=st.booleans(),
       labels_kind=st.sampled_from(["single", "multi"]), data=st.data())
def test_outputs_loss_and_gradients_match_transformers(name, cfg, seed, minibert_first, labels_kind, data):
    ours, ref = make_pair(name, cfg, seed, minibert_first)
    inputs, labels = make_inputs(name, cfg, data, labels_kind)
    ours.train(), ref.train()  # dropout is 0 in these configs; train mode exercises the training path

    a = ours(**inputs, **labels, output_attentions=True, output_hidden_states=True)
    b = ref(**inputs, **labels, output_attentions=True, output_hidden_states=True)
    fields = [f for f in ("last_hidden_state", "pooler_output", "logits", "prediction_logits",
                          "seq_relationship_logits", "start_logits", "end_logits", "loss") if hasattr(b, f)
              and getattr(b, f) is not None]
    assert fields
    for f in fields:
        close(getattr(a, f), getattr(b, f), f)
    assert len(a.hidden_states) == len(b.hidden_states) == cfg["num_hidden_layers"] + 1
    for i, (x, y) in enumerate(zip(a.hidden_states, b.hidden_states)):
        close(x, y, f"hidden_states[{i}]")
    assert len(a.attentions) == len(b.attentions) == cfg["num_hidden_layers"]
    for i, (x, y) in enumerate(zip(a.attentions, b.attentions)):
        close(x, y, f"attentions[{i}]")

    # Gradients: of the loss where there is one, else of a fixed projection of every output.
    def objective(out):
        if getattr(out, "loss", None) is not None:
            return out.loss
        return sum((h * torch.linspace(-1, 1, h.shape[-1], dtype=h.dtype)).sum() for h in out.hidden_states) \
            + (out.pooler_output.sum() if out.pooler_output is not None else 0)

    objective(a).backward()
    objective(b).backward()
    ours_grads = grads_by_hf_name(ours)
    ref_grads = {k: p.grad for k, p in ref.named_parameters() if p.grad is not None}
    ref_grads.pop("cls.predictions.decoder.weight", None)  # tied: accumulated into the word embeddings
    ref_grads.pop("cls.predictions.decoder.bias", None)
    assert set(ours_grads) == set(ref_grads), set(ours_grads) ^ set(ref_grads)
    for key in ref_grads:
        close(ours_grads[key], ref_grads[key], f"grad of {key}")


def test_sparse_mlm_gives_the_dense_loss():
    torch.manual_seed(0)
    cfg = minibert.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=20, max_position_embeddings=16)
    model = minibert.BertForPreTraining(cfg).double().eval()
    ids = torch.randint(0, 50, (3, 12))
    labels = torch.full_like(ids, -100)
    labels[:, ::4] = ids[:, ::4]
    nsp = torch.tensor([0, 1, 0])
    dense = model(ids, labels=labels, next_sentence_label=nsp)
    sparse = model(ids, labels=labels, next_sentence_label=nsp, sparse_mlm=True)
    assert sparse.prediction_logits.shape == (int((labels != -100).sum()), 50)
    close(sparse.loss, dense.loss, "loss")
    close(sparse.prediction_logits, dense.prediction_logits[labels != -100], "labelled logits")
