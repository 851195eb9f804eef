"""Sentence embeddings: one fixed-size vector per text, from a BERT encoder and a pooling step.

A BERT encoder gives one vector per token, (b, t, c). Semantic search and clustering want one vector
per text, (b, c). The sentence-transformers recipe gets there in up to three steps, each listed as a
"module" in the checkpoint's ``modules.json``:

1. Transformer: the BERT encoder (this folder's ``config.json`` + weights), with the truncation length
   and an optional extra lower-casing written in ``sentence_bert_config.json``;
2. Pooling (``1_Pooling/config.json``): mean of the real (non-padding) token vectors, the [CLS]
   vector, the element-wise max, or the mean scaled by sqrt(length) instead of length;
3. Normalize (optional): divide each vector by its L2 norm, so a dot product is a cosine.

``SentenceEncoder`` reads those files and runs the same arithmetic, so its vectors equal the ones
sentence-transformers computes from the same checkpoint. A plain BERT folder (no ``modules.json``)
is accepted too: it gets mean pooling, no normalisation, and truncation at the model's
``max_position_embeddings``, the most common choice and a reasonable default for any encoder.

Why mean pooling, rather than the [CLS] vector BERT classifiers use? The [CLS] vector of a model that
was never trained for similarity carries little meaning on its own; averaging every token keeps
information about all of them, and it is what most sentence-transformers checkpoints were trained with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minibert.checks import check_bool, check_int, check_positive_int, read_json
from minibert.errors import CheckpointError, ConfigError, InputError, InputTypeError
from minibert.checkpoints.hub import DEFAULT_CHECKPOINT, resolve
from minibert.model import BertModel
from minibert.fast.precision import set_precision
from minibert.progress import progress_bar

# The pooling modes, in the order their outputs are concatenated when a config switches on several
# (the order sentence-transformers uses, so multi-mode checkpoints give the same vector layout).
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len")
_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
}
# Keys a pooling config may switch on that minibert does not implement.
_UNSUPPORTED_POOLING_KEYS = ("pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")

Texts = Union[str, Sequence[str]]


# ------------------------------------------------------------------------------------------ pooling
def pool(hidden: Tensor, attention_mask: Tensor, mode: str) -> Tensor:
    """Reduce token vectors (b, t, c) to one vector per sequence (b, c), ignoring padding.

    ``attention_mask`` is (b, t) with 1 for real tokens and 0 for padding.
    """
    if mode not in POOLING_MODES:
        raise InputError(f"pooling mode must be one of {POOLING_MODES}, got {mode!r}")
    if mode == "cls":
        return hidden[:, 0]                                                  # (b, c)
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)                     # (b, t, 1)
    if mode == "max":
        # Padding must never win the max: give it a very negative value first.
        very_negative = torch.finfo(hidden.dtype).min
        return hidden.masked_fill(mask == 0, very_negative).max(dim=1).values  # (b, c)
    summed = (hidden * mask).sum(dim=1)                                      # (b, c)
    counts = mask.sum(dim=1).clamp(min=1e-9)                                 # (b, 1); never divide by 0
    if mode == "mean":
        return summed / counts
    return summed / counts.sqrt()                                            # mean_sqrt_len


def similarity(a: Any, b: Any) -> Tensor:
    """Cosine similarity of every row of ``a`` with every row of ``b``: (n, c), (m, c) -> (n, m).

    Accepts tensors, NumPy arrays or nested lists; a single vector (c,) counts as one row. The
    result is a float tensor; rows of zeros get similarity 0 instead of NaN.
    """
    a_rows, b_rows = _as_rows("a", a), _as_rows("b", b)
    if a_rows.shape[1] != b_rows.shape[1]:
        raise InputError(f"a and b must have the same vector size, got a with {a_rows.shape[1]} "
                         f"and b with {b_rows.shape[1]}")
    return F.normalize(a_rows, dim=1) @ F.normalize(b_rows, dim=1).T           # (n, m)


def _as_rows(name: str, value: Any) -> Tensor:
    try:
        rows = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputTypeError(f"{name} must be a tensor, array or list of numbers, got "
                             f"{type(value).__name__}") from exc
    if not (rows.is_floating_point() or rows.dtype in (torch.int32, torch.int64)):
        raise InputTypeError(f"{name} must hold numbers, got dtype {rows.dtype}")
    if rows.dim() == 1:
        rows = rows.unsqueeze(0)
    if rows.dim() != 2:
        raise InputError(f"{name} must be one vector (c,) or a matrix (n, c), got shape {tuple(rows.shape)}")
    return rows.float()  # one dtype for both sides; float32 is plenty for a cosine


# ------------------------------------------------------------------------------- reading the folder
@dataclass
class SentenceConfig:
    """What the sentence-transformers files say, with the defaults used when they are absent."""

    pooling_modes: tuple[str, ...] = ("mean",)
    normalize: bool = False
    max_seq_length: Optional[int] = None   # None: the model's max_position_embeddings
    do_lower_case: bool = False            # lower-case texts before the tokenizer sees them
    transformer_folder: str = ""           # where config.json/weights live, relative to the root


def _read_object(path: Path) -> dict[str, Any]:
    values = read_json(path)
    if not isinstance(values, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(values).__name__}")
    return values


def _inside(root: Path, relative: Any, where: Path) -> str:
    """``relative`` checked to name a place inside ``root``: a module path of ``../x``, an absolute
    path or a symlink out of the folder would load files the checkpoint does not contain."""
    if not isinstance(relative, str):
        raise CheckpointError(f"{where}: a module path must be a string, got {relative!r}")
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise CheckpointError(f"{where}: module path {relative!r} leads outside the model folder {root}; "
                              "refused (a checkpoint may only use its own files)")
    return relative


def read_sentence_config(folder: Path) -> SentenceConfig:
    """Read ``modules.json`` and the files it points to; a folder without it gets the defaults."""
    config = SentenceConfig()
    modules_path = folder / "modules.json"
    if modules_path.is_file():
        modules = read_json(modules_path)
        if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
            raise CheckpointError(f"{modules_path} must hold a JSON list of module objects, got {modules!r:.200}")
        pooling_folder = None
        for module in modules:
            kind = module.get("type", "")
            if not isinstance(kind, str):
                raise CheckpointError(f"{modules_path}: a module type must be a string, got {kind!r}")
            kind = kind.rsplit(".", 1)[-1]
            if kind == "Transformer":
                config.transformer_folder = _inside(folder, module.get("path", ""), modules_path)
            elif kind == "Pooling":
                pooling_folder = folder / _inside(folder, module.get("path", ""), modules_path)
            elif kind == "Normalize":
                config.normalize = True  # the module has no settings; its folder may not even exist
            else:
                raise ConfigError(f"{modules_path} lists a {module.get('type')!r} module, which minibert's "
                                  "SentenceEncoder does not implement (it supports Transformer, Pooling, Normalize)")
        if pooling_folder is not None and (pooling_folder / "config.json").is_file():
            config.pooling_modes = _read_pooling_modes(pooling_folder / "config.json")
    st_config_path = folder / config.transformer_folder / "sentence_bert_config.json"
    if st_config_path.is_file():
        values = _read_object(st_config_path)
        if values.get("max_seq_length") is not None:
            config.max_seq_length = check_int(f"{st_config_path}: max_seq_length", values["max_seq_length"],
                                              minimum=2, error=ConfigError, integral_float=True)
        config.do_lower_case = check_bool(f"{st_config_path}: do_lower_case", values.get("do_lower_case", False),
                                          error=ConfigError)
    return config


def _read_pooling_modes(path: Path) -> tuple[str, ...]:
    values = _read_object(path)
    switches = {key: check_bool(f"{path}: {key}", values[key], error=ConfigError)
                for key in (*_POOLING_KEYS, *_UNSUPPORTED_POOLING_KEYS) if values.get(key) is not None}
    for key in _UNSUPPORTED_POOLING_KEYS:
        if switches.get(key):
            raise ConfigError(f"{path} sets {key}=true, a pooling mode minibert does not implement; "
                              f"supported: {', '.join(_POOLING_KEYS)}")
    if "pooling_mode" in values and not any(k in values for k in _POOLING_KEYS):
        # A shorter spelling some configs use: "pooling_mode": "mean" / "cls" / "max" / "mean_sqrt_len_tokens".
        name = values["pooling_mode"]
        if isinstance(name, str):
            name = {"mean_tokens": "mean", "cls_token": "cls", "max_tokens": "max",
                    "mean_sqrt_len_tokens": "mean_sqrt_len"}.get(name, name)
        modes = (name,)
    else:
        modes = tuple(mode for key, mode in _POOLING_KEYS.items() if switches.get(key))
        modes = tuple(sorted(modes, key=POOLING_MODES.index))
    if not modes or any(m not in POOLING_MODES for m in modes):
        raise ConfigError(f"{path} switches on no supported pooling mode (got {values!r:.300}); "
                          f"expected one of {', '.join(_POOLING_KEYS)} set to true")
    return modes


# ----------------------------------------------------------------------------------------- encoder
class SentenceEncoder(nn.Module):
    """BERT encoder + pooling (+ optional L2 normalisation): texts in, one vector per text out.

        encoder = SentenceEncoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
        vectors = encoder.encode(["A cat sits.", "A dog runs."])   # (2, 384) NumPy array
        similarity(vectors, vectors)                              # (2, 2) cosine matrix
    """

    def __init__(self, model: BertModel, tokenizer: Any, pooling_modes: Sequence[str] = ("mean",),
                 normalize: bool = False, max_seq_length: Optional[int] = None, do_lower_case: bool = False,
                 precision: Optional[str] = None):
        """``precision`` ("auto", "fp32", "bf16", "int8"; see ``minibert.fast.precision``) converts the
        model; None leaves it as it is."""
        super().__init__()
        if not isinstance(model, BertModel):
            raise InputTypeError(f"model must be a minibert.BertModel, got {type(model).__name__}")
        if isinstance(pooling_modes, str):
            pooling_modes = (pooling_modes,)
        for mode in pooling_modes:
            if mode not in POOLING_MODES:
                raise InputError(f"pooling_modes must contain only {POOLING_MODES}, got {mode!r}")
        limit = model.config.max_position_embeddings
        if max_seq_length is None:
            max_seq_length = limit
        max_seq_length = check_int(f"max_seq_length (max_position_embeddings={limit})", max_seq_length,
                                   minimum=2, maximum=limit)
        self.model = model
        self.tokenizer = tokenizer
        self.pooling_modes = tuple(pooling_modes)
        self.normalize = bool(normalize)
        self.max_seq_length = max_seq_length
        self.do_lower_case = bool(do_lower_case)
        if precision is not None:
            set_precision(self.model, precision)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = DEFAULT_CHECKPOINT, precision: Optional[str] = None,
                        **model_kwargs: Any) -> "SentenceEncoder":
        """Load encoder, tokenizer and pooling settings from a local folder or a checkpoint name.

        ``precision="auto"`` picks the fastest accurate mode for this machine (``minibert.fast.precision``).
        Extra keyword arguments go to ``BertModel.from_pretrained`` (e.g. ``dtype``).
        """
        from minibert.tokenizer import BertTokenizer  # imported here: the tokenizer is only needed for text input

        root = resolve(name_or_path)
        if not root.is_dir():
            raise CheckpointError(f"SentenceEncoder needs a checkpoint folder (weights, config.json, vocab.txt), "
                                  f"got the file {root}")
        settings = read_sentence_config(root)
        folder = root / settings.transformer_folder
        model = BertModel.from_pretrained(folder, **model_kwargs)
        tokenizer = BertTokenizer.from_pretrained(folder)
        encoder = cls(model, tokenizer, settings.pooling_modes, settings.normalize,
                      settings.max_seq_length, settings.do_lower_case, precision)
        encoder.name_or_path = str(name_or_path)
        return encoder.eval()

    @property
    def embedding_size(self) -> int:
        """Length of each output vector: hidden size times the number of pooling modes."""
        return self.model.config.hidden_size * len(self.pooling_modes)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Optional[Tensor] = None,
                normalize: Optional[bool] = None) -> Tensor:
        """Token ids (b, t) -> sentence vectors (b, embedding_size). Differentiable, for training."""
        # unpad="auto": pooling is masked, so inference may skip the padding (zeros there instead).
        hidden = self.model(input_ids, attention_mask, token_type_ids, unpad="auto").last_hidden_state  # (b, t, c)
        pooled = torch.cat([pool(hidden, attention_mask, mode) for mode in self.pooling_modes], dim=-1)
        if self.normalize if normalize is None else normalize:
            pooled = F.normalize(pooled, p=2, dim=1)                                  # unit rows
        return pooled                                                                  # (b, c * modes)

    def encode(self, texts: Texts, batch_size: int = 32, normalize: Optional[bool] = None,
               convert_to_numpy: bool = True, convert_to_tensor: bool = False,
               show_progress_bar: bool = False) -> Any:
        """Embed texts: a list of n strings -> (n, embedding_size); one string -> (embedding_size,).

        Texts are run longest first, so that each batch holds texts of similar length and little
        padding; the rows come back in the order the texts were given. Texts longer than
        ``max_seq_length`` tokens are truncated. ``normalize=None`` follows the checkpoint (a
        Normalize module in ``modules.json``); True/False overrides it.

        The result is a NumPy array, or a tensor on the model's device with ``convert_to_tensor=True``
        (or ``convert_to_numpy=False``). An empty list gives an empty (0, embedding_size) result.
        """
        single = isinstance(texts, str)
        text_list = [texts] if single else self._check_texts(texts)
        batch_size = check_positive_int("batch_size", batch_size)
        if normalize is not None and not isinstance(normalize, bool):
            raise InputTypeError(f"normalize must be None, True or False, got {normalize!r}")

        # Longest first (character count is a cheap stand-in for token count).
        order = sorted(range(len(text_list)), key=lambda i: -len(text_list[i]))
        batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
        if show_progress_bar:
            batches = progress_bar(batches, desc="encode", unit="batch")

        chunks = []  # one (b, c) block per batch, in the longest-first order
        with torch.inference_mode():
            for batch_indices in batches:
                batch_texts = [text_list[i] for i in batch_indices]
                if self.do_lower_case:
                    batch_texts = [t.lower() for t in batch_texts]
                tokens = self.tokenizer(batch_texts, padding=True, truncation=True,
                                        max_length=self.max_seq_length, return_tensors="pt")
                ids = tokens["input_ids"].to(self.device)                              # (b, t)
                mask = tokens["attention_mask"].to(self.device)                        # (b, t)
                types = tokens["token_type_ids"].to(self.device) if "token_type_ids" in tokens else None
                chunks.append(self(ids, mask, types, normalize))
        if not chunks:
            sorted_vectors = torch.empty(0, self.embedding_size, dtype=self.model.dtype, device=self.device)
        else:
            sorted_vectors = torch.cat(chunks)                                         # (n, c), sorted order
        # Row k of sorted_vectors belongs to text order[k]; argsort(order) undoes the sort.
        vectors = sorted_vectors[torch.argsort(torch.tensor(order, dtype=torch.long, device=self.device))]

        result = vectors[0] if single else vectors                                     # (c,) or (n, c)
        if convert_to_tensor or not convert_to_numpy:
            return result.clone()  # outside inference mode: a normal tensor, usable in autograd later
        return result.float().cpu().numpy()

    @staticmethod
    def _check_texts(texts: Any) -> list[str]:
        if not isinstance(texts, (list, tuple)):
            raise InputTypeError(f"texts must be a string or a list of strings, got {type(texts).__name__}")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputTypeError(f"texts[{index}] must be a string, got {type(text).__name__}: {text!r}")
        return list(texts)

    def similarity(self, a: Any, b: Any) -> Tensor:
        """Cosine similarity matrix of two sets of vectors (see the module function ``similarity``)."""
        return similarity(a, b)

    def __repr__(self) -> str:
        return (f"SentenceEncoder(hidden={self.model.config.hidden_size}, pooling={'+'.join(self.pooling_modes)}, "
                f"normalize={self.normalize}, max_seq_length={self.max_seq_length})")
