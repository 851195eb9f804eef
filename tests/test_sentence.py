"""SentenceEncoder against the sentence-transformers recipe, computed here with transformers.

The reference is built by hand from ``transformers.AutoModel`` + ``AutoTokenizer`` with the same
settings the checkpoint's files declare (max_seq_length 256, mean pooling, L2 normalisation), which
is exactly what sentence-transformers computes for all-MiniLM-L6-v2.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minibert import BertConfig, BertModel
from minibert.errors import ConfigError, InputError, InputTypeError
from minibert.sentence import SentenceEncoder, pool, read_sentence_config, similarity

# Varied on purpose: one word, punctuation, digits, accents, a question, and one text far over
# max_seq_length=256 tokens, so that truncation decides part of the answer.
TEXTS = [
    "Hi!",
    "The quick brown fox jumps over the lazy dog.",
    "Was the 1998 World Cup final played in Saint-Denis?",
    "Crème brûlée is a dessert of rich custard topped with caramelised sugar.",
    "Sorting the inputs by length keeps padding to a minimum, which makes batched inference faster.",
    " ".join(["Long documents are cut at the maximum sequence length before pooling."] * 40),
    "ok",
]


@pytest.fixture(scope="module")
def encoder(minilm_dir):
    return SentenceEncoder.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def reference(minilm_dir):
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    model = AutoModel.from_pretrained(str(minilm_dir)).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    assert int(batch["attention_mask"].sum(1).max()) == 256  # the long text really is truncated
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state                       # (n, t, c)
    mask = batch["attention_mask"].unsqueeze(-1).float()               # (n, t, 1)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)        # (n, c)
    return F.normalize(mean, p=2, dim=1)


def test_reads_the_sentence_transformers_files(minilm_dir):
    settings = read_sentence_config(minilm_dir)
    assert settings.pooling_modes == ("mean",)
    assert settings.normalize is True
    assert settings.max_seq_length == 256
    assert settings.do_lower_case is False


def test_matches_sentence_transformers_recipe(encoder, reference):
    ours = encoder.encode(TEXTS, batch_size=3, convert_to_tensor=True)
    assert ours.shape == (len(TEXTS), 384)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    assert torch.allclose(ours.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-5)


def test_order_is_restored_whatever_the_batching(encoder, reference):
    # Reversed input, batches of 2: each row must still be the embedding of its own text.
    backwards = encoder.encode(TEXTS[::-1], batch_size=2, convert_to_tensor=True)
    torch.testing.assert_close(backwards.flip(0), reference, atol=1e-5, rtol=0)


def test_numpy_output_single_string_and_empty_list(encoder, reference):
    as_numpy = encoder.encode(TEXTS)
    assert isinstance(as_numpy, np.ndarray) and as_numpy.shape == (len(TEXTS), 384)
    one = encoder.encode(TEXTS[2], convert_to_tensor=True)
    assert one.shape == (384,)
    torch.testing.assert_close(one, reference[2], atol=1e-5, rtol=0)
    empty = encoder.encode([])
    assert empty.shape == (0, 384)  # documented: an empty list gives an empty result, not an error


def test_normalize_override_and_similarity(encoder, reference):
    raw = encoder.encode(TEXTS[:3], normalize=False, convert_to_tensor=True)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(F.normalize(raw, dim=1), reference[:3], atol=1e-5, rtol=0)
    scores = similarity(raw, reference[:3])                                    # (3, 3)
    expected = F.cosine_similarity(raw[:, None], reference[None, :3], dim=-1)  # (3, 3)
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=0)
    assert similarity(raw[0], raw).shape == (1, 3)


def test_bad_arguments_name_the_argument(encoder):
    with pytest.raises(InputError, match="batch_size"):
        encoder.encode(["a"], batch_size=0)
    with pytest.raises(InputTypeError, match=r"texts\[1\]"):
        encoder.encode(["a", 3])
    with pytest.raises(InputTypeError, match="texts"):
        encoder.encode(42)
    with pytest.raises(InputError, match="vector size"):
        similarity(torch.ones(2, 3), torch.ones(2, 4))


def test_pooling_modes_ignore_padding():
    hidden = torch.tensor([[[1.0, -2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2); position 2 is padding
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(pool(hidden, mask, "mean"), torch.tensor([[2.0, 1.0]]))
    torch.testing.assert_close(pool(hidden, mask, "max"), torch.tensor([[3.0, 4.0]]))
    torch.testing.assert_close(pool(hidden, mask, "cls"), torch.tensor([[1.0, -2.0]]))
    torch.testing.assert_close(pool(hidden, mask, "mean_sqrt_len"), torch.tensor([[4.0, 2.0]]) / 2 ** 0.5)
    with pytest.raises(InputError, match="pooling mode"):
        pool(hidden, mask, "median")


def _tiny_folder(tmp_path, minilm_dir):
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(tmp_path)
    shutil.copyfile(minilm_dir / "vocab.txt", tmp_path / "vocab.txt")
    return tmp_path


def test_plain_bert_folder_gets_mean_pooling_without_normalisation(tmp_path, minilm_dir):
    folder = _tiny_folder(tmp_path, minilm_dir)
    encoder = SentenceEncoder.from_pretrained(folder)
    assert encoder.pooling_modes == ("mean",) and encoder.normalize is False
    assert encoder.max_seq_length == 64  # max_position_embeddings
    vectors = encoder.encode(["a short one", "and a somewhat longer second text"], convert_to_tensor=True)
    tokens = encoder.tokenizer(["a short one", "and a somewhat longer second text"], padding=True,
                               return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.model(tokens["input_ids"], tokens["attention_mask"]).last_hidden_state
    torch.testing.assert_close(vectors, pool(hidden, tokens["attention_mask"], "mean"), atol=1e-5, rtol=0)


def test_several_pooling_modes_are_concatenated(tmp_path, minilm_dir):
    folder = _tiny_folder(tmp_path, minilm_dir)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True}))
    encoder = SentenceEncoder.from_pretrained(folder)
    assert encoder.pooling_modes == ("cls", "mean") and encoder.embedding_size == 64
    both = encoder.encode(["one text"], convert_to_tensor=True)              # (1, 64)
    tokens = encoder.tokenizer(["one text"], return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.model(tokens["input_ids"]).last_hidden_state
    torch.testing.assert_close(both[:, :32], hidden[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(both[:, 32:], hidden.mean(1), atol=1e-5, rtol=0)


def test_unsupported_module_is_a_clear_error(tmp_path, minilm_dir):
    folder = _tiny_folder(tmp_path, minilm_dir)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    with pytest.raises(ConfigError, match="Dense"):
        SentenceEncoder.from_pretrained(folder)
