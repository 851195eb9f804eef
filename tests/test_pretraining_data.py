"""Pretraining data: sentence splitting, segment pairs, masking statistics, streaming, sharding, resumption,
and the WordPiece vocabulary trainer."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

from minibert.errors import InputError
from minibert.data.pretraining import (PretrainingStream, SegmentPair, Vocabulary, build_example, collate,
                                       create_segment_pairs, mask_tokens, pydoc_documents, read_documents,
                                       split_documents, split_sentences)
from minibert.data.vocab import SPECIAL_TOKENS, save_vocab, train_wordpiece

SPECIAL = frozenset(range(5))  # [PAD] [UNK] [CLS] [SEP] [MASK]
MASK_ID = 4
VOCAB_SIZE = 1000


def binomial_bounds(n: int, p: float, sigmas: float = 5.0) -> tuple[float, float]:
    """A count of successes in n trials with probability p lies here except with negligible probability."""
    spread = sigmas * math.sqrt(n * p * (1 - p))
    return n * p - spread, n * p + spread


# ------------------------------------------------------------------------------------- sentences

def test_split_sentences_rule_and_exceptions():
    text = "Dr. Smith went home. He slept!  Did he?\nYes, e.g. twice. Values like 3.14 stay. J. Doe agreed."
    assert split_sentences(text) == ["Dr. Smith went home.", "He slept!", "Did he?", "Yes, e.g. twice.",
                                     "Values like 3.14 stay.", "J. Doe agreed."]
    assert split_sentences("") == []
    assert split_sentences('He said "stop." Then left.') == ['He said "stop."', "Then left."]


def test_read_documents_file_format(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("First doc. Two sentences.\nA second line.\n\n\nSecond doc.\n", encoding="utf-8")
    assert list(read_documents(corpus)) == [["First doc.", "Two sentences.", "A second line."], ["Second doc."]]
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "b.txt").write_text("B one.\n", encoding="utf-8")
    (folder / "a.txt").write_text("A one.\n\nA two.\n", encoding="utf-8")
    (folder / "skip.md").write_text("not read\n", encoding="utf-8")
    assert list(read_documents(folder)) == [["A one."], ["A two."], ["B one."]]
    with pytest.raises(InputError, match="neither a file nor a folder"):
        list(read_documents(tmp_path / "missing"))


def test_pydoc_corpus_has_one_document_per_topic():
    from pydoc_data.topics import topics

    documents = pydoc_documents()
    assert len(documents) == len(topics)
    assert all(documents) and all(isinstance(s, str) and s for d in documents for s in d)


# ---------------------------------------------------------------------------------------- masking

token_lists = st.lists(st.integers(0, VOCAB_SIZE - 1), min_size=1, max_size=200)


@settings(max_examples=120, deadline=None)
@given(ids=token_lists, seed=st.integers(0, 2**32), prob=st.sampled_from([0.15, 0.3, 0.05]),
       max_predictions=st.integers(1, 40), whole_word=st.booleans())
def test_mask_tokens_invariants(ids, seed, prob, max_predictions, whole_word):
    continuation = frozenset(range(500, VOCAB_SIZE))  # ids >= 500 play "##piece"
    corrupted, labels = mask_tokens(ids, random.Random(seed), vocab_size=VOCAB_SIZE, mask_id=MASK_ID,
                                    special_ids=SPECIAL, masked_lm_prob=prob, max_predictions_per_seq=max_predictions,
                                    whole_word=whole_word, continuation_ids=continuation)
    assert len(corrupted) == len(labels) == len(ids)
    candidates = [i for i, t in enumerate(ids) if t not in SPECIAL]
    chosen = [i for i, label in enumerate(labels) if label != -100]
    expected = min(max_predictions, max(1, round(prob * len(candidates)))) if candidates else 0
    if whole_word:
        assert len(chosen) <= expected
    else:
        assert len(chosen) == expected
    for i, (original, new, label) in enumerate(zip(ids, corrupted, labels)):
        if original in SPECIAL:
            assert new == original and label == -100  # specials are never touched
        if label == -100:
            assert new == original
        else:
            assert label == original
            assert new == MASK_ID or new == original or new not in SPECIAL
    if whole_word:
        # A word is its first piece plus the continuation pieces right after it: all chosen or none.
        word_of, word = {}, -1
        for i, t in enumerate(ids):
            if t in SPECIAL:
                continue
            if not (t in continuation and i - 1 in word_of):
                word += 1
            word_of[i] = word
        chosen_words = {word_of[i] for i in chosen}
        assert chosen == sorted(i for i, w in word_of.items() if w in chosen_words)


def test_mask_replacement_rates_within_binomial_bounds():
    """80% [MASK], 10% random, 10% unchanged; every non-special position equally likely to be chosen."""
    rng = random.Random(0)
    ids = [2] + [rng.randrange(5, VOCAB_SIZE) for _ in range(98)] + [3]  # [CLS] 98 tokens [SEP]
    chosen_total = masked = randomised = unchanged = 0
    times_chosen = [0] * len(ids)
    rounds = 2000
    for _ in range(rounds):
        corrupted, labels = mask_tokens(ids, rng, vocab_size=VOCAB_SIZE, mask_id=MASK_ID, special_ids=SPECIAL,
                                        max_predictions_per_seq=1000)
        for i, label in enumerate(labels):
            if label == -100:
                continue
            times_chosen[i] += 1
            chosen_total += 1
            if corrupted[i] == MASK_ID:
                masked += 1
            elif corrupted[i] == ids[i]:
                unchanged += 1  # includes a random draw that hit the original (p = 1/995, negligible)
            else:
                randomised += 1
    assert chosen_total == rounds * round(0.15 * 98)
    for count, p in ((masked, 0.8), (randomised, 0.1), (unchanged, 0.1)):
        low, high = binomial_bounds(chosen_total, p)
        assert low <= count <= high, (count, p, chosen_total)
    assert times_chosen[0] == times_chosen[-1] == 0
    low, high = binomial_bounds(rounds, 15 / 98, sigmas=5.5)  # each position: chosen with p = n / m
    assert all(low <= c <= high for c in times_chosen[1:-1]), (min(times_chosen[1:-1]), max(times_chosen[1:-1]))


def test_mask_tokens_rejects_bad_arguments():
    with pytest.raises(InputError, match="masked_lm_prob"):
        mask_tokens([5, 6], random.Random(0), vocab_size=10, mask_id=4, special_ids=SPECIAL, masked_lm_prob=1.5)
    with pytest.raises(InputError, match="max_predictions_per_seq"):
        mask_tokens([5, 6], random.Random(0), vocab_size=10, mask_id=4, special_ids=SPECIAL, max_predictions_per_seq=-1)


# ---------------------------------------------------------------------------------- segment pairs

@st.composite
def corpora(draw):
    """Documents of sentences whose token ids are all distinct, so each token tells where it came from."""
    counter = iter(range(10, 10**6))
    n_docs = draw(st.integers(2, 6))
    return [[[next(counter) for _ in range(draw(st.integers(1, 30)))]
             for _ in range(draw(st.integers(1, 12)))] for _ in range(n_docs)]


@settings(max_examples=60, deadline=None)
@given(documents=corpora(), max_seq_length=st.integers(8, 64), short_seq_prob=st.sampled_from([0.0, 0.1, 1.0]),
       seed=st.integers(0, 10**6))
def test_segment_pair_invariants(documents, max_seq_length, short_seq_prob, seed):
    rng = random.Random(seed)
    origin = {t: (d, pos) for d, doc in enumerate(documents) for pos, t in enumerate(t for s in doc for t in s)}
    for doc_index in range(len(documents)):
        for pair in create_segment_pairs(documents, doc_index, max_seq_length, short_seq_prob, rng):
            assert pair.tokens_a and pair.tokens_b
            assert len(pair.tokens_a) + len(pair.tokens_b) <= max_seq_length - 3
            for segment in (pair.tokens_a, pair.tokens_b):  # each segment is one contiguous run of a document
                docs = {origin[t][0] for t in segment}
                positions = [origin[t][1] for t in segment]
                assert len(docs) == 1 and positions == list(range(positions[0], positions[0] + len(segment)))
            assert origin[pair.tokens_a[0]][0] == doc_index
            b_doc = origin[pair.tokens_b[0]][0]
            if pair.is_random_next:
                assert b_doc != doc_index
            else:
                assert b_doc == doc_index and origin[pair.tokens_b[0]][1] > origin[pair.tokens_a[-1]][1]


def test_nsp_labels_are_about_half_random():
    rng = random.Random(1)
    documents = [[[rng.randrange(10, 900) for _ in range(rng.randint(5, 25))] for _ in range(40)] for _ in range(20)]
    pairs = [p for i in range(20) for _ in range(5) for p in create_segment_pairs(documents, i, 128, 0.1, rng)]
    randoms = sum(p.is_random_next for p in pairs)
    low, high = binomial_bounds(len(pairs), 0.5)
    assert len(pairs) > 500 and low <= randoms <= high + 0.05 * len(pairs)  # single-sentence chunks are always random


def test_build_example_and_collate():
    vocab = Vocabulary.from_tokens(list(SPECIAL_TOKENS) + [f"w{i}" for i in range(20)] + ["##x"])
    example = build_example(SegmentPair([5, 6, 7], [8, 9], False), vocab, random.Random(0))
    assert example["token_type_ids"] == [0, 0, 0, 0, 0, 1, 1, 1]
    assert example["input_ids"][0] == vocab.cls_id and example["input_ids"][4] == example["input_ids"][-1] == vocab.sep_id
    assert sum(label != -100 for label in example["labels"]) == 1  # round(0.15 * 5) = 1
    short = build_example(SegmentPair([5], [6], True), vocab, random.Random(0))
    batch = collate([example, short], pad_id=vocab.pad_id)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert batch["labels"][1, 5:].tolist() == [-100, -100, -100]
    assert batch["next_sentence_label"].tolist() == [0, 1]


# ----------------------------------------------------------------------------------------- stream

@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from minibert.tokenizer import BertTokenizer

    folder = tmp_path_factory.mktemp("vocab")
    texts = [s for doc in pydoc_documents()[:12] for s in doc]
    save_vocab(train_wordpiece(texts, 600), folder)
    return BertTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    """40 documents in BERT's file format, from pydoc topics cut into pieces."""
    sentences = [s for doc in pydoc_documents()[:12] for s in doc] * 3
    assert len(sentences) >= 480
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    with open(path, "w", encoding="utf-8") as out:
        for d in range(40):
            out.write("\n".join(sentences[d * 12:(d + 1) * 12]) + "\n\n")
    return path


def _stream(corpus, tokenizer, **overrides):
    options = dict(batch_size=4, max_seq_length=48, buffer_documents=5, seed=7)
    options.update(overrides)
    return PretrainingStream(corpus, tokenizer, **options)


def test_stream_reads_a_file_larger_than_its_buffer(corpus_file, tokenizer):
    stream = _stream(corpus_file, tokenizer)
    chunk_sizes = [len(chunk) for chunk in stream._chunks()]
    assert max(chunk_sizes) == 5 and sum(chunk_sizes) == 40  # never more than the buffer in memory
    vocab = stream.vocab
    for _ in range(60):  # past the end of the first epoch
        batch = next(stream)
        b, t = batch["input_ids"].shape
        assert b == 4 and t <= 48
        assert (batch["input_ids"][:, 0] == vocab.cls_id).all()
        labelled = batch["labels"] != -100
        assert labelled.any()
        specials = torch.isin(batch["input_ids"], torch.tensor(sorted(vocab.special_ids - {vocab.mask_id})))
        assert not (labelled & specials).any()
    assert stream.examples_consumed == 240


def test_stream_is_deterministic_and_resumable(corpus_file, tokenizer):
    first = [next(_stream(corpus_file, tokenizer)) for _ in range(1)][0]
    again = next(_stream(corpus_file, tokenizer))
    assert all(torch.equal(first[k], again[k]) for k in first)
    other = next(_stream(corpus_file, tokenizer, seed=8))
    assert not torch.equal(first["input_ids"], other["input_ids"]) or not torch.equal(first["labels"], other["labels"])

    stream = _stream(corpus_file, tokenizer, cache_tokens=True)
    for _ in range(13):
        next(stream)
    state = stream.state_dict()
    expected = [next(stream) for _ in range(3)]
    restored = _stream(corpus_file, tokenizer)
    restored.load_state_dict(state)
    for want in expected:
        got = next(restored)
        assert all(torch.equal(want[k], got[k]) for k in want)
    with pytest.raises(InputError, match="seed"):
        _stream(corpus_file, tokenizer, seed=1).load_state_dict(state)


def test_rank_shards_are_disjoint_and_cover_the_training_documents(corpus_file, tokenizer):
    def indices(rank, world_size, split="train"):
        return {i for i, _ in split_documents(read_documents(corpus_file), split, 4, rank, world_size)}

    everything, shard0, shard1, held_out = indices(0, 1), indices(0, 2), indices(1, 2), indices(0, 1, "eval")
    assert shard0 and shard1 and not shard0 & shard1 and shard0 | shard1 == everything
    assert held_out == set(range(0, 40, 4)) and everything == set(range(40)) - held_out
    first0 = next(_stream(corpus_file, tokenizer, rank=0, world_size=2, heldout_every=4))
    first1 = next(_stream(corpus_file, tokenizer, rank=1, world_size=2, heldout_every=4))
    assert not torch.equal(first0["input_ids"], first1["input_ids"])


def test_stream_rejects_bad_arguments(corpus_file, tokenizer):
    with pytest.raises(InputError, match="batch_size"):
        _stream(corpus_file, tokenizer, batch_size=0)
    with pytest.raises(InputError, match="rank"):
        _stream(corpus_file, tokenizer, rank=2, world_size=2)
    with pytest.raises(InputError, match="holds no document"):
        next(_stream([["  "]], tokenizer))


# ------------------------------------------------------------------------------------- vocabulary

def test_train_wordpiece_layout_and_tokenizer_round_trip(tmp_path):
    from minibert.tokenizer import BertTokenizer

    text = ["The quick brown fox jumps over the lazy dog.", "The dog sleeps; the fox runs quickly!"] * 20
    tokens = train_wordpiece(text, 80, min_frequency=2)
    assert tokens[:5] == list(SPECIAL_TOKENS) and len(tokens) <= 80 and len(set(tokens)) == len(tokens)
    assert tokens == train_wordpiece(text, 80, min_frequency=2)  # deterministic
    assert "the" in tokens and "fox" in tokens
    tokenizer = BertTokenizer.from_pretrained(save_vocab(tokens, tmp_path / "tok").parent)
    assert tokenizer.pad_token_id == 0 and tokenizer.mask_token_id == 4
    pieces = tokenizer.tokenize("The lazy fox sleeps.")
    assert "[UNK]" not in pieces and "".join(p.removeprefix("##") for p in pieces) == "thelazyfoxsleeps."
    likelihood = train_wordpiece(text, 80, min_frequency=2, score="likelihood")
    assert likelihood[:5] == list(SPECIAL_TOKENS) and len(likelihood) <= 80


def test_train_wordpiece_reads_files_and_checks_arguments(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world\nhello there\n", encoding="utf-8")
    tokens = train_wordpiece(Path(corpus), 40, min_frequency=1)
    assert "hello" in tokens
    with pytest.raises(InputError, match="too small"):
        train_wordpiece("abcdefghij", 8)
    with pytest.raises(InputError, match="vocab_size"):
        train_wordpiece("abc", 3)
    with pytest.raises(InputError, match="score"):
        train_wordpiece("abc", 30, score="best")


def test_vocab_cli(tmp_path, capsys):
    from minibert.data import vocab

    corpus = tmp_path / "c.txt"
    corpus.write_text("alpha beta gamma\nalpha beta\n", encoding="utf-8")
    assert vocab.main([str(corpus), "-o", str(tmp_path / "out" / "vocab.txt"), "--vocab-size", "40",
                       "--min-frequency", "1"]) == 0
    lines = (tmp_path / "out" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert lines[:5] == list(SPECIAL_TOKENS) and "alpha" in lines
    assert "wrote" in capsys.readouterr().out


def test_random_next_never_comes_from_the_same_document():
    """Regression (found by hypothesis): with two documents, ten unlucky draws used to leave the
    "random" segment B in A's own document while labelling the pair random."""
    from minibert.data.pretraining import create_segment_pairs

    class Unlucky(random.Random):
        """Always lands on document 0 for its first ten document draws, always asks for a random B."""

        def __init__(self):
            super().__init__(0)
            self.document_draws = 0

        def random(self):
            return 0.0

        def randrange(self, *args):
            if args == (2,) and self.document_draws < 10:
                self.document_draws += 1
                return 0
            return super().randrange(*args)

    documents = [[[10, 11, 12], [13, 14, 15], [16, 17]], [[50, 51, 52], [53, 54]]]
    pairs = create_segment_pairs(documents, 0, max_seq_length=16, short_seq_prob=0.0, rng=Unlucky())
    randoms = [p for p in pairs if p.is_random_next]
    assert randoms, "the unlucky generator must produce a random-next pair"
    assert all(t >= 50 for p in randoms for t in p.tokens_b)


# ------------------------------------------------------------------------ corpora that cannot be used

def test_a_corpus_without_blank_lines_is_one_document_and_refused_before_any_work(tmp_path):
    from minibert.data.corpus import open_corpus
    from minibert.data.pretraining import check_enough_documents

    corpus = tmp_path / "lines.txt"
    corpus.write_text("".join(f"Sentence number {i} is here.\n" for i in range(50)), encoding="utf-8")
    with pytest.raises(InputError, match=r"lines.txt holds 1 document\(s\) \(documents are separated by blank lines"):
        check_enough_documents(open_corpus(corpus), heldout_every=10)
    corpus.write_text("A one.\n\nB one.\n\nC one.\n", encoding="utf-8")
    check_enough_documents(open_corpus(corpus), heldout_every=10)  # 1 held out, 2 for training
    with pytest.raises(InputError, match=r"3 document\(s\).*at least 4 training document\(s\) \(2 process"):
        check_enough_documents(open_corpus(corpus), heldout_every=10, world_size=2)


@pytest.mark.parametrize("content, problem", [
    (bytes(random.Random(0).randrange(256) for _ in range(20000)), "not UTF-8 text"),
    (b"Plain words.\n\nMore words\x00 with a NUL.\n", "line 3 holds NUL bytes"),
])
def test_a_corpus_that_is_not_text_is_refused_naming_the_file(tmp_path, content, problem):
    from minibert.data.corpus import open_corpus
    from minibert.data.pretraining import check_enough_documents
    from minibert.data.vocab import corpus_inputs

    corpus = tmp_path / "data.bin"
    corpus.write_bytes(content)
    with pytest.raises(InputError, match=f"data.bin.*{problem}"):
        check_enough_documents(open_corpus(corpus), heldout_every=10)
    with pytest.raises(InputError, match=f"data.bin.*{problem}"):
        list(corpus_inputs([str(corpus)]))  # the vocabulary trainer reads through the same reader


def test_epoch_batches_shard_reshuffle_and_resume_exactly():
    from minibert.data.batches import EpochBatches

    rows = [{"input_ids": [i], "labels": i} for i in range(11)]
    ranks = [EpochBatches(rows, 2, seed=5, rank=r, world_size=2) for r in range(2)]
    assert ranks[0].batches_per_epoch == 3  # 11 rows, 5 per rank (one sits the epoch out), batches of 2
    epochs = []
    for _ in range(2):
        seen = [[i for _ in range(3) for i in next(stream)["labels"].tolist()] for stream in ranks]
        assert len(seen[0]) == len(seen[1]) == 5 and not set(seen[0]) & set(seen[1])  # disjoint ranks
        epochs.append(seen)
    assert epochs[0] != epochs[1]  # a new order every epoch
    resumed = EpochBatches(rows, 2, seed=5, rank=1, world_size=2)
    resumed.load_state_dict(ranks[1].state_dict())
    assert [next(resumed)["labels"].tolist() for _ in range(4)] == [next(ranks[1])["labels"].tolist() for _ in range(4)]
    with pytest.raises(InputError, match="seed=5"):
        EpochBatches(rows, 2, seed=6).load_state_dict(ranks[0].state_dict())
