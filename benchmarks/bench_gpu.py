"""The same side-by-side comparisons on CUDA: encoder, padded batches, pretraining step.

Skipped, with a printed note, when ``torch.cuda.is_available()`` is False. Timings synchronise the
device around every call (``common.time_rounds``), so they measure the work, not the launch.

Run: ``python -m benchmarks.bench_gpu [--budget 120]``
"""

from __future__ import annotations

import argparse
from typing import Any, Optional

import torch

from . import bench_encoder, bench_padded, bench_pretrain, common


def run(budget_s: float = 120.0) -> dict[str, Any]:
    if not torch.cuda.is_available():
        print("\n=== GPU ===\nnote: torch.cuda.is_available() is False on this machine; GPU benchmarks skipped")
        data = {"header": common.header(), "skipped": "torch.cuda.is_available() is False"}
        common.write_json("gpu", data)
        return data
    print(f"\n=== GPU: {torch.cuda.get_device_name()} ===")
    return {"encoder": bench_encoder.run(budget_s / 2, device="cuda"),
            "padded": bench_padded.run(budget_s / 4, device="cuda"),
            "pretrain": bench_pretrain.run(budget_s / 4, device="cuda")}


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=120.0)
    args = parser.parse_args(argv)
    return run(args.budget)


if __name__ == "__main__":
    main()
