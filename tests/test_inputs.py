"""Bad input to a model gets a clear ValueError/TypeError naming the argument and the value, raised
before any heavy work; odd but valid input (fully padded rows, half precision) gives finite output."""

from __future__ import annotations

import pytest
import torch

import minibert
from minibert import InputError, InputTypeError

CFG = minibert.BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=20, max_position_embeddings=12, type_vocab_size=2)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return minibert.BertForSequenceClassification(CFG).eval()


IDS = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(input_ids=torch.tensor([[1, 30]])), InputError, r"input_ids contains 30, outside \[0, vocab_size=30\)"),
    (dict(input_ids=torch.tensor([[-1, 3]])), InputError, r"input_ids contains -1"),
    (dict(input_ids=torch.tensor([[1.0, 2.0]])), InputTypeError, r"input_ids must be an integer tensor.*float32"),
    (dict(input_ids=[[1, 2]]), InputTypeError, r"input_ids must be a torch.Tensor, got list"),
    (dict(input_ids=torch.tensor([1, 2])), InputError, r"input_ids must have shape \(batch, sequence\)"),
    (dict(input_ids=torch.zeros(0, 4, dtype=torch.long)), InputError, r"input_ids is empty"),
    (dict(input_ids=torch.zeros(2, 0, dtype=torch.long)), InputError, r"input_ids is empty"),
    (dict(input_ids=torch.ones(1, 13, dtype=torch.long)), InputError, r"13 positions.*max_position_embeddings=12"),
    (dict(input_ids=IDS, token_type_ids=torch.full((2, 4), 2)), InputError,
     r"token_type_ids contains 2, outside \[0, type_vocab_size=2\)"),
    (dict(input_ids=IDS, token_type_ids=torch.zeros(2, 3, dtype=torch.long)), InputError,
     r"token_type_ids has shape \(2, 3\)"),
    (dict(input_ids=IDS, attention_mask=torch.ones(2, 5)), InputError, r"attention_mask has shape \(2, 5\)"),
    (dict(input_ids=IDS, attention_mask=torch.full((2, 4), 2)), InputError, r"only 0 and 1.*found 2"),
    (dict(input_ids=IDS, attention_mask=torch.full((2, 4), 0.5)), InputError, r"only 0 and 1.*found 0.5"),
    (dict(input_ids=IDS, attention_mask=torch.ones(2, 4, dtype=torch.complex64)), InputTypeError,
     r"attention_mask must be bool, integer or float"),
    (dict(input_ids=IDS, position_ids=torch.tensor([0, 1, 2, 12])), InputError,
     r"position_ids contains 12, outside \[0, max_position_embeddings=12\)"),
    (dict(input_ids=IDS, labels=torch.tensor([0, 2])), InputError, r"labels contains 2"),
    (dict(input_ids=torch.zeros(2, 4, dtype=torch.long, device="meta")), InputError,
     r"input_ids is on the meta device"),
    (dict(input_ids=IDS, attention_mask=torch.ones(2, 4, device="meta")), InputError,
     r"attention_mask is on the meta device"),
    (dict(input_ids=IDS, token_type_ids=torch.zeros(2, 4, dtype=torch.long, device="meta")), InputError,
     r"token_type_ids is on the meta device"),
    (dict(input_ids=IDS.to_sparse()), InputTypeError, r"input_ids must be a dense tensor, got layout torch.sparse_coo"),
    (dict(input_ids=IDS, attention_mask=torch.ones(2, 4).to_sparse()), InputTypeError,
     r"attention_mask must be a dense tensor"),
    (dict(input_ids=IDS.to(torch.uint16)), None, None),   # every integer dtype is an id dtype
    (dict(input_ids=IDS.to(torch.bool)), InputTypeError, r"input_ids must be an integer tensor.*torch.bool"),
])
def test_bad_input_is_named(model, kwargs, error, match):
    if error is None:
        assert torch.isfinite(model(**kwargs).logits).all()
        return
    with pytest.raises(error, match=match):
        model(**kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("weights", [False, True])
def test_all_padding_rows_stay_finite(dtype, weights):
    torch.manual_seed(0)
    model = minibert.BertModel(CFG).to(dtype).eval()
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]])
    with torch.no_grad():
        out = model(IDS, attention_mask=mask, output_attentions=weights)
    assert torch.isfinite(out.last_hidden_state).all() and torch.isfinite(out.pooler_output).all()
    if weights:
        assert all(torch.isfinite(a).all() for a in out.attentions)


def test_eval_mode_inference_is_deterministic(model):
    with torch.no_grad():
        first = model(IDS).logits
        second = model(IDS).logits
    assert torch.equal(first, second)


def test_return_dict_false_and_indexing_like_transformers(model):
    out = model(IDS, labels=torch.tensor([0, 1]))
    assert torch.equal(out[0], out.loss) and torch.equal(out["logits"], out.logits)
    loss, logits = model(IDS, labels=torch.tensor([0, 1]), return_dict=False)
    assert torch.equal(logits, out.logits)
