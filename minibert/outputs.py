"""What the models return: dataclasses with transformers' attribute names.

``out.logits`` is the way to read them; ``out["logits"]`` and ``out[0]`` (the first field that is not
None, as in transformers) also work, so code written against transformers ports unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional

from torch import Tensor


@dataclass
class ModelOutput:
    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            return getattr(self, key)
        return self.to_tuple()[key]

    def __iter__(self):
        return iter(self.to_tuple())

    def __len__(self) -> int:
        return len(self.to_tuple())


def returned(out: ModelOutput, return_dict: Optional[bool]) -> Any:
    """What a forward hands back: the dataclass, or its tuple when the caller passed ``return_dict=False``."""
    return out.to_tuple() if return_dict is False else out


@dataclass
class BaseModelOutput(ModelOutput):
    last_hidden_state: Tensor                          # (b, t, c)
    pooler_output: Optional[Tensor] = None             # (b, c)
    hidden_states: Optional[tuple[Tensor, ...]] = None  # embeddings + one per layer, each (b, t, c)
    attentions: Optional[tuple[Tensor, ...]] = None     # one per layer, each (b, h, t, t)


@dataclass
class PreTrainingOutput(ModelOutput):
    loss: Optional[Tensor] = None
    prediction_logits: Optional[Tensor] = None         # (b, t, vocab), or (n_labelled, vocab) when sparse
    seq_relationship_logits: Optional[Tensor] = None   # (b, 2)
    hidden_states: Optional[tuple[Tensor, ...]] = None
    attentions: Optional[tuple[Tensor, ...]] = None


@dataclass
class MaskedLMOutput(ModelOutput):
    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None                    # (b, t, vocab)
    hidden_states: Optional[tuple[Tensor, ...]] = None
    attentions: Optional[tuple[Tensor, ...]] = None


@dataclass
class NextSentencePredictorOutput(ModelOutput):
    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None                    # (b, 2): 0 = B follows A, 1 = B is random
    hidden_states: Optional[tuple[Tensor, ...]] = None
    attentions: Optional[tuple[Tensor, ...]] = None


@dataclass
class SequenceClassifierOutput(ModelOutput):
    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None                    # (b, num_labels)
    hidden_states: Optional[tuple[Tensor, ...]] = None
    attentions: Optional[tuple[Tensor, ...]] = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None                    # (b, t, num_labels)
    hidden_states: Optional[tuple[Tensor, ...]] = None
    attentions: Optional[tuple[Tensor, ...]] = None


@dataclass
class QuestionAnsweringOutput(ModelOutput):
    loss: Optional[Tensor] = None
    start_logits: Optional[Tensor] = None              # (b, t)
    end_logits: Optional[Tensor] = None                # (b, t)
    hidden_states: Optional[tuple[Tensor, ...]] = None
    attentions: Optional[tuple[Tensor, ...]] = None


@dataclass
class MultipleChoiceOutput(ModelOutput):
    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None                    # (b, n_choices)
    hidden_states: Optional[tuple[Tensor, ...]] = None
    attentions: Optional[tuple[Tensor, ...]] = None
