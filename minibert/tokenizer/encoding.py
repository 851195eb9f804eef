"""From token ids to model inputs: pairs, truncation, special tokens, padding, tensors.

What a call asks for is checked and settled once (:func:`resolve_options`), following
transformers' rules for how the options combine, so that results match it exactly; then each
example becomes one row (:func:`build_row`: truncate, add ``[CLS]``/``[SEP]``, token types), and the
rows are padded and stacked (:func:`assemble`).

Where transformers' two tokenizers disagree on an impossible request, minibert raises: a
``truncation="only_first"`` cut that the first sequence is too short to absorb (the Rust tokenizer
raises too; the Python one empties the sequence and returns more than ``max_length`` tokens), and
a ``max_length`` with no room for the special tokens (the Python one returns ``[CLS] [SEP]`` alone,
the Rust one returns the text uncut).
"""

from __future__ import annotations

import warnings
from typing import List, NamedTuple, Optional, Sequence, Tuple

from minibert.checks import available_memory, check_int, check_positive_int
from minibert.errors import InputError, InputTypeError
from minibert.tokenizer.files import NO_LIMIT
from minibert.tokenizer.rules import Span, _check_text

__all__ = ["BatchEncoding", "EncodingOptions", "check_inputs", "resolve_options", "build_row", "assemble"]

PADDING = {False: None, "do_not_pad": None, True: "longest", "longest": "longest", "max_length": "max_length"}
TRUNCATION = {
    None: None,
    False: None,
    "do_not_truncate": None,
    True: "longest_first",
    "longest_first": "longest_first",
    "only_first": "only_first",
    "only_second": "only_second",
}
#: Each column's value on padding positions.
PAD_VALUES = {"token_type_ids": 0, "attention_mask": 0, "special_tokens_mask": 1, "offset_mapping": (0, 0)}
#: Bytes one padded position costs per column: a list slot, and as much again for a tensor.
_SLOT_BYTES = 8


class BatchEncoding(dict):
    """What :meth:`BertTokenizer.__call__` returns: a dict, with attribute access as well.

    ``enc["input_ids"]`` and ``enc.input_ids`` are the same object. With ``return_tensors="pt"``,
    ``enc.to(device)`` moves every tensor and returns the encoding itself, so
    ``model(**tok(texts, return_tensors="pt").to("cuda"))`` works.
    """

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no field {name!r}; it has {sorted(self)}") from None

    def to(self, device) -> "BatchEncoding":
        """Move every tensor value to ``device`` (a no-op on lists and numpy arrays)."""
        for key, value in self.items():
            if hasattr(value, "to") and callable(value.to) and not isinstance(value, BatchEncoding):
                self[key] = value.to(device)
        return self

    def __dir__(self):
        return list(super().__dir__()) + [k for k in self if isinstance(k, str)]


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _lookup(table: dict, value, name: str):
    try:
        return table[value]
    except (KeyError, TypeError):  # TypeError: an unhashable value such as a list
        allowed = ", ".join(repr(k) for k in table)
        raise InputError(f"{name} must be one of {allowed}, got {_shown(value)}") from None


# ---------------------------------------------------------------------------------------------
# The call's arguments
# ---------------------------------------------------------------------------------------------


def check_inputs(text, text_pair) -> Tuple[List[str], Optional[List[str]], bool]:
    """``(texts, pairs, batched)``: one text or pair becomes a batch of one."""
    if isinstance(text, str):
        if text_pair is not None:
            _check_text(text_pair, "text_pair")
        return [text], None if text_pair is None else [text_pair], False
    if not isinstance(text, (list, tuple)):
        raise InputTypeError(f"text must be a str or a list of str, got {type(text).__name__}: {_shown(text)}")
    for i, t in enumerate(text):
        _check_text(t, f"text[{i}]")
    if text_pair is None:
        return list(text), None, True
    if not isinstance(text_pair, (list, tuple)):
        raise InputTypeError(f"text_pair must be a list of str when text is a list, got {type(text_pair).__name__}")
    if len(text_pair) != len(text):
        raise InputError(f"text has {len(text)} items but text_pair has {len(text_pair)}")
    for i, t in enumerate(text_pair):
        _check_text(t, f"text_pair[{i}]")
    return list(text), list(text_pair), True


class EncodingOptions(NamedTuple):
    """A call's options, checked and combined."""

    add_special_tokens: bool
    padding: Optional[str]  # None, "longest" or "max_length"
    truncation: Optional[str]  # None, "longest_first", "only_first" or "only_second"
    limit: Optional[int]  # the length to truncate and pad to: max_length, else model_max_length
    limit_name: str  # where the limit came from, for messages
    max_length: Optional[int]  # as passed
    pad_to_multiple_of: Optional[int]
    padding_side: str
    return_tensors: Optional[str]
    columns: Tuple[str, ...]
    return_length: bool
    warn_above: Optional[int]  # warn about a row longer than this (model_max_length), None: don't
    ignores_max_length: bool  # warn that max_length has no effect (padding=True without truncation)
    padding_asked: object  # the padding argument as given, for messages


def resolve_options(model_max_length: int, default_side: str, pairs: bool, *, add_special_tokens=True,
                    padding=False, truncation=None, max_length=None, pad_to_multiple_of=None, padding_side=None,
                    return_tensors=None, return_token_type_ids=None, return_attention_mask=None,
                    return_special_tokens_mask=False, return_offsets_mapping=False, return_length=False,
                    verbose=True) -> EncodingOptions:
    """Check every option, then combine them as transformers does (``pairs``: the call has second texts)."""
    pad = _lookup(PADDING, padding, "padding")
    trunc = _lookup(TRUNCATION, truncation, "truncation")
    if max_length is not None:
        max_length = check_int("max_length", max_length, minimum=0)
    if pad_to_multiple_of is not None:
        pad_to_multiple_of = check_positive_int("pad_to_multiple_of", pad_to_multiple_of)
    side = default_side if padding_side is None else padding_side
    if side not in ("left", "right"):
        raise InputError(f"padding_side must be 'left' or 'right', got {_shown(padding_side)}")
    if return_tensors not in (None, "pt", "np"):
        raise InputError(f"return_tensors must be None, 'pt' or 'np', got {_shown(return_tensors)}")

    if max_length is not None and padding is False and truncation is None:
        trunc = "longest_first"  # transformers: max_length alone means "truncate to it"
    ignores_max_length = pad == "longest" and max_length is not None and trunc is None and bool(verbose)
    limit, limit_name = max_length, f"max_length={max_length}"
    if limit is None and (pad == "max_length" or trunc is not None):
        if model_max_length < NO_LIMIT:
            limit, limit_name = model_max_length, f"model_max_length={model_max_length} (the tokenizer's)"
        else:  # "no maximum": nothing to pad or truncate to, as in transformers
            pad = None if pad == "max_length" else pad
            trunc = None
    if trunc and pad and pad_to_multiple_of and limit is not None and limit % pad_to_multiple_of:
        raise InputError(f"truncation to max_length={limit} and pad_to_multiple_of={pad_to_multiple_of} contradict "
                         "each other: max_length must be a multiple of pad_to_multiple_of")
    n_special = (3 if pairs else 2) if add_special_tokens else 0
    if trunc and limit is not None and limit < max(n_special, 1):
        raise InputError(f"{limit_name} leaves no room for the text: the special tokens alone take {n_special} "
                         f"positions ([CLS] A [SEP]{' B [SEP]' if pairs else ''}); pass a larger max_length")

    flags = (True, return_token_type_ids is not False, return_attention_mask is not False,
             bool(return_special_tokens_mask), bool(return_offsets_mapping))
    names = ("input_ids", "token_type_ids", "attention_mask", "special_tokens_mask", "offset_mapping")
    return EncodingOptions(bool(add_special_tokens), pad, trunc, limit, limit_name, max_length, pad_to_multiple_of,
                           side, return_tensors, tuple(n for n, f in zip(names, flags) if f), bool(return_length),
                           model_max_length if verbose and max_length is None else None, ignores_max_length,
                           padding)


# ---------------------------------------------------------------------------------------------
# One example
# ---------------------------------------------------------------------------------------------


def truncation_plan(len_a: int, len_b: Optional[int], excess: int, mode: str, where: str) -> Tuple[int, int]:
    """How many tokens to drop from the end of the first and of the second sequence.

    ``longest_first`` on a pair trims the longer sequence down to the shorter, then both evenly, the
    odd token coming off the second when they were equally long and off the first when it was
    longer: transformers' Python tokenizer (the Rust one breaks that tie the other way).
    ``only_first``/``only_second`` raise when the sequence to cut is too short to absorb the whole
    excess, as transformers' Rust tokenizer does.
    """
    if mode == "longest_first" and len_b is not None:
        first = min(abs(len_b - len_a), excess)
        rest = excess - first
        cut_a, cut_b = (first + rest // 2, rest - rest // 2) if len_a > len_b else (rest // 2, first + rest - rest // 2)
        return min(cut_a, len_a), min(cut_b, len_b)
    if len_b is None:
        if mode == "only_second":
            raise InputError(f"truncation='only_second' needs a text_pair to cut, and {where} has none "
                             f"but is {excess} tokens too long")
        return excess, 0  # fits: the limit leaves room for the special tokens
    length = len_a if mode == "only_first" else len_b
    if length <= excess:
        which = "first" if mode == "only_first" else "second"
        raise InputError(f"truncation={mode!r} cannot shorten {where}: {excess} tokens must go but its {which} "
                         f"sequence has only {length}; use truncation='longest_first' or a larger max_length")
    return (excess, 0) if mode == "only_first" else (0, excess)


def _truncate(ids, pair_ids, offsets, pair_offsets, options: EncodingOptions, index: Optional[int]):
    """``ids, pair_ids, offsets, pair_offsets`` cut to fit ``options.limit`` with the special tokens."""
    pair = pair_ids is not None
    n_special = (3 if pair else 2) if options.add_special_tokens else 0
    excess = len(ids) + (len(pair_ids) if pair else 0) + n_special - options.limit
    if excess <= 0:
        return ids, pair_ids, offsets, pair_offsets
    where = "the text" if index is None else f"text[{index}]"
    cut_a, cut_b = truncation_plan(len(ids), len(pair_ids) if pair else None, excess, options.truncation, where)
    if cut_a:
        ids = ids[:-cut_a]
        offsets = offsets[:-cut_a] if offsets is not None else None
    if cut_b:
        pair_ids = pair_ids[:-cut_b]
        pair_offsets = pair_offsets[:-cut_b] if pair_offsets is not None else None
    return ids, pair_ids, offsets, pair_offsets


def _lay_out(first: list, second: Optional[list], cls, sep, add_special: bool) -> list:
    """One column of one example: ``cls first sep`` (then ``second sep``), or the bare concatenation."""
    if not add_special:
        return first + (second or [])
    column = [cls, *first, sep]
    if second is not None:
        column += [*second, sep]
    return column


def build_row(ids: List[int], pair_ids: Optional[List[int]], offsets: Optional[List[Span]],
              pair_offsets: Optional[List[Span]], options: EncodingOptions, cls_id: int, sep_id: int,
              index: Optional[int]) -> dict:
    """Truncate, add the special tokens, and produce every column for one example (``index``: its place in the batch)."""
    if options.truncation is not None and options.limit:
        ids, pair_ids, offsets, pair_offsets = _truncate(ids, pair_ids, offsets, pair_offsets, options, index)
    add = options.add_special_tokens
    row = {"input_ids": _lay_out(ids, pair_ids, cls_id, sep_id, add)}
    n = len(row["input_ids"])
    n_first = len(ids) + 2 if add else n  # [CLS] A [SEP] has type 0, B [SEP] type 1 (all 0 without specials)
    row["token_type_ids"] = [0] * n_first + [1] * (n - n_first)
    row["attention_mask"] = [1] * n
    if "special_tokens_mask" in options.columns:
        zeros_b = None if pair_ids is None else [0] * len(pair_ids)
        row["special_tokens_mask"] = _lay_out([0] * len(ids), zeros_b, 1, 1, add)
    if offsets is not None:
        row["offset_mapping"] = _lay_out(offsets, pair_offsets, (0, 0), (0, 0), add)
    if options.warn_above is not None and len(row["input_ids"]) > options.warn_above:
        warnings.warn(f"sequence of {len(row['input_ids'])} tokens is longer than model_max_length="
                      f"{options.warn_above}; the model cannot take it as is (pass truncation=True to cut it)",
                      stacklevel=3)
    return row


# ---------------------------------------------------------------------------------------------
# The batch
# ---------------------------------------------------------------------------------------------


def _padded_length(rows: List[dict], options: EncodingOptions) -> int:
    """The length every row is padded to, once checked to fit in memory."""
    target = max(len(r["input_ids"]) for r in rows) if options.padding == "longest" else options.limit
    multiple = options.pad_to_multiple_of
    if multiple and target % multiple:
        target += multiple - target % multiple
    per_slot = _SLOT_BYTES * len(options.columns) * (2 if options.return_tensors else 1)
    estimate = len(rows) * target * per_slot
    budget = available_memory() // 8
    if estimate > budget:
        source = options.limit_name if options.padding == "max_length" else f"the longest row ({target} tokens)"
        raise InputError(
            f"padding {len(rows)} row(s) to {source} would take about {estimate / 2**30:.1f} GiB "
            f"({len(options.columns)} column(s) of {target} positions); refusing more than an eighth of the "
            f"{budget * 8 / 2**30:.1f} GiB available, as no model could then run on the result"
        )
    return target


def _pad(row: dict, target: int, side: str, pad_id: int) -> None:
    missing = target - len(row["input_ids"])
    if missing <= 0:
        return
    for name, column in row.items():
        padding = [pad_id if name == "input_ids" else PAD_VALUES[name]] * missing
        row[name] = column + padding if side == "right" else padding + column


def _unequal_message(name: str, lengths: Sequence[int], options: EncodingOptions) -> str:
    """Why the rows of ``name`` differ in length, and what to pass instead."""
    text = f"cannot make a tensor of {name}: the sequences have different lengths ({sorted(set(lengths))}); "
    if options.padding_asked in (False, None, "do_not_pad"):
        return text + "pass padding=True"
    if options.padding is None:  # padding='max_length' with an unlimited model_max_length
        return text + f"padding={options.padding_asked!r} has no length to pad to: pass max_length"
    return text + f"padding only lengthens, and some rows are longer than {options.limit_name}: pass truncation=True"


def to_tensors(out: BatchEncoding, options: EncodingOptions, batched: bool) -> None:
    """Every column as an int64 tensor (torch or numpy imported only now: ``import minibert`` stays light)."""
    for name, column in list(out.items()):
        rows = column if batched else [column]
        if rows and isinstance(rows[0], list) and len({len(r) for r in rows}) > 1:
            raise InputError(_unequal_message(name, [len(r) for r in rows], options))
        if options.return_tensors == "pt":
            import torch

            out[name] = torch.tensor(rows, dtype=torch.long)
        else:
            import numpy as np

            out[name] = np.array(rows, dtype=np.int64)
        if not batched and name == "length":
            out[name] = out[name].reshape(1)


def assemble(rows: List[dict], options: EncodingOptions, batched: bool, pad_id: int) -> BatchEncoding:
    """Pad the rows as asked and gather them, column by column, into a :class:`BatchEncoding`."""
    if options.ignores_max_length:
        warnings.warn("max_length is ignored when padding=True and truncation is off; "
                      "use padding='max_length' to pad to max_length", stacklevel=3)
    if options.padding is not None and rows:
        target = _padded_length(rows, options)
        for row in rows:
            _pad(row, target, options.padding_side, pad_id)
    out = BatchEncoding()
    for name in options.columns:
        out[name] = [row[name] for row in rows] if batched else rows[0][name]
    if options.return_length:
        lengths = [len(row["input_ids"]) for row in rows]
        out["length"] = lengths if batched else lengths[0]
    if options.return_tensors is not None:
        to_tensors(out, options, batched)
    return out
