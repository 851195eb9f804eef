"""Pretraining at corpus scale: prepare throughput, data pipeline vs model consumption, resume cost.

    OMP_WAIT_POLICY=PASSIVE python -m benchmarks.bench_scale --corpus /work/corpus/corpus.txt [--slice-mb 4]

Four measurements, each printed as a Markdown table and written to JSON:

1. ``minibert prepare`` on the first ``--slice-mb`` MB of the corpus with 1 and 2 workers, rounds
   interleaved (1, 2, 2, 1, ...), each into a fresh folder: MB/s and tokens/s.
2. The data pipeline (``ShardBatches``, batch 32 x 128, bert-base-uncased's vocabulary) in process
   and with 2 ``DataLoader`` workers, against what a pretraining step consumes (forward, backward,
   AdamW on ``BertForPreTraining``) for BERT-mini (4 layers, 256 hidden) and bert-base (12, 768),
   interleaved: tokens/s each, and their ratio (above 1: the model never waits on data).
3. Time to resume at step 10 and at step 10,000 (set the position, get the first batch), in
   process and with 2 workers (their start included), interleaved; beside it, the text stream's
   resume (``PretrainingStream`` replays every example consumed) at steps 10 and 1,000.
4. A worked estimate for BERT-base on a 3.3B-word corpus, from the figures above and the corpus's
   own words/bytes/tokens ratios.

The machine is shared: medians of interleaved rounds, with the spread; say so when quoting them.
"""

from __future__ import annotations

import math
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from . import common

BATCH, SEQ = 32, 128
SHAPES = {"BERT-mini": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024),
          "bert-base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072)}
MODEL_ROWS = {"BERT-mini": BATCH, "bert-base": 8}   # bert-base steps on 8 rows: seconds, not minutes, on a CPU
RUN = 20  # batches per timed data call
BERT_WORDS = 3.3e9  # BooksCorpus (800M words) + English Wikipedia (2,500M words), as in the BERT paper


def corpus_slice(corpus: Path, megabytes: float, folder: Path) -> Path:
    """The corpus's first ``megabytes``, ending at a blank line, as a file in ``folder``."""
    from minibert.data.prepare import split_into_pieces

    piece = split_into_pieces(corpus, int(megabytes * 2**20))[0]
    with open(corpus, "rb") as handle:
        data = handle.read(piece.end)
    path = folder / "slice.txt"
    path.write_bytes(data)
    return path


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (the prepare workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_prepare(text: Path, vocab: Path, work: Path, rounds: int) -> dict[str, Any]:
    """Wall-clock MB/s (what the host's load allows) and MB per CPU-second (what a free core gives)."""
    from minibert.data.prepare import prepare

    runs: dict[str, list[dict[str, Any]]] = {"1 worker": [], "2 workers": []}
    for r in range(rounds):
        for name in (list(runs) if r % 2 == 0 else list(reversed(runs))):
            out = work / f"prepared-{name[0]}-{r}"
            # Pieces of a quarter of the slice: enough for two workers to share.
            shard_mb = max(0.25, text.stat().st_size / 2**20 / 4)
            cpu_before = cpu_seconds()
            run = prepare([text], vocab, out, workers=int(name[0]), shard_mb=shard_mb)["run"]
            run["cpu_seconds"] = cpu_seconds() - cpu_before
            run["mb_per_cpu_s"] = run["bytes_tokenised"] / 1e6 / run["cpu_seconds"]
            runs[name].append(run)
            if r < rounds - 1:
                shutil.rmtree(out)
    rows, result = [], {}
    for name, samples in runs.items():
        mb_s = statistics.median(s["mb_per_s"] for s in samples)
        tok_s = statistics.median(s["tokens_per_s"] for s in samples)
        mb_cpu_s = statistics.median(s["mb_per_cpu_s"] for s in samples)
        tokens_per_mb = samples[0]["tokens_tokenised"] / (samples[0]["bytes_tokenised"] / 1e6)
        result[name] = {"mb_per_s": mb_s, "tokens_per_s": tok_s, "mb_per_cpu_s": mb_cpu_s,
                        "tokens_per_cpu_s": mb_cpu_s * tokens_per_mb, "samples": samples}
        rows.append([name, f"{mb_s:.2f}", f"{tok_s:,.0f}",
                     f"{min(s['mb_per_s'] for s in samples):.2f}-{max(s['mb_per_s'] for s in samples):.2f}",
                     f"{mb_cpu_s:.2f}", f"{mb_cpu_s * tokens_per_mb:,.0f}"])
    speedup = result["2 workers"]["mb_per_s"] / result["1 worker"]["mb_per_s"]
    print(f"\n## prepare: {text.stat().st_size / 1e6:.1f} MB, {rounds} interleaved rounds each")
    common.print_table(["workers", "MB/s (wall)", "tokens/s (wall)", "MB/s range", "MB per CPU-s",
                        "tokens per CPU-s"], rows)
    print(f"2 workers / 1 worker: {speedup:.2f}x")
    return {**result, "speedup_2_over_1": speedup, "bytes": text.stat().st_size}


def _train_step(shape: dict[str, int], vocab_size: int, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    from minibert import BertConfig, BertForPreTraining

    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig(vocab_size=vocab_size, max_position_embeddings=512, **shape))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model(**batch, sparse_mlm=True).loss.backward()
        optimizer.step()
    return step


def bench_pipeline(data: Path, budget_s: float) -> dict[str, Any]:
    from minibert.data.pretraining import Vocabulary
    from minibert.data.shards import PreparedCorpus, ShardBatches, ShardExamples
    from minibert.tokenizer import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(data)
    examples = ShardExamples(PreparedCorpus(data), Vocabulary.from_tokenizer(tokenizer), heldout_every=100)
    in_process = ShardBatches(examples, batch_size=BATCH)
    workers = ShardBatches(examples, batch_size=BATCH, num_workers=2, prefetch=4)
    batch = next(in_process)
    next(workers)  # start the workers outside the timing
    seen: dict[str, list[int]] = {"data, in process": [], "data, 2 workers": []}   # real tokens per batch

    def reader(name: str, batches: ShardBatches) -> Callable[[], None]:
        def read() -> None:   # a run of batches: the sustained rate, workers building ahead in parallel
            seen[name].append(sum(int(next(batches)["attention_mask"].sum()) for _ in range(RUN)))
        return read

    contenders = {"data, in process": reader("data, in process", in_process),
                  "data, 2 workers": reader("data, 2 workers", workers)}
    tokens: dict[str, float] = {}
    for name, shape in SHAPES.items():
        rows_batch = {k: v[:MODEL_ROWS[name]] for k, v in batch.items()}
        tokens[f"{name} step"] = int(rows_batch["attention_mask"].sum())
        contenders[f"{name} step"] = _train_step(shape, tokenizer.vocab_size, rows_batch)
    times = common.time_adaptive(contenders, budget_s)
    workers.close()
    tokens.update({name: statistics.mean(counts) for name, counts in seen.items()})
    # The in-process loader's CPU cost, which the host's load does not change: tokens per CPU-second.
    cpu_started, produced = time.process_time(), 0
    for _ in range(2 * RUN):
        produced += int(next(in_process)["attention_mask"].sum())
    tokens_per_cpu_s = produced / (time.process_time() - cpu_started)
    rows, result = [], {"tokens_per_batch": tokens, "data_tokens_per_cpu_s": tokens_per_cpu_s}
    for name, timing in times.items():
        tok_s = tokens[name] / timing.median
        per_batch = timing.median / (RUN if name in seen else 1)
        result[name] = {**timing.to_dict(), "tokens_per_s": tok_s, "seconds_per_batch": per_batch}
        rows.append([name, common.fmt_ms(per_batch), timing.spread, f"{tok_s:,.0f}"])
    print(f"\n## data pipeline (batch {BATCH}x{SEQ}) vs model steps (BERT-mini {MODEL_ROWS['BERT-mini']} rows, "
          f"bert-base {MODEL_ROWS['bert-base']} rows), {torch.get_num_threads()} torch threads")
    common.print_table(["contender", "ms/batch", "spread", "tokens/s"], rows)
    print(f"data, in process: {tokens_per_cpu_s:,.0f} tokens per CPU-second")
    for name in SHAPES:
        for source in ("data, in process", "data, 2 workers"):
            r = result[source]["tokens_per_s"] / result[f"{name} step"]["tokens_per_s"]
            result[f"{source} / {name}"] = r
            print(f"{source} / {name} step consumption: {r:.1f}x")
    return result


def bench_resume(data: Path, text: Path, rounds: int) -> dict[str, Any]:
    from minibert.data.pretraining import PretrainingStream, Vocabulary
    from minibert.data.shards import PreparedCorpus, ShardBatches, ShardExamples
    from minibert.tokenizer import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(data)
    examples = ShardExamples(PreparedCorpus(data), Vocabulary.from_tokenizer(tokenizer), heldout_every=100)

    def shard_resume(step: int, num_workers: int) -> Callable[[], None]:
        def resume() -> None:
            batches = ShardBatches(examples, batch_size=BATCH, num_workers=num_workers)
            batches.load_state_dict({"batches_consumed": step})
            next(batches)
            batches.close()
        return resume

    def stream_resume(step: int) -> Callable[[], None]:
        def resume() -> None:
            stream = PretrainingStream(str(text), tokenizer, batch_size=BATCH, max_seq_length=SEQ, cache_tokens=False)
            stream.load_state_dict({"examples_consumed": step * BATCH})
            next(stream)
        return resume

    contenders = {f"shards, step {s:,}, {w} workers": shard_resume(s, w) for w in (0, 2) for s in (10, 10_000)}
    times = common.summarize(common.time_rounds(contenders, rounds=rounds, warmup=1))
    stream = common.summarize(common.time_rounds({f"text stream, step {s:,}": stream_resume(s) for s in (10, 1000)},
                                                 rounds=max(2, rounds // 2), warmup=0))
    times.update(stream)
    rows = [[name, common.fmt_ms(t.median), t.spread] for name, t in times.items()]
    print(f"\n## resume: set the position, get the first batch ({BATCH} examples); {rounds} interleaved rounds")
    common.print_table(["resume", "ms", "spread"], rows)
    return {name: t.to_dict() for name, t in times.items()}


def estimate(corpus: Path, manifest: dict[str, Any], prepare_rate: dict[str, Any], pipeline: dict[str, Any],
             shard_mb: float = 32.0) -> dict[str, Any]:
    """BERT-base on 3.3B words, scaled from this corpus's ratios and the measured rates."""
    text = corpus.read_text(encoding="utf-8", errors="replace")
    words_here = len(text.split())
    totals = manifest["totals"]
    bytes_per_word = totals["bytes"] / words_here
    tokens_per_word = totals["tokens"] / words_here
    sentences_per_token = totals["sentences"] / totals["tokens"]
    chunks_per_token = totals["chunks"] / totals["tokens"]
    corpus_bytes = BERT_WORDS * bytes_per_word
    tokens = BERT_WORDS * tokens_per_word
    # On disk: 2 bytes per token (uint16), 8 per sentence offset, 8 per chunk start (documents: few).
    disk = tokens * 2 + tokens * sentences_per_token * 8 + tokens * chunks_per_token * 8
    # Per-core rates from CPU time: what one free core does, whatever else ran on this host.
    per_worker = prepare_rate["1 worker"]["mb_per_cpu_s"] * 1e6
    hours_one_worker = corpus_bytes / per_worker / 3600
    loader_per_worker = pipeline["data_tokens_per_cpu_s"]
    # BERT's schedule: 1M steps of 256 x 128 (90%) and 100k of 256 x 512 (10%); the loader must keep up
    # with however fast the GPUs step: per 1,000 steps/hour of 256 x 128, this many tokens/s.
    tokens_per_step = 256 * 128
    result = {"words_here": words_here, "bytes_per_word": bytes_per_word, "tokens_per_word": tokens_per_word,
              "corpus_bytes": corpus_bytes, "tokens": tokens, "shards": corpus_bytes / (shard_mb * 2**20),
              "disk_bytes": disk, "prepare_hours_1_worker": hours_one_worker,
              "loader_tokens_per_s_per_worker": loader_per_worker, "tokens_per_step": tokens_per_step,
              "bert_mini_step_tokens_per_s_here": pipeline["BERT-mini step"]["tokens_per_s"],
              "bert_base_step_tokens_per_s_here": pipeline["bert-base step"]["tokens_per_s"]}
    print("\n## worked estimate: BERT-base, 3.3B words")
    print(f"this corpus: {words_here:,} words, {bytes_per_word:.2f} bytes/word, {tokens_per_word:.3f} tokens/word")
    print(f"3.3B words ~ {corpus_bytes / 1e9:.1f} GB of text, {tokens / 1e9:.2f}B tokens; {result['shards']:,.0f} "
          f"shards of {shard_mb:.0f} MB input; {disk / 1e9:.1f} GB prepared")
    print(f"prepare: {hours_one_worker:.1f} core-hours at {per_worker / 1e6:.2f} MB per CPU-second; "
          f"/ N workers (pieces are independent): {hours_one_worker * 60 / 64:.0f} min on 64 cores")
    print(f"loader: {loader_per_worker:,.0f} tokens per CPU-second per worker; BERT's 256 x 128 step is "
          f"{tokens_per_step:,} tokens")
    # BERT's 1M steps of 256 x 128 in D days: what all loaders together must deliver, and per GPU.
    need = {}
    for days in (1, 4):
        total = 1e6 * tokens_per_step / (days * 86400)
        need[days] = total
        per_gpu = ", ".join(f"{n} GPUs: {total / n:,.0f}/GPU, {math.ceil(total / n / loader_per_worker)} worker(s) each"
                            for n in (8, 64))
        print(f"1M steps in {days} day(s): {total:,.0f} tokens/s in all; {per_gpu}")
    result["loader_tokens_per_s_needed"] = need
    return result


def run(budget_s: float = 60.0, device: str = "cpu", json_path: Optional[str] = None, *,
        corpus: str = "/work/corpus/corpus.txt", slice_mb: float = 4.0, rounds: int = 3,
        vocab: Optional[str] = None) -> dict[str, Any]:
    from minibert.checkpoints.hub import resolve
    from minibert.data.prepare import prepare

    info = common.header()
    common.print_header(f"scale: prepare, data pipeline, resume ({device})", info)
    vocab_path = Path(vocab) if vocab else resolve(common.MINILM)   # bert-base-uncased's 30,522 tokens
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        text = corpus_slice(Path(corpus), slice_mb, work)
        prepare_rate = bench_prepare(text, vocab_path, work, rounds)
        data = work / "data"
        manifest = prepare([text], vocab_path, data, workers=2, max_seq_length=SEQ)
        pipeline = bench_pipeline(data, budget_s)
        resume = bench_resume(data, text, rounds=5)
        worked = estimate(text, manifest, prepare_rate, pipeline)
    result = {"info": info, "slice_mb": slice_mb, "prepare": prepare_rate, "pipeline": pipeline, "resume": resume,
              "estimate": worked}
    common.write_json("scale", result, json_path)
    return result


if __name__ == "__main__":
    import argparse

    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--corpus", default="/work/corpus/corpus.txt", help="a text corpus (scripts/build_corpus.py)")
    options.add_argument("--slice-mb", type=float, default=4.0, help="megabytes of it to prepare and read")
    options.add_argument("--rounds", type=int, default=3, help="interleaved prepare rounds per worker count")
    options.add_argument("--vocab", help="vocabulary (default: bert-base-uncased's, from the MiniLM checkpoint)")
    common.run_from_command_line(run, __doc__, None, default_budget=60.0, options=options)
