"""minibert: BERT in pure PyTorch, written to be read, and equal to transformers number for number.

    import minibert
    tok = minibert.BertTokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    model = minibert.BertModel.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")

Everything loads from local files only; see ``minibert.checkpoints.hub`` for how names resolve.
"""

from minibert.attention import MultiHeadAttention, scaled_dot_product_attention
from minibert.checkpoints.hf import LoadReport
from minibert.config import BertConfig
from minibert.errors import (CheckpointError, CheckpointNotFoundError, ConfigError, InputError, InputTypeError,
                     MinibertError, TrainingError)
from minibert.heads import (BertForMaskedLM, BertForMultipleChoice, BertForNextSentencePrediction, BertForPreTraining,
                    BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification)
from minibert.checkpoints.hub import DEFAULT_CHECKPOINT, FILL_MASK_CHECKPOINT, resolve
from minibert.model import BertModel, BertPreTrainedModel
from minibert.sentence import SentenceEncoder
from minibert.tokenizer import BasicTokenizer, BatchEncoding, BertTokenizer, WordpieceTokenizer

__version__ = "0.1.0"

__all__ = [
    "BertConfig", "BertModel", "BertPreTrainedModel", "BertForPreTraining", "BertForMaskedLM",
    "BertForNextSentencePrediction", "BertForSequenceClassification", "BertForTokenClassification",
    "BertForQuestionAnswering", "BertForMultipleChoice", "MultiHeadAttention", "scaled_dot_product_attention",
    "BertTokenizer", "BasicTokenizer", "WordpieceTokenizer", "BatchEncoding", "SentenceEncoder",
    "LoadReport", "DEFAULT_CHECKPOINT", "FILL_MASK_CHECKPOINT", "resolve", "MinibertError", "ConfigError", "InputError",
    "InputTypeError", "CheckpointError", "CheckpointNotFoundError", "TrainingError",
]
