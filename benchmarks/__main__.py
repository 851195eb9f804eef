"""Run every benchmark: ``OMP_WAIT_POLICY=PASSIVE python -m benchmarks [--quick]``.

Each section prints a Markdown table (with the header: versions, threads, OpenMP policy, load) and
writes JSON under ``benchmarks/results/``. The budgets keep the whole run near 15 minutes on a
2-core CPU (the engines comparison is about a third of it); ``--quick`` shrinks them for a smoke run.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import torch

from . import bench_encoder, bench_engines, bench_gpu, bench_load, bench_padded, bench_pretrain


def main() -> None:
    parser = argparse.ArgumentParser(description="minibert vs transformers, all benchmarks")
    parser.add_argument("--quick", action="store_true", help="small budgets: a smoke run, not a measurement")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    torch.set_num_threads(torch.get_num_threads())  # the default (one per core), recorded in each header
    start = time.perf_counter()
    bench_encoder.run(budget_s=120 * scale)
    if importlib.util.find_spec("onnxruntime") or importlib.util.find_spec("ctranslate2"):
        bench_engines.run(budget_s=240 * scale)
    else:
        print("note: neither onnxruntime nor ctranslate2 is installed (make bench installs them); engines skipped")
    bench_padded.run(budget_s=60 * scale)
    bench_pretrain.run(budget_s=60 * scale)
    bench_load.run(rounds=3 if args.quick else 7)
    if importlib.util.find_spec("benchmarks.bench_tokenizer") is not None:
        from . import bench_tokenizer

        bench_tokenizer.main(["--rounds", "2" if args.quick else "3", "--json", "benchmarks/results/tokenizer.json"])
    else:
        print("note: benchmarks/bench_tokenizer.py is not there yet; tokenizer benchmark skipped")
    bench_gpu.run(budget_s=120 * scale)
    print(f"\nall benchmarks: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
