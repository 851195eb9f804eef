"""Compute the reference values that notebooks 03 and 06 check themselves against.

The oracle is Hugging Face ``transformers`` (tokenizer and model) on the same local checkpoint that
minibert loads, all-MiniLM-L6-v2. The notebooks compare minibert's numbers with the JSON file this
script writes, so they stay self-checking on a machine without ``transformers``. Run it again only
when the sentences or the stored quantities change:

    .venv/bin/python examples/notebooks/reference/make_reference.py

Everything is computed in float32 on CPU, the precision the notebooks run in.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers

import minibert

OUT = Path(__file__).with_name("minilm_reference.json")

# Notebook 03: one sentence, looked at token by token.
SENTENCE = "The cat sat on the mat because it was tired."
LAYER, HEAD = 5, 11         # the attention map notebook 03 plots ("it" attends to "cat")
N_DIMS = 8                  # how many hidden dimensions per token to store

# Notebook 06: sentences in three topics, two per topic.
SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs a song with an acoustic guitar.",
    "The stock market fell sharply this morning.",
    "Shares dropped as investors worried about inflation.",
    "The recipe needs two eggs and a cup of flour.",
    "Mix the flour with the eggs to make the dough.",
]


def main() -> None:
    folder = minibert.resolve(minibert.DEFAULT_CHECKPOINT)
    tokenizer = transformers.BertTokenizer.from_pretrained(str(folder))
    model = transformers.BertModel.from_pretrained(str(folder), attn_implementation="eager").eval()

    with torch.no_grad():
        enc = tokenizer(SENTENCE, return_tensors="pt")
        out = model(**enc, output_attentions=True)
        hidden = out.last_hidden_state[0]                                   # (t, c)
        attention = out.attentions[LAYER][0, HEAD]                          # (t, t)

        batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
        tokens = model(**batch).last_hidden_state                           # (b, t, c)
        mask = batch["attention_mask"].unsqueeze(-1).float()                # (b, t, 1)
        mean = (tokens * mask).sum(1) / mask.sum(1)                         # (b, c): mean pooling
        unit = torch.nn.functional.normalize(mean, dim=-1)
        cosine = unit @ unit.T                                              # (b, b)

    reference = {
        "made_by": "examples/notebooks/reference/make_reference.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "checkpoint": minibert.DEFAULT_CHECKPOINT,
        "sentence": SENTENCE,
        "tokens": tokenizer.convert_ids_to_tokens(enc["input_ids"][0]),
        "input_ids": enc["input_ids"][0].tolist(),
        "n_dims": N_DIMS,
        "last_hidden_state_first_dims": hidden[:, :N_DIMS].tolist(),        # (t, N_DIMS)
        "last_hidden_state_norms": hidden.norm(dim=-1).tolist(),            # (t,)
        "pooler_output_first_dims": out.pooler_output[0, :N_DIMS].tolist(),
        "attention_layer": LAYER,
        "attention_head": HEAD,
        "attention": attention.tolist(),                                    # (t, t)
        "sentences": SENTENCES,
        "sentence_embeddings_first_dims": unit[:, :N_DIMS].tolist(),        # (b, N_DIMS), unit-normalised
        "cosine_similarity": cosine.tolist(),                               # (b, b)
    }
    OUT.write_text(json.dumps(reference, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
