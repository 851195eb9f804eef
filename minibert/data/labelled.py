"""Labelled text for classification: CSV, TSV or JSONL rows of ``(text, label)`` or
``(text, text_pair, label)``, read into ``Example`` rows and encoded once for fine-tuning.

* Columns are found by name (``TEXT_COLUMNS``, ``PAIR_COLUMNS``, ``LABEL_COLUMNS``) unless named.
* A label is a class name: ``1``, ``"1"`` and ``1.0`` are the same class; lists, objects, booleans and
  fractions are refused naming the row (``label_name``).
* A file that is not UTF-8 text is refused naming the file.
* A folder holds ``train.*`` and optionally ``validation.*`` (or ``dev.*``/``valid.*``) and ``test.*``;
  without a validation file, ``stratified_split`` holds out a fraction of each label's rows.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from minibert.errors import InputError

# Column names recognised when the caller does not name them, first match wins.
TEXT_COLUMNS = ("text", "sentence", "sentence1", "text_a", "premise", "question")
PAIR_COLUMNS = ("text_pair", "sentence2", "text_b", "hypothesis")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target")
DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "valid", "dev", "val"), "test": ("test",)}


@dataclass
class Example:
    text: str
    text_pair: Optional[str]
    label: str


def _read_jsonl(path: Path, text: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number} is not valid JSON ({exc}); JSONL expects one object per line") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{number} holds a {type(row).__name__}, a JSON object is expected")
        rows.append(row)
    return rows


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL, CSV or TSV file; InputError naming the file when it is not UTF-8 text."""
    if path.suffix not in DATA_SUFFIXES:
        raise InputError(f"{path}: unsupported data file type {path.suffix!r}; expected one of {DATA_SUFFIXES}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}): "
                         "is it a binary file?") from None
    if "\x00" in text:
        raise InputError(f"{path} holds NUL bytes at offset {text.index(chr(0))}: it is not a text file")
    if path.suffix in (".jsonl", ".json"):
        return _read_jsonl(path, text)
    try:
        return list(csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if path.suffix == ".tsv" else ","))
    except csv.Error as exc:
        raise InputError(f"{path} is not a readable {path.suffix[1:].upper()} file: {exc}") from None


def _pick_column(path: Path, columns: Iterable[str], wanted: Optional[str], candidates: Sequence[str],
                 what: str, required: bool) -> Optional[str]:
    columns = list(columns)
    if wanted is not None:
        if wanted not in columns:
            raise InputError(f"{path} has no {what} column {wanted!r}; its columns are {columns}")
        return wanted
    found = next((c for c in candidates if c in columns), None)
    if found is None and required:
        raise InputError(f"{path}: no {what} column found among {columns}; name one with --{what}-column "
                         f"(recognised names: {', '.join(candidates)})")
    return found


def label_name(value: Any, where: str) -> str:
    """A label as the class name it stands for: a string as written (stripped), an integer (or a
    float with an integral value, as JSON writers produce) as its decimal digits, so ``1``, ``"1"`` and
    ``1.0`` are one class. Anything else (lists, objects, booleans, fractions, empty) is an InputError
    naming ``where``: a classifier's label is a name, not a value to regress on."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise InputError(f"{where}: a label must be a class name (a string or an integer), got {value!r}")


def load_examples(path: Union[str, Path], text_column: Optional[str] = None, text_pair_column: Optional[str] = None,
                  label_column: Optional[str] = None) -> list[Example]:
    """Read one CSV/TSV/JSONL file into ``Example`` rows; labels become class names (``label_name``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"data file not found: {path}")
    rows = _read_rows(path)
    if not rows:
        raise InputError(f"{path} holds no rows")
    columns = rows[0].keys()
    text_key = _pick_column(path, columns, text_column, TEXT_COLUMNS, "text", required=True)
    pair_key = _pick_column(path, columns, text_pair_column, PAIR_COLUMNS, "text-pair", required=False)
    label_key = _pick_column(path, columns, label_column, LABEL_COLUMNS, "label", required=True)
    examples = []
    for number, row in enumerate(rows, 1):
        text, pair = row.get(text_key), row.get(pair_key) if pair_key else None
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{path} row {number}: {text_key!r} must be a non-empty string, got {text!r}")
        if pair_key and not isinstance(pair, str):
            raise InputError(f"{path} row {number}: {pair_key!r} must be a string, got {pair!r}")
        examples.append(Example(text, pair, label_name(row.get(label_key), f"{path} row {number} {label_key!r}")))
    return examples


def find_split_files(folder: Path) -> dict[str, Path]:
    """``train``/``validation``/``test`` files of a data folder (validation and test optional)."""
    found: dict[str, Path] = {}
    for split, stems in SPLIT_NAMES.items():
        for stem in stems:
            matches = [folder / f"{stem}{suffix}" for suffix in DATA_SUFFIXES if (folder / f"{stem}{suffix}").is_file()]
            if matches:
                found[split] = matches[0]
                break
    if "train" not in found:
        raise InputError(f"{folder} has no train file: expected train.csv, train.tsv or train.jsonl")
    return found


def stratified_split(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out about ``fraction`` of each label's rows; every label keeps at least one training row."""
    if not 0.0 < fraction < 1.0:
        raise InputError(f"validation_fraction must be in (0, 1), got {fraction!r}")
    by_label: dict[str, list[Example]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    rng = random.Random(seed)
    train, held_out = [], []
    for label in sorted(by_label):
        rows = by_label[label][:]
        rng.shuffle(rows)
        n_held = min(len(rows) - 1, round(len(rows) * fraction))
        held_out += rows[:n_held]
        train += rows[n_held:]
    rng.shuffle(train)
    return train, held_out


def sorted_labels(names: Iterable[str]) -> list[str]:
    """Class names in id order: integers by value (so "10" follows "9"), then other names alphabetically."""
    return sorted(set(names), key=lambda name: (0, int(name), "") if name.lstrip("-").isdigit() else (1, 0, name))


# ------------------------------------------------------------------------------------------ batches
def encode_examples(tokenizer: Any, examples: Sequence[Example], label2id: dict[str, int],
                    max_length: int) -> list[dict[str, Any]]:
    """Tokenize once, without padding: one row of id lists and its class id (``labels``) per example."""
    unknown = sorted({e.label for e in examples} - label2id.keys())
    if unknown:
        raise InputError(f"labels {unknown} do not occur in the training data (known: {sorted(label2id)})")
    texts = [e.text for e in examples]
    has_pairs = any(e.text_pair is not None for e in examples)
    pairs = [e.text_pair or "" for e in examples] if has_pairs else None
    tokens = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    return [{"input_ids": tokens["input_ids"][i], "token_type_ids": tokens["token_type_ids"][i],
             "labels": label2id[e.label]} for i, e in enumerate(examples)]
