"""Fine-tune a BERT checkpoint to classify texts or text pairs: data -> model -> best checkpoint.

Fine-tuning is how a pre-trained encoder becomes useful for one task: put a small linear layer on the
pooled [CLS] vector (``BertForSequenceClassification``), then train everything for a few epochs with a
small learning rate. This module does that end to end, with nothing hidden:

1. **Data** (``minibert.data.labelled``). CSV, TSV or JSONL files of ``(text, label)`` or
   ``(text, text_pair, label)`` rows, or a folder holding ``train.*`` and optionally ``validation.*``
   (or ``dev.*``/``valid.*``) and ``test.*``. Label names are sorted and numbered; the map is stored as ``id2label``/``label2id`` in
   the saved ``config.json``, so the checkpoint says what its outputs mean. Without a validation
   file, a stratified fraction of the training rows is held out (``--validation-fraction``).
2. **Batches.** Every text is tokenized once, up front, without padding; each batch is padded only
   to its own longest row (``minibert.data.batches.collate``), which saves a lot of work when lengths
   vary. ``EpochBatches`` reshuffles the rows every epoch.
3. **Optimisation** runs through ``minibert.train.trainer.Trainer``, the loop pretraining uses: AdamW
   with weight decay on weight matrices only, a learning rate that rises linearly during warm-up and
   then falls linearly to zero, gradient clipping at norm 1; gradient accumulation, bf16 autocast,
   exact resume (``--resume``) and DDP (``torchrun``) come with it.
4. **Evaluation each epoch** on the validation rows: loss, accuracy and macro-F1 (the unweighted mean
   of per-class F1, which a classifier cannot game by always answering the majority class). The best
   epoch (by ``--metric``) is saved to ``OUT_DIR/best`` with ``save_pretrained`` plus the tokenizer's
   ``vocab.txt`` and ``tokenizer_config.json``, so ``BertForSequenceClassification.from_pretrained``
   and ``BertTokenizer.from_pretrained`` both load it. ``OUT_DIR/metrics.jsonl`` holds one JSON line
   per step and per evaluation; a test file, if given, is scored once with the best checkpoint.

``--from-scratch`` trains the same architecture from random initialisation with the same budget:
the control that shows what pre-training is worth.

    python -m minibert.train.finetune --train data/ --out-dir runs/topics --epochs 3
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from minibert.checkpoints.hub import DEFAULT_CHECKPOINT
from minibert.data.batches import EpochBatches, collate
from minibert.data.labelled import (LABEL_COLUMNS, PAIR_COLUMNS, TEXT_COLUMNS, Example, encode_examples,
                                    find_split_files, load_examples, sorted_labels, stratified_split)
from minibert.checks import check_int, check_number, check_positive_int
from minibert.errors import InputError, InputTypeError, TrainingError
from minibert.train.distributed import DistContext, cleanup_distributed, init_distributed
from minibert.train.metrics_log import read_metrics
from minibert.train.trainer import TrainConfig, Trainer

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


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[dict[str, Tensor]], device: torch.device) -> dict[str, float]:
    """Mean loss, accuracy and macro-F1 of ``model`` (as it is: call ``eval()`` first) over ``batches``."""
    predictions: list[int] = []
    labels: list[int] = []
    loss_sum, count = 0.0, 0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(**batch)
        loss_sum += out.loss.float().item() * len(batch["labels"])
        count += len(batch["labels"])
        predictions += out.logits.argmax(dim=-1).tolist()
        labels += batch["labels"].tolist()
    metrics = classification_metrics(predictions, labels, model.config.num_labels)
    metrics["loss"] = loss_sum / max(count, 1)
    return metrics


class BestEpoch:
    """The ``Trainer``'s evaluation for fine-tuning, called once per epoch: scores the validation
    batches and, when ``metric`` improved, saves the model and tokenizer to ``folder`` (rank 0 only)."""

    def __init__(self, batches: list[dict[str, Tensor]], metric: str, folder: Path, tokenizer: Any, is_main: bool):
        self.batches, self.metric, self.folder, self.tokenizer, self.is_main = batches, metric, folder, tokenizer, is_main
        self.score, self.epoch, self.epochs_done = -math.inf, 0, 0

    def __call__(self, model: nn.Module, device: torch.device) -> dict[str, Any]:
        scores = evaluate(model, self.batches, device)
        self.epochs_done += 1
        improved = scores[self.metric] > self.score
        if improved:
            self.score, self.epoch = scores[self.metric], self.epochs_done
            if self.is_main:
                model.save_pretrained(self.folder)
                self.tokenizer.save_pretrained(self.folder)  # vocab.txt + tokenizer_config.json
        return {"epoch": self.epochs_done, "split": "validation", **scores, "best": improved}

    def restore(self, records: Iterable[dict[str, Any]]) -> None:
        """Pick up where a resumed run stopped, from its metrics records."""
        evaluations = [r for r in records if r.get("kind") == "eval"]
        self.epochs_done = len(evaluations)
        for record in evaluations:
            if record.get("best"):
                self.score, self.epoch = record[self.metric], record["epoch"]


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
    model.add_argument("--out-dir", required=True, help="where best/, metrics.jsonl and the checkpoint are written")
    model.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out-dir, if any")
    model.add_argument("--epochs", type=int, default=3)
    model.add_argument("--batch-size", type=int, default=16, help="rows per micro-batch per process")
    model.add_argument("--grad-accum", type=int, default=1, help="micro-batches per update")
    model.add_argument("--eval-batch-size", type=int, default=64)
    model.add_argument("--lr", type=float, default=5e-5, help="peak learning rate")
    model.add_argument("--weight-decay", type=float, default=0.01)
    model.add_argument("--adam-eps", type=float, default=TrainConfig.adam_eps, help="AdamW's epsilon")
    model.add_argument("--warmup-ratio", type=float, default=0.1, help="share of all steps spent warming up")
    model.add_argument("--max-length", type=int, default=None,
                       help="truncate tokenized rows to this length (default: 128, or the model's limit if lower)")
    model.add_argument("--metric", choices=("macro_f1", "accuracy"), default="macro_f1",
                       help="validation metric that picks the best epoch")
    model.add_argument("--bf16", action="store_true", help="bf16 autocast")
    model.add_argument("--save-every", type=int, default=0, help="steps between checkpoints (0: at the end only)")
    model.add_argument("--seed", type=int, default=0)
    model.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available, else cpu)")
    model.add_argument("--no-progress", action="store_true", help="no progress bar and no printed summary")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    for name in ("epochs", "batch_size", "grad_accum", "eval_batch_size"):
        check_positive_int(f"--{name.replace('_', '-')}", getattr(args, name))
    if args.max_length is not None:
        check_positive_int("--max-length", args.max_length)
    check_int("--save-every", args.save_every, minimum=0)
    check_number("--lr", args.lr, minimum=0, exclusive_minimum=True)
    check_number("--adam-eps", args.adam_eps, minimum=0, exclusive_minimum=True)
    check_number("--weight-decay", args.weight_decay, minimum=0)
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
    label_names = sorted_labels(e.label for e in train)
    if len(label_names) < 2:
        raise InputError(f"{files['train']} has {len(label_names)} label(s) ({label_names}); at least 2 are needed")
    if "validation" in files:
        validation = load_examples(files["validation"], **columns)
    else:
        n_rows = len(train)
        train, validation = stratified_split(train, args.validation_fraction, args.seed)
        if not validation:
            raise InputError(f"--validation-fraction {args.validation_fraction} of the {n_rows} rows of {files['train']} "
                             "holds out no validation row (each label keeps at least one training row): give "
                             "--validation FILE, more rows, or a larger fraction")
    test = load_examples(files["test"], **columns) if "test" in files else []
    return train, validation, test


def _build_model(args: argparse.Namespace, label_names: list[str]) -> tuple[nn.Module, Any]:
    """The classifier (pre-trained, or the same architecture from random weights) and its tokenizer;
    a ``--max-length`` the model cannot take, or that leaves no room for text, is refused."""
    from minibert.checkpoints.hf import read_config
    from minibert.checkpoints.hub import resolve
    from minibert.config import BertConfig
    from minibert.heads import BertForSequenceClassification
    from minibert.tokenizer import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(args.checkpoint)
    labels_config = dict(id2label=dict(enumerate(label_names)), label2id={n: i for i, n in enumerate(label_names)},
                         problem_type="single_label_classification")
    if args.from_scratch:
        folder = resolve(args.checkpoint)
        base = read_config(folder if folder.is_dir() else folder.parent)
        model = BertForSequenceClassification(BertConfig.from_dict({**base.to_dict(), **labels_config}))
    else:
        model = BertForSequenceClassification.from_pretrained(args.checkpoint, **labels_config)
    return model, tokenizer


def _max_length(args: argparse.Namespace, model: nn.Module, has_pairs: bool) -> int:
    """``--max-length``, or 128 capped at the model's limit; refused when it leaves no room for text
    or exceeds the positions the model has."""
    limit = model.config.max_position_embeddings
    if args.max_length is None:
        return min(128, limit)
    specials = 3 if has_pairs else 2  # [CLS] A [SEP] (B [SEP])
    least = specials + (2 if has_pairs else 1)  # one token of each text
    if args.max_length < least:
        raise InputError(f"--max-length {args.max_length} leaves no room for text: [CLS] and [SEP] take {specials} "
                         f"positions{' with text pairs' if has_pairs else ''}; use at least {least}")
    if args.max_length > limit:
        raise InputError(f"--max-length {args.max_length} exceeds the model's max_position_embeddings ({limit})")
    return args.max_length


def main(argv: Union[Sequence[str], argparse.Namespace, None] = None) -> dict[str, Any]:
    """Run a fine-tuning; returns the summary that is also written to ``OUT_DIR/summary.json``."""
    if isinstance(argv, str):
        raise InputTypeError(f"argv must be a list of arguments or an argparse.Namespace, got the string {argv!r}")
    args = argv if isinstance(argv, argparse.Namespace) else build_parser().parse_args(argv)
    _check_args(args)
    context = init_distributed(args.device)
    try:
        return _fine_tune(args, context)
    finally:
        cleanup_distributed()


def _fine_tune(args: argparse.Namespace, context: DistContext) -> dict[str, Any]:
    started = time.time()
    train, validation, test = _load_splits(args)
    label_names = sorted_labels(e.label for e in train)
    label2id = {name: i for i, name in enumerate(label_names)}
    random.seed(args.seed)
    torch.manual_seed(args.seed)  # the new classifier layer's initial weights
    model, tokenizer = _build_model(args, label_names)
    max_length = _max_length(args, model, any(e.text_pair is not None for e in train))

    def pad(rows):
        return collate(rows, tokenizer.pad_token_id)

    encoded = {name: encode_examples(tokenizer, rows, label2id, max_length)
               for name, rows in (("train", train), ("validation", validation), ("test", test))}
    batches = EpochBatches(encoded["train"], args.batch_size, pad, seed=args.seed, rank=context.rank,
                           world_size=context.world_size)

    def eval_batches(rows: list) -> list[dict[str, Tensor]]:
        return [pad(rows[i:i + args.eval_batch_size]) for i in range(0, len(rows), args.eval_batch_size)]

    steps_per_epoch = max(1, batches.batches_per_epoch // args.grad_accum)
    total_steps = args.epochs * steps_per_epoch
    out_dir = Path(args.out_dir)
    config = TrainConfig(out_dir=str(out_dir), total_steps=total_steps, grad_accum_steps=args.grad_accum,
                         learning_rate=args.lr, warmup_steps=int(args.warmup_ratio * total_steps),
                         weight_decay=args.weight_decay, adam_eps=args.adam_eps, max_grad_norm=1.0, bf16=args.bf16,
                         eval_every=steps_per_epoch, save_every=args.save_every, seed=args.seed,
                         progress=False if args.no_progress else None)
    best = BestEpoch(eval_batches(encoded["validation"]), args.metric, out_dir / "best", tokenizer, context.is_main)
    trainer = Trainer(model, config, batches, best, context)
    if args.resume and trainer.resume():
        best.restore(read_metrics(trainer.metrics_path) if context.is_main else [])
    trainer.train()
    if best.epoch == 0:
        raise TrainingError(f"no epoch gave a finite validation {args.metric}: no model was saved in {out_dir / 'best'}")

    # The baseline any classifier must beat: always answer the most frequent training label.
    majority = label2id[Counter(e.label for e in train).most_common(1)[0][0]]
    summary: dict[str, Any] = {
        "checkpoint": str(args.checkpoint), "from_scratch": bool(args.from_scratch), "labels": label_names,
        "sizes": {name: len(rows) for name, rows in encoded.items()}, "best_epoch": best.epoch,
        "best_validation": {args.metric: best.score},
        "majority_baseline": {split: classification_metrics([majority] * len(rows), [r["labels"] for r in rows],
                                                            len(label2id))
                              for split, rows in encoded.items() if rows and split != "train"},
    }
    if context.is_main:
        if encoded["test"]:
            best_model = type(model).from_pretrained(out_dir / "best").to(context.device)
            summary["test"] = evaluate(best_model, eval_batches(encoded["test"]), context.device)
            trainer.log({"kind": "test", "epoch": best.epoch, "split": "test", **summary["test"]})
        summary["wall_time_s"] = round(time.time() - started, 1)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        if not args.no_progress:
            print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
