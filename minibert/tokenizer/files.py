"""The tokenizer's files: ``vocab.txt``, ``tokenizer_config.json`` and ``special_tokens_map.json``.

Side files come from anywhere, so every value is checked here, where the file's name is known:
a field of the wrong type is an error naming the file, the field and the value, never a silent
default (``"do_lower_case": "false"`` is a string, and ``bool("false")`` is ``True``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, List, Optional

from minibert import checks
from minibert.errors import CheckpointError, CheckpointNotFoundError, InputError, InputTypeError

__all__ = ["SPECIAL_NAMES", "NO_LIMIT", "read_vocab", "read_tokenizer_configs", "check_bool", "check_length",
           "check_special_token", "check_strip_accents"]

#: The special tokens a BERT vocabulary must hold, by their argument names.
SPECIAL_NAMES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
#: transformers' sentinel for "no limit" is int(1e30); any model_max_length from here on means none.
NO_LIMIT = int(1e20)

_BOOL_FIELDS = ("do_lower_case", "tokenize_chinese_chars", "clean_up_tokenization_spaces")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------------------------------------
# Checks shared by the constructor (error names the argument) and the files (names file and field)
# ---------------------------------------------------------------------------------------------


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool; ``"true"``/``"false"`` as written in some JSON files are read as such."""
    return checks.check_bool(name, value, error=InputTypeError)


def check_strip_accents(value: Any) -> Optional[bool]:
    """``None`` (strip when lowercasing), ``True`` or ``False``."""
    return None if value is None else check_bool("strip_accents", value)


def check_length(name: str, value: Any) -> int:
    """A positive whole number of tokens; ``16.0`` is 16 (JSON writers produce those), ``16.5`` an error."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputTypeError(f"{name} must be a positive whole number, got {type(value).__name__}: {_shown(value)}")
    if value <= 0:
        raise InputError(f"{name} must be a positive whole number, got {value}")
    return value


def check_special_token(name: str, value: Any) -> str:
    """A special token: a non-empty string that is not just whitespace (it could never be typed whole)."""
    if not isinstance(value, str):
        raise InputTypeError(f"{name} must be a str, got {type(value).__name__}: {_shown(value)}")
    if not value.strip():
        raise InputError(f"{name} must not be empty or whitespace (it would match between any two characters "
                         f"of a text), got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------
# vocab.txt
# ---------------------------------------------------------------------------------------------


def read_vocab(path: Path) -> List[str]:
    """The lines of a ``vocab.txt``: token ``i`` is line ``i``, newline removed, nothing else stripped."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"vocabulary file {path} is not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise CheckpointNotFoundError(f"cannot read vocabulary file {path}: {exc}") from None
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()  # the newline that ends the last line does not start another token
    return tokens


# ---------------------------------------------------------------------------------------------
# tokenizer_config.json and special_tokens_map.json
# ---------------------------------------------------------------------------------------------


def read_tokenizer_configs(folder: Path) -> dict:
    """Constructor keywords from the side files in ``folder`` (``tokenizer_config.json`` has the last word).

    A ``model_max_length`` at transformers' "unlimited" sentinel is left out (the default, 512,
    applies); fields minibert does not use are ignored, but ones that would change the result
    and that it cannot honour (``do_basic_tokenize: false``, ``truncation_side: "left"``) are errors.
    """
    kwargs: dict = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file():
            try:
                kwargs.update(_config_kwargs(_load_json_object(path)))
            except (InputError, InputTypeError) as exc:
                raise CheckpointError(f"{path}: {exc}") from None
    return kwargs


def _load_json_object(path: Path) -> dict:
    config = checks.read_json(path)
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def _config_kwargs(config: dict) -> dict:
    """The checked constructor keywords of one side file's JSON object."""
    kwargs: dict = {}
    for key in _BOOL_FIELDS:
        if key in config:
            kwargs[key] = check_bool(key, config[key])
    if "strip_accents" in config:
        kwargs["strip_accents"] = check_strip_accents(config["strip_accents"])
    if config.get("model_max_length") is not None:
        length = check_length("model_max_length", config["model_max_length"])
        if length < NO_LIMIT:
            kwargs["model_max_length"] = length
    if config.get("never_split") is not None:
        never_split = config["never_split"]
        if not isinstance(never_split, list) or not all(isinstance(w, str) for w in never_split):
            raise InputTypeError(f"never_split must be a list of str, got {_shown(never_split)}")
        kwargs["never_split"] = never_split
    if "padding_side" in config:
        if config["padding_side"] not in ("left", "right"):
            raise InputError(f"padding_side must be 'left' or 'right', got {_shown(config['padding_side'])}")
        kwargs["padding_side"] = config["padding_side"]
    if "do_basic_tokenize" in config and not check_bool("do_basic_tokenize", config["do_basic_tokenize"]):
        raise InputError("do_basic_tokenize is false: WordPiece straight on raw text is not supported")
    if config.get("truncation_side") not in (None, "right"):
        raise InputError(f"truncation_side must be 'right' (the only side supported), got {_shown(config['truncation_side'])}")
    for key in SPECIAL_NAMES:
        value = config.get(key)
        if isinstance(value, dict):  # how transformers writes an AddedToken
            value = value.get("content")
        if value is not None:
            kwargs[key] = check_special_token(key, value)
    return kwargs
