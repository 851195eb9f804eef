"""BERT's WordPiece tokenizer, written from the rules up, id for id with the reference.

A BERT model only ever sees integers, so the tokenizer decides what the model can learn from a
text. The checkpoints minibert loads were trained with one particular tokenizer (Google's
original, which transformers' pure-Python ``BertTokenizer`` reproduces); any deviation, however
small, hands the model ids it never saw in that context. Hence the aim of *exact* agreement.

Read it in this order:

* ``rules.py``: the rules as plain code (basic tokenization, then greedy longest-match
  WordPiece), with the span of the original text carried along for every character;
* ``fast.py``: the same answers fast (words cut by C routines, each word's result cached), held
  equal to the rules by a property test over arbitrary Unicode;
* ``encoding.py``: pairs, truncation, special tokens, padding, tensors, ``BatchEncoding``;
* ``files.py``: ``vocab.txt`` and the side files, every value checked;
* ``bert.py``: ``BertTokenizer``, which puts them together.
"""

from minibert.tokenizer.bert import BertTokenizer
from minibert.tokenizer.encoding import BatchEncoding
from minibert.tokenizer.rules import BasicTokenizer, WordpieceTokenizer

__all__ = ["BasicTokenizer", "WordpieceTokenizer", "BertTokenizer", "BatchEncoding"]
