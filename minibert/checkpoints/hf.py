"""Checkpoints on disk <-> minibert's parameters.

minibert names its modules for the reader (``layers.3.attn.qkv``); every public BERT checkpoint uses
Hugging Face's names (``encoder.layer.3.attention.self.query``). ``HF_NAMES`` below is the one place
where the two meet: a declarative table, ``{}`` standing for the layer number. Loading reads the
file, normalises the legacy spellings, and fills each minibert parameter from the HF tensor(s) the
table names; saving walks the table the other way, so transformers reads what minibert writes.

Files are read without executing anything: safetensors, or ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import collections
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor

from minibert.checks import read_json
from minibert.config import BertConfig
from minibert.errors import CheckpointError, ConfigError, InputTypeError
from minibert.checkpoints.hub import resolve


def _wb(own: str, hf: str) -> list[tuple[str, Any]]:
    """A module with a weight and a bias: two rows of the table."""
    return [(f"{own}.weight", f"{hf}.weight"), (f"{own}.bias", f"{hf}.bias")]


_QKV = "encoder.layer.{}.attention.self."

# minibert name -> HF name (or names, concatenated along dim 0). Encoder rows are relative to the
# encoder; in head models both sides carry the prefix "bert.".
ENCODER_NAMES: list[tuple[str, Any]] = [
    ("embeddings.word.weight", "embeddings.word_embeddings.weight"),
    ("embeddings.position.weight", "embeddings.position_embeddings.weight"),
    ("embeddings.token_type.weight", "embeddings.token_type_embeddings.weight"),
    *_wb("embeddings.norm", "embeddings.LayerNorm"),
    # Fused projection: rows [0, c) are the query, [c, 2c) the key, [2c, 3c) the value.
    ("layers.{}.attn.qkv.weight", tuple(_QKV + f"{n}.weight" for n in ("query", "key", "value"))),
    ("layers.{}.attn.qkv.bias", tuple(_QKV + f"{n}.bias" for n in ("query", "key", "value"))),
    *_wb("layers.{}.attn.out", "encoder.layer.{}.attention.output.dense"),
    *_wb("layers.{}.attn_norm", "encoder.layer.{}.attention.output.LayerNorm"),
    *_wb("layers.{}.ffn.up", "encoder.layer.{}.intermediate.dense"),
    *_wb("layers.{}.ffn.down", "encoder.layer.{}.output.dense"),
    *_wb("layers.{}.ffn_norm", "encoder.layer.{}.output.LayerNorm"),
    *_wb("pooler.dense", "pooler.dense"),
]
HEAD_NAMES: list[tuple[str, Any]] = [
    *_wb("mlm.transform", "cls.predictions.transform.dense"),
    *_wb("mlm.norm", "cls.predictions.transform.LayerNorm"),
    ("mlm.bias", "cls.predictions.bias"),
    ("mlm.decoder.weight", "cls.predictions.decoder.weight"),  # tied to the word embeddings
    *_wb("nsp", "cls.seq_relationship"),
    *_wb("classifier", "classifier"),
    *_wb("qa_outputs", "qa_outputs"),
]


def _prefix(prefix: str, names: Any) -> Any:
    return tuple(prefix + n for n in names) if isinstance(names, tuple) else prefix + names


# The whole table, in head-model form.
HF_NAMES: list[tuple[str, Any]] = [("bert." + own, _prefix("bert.", hf)) for own, hf in ENCODER_NAMES] + HEAD_NAMES
TIED = {"mlm.decoder.weight"}  # shares its tensor with bert.embeddings.word.weight; never stored twice


def _compile(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(r"\{\}", r"(\d+)") + "$")


_OWN_TO_HF = [(_compile(own), hf) for own, hf in HF_NAMES]


def hf_names_for(own_key: str) -> Optional[tuple[str, ...]]:
    """HF name(s) of a minibert parameter (in head-model form, i.e. ``bert.``-prefixed encoder keys)."""
    for pattern, hf in _OWN_TO_HF:
        match = pattern.match(own_key)
        if match:
            names = hf if isinstance(hf, tuple) else (hf,)
            return tuple(n.replace("{}", match.group(1)) if match.groups() else n for n in names)
    return None


def normalise_hf_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Bring the spellings found in the wild to one form: ``bert.``-prefixed encoder keys, LayerNorm
    ``weight``/``bias`` (not TF-era ``gamma``/``beta``), no ``position_ids`` buffers."""
    out: dict[str, Tensor] = {}
    for key, tensor in state.items():
        if key.endswith("position_ids"):
            continue  # a buffer older transformers saved; positions are computed, not stored
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
        if key.startswith(("embeddings.", "encoder.", "pooler.")):
            key = "bert." + key
        out[key] = tensor
    # The MLM output bias appears as cls.predictions.bias, cls.predictions.decoder.bias, or both (tied).
    decoder_bias = out.pop("cls.predictions.decoder.bias", None)
    if decoder_bias is not None and "cls.predictions.bias" not in out:
        out["cls.predictions.bias"] = decoder_bias
    return out


# ------------------------------------------------------------------------------------------- files
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for every kind of corruption
        raise CheckpointError(f"cannot read {path}: {exc}. The file is corrupted or not a safetensors file; "
                              "re-export the checkpoint") from None


def _read_torch_bin(path: Path) -> dict[str, Tensor]:
    try:
        # weights_only: a pickle may only rebuild tensors and plain containers, never run code.
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {path} as a PyTorch state dict (read with weights_only=True, "
                              f"nothing in it was executed): {type(exc).__name__}: {str(exc)[:300]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors (got {type(state).__name__})")
    for key, tensor in state.items():
        # A pickle can rebuild tensors a weight never is: sparse or quantized layouts, or "meta"
        # tensors that have a shape but no values.
        if tensor.layout != torch.strided or tensor.is_quantized or tensor.is_meta:
            kind = "meta (no values)" if tensor.is_meta else f"layout {tensor.layout}, quantized={tensor.is_quantized}"
            raise CheckpointError(f"{path}: tensor {key!r} is {kind}; a checkpoint holds dense tensors with values")
    return state


def _read_sharded(index: Path) -> dict[str, Tensor]:
    values = read_json(index)
    weight_map = values.get("weight_map") if isinstance(values, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index} is not a valid shard index (expected a JSON object whose 'weight_map' "
                              "maps tensor names to shard file names)")
    shards = sorted(set(weight_map.values()))
    state: dict[str, Tensor] = {}
    for shard in shards:
        shard_path = (index.parent / shard)
        if shard_path.parent.resolve() != index.parent.resolve() or not shard_path.is_file():
            raise CheckpointError(f"{index} names shard {shard!r}, which is not a file next to it")
        state.update(read_weights(shard_path))
    return state


def read_weights(path: Path) -> dict[str, Tensor]:
    """Tensors of one weights file (safetensors, torch .bin, shard index, or TF checkpoint index)."""
    name = path.name
    if name.endswith(".index.json"):
        return _read_sharded(path)
    if name.endswith(".safetensors"):
        return _read_safetensors(path)
    if name.endswith((".bin", ".pt", ".pth")):
        return _read_torch_bin(path)
    if ".ckpt" in name:
        from minibert.checkpoints.tf import load_tf_bert

        state, _skipped = load_tf_bert(path)
        return state
    raise CheckpointError(f"{path}: unknown weights format; expected one of {WEIGHT_FILES} or a TF .ckpt")


def find_weights(folder: Path) -> Path:
    """The weights file of a checkpoint folder, in order of preference; a clear error if there is none."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    tf_indexes = sorted(folder.glob("*.ckpt*.index"))
    if tf_indexes:
        return tf_indexes[0]
    raise CheckpointError(f"no weights in {folder}: expected one of {', '.join(WEIGHT_FILES)} "
                          "or a TensorFlow bert_model.ckpt.*")


def read_config(folder: Path, **overrides: Any) -> BertConfig:
    """The folder's config: HF ``config.json``, or Google's ``bert_config.json`` next to a TF checkpoint."""
    if (folder / "config.json").is_file():
        return BertConfig.from_json_file(folder / "config.json", **overrides)
    if (folder / "bert_config.json").is_file():  # the layout of Google's original zip files
        from minibert.checkpoints.tf import read_google_config

        return BertConfig.from_dict(read_google_config(folder / "bert_config.json"), **overrides)
    raise CheckpointError(f"no config.json in {folder}: minibert needs the model's config next to its weights")


# ----------------------------------------------------------------------------------------- loading
@dataclass
class LoadReport:
    """What loading did with each name: HF names that were not used, minibert names not filled."""

    missing: list[str] = field(default_factory=list)      # minibert parameters left at their initialisation
    unexpected: list[str] = field(default_factory=list)   # checkpoint tensors no parameter took
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (name, checkpoint, model)

    def __str__(self) -> str:
        parts = [f"missing ({len(self.missing)}): {', '.join(self.missing) or '-'}",
                 f"unexpected ({len(self.unexpected)}): {', '.join(self.unexpected) or '-'}"]
        if self.mismatched:
            parts.append("mismatched: " + ", ".join(f"{n} {a} vs {b}" for n, a, b in self.mismatched))
        return "\n".join(parts)


def _cast_finite(tensor: Tensor, dtype: torch.dtype, name: str) -> Tensor:
    """``tensor`` in ``dtype``, refused if any value is NaN or infinite *after* the cast: a float64
    1e300 or a float32 1e6 is finite in the file and infinite in float32 / float16."""
    cast = tensor.to(dtype)
    # One reduction first (a NaN or inf anywhere makes the sum non-finite), the exact check only if
    # it trips: a sum of finite weights can overflow too.
    if bool(torch.isfinite(cast.sum())) or bool(torch.isfinite(cast).all()):
        return cast
    # A non-finite weight would silently turn every output to NaN; say where it is instead.
    if bool(torch.isfinite(tensor).all()):
        largest = tensor.abs().max().item()
        raise CheckpointError(f"checkpoint tensor {name} holds {largest:.3g}, which overflows {dtype} "
                              f"(largest finite: {torch.finfo(dtype).max:.3g}); load it in the file's own "
                              f"dtype (dtype={tensor.dtype}) or fix the checkpoint")
    raise CheckpointError(f"checkpoint tensor {name} contains NaN or infinite values; "
                          "the file is corrupted or the training run diverged")


def _stacked_shape(sources: list[Tensor]) -> Optional[tuple[int, ...]]:
    """Shape of the tensors concatenated along dim 0 (q, k, v into qkv), or None if they cannot be."""
    first = sources[0]
    if len(sources) == 1:
        return tuple(first.shape)
    if any(t.dim() == 0 or t.shape[1:] != first.shape[1:] for t in sources):
        return None
    return (sum(t.shape[0] for t in sources), *first.shape[1:])


def load_hf_state(model: torch.nn.Module, hf_state: dict[str, Tensor],
                  ignore_mismatched_sizes: bool = False) -> LoadReport:
    """Fill ``model`` from an HF-named state dict; report what did not fit.

    A model on the ``meta`` device (no memory yet) takes the checkpoint's tensors themselves, cast to
    its dtype, instead of copies; what the checkpoint lacks then stays on ``meta`` for the caller.
    """
    hf = normalise_hf_state(hf_state)
    own = model.state_dict()
    bare = not any(k.startswith("bert.") for k in own)  # BertModel itself: its keys carry no prefix
    report, new_state, used = LoadReport(), {}, set()
    for key, param in own.items():
        canonical = "bert." + key if bare else key
        if canonical in TIED:
            continue
        names = hf_names_for(canonical)
        if names is None or not all(n in hf for n in names):
            report.missing.append(key)
            continue
        used.update(names)
        sources = [hf[n] for n in names]
        for name, source in zip(names, sources):
            if source.dtype not in WEIGHT_DTYPES:
                raise CheckpointError(f"checkpoint tensor {name} has dtype {source.dtype}; minibert reads "
                                      f"weights stored as {', '.join(str(d) for d in WEIGHT_DTYPES)}")
        shape = _stacked_shape(sources)
        if shape != tuple(param.shape):
            found = " + ".join(str(tuple(t.shape)) for t in sources)
            if ignore_mismatched_sizes:
                report.mismatched.append((key, shape or found, tuple(param.shape)))
                continue
            raise CheckpointError(
                f"checkpoint tensor {' + '.join(names)} has shape {found}, but the model's "
                f"parameter {key} has shape {tuple(param.shape)}; the config does not match the weights "
                "(pass ignore_mismatched_sizes=True to re-initialise it instead)")
        parts = [_cast_finite(source, param.dtype, name) for name, source in zip(names, sources)]
        new_state[key] = torch.cat(parts) if len(parts) > 1 else parts[0]
    report.unexpected = sorted(k for k in hf if k not in used and k != "cls.predictions.decoder.weight")
    if next(model.parameters()).is_meta:
        new_state = {k: v.contiguous() for k, v in new_state.items()}
        model.load_state_dict(new_state, strict=False, assign=True)
    else:
        model.load_state_dict(new_state, strict=False)
    return report


# What a weight may be stored as, and the dtypes a model may be loaded in. float8 and complex tensors
# load but fail later in forward (or compute nonsense), so they are refused at load.
WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_IGNORED_KWARGS = {"attn_implementation", "local_files_only", "low_cpu_mem_usage", "use_safetensors"}


def _parse_dtype(value: Any, state: dict[str, Tensor]) -> Optional[torch.dtype]:
    if value is None:
        return None
    if isinstance(value, str) and value == "auto":
        value = next((t.dtype for t in state.values() if t.is_floating_point()), None)
        if value is None:
            return None
    if isinstance(value, str) and isinstance(getattr(torch, value, None), torch.dtype):
        value = getattr(torch, value)
    if value in WEIGHT_DTYPES:
        return value
    raise ConfigError(f"dtype must be one of {', '.join(str(d) for d in WEIGHT_DTYPES)} (or its name, or "
                      f"'auto'); got {value!r}")


def _tied_parameters(model: torch.nn.Module) -> list[tuple[str, str]]:
    """(name, source) for every parameter name that shares its tensor with an earlier name (the MLM
    decoder tied to the word embeddings): loading replaces tensors, so the tie must be made again."""
    first_name: dict[int, str] = {}
    ties = []
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first_name:
            ties.append((name, first_name[id(param)]))
        else:
            first_name[id(param)] = name
    return ties


def _set_parameter(model: torch.nn.Module, name: str, param: torch.nn.Parameter) -> None:
    owner, attr = name.rsplit(".", 1)
    setattr(model.get_submodule(owner), attr, param)


def _check_encoder_filled(model: torch.nn.Module, report: LoadReport, weights: Path,
                          state: dict[str, Tensor]) -> None:
    """Refuse a checkpoint that leaves most of the encoder at random initialisation: its names are
    not BERT's (another architecture, or a wrapper's prefix like ``model.``), and the "loaded" model
    would be a random one."""
    keys = list(model.state_dict())
    bare = not any(k.startswith("bert.") for k in keys)  # BertModel itself, else a head model's "bert."
    own = [k for k in keys if bare or k.startswith("bert.")]
    missing = set(report.missing) | {name for name, _, _ in report.mismatched}
    filled = sum(1 for k in own if k not in missing)
    if filled * 2 >= len(own):
        return
    prefixes = collections.Counter(key.split(".")[0] + "." if "." in key else key for key in state)
    found = ", ".join(f"{p!r} ({n})" for p, n in prefixes.most_common(6)) or "no tensors at all"
    raise CheckpointError(
        f"{weights} fills only {filled} of the encoder's {len(own)} tensors: its names are not BERT's "
        f"(expected names like 'bert.embeddings.word_embeddings.weight' or 'encoder.layer.0...'; "
        f"found names starting with {found}). Loading it would give a randomly initialised model")


def load(cls, name_or_path: str | os.PathLike, *, config: Optional[BertConfig] = None,
         dtype: Any = None, torch_dtype: Any = None, ignore_mismatched_sizes: bool = False,
         output_loading_info: bool = False, **overrides: Any):
    """Build ``cls`` from a local checkpoint. See ``BertPreTrainedModel.from_pretrained``."""
    for key in _IGNORED_KWARGS & overrides.keys():
        overrides.pop(key)
    unknown = sorted(k for k in overrides if k not in BertConfig.__dataclass_fields__ or k == "extra")
    if unknown:
        raise InputTypeError(f"{cls.__name__}.from_pretrained got unknown keyword argument(s) {unknown}; "
                        "config fields (e.g. num_labels) may be overridden")
    if config is not None and not isinstance(config, BertConfig):
        raise InputTypeError(f"config must be a minibert BertConfig or None, got {type(config).__name__}")
    path = resolve(name_or_path)
    folder = path if path.is_dir() else path.parent
    weights = find_weights(folder) if path.is_dir() or path.name.endswith("config.json") else path
    if config is None:
        config = read_config(folder, **overrides)
    elif overrides:
        config = BertConfig.from_dict({**config.to_dict(), **overrides})
    state = read_weights(weights)
    dtype = _parse_dtype(dtype if dtype is not None else torch_dtype, state) or torch.get_default_dtype()
    # Built on the meta device: no memory, no random init. The checkpoint's tensors (cast to dtype
    # first: float64 weights must not pass through float32) become the parameters without a copy.
    with torch.device("meta"):
        model = cls(config).to(dtype)
    ties = _tied_parameters(model)
    report = load_hf_state(model, state, ignore_mismatched_sizes)
    _check_encoder_filled(model, report, weights, state)
    unfilled = [name for name, p in model.named_parameters() if p.is_meta]
    if unfilled:
        # BERT's initialisation for what the checkpoint lacks, and for nothing else.
        for name in unfilled:
            empty = torch.empty_like(model.get_parameter(name), device="cpu")
            _set_parameter(model, name, torch.nn.Parameter(empty))
        model.init_weights(only=set(unfilled))
    for name, source in ties:
        _set_parameter(model, name, model.get_parameter(source))
    model.eval()  # loading is for inference until the caller says train()
    model.load_report = report
    model.name_or_path = str(name_or_path)
    if output_loading_info:
        return model, {"missing_keys": report.missing, "unexpected_keys": report.unexpected,
                       "mismatched_keys": report.mismatched}
    return model


# ------------------------------------------------------------------------------------------ saving
def to_hf_state(model: torch.nn.Module) -> dict[str, Tensor]:
    """minibert state dict -> HF names (q/k/v split again); the tied decoder matrix is left out."""
    own = model.state_dict()
    bare = not any(k.startswith("bert.") for k in own)
    out: dict[str, Tensor] = {}
    for key, tensor in own.items():
        canonical = "bert." + key if bare else key
        if canonical in TIED:
            continue
        names = hf_names_for(canonical)
        if names is None:
            raise CheckpointError(f"no HF name for parameter {key}: add it to checkpoints.HF_NAMES")
        parts = tensor.chunk(len(names)) if len(names) > 1 else (tensor,)
        for name, part in zip(names, parts):
            out[name[len("bert."):] if bare else name] = part.detach().contiguous().cpu()
    return out


def _atomic_write(path: Path, write) -> None:
    """Write through a temp file in the same folder, then rename: a crash never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        # mkstemp made the file private (0600), and a writer may replace it with its own; the finished
        # file gets the permissions any new file gets here (0644 under the usual umask 022), or others
        # could not read a model they were given.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(model, directory: str | os.PathLike) -> None:
    """Write ``config.json`` and ``model.safetensors`` (HF names and layout), each atomically."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # A copy: saving must not change the caller's config.
    config = replace(model.config, architectures=[type(model).__name__])
    _atomic_write(directory / "config.json", config.to_json_file)
    state = to_hf_state(model)
    _atomic_write(directory / "model.safetensors", lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
