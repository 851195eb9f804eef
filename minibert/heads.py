"""Task heads on top of ``BertModel``. Each is a small module plus the loss transformers uses for it.

Labels equal to -100 are ignored by every cross-entropy loss here (PyTorch's default ignore_index),
which is how masked-LM marks the positions that carry no prediction.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minibert.config import BertConfig
from minibert.inputs import (check_choice_inputs, check_choice_labels, check_class_labels, check_sequence_labels,
                             check_span_positions, problem_type)
from minibert.fast import UnpadMode
from minibert.model import BertModel, BertPreTrainedModel, activation
from minibert.outputs import (BaseModelOutput, MaskedLMOutput, MultipleChoiceOutput, NextSentencePredictorOutput,
                              PreTrainingOutput, QuestionAnsweringOutput, SequenceClassifierOutput,
                              TokenClassifierOutput, returned)


class MaskedLMHead(nn.Module):
    """transform (dense -> act -> LayerNorm), then a decoder that shares the word-embedding matrix.

    Tying input and output embeddings is BERT's choice: the decoder has no matrix of its own, only
    a per-word bias.
    """

    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.transform = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = activation(config.hidden_act)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.decoder.weight = word_embeddings.weight  # tied
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: Tensor) -> Tensor:
        hidden = self.norm(self.act(self.transform(hidden)))  # (..., c)
        if type(self.decoder) is nn.Linear:
            # The bias goes in with the matmul (addmm's C = bias + hidden Wᵀ): one pass over the
            # (..., v) logits, the largest tensor of pre-training, instead of a second one to add it.
            return F.linear(hidden, self.decoder.weight, self.bias)  # (..., v)
        return self.decoder(hidden) + self.bias  # a quantized or wrapped decoder computes its own weight


def _mlm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy over the labelled positions (labels != -100). The same value as over every
    position with -100 ignored, without a log-softmax over the ~85% of rows nobody is scored on."""
    labels = labels.reshape(-1)
    labelled = labels != -100                                            # (b t,)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1])[labelled], labels[labelled])


def classifier_dropout(config: BertConfig) -> nn.Dropout:
    """The dropout before a classifier: ``classifier_dropout`` if set, else the hidden dropout."""
    p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
    return nn.Dropout(p)


class BertHeadModel(BertPreTrainedModel):
    """What every head model shares: the encoder under ``bert`` (transformers' name, so checkpoints
    match), built without its own initialisation: the head model draws every weight once, at the end
    of its ``__init__``."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer, init=False)

    def encode(self, input_ids: Tensor, attention_mask: Optional[Tensor], token_type_ids: Optional[Tensor],
               position_ids: Optional[Tensor], output_attentions: bool, output_hidden_states: bool,
               unpad: UnpadMode) -> BaseModelOutput:
        """The encoder's forward for a head; each head checks its labels before calling it."""
        return self.bert(input_ids, attention_mask, token_type_ids, position_ids, output_attentions=output_attentions,
                         output_hidden_states=output_hidden_states, unpad=unpad)


class BertForPreTraining(BertHeadModel):
    """BERT's two pre-training objectives at once: masked LM on every position, NSP on the pooled [CLS].

    ``sparse_mlm=True`` runs the MLM head only at labelled positions (the ~15% that carry a label),
    as Google's code does with ``gather_indexes``; the loss is the same, ``prediction_logits`` then
    has shape (n_labelled, v). The default keeps transformers' dense (b, t, v) output.
    """

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.mlm = MaskedLMHead(config, self.bert.embeddings.word)
        self.nsp = nn.Linear(config.hidden_size, 2)
        self.init_weights()

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                token_type_ids: Optional[Tensor] = None, position_ids: Optional[Tensor] = None,
                labels: Optional[Tensor] = None, next_sentence_label: Optional[Tensor] = None,
                output_attentions: bool = False, output_hidden_states: bool = False,
                sparse_mlm: bool = False, return_dict: Optional[bool] = None,
                unpad: UnpadMode = False) -> PreTrainingOutput:
        labels = check_class_labels("labels", labels, input_ids, self.config.vocab_size, True, "vocab_size")
        next_sentence_label = check_class_labels("next_sentence_label", next_sentence_label, input_ids, 2,
                                                 bound_name=None)
        enc = self.encode(input_ids, attention_mask, token_type_ids, position_ids,
                          output_attentions, output_hidden_states, unpad)
        hidden = enc.last_hidden_state                                       # (b, t, c)
        if sparse_mlm and labels is not None:
            labelled = labels != -100                                        # (b, t)
            prediction_logits = self.mlm(hidden[labelled])                   # (n, v)
            mlm_targets = labels[labelled]                                   # (n,)
        else:
            prediction_logits = self.mlm(hidden)                             # (b, t, v)
            mlm_targets = labels
        seq_relationship_logits = self.nsp(enc.pooler_output)                # (b, 2)

        loss = None
        if labels is not None:
            loss = _mlm_loss(prediction_logits, mlm_targets)
        if next_sentence_label is not None:
            nsp_loss = F.cross_entropy(seq_relationship_logits, next_sentence_label.reshape(-1))
            loss = nsp_loss if loss is None else loss + nsp_loss
        out = PreTrainingOutput(loss, prediction_logits, seq_relationship_logits, enc.hidden_states, enc.attentions)
        return returned(out, return_dict)


class BertForMaskedLM(BertHeadModel):
    """Masked-LM alone (no pooler, no NSP): a distribution over the vocabulary at every position."""
    def __init__(self, config: BertConfig):
        super().__init__(config, add_pooling_layer=False)
        self.mlm = MaskedLMHead(config, self.bert.embeddings.word)
        self.init_weights()

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                token_type_ids: Optional[Tensor] = None, position_ids: Optional[Tensor] = None,
                labels: Optional[Tensor] = None, output_attentions: bool = False,
                output_hidden_states: bool = False, return_dict: Optional[bool] = None,
                unpad: UnpadMode = False) -> MaskedLMOutput:
        labels = check_class_labels("labels", labels, input_ids, self.config.vocab_size, True, "vocab_size")
        enc = self.encode(input_ids, attention_mask, token_type_ids, position_ids,
                          output_attentions, output_hidden_states, unpad)
        logits = self.mlm(enc.last_hidden_state)  # (b, t, v)
        loss = None
        if labels is not None:
            loss = _mlm_loss(logits, labels)
        out = MaskedLMOutput(loss, logits, enc.hidden_states, enc.attentions)
        return returned(out, return_dict)


class BertForNextSentencePrediction(BertHeadModel):
    """NSP alone: does segment B follow segment A? Logits (b, 2), label 0 = it follows, 1 = random."""
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.nsp = nn.Linear(config.hidden_size, 2)
        self.init_weights()

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                token_type_ids: Optional[Tensor] = None, position_ids: Optional[Tensor] = None,
                labels: Optional[Tensor] = None, output_attentions: bool = False,
                output_hidden_states: bool = False, return_dict: Optional[bool] = None,
                unpad: UnpadMode = "auto") -> NextSentencePredictorOutput:
        labels = check_class_labels("labels", labels, input_ids, 2, bound_name=None)
        enc = self.encode(input_ids, attention_mask, token_type_ids, position_ids,
                          output_attentions, output_hidden_states, unpad)
        logits = self.nsp(enc.pooler_output)  # (b, 2)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits, labels.reshape(-1))
        out = NextSentencePredictorOutput(loss, logits, enc.hidden_states, enc.attentions)
        return returned(out, return_dict)


def classification_loss(config: BertConfig, logits: Tensor, labels: Tensor) -> Tensor:
    """The loss transformers picks (``inputs.problem_type``) for labels ``check_sequence_labels`` has
    checked: mean squared error, cross-entropy, or binary cross-entropy (multi-label)."""
    problem = problem_type(config, labels)
    if problem == "regression":
        return F.mse_loss(logits.reshape(labels.shape), labels.to(logits.dtype))  # (b,) or (b, n)
    if problem == "single_label_classification":
        return F.cross_entropy(logits, labels)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class BertForSequenceClassification(BertHeadModel):
    """Dropout and a linear layer on the pooled [CLS] vector: one score per label."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.dropout = classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                token_type_ids: Optional[Tensor] = None, position_ids: Optional[Tensor] = None,
                labels: Optional[Tensor] = None, output_attentions: bool = False,
                output_hidden_states: bool = False, return_dict: Optional[bool] = None,
                unpad: UnpadMode = "auto") -> SequenceClassifierOutput:
        labels = check_sequence_labels(self.config, labels, input_ids)
        enc = self.encode(input_ids, attention_mask, token_type_ids, position_ids,
                          output_attentions, output_hidden_states, unpad)
        logits = self.classifier(self.dropout(enc.pooler_output))  # (b, num_labels)
        loss = classification_loss(self.config, logits, labels) if labels is not None else None
        out = SequenceClassifierOutput(loss, logits, enc.hidden_states, enc.attentions)
        return returned(out, return_dict)


class BertForTokenClassification(BertHeadModel):
    """One score per label at every position (NER, tagging); labels -100 mark positions to skip."""

    def __init__(self, config: BertConfig):
        super().__init__(config, add_pooling_layer=False)
        self.num_labels = config.num_labels
        self.dropout = classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                token_type_ids: Optional[Tensor] = None, position_ids: Optional[Tensor] = None,
                labels: Optional[Tensor] = None, output_attentions: bool = False,
                output_hidden_states: bool = False, return_dict: Optional[bool] = None,
                unpad: UnpadMode = False) -> TokenClassifierOutput:
        labels = check_class_labels("labels", labels, input_ids, self.num_labels, per_token=True)
        enc = self.encode(input_ids, attention_mask, token_type_ids, position_ids,
                          output_attentions, output_hidden_states, unpad)
        logits = self.classifier(self.dropout(enc.last_hidden_state))  # (b, t, num_labels)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, self.num_labels), labels.reshape(-1), ignore_index=-100)
        out = TokenClassifierOutput(loss, logits, enc.hidden_states, enc.attentions)
        return returned(out, return_dict)


class BertForQuestionAnswering(BertHeadModel):
    """Extractive QA: a start score and an end score at every position (SQuAD-style spans)."""

    def __init__(self, config: BertConfig):
        super().__init__(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.init_weights()

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                token_type_ids: Optional[Tensor] = None, position_ids: Optional[Tensor] = None,
                start_positions: Optional[Tensor] = None, end_positions: Optional[Tensor] = None,
                output_attentions: bool = False, output_hidden_states: bool = False,
                return_dict: Optional[bool] = None,
                unpad: UnpadMode = False) -> QuestionAnsweringOutput:
        start_positions = check_span_positions("start_positions", start_positions, input_ids)
        end_positions = check_span_positions("end_positions", end_positions, input_ids)
        enc = self.encode(input_ids, attention_mask, token_type_ids, position_ids,
                          output_attentions, output_hidden_states, unpad)
        start_logits, end_logits = self.qa_outputs(enc.last_hidden_state).unbind(dim=-1)  # (b, t) each
        loss = None
        if start_positions is not None and end_positions is not None:
            # Positions past the sequence are clamped to t and ignored, as in transformers.
            t = start_logits.shape[1]
            start = start_positions.reshape(-1).clamp(0, t)
            end = end_positions.reshape(-1).clamp(0, t)
            loss = (F.cross_entropy(start_logits, start, ignore_index=t)
                    + F.cross_entropy(end_logits, end, ignore_index=t)) / 2
        out = QuestionAnsweringOutput(loss, start_logits.contiguous(), end_logits.contiguous(),
                                      enc.hidden_states, enc.attentions)
        return returned(out, return_dict)


class BertForMultipleChoice(BertHeadModel):
    """Inputs (b, n_choices, t): each choice is encoded on its own, scored by one linear unit."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.dropout = classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.init_weights()

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                token_type_ids: Optional[Tensor] = None, position_ids: Optional[Tensor] = None,
                labels: Optional[Tensor] = None, output_attentions: bool = False,
                output_hidden_states: bool = False, return_dict: Optional[bool] = None,
                unpad: UnpadMode = "auto") -> MultipleChoiceOutput:
        b, n, t = check_choice_inputs(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                      position_ids=position_ids)
        labels = check_choice_labels(labels, input_ids)

        def flat(x: Optional[Tensor]) -> Optional[Tensor]:
            return None if x is None else x.reshape(b * n, -1)  # (b, n, t) -> (b n, t)

        enc = self.encode(flat(input_ids), flat(attention_mask), flat(token_type_ids), flat(position_ids),
                          output_attentions, output_hidden_states, unpad)
        logits = self.classifier(self.dropout(enc.pooler_output)).reshape(b, n)  # (b, n)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits, labels.reshape(-1))
        out = MultipleChoiceOutput(loss, logits, enc.hidden_states, enc.attentions)
        return returned(out, return_dict)
