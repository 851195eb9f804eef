"""Prepared corpora: `minibert prepare` (tokenise once into shards, in parallel, incrementally, atomically),
the checks made when a prepared folder is opened, and examples drawn from it as a pure function of
their index (a resume seeks in O(1), ranks read disjoint data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from minibert.data import prepare as prepare_module
from minibert.data.prepare import MANIFEST, chunk_starts, prepare, split_into_pieces, token_dtype
from minibert.data.pretraining import Vocabulary, read_documents, tokenize_document
from minibert.data.shards import (PreparedCorpus, ShardBatches, ShardExamples, feistel_permutation, is_heldout,
                                  read_manifest)
from minibert.errors import InputError
from minibert.tokenizer import BertTokenizer

MAX_SEQ = 32


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two corpus files (pydoc topics), a small vocabulary, and the corpus prepared in small shards."""
    from minibert.data.pretraining import pydoc_documents
    from minibert.data.vocab import save_vocab, train_wordpiece

    root = tmp_path_factory.mktemp("prepare")
    documents = pydoc_documents()[:16]
    (root / "corpus").mkdir()
    for name, part in (("a.txt", documents[:10]), ("b.txt", documents[10:])):
        (root / "corpus" / name).write_text("".join("\n".join(d) + "\n\n" for d in part), encoding="utf-8")
    save_vocab(train_wordpiece([s for d in documents for s in d], 400), root / "vocab")
    prepare([root / "corpus"], root / "vocab", root / "data", workers=2, max_seq_length=MAX_SEQ, shard_mb=0.02)
    return root


def copy_of(folder: Path, tmp_path: Path) -> Path:
    shutil.copytree(folder, tmp_path / "copy")
    return tmp_path / "copy"


def examples(folder: Path, **options) -> ShardExamples:
    tokenizer = BertTokenizer.from_pretrained(folder)
    corpus = PreparedCorpus(folder, tokenizer=tokenizer, max_seq_length=MAX_SEQ)
    return ShardExamples(corpus, Vocabulary.from_tokenizer(tokenizer), **{"heldout_every": 4, **options})


# ------------------------------------------------------------------------------------------ prepare

def test_shards_hold_exactly_what_the_text_reader_tokenises(setup):
    corpus = PreparedCorpus(setup / "data")
    assert len(corpus.shards) > 2  # the small shard size cut the files into several pieces
    tokenizer = BertTokenizer.from_pretrained(setup / "vocab")
    expected = [d for d in (tokenize_document(doc, tokenizer) for doc in read_documents(setup / "corpus")) if d]
    stored = [[s.tolist() for s in corpus.document(i)] for i in range(corpus.n_documents)]
    assert stored == expected
    assert corpus.arrays[0]["tokens"].dtype == np.uint16 and isinstance(corpus.arrays[0]["tokens"], np.memmap)


def test_chunks_gather_sentences_up_to_the_target_within_a_document(setup):
    corpus = PreparedCorpus(setup / "data")
    documents = corpus.chunk_documents()
    for chunk in range(corpus.n_chunks):
        document, _, sentences = corpus.chunk(chunk)
        assert document == documents[chunk]
        lengths = [len(s) for s in sentences]
        assert lengths and sum(lengths[:-1]) < MAX_SEQ - 3  # the last sentence is the one that reached it
        last_of_document = chunk + 1 == corpus.n_chunks or documents[chunk + 1] != document
        assert sum(lengths) >= MAX_SEQ - 3 or last_of_document
    # Chunks tile every document: their sentences, in order, are the document's.
    for document in range(corpus.n_documents):
        joined = [s.tolist() for c in np.flatnonzero(documents == document) for s in corpus.chunk(int(c))[2]]
        assert joined == [s.tolist() for s in corpus.document(document)]


def test_chunk_starts_small_case():
    lengths = np.array([5, 5, 5, 20, 1, 1])
    documents = np.array([0, 4, 6])                  # two documents: sentences 0-3 and 4-5
    assert chunk_starts(lengths, documents, 10).tolist() == [0, 2, 4, 6]


def test_pieces_end_at_blank_lines_and_cover_the_file(tmp_path):
    # Trailing spaces: a seek that lands among them must not end a piece in the middle of the line.
    text = "\n\n".join(f"doc {d} line one{' more' * (d % 5)}.{' ' * 9}\ndoc {d} line two." for d in range(40)) + "\n"
    path = tmp_path / "c.txt"
    path.write_text(text)
    pieces = split_into_pieces(path, 50)
    assert len(pieces) > 5 and pieces[0].start == 0 and pieces[-1].end == len(text)
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:]))
    data = path.read_bytes()
    assert all(data[p.start:p.end].endswith(b"\n\n") for p in pieces[:-1])


def test_token_type_is_the_smallest_that_holds_the_vocabulary():
    assert [token_dtype(n).name for n in (256, 257, 30522, 65536, 65537)] == \
           ["uint8", "uint16", "uint16", "uint16", "uint32"]


def test_rerun_is_incremental_and_the_worker_count_changes_nothing(setup, tmp_path):
    folder = copy_of(setup / "data", tmp_path)
    before = json.loads((folder / MANIFEST).read_text())
    again = prepare([setup / "corpus"], setup / "vocab", folder, workers=1, max_seq_length=MAX_SEQ, shard_mb=0.02)
    assert again["run"]["shards_written"] == 0 and again["run"]["shards_reused"] == len(before["shards"])
    assert again["shards"] == before["shards"]

    # One worker from scratch writes the same shards, byte for byte, as two workers did.
    fresh = prepare([setup / "corpus"], setup / "vocab", tmp_path / "fresh", workers=1, max_seq_length=MAX_SEQ,
                    shard_mb=0.02)
    assert [s["files"] for s in fresh["shards"]] == [s["files"] for s in before["shards"]]

    # Change the second file: only its shards are tokenised again, the first file's are reused.
    corpus = copy_of(setup / "corpus", tmp_path / "c")
    with open(corpus / "b.txt", "a", encoding="utf-8") as handle:
        handle.write("A new document starts here.\nIt has two sentences.\n\n")
    changed = prepare([corpus], setup / "vocab", folder, workers=2, max_seq_length=MAX_SEQ, shard_mb=0.02)
    from_a = sum(1 for s in before["shards"] if s["source"].endswith("a.txt"))
    assert changed["run"]["shards_reused"] >= from_a and changed["run"]["shards_written"] >= 1
    assert changed["totals"]["documents"] == before["totals"]["documents"] + 1
    on_disk = {p.name for p in (folder / "shards").iterdir()}
    assert on_disk == {s["name"] for s in changed["shards"]}  # the replaced shards are gone
    PreparedCorpus(folder)  # and what is listed verifies


def test_a_failed_run_leaves_the_previous_manifest_and_shards_readable(setup, tmp_path, monkeypatch):
    folder = copy_of(setup / "data", tmp_path)
    corpus = copy_of(setup / "corpus", tmp_path / "c")
    (corpus / "b.txt").write_text("Something else entirely.\nAnother sentence.\n\n" * 50)
    real = prepare_module.tokenize_piece

    def dies_after_the_first_file(piece, *args):   # runs in the forked workers
        if piece.path.endswith("b.txt"):
            raise RuntimeError("killed")
        return real(piece, *args)

    monkeypatch.setattr(prepare_module, "tokenize_piece", dies_after_the_first_file)
    with pytest.raises(RuntimeError, match="killed"):
        prepare([corpus], setup / "vocab", folder, workers=2, max_seq_length=MAX_SEQ, shard_mb=0.02)
    assert json.loads((folder / MANIFEST).read_text()) == json.loads((setup / "data" / MANIFEST).read_text())
    PreparedCorpus(folder)   # every listed shard is still there and passes its checksum


def test_cli_prepare_reports_throughput(setup, tmp_path, capsys):
    from minibert.cli import main

    assert main(["prepare", str(setup / "corpus" / "a.txt"), "--vocab", str(setup / "vocab"), "--out-dir",
                 str(tmp_path / "d"), "--workers", "1", "--max-seq-length", str(MAX_SEQ), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "MB/s" in out and "tokens/s" in out and "uint16" in out
    assert main(["prepare", str(tmp_path / "missing.txt"), "--vocab", str(setup / "vocab"),
                 "--out-dir", str(tmp_path / "e")]) == 1
    assert "missing.txt" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- bad input

def test_empty_corpus_is_refused(setup, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(InputError, match="empty"):
        prepare([tmp_path / "empty.txt"], setup / "vocab", tmp_path / "d")
    (tmp_path / "blank.txt").write_text("\n\n   \n")
    with pytest.raises(InputError, match="no text"):
        prepare([tmp_path / "blank.txt"], setup / "vocab", tmp_path / "d")
    with pytest.raises(InputError, match="workers"):
        prepare([tmp_path / "blank.txt"], setup / "vocab", tmp_path / "d", workers=0)


def test_a_binary_corpus_is_refused_naming_the_file(setup, tmp_path):
    (tmp_path / "random.bin").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(InputError, match="random.bin.*not UTF-8"):
        prepare([tmp_path / "random.bin"], setup / "vocab", tmp_path / "d")
    (tmp_path / "nul.txt").write_bytes(b"A sentence.\x00\nAnother one.\n")
    with pytest.raises(InputError, match="nul.txt.*NUL"):
        prepare([tmp_path / "nul.txt"], setup / "vocab", tmp_path / "d")


def test_a_corrupted_shard_fails_its_checksum(setup, tmp_path):
    folder = copy_of(setup / "data", tmp_path)
    tokens = next((folder / "shards").iterdir()) / "tokens.npy"
    data = bytearray(tokens.read_bytes())
    data[-1] ^= 1  # same size, one bit flipped
    tokens.write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum"):
        PreparedCorpus(folder)
    tokens.write_bytes(bytes(data[:-2]))
    with pytest.raises(InputError, match="truncated"):
        PreparedCorpus(folder, verify=False)
    tokens.unlink()
    with pytest.raises(InputError, match="missing"):
        PreparedCorpus(folder, verify=False)


def test_a_folder_is_refused_for_another_vocabulary_or_sequence_length(setup, tmp_path):
    from minibert.data.vocab import save_vocab

    other = BertTokenizer.from_pretrained(setup / "vocab").ids_to_tokens[:-1]
    save_vocab(other, tmp_path / "other")
    with pytest.raises(InputError, match="another vocabulary"):
        PreparedCorpus(setup / "data", tokenizer=BertTokenizer.from_pretrained(tmp_path / "other"))
    cased = BertTokenizer.from_pretrained(setup / "vocab", do_lower_case=False)
    with pytest.raises(InputError, match="tokenizer settings"):
        PreparedCorpus(setup / "data", tokenizer=cased)
    with pytest.raises(InputError, match="max_seq_length=32, not 64"):
        PreparedCorpus(setup / "data", max_seq_length=64)
    with pytest.raises(InputError, match="not a prepared folder"):
        PreparedCorpus(tmp_path)
    (tmp_path / MANIFEST).write_text('{"format": "something/else"}')
    with pytest.raises(InputError, match="format"):
        PreparedCorpus(tmp_path)


# ------------------------------------------------------------------------------------ examples

@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000])
def test_feistel_permutation_is_a_permutation(n):
    values = [feistel_permutation(i, n, b"key") for i in range(n)]
    assert sorted(values) == list(range(n))
    if n >= 64:
        assert values != list(range(n)) and values != [feistel_permutation(i, n, b"other") for i in range(n)]


def test_an_example_is_a_pure_function_of_its_index(setup):
    first, second = examples(setup / "data", seed=5), examples(setup / "data", seed=5)
    forward = [first.example(i) for i in range(30)]
    backward = [second.example(i) for i in reversed(range(30))][::-1]
    assert forward == backward
    assert forward[:5] != [examples(setup / "data", seed=6).example(i) for i in range(5)]
    # One epoch draws every chunk of the split once; the next epoch draws them in another order.
    n = len(first)
    epoch0 = [first.chunk_of(i) for i in range(n)]
    epoch1 = [first.chunk_of(n + i) for i in range(n)]
    assert sorted(epoch0) == sorted(epoch1) == first.chunks.tolist() and epoch0 != epoch1
    labels = [e["next_sentence_label"] for e in forward]
    assert 0 < sum(labels) < len(labels)


def test_splits_and_nsp_partners_stay_in_their_split(setup, monkeypatch):
    train, held_out = examples(setup / "data"), examples(setup / "data", split="eval")
    documents = train.corpus.chunk_documents()
    assert not any(is_heldout(int(d), 4) for d in documents[train.chunks])
    assert all(is_heldout(int(d), 4) for d in documents[held_out.chunks])
    drawn = []
    real = PreparedCorpus.document
    monkeypatch.setattr(PreparedCorpus, "document", lambda self, d: drawn.append(d) or real(self, d))
    for source in (train, held_out):
        drawn.clear()
        for i in range(60):
            source.example(i)
        assert drawn and all(is_heldout(d, 4) == (source.split == "eval") for d in drawn)


def test_ranks_read_disjoint_examples_in_the_order_of_one_accumulating_process(setup):
    source = examples(setup / "data")
    single = ShardBatches(source, batch_size=3)
    ranks = [ShardBatches(source, batch_size=3, rank=r, world_size=2) for r in range(2)]
    for step in range(4):
        # One process with two accumulated micro-batches reads what two ranks read in one step.
        assert list(single.example_indices(2 * step)) == list(ranks[0].example_indices(step))
        assert list(single.example_indices(2 * step + 1)) == list(ranks[1].example_indices(step))
    seen = [i for r in ranks for p in range(10) for i in r.example_indices(p)]
    assert len(seen) == len(set(seen))


def test_resume_seeks_without_replay(setup):
    """The cost of a resume is the examples of the first batch, at step 10 as at step 10,000."""
    uninterrupted = ShardBatches(examples(setup / "data"), batch_size=4)
    batches = [next(uninterrupted) for _ in range(12)]
    for position in (10, 10_000):
        source = examples(setup / "data")
        resumed = ShardBatches(source, batch_size=4)
        resumed.load_state_dict({**uninterrupted.state_dict(), "batches_consumed": position})
        batch = next(resumed)
        assert source.materialised == 4  # nothing before the position was built
        assert resumed.state_dict()["batches_consumed"] == position + 1
        if position == 10:
            assert all(torch.equal(batch[k], batches[10][k]) for k in batch)
            assert all(torch.equal(v, batches[11][k]) for k, v in next(resumed).items())
    with pytest.raises(InputError, match="world_size=2"):
        resumed.load_state_dict({"batches_consumed": 3, "world_size": 2})
    with pytest.raises(InputError, match="text corpus"):
        resumed.load_state_dict({"examples_consumed": 3})


def test_dataloader_workers_give_the_same_batches(setup):
    in_process = ShardBatches(examples(setup / "data"), batch_size=4)
    workers = ShardBatches(examples(setup / "data"), batch_size=4, num_workers=2, prefetch=2)
    for _ in range(5):
        a, b = next(in_process), next(workers)
        assert all(torch.equal(a[k], b[k]) for k in a)
    workers.load_state_dict({"batches_consumed": 2})
    expected = in_process.batch(2)
    assert all(torch.equal(v, expected[k]) for k, v in next(workers).items())
    workers.close()


# --------------------------------------------------------------------------- pretrain DATA

def test_a_killed_pretraining_run_resumes_with_the_same_losses(setup, tmp_path, capsys):
    """`minibert pretrain DATA` killed (SIGKILL while writing its second checkpoint) and resumed, with
    DataLoader workers, logs the losses of an uninterrupted run without workers, step for step."""
    import os
    import signal
    import subprocess
    import sys

    from test_trainer import DRIVER, REPO, checkpoint_files, losses_of

    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}

    def run(out_dir: Path, workers: int, die_on_save: int = 0, resume: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(driver), "0", str(die_on_save), str(setup / "data"), "--out-dir", str(out_dir),
             "--hidden-size", "32", "--num-layers", "1", "--num-heads", "2", "--intermediate-size", "64",
             "--batch-size", "4", "--eval-examples", "8", "--heldout-every", "4", "--steps", "6", "--warmup", "1",
             "--save-every", "2", "--seed", "3", "--threads", "1", "--data-workers", str(workers), "--no-progress"]
            + (["--resume"] if resume else []), env=env, cwd=REPO, capture_output=True, text=True, timeout=300)

    unbroken = run(tmp_path / "unbroken", workers=0)
    assert unbroken.returncode == 0, unbroken.stderr[-3000:]
    died = run(tmp_path / "run", workers=1, die_on_save=2)
    assert died.returncode == -signal.SIGKILL
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["data"] == [
        {"batches_consumed": 2, "seed": 3, "rank": 0, "world_size": 1, "batch_size": 4}]
    resumed = run(tmp_path / "run", workers=1, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert losses_of(tmp_path / "run") == losses_of(tmp_path / "unbroken") and len(losses_of(tmp_path / "run")) == 6
    assert checkpoint_files(tmp_path / "run") == ["checkpoint.pt"]
    from minibert.train.metrics_log import read_metrics

    steps = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert all(r["data_s"] >= 0 and r["compute_s"] > 0 for r in steps)   # the log splits data and compute time
    # The prepared folder fixes the sequence length: another one is refused before any work.
    from minibert.cli import main

    assert main(["pretrain", str(setup / "data"), "--out-dir", str(tmp_path / "other"), "--max-seq-length", "64"]) == 1
    assert "max_seq_length=32, not 64" in capsys.readouterr().err


def test_an_unreadable_manifest_is_refused_naming_it(setup, tmp_path):
    folder = copy_of(setup / "data", tmp_path)
    for text in ("[" * 100_000, '{"format": ' + "9" * 5000 + "}", "{"):
        (folder / MANIFEST).write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=r"cannot read .*manifest\.json"):
            read_manifest(folder)
