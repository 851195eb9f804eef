"""ONNX export (``minibert/export.py``, ``minibert export-onnx``), run with ONNX Runtime.

Outputs must equal the float32 PyTorch model within 1e-4 at every real position, on batches of
other sizes and lengths than the one the exporter traced, padded and not (the graph must keep the
mask and the dynamic axes). onnx and onnxruntime are in the test extra: these tests always run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import minibert
from minibert.errors import InputError
from minibert.export import export_onnx

ort = pytest.importorskip("onnxruntime")  # installed by `make test`; the skip only guards bare installs

TOLERANCE = 1e-4


def run_onnx(path, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": np.zeros_like(ids.numpy())}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})))


def batches(vocab: int):
    """(ids, mask) pairs unlike the exporter's sample: one row, no padding; three rows, left and right padding."""
    g = torch.Generator().manual_seed(1)
    full = torch.randint(5, vocab, (1, 23), generator=g), torch.ones(1, 23, dtype=torch.long)
    ids = torch.randint(5, vocab, (3, 31), generator=g)
    mask = torch.ones(3, 31, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 25:] = 0
    return [full, (ids * mask, mask)]


def assert_matches(model, path, vocab: int, real_positions: bool = True) -> None:
    for ids, mask in batches(vocab):
        with torch.no_grad():
            expected = model(ids, mask, unpad=False)
        got = run_onnx(path, ids, mask)
        assert set(got) == set(expected.keys())
        for name, value in got.items():
            reference = expected[name].numpy()
            assert value.shape == reference.shape, name
            if real_positions and value.ndim >= 2 and value.shape[1] == ids.shape[1]:
                keep = mask.bool().numpy()  # per-position outputs: compare real tokens
                value, reference = value[keep], reference[keep]
            assert np.abs(value - reference).max() < TOLERANCE, name


@pytest.fixture(scope="module")
def tiny_config():
    return minibert.BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=64, max_position_embeddings=64, num_labels=3)


@pytest.mark.parametrize("cls", [minibert.BertModel, minibert.BertForSequenceClassification,
                                 minibert.BertForQuestionAnswering])
def test_exported_graph_equals_the_model(tmp_path, tiny_config, cls):
    torch.manual_seed(0)
    model = cls(tiny_config).eval()
    path = tmp_path / "model.onnx"
    names = export_onnx(model, path)
    assert names == model(*batches(120)[1], unpad=False).keys()
    assert_matches(model, path, tiny_config.vocab_size)
    assert not model.training and getattr(model, "fast_paths", True)  # the model is left as it was


def test_cli_exports_minilm_and_onnxruntime_reproduces_it(tmp_path, minilm_dir, capsys):
    from minibert.cli import main

    out = tmp_path / "minilm.onnx"
    assert main(["export-onnx", str(minilm_dir), str(out)]) == 0
    assert "last_hidden_state, pooler_output" in capsys.readouterr().out
    assert_matches(minibert.BertModel.from_pretrained(minilm_dir), out, 30522)


def test_export_refuses_what_it_cannot_write(tmp_path, tiny_config):
    model = minibert.BertModel(tiny_config)
    with pytest.raises(InputError, match="float32"):
        export_onnx(model.to(torch.bfloat16), tmp_path / "m.onnx")
    with pytest.raises(InputError, match="opset"):
        export_onnx(model.float(), tmp_path / "m.onnx", opset=9)
