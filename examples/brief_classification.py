"""The brief's §4.2 example (BertTokenizer + BertForSequenceClassification), with minibert in place of
transformers and a local checkpoint in place of a download.

Changes from the brief's listing, each a bug there:
- tokenizing inside ``__getitem__`` with ``padding=True`` pads each sentence on its own, so the default
  collate cannot stack two lengths; padding now happens per batch, in ``collate``;
- ``device`` was never defined;
- prediction runs under ``torch.no_grad()`` after ``model.eval()``.

The classification head is freshly initialised (the checkpoint has none), so its predictions are
arbitrary until the model is fine-tuned: see ``minibert finetune`` and examples/notebooks/05.
"""

from __future__ import annotations

import sys

import torch
from torch.utils.data import DataLoader, Dataset

from minibert import DEFAULT_CHECKPOINT, BertForSequenceClassification, BertTokenizer

checkpoint = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_CHECKPOINT
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

tokenizer = BertTokenizer.from_pretrained(checkpoint)
model = BertForSequenceClassification.from_pretrained(checkpoint, num_labels=2).to(device)
print("newly initialised:", model.load_report.missing)


class MyDataset(Dataset):
    def __init__(self, sentences, labels):
        self.sentences = sentences
        self.labels = labels

    def __len__(self):
        return len(self.sentences)

    def __getitem__(self, idx):
        return self.sentences[idx], self.labels[idx]


def collate(items):
    sentences, labels = zip(*items)
    inputs = tokenizer(list(sentences), padding=True, truncation=True, max_length=64, return_tensors="pt")
    inputs["labels"] = torch.tensor(labels)
    return inputs


sentences = ["I love deep learning.", "BERT is amazing."]
labels = [1, 0]
dataloader = DataLoader(MyDataset(sentences, labels), batch_size=2, shuffle=False, collate_fn=collate)

model.eval()
with torch.no_grad():
    for batch in dataloader:
        inputs = {key: val.to(device) for key, val in batch.items()}
        outputs = model(**inputs)
        predictions = torch.argmax(outputs.logits, dim=1)
        print("loss:", round(outputs.loss.item(), 4), "logits:", outputs.logits.tolist())
        print("predictions:", predictions.tolist())
