"""Tokenizer speed: minibert vs transformers' pure-Python BERT tokenizer vs its Rust-backed one.

The corpus is ``pydoc_data.topics`` (Python's own help texts, ~465k characters of English with
code, shipped with CPython), encoded two ways:

* ``lines``: one ``tokenizer(line)`` call per line (~11k calls): per-call overhead dominates, as in
  a web service encoding one request at a time;
* ``batch``: ``tokenizer(chunk)`` on chunks of ``--batch-size`` lines: the throughput case.

Every tokenizer runs in the same process, interleaved within each round (the order rotates from
round to round) after a warm-up round, so that drifting machine load hits all of them alike. We
report the median over rounds, the min-max spread, and each reference's time divided by
minibert's (``> 1`` means minibert is faster). minibert keeps a per-word cache; the warm-up fills
it, so ``minibert (cold)`` also times a freshly built tokenizer each round, cache empty.

``--baseline DIR`` adds another minibert tokenizer package (say, an older version checked out with
``git worktree`` or copied: a folder holding ``__init__.py``) as ``baseline`` and ``baseline (cold)``,
timed in the same rounds, so a change can be measured A/B on a busy machine.

Run: ``.venv/bin/python -m benchmarks.bench_tokenizer [--rounds 5] [--baseline DIR] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List


def _corpus() -> List[str]:
    from pydoc_data.topics import topics

    return "\n".join(topics.values()).split("\n")


def _versions() -> Dict[str, str]:
    info = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("torch", "transformers", "tokenizers"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            info[name] = "not installed"
    try:
        import torch

        info["torch_threads"] = str(torch.get_num_threads())
    except ImportError:
        pass
    info["cpu_count"] = str(os.cpu_count())
    for var in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS"):
        info[var] = os.environ.get(var, "(unset)")
    return info


def _runner(make_tokenizer: Callable, workload: str, lines: List[str], batch_size: int, fresh: bool):
    """A zero-argument function that encodes the corpus once and returns the ids (for checking)."""
    state = {"tok": None if fresh else make_tokenizer()}

    def prepare():
        if fresh:
            state["tok"] = make_tokenizer()

    def run():
        tok = state["tok"]
        if workload == "lines":
            return [tok(line)["input_ids"] for line in lines]
        out = []
        for i in range(0, len(lines), batch_size):
            out.extend(tok(lines[i : i + batch_size])["input_ids"])
        return out

    return prepare, run


def _load_package(folder: str):
    """Import the package in ``folder`` under a name of its own, beside the installed minibert."""
    import importlib.util

    path = os.path.join(folder, "__init__.py")
    spec = importlib.util.spec_from_file_location("baseline_tokenizer", path, submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after one warm-up round (default 5)")
    parser.add_argument("--batch-size", type=int, default=256, help="lines per call in the batch workload")
    parser.add_argument("--lines", type=int, default=0, help="use only the first N lines (0 = all)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--baseline", metavar="DIR", help="another minibert tokenizer package to time alongside")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    import transformers

    from minibert.checkpoints.hub import resolve
    from minibert.tokenizer import BertTokenizer

    try:
        from transformers import BertTokenizerLegacy
    except ImportError:  # pragma: no cover
        from transformers.models.bert import BertTokenizerLegacy

    folder = resolve("sentence-transformers/all-MiniLM-L6-v2")
    lines = _corpus()
    if args.lines:
        lines = lines[: args.lines]
    n_chars = sum(len(line) for line in lines)

    makers = {
        "minibert": lambda: BertTokenizer.from_pretrained(folder),
        "transformers-python": lambda: BertTokenizerLegacy.from_pretrained(str(folder)),
        "transformers-rust": lambda: transformers.BertTokenizer.from_pretrained(str(folder)),
    }
    contenders = [
        ("minibert", False),
        ("minibert (cold)", True),
        ("transformers-python", False),
        ("transformers-rust", False),
    ]
    if args.baseline:
        baseline = _load_package(args.baseline).BertTokenizer
        makers["baseline"] = lambda: baseline.from_pretrained(folder)
        contenders += [("baseline", False), ("baseline (cold)", True)]
    versions = _versions()
    print("# Tokenizer benchmark: pydoc_data.topics, all-MiniLM-L6-v2 vocabulary (uncased, 30522)")
    for key, value in versions.items():
        print(f"#   {key}: {value}")
    print(f"#   corpus: {len(lines)} lines, {n_chars} characters; batch size {args.batch_size}; {args.rounds} rounds")

    results = []
    for workload in ("lines", "batch"):
        runners = {
            name: _runner(makers[name.split(" ")[0]], workload, lines, args.batch_size, fresh)
            for name, fresh in contenders
        }
        # Warm-up round, which also checks that all of them produce the same ids.
        reference_ids = None
        for name, (prepare, run) in runners.items():
            prepare()
            ids = run()
            if reference_ids is None:
                reference_ids = ids
            elif ids != reference_ids:
                bad = sum(a != b for a, b in zip(ids, reference_ids))
                print(f"!! {name} disagrees with minibert on {bad} sequences ({workload})", file=sys.stderr)
        times: Dict[str, List[float]] = {name: [] for name in runners}
        names = list(runners)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                prepare, run = runners[name]
                prepare()
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        base = statistics.median(times["minibert"])
        for name in names:
            med = statistics.median(times[name])
            results.append(
                {
                    "workload": workload,
                    "tokenizer": name,
                    "median_s": med,
                    "min_s": min(times[name]),
                    "max_s": max(times[name]),
                    "chars_per_s": n_chars / med,
                    "time_vs_minibert": med / base,
                    "times_s": times[name],
                }
            )

    header = f"{'workload':8} {'tokenizer':21} {'median s':>9} {'min-max s':>15} {'Mchar/s':>8} {'x minibert':>10}"
    print(header)
    print("-" * len(header))
    for row in results:
        spread = f"{row['min_s']:.3f}-{row['max_s']:.3f}"
        print(
            f"{row['workload']:8} {row['tokenizer']:21} {row['median_s']:9.3f} {spread:>15} "
            f"{row['chars_per_s'] / 1e6:8.2f} {row['time_vs_minibert']:10.2f}"
        )
    print("# 'x minibert' = that tokenizer's median time / minibert's (warm cache); > 1 means minibert is faster.")

    if args.json:
        payload = {"benchmark": "tokenizer", "versions": versions, "lines": len(lines), "chars": n_chars,
                   "batch_size": args.batch_size, "rounds": args.rounds, "results": results}  # fmt: skip
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2)
        print(f"# wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
