"""Build, measure and export the masked-LM that ships as ``minibert/fill-mask`` (docs/results/fillmask.md).

    python scripts/build_corpus.py --out corpus/corpus.txt --install  # English text from Debian documentation
    python scripts/fill_mask_model.py split corpus/corpus.txt runs/fill-mask --heldout-every 20
    minibert prepare runs/fill-mask/train.txt --vocab sentence-transformers/all-MiniLM-L6-v2 \
        --out-dir runs/fill-mask/prepared --workers 2
    python -m minibert.train.pretrain runs/fill-mask/prepared --out-dir runs/fill-mask/bert \
        --init-from sentence-transformers/all-MiniLM-L6-v2 ...   # the options are in docs/results/fillmask.md
    python scripts/fill_mask_model.py evaluate runs/fill-mask/bert runs/fill-mask
    python scripts/fill_mask_model.py export runs/fill-mask/bert minibert/pretrained/fill_mask
    python scripts/fill_mask_model.py fixture runs/fill-mask/bert runs/fill-mask examples/notebooks/reference/fill_mask_heldout.json

``split`` holds out whole documents before anything is trained: every ``--heldout-every``-th document
(in a seeded random order) goes to ``heldout.txt``, the others to ``train.txt``. Nothing minibert trains
ever reads ``heldout.txt``; every accuracy below is measured on it.

``evaluate`` masks 15% of the word pieces of held-out segments (all of them replaced by ``[MASK]``,
so the model sees no hint) and reports top-1 / top-5 accuracy of the model and of the frequency
(unigram) baseline, which always answers with the pieces most frequent in the training text.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import warnings
from collections import Counter
from pathlib import Path

import torch

from minibert.data.pretraining import read_documents
from minibert.heads import BertForMaskedLM, BertForPreTraining
from minibert.tokenizer import BertTokenizer
from minibert.train.cloze import cloze_accuracy, frequency_accuracy

SEGMENT_TOKENS = 126  # word pieces per evaluation segment; [CLS] and [SEP] make 128


def split(args: argparse.Namespace) -> None:
    documents = list(read_documents(args.corpus))
    random.Random(args.seed).shuffle(documents)  # the corpus is grouped by source; mix it before cutting
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sizes = Counter()
    with open(out / "train.txt", "w", encoding="utf-8") as train, open(out / "heldout.txt", "w", encoding="utf-8") as held:
        for index, document in enumerate(documents):
            name, handle = ("heldout", held) if index % args.heldout_every == 0 else ("train", train)
            text = "\n".join(document) + "\n\n"
            handle.write(text)
            sizes[name + " documents"] += 1
            sizes[name + " bytes"] += len(text.encode("utf-8"))
    print(json.dumps(dict(sizes), indent=2))


def _segments(path: Path, tokenizer: BertTokenizer, limit: int) -> list[list[int]]:
    """Consecutive sentences of each document packed into segments of at most SEGMENT_TOKENS pieces."""
    segments: list[list[int]] = []
    for document in read_documents(path):
        current: list[int] = []
        for sentence in document:
            ids = tokenizer.encode(sentence, add_special_tokens=False)[:SEGMENT_TOKENS]
            if current and len(current) + len(ids) > SEGMENT_TOKENS:
                segments.append(current)
                current = []
            current = current + ids
        if current:
            segments.append(current)
        if len(segments) >= limit:
            break
    return segments[:limit]


def unigram_ranking(path: Path, tokenizer: BertTokenizer, max_bytes: int) -> list[int]:
    """Word-piece ids of the training text, most frequent first (read up to ``max_bytes``)."""
    counts: Counter = Counter()
    read = 0
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            counts.update(tokenizer.encode(line, add_special_tokens=False))
            read += len(line)
            if read >= max_bytes:
                break
    return [token for token, _ in counts.most_common(50)]


def make_clozes(segments: list[list[int]], tokenizer: BertTokenizer, generator: random.Random,
                rate: float = 0.15) -> list[dict]:
    """Each segment with ``rate`` of its pieces (at least one) replaced by [MASK], as word pieces."""
    clozes = []
    for pieces in segments:
        positions = set(generator.sample(range(len(pieces)), max(1, round(rate * len(pieces)))))
        tokens = tokenizer.convert_ids_to_tokens(pieces)
        clozes.append({"tokens": [tokenizer.mask_token if i in positions else t for i, t in enumerate(tokens)],
                       "answers": [t for i, t in enumerate(tokens) if i in positions]})
    return clozes


def evaluate(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    data = Path(args.data_dir)
    tokenizer = BertTokenizer.from_pretrained(args.checkpoint)
    model = BertForMaskedLM.from_pretrained(args.checkpoint).float().eval()
    top5 = tokenizer.convert_ids_to_tokens(unigram_ranking(data / "train.txt", tokenizer, args.unigram_bytes)[:5])
    clozes = make_clozes(_segments(data / "heldout.txt", tokenizer, args.segments), tokenizer, random.Random(args.seed))
    baseline = frequency_accuracy(clozes, top5)
    print(json.dumps({"segments": len(clozes), **cloze_accuracy(model, tokenizer, clozes),
                      "unigram_top1": baseline["top1"], "unigram_top5": baseline["top5"],
                      "unigram_top5_tokens": top5}, indent=2))


def export(args: argparse.Namespace) -> None:
    """A BertForPreTraining run (both heads: fill-mask uses the MLM one, notebook 4 the NSP one too),
    stored in float16, with its tokenizer."""
    model = BertForPreTraining.from_pretrained(args.run_dir)
    if model.load_report.missing:
        sys.exit(f"{args.run_dir} lacks trained weights: {model.load_report.missing[:3]}")
    model.half().save_pretrained(args.out_dir)
    # The tokenizer truncates where the position embeddings end.
    tokenizer = BertTokenizer.from_pretrained(args.run_dir, model_max_length=model.config.max_position_embeddings)
    tokenizer.save_pretrained(args.out_dir)
    for file in sorted(Path(args.out_dir).iterdir()):
        file.chmod(0o644)  # package data: readable by everyone who installs it
        print(f"{file}  {file.stat().st_size / 2**20:.1f} MiB")


def fixture(args: argparse.Namespace) -> None:
    """Held-out clozes for the tests and notebooks: segments of held-out documents with 15% of their pieces masked,
    stored as word pieces (so the test needs no sentence splitting), and the baseline's top 5."""
    data = Path(args.data_dir)
    tokenizer = BertTokenizer.from_pretrained(args.checkpoint)
    ranking = unigram_ranking(data / "train.txt", tokenizer, args.unigram_bytes)
    generator = random.Random(args.seed)
    segments = [pieces[:60] for pieces in _segments(data / "heldout.txt", tokenizer, 10 * args.count)[::10][:args.count]]
    clozes = make_clozes(segments, tokenizer, generator)  # 60 pieces at most: short segments keep the test fast
    payload = {"source": "held-out documents of the fill-mask corpus (split off before any training: not in the "
                         "text minibert pretrained on); 15% of each segment's word pieces masked",
               "unigram_top5": tokenizer.convert_ids_to_tokens(ranking[:5]), "clozes": clozes,
               "pairs": _sentence_pairs(data / "heldout.txt", generator, args.count * 2)}
    Path(args.out).write_text(json.dumps(payload, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(clozes)} segments, {sum(len(c['answers']) for c in clozes)} masked pieces -> {args.out}")


def _sentence_pairs(path: Path, generator: random.Random, count: int) -> list[dict]:
    """Next-sentence pairs from held-out documents: half B really follows A, half B comes from another
    document. Sentences of 5 to 40 words, so a pair fits in 128 pieces."""
    documents = [[s for s in d if 5 <= len(s.split()) <= 40] for d in read_documents(path)]
    documents = [d for d in documents if len(d) >= 2][:4 * count]
    pairs = []
    for index, document in enumerate(documents[:count]):
        i = generator.randrange(len(document) - 1)
        if index % 2 == 0:
            pairs.append({"a": document[i], "b": document[i + 1], "is_next": True})
        else:
            other = documents[count + index]  # a document no pair's A comes from
            pairs.append({"a": document[i], "b": generator.choice(other), "is_next": False})
    return pairs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("split", help="hold out whole documents: train.txt and heldout.txt")
    p.add_argument("corpus")
    p.add_argument("out_dir")
    p.add_argument("--heldout-every", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=split)
    for name, run in (("evaluate", evaluate), ("fixture", fixture)):
        p = commands.add_parser(name)
        p.add_argument("checkpoint", help="a run folder or checkpoint name")
        p.add_argument("data_dir", help="the folder `split` wrote")
        p.add_argument("--unigram-bytes", type=int, default=20_000_000, help="training text counted for the baseline")
        p.add_argument("--seed", type=int, default=0)
        p.set_defaults(run=run)
    commands.choices["evaluate"].add_argument("--segments", type=int, default=2000)
    commands.choices["evaluate"].add_argument("--threads", type=int, default=1)
    commands.choices["fixture"].add_argument("out")
    commands.choices["fixture"].add_argument("--count", type=int, default=100)
    p = commands.add_parser("export", help="store a run's masked LM in float16 with its tokenizer")
    p.add_argument("run_dir")
    p.add_argument("out_dir")
    p.set_defaults(run=export)
    args = parser.parse_args(argv)
    # Counting pieces of whole lines: lines longer than the model's limit are expected, not a mistake.
    warnings.filterwarnings("ignore", message="sequence of .* tokens is longer than model_max_length")
    args.run(args)


if __name__ == "__main__":
    main()
