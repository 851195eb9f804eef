"""Fine-tuning: data reading, splitting, batching, metrics, and a whole run on a tiny model.

The end-to-end runs use a 2-layer, 32-wide BERT saved in the test, so that they take seconds; the
real experiment with all-MiniLM-L6-v2 is in ``docs/results/finetuning.md``.
"""

from __future__ import annotations

import csv
import json
import random
import shutil

import pytest
import torch

from minibert import BertConfig, BertForSequenceClassification, BertModel
from minibert.errors import InputError, InputTypeError
from minibert.data.batches import collate
from minibert.data.labelled import Example, load_examples, sorted_labels, stratified_split
from minibert.train.finetune import build_parser, classification_metrics, main
from minibert.tokenizer import BertTokenizer


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, minilm_dir):
    folder = tmp_path_factory.mktemp("tiny_bert")
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    shutil.copyfile(minilm_dir / "vocab.txt", folder / "vocab.txt")
    shutil.copyfile(minilm_dir / "tokenizer_config.json", folder / "tokenizer_config.json")
    return folder


FRUITS = ["apple", "pear", "plum", "cherry", "banana"]
STONES = ["granite", "basalt", "marble", "slate", "quartz"]


def _toy_rows(n: int, seed: int, pairs: bool = False) -> list[dict]:
    """Label = which word list the text draws from: learnable in a few steps even by a tiny model."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "fruit" if i % 2 == 0 else "stone"
        words = FRUITS if label == "fruit" else STONES
        row = {"text": f"the {rng.choice(words)} is here", "label": label}
        if pairs:
            row["text_pair"] = f"near the {rng.choice(FRUITS + STONES)}"
        rows.append(row)
    return rows


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_reads_csv_tsv_jsonl_and_finds_columns(tmp_path):
    with open(tmp_path / "d.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentence1", "sentence2", "category"])
        writer.writerow(["a, with comma", "b", "yes"])
    (tmp_path / "d.tsv").write_text("text\tlabel\nx y\t3\n", encoding="utf-8")
    _write_jsonl(tmp_path / "d.jsonl", [{"text": "q", "label": 1}, {"text": "r", "label": 0}])
    assert load_examples(tmp_path / "d.csv") == [Example("a, with comma", "b", "yes")]
    assert load_examples(tmp_path / "d.tsv") == [Example("x y", None, "3")]
    assert [e.label for e in load_examples(tmp_path / "d.jsonl")] == ["1", "0"]  # labels become names
    with pytest.raises(InputError, match="no label column"):
        load_examples(_write_jsonl(tmp_path / "nolabel.jsonl", [{"text": "q", "y": 1}]))
    with pytest.raises(InputError, match="'body'"):
        load_examples(tmp_path / "d.jsonl", text_column="body")


def test_stratified_split_is_disjoint_and_keeps_every_label():
    examples = [Example(f"text {i}", None, "rare" if i < 3 else "common") for i in range(40)]
    train, held_out = stratified_split(examples, 0.25, seed=0)
    assert len(train) + len(held_out) == 40
    assert not {e.text for e in train} & {e.text for e in held_out}
    assert {e.label for e in train} == {"rare", "common"}
    assert sum(e.label == "common" for e in held_out) == round(37 * 0.25)
    with pytest.raises(InputError, match="validation_fraction"):
        stratified_split(examples, 1.5, seed=0)


def test_collator_pads_to_the_longest_row():
    rows = [{"input_ids": [101, 7, 102], "token_type_ids": [0, 0, 0], "labels": 1},
            {"input_ids": [101, 102], "token_type_ids": [0, 0], "labels": 0}]
    batch = collate(rows, pad_id=0)
    assert batch["input_ids"].tolist() == [[101, 7, 102], [101, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [1, 0]


def test_metrics_accuracy_and_macro_f1():
    # Class 0: TP 2, FP 1, FN 0 -> F1 0.8. Class 1: TP 1, FP 0, FN 1 -> 2/3. Class 2: absent -> skipped.
    metrics = classification_metrics([0, 0, 1, 0], [0, 0, 1, 1], num_labels=3)
    assert metrics["accuracy"] == 0.75
    assert metrics["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    majority = classification_metrics([0] * 4, [0, 0, 1, 1], num_labels=2)
    assert majority["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)


def test_end_to_end_with_pairs_saves_the_best_checkpoint(tmp_path, tiny_checkpoint):
    data = tmp_path / "data"
    data.mkdir()
    _write_jsonl(data / "train.jsonl", _toy_rows(48, seed=1, pairs=True))
    _write_jsonl(data / "dev.jsonl", _toy_rows(16, seed=2, pairs=True))
    _write_jsonl(data / "test.jsonl", _toy_rows(16, seed=3, pairs=True))
    out = tmp_path / "run"
    summary = main(["--train", str(data), "--checkpoint", str(tiny_checkpoint), "--out-dir", str(out),
                    "--epochs", "6", "--batch-size", "8", "--lr", "1e-2", "--warmup-ratio", "0.1",
                    "--max-length", "32", "--adam-eps", "1e-8", "--no-progress"])
    assert summary["sizes"] == {"train": 48, "validation": 16, "test": 16}
    assert summary["majority_baseline"]["test"]["accuracy"] == 0.5
    assert summary["test"]["accuracy"] >= 0.9  # the words decide the label; even a tiny model learns that

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    validation = [r for r in records if r["kind"] == "eval"]
    assert [r["epoch"] for r in validation] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in validation] == [6, 12, 18, 24, 30, 36]  # 48 rows, batches of 8: 6 steps an epoch
    assert {"split", "loss", "accuracy", "macro_f1", "best"} <= validation[0].keys()
    assert len([r for r in records if r["kind"] == "train"]) == 36
    assert records[-1]["split"] == "test" and records[-1]["epoch"] == summary["best_epoch"]

    best = out / "best"
    config = json.loads((best / "config.json").read_text())
    assert config["id2label"] == {"0": "fruit", "1": "stone"}
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert (best / "vocab.txt").read_text() == (tiny_checkpoint / "vocab.txt").read_text()

    # The saved checkpoint reproduces the reported test accuracy.
    model = BertForSequenceClassification.from_pretrained(best)
    tokenizer = BertTokenizer.from_pretrained(best)
    rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    batch = tokenizer([r["text"] for r in rows], [r["text_pair"] for r in rows], padding=True, return_tensors="pt")
    with torch.no_grad():
        predicted = model(**batch).logits.argmax(-1).tolist()
    accuracy = sum(model.config.id2label[p] == r["label"] for p, r in zip(predicted, rows)) / len(rows)
    assert accuracy == pytest.approx(summary["test"]["accuracy"])


def test_transformers_reads_the_saved_classifier(tmp_path, tiny_checkpoint):
    from transformers import BertForSequenceClassification as HFClassifier

    train = _write_jsonl(tmp_path / "train.jsonl", _toy_rows(20, seed=4))
    summary = main(["--train", str(train), "--checkpoint", str(tiny_checkpoint), "--out-dir", str(tmp_path / "o"),
                    "--epochs", "1", "--validation-fraction", "0.2", "--from-scratch", "--no-progress"])
    assert summary["sizes"] == {"train": 16, "validation": 4, "test": 0} and summary["from_scratch"]
    hf = HFClassifier.from_pretrained(str(tmp_path / "o" / "best"))
    assert hf.config.id2label == {0: "fruit", 1: "stone"}


def test_bad_inputs_are_clear_errors(tmp_path, tiny_checkpoint):
    train = _write_jsonl(tmp_path / "train.jsonl", _toy_rows(10, seed=5))
    common = ["--checkpoint", str(tiny_checkpoint), "--out-dir", str(tmp_path / "o"), "--no-progress"]
    with pytest.raises(InputError, match="--epochs"):
        main(["--train", str(train), "--epochs", "0", *common])
    odd = _write_jsonl(tmp_path / "odd.jsonl", [{"text": "x", "label": "mineral"}])
    with pytest.raises(InputError, match="mineral"):
        main(["--train", str(train), "--validation", str(odd), *common])
    one_label = _write_jsonl(tmp_path / "one.jsonl", [{"text": "x", "label": "a"}] * 4)
    with pytest.raises(InputError, match="at least 2"):
        main(["--train", str(one_label), *common])
    with pytest.raises(InputError, match="not found"):
        main(["--train", str(tmp_path / "missing.csv"), *common])
    with pytest.raises(InputTypeError, match="argv"):
        main("--train data.csv")


def test_parser_attaches_to_a_given_parser():
    import argparse

    parser = argparse.ArgumentParser()
    assert build_parser(parser) is parser
    args = parser.parse_args(["--train", "t.csv", "--out-dir", "o"])
    assert args.epochs == 3 and args.metric == "macro_f1"


def test_labels_are_class_names_whatever_their_json_type(tmp_path):
    rows = [{"text": "a", "label": 1}, {"text": "b", "label": "1"}, {"text": "c", "label": 1.0},
            {"text": "d", "label": " 1 "}, {"text": "e", "label": 10}, {"text": "f", "label": 2}]
    examples = load_examples(_write_jsonl(tmp_path / "t.jsonl", rows))
    assert [e.label for e in examples] == ["1", "1", "1", "1", "10", "2"]
    assert sorted_labels(e.label for e in examples) == ["1", "2", "10"]  # by value, not as strings
    for number, bad in enumerate(([0], {"id": 0}, True, 0.5, None, "", float("nan")), 1):
        path = _write_jsonl(tmp_path / f"bad{number}.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": bad}])
        with pytest.raises(InputError, match=rf"bad{number}.jsonl row 2 'label'"):
            load_examples(path)


def test_binary_files_are_refused_naming_the_file(tmp_path):
    for name in ("train.csv", "train.jsonl", "train.tsv"):
        path = tmp_path / name
        path.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4000)))
        with pytest.raises(InputError, match=f"{name}.*not UTF-8 text"):
            load_examples(path)
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"text,label\nab\x00cd,1\n")
    with pytest.raises(InputError, match="nul.csv"):
        load_examples(nul)


def test_runs_that_could_not_save_a_model_are_refused_before_training(tmp_path, tiny_checkpoint):
    common = ["--checkpoint", str(tiny_checkpoint), "--out-dir", str(tmp_path / "o"), "--no-progress"]
    two = _write_jsonl(tmp_path / "two.jsonl", _toy_rows(2, seed=6))
    with pytest.raises(InputError, match="two.jsonl.*no validation row.*--validation"):
        main(["--train", str(two), *common])
    train = _write_jsonl(tmp_path / "train.jsonl", _toy_rows(20, seed=5))
    for short in ("1", "2"):
        with pytest.raises(InputError, match=f"--max-length {short} leaves no room for text"):
            main(["--train", str(train), "--max-length", short, *common])
    with pytest.raises(InputError, match="--max-length 65 exceeds the model's max_position_embeddings"):
        main(["--train", str(train), "--max-length", "65", *common])
    from minibert.errors import ConfigError

    with pytest.raises(ConfigError, match="--device.*'bogus'"):
        main(["--train", str(train), "--device", "bogus", *common])
    assert not (tmp_path / "o" / "checkpoint.pt").exists()
