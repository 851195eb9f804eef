"""minibert quickstart: sentence similarity with a real pretrained BERT, all from local files.

    python examples/quickstart.py [--checkpoint NAME_OR_PATH] [--query TEXT]

Steps, each visible: tokenize -> BertModel -> mean-pool the real tokens -> L2-normalise ->
cosine similarity. This is how sentence-transformers/all-MiniLM-L6-v2 was trained to be used.
"""

from __future__ import annotations

import argparse
import sys

import torch

import minibert
from minibert.sentence import pool

SENTENCES = [
    "I love deep learning.",
    "BERT is amazing.",
    "Neural networks learn representations from data.",
    "Transformers changed natural language processing.",
    "The cat sleeps on the warm windowsill.",
    "My dog enjoys long walks in the park.",
    "Paris is the capital of France.",
    "The stock market fell sharply today.",
]


def embed(model: minibert.BertModel, tokenizer: minibert.BertTokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state                       # (b, t, c)
    mean = pool(hidden, batch["attention_mask"], "mean")                # (b, c): average of real tokens
    return torch.nn.functional.normalize(mean, dim=-1)                  # unit length: dot = cosine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=minibert.DEFAULT_CHECKPOINT,
                        help="local folder, HF cache name or packaged name (default: %(default)s)")
    parser.add_argument("--query", default="Which sentence is about machine learning models like BERT?")
    args = parser.parse_args(argv)

    try:
        tokenizer = minibert.BertTokenizer.from_pretrained(args.checkpoint)
        model = minibert.BertModel.from_pretrained(args.checkpoint)
    except minibert.MinibertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cfg = model.config
    print(f"checkpoint: {args.checkpoint}")
    print(f"  {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, {cfg.num_attention_heads} heads, "
          f"vocab {cfg.vocab_size}, {model.num_parameters() / 1e6:.1f}M parameters")
    print(f"  tokens of {SENTENCES[0]!r}: {tokenizer.tokenize(SENTENCES[0])}\n")

    vectors = embed(model, tokenizer, SENTENCES)     # (n, c)
    similarity = vectors @ vectors.T                 # (n, n) cosine similarities

    labels = [f"s{i}" for i in range(len(SENTENCES))]
    for label, text in zip(labels, SENTENCES):
        print(f"  {label}: {text}")
    print("\ncosine similarity")
    print("      " + " ".join(f"{label:>5}" for label in labels))
    for label, row in zip(labels, similarity.tolist()):
        print(f"{label:>5} " + " ".join(f"{value:5.2f}" for value in row))

    query = embed(model, tokenizer, [args.query])[0]  # (c,)
    scores = vectors @ query                          # (n,)
    best = int(scores.argmax())
    print(f"\nquery: {args.query!r}")
    for i in scores.argsort(descending=True).tolist()[:3]:
        print(f"  {scores[i]:.3f}  {SENTENCES[i]}")
    print(f"nearest: {SENTENCES[best]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
