"""The model's hyper-parameters, with Hugging Face's field names so ``config.json`` maps one to one."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from minibert.checks import check_fits_in_memory, check_int, check_number, check_positive_int, read_json
from minibert.errors import ConfigError

# hidden_act -> the activation it names. "gelu" is the exact (erf) form, as in HF; Google's original
# checkpoints computed the tanh approximation, which HF calls "gelu_new".
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish")

# Keys of config.json that describe the file or another library's runtime, not the model: read and
# dropped, never reported as unknown.
PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")

# The fields each group of parameter_counts() grows with, named when a config cannot fit in memory.
_GROUP_FIELDS = {
    "word embeddings": ("vocab_size", "hidden_size"),
    "position embeddings": ("max_position_embeddings", "hidden_size"),
    "token type embeddings": ("type_vocab_size", "hidden_size"),
    "encoder layers": ("num_hidden_layers", "hidden_size", "intermediate_size"),
    "pooler and MLM transform": ("hidden_size",),
    "classifier": ("num_labels", "hidden_size"),
}

_IGNORED_KEYS = {"model_type", "transformers_version", "_name_or_path", "torch_dtype", "dtype"}


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    num_labels: Optional[int] = None  # None: len(id2label), else 2; an explicit value wins, as in HF
    classifier_dropout: Optional[float] = None
    position_embedding_type: str = "absolute"
    problem_type: Optional[str] = None  # regression / single_label_classification / multi_label_classification
    id2label: Optional[dict[int, str]] = None
    label2id: Optional[dict[str, int]] = None
    architectures: Optional[list[str]] = None
    # Keys of config.json that minibert does not use, kept so that saving writes them back.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._resolve_labels()
        self.validate()

    def _resolve_labels(self) -> None:
        """num_labels, id2label and label2id made consistent the way transformers does it: label names
        set the count when no count is given; an explicit count that disagrees with them wins, and
        the names fall back to LABEL_0..LABEL_{n-1}."""
        if self.id2label is not None:
            if not isinstance(self.id2label, dict):
                raise ConfigError(f"config.id2label must map ids to label names, got {self.id2label!r}")
            ids = {}
            for key, name in self.id2label.items():
                # JSON object keys are strings: HF writes {"0": "NEG", ...}.
                if isinstance(key, bool) or not isinstance(key, (int, str)) or not str(key).lstrip("-").isdigit():
                    raise ConfigError(f"config.id2label keys must be integer ids, got {key!r}")
                if not isinstance(name, str):
                    raise ConfigError(f"config.id2label[{key!r}] must be a label name (a string), got {name!r}")
                ids[int(key)] = name
            if sorted(ids) != list(range(len(ids))):
                raise ConfigError(f"config.id2label keys must be the ids 0..{len(ids) - 1}, got {sorted(ids)}")
            self.id2label = ids
            if self.num_labels is None:
                self.num_labels = len(ids)
            elif self.num_labels != len(ids):
                self.id2label = self.label2id = None  # transformers: "num_labels=... is incompatible"; count wins
        if self.num_labels is None:
            self.num_labels = 2
        if self.label2id is not None:
            if not isinstance(self.label2id, dict):
                raise ConfigError(f"config.label2id must map label names to ids, got {self.label2id!r}")
            for name, index in self.label2id.items():
                if isinstance(index, bool) or not isinstance(index, int):
                    raise ConfigError(f"config.label2id[{name!r}] must be an integer id, got {index!r}")
            self.label2id = {str(name): index for name, index in self.label2id.items()}

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first impossible field: its type, its range, then whether
        the model it describes can fit in this machine's memory at all."""
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size", "num_labels"):
            setattr(self, name, check_positive_int(f"config.{name}", getattr(self, name), error=ConfigError))
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"config.hidden_size ({self.hidden_size}) must be a multiple of "
                f"config.num_attention_heads ({self.num_attention_heads})"
            )
        for name, choices in (("hidden_act", ACTIVATIONS), ("position_embedding_type", ("absolute",)),
                              ("problem_type", PROBLEM_TYPES)):
            value = getattr(self, name)
            if not (value is None or isinstance(value, str)) or value not in choices:
                raise ConfigError(f"config.{name} must be one of {choices}, got {value!r}"
                                  + (" (minibert implements absolute position embeddings only)"
                                     if name == "position_embedding_type" else ""))
        if self.problem_type == "single_label_classification" and self.num_labels == 1:
            raise ConfigError("config.problem_type='single_label_classification' needs num_labels >= 2 (as in "
                              "transformers); use num_labels=2 for a binary task or problem_type='regression'")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            if getattr(self, name) is not None or name != "classifier_dropout":
                setattr(self, name, check_number(f"config.{name}", getattr(self, name), minimum=0, maximum=1,
                                                 exclusive_maximum=True, error=ConfigError))
        # Both bounded above too: a std of 1e300 draws infinite weights, an eps of 1e300 erases every
        # activation; neither is a model.
        self.initializer_range = check_number("config.initializer_range", self.initializer_range, minimum=0,
                                              maximum=1, exclusive_minimum=True, error=ConfigError)
        self.layer_norm_eps = check_number("config.layer_norm_eps", self.layer_norm_eps, minimum=0, maximum=1,
                                           exclusive_minimum=True, error=ConfigError)
        if self.pad_token_id is not None:
            self.pad_token_id = check_int(f"config.pad_token_id (an id below vocab_size={self.vocab_size})",
                                          self.pad_token_id, minimum=0,
                                          maximum=self.vocab_size - 1, error=ConfigError)
        if self.label2id is not None:
            for name, index in self.label2id.items():
                if not 0 <= index < self.num_labels:
                    raise ConfigError(f"config.label2id[{name!r}]={index} is not a label id in "
                                      f"[0, num_labels={self.num_labels})")
        if self.architectures is not None and (
                not isinstance(self.architectures, list) or not all(isinstance(a, str) for a in self.architectures)):
            raise ConfigError(f"config.architectures must be a list of class names, got {self.architectures!r}")
        if not isinstance(self.extra, dict):
            raise ConfigError(f"config.extra must be a dict, got {type(self.extra).__name__}")
        counts = self.parameter_counts()
        largest = max(counts, key=counts.get)
        fields = ", ".join(f"{name}={getattr(self, name)}" for name in _GROUP_FIELDS[largest])
        check_fits_in_memory(f"config.{fields} ({largest}: {counts[largest]:.3g} parameters; "
                             f"{sum(counts.values()):.3g} in all, float32)", 4 * sum(counts.values()),
                             error=ConfigError)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters of the largest model this config builds (encoder, pooler, MLM head and a
        classifier), by group. Exact integers, computed before anything is allocated."""
        c, i, layers = self.hidden_size, self.intermediate_size, self.num_hidden_layers
        per_layer = (3 * c * c + 3 * c) + (c * c + c) + (c * i + i) + (i * c + c) + 4 * c  # qkv, out, ffn, 2 norms
        return {
            "word embeddings": self.vocab_size * c + self.vocab_size,   # + the MLM output bias
            "position embeddings": self.max_position_embeddings * c,
            "token type embeddings": self.type_vocab_size * c,
            "encoder layers": layers * per_layer,
            "pooler and MLM transform": 2 * (c * c + c) + 4 * c,        # + the two LayerNorms
            "classifier": (self.num_labels + 2) * (c + 1),                # + NSP's two classes
        }

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    # ----------------------------------------------------------------------------------- dict / JSON
    @classmethod
    def from_dict(cls, values: dict[str, Any], **overrides: Any) -> "BertConfig":
        if not isinstance(values, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(values).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        merged = {**values, **overrides}
        if "id2label" in overrides and "num_labels" not in overrides:
            merged.pop("num_labels", None)  # new label names set the count (a stale count must not win)
        known = {k: v for k, v in merged.items() if k in names}
        extra = {k: v for k, v in merged.items() if k not in names and k not in _IGNORED_KEYS}
        try:
            return cls(**known, extra=extra)
        except TypeError as exc:
            raise ConfigError(f"invalid config: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out.update(self.extra)
        # Written so that transformers derives the same label count: it reads num_labels from id2label.
        id2label = self.id2label or {i: f"LABEL_{i}" for i in range(self.num_labels)}
        out["id2label"] = {str(i): name for i, name in id2label.items()}
        out["label2id"] = self.label2id or {name: i for i, name in id2label.items()}
        out["model_type"] = "bert"
        del out["num_labels"]  # as transformers writes it: the count is len(id2label)
        # None is written where it means something other than the default (no padding id, no
        # separate classifier dropout), so that a save/load round trip keeps it.
        return {k: v for k, v in out.items() if v is not None or k in ("classifier_dropout", "pad_token_id")}

    @classmethod
    def from_json_file(cls, path: str | os.PathLike, **overrides: Any) -> "BertConfig":
        values = read_json(Path(path))
        if not isinstance(values, dict):
            raise ConfigError(f"{path} must hold a JSON object (a BERT config), got {type(values).__name__}")
        return cls.from_dict(values, **overrides)

    def to_json_file(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
