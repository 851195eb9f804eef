"""ONNX export: ``minibert export-onnx CHECKPOINT OUT.onnx``, or ``export_onnx(model, "out.onnx")``.

The graph is the reference path (``model.py``'s formulas, no fast path): the fast paths make
decisions from the values of a batch (is there padding? which lengths?), and a traced graph would
freeze the decision made for the sample batch. The sample batch is padded, so the mask's additive
bias is part of the graph and every later batch, padded or not, goes through it. Batch size and
sequence length are dynamic axes.

Inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, (b, t); (b, n, t) for multiple
choice). Outputs are the model's output fields that are tensors, under their names
(``last_hidden_state``, ``pooler_output`` for ``BertModel``; ``logits`` for a classifier; ...).
ONNX Runtime reproduces the float32 model to about 1e-5 (``tests/test_export.py`` holds it to 1e-4).

PyTorch's TorchScript-based exporter is used: the newer ``torch.export`` one refuses minibert's input
checks (``int(ids.max())`` is a data-dependent Python value), which must stay in eager mode.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import warnings
from typing import Iterator, Optional

import torch
from torch import Tensor, nn

from minibert.errors import InputError, InputTypeError

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
DEFAULT_OPSET = 17


@contextlib.contextmanager
def reference_path(model: nn.Module) -> Iterator[None]:
    """Every encoder inside ``model`` takes the reference path (``fast_paths = False``) and the model
    is in eval mode, for the duration; both restored after."""
    encoders = [m for m in model.modules() if hasattr(m, "layers") and hasattr(m, "embeddings")]
    saved = [(m, m.__dict__.get("fast_paths", True)) for m in encoders]
    training = model.training
    try:
        for encoder in encoders:
            encoder.fast_paths = False
        model.eval()
        yield
    finally:
        for encoder, value in saved:
            encoder.fast_paths = value
        model.train(training)


class _TupleOutputs(nn.Module):
    """The model with its output dataclass flattened to a tuple of tensors (what the tracer takes)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> tuple[Tensor, ...]:
        out = self.model(input_ids, attention_mask, token_type_ids, unpad=False)
        return out.to_tuple()


def sample_inputs(model: nn.Module, batch: int = 2, length: int = 16) -> tuple[Tensor, Tensor, Tensor]:
    """A padded batch the exporter traces: ordinary word ids, the second sequence half padding."""
    config = model.config
    choices = (2,) if type(model).__name__ == "BertForMultipleChoice" else ()
    shape = (batch, *choices, length)
    ids = torch.randint(min(1000, config.vocab_size - 1), config.vocab_size, shape, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(shape, dtype=torch.long)
    mask[1, ..., length // 2:] = 0
    ids = ids * mask  # [PAD] = 0 at padded positions
    return ids, mask, torch.zeros_like(ids)


def export_onnx(model: nn.Module, path: str | os.PathLike, opset: int = DEFAULT_OPSET) -> list[str]:
    """Write ``model`` (BertModel or any head, float32) to ``path`` as ONNX; returns the output names."""
    if not isinstance(model, nn.Module) or not hasattr(model, "config"):
        raise InputTypeError(f"model must be a minibert model (BertModel or a head), got {type(model).__name__}")
    if not isinstance(opset, int) or isinstance(opset, bool) or opset < 14:
        raise InputError(f"opset must be an integer >= 14 (attention needs it), got {opset!r}")
    floating = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if floating != {torch.float32} or any(not p.is_floating_point() for p in model.parameters()):
        raise InputError(f"export_onnx takes a float32 model (got parameter dtypes {sorted(map(str, floating))}); "
                         "quantize the exported graph with ONNX Runtime instead")
    sample = sample_inputs(model)
    wrapper = _TupleOutputs(model).eval()
    with reference_path(model), torch.no_grad():
        out = model(*sample, unpad=False)
        other = model(*sample_inputs(model, batch=3, length=13), unpad=False)  # which axes follow the input's
        names = out.keys()
        axis_names = {0: "batch", sample[0].dim() - 1: "sequence", 1: "choices"}
        dynamic = {name: {axis: axis_names[axis] for axis in range(sample[0].dim())} for name in INPUT_NAMES}
        for name in names:
            changed = [axis for axis, (a, b) in enumerate(zip(out[name].shape, other[name].shape)) if a != b]
            dynamic[name] = {axis: axis_names.get(axis, f"{name}_{axis}") if axis in (0, sample[0].dim() - 1)
                             else f"{name}_{axis}" for axis in changed}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes about Python values it froze: the input checks
            torch.onnx.export(wrapper, sample, str(path), input_names=list(INPUT_NAMES), output_names=names,
                              dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    return names


# ------------------------------------------------------------------------------------ command line
def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="minibert export-onnx")
    parser.add_argument("checkpoint", help="checkpoint folder, weights file or name")
    parser.add_argument("out", help="the .onnx file to write")
    parser.add_argument("--architecture", help="class to load with (default: config.json's architectures, else BertModel)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset version")
    return parser


def main(args: argparse.Namespace) -> None:
    from minibert import cli

    folder = cli._checkpoint_folder(args.checkpoint)
    declared, _ = cli._declared_architecture(folder)
    name = args.architecture or (declared if declared in cli.ARCHITECTURES else "BertModel")
    model = cli._architecture_class(name).from_pretrained(args.checkpoint)
    names = export_onnx(model, args.out, args.opset)
    print(f"wrote {args.out}: {name}, inputs {', '.join(INPUT_NAMES)} -> {', '.join(names)} "
          f"(dynamic batch and sequence length, opset {args.opset})")
