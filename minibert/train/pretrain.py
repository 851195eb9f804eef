"""Pretrain a BERT, from scratch or on from a pretrained one: vocabulary, data, model, training loop, report.

    python -m minibert.train.pretrain pydoc --out-dir runs/pydoc-bert --steps 2000
    torchrun --nproc_per_node=2 -m minibert.train.pretrain corpus/ --out-dir runs/bert   # DDP, one shard per rank

Steps, all in ``main``:

1. The output folder is checked first (a TrainingError naming it if it cannot be written).
2. The vocabulary: ``--vocab`` (a vocab.txt or a tokenizer folder), or one trained on the training
   documents by rank 0 (``minibert.data.vocab``); either way it is written to the output folder.
3. Data: every ``--heldout-every``-th document is held out; a fixed evaluation set is drawn from
   those, and each rank streams its shard of the others (``minibert.data.pretraining``).
4. The model, ``BertForPreTraining``, initialised from ``--seed``, trained by ``minibert.train.trainer``.
   With ``--init-from CHECKPOINT`` (continued pretraining: a pretrained BERT trained further on your
   text, Gururangan et al. 2020) the model is that checkpoint, with its architecture and vocabulary;
   the heads it lacks (a sentence-embedding model has no masked-LM head) start from ``--seed``.
5. The report: held-out MLM loss and accuracy and NSP accuracy before and after training, next to
   the frequency baseline (always predicting the token most often masked in the training data).
   It is printed and written to ``results.json``; the model is saved with ``save_pretrained``, the
   tokenizer next to it, so the output folder loads with ``from_pretrained`` like any checkpoint.

``--resume`` continues from the output folder's checkpoint when there is one (exactly: the resumed
run's losses equal those of a run that never stopped), and starts fresh otherwise.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from minibert.checks import check_fits_in_memory, check_int, format_bytes
from minibert.config import BertConfig
from minibert.errors import ConfigError
from minibert.heads import BertForPreTraining
from minibert.data.corpus import Corpus, open_corpus
from minibert.data.pretraining import PretrainingStream, check_enough_documents, split_documents
from minibert.data.shards import is_prepared, read_manifest
from minibert.train.distributed import DistContext, cleanup_distributed, init_distributed, raise_if_any
from minibert.train.metrics_log import read_metrics
from minibert.train.trainer import Evaluation, Trainer, TrainConfig, check_output_dir


def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    """The pretraining options (fills ``parser`` when given, e.g. a sub-command's)."""
    if parser is None:
        parser = argparse.ArgumentParser(prog="python -m minibert.train.pretrain",
                                         description="Pretrain a BERT from scratch (masked LM + next sentence).")
    parser.add_argument("corpus", help="a folder made by `minibert prepare` (shards; the way for big corpora), a "
                                       "text file (one sentence per line, blank line between documents), a folder "
                                       "of .txt files, or 'pydoc' for the pydoc_data.topics corpus")
    parser.add_argument("--out-dir", default="runs/pretrain", help="checkpoints, logs, final model (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out-dir, if any")

    vocab = parser.add_argument_group("vocabulary")
    vocab.add_argument("--vocab", help="an existing vocab.txt or tokenizer folder (default: train one)")
    vocab.add_argument("--vocab-size", type=int, default=8000, help="size of a trained vocabulary")
    vocab.add_argument("--min-frequency", type=int, default=2, help="least pair count to merge when training it")
    vocab.add_argument("--cased", action="store_true", help="keep case and accents (default: lower-case)")

    model = parser.add_argument_group("model")
    model.add_argument("--init-from", metavar="CHECKPOINT",
                       help="start from this pretrained BERT (folder or name): its architecture and vocabulary "
                            "replace the options below and --vocab; heads it lacks start fresh")
    model.add_argument("--hidden-size", type=int, default=128)
    model.add_argument("--num-layers", type=int, default=2)
    model.add_argument("--num-heads", type=int, default=2)
    model.add_argument("--intermediate-size", type=int, default=512)
    model.add_argument("--max-seq-length", type=int, help="tokens per example, specials included "
                                                          "(default: a prepared folder's, else 128)")
    model.add_argument("--dropout", type=float, default=0.1, help="hidden and attention dropout")

    data = parser.add_argument_group("data")
    data.add_argument("--short-seq-prob", type=float, default=0.1, help="share of examples with a shorter target length")
    data.add_argument("--masked-lm-prob", type=float, default=0.15)
    data.add_argument("--max-predictions", type=int, default=20, help="masked tokens per example, at most")
    data.add_argument("--whole-word-mask", action="store_true", help="mask whole words (a word and its ## pieces)")
    data.add_argument("--heldout-every", type=int, default=10, help="every N-th document is held out for evaluation")
    data.add_argument("--eval-examples", type=int, default=512, help="size of the fixed held-out evaluation set")
    data.add_argument("--buffer-documents", type=int, default=1000,
                      help="documents per chunk (random NSP partners come from the same chunk)")
    data.add_argument("--data-workers", type=int, default=2,
                      help="DataLoader processes building batches from a prepared folder (0: in this process)")
    data.add_argument("--cache-tokens", choices=("auto", "yes", "no"), default="auto",
                      help="keep tokenised documents in memory after the first epoch (auto: corpora under 100 MB)")

    train = parser.add_argument_group("training")
    train.add_argument("--steps", type=int, default=1000, help="optimiser updates")
    train.add_argument("--batch-size", type=int, default=32, help="examples per micro-batch per process")
    train.add_argument("--grad-accum", type=int, default=1, help="micro-batches per update")
    train.add_argument("--lr", type=float, default=5e-4, help="peak learning rate")
    train.add_argument("--warmup", type=int, default=100, help="warm-up steps")
    train.add_argument("--weight-decay", type=float, default=0.01)
    train.add_argument("--adam-eps", type=float, default=TrainConfig.adam_eps, help="AdamW's epsilon")
    train.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping (0: off)")
    train.add_argument("--bf16", action="store_true", help="bf16 autocast")
    train.add_argument("--no-fused-adamw", action="store_true", help="use torch's default AdamW kernel")
    train.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (0: end only)")
    train.add_argument("--save-every", type=int, default=0, help="steps between checkpoints (0: end only)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=0,
                       help="torch CPU threads per process (0: torch's default; 1 is best on a busy machine)")
    train.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda:LOCAL_RANK if available, else cpu)")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar (default: when stderr is a terminal)")
    return parser


def _cache_tokens(choice: str, corpus: Corpus) -> bool:
    if choice != "auto":
        return choice == "yes"
    return corpus.size_bytes < 100 * 2**20


def model_config(args: argparse.Namespace, vocab_size: int, pad_token_id: int = 0) -> BertConfig:
    """The BERT the options describe; a ConfigError naming the options when it cannot exist or fit."""
    try:
        return BertConfig(vocab_size=vocab_size, hidden_size=args.hidden_size, num_hidden_layers=args.num_layers,
                          num_attention_heads=args.num_heads, intermediate_size=args.intermediate_size,
                          max_position_embeddings=args.max_seq_length, hidden_dropout_prob=args.dropout,
                          attention_probs_dropout_prob=args.dropout, pad_token_id=pad_token_id)
    except ConfigError as exc:
        raise ConfigError(f"the model options (--vocab-size, --hidden-size, --num-layers, --num-heads, "
                          f"--intermediate-size, --max-seq-length, --dropout) give an impossible model: {exc}") from None


def _initial_config(args: argparse.Namespace) -> BertConfig:
    """The configuration of ``--init-from``'s checkpoint, checked against the options it overrides."""
    if args.vocab:
        raise ConfigError(f"--init-from {args.init_from!r} brings its own vocabulary; drop --vocab {args.vocab!r}")
    from minibert.checkpoints.hf import read_config
    from minibert.checkpoints.hub import resolve

    path = resolve(args.init_from)
    config = read_config(path if path.is_dir() else path.parent)
    if args.max_seq_length > config.max_position_embeddings:
        raise ConfigError(f"--max-seq-length {args.max_seq_length} is longer than {args.init_from!r} has positions "
                          f"for ({config.max_position_embeddings})")
    return config


def check_training_fits(config: BertConfig, batch_size: int) -> None:
    """Refuse, before any work, a run that cannot fit in this machine's memory: 16 bytes a parameter
    (float32 weight, gradient, AdamW's two moments) plus what one micro-batch keeps for backward in
    each layer, at least the attention scores and probabilities (b, h, t, t) and a few (b, t, c) and
    (b, t, intermediate) tensors. A lower bound: a run it refuses could never start."""
    b, t, c = batch_size, config.max_position_embeddings, config.hidden_size
    per_layer = b * (2 * config.num_attention_heads * t * t + t * (8 * c + 2 * config.intermediate_size))
    activations = 4 * config.num_hidden_layers * per_layer
    weights = 16 * sum(config.parameter_counts().values())
    check_fits_in_memory(f"--max-seq-length {t} with --batch-size {b} ({format_bytes(weights)} of weights, gradients "
                         f"and AdamW moments, {format_bytes(activations)} of activations per micro-batch)",
                         weights + activations, error=ConfigError)


def _prepare_vocab(args: argparse.Namespace, out_dir: Path, is_main: bool) -> None:
    """Rank 0 puts vocab.txt and tokenizer_config.json into ``out_dir``."""
    from minibert.tokenizer import BertTokenizer
    from minibert.data.vocab import save_vocab, train_wordpiece

    if not is_main:
        return
    if args.init_from:
        BertTokenizer.from_pretrained(args.init_from).save_pretrained(out_dir)  # the checkpoint's own
    elif args.vocab:
        BertTokenizer.from_pretrained(args.vocab, do_lower_case=not args.cased).save_pretrained(out_dir)
    elif args.resume and (out_dir / "vocab.txt").is_file():
        return  # the run's own vocabulary, trained when it started
    elif is_prepared(args.corpus):
        BertTokenizer.from_pretrained(args.corpus).save_pretrained(out_dir)  # the one the shards were made with
    else:
        documents = split_documents(open_corpus(args.corpus).documents(), "train", args.heldout_every)
        texts = (sentence for _, document in documents for sentence in document)
        tokens = train_wordpiece(texts, args.vocab_size, args.min_frequency, lowercase=not args.cased)
        save_vocab(tokens, out_dir, do_lower_case=not args.cased)
        print(f"trained a WordPiece vocabulary of {len(tokens)} tokens -> {out_dir / 'vocab.txt'}")


def _text_data(args: argparse.Namespace, tokenizer: Any, context: DistContext) -> tuple[Any, list, list]:
    """(this rank's training batches, the held-out batches, sample training batches) streamed from text."""
    stream_options = dict(batch_size=args.batch_size, max_seq_length=args.max_seq_length,
                          short_seq_prob=args.short_seq_prob, masked_lm_prob=args.masked_lm_prob,
                          max_predictions_per_seq=args.max_predictions, whole_word_mask=args.whole_word_mask,
                          buffer_documents=args.buffer_documents, heldout_every=args.heldout_every)
    corpus = open_corpus(args.corpus)
    train_stream = PretrainingStream(corpus.documents, tokenizer, split="train", seed=args.seed, rank=context.rank,
                                     world_size=context.world_size,
                                     cache_tokens=_cache_tokens(args.cache_tokens, corpus), **stream_options)
    eval_batches = PretrainingStream(corpus.documents, tokenizer, split="eval", seed=args.seed + 1,
                                     **stream_options).take(args.eval_examples)
    sample = PretrainingStream(corpus.documents, tokenizer, split="train", seed=args.seed + 2, **stream_options)
    return train_stream, eval_batches, sample.take(4 * args.eval_examples)


def _prepared_data(args: argparse.Namespace, tokenizer: Any, context: DistContext) -> tuple[Any, list, list]:
    """The same three, read from a prepared folder: every example a function of its index
    (``minibert.data.shards``), the training batches built in ``--data-workers`` processes."""
    from minibert.data.pretraining import Vocabulary
    from minibert.data.shards import PreparedCorpus, ShardBatches, ShardExamples

    corpus = PreparedCorpus(args.corpus, tokenizer=tokenizer, max_seq_length=args.max_seq_length)
    vocab = Vocabulary.from_tokenizer(tokenizer)
    options = dict(heldout_every=args.heldout_every, short_seq_prob=args.short_seq_prob,
                   masked_lm_prob=args.masked_lm_prob, max_predictions_per_seq=args.max_predictions,
                   whole_word_mask=args.whole_word_mask)
    train = ShardBatches(ShardExamples(corpus, vocab, split="train", seed=args.seed, **options),
                         batch_size=args.batch_size, rank=context.rank, world_size=context.world_size,
                         num_workers=args.data_workers)
    eval_batches = ShardExamples(corpus, vocab, split="eval", seed=args.seed + 1, **options).batches(
        args.eval_examples, args.batch_size)
    sample = ShardExamples(corpus, vocab, split="train", seed=args.seed + 2, **options).batches(
        4 * args.eval_examples, args.batch_size)
    return train, eval_batches, sample


def pretraining_evaluation(batches: Sequence[dict[str, Tensor]]) -> Evaluation:
    """The held-out evaluation of pretraining, for ``Trainer``: masked-LM loss and accuracy over all
    labelled positions and NSP loss and accuracy over all examples of ``batches``. Every rank computes
    the same numbers from the same batches."""
    def evaluate(model: nn.Module, device: torch.device) -> dict[str, Any]:
        mlm_loss = mlm_correct = mlm_count = nsp_loss = nsp_correct = nsp_count = 0.0
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            output = model(**batch, sparse_mlm=True)
            targets = batch["labels"][batch["labels"] != -100]             # (n,)
            logits = output.prediction_logits.float()                      # (n, v)
            mlm_loss += F.cross_entropy(logits, targets, reduction="sum").item()
            mlm_correct += (logits.argmax(-1) == targets).sum().item()
            mlm_count += targets.numel()
            nsp_logits = output.seq_relationship_logits.float()            # (b, 2)
            nsp_targets = batch["next_sentence_label"]                     # (b,)
            nsp_loss += F.cross_entropy(nsp_logits, nsp_targets, reduction="sum").item()
            nsp_correct += (nsp_logits.argmax(-1) == nsp_targets).sum().item()
            nsp_count += nsp_targets.numel()
        return {"mlm_loss": mlm_loss / max(mlm_count, 1), "mlm_accuracy": mlm_correct / max(mlm_count, 1),
                "nsp_loss": nsp_loss / max(nsp_count, 1), "nsp_accuracy": nsp_correct / max(nsp_count, 1),
                "masked_tokens": int(mlm_count), "examples": int(nsp_count)}

    return evaluate


def frequency_baseline(train_labels: Counter, eval_batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, Any]:
    """Accuracy of always predicting the token most often masked in the training data."""
    token_id, _ = train_labels.most_common(1)[0]
    targets = torch.cat([b["labels"][b["labels"] != -100] for b in eval_batches])  # (n,)
    return {"token_id": int(token_id), "mlm_accuracy": float((targets == token_id).float().mean())}


def _fmt(metrics: dict[str, float]) -> str:
    return (f"MLM loss {metrics['mlm_loss']:.3f}  MLM acc {metrics['mlm_accuracy']:.3f}  "
            f"NSP loss {metrics['nsp_loss']:.3f}  NSP acc {metrics['nsp_accuracy']:.3f}")


def _report(results: dict[str, Any], out_dir: Path) -> None:
    """Write ``results.json`` and print the held-out numbers next to the baselines."""
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    start, end, baseline, steps = results["start"], results["end"], results["frequency_baseline"], results["steps"]
    print(f"held-out evaluation ({end['masked_tokens']} masked tokens, {end['examples']} pairs):")
    if start is not None:
        print(f"  start (step 0):     {_fmt(start)}")
    print(f"  end (step {steps}):{' ' * max(1, 9 - len(str(steps)))}{_fmt(end)}")
    print(f"  frequency baseline: MLM acc {baseline['mlm_accuracy']:.3f} "
          f"(always {baseline['token']!r}); NSP baseline 0.5")
    print(f"training took {results['train_seconds_this_run']:.0f} s; total {results['wall_seconds_this_run']:.0f} s; "
          f"model, tokenizer, metrics.jsonl, loss_curve.png and results.json in {out_dir}")


def main(argv: Union[Sequence[str], argparse.Namespace, None] = None) -> int:
    args = argv if isinstance(argv, argparse.Namespace) else build_parser().parse_args(argv)
    check_int("--heldout-every", args.heldout_every, minimum=2, error=ConfigError)  # a held-out set is needed
    check_int("--eval-examples", args.eval_examples, minimum=1, error=ConfigError)
    check_int("--threads", args.threads, minimum=0, error=ConfigError)
    check_int("--data-workers", args.data_workers, minimum=0, error=ConfigError)
    if args.max_seq_length is None:
        args.max_seq_length = read_manifest(args.corpus)["max_seq_length"] if is_prepared(args.corpus) else 128
    check_int("--batch-size", args.batch_size, minimum=1, error=ConfigError)
    initial = _initial_config(args) if args.init_from else None
    check_training_fits(initial or model_config(args, args.vocab_size), args.batch_size)  # --vocab-size: a bound if --vocab
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    context = init_distributed(args.device)
    try:
        out_dir = Path(args.out_dir)
        if not is_prepared(args.corpus):  # a prepared folder was checked when it was made
            check_enough_documents(open_corpus(args.corpus), args.heldout_every, context.world_size)
        raise_if_any(context, check_output_dir(out_dir, 0) if context.is_main else None)
        _prepare_vocab(args, out_dir, context.is_main)
        if context.distributed:
            dist.barrier()
        from minibert.tokenizer import BertTokenizer

        tokenizer = BertTokenizer.from_pretrained(out_dir)

        data = _prepared_data if is_prepared(args.corpus) else _text_data
        train_data, eval_batches, sample = data(args, tokenizer, context)
        # What the frequency baseline predicts: the most common masked token of some training examples.
        train_labels = Counter(label for batch in sample for label in batch["labels"][batch["labels"] != -100].tolist())

        torch.manual_seed(args.seed)
        if initial is not None:
            model, config = BertForPreTraining.from_pretrained(args.init_from), initial
            if context.is_main:
                print(f"from {args.init_from}: {model.load_report}")
        else:
            config = model_config(args, tokenizer.vocab_size, tokenizer.pad_token_id)
            model = BertForPreTraining(config)
        train_config = TrainConfig(
            out_dir=str(out_dir), total_steps=args.steps, grad_accum_steps=args.grad_accum, adam_eps=args.adam_eps,
            learning_rate=args.lr, warmup_steps=args.warmup, weight_decay=args.weight_decay,
            max_grad_norm=args.max_grad_norm, bf16=args.bf16, fused_adamw=not args.no_fused_adamw,
            eval_every=args.eval_every, save_every=args.save_every, seed=args.seed, progress=args.progress)
        trainer = Trainer(model, train_config, train_data, pretraining_evaluation(eval_batches), context,
                          forward_kwargs={"sparse_mlm": True})

        resumed = trainer.resume() if args.resume else False
        start = None
        if resumed:
            if context.is_main and trainer.metrics_path.exists():  # the start numbers, logged by the first run
                start = next((r for r in read_metrics(trainer.metrics_path)
                              if r.get("kind") == "eval" and r["step"] == 0), None)
            if context.is_main:
                print(f"resumed from {trainer.checkpoint_path} at step {trainer.step}")
        else:
            start = trainer.evaluate()
            trainer.log({"kind": "eval", "step": 0, **start})
        if context.is_main:
            n_params = model.num_parameters()
            print(f"model: {n_params / 1e6:.2f}M parameters, vocabulary {config.vocab_size}; "
                  f"{context.world_size} process(es) on {context.device}, "
                  f"fused AdamW: {bool(trainer.optimizer.defaults.get('fused'))}")
        train_started = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - train_started
        if hasattr(train_data, "close"):
            train_data.close()  # the DataLoader workers
        end = trainer.evaluate()

        if context.is_main:
            baseline = frequency_baseline(train_labels, eval_batches)
            baseline["token"] = tokenizer.convert_ids_to_tokens(baseline["token_id"])
            model.save_pretrained(out_dir)
            tokenizer.save_pretrained(out_dir)
            results = {"start": start, "end": end, "frequency_baseline": baseline, "steps": trainer.step,
                       "train_seconds_this_run": train_seconds, "wall_seconds_this_run": time.perf_counter() - started,
                       "world_size": context.world_size, "parameters": model.num_parameters(),
                       "vocab_size": config.vocab_size, "args": {k: v for k, v in vars(args).items()
                                                                  if isinstance(v, (str, int, float, bool, type(None)))}}
            _report(results, out_dir)
        return 0
    finally:
        cleanup_distributed()


if __name__ == "__main__":
    raise SystemExit(main())
