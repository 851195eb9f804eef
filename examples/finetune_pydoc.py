"""Build a real, offline text-classification task from Python's own documentation, then fine-tune on it.

Every CPython installation ships ``pydoc_data.topics.topics``: the text of the language reference and
library pages that ``help("topic")`` shows (a dict, topic name -> long plain text). Its paragraphs
are real technical English written by people, so they make an honest test of whether a pre-trained
encoder helps: given one paragraph, which part of the documentation does it come from?

Labels are groups of topics:

    statements   compound, assignment, import   (if/while/for/try/with/def/class, =, import)
    data-model   specialnames                    (__init__, __getattr__, __add__, ...)
    type-system  types                           (the standard type hierarchy)
    debugger     debugger                        (pdb commands and usage)
    strings      string-methods, formatstrings   (str methods and the format mini-language)
    containers   typesseq, typesmapping          (list/tuple/range and dict operations)

Honesty of the split: a paragraph is the unit; it is split on blank lines and whitespace-normalised.
Paragraphs under 12 words (headings, code fragments) are dropped, and any paragraph text that occurs
in more than one topic of the table (the documentation repeats some text across pages) or twice in one
is dropped everywhere, so no text can be in two splits or carry two labels. Each label's paragraphs
are then shuffled (fixed seed) and split 70/15/15 into train / validation / test. Model selection uses
validation only; test is scored once, with the best checkpoint.

    python examples/finetune_pydoc.py --data-dir runs/pydoc_data           # write the CSV files only
    python examples/finetune_pydoc.py --data-dir runs/pydoc_data --run     # + the four training runs

The ``--run`` commands are the ones reported in ``docs/results/finetuning.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

GROUPS = {
    "statements": ("compound", "assignment", "import"),
    "data-model": ("specialnames",),
    "type-system": ("types",),
    "debugger": ("debugger",),
    "strings": ("string-methods", "formatstrings"),
    "containers": ("typesseq", "typesmapping"),
}
MIN_WORDS = 12
RULE_LINE = re.compile(r"[*=\-~^ ]+")  # the underlines of reStructuredText-style headings


def paragraphs(text: str) -> list[str]:
    """Whitespace-normalised paragraphs of at least MIN_WORDS words."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        paragraph = " ".join(block.split())
        if len(paragraph.split()) >= MIN_WORDS and not RULE_LINE.fullmatch(paragraph):
            out.append(paragraph)
    return out


def build_dataset(seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """{"train"|"validation"|"test": [(paragraph, label), ...]} with no paragraph in two places."""
    from pydoc_data.topics import topics

    occurrences: Counter = Counter()
    by_label: dict[str, list[str]] = {}
    for label, topic_names in GROUPS.items():
        for name in topic_names:
            found = paragraphs(topics[name])
            occurrences.update(found)
            by_label.setdefault(label, []).extend(found)
    rng = random.Random(seed)
    splits: dict[str, list[tuple[str, str]]] = {"train": [], "validation": [], "test": []}
    for label in sorted(by_label):
        unique = [p for p in by_label[label] if occurrences[p] == 1]
        rng.shuffle(unique)
        n_test = n_validation = round(0.15 * len(unique))
        splits["test"] += [(p, label) for p in unique[:n_test]]
        splits["validation"] += [(p, label) for p in unique[n_test:n_test + n_validation]]
        splits["train"] += [(p, label) for p in unique[n_test + n_validation:]]
    for rows in splits.values():
        rng.shuffle(rows)
    texts = [set(p for p, _ in rows) for rows in splits.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2]), "a paragraph is in two splits"
    return splits


def write_dataset(folder: Path, seed: int = 0) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for split, rows in build_dataset(seed).items():
        with open(folder / f"{split}.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
        sizes[split] = len(rows)
    return sizes


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="runs/pydoc_data")
    parser.add_argument("--out-dir", default="runs/pydoc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--run", action="store_true", help="also fine-tune, and train from scratch")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    sizes = write_dataset(data_dir, args.seed)
    print(f"wrote {data_dir}: {sizes}")
    for split in ("train", "test"):
        with open(data_dir / f"{split}.csv", encoding="utf-8") as handle:
            counts = Counter(row["label"] for row in csv.DictReader(handle))
        print(f"  {split} labels: {dict(sorted(counts.items()))}")
    if not args.run:
        return
    from minibert.train import finetune

    # Paragraphs are cut to their first 64 tokens: enough to recognise the topic, and it keeps each run
    # to a few minutes on two CPU cores. The same budget (epochs, batch, length) for every run.
    common = ["--train", str(data_dir), "--epochs", str(args.epochs), "--batch-size", "16", "--max-length", "64",
              "--seed", str(args.seed), "--no-progress"]
    runs = (("pretrained", ["--lr", "5e-5"]),
            ("pretrained_lr2e-4", ["--lr", "2e-4"]),
            ("scratch_lr5e-5", ["--from-scratch", "--lr", "5e-5"]),   # the identical recipe
            ("scratch_lr5e-4", ["--from-scratch", "--lr", "5e-4"]))   # a larger step, kinder to random init
    for name, extra in runs:
        summary = finetune.main(common + extra + ["--out-dir", str(Path(args.out_dir) / name)])
        print(name, json.dumps(summary), file=sys.stderr)


if __name__ == "__main__":
    main()
