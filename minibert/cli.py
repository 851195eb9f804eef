"""The ``minibert`` command: one entry point for training, inspecting, converting and using checkpoints.

    minibert prepare CORPUS... --vocab VOCAB --out-dir DATA   tokenise once into shards -> minibert.data.prepare
    minibert pretrain ...              pre-train with masked LM (+ NSP)         -> minibert.train.pretrain
    minibert train-vocab ...           build a WordPiece vocabulary            -> minibert.data.vocab
    minibert finetune ...              fine-tune a text classifier             -> minibert.train.finetune
    minibert fill-mask "Paris is the [MASK] of France." [--checkpoint PATH] [--top-k 5]
    minibert embed TEXT... [--checkpoint PATH] [--json]
    minibert info CHECKPOINT
    minibert convert SRC DST
    minibert export-onnx CHECKPOINT OUT.onnx

Two rules shape this file:

* **Fast help.** Only the chosen subcommand's module is imported, and only once it runs (or, for the
  commands whose arguments live in their own module, once it is named on the command line), so
  ``minibert --help`` does not build what it does not need.
* **One clear line per error.** A mistake the user can fix (a missing file, a bad value, a checkpoint
  without the needed weights) prints ``minibert: error: ...`` on stderr and exits with 1; argparse's
  own usage errors exit with 2. Anything unexpected is one line too, naming its type. ``--debug``
  shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from minibert import __version__
from minibert.checks import check_device, check_positive_int, read_json
from minibert.errors import CheckpointError, InputError, MinibertError
from minibert.checkpoints.hub import DEFAULT_CHECKPOINT, FILL_MASK_CHECKPOINT

# Classes a checkpoint's config.json may name in "architectures"; all live in minibert.model/heads.
ARCHITECTURES = ("BertModel", "BertForPreTraining", "BertForMaskedLM", "BertForNextSentencePrediction",
                 "BertForSequenceClassification", "BertForTokenClassification", "BertForQuestionAnswering",
                 "BertForMultipleChoice")
# Files next to the weights that describe the tokenizer or the sentence-embedding recipe; convert copies them.
COMPANION_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "modules.json",
                   "sentence_bert_config.json", "1_Pooling/config.json")


# ------------------------------------------------------------------------------------------ helpers
def _architecture_class(name: str):
    if name not in ARCHITECTURES:
        raise CheckpointError(f"architecture {name!r} is not one minibert implements; choose one of "
                              f"{', '.join(ARCHITECTURES)} (convert: --architecture NAME)")
    from minibert import heads, model

    return getattr(heads, name, None) or getattr(model, name)


def _checkpoint_folder(name_or_path: str) -> Path:
    from minibert.checkpoints.hub import resolve

    path = resolve(name_or_path)
    return path if path.is_dir() else path.parent


def _declared_architecture(folder: Path) -> tuple[Optional[str], str]:
    """(architecture named by the checkpoint or None, where the answer came from)."""
    config_path = folder / "config.json"
    if config_path.is_file():
        values = read_json(config_path)
        names = values.get("architectures") if isinstance(values, dict) else None
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise CheckpointError(f"{config_path}: architectures must be a list of class names, got {names!r}")
        return (names[0], "config.json") if names else (None, "config.json names no architecture")
    if (folder / "bert_config.json").is_file():
        # Google's TF releases hold the pre-training heads (MLM + NSP) next to the encoder.
        return "BertForPreTraining", "a Google TF checkpoint (bert_config.json)"
    return None, "no config.json"


# ----------------------------------------------------------------------------------------- commands
def _add_fill_mask(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="text with one or more [MASK] tokens")
    parser.add_argument("--checkpoint", default=FILL_MASK_CHECKPOINT,
                        help="a checkpoint with a trained masked-LM head (BertForMaskedLM or BertForPreTraining); "
                             "the default ships with minibert")
    parser.add_argument("--top-k", type=int, default=5, help="how many candidates to show per [MASK]")


def _run_fill_mask(args: argparse.Namespace) -> None:
    import torch

    from minibert.heads import BertForMaskedLM
    from minibert.tokenizer import BertTokenizer

    check_positive_int("--top-k", args.top_k)
    model = BertForMaskedLM.from_pretrained(args.checkpoint)
    untrained = [name for name in model.load_report.missing if name.startswith("mlm.")]
    if untrained:
        raise CheckpointError(f"checkpoint {args.checkpoint!r} has no trained masked-LM head ({len(untrained)} "
                              f"head tensors missing, e.g. {untrained[0]}); its predictions would be random. "
                              "Use a checkpoint saved from BertForMaskedLM or BertForPreTraining")
    tokenizer = BertTokenizer.from_pretrained(args.checkpoint)
    tokens = tokenizer(args.text, truncation=True, return_tensors="pt")
    input_ids = tokens["input_ids"]                                                    # (1, t)
    mask_positions = (input_ids[0] == tokenizer.mask_token_id).nonzero().flatten().tolist()
    if not mask_positions:
        raise InputError(f"text must contain {tokenizer.mask_token}, got {args.text!r}")
    with torch.inference_mode():
        logits = model(input_ids, tokens["attention_mask"], tokens["token_type_ids"]).logits[0]  # (t, v)
    for number, position in enumerate(mask_positions, 1):
        probabilities = logits[position].softmax(dim=-1)                               # (v,)
        top = probabilities.topk(min(args.top_k, probabilities.numel()))
        if len(mask_positions) > 1:
            print(f"[MASK] {number}:")
        for probability, token_id in zip(top.values.tolist(), top.indices.tolist()):
            filled = input_ids[0].clone()
            filled[position] = token_id
            sentence = tokenizer.decode(filled[1:-1].tolist())  # without [CLS] and the final [SEP]
            print(f"{probability:.4f}\t{tokenizer.convert_ids_to_tokens(token_id)}\t{sentence}")


def _add_embed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="+", metavar="TEXT", help="one or more texts to embed")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="sentence-transformers or BERT folder/name")
    parser.add_argument("--json", action="store_true",
                        help='print a JSON list of {"text": ..., "embedding": [...]}; without it, one line of '
                             'space-separated numbers per text, in the order given')
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 or mps")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "int8"), default="fp32",
                        help="inference precision; auto: bf16 where the CPU computes it natively "
                             "(docs/benchmarks.md lists each mode's measured error)")


def _run_embed(args: argparse.Namespace) -> None:
    from minibert.fast.precision import set_precision
    from minibert.sentence import SentenceEncoder

    device = check_device(args.device)
    check_positive_int("--batch-size", args.batch_size)
    encoder = SentenceEncoder.from_pretrained(args.checkpoint).to(device)
    set_precision(encoder.model, args.precision)  # after the move: "auto" decides for that device
    vectors = encoder.encode(list(args.texts), batch_size=args.batch_size)            # (n, c)
    if args.json:
        rows = [{"text": text, "embedding": [round(float(x), 7) for x in vector]}
                for text, vector in zip(args.texts, vectors)]
        print(json.dumps(rows))
    else:
        for vector in vectors:
            print(" ".join(f"{float(x):.6f}" for x in vector))


def _add_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint folder, weights file or name")


def _run_info(args: argparse.Namespace) -> None:
    from minibert.checkpoints.hf import find_weights
    from minibert.sentence import read_sentence_config

    folder = _checkpoint_folder(args.checkpoint)
    declared, source = _declared_architecture(folder)
    name = declared if declared in ARCHITECTURES else "BertModel"
    model = _architecture_class(name).from_pretrained(args.checkpoint)
    config = model.config
    print(f"checkpoint:      {folder}")
    print(f"weights:         {find_weights(folder).name}")
    note = "" if declared == name else f" (declared: {declared or '-'}; {source}; loaded as BertModel)"
    print(f"architecture:    {name}{note}")
    print(f"layers:          {config.num_hidden_layers}")
    print(f"hidden size:     {config.hidden_size} ({config.num_attention_heads} heads of {config.head_size})")
    print(f"feed-forward:    {config.intermediate_size} ({config.hidden_act})")
    print(f"vocabulary:      {config.vocab_size}")
    print(f"max positions:   {config.max_position_embeddings}")
    print(f"token types:     {config.type_vocab_size}")
    if name in ("BertForSequenceClassification", "BertForTokenClassification") and config.id2label:
        print(f"labels:          {', '.join(f'{i}={n}' for i, n in sorted(config.id2label.items()))}")
    print(f"parameters:      {model.num_parameters():,}")
    if (folder / "modules.json").is_file():
        sentence = read_sentence_config(folder)
        print(f"sentence model:  pooling={'+'.join(sentence.pooling_modes)}, normalize={sentence.normalize}, "
              f"max_seq_length={sentence.max_seq_length}")
    report = model.load_report
    print(f"load report:     {len(report.missing)} missing, {len(report.unexpected)} unexpected, "
          f"{len(report.mismatched)} mismatched")
    for line in str(report).splitlines():
        print(f"  {line}")


def _add_convert(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="checkpoint to read: HF folder, .bin/.safetensors file, or Google TF folder/index")
    parser.add_argument("dst", help="folder to write config.json + model.safetensors (+ vocab.txt) into")
    parser.add_argument("--architecture", choices=ARCHITECTURES,
                        help="class to load with (default: config.json's architectures; BertForPreTraining "
                             "for a Google TF folder; else BertModel)")


def _run_convert(args: argparse.Namespace) -> None:
    source = _checkpoint_folder(args.src)
    destination = Path(args.dst)
    if destination.resolve() == source.resolve():
        raise InputError(f"dst must differ from the source folder, got {args.dst!r} for both")
    declared, _ = _declared_architecture(source)
    name = args.architecture or declared or "BertModel"
    model = _architecture_class(name).from_pretrained(args.src)
    model.save_pretrained(destination)
    copied = []
    for relative in COMPANION_FILES:
        if (source / relative).is_file():
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / relative, destination / relative)
            copied.append(relative)
    report = model.load_report
    print(f"loaded {args.src} as {name}: {len(report.missing)} missing, {len(report.unexpected)} unexpected")
    if report.missing:
        print(f"  missing (left at random initialisation): {', '.join(report.missing)}")
    print(f"wrote {destination}: config.json, model.safetensors{''.join(', ' + c for c in copied)}")


def _delegate(module_name: str) -> tuple[Callable, Callable]:
    """(add arguments, run) for a subcommand whose parser and main live in ``minibert.<module_name>``."""
    def load():
        import importlib

        try:
            return importlib.import_module(f"minibert.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"minibert.{module_name}":
                raise  # a missing dependency inside the module: show it as it is
            raise MinibertError(f"this installation has no minibert.{module_name} module") from None

    def add(parser: argparse.ArgumentParser) -> None:
        load().build_parser(parser)

    def run(args: argparse.Namespace) -> Any:
        return load().main(args)

    return add, run


# name -> (one-line help, add arguments, run)
COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "prepare": ("tokenise a corpus once into shards that pretrain reads", *_delegate("data.prepare")),
    "pretrain": ("pre-train a BERT with masked LM (and NSP) on text files", *_delegate("train.pretrain")),
    "train-vocab": ("train a WordPiece vocabulary (vocab.txt) on text files", *_delegate("data.vocab")),
    "finetune": ("fine-tune a checkpoint to classify texts or text pairs (CSV/JSONL)", *_delegate("train.finetune")),
    "fill-mask": ("predict the tokens behind [MASK] with a masked-LM checkpoint", _add_fill_mask, _run_fill_mask),
    "embed": ("print sentence embeddings of texts", _add_embed, _run_embed),
    "info": ("summarise a checkpoint: config, parameter count, load report", _add_info, _run_info),
    "convert": ("load any supported checkpoint and save it as HF config.json + model.safetensors",
                _add_convert, _run_convert),
    "export-onnx": ("export a checkpoint to ONNX (dynamic batch and length)", *_delegate("export")),
}


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The full parser; only ``command``'s own arguments are added (the others are not needed)."""
    parser = argparse.ArgumentParser(prog="minibert", description="BERT in pure PyTorch: train, inspect, "
                                     "convert and use checkpoints. Everything runs from local files.")
    parser.add_argument("--version", action="version", version=f"minibert {__version__}")
    # --debug is accepted before or after the subcommand; SUPPRESS keeps the sub-parser from resetting it.
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    debug_flag = argparse.ArgumentParser(add_help=False)
    debug_flag.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="show full tracebacks on errors")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_arguments, _run) in COMMANDS.items():
        sub = subcommands.add_parser(name, help=help_text, description=help_text, parents=[debug_flag],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if name == command:
            add_arguments(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    """The error as one line. Ours (and file errors) say what to fix; anything else is a bug or a
    resource limit, shown by its type with the way to see the traceback."""
    message = " ".join(str(exc).split())
    if isinstance(exc, (MinibertError, OSError)):
        return message or type(exc).__name__
    if isinstance(exc, MemoryError):
        return "out of memory" + (f" ({message})" if message else "")
    return f"{type(exc).__name__}: {message[:500]} (an unexpected error; rerun with --debug for the traceback)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 minibert error, 2 usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    command = next((word for word in argv if word in COMMANDS), None)
    try:
        parser = build_parser(command)
        args = parser.parse_args(argv)
        result = COMMANDS[args.command][2](args)
    except SystemExit as exit_:  # argparse (help, version, usage errors) and sys.exit in subcommands
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except KeyboardInterrupt:
        print("minibert: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(f"minibert: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    # Delegated mains may return an exit code; anything else (None, a summary dict) means success.
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


if __name__ == "__main__":
    sys.exit(main())
