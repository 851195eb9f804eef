"""Padded variable-length batches: 32 sequences, lengths uniform in [16, 256], MiniLM and bert-base.

Contenders: minibert unpadded (``unpad=True``, see ``minibert/fast/unpad.py``), minibert's
padded reference path (``unpad=False``), transformers with SDPA, and "gemms only, real tokens": the
projection and FFN matmuls for the real tokens alone (``common.gemm_floor``), the lowest time any
implementation that skips padding can reach with this BLAS. GFLOP/s are counted on real
tokens only, so they say how much of the machine goes into useful work.

Run: ``python -m benchmarks.bench_padded [--budget 120] [--device cpu|cuda] [--json out.json]``
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import common

BATCH, LOW, HIGH = 32, 16, 256


def run(budget_s: float = 120.0, device: str = "cpu", json_path: Optional[str] = None) -> dict[str, Any]:
    info = common.header()
    common.print_header(f"padded variable-length batch, {BATCH} × U[{LOW}, {HIGH}] ({device})", info)
    peak = common.matmul_peak(torch.float32, device=device)
    print(f"matmul peak (2048², same run): fp32 {peak:.0f} GFLOP/s")
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(LOW, HIGH + 1, (BATCH,), generator=g).tolist()
    t = max(lengths)
    rows, results = [], []
    for size in ["minilm", "bert-base"]:
        ours, theirs = common.load_pair(size, device=device)
        config = ours.config
        ids, mask = common.random_batch(BATCH, t, config.vocab_size, lengths, device=device)
        contenders = {"minibert unpadded": lambda: ours(ids, mask, unpad=True),
                      "minibert padded": lambda: ours(ids, mask, unpad=False),
                      "gemms only, real tokens": common.gemm_floor(config, sum(lengths), device)}
        if theirs is not None:
            contenders["transformers"] = lambda: theirs(input_ids=ids, attention_mask=mask)
        with torch.inference_mode():
            timing = common.time_adaptive(contenders, budget_s / 2, device=device)
        timing["gemms only, real tokens"] = common.floor_timing(timing["gemms only, real tokens"], config)  # one layer -> all
        real = common.encoder_flops(config, lengths)
        padded = common.encoder_flops(config, [t] * BATCH)
        ref = timing.get("transformers")
        gemm_flops = common.encoder_flops(config, lengths, attention=False)
        for name, tm in timing.items():
            r = common.ratio(tm, ref)
            work = gemm_flops if name.startswith("gemms") else real  # the floor does no attention
            rows.append([size, name, common.fmt_ms(tm.median), tm.spread, common.fmt_ratio(r),
                         f"{work / tm.median / 1e9:.0f} ({100 * work / tm.median / 1e9 / peak:.0f}%)"])
        results.append({"model": size, "lengths": lengths, "padded_length": t, "real_flops": real,
                        "padded_flops": padded, "padding_share": 1 - real / padded,
                        "ratio": common.ratio(timing["minibert unpadded"], ref),
                        **{name: tm.to_dict() for name, tm in timing.items()}})
        print(f"{size}: {sum(lengths)} real tokens of {BATCH * t}; padding is {100 * (1 - real / padded):.0f}% "
              "of the padded batch's FLOPs")
        del ours, theirs
    common.print_table(["model", "contender", "ms", "spread", "ratio vs transformers",
                        "GFLOP/s on real tokens (% peak)"], rows)
    data = {"header": info, "peak_gflops": {"fp32": peak}, "results": results}
    common.write_json(f"padded_{device}", data, json_path)
    return data


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    return common.run_from_command_line(run, __doc__, argv, default_budget=120.0)


if __name__ == "__main__":
    main()
