"""Build, measure and export a masked-LM pretrained by minibert (docs/results/fillmask.md).

    python scripts/fill_mask_model.py split CORPUS runs/fill-mask --heldout-every 20
    minibert train-vocab runs/fill-mask/train.txt --vocab-size 16000 -o runs/fill-mask/vocab
    python -m minibert.train.pretrain runs/fill-mask/train.txt --vocab runs/fill-mask/vocab ...
    python scripts/fill_mask_model.py evaluate runs/fill-mask/bert runs/fill-mask
    python scripts/fill_mask_model.py export runs/fill-mask/bert minibert/pretrained/fill_mask
    python scripts/fill_mask_model.py fixture runs/fill-mask/bert runs/fill-mask tests/fixtures/fill_mask_cloze.json

``split`` holds out whole documents before anything is trained: every ``--heldout-every``-th document
(in a seeded random order) goes to ``heldout.txt``, the others to ``train.txt``. Neither the vocabulary
nor the model ever reads ``heldout.txt``; every accuracy below is measured on it.

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


@torch.inference_mode()
def masked_accuracy(model: BertForMaskedLM, tokenizer: BertTokenizer, segments: list[list[int]],
                    ranking: list[int], seed: int = 0, rate: float = 0.15, batch_size: int = 32) -> dict:
    """Top-1/top-5 accuracy on 15% masked pieces of ``segments``: the model and the unigram baseline."""
    generator = random.Random(seed)
    hits = Counter()
    for start in range(0, len(segments), batch_size):
        chunk = segments[start:start + batch_size]
        width = max(len(s) for s in chunk) + 2
        input_ids = torch.full((len(chunk), width), tokenizer.pad_token_id)           # (b, t)
        labels = torch.full((len(chunk), width), -100)                                 # (b, t)
        for row, pieces in enumerate(chunk):
            ids = [tokenizer.cls_token_id] + pieces + [tokenizer.sep_token_id]
            positions = generator.sample(range(1, len(ids) - 1), max(1, round(rate * len(pieces))))
            input_ids[row, :len(ids)] = torch.tensor(ids)
            for position in positions:
                labels[row, position] = ids[position]
                input_ids[row, position] = tokenizer.mask_token_id
        attention_mask = (torch.arange(width) < torch.tensor([len(s) + 2 for s in chunk])[:, None]).long()
        logits = model(input_ids, attention_mask).logits                               # (b, t, v)
        where = labels != -100
        targets = labels[where]                                                        # (n,)
        top5 = logits[where].topk(5, dim=-1).indices                                   # (n, 5)
        hits["masked"] += targets.numel()
        hits["top1"] += int((top5[:, 0] == targets).sum())
        hits["top5"] += int((top5 == targets[:, None]).any(-1).sum())
        hits["unigram_top1"] += int((targets == ranking[0]).sum())
        hits["unigram_top5"] += int(torch.isin(targets, torch.tensor(ranking[:5])).sum())
    n = hits["masked"]
    return {"masked_tokens": n, "segments": len(segments),
            "top1": hits["top1"] / n, "top5": hits["top5"] / n,
            "unigram_top1": hits["unigram_top1"] / n, "unigram_top5": hits["unigram_top5"] / n,
            "unigram_top5_tokens": tokenizer.convert_ids_to_tokens(ranking[:5])}


def evaluate(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    data = Path(args.data_dir)
    tokenizer = BertTokenizer.from_pretrained(args.checkpoint)
    model = BertForMaskedLM.from_pretrained(args.checkpoint).float().eval()
    ranking = unigram_ranking(data / "train.txt", tokenizer, args.unigram_bytes)
    segments = _segments(data / "heldout.txt", tokenizer, args.segments)
    print(json.dumps(masked_accuracy(model, tokenizer, segments, ranking), indent=2))


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
    """Held-out clozes for the test: segments of held-out documents with 15% of their pieces masked,
    stored as word pieces (so the test needs no sentence splitting), and the baseline's top 5."""
    data = Path(args.data_dir)
    tokenizer = BertTokenizer.from_pretrained(args.checkpoint)
    ranking = unigram_ranking(data / "train.txt", tokenizer, args.unigram_bytes)
    generator = random.Random(args.seed)
    clozes = []
    for pieces in _segments(data / "heldout.txt", tokenizer, 10 * args.count)[::10][:args.count]:
        pieces = pieces[:60]  # short segments keep the test fast
        positions = sorted(generator.sample(range(len(pieces)), max(1, round(0.15 * len(pieces)))))
        tokens = tokenizer.convert_ids_to_tokens(pieces)
        clozes.append({"tokens": [tokenizer.mask_token if i in positions else t for i, t in enumerate(tokens)],
                       "answers": [tokens[i] for i in positions]})
    payload = {"source": "held-out documents of the fill-mask corpus (never seen by the vocabulary or the model); "
                         "15% of each segment's word pieces masked",
               "unigram_top5": tokenizer.convert_ids_to_tokens(ranking[:5]), "clozes": clozes}
    Path(args.out).write_text(json.dumps(payload, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(clozes)} segments, {sum(len(c['answers']) for c in clozes)} masked pieces -> {args.out}")


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
