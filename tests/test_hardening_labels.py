"""Labels are checked like ids: dtype, shape against the batch, range; before the encoder runs.
Every head, the examples of issue 14, then a fuzz of label tensors over every head."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minibert
from minibert import InputError, InputTypeError, MinibertError

TINY = dict(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
            max_position_embeddings=8)
B, T = 2, 5
IDS = torch.randint(1, 30, (B, T), generator=torch.Generator().manual_seed(0))
CHOICE_IDS = torch.randint(1, 30, (B, 3, T), generator=torch.Generator().manual_seed(1))


def head(name: str, **config):
    torch.manual_seed(0)
    return getattr(minibert, name)(minibert.BertConfig(**TINY, **config)).eval()


def encoder_must_not_run(model, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the encoder ran before the labels were checked")
    monkeypatch.setattr(model.bert, "forward", refuse)


LONG, FLOAT = torch.long, torch.float
CASES = [
    # head, config, labels keyword arguments, error, message
    ("BertForSequenceClassification", {"num_labels": 3}, dict(labels=torch.tensor([[0, 1], [1, 0]])), InputError,
     r"labels has shape \(2, 2\), expected \(2,\)"),
    ("BertForSequenceClassification", {"num_labels": 3}, dict(labels=torch.tensor([0, 1, 2])), InputError,
     r"labels has shape \(3,\), expected \(2,\)"),
    ("BertForSequenceClassification", {"num_labels": 3, "problem_type": "single_label_classification"},
     dict(labels=torch.tensor([0.0, 1.0])), InputTypeError, r"labels must be an integer tensor.*float32"),
    ("BertForSequenceClassification", {"num_labels": 3}, dict(labels=torch.tensor([0, 3])), InputError,
     r"labels contains 3, outside \[0, num_labels=3\)"),
    ("BertForSequenceClassification", {"num_labels": 1}, dict(labels=torch.tensor([0.5])), InputError,
     r"labels has shape \(1,\), expected \(2,\)"),  # a (1,) regression label is not broadcast
    ("BertForSequenceClassification", {"num_labels": 2, "problem_type": "regression"},
     dict(labels=torch.tensor([0.5, 1.0])), InputError, r"labels for regression have shape \(2,\), expected \(2, 2\)"),
    ("BertForSequenceClassification", {"num_labels": 1}, dict(labels=torch.tensor([0.5, float("nan")])), InputError,
     r"labels contain NaN"),
    ("BertForSequenceClassification", {"num_labels": 3}, dict(labels=torch.tensor([[0.0, 2.0, 1.0]] * 2)),
     InputError, r"multi-label classification must lie in \[0, 1\].*found 2.0"),
    ("BertForSequenceClassification", {"num_labels": 3}, dict(labels=torch.ones(2, 3, dtype=torch.complex64)),
     InputTypeError, r"labels for multi_label_classification must be a real"),
    ("BertForSequenceClassification", {"num_labels": 3}, dict(labels=[0, 1]), InputTypeError,
     r"labels must be a torch.Tensor, got list"),
    ("BertForSequenceClassification", {"num_labels": 3}, dict(labels=torch.zeros(2, dtype=LONG, device="meta")),
     InputError, r"labels is on the meta device"),
    ("BertForTokenClassification", {"num_labels": 4}, dict(labels=torch.zeros(B, T + 1, dtype=LONG)), InputError,
     r"labels has shape \(2, 6\), expected \(2, 5\)"),
    ("BertForTokenClassification", {"num_labels": 4}, dict(labels=torch.zeros(B, T)), InputTypeError,
     r"labels must be an integer tensor"),
    ("BertForTokenClassification", {"num_labels": 4}, dict(labels=torch.full((B, T), -5)), InputError,
     r"labels contains -5, outside \[0, num_labels=4\) and not -100"),
    ("BertForMaskedLM", {}, dict(labels=torch.zeros(B, T)), InputTypeError, r"labels must be an integer tensor"),
    ("BertForMaskedLM", {}, dict(labels=torch.zeros(B, dtype=LONG)), InputError, r"labels has shape \(2,\)"),
    ("BertForMaskedLM", {}, dict(labels=torch.full((B, T), 30)), InputError, r"labels contains 30.*vocab_size=30"),
    ("BertForPreTraining", {}, dict(next_sentence_label=torch.tensor([0, 2])), InputError,
     r"next_sentence_label contains 2, outside \[0, 2\)"),
    ("BertForPreTraining", {}, dict(next_sentence_label=torch.tensor([0.0, 1.0])), InputTypeError,
     r"next_sentence_label must be an integer tensor"),
    ("BertForPreTraining", {}, dict(labels=torch.zeros(B, T - 1, dtype=LONG)), InputError,
     r"labels has shape \(2, 4\), expected \(2, 5\)"),
    ("BertForNextSentencePrediction", {}, dict(labels=torch.zeros(B, 2, dtype=LONG)), InputError,
     r"labels has shape \(2, 2\), expected \(2,\)"),
    ("BertForQuestionAnswering", {}, dict(start_positions=torch.tensor([0.0, 1.0]), end_positions=torch.tensor([1, 2])),
     InputTypeError, r"start_positions must be an integer tensor"),
    ("BertForQuestionAnswering", {}, dict(start_positions=torch.tensor([0, 1]), end_positions=torch.tensor([1])),
     InputError, r"end_positions has shape \(1,\), expected \(2,\)"),
]


@pytest.mark.parametrize("name, config, labels, error, match", CASES)
def test_bad_labels_are_named_before_the_encoder_runs(name, config, labels, error, match, monkeypatch):
    model = head(name, **config)
    encoder_must_not_run(model, monkeypatch)
    with pytest.raises(error, match=match):
        model(IDS, **labels)


@pytest.mark.parametrize("labels, inputs, error, match", [
    (torch.tensor([0, 3]), {}, InputError, r"labels contains 3, outside \[0, n_choices=3\)"),
    (torch.tensor([0.0, 1.0]), {}, InputTypeError, r"labels must be an integer tensor, got dtype torch.float32"),
    (torch.tensor([[0], [1], [2]]), {}, InputError, r"labels has shape \(3, 1\), expected \(2,\)"),
    (None, dict(attention_mask=torch.ones(B, 2, T)), InputError,
     r"attention_mask has shape \(2, 2, 5\), expected \(2, 3, 5\)"),
    (None, dict(token_type_ids=torch.zeros(B, 3, T + 1, dtype=LONG)), InputError, r"token_type_ids has shape"),
    (None, dict(input_ids=torch.zeros(B, 0, T, dtype=LONG)), InputError, r"input_ids is empty \(shape \(2, 0, 5\)\)"),
])
def test_multiple_choice_labels_and_choice_shapes(labels, inputs, error, match, monkeypatch):
    model = head("BertForMultipleChoice")
    encoder_must_not_run(model, monkeypatch)
    with pytest.raises(error, match=match):
        model(**{"input_ids": CHOICE_IDS, **inputs}, labels=labels)


def test_valid_labels_give_the_loss_transformers_gives():
    # -100 is ignored, regression targets (b, n) for n labels, QA positions past the end are clamped
    # and ignored, as in transformers.
    token = head("BertForTokenClassification", num_labels=4)
    labels = torch.tensor([[0, 1, -100, 3, -100], [2, -100, -100, -100, 1]])
    assert torch.isfinite(token(IDS, labels=labels).loss)
    regression = head("BertForSequenceClassification", num_labels=2, problem_type="regression")
    out = regression(IDS, labels=torch.tensor([[0.5, 1.0], [2.0, -1.0]]))
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits, torch.tensor([[0.5, 1.0], [2.0, -1.0]])))
    qa = head("BertForQuestionAnswering")
    assert torch.isfinite(qa(IDS, start_positions=torch.tensor([1, 99]), end_positions=torch.tensor([2, 3])).loss)


HEADS = ["BertForSequenceClassification", "BertForTokenClassification", "BertForMaskedLM", "BertForPreTraining",
         "BertForNextSentencePrediction", "BertForQuestionAnswering", "BertForMultipleChoice"]
MODELS = {}


def cached(name, problem):
    key = (name, problem)
    if key not in MODELS:
        MODELS[key] = head(name, num_labels=1 if problem == "regression" else 3, problem_type=problem)
    return MODELS[key]


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(HEADS), problem=st.sampled_from([None, "regression", "single_label_classification",
                                                              "multi_label_classification"]),
       dtype=st.sampled_from([torch.long, torch.int32, torch.int16, torch.uint8, torch.bool, torch.float32,
                              torch.float16, torch.float64]),
       shape=st.lists(st.integers(0, 6), min_size=0, max_size=3),
       low=st.integers(-200, 40), span=st.integers(0, 40), data=st.data())
def test_fuzzed_labels_give_a_finite_loss_or_a_minibert_error(name, problem, dtype, shape, low, span, data):
    model = cached(name, problem)
    ids = CHOICE_IDS if name == "BertForMultipleChoice" else IDS
    values = torch.randint(low, low + span + 1, tuple(shape), generator=torch.Generator().manual_seed(span))
    labels = values.to(dtype) if dtype != torch.uint8 else values.clamp(0, 255).to(dtype)
    if data.draw(st.booleans()) and labels.is_floating_point() and labels.numel():
        labels.view(-1)[0] = data.draw(st.sampled_from([float("nan"), float("inf"), 0.5]))
    if name == "BertForQuestionAnswering":
        kwargs = dict(start_positions=labels, end_positions=labels)
    elif name == "BertForPreTraining" and data.draw(st.booleans()):
        kwargs = dict(next_sentence_label=labels)
    else:
        kwargs = dict(labels=labels)
    try:
        out = model(ids, **kwargs)
    except MinibertError as exc:
        assert isinstance(exc, (ValueError, TypeError)) and str(exc)
        return
    # Accepted labels: a loss of the right kind. A mean over no labelled position (all -100) is NaN in
    # transformers too; everything else must be finite.
    ignored = (labels >= T) if name == "BertForQuestionAnswering" else (labels == -100)  # past the end / -100
    all_ignored = labels.numel() and not labels.is_floating_point() and bool(ignored.all())
    assert out.loss is not None and out.loss.dim() == 0
    assert all_ignored or torch.isfinite(out.loss), (name, problem, labels)
