"""The in-place block through oneDNN (``minibert/fast/onednn.py``) against the reference block.

The float64 fast-path tests (``tests/test_fast_paths.py``) never reach it (oneDNN takes float32 and
bfloat16 only), so it is held here in float32 to 1e-5 of the reference path, for every activation
it fuses (erf and tanh GELU, ReLU) and one it applies after the matmul (SiLU), padded and unpadded.
"""

from __future__ import annotations

import pytest
import torch

import minibert
from minibert import fast
from minibert.fast import onednn

pytestmark = pytest.mark.skipif(onednn.LINEAR is None, reason="this PyTorch build has no oneDNN linear")


@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu", "silu"])
@pytest.mark.parametrize("unpad", [False, True])
def test_onednn_block_equals_the_reference(act, unpad, monkeypatch):
    config = minibert.BertConfig(vocab_size=100, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
                                 intermediate_size=96, max_position_embeddings=40, hidden_act=act)
    torch.manual_seed(0)
    model = minibert.BertModel(config).eval()
    ids = torch.randint(1, 100, (3, 17))
    mask = torch.ones(3, 17, dtype=torch.long)
    mask[1, 9:] = 0
    calls = []
    monkeypatch.setattr(onednn, "linear_add", lambda *a, original=onednn.linear_add: calls.append(1) or original(*a))
    with torch.inference_mode():
        assert fast.explain(model, mask, unpad=unpad).in_place
        got = model(ids, mask, unpad=unpad).last_hidden_state
        model.fast_paths = False
        expected = model(ids, mask).last_hidden_state
    assert calls, "the oneDNN block did not run"
    real = mask.bool()
    assert (got - expected)[real].abs().max() < 1e-5
