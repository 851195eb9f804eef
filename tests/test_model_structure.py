"""The package's shape: imports point down the layers, and the model-side small promises hold.

* every module imports only from its own layer or the ones below (lazy imports inside functions too);
* a head model draws its weights once (the encoder is not initialised twice), ties the MLM decoder;
* ``save_pretrained`` leaves the caller's config alone; ``SentenceEncoder`` leaves the model alone;
* parameters a checkpoint lacks get BERT's initialisation without a second model being built.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import minibert

PACKAGE = Path(minibert.__file__).parent
# Lowest first. A module may import from its own layer and the ones above it in this list.
LAYERS = [
    {"errors", "checks", "config", "inputs", "outputs", "progress"},
    {"checkpoints"},   # file formats and the name table; never imports the model classes it fills
    {"attention"},
    {"fast"},
    {"model"},
    {"heads"},
    {"tokenizer"},
    {"data"},
    {"train"},
    {"sentence", "export", "cli"},
]


def layer_of(module: str) -> int:
    top = module.split(".")[1] if module.startswith("minibert.") else module
    return next(i for i, names in enumerate(LAYERS) if top in names)


def minibert_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("minibert"):
            found |= {f"{node.module}.{a.name}" if node.module == "minibert" else node.module for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("minibert.")}
    return {name for name in found if name.split(".")[1] not in ("__version__",)}


def test_imports_point_down_the_layers():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts)
        if module == "minibert.__init__":
            continue  # the package's front door re-exports every layer
        for target in minibert_imports(path):
            if layer_of(target) > layer_of(module):
                upward.append(f"{module} imports {target}")
    assert upward == []


def tiny_config(**overrides):
    return minibert.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=24, max_position_embeddings=16, **overrides)


def test_head_models_draw_their_weights_once(monkeypatch):
    calls = []
    original = minibert.BertPreTrainedModel.init_weights
    monkeypatch.setattr(minibert.BertPreTrainedModel, "init_weights",
                        lambda self, only=None: calls.append(type(self).__name__) or original(self, only))
    model = minibert.BertForPreTraining(tiny_config())
    assert calls == ["BertForPreTraining"]
    minibert.BertModel(tiny_config())
    assert calls[1:] == ["BertModel"]
    assert model.mlm.decoder.weight is model.bert.embeddings.word.weight  # tied, drawn once
    assert model.bert.embeddings.word.weight[0].abs().max() == 0         # the padding row
    assert model.mlm.bias.abs().max() == 0 and model.nsp.bias.abs().max() == 0
    assert model.bert.layers[0].attn_norm.weight.eq(1).all()
    assert 0.01 < model.bert.layers[0].ffn.up.weight.std() < 0.03        # N(0, 0.02)


def test_save_pretrained_leaves_the_callers_config_alone(tmp_path):
    config = tiny_config(num_labels=3)
    model = minibert.BertForSequenceClassification(config)
    model.save_pretrained(tmp_path)
    assert config.architectures is None
    assert '"BertForSequenceClassification"' in (tmp_path / "config.json").read_text()


def test_sentence_encoder_leaves_the_model_alone():
    model = minibert.BertModel(tiny_config()).eval()
    before = dict(vars(model))
    minibert.SentenceEncoder(model, tokenizer=None)
    assert {k: v for k, v in vars(model).items() if not k.startswith("_")} == \
        {k: v for k, v in before.items() if not k.startswith("_")}


def test_missing_parameters_are_drawn_without_building_a_second_model(tmp_path, monkeypatch):
    minibert.BertModel(tiny_config()).save_pretrained(tmp_path)  # no classifier in the file
    built = []
    original = minibert.BertForSequenceClassification.__init__
    monkeypatch.setattr(minibert.BertForSequenceClassification, "__init__",
                        lambda self, config: built.append(1) or original(self, config))
    model = minibert.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
    assert built == [1]
    assert sorted(model.load_report.missing) == ["classifier.bias", "classifier.weight"]
    assert not any(p.is_meta for p in model.parameters())
    assert model.classifier.bias.abs().max() == 0
    assert 0 < model.classifier.weight.std() < 0.1
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]))
