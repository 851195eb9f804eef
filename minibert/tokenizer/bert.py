"""``BertTokenizer``: a vocabulary, the rules (``rules.py``, run fast by ``fast.py``) and the encoding
options (``encoding.py``) behind the interface transformers users know."""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from minibert.errors import CheckpointError, CheckpointNotFoundError, InputError, InputTypeError
from minibert.tokenizer.encoding import (
    BatchEncoding,
    EncodingOptions,
    assemble,
    build_row,
    check_inputs,
    resolve_options,
)
from minibert.tokenizer.fast import IDS, FastTokenizer
from minibert.tokenizer.files import (
    SPECIAL_NAMES,
    check_bool,
    check_length,
    check_special_token,
    check_strip_accents,
    read_tokenizer_configs,
    read_vocab,
)
from minibert.tokenizer.rules import BasicTokenizer, Piece, WordpieceTokenizer, _check_text

__all__ = ["BertTokenizer"]

# The spaces BERT put before punctuation and inside English contractions, taken out by decode().
_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


class BertTokenizer:
    """BERT's WordPiece tokenizer: text in, ``input_ids`` / ``token_type_ids`` / ``attention_mask`` out.

    Args:
        vocab_file: a ``vocab.txt``, one token per line; the line number is the id.
        do_lower_case: lowercase words before WordPiece (uncased checkpoints).
        tokenize_chinese_chars: make every CJK ideograph a word of its own.
        strip_accents: ``None`` = strip accents iff lowercasing; ``True``/``False`` force it.
        model_max_length: the longest sequence the model accepts; the default for truncation and
            ``padding="max_length"``, and the length above which a warning is issued.
        never_split: extra words to keep whole (special tokens always are).

    Vocabulary files are read as the reference reads them: a blank line is an (unreachable) token,
    so later ids stay put; if a token appears twice, its *last* line wins when encoding (with a
    warning), while decoding still maps every id to its own line. A vocabulary that lacks one of
    the five special tokens is rejected with :class:`~minibert.errors.CheckpointError`.
    """

    def __init__(
        self,
        vocab_file: Union[str, os.PathLike],
        do_lower_case: bool = True,
        tokenize_chinese_chars: bool = True,
        strip_accents: Optional[bool] = None,
        model_max_length: int = 512,
        *,
        never_split: Optional[Iterable[str]] = None,
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        padding_side: str = "right",
        clean_up_tokenization_spaces: bool = True,
    ):
        if not isinstance(vocab_file, (str, os.PathLike)):
            raise InputTypeError(f"vocab_file must be a str or os.PathLike, got {type(vocab_file).__name__}")
        if padding_side not in ("right", "left"):
            raise InputError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        self.do_lower_case = check_bool("do_lower_case", do_lower_case)
        self.tokenize_chinese_chars = check_bool("tokenize_chinese_chars", tokenize_chinese_chars)
        self.strip_accents = check_strip_accents(strip_accents)
        self.clean_up_tokenization_spaces = check_bool("clean_up_tokenization_spaces", clean_up_tokenization_spaces)
        self.model_max_length = check_length("model_max_length", model_max_length)
        self.padding_side = padding_side
        specials = dict(unk_token=unk_token, sep_token=sep_token, pad_token=pad_token, cls_token=cls_token,
                        mask_token=mask_token)
        for name, token in specials.items():
            setattr(self, name, check_special_token(name, token))
        self.vocab_file = Path(vocab_file)
        if not self.vocab_file.is_file():
            raise CheckpointNotFoundError(f"vocabulary file not found: {self.vocab_file}")
        self._read_vocab()
        for name in SPECIAL_NAMES:
            setattr(self, name + "_id", self.vocab[getattr(self, name)])

        self.basic_tokenizer = BasicTokenizer(self.do_lower_case, never_split, self.tokenize_chinese_chars,
                                              self.strip_accents)
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab, self.unk_token)
        self.all_special_tokens = [cls_token, sep_token, pad_token, unk_token, mask_token]
        self.all_special_ids = [self.vocab[t] for t in self.all_special_tokens]
        self._special_id_set = frozenset(self.all_special_ids)
        self._resolved: dict = {}  # options of recent calls -> EncodingOptions
        self._fast = FastTokenizer(self.basic_tokenizer, self.wordpiece_tokenizer, self.all_special_tokens,
                                   self.vocab, self.unk_token_id)

    def _read_vocab(self) -> None:
        """``ids_to_tokens`` (line by line) and ``vocab`` (last line wins), checked for the special tokens."""
        self.ids_to_tokens: List[str] = read_vocab(self.vocab_file)
        self.vocab = {token: index for index, token in enumerate(self.ids_to_tokens)}
        if len(self.vocab) != len(self.ids_to_tokens):
            dupes = [token for token, n in Counter(self.ids_to_tokens).items() if n > 1]
            warnings.warn(f"vocabulary {self.vocab_file} lists {len(dupes)} token(s) more than once "
                          f"(e.g. {dupes[:3]!r}); encoding uses the last occurrence, as transformers does",
                          stacklevel=3)
        missing = [f"{name}={getattr(self, name)!r}" for name in SPECIAL_NAMES if getattr(self, name) not in self.vocab]
        if missing:
            raise CheckpointError(
                f"vocabulary {self.vocab_file} has no entry for {', '.join(missing)}; "
                "a BERT vocabulary needs all five special tokens (pass the right names if they differ)"
            )

    # -- files ----------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, name_or_path: Union[str, os.PathLike], **overrides) -> "BertTokenizer":
        """Load from a checkpoint folder, a ``vocab.txt``, or a checkpoint name (see :func:`minibert.checkpoints.hub.resolve`).

        ``tokenizer_config.json`` (and ``special_tokens_map.json``) next to the vocabulary supply
        ``do_lower_case``, ``strip_accents``, ``tokenize_chinese_chars``, ``model_max_length``,
        ``never_split``, ``padding_side`` and the special tokens, each checked (an error names the
        file, the field and the value); keyword arguments override them. A ``model_max_length`` of
        transformers' "unlimited" sentinel falls back to 512.
        """
        from minibert.checkpoints.hub import resolve

        path = resolve(name_or_path)
        if path.is_file():
            folder = path.parent
            vocab_file = path if path.suffix == ".txt" else folder / "vocab.txt"
        else:
            folder, vocab_file = path, path / "vocab.txt"
        if not vocab_file.is_file():
            raise CheckpointNotFoundError(f"no vocab.txt for {name_or_path!r} (looked for {vocab_file})")
        kwargs = read_tokenizer_configs(folder)
        kwargs.update(overrides)
        return cls(vocab_file, **kwargs)

    def save_pretrained(self, save_directory: Union[str, os.PathLike]) -> Tuple[str, str]:
        """Write ``vocab.txt`` and ``tokenizer_config.json``; both transformers tokenizers read them back."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        vocab_path = folder / "vocab.txt"
        with open(vocab_path, "w", encoding="utf-8", newline="\n") as handle:
            handle.write("".join(token + "\n" for token in self.ids_to_tokens))
        config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.do_lower_case,
            "do_basic_tokenize": True,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "strip_accents": self.strip_accents,
            "never_split": sorted(self.basic_tokenizer.never_split) or None,
            "model_max_length": self.model_max_length,
            "padding_side": self.padding_side,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            **{name: getattr(self, name) for name in SPECIAL_NAMES},
        }
        config_path = folder / "tokenizer_config.json"
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return str(vocab_path), str(config_path)

    # -- vocabulary -----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids (lines of ``vocab.txt``)."""
        return len(self.ids_to_tokens)

    def __len__(self) -> int:
        return len(self.ids_to_tokens)

    def get_vocab(self) -> dict:
        """A copy of the token -> id mapping."""
        return dict(self.vocab)

    def convert_tokens_to_ids(self, tokens: Union[str, Sequence[str]]):
        """Id of one token, or ids of a list of tokens; tokens not in the vocabulary map to ``[UNK]``."""
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_token_id)
        get, unk = self.vocab.get, self.unk_token_id
        ids = [get(token, unk) if isinstance(token, str) else None for token in tokens]
        if None in ids:
            bad = ids.index(None)
            _check_text(tokens[bad], f"tokens[{bad}]")
        return ids

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        """Token of one id, or tokens of a sequence of ids; ids outside the vocabulary give ``[UNK]``."""
        if _is_int(ids):
            return self._id_to_token(int(ids))
        return [self._id_to_token(i) for i in _as_id_list(ids)
                if not (skip_special_tokens and i in self._special_id_set)]

    def _id_to_token(self, i: int) -> str:
        return self.ids_to_tokens[i] if 0 <= i < len(self.ids_to_tokens) else self.unk_token

    # -- tokenizing and encoding ----------------------------------------------------------------

    def tokenize(self, text: str) -> List[str]:
        """The WordPiece tokens of ``text`` (no ``[CLS]``/``[SEP]`` added)."""
        _check_text(text, "text")
        return self._fast.tokens(text)

    def tokenize_with_offsets(self, text: str) -> List[Piece]:
        """``(token, start, end)`` for each WordPiece token: ``text[start:end]`` is where it came from.

        ``[UNK]`` covers the whole basic token it replaced; a special token typed in the text
        covers itself. When normalisation merged several characters into one (or one into
        several), pieces cut from inside that group share the group's span.
        """
        _check_text(text, "text")
        return self._fast.pieces(text)

    def encode(self, text: str, text_pair: Optional[str] = None, add_special_tokens: bool = True, **kwargs) -> List[int]:
        """The ``input_ids`` of one text (or pair) as a plain list; keyword arguments as in ``__call__``."""
        _check_text(text, "text")
        if text_pair is not None:
            _check_text(text_pair, "text_pair")
        return list(self(text, text_pair, add_special_tokens=add_special_tokens, **kwargs)["input_ids"])

    def __call__(self, text: Union[str, Sequence[str]], text_pair: Union[str, Sequence[str], None] = None,
                 **options) -> BatchEncoding:
        """Encode one text, one pair, or a batch of either, for the model.

        ``text`` is a ``str`` (one sequence) or a list of ``str`` (a batch); ``text_pair`` likewise
        adds second segments (``[CLS] A [SEP] B [SEP]``, token types 0 then 1). Keyword options, as
        in transformers:

        * ``padding``: ``False``; ``True``/``"longest"`` (to the longest in the batch);
          ``"max_length"`` (to ``max_length``, else ``model_max_length``). ``pad_to_multiple_of``
          then rounds the padded length up; ``padding_side`` (``"right"``/``"left"``) overrides the
          tokenizer's.
        * ``truncation``: ``False``; ``True``/``"longest_first"`` (trim the longer sequence of a pair
          first); ``"only_first"``; ``"only_second"``, to ``max_length`` (else ``model_max_length``).
          As in transformers, giving ``max_length`` with neither padding nor truncation means
          ``"longest_first"``.
        * ``return_tensors``: ``None`` (lists), ``"pt"`` (torch, int64) or ``"np"`` (numpy, int64).
          A single text then gets a batch axis of 1.
        * ``return_offsets_mapping``: ``(start, end)`` character spans into the original text(s),
          ``(0, 0)`` for added special tokens and padding.
        * ``add_special_tokens``, ``return_token_type_ids``, ``return_attention_mask`` (both on by
          default), ``return_special_tokens_mask``, ``return_length``, ``verbose``.
        """
        texts, pairs, batched = check_inputs(text, text_pair)
        chosen = self._options(pairs is not None, options)
        fast, with_offsets = self._fast, "offset_mapping" in chosen.columns
        cls_id, sep_id = self.cls_token_id, self.sep_token_id
        rows = []
        for i, first in enumerate(texts):
            second = None if pairs is None else pairs[i]
            if with_offsets:
                ids, offsets = fast.ids_and_offsets(first)
                pair_ids, pair_offsets = (None, None) if second is None else fast.ids_and_offsets(second)
            else:
                ids, offsets = fast.collect(first, IDS), None
                pair_ids, pair_offsets = (None if second is None else fast.collect(second, IDS)), None
            rows.append(build_row(ids, pair_ids, offsets, pair_offsets, chosen, cls_id, sep_id, i if batched else None))
        return assemble(rows, chosen, batched, self.pad_token_id)

    def _options(self, pairs: bool, options: dict) -> EncodingOptions:
        """:func:`resolve_options`, remembered for the last few distinct calls (per-call cost matters
        when texts are encoded one at a time)."""
        key: Optional[tuple] = (self.model_max_length, self.padding_side, pairs, *options.items())
        try:
            return self._resolved[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value (a list...): resolved, and rejected, every time
            key = None
        try:
            chosen = resolve_options(self.model_max_length, self.padding_side, pairs, **options)
        except TypeError as exc:
            if isinstance(exc, InputTypeError):
                raise
            raise InputTypeError(f"BertTokenizer() got an option it does not know: {exc}") from None
        if key is not None:
            if len(self._resolved) >= 64:
                self._resolved.clear()
            self._resolved[key] = chosen
        return chosen

    # -- decoding -------------------------------------------------------------------------------

    def decode(self, token_ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: Optional[bool] = None) -> str:
        """Ids back to text: tokens joined by spaces, ``##`` continuations glued to their word.

        The text is the *normalised* one (lowercased, accents gone for uncased vocabularies), and
        with ``clean_up_tokenization_spaces`` the spaces BERT put before ``. , ! ?`` and inside
        English contractions (``don ' t``) are taken out again, as transformers does.
        """
        tokens = self.convert_ids_to_tokens(_as_id_list(token_ids), skip_special_tokens=skip_special_tokens)
        text = " ".join(tokens).replace(" ##", "").strip()
        cleanup = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        if cleanup:
            for before, after in _CLEANUP:
                text = text.replace(before, after)
        return text

    def batch_decode(self, sequences, skip_special_tokens: bool = False, clean_up_tokenization_spaces: Optional[bool] = None) -> List[str]:
        """:meth:`decode` for each sequence of a batch (a list of lists, or a 2-D tensor/array)."""
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        if not isinstance(sequences, (list, tuple)):
            raise InputTypeError(f"sequences must be a list of id lists or a 2-D tensor, got {type(sequences).__name__}")
        return [self.decode(s, skip_special_tokens, clean_up_tokenization_spaces) for s in sequences]

    def __repr__(self) -> str:
        return (
            f"BertTokenizer(vocab_file={str(self.vocab_file)!r}, vocab_size={self.vocab_size}, "
            f"do_lower_case={self.do_lower_case}, tokenize_chinese_chars={self.tokenize_chinese_chars}, "
            f"strip_accents={self.strip_accents}, model_max_length={self.model_max_length})"
        )


def _is_int(value) -> bool:
    """An int (not a bool), or a 0-d tensor or numpy scalar."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (getattr(value, "ndim", None) == 0 and hasattr(value, "item"))


def _as_id_list(ids) -> List[int]:
    """Ids as a flat list of ints, from an int, a list/tuple, or a 0-/1-D tensor or array."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if isinstance(ids, int) and not isinstance(ids, bool):
        return [ids]
    if not isinstance(ids, (list, tuple)):
        raise InputTypeError(f"token_ids must be an int, a list of ints or a 1-D tensor, got {type(ids).__name__}")
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            shown = repr(i) if len(repr(i)) <= 80 else repr(i)[:77] + "..."
            raise InputTypeError(f"token_ids must contain ints, got {type(i).__name__}: {shown}")
    return list(ids)
