"""The model's hyper-parameters, with Hugging Face's field names so ``config.json`` maps one to one."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from minibert.checks import check_positive_int
from minibert.errors import CheckpointError, ConfigError

# hidden_act -> the activation it names. "gelu" is the exact (erf) form, as in HF; Google's original
# checkpoints computed the tanh approximation, which HF calls "gelu_new".
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish")

# Keys of config.json that describe the file or another library's runtime, not the model: read and
# dropped, never reported as unknown.
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
    num_labels: int = 2
    classifier_dropout: Optional[float] = None
    position_embedding_type: str = "absolute"
    problem_type: Optional[str] = None  # regression / single_label_classification / multi_label_classification
    id2label: Optional[dict[int, str]] = None
    label2id: Optional[dict[str, int]] = None
    architectures: Optional[list[str]] = None
    # Keys of config.json that minibert does not use, kept so that saving writes them back.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.id2label is not None:
            # JSON object keys are strings; HF writes {"0": "NEG", ...}. The label count follows them.
            try:
                self.id2label = {int(k): str(v) for k, v in dict(self.id2label).items()}
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"id2label must map integer ids to names, got {self.id2label!r}") from exc
            self.num_labels = len(self.id2label)
        if self.label2id is not None:
            self.label2id = {str(k): int(v) for k, v in dict(self.label2id).items()}
        self.validate()

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first impossible field."""
        positive = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "max_position_embeddings", "type_vocab_size")
        for name in (*positive, "num_labels"):
            setattr(self, name, check_positive_int(f"config.{name}", getattr(self, name), error=ConfigError))
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"config.hidden_size ({self.hidden_size}) must be a multiple of "
                f"config.num_attention_heads ({self.num_attention_heads})"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(f"config.hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            value = getattr(self, name)
            if value is None and name == "classifier_dropout":
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
                raise ConfigError(f"config.{name} must be a probability in [0, 1), got {value!r}")
        for name in ("initializer_range", "layer_norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"config.{name} must be a positive number, got {value!r}")
        if self.pad_token_id is not None and not (
            isinstance(self.pad_token_id, int) and 0 <= self.pad_token_id < self.vocab_size
        ):
            raise ConfigError(
                f"config.pad_token_id must be an id in [0, vocab_size={self.vocab_size}), got {self.pad_token_id!r}"
            )
        if self.position_embedding_type != "absolute":
            raise ConfigError(
                f"config.position_embedding_type={self.position_embedding_type!r} is not supported: "
                "minibert implements absolute position embeddings only"
            )
        problems = (None, "regression", "single_label_classification", "multi_label_classification")
        if self.problem_type not in problems:
            raise ConfigError(f"config.problem_type must be one of {problems}, got {self.problem_type!r}")

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
        known = {k: v for k, v in merged.items() if k in names}
        extra = {k: v for k, v in merged.items() if k not in names and k not in _IGNORED_KEYS}
        if "num_labels" in overrides and "id2label" not in overrides:
            # An explicit num_labels wins over the checkpoint's label names.
            if known.get("id2label") is not None and len(known["id2label"]) != overrides["num_labels"]:
                known["id2label"] = known["label2id"] = None
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
        return {k: v for k, v in out.items() if v is not None or k == "classifier_dropout"}

    @classmethod
    def from_json_file(cls, path: str | os.PathLike, **overrides: Any) -> "BertConfig":
        path = Path(path)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(f"config file not found: {path}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path} is not valid JSON ({exc}); a BERT config.json is expected") from None
        return cls.from_dict(values, **overrides)

    def to_json_file(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
