"""Fine-tune a BERT checkpoint to classify texts or text pairs: data -> model -> best checkpoint.

Fine-tuning is how a pre-trained encoder becomes useful for one task: put a small linear layer on the
pooled [CLS] vector (``BertForSequenceClassification``), then train everything for a few epochs with a
small learning rate. This module does that end to end, with nothing hidden:

1. **Data.** CSV, TSV or JSONL files of ``(text, label)`` or ``(text, text_pair, label)`` rows, or a
   folder holding ``train.*`` and optionally ``validation.*`` (or ``dev.*``/``valid.*``) and
   ``test.*``. Label names are sorted and numbered; the map is stored as ``id2label``/``label2id`` in
   the saved ``config.json``, so the checkpoint says what its outputs mean. Without a validation
   file, a stratified fraction of the training rows is held out (``--validation-fraction``).
2. **Batches.** Every text is tokenized once, up front, without padding; ``PaddingCollator`` pads each
   batch only to its own longest row, which saves a lot of work when lengths vary.
3. **Optimisation.** AdamW with weight decay on weight matrices only (no decay on biases and
   LayerNorm parameters), a learning rate that rises linearly during warm-up and then falls
   linearly to zero, and gradient clipping at norm 1. The parameter groups and the schedule are
   ``minibert.train.trainer``'s, the ones pre-training uses.
4. **Evaluation each epoch** on the validation rows: loss, accuracy and macro-F1 (the unweighted mean
   of per-class F1, which a classifier cannot game by always answering the majority class). The best
   epoch (by ``--metric``) is saved to ``OUT_DIR/best`` with ``save_pretrained`` plus the tokenizer's
   ``vocab.txt`` and ``tokenizer_config.json``, so ``BertForSequenceClassification.from_pretrained``
   and ``BertTokenizer.from_pretrained`` both load it. One JSON line per evaluation goes to
   ``OUT_DIR/metrics.jsonl``; a test file, if given, is scored once with the best checkpoint.

``--from-scratch`` trains the same architecture from random initialisation with the same budget:
the control that shows what pre-training is worth.

    python -m minibert.train.finetune --train data/ --out-dir runs/topics --epochs 3
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import torch
from torch import Tensor

from minibert.errors import InputError, InputTypeError, TrainingError
from minibert.checkpoints.hub import DEFAULT_CHECKPOINT
from minibert.progress import progress_bar

# Column names recognised when the caller does not name them, first match wins.
TEXT_COLUMNS = ("text", "sentence", "sentence1", "text_a", "premise", "question")
PAIR_COLUMNS = ("text_pair", "sentence2", "text_b", "hypothesis")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target")
DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "valid", "dev", "val"), "test": ("test",)}


# --------------------------------------------------------------------------------------------- data
@dataclass
class Example:
    text: str
    text_pair: Optional[str]
    label: str


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix in (".jsonl", ".json"):
        rows = []
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{number} is not valid JSON ({exc}); JSONL expects one object per line") from None
                if not isinstance(row, dict):
                    raise InputError(f"{path}:{number} holds a {type(row).__name__}, a JSON object is expected")
                rows.append(row)
        return rows
    if path.suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ","))
    raise InputError(f"{path}: unsupported data file type {path.suffix!r}; expected one of {DATA_SUFFIXES}")


def _pick_column(path: Path, columns: Iterable[str], wanted: Optional[str], candidates: Sequence[str],
                 what: str, required: bool) -> Optional[str]:
    columns = list(columns)
    if wanted is not None:
        if wanted not in columns:
            raise InputError(f"{path} has no {what} column {wanted!r}; its columns are {columns}")
        return wanted
    found = next((c for c in candidates if c in columns), None)
    if found is None and required:
        raise InputError(f"{path}: no {what} column found among {columns}; name one with --{what}-column "
                         f"(recognised names: {', '.join(candidates)})")
    return found


def load_examples(path: Union[str, Path], text_column: Optional[str] = None, text_pair_column: Optional[str] = None,
                  label_column: Optional[str] = None) -> list[Example]:
    """Read one CSV/TSV/JSONL file into ``Example`` rows; labels are kept as strings."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"data file not found: {path}")
    rows = _read_rows(path)
    if not rows:
        raise InputError(f"{path} holds no rows")
    columns = rows[0].keys()
    text_key = _pick_column(path, columns, text_column, TEXT_COLUMNS, "text", required=True)
    pair_key = _pick_column(path, columns, text_pair_column, PAIR_COLUMNS, "text-pair", required=False)
    label_key = _pick_column(path, columns, label_column, LABEL_COLUMNS, "label", required=True)
    examples = []
    for number, row in enumerate(rows, 1):
        text, label = row.get(text_key), row.get(label_key)
        pair = row.get(pair_key) if pair_key else None
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{path} row {number}: {text_key!r} must be a non-empty string, got {text!r}")
        if pair_key and not isinstance(pair, str):
            raise InputError(f"{path} row {number}: {pair_key!r} must be a string, got {pair!r}")
        if label is None or (isinstance(label, str) and not label.strip()):
            raise InputError(f"{path} row {number}: {label_key!r} is empty")
        examples.append(Example(text, pair, str(label).strip()))
    return examples


def find_split_files(folder: Path) -> dict[str, Path]:
    """``train``/``validation``/``test`` files of a data folder (validation and test optional)."""
    found: dict[str, Path] = {}
    for split, stems in SPLIT_NAMES.items():
        for stem in stems:
            matches = [folder / f"{stem}{suffix}" for suffix in DATA_SUFFIXES if (folder / f"{stem}{suffix}").is_file()]
            if matches:
                found[split] = matches[0]
                break
    if "train" not in found:
        raise InputError(f"{folder} has no train file: expected train.csv, train.tsv or train.jsonl")
    return found


def stratified_split(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out about ``fraction`` of each label's rows; every label keeps at least one training row."""
    if not 0.0 < fraction < 1.0:
        raise InputError(f"validation_fraction must be in (0, 1), got {fraction!r}")
    by_label: dict[str, list[Example]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    rng = random.Random(seed)
    train, held_out = [], []
    for label in sorted(by_label):
        rows = by_label[label][:]
        rng.shuffle(rows)
        n_held = min(len(rows) - 1, round(len(rows) * fraction))
        held_out += rows[:n_held]
        train += rows[n_held:]
    rng.shuffle(train)
    return train, held_out


# ------------------------------------------------------------------------------------------ batches
def encode_examples(tokenizer: Any, examples: Sequence[Example], label2id: dict[str, int],
                    max_length: int) -> list[dict[str, Any]]:
    """Tokenize once, without padding: one dict of id lists (and the label id) per example."""
    unknown = sorted({e.label for e in examples} - label2id.keys())
    if unknown:
        raise InputError(f"labels {unknown} do not occur in the training data (known: {sorted(label2id)})")
    texts = [e.text for e in examples]
    has_pairs = any(e.text_pair is not None for e in examples)
    pairs = [e.text_pair or "" for e in examples] if has_pairs else None
    tokens = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    return [{"input_ids": tokens["input_ids"][i], "token_type_ids": tokens["token_type_ids"][i],
             "label": label2id[e.label]} for i, e in enumerate(examples)]


class PaddingCollator:
    """Pad a list of encoded rows to the longest one; returns the model's keyword arguments."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, Tensor]:
        longest = max(len(row["input_ids"]) for row in rows)
        input_ids = torch.full((len(rows), longest), self.pad_token_id, dtype=torch.long)   # (b, t)
        token_type_ids = torch.zeros((len(rows), longest), dtype=torch.long)               # (b, t)
        attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)               # (b, t)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            input_ids[i, :n] = torch.tensor(row["input_ids"])
            token_type_ids[i, :n] = torch.tensor(row["token_type_ids"])
            attention_mask[i, :n] = 1
        labels = torch.tensor([row["label"] for row in rows], dtype=torch.long)            # (b,)
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "token_type_ids": token_type_ids, "labels": labels}


# ------------------------------------------------------------------------------------------ metrics
def classification_metrics(predictions: Sequence[int], labels: Sequence[int], num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1. Per class, F1 = 2 TP / (2 TP + FP + FN); the macro average is taken over
    the classes that occur in ``labels`` or ``predictions`` (a class absent from both has no F1)."""
    if len(predictions) != len(labels):
        raise InputError(f"predictions ({len(predictions)}) and labels ({len(labels)}) differ in length")
    if not labels:
        return {"accuracy": float("nan"), "macro_f1": float("nan")}
    correct = sum(int(p == t) for p, t in zip(predictions, labels))
    f1_scores = []
    for k in range(num_labels):
        tp = sum(int(p == k and t == k) for p, t in zip(predictions, labels))
        fp = sum(int(p == k and t != k) for p, t in zip(predictions, labels))
        fn = sum(int(p != k and t == k) for p, t in zip(predictions, labels))
        if tp + fp + fn:
            f1_scores.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": correct / len(labels), "macro_f1": sum(f1_scores) / len(f1_scores)}


def evaluate(model: torch.nn.Module, batches: Iterable[dict[str, Tensor]], device: torch.device) -> dict[str, float]:
    """Mean loss, accuracy and macro-F1 of ``model`` over ``batches``."""
    was_training = model.training
    model.eval()
    predictions: list[int] = []
    labels: list[int] = []
    loss_sum, count = 0.0, 0
    with torch.inference_mode():
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model(**batch)
            loss_sum += out.loss.item() * len(batch["labels"])
            count += len(batch["labels"])
            predictions += out.logits.argmax(dim=-1).tolist()
            labels += batch["labels"].tolist()
    model.train(was_training)
    metrics = classification_metrics(predictions, labels, model.config.num_labels)
    metrics["loss"] = loss_sum / max(count, 1)
    return metrics


# ------------------------------------------------------------------------------------ optimisation
def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over ``minibert.train.trainer.param_groups``: decay on weight matrices and embeddings only,
    none on biases and LayerNorm parameters (the same groups pre-training uses)."""
    from minibert.train.trainer import param_groups

    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)


def _optimizer_and_schedule(model: torch.nn.Module, lr: float, weight_decay: float,
                            warmup_steps: int, total_steps: int):
    """AdamW and the learning-rate schedule: linear warm-up to ``lr``, then linear decay to 0."""
    from minibert.train.trainer import linear_schedule

    optimizer = build_optimizer(model, lr, weight_decay)
    return optimizer, linear_schedule(optimizer, warmup_steps, total_steps)


# ------------------------------------------------------------------------------------------- main
def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    """The ``finetune`` arguments, added to ``parser`` (a CLI sub-parser) or to a new parser."""
    if parser is None:
        parser = argparse.ArgumentParser(prog="python -m minibert.train.finetune", description=__doc__.split("\n\n")[0],
                                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--train", required=True,
                      help="training CSV/TSV/JSONL file, or a folder with train.* [validation.*|dev.*] [test.*]")
    data.add_argument("--validation", help="validation file (default: the folder's, else a split of --train)")
    data.add_argument("--test", help="test file, scored once with the best checkpoint")
    data.add_argument("--validation-fraction", type=float, default=0.1,
                      help="share of each label's training rows held out when there is no validation file")
    data.add_argument("--text-column", help=f"default: first of {', '.join(TEXT_COLUMNS)}")
    data.add_argument("--text-pair-column", help=f"default: first of {', '.join(PAIR_COLUMNS)} (if any)")
    data.add_argument("--label-column", help=f"default: first of {', '.join(LABEL_COLUMNS)}")
    model = parser.add_argument_group("model and training")
    model.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="checkpoint folder or name to start from")
    model.add_argument("--from-scratch", action="store_true",
                       help="same architecture and tokenizer, random initial weights (a baseline)")
    model.add_argument("--out-dir", required=True, help="where best/ and metrics.jsonl are written")
    model.add_argument("--epochs", type=int, default=3)
    model.add_argument("--batch-size", type=int, default=16)
    model.add_argument("--eval-batch-size", type=int, default=64)
    model.add_argument("--lr", type=float, default=5e-5, help="peak learning rate")
    model.add_argument("--weight-decay", type=float, default=0.01)
    model.add_argument("--warmup-ratio", type=float, default=0.1, help="share of all steps spent warming up")
    model.add_argument("--max-length", type=int, default=128, help="truncate tokenized rows to this length")
    model.add_argument("--metric", choices=("macro_f1", "accuracy"), default="macro_f1",
                       help="validation metric that picks the best epoch")
    model.add_argument("--seed", type=int, default=0)
    model.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    model.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    positive = {"epochs": args.epochs, "batch_size": args.batch_size, "eval_batch_size": args.eval_batch_size,
                "max_length": args.max_length}
    for name, value in positive.items():
        if value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise InputError(f"--lr must be a positive number, got {args.lr!r}")
    if args.weight_decay < 0:
        raise InputError(f"--weight-decay must be >= 0, got {args.weight_decay!r}")
    if not 0.0 <= args.warmup_ratio < 1.0:
        raise InputError(f"--warmup-ratio must be in [0, 1), got {args.warmup_ratio!r}")


def _load_splits(args: argparse.Namespace) -> tuple[list[Example], list[Example], list[Example]]:
    columns = dict(text_column=args.text_column, text_pair_column=args.text_pair_column,
                   label_column=args.label_column)
    train_path = Path(args.train)
    files: dict[str, Path] = find_split_files(train_path) if train_path.is_dir() else {"train": train_path}
    if args.validation:
        files["validation"] = Path(args.validation)
    if args.test:
        files["test"] = Path(args.test)
    train = load_examples(files["train"], **columns)
    if "validation" in files:
        validation = load_examples(files["validation"], **columns)
    else:
        train, validation = stratified_split(train, args.validation_fraction, args.seed)
    test = load_examples(files["test"], **columns) if "test" in files else []
    return train, validation, test


def _save_best(model: torch.nn.Module, tokenizer: Any, folder: Path) -> None:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)  # vocab.txt + tokenizer_config.json


def main(argv: Union[Sequence[str], argparse.Namespace, None] = None) -> dict[str, Any]:
    """Run a fine-tuning; returns the summary that is also written to ``OUT_DIR/summary.json``."""
    if isinstance(argv, str):
        raise InputTypeError(f"argv must be a list of arguments or an argparse.Namespace, got the string {argv!r}")
    args = argv if isinstance(argv, argparse.Namespace) else build_parser().parse_args(argv)
    _check_args(args)
    from minibert.config import BertConfig
    from minibert.heads import BertForSequenceClassification
    from minibert.checkpoints.hub import resolve
    from minibert.checkpoints.hf import read_config
    from minibert.tokenizer import BertTokenizer

    started = time.time()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    out_dir = Path(args.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainingError(f"cannot create --out-dir {out_dir}: {exc}") from None

    train, validation, test = _load_splits(args)
    label_names = sorted({e.label for e in train})
    if len(label_names) < 2:
        raise InputError(f"the training data has {len(label_names)} label(s) ({label_names}); at least 2 are needed")
    label2id = {name: i for i, name in enumerate(label_names)}
    id2label = {i: name for name, i in label2id.items()}

    tokenizer = BertTokenizer.from_pretrained(args.checkpoint)
    labels_config = dict(id2label=id2label, label2id=label2id, problem_type="single_label_classification")
    if args.from_scratch:
        folder = resolve(args.checkpoint)
        base = read_config(folder if folder.is_dir() else folder.parent)
        config = BertConfig.from_dict({**base.to_dict(), **labels_config})
        model = BertForSequenceClassification(config)
    else:
        model = BertForSequenceClassification.from_pretrained(args.checkpoint, **labels_config)
    model.to(device)

    collate = PaddingCollator(tokenizer.pad_token_id)
    encoded = {name: encode_examples(tokenizer, rows, label2id, args.max_length)
               for name, rows in (("train", train), ("validation", validation), ("test", test))}
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = torch.utils.data.DataLoader(encoded["train"], batch_size=args.batch_size, shuffle=True,
                                               collate_fn=collate, generator=generator)

    def eval_loader(rows: list) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(rows, batch_size=args.eval_batch_size, collate_fn=collate)

    total_steps = args.epochs * len(train_loader)
    warmup_steps = int(args.warmup_ratio * total_steps)
    optimizer, schedule = _optimizer_and_schedule(model, args.lr, args.weight_decay, warmup_steps, total_steps)

    # The baseline any classifier must beat: always answer the most frequent training label.
    majority = label2id[Counter(e.label for e in train).most_common(1)[0][0]]
    baseline = {split: classification_metrics([majority] * len(rows), [r["label"] for r in rows], len(label2id))
                for split, rows in encoded.items() if rows and split != "train"}

    metrics_path = out_dir / "metrics.jsonl"
    metrics_path.write_text("", encoding="utf-8")

    def log(record: dict[str, Any]) -> None:
        with open(metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    best_score, best_epoch, step = -math.inf, 0, 0
    model.train()
    for epoch in range(1, args.epochs + 1):
        loss_sum, seen = 0.0, 0
        bar = progress_bar(train_loader, desc=f"epoch {epoch}/{args.epochs}", unit="batch", disable=args.no_progress)
        for batch in bar:
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = model(**batch).loss
            if not torch.isfinite(loss):
                raise TrainingError(f"the loss became {loss.item()} at step {step}; lower --lr (now {args.lr})")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_sum += loss.item() * len(batch["labels"])
            seen += len(batch["labels"])
            bar.set_postfix(loss=f"{loss.item():.4f}")
        scores = evaluate(model, eval_loader(encoded["validation"]), device)
        record = {"epoch": epoch, "step": step, "split": "validation", "train_loss": loss_sum / max(seen, 1),
                  **scores, "lr": schedule.get_last_lr()[0], "elapsed_s": round(time.time() - started, 1)}
        improved = scores[args.metric] > best_score
        if improved:
            best_score, best_epoch = scores[args.metric], epoch
            _save_best(model, tokenizer, out_dir / "best")
        record["best"] = improved
        log(record)
        if args.no_progress is False:
            bar.write(f"epoch {epoch}: validation accuracy {scores['accuracy']:.4f}, "
                       f"macro-F1 {scores['macro_f1']:.4f}, loss {scores['loss']:.4f}" + (" (best)" if improved else ""))

    summary: dict[str, Any] = {
        "checkpoint": str(args.checkpoint), "from_scratch": bool(args.from_scratch), "labels": label_names,
        "sizes": {name: len(rows) for name, rows in encoded.items()}, "best_epoch": best_epoch,
        "best_validation": {args.metric: best_score}, "majority_baseline": baseline,
    }
    if encoded["test"]:
        best_model = BertForSequenceClassification.from_pretrained(out_dir / "best").to(device)
        summary["test"] = evaluate(best_model, eval_loader(encoded["test"]), device)
        log({"epoch": best_epoch, "split": "test", **summary["test"]})
    summary["wall_time_s"] = round(time.time() - started, 1)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if not args.no_progress:
        print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
