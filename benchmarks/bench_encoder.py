"""Encoder inference, full batches: minibert vs transformers (SDPA), same weights, interleaved.

Shapes 1×128, 8×128, 32×128 and 8×512 for a bert-base-sized model (random weights) and MiniLM
(hidden 384, the default checkpoint). A third contender, "gemms only", runs one layer's projection
and FFN matmuls alone at the same shapes, timed and multiplied by the number of layers: its ratio
("floor") is the best any implementation issuing those matmuls could show here. Achieved GFLOP/s
count the encoder's matmuls (see ``common.encoder_flops``) and are set against the fp32 matmul peak
measured in the same run.
bf16 (``model.to(torch.bfloat16)``) is timed at 8×128, with its error against fp32 beside it.

Run: ``python -m benchmarks.bench_encoder [--budget 150] [--device cpu|cuda] [--json out.json]``;
one row, more rounds: ``... --size bert-base --shape 8x128 --max-rounds 15 --budget 1000``
"""

from __future__ import annotations

import argparse
import copy
from typing import Any, Optional, Sequence

import torch

from . import common

SHAPES = [(1, 128), (8, 128), (32, 128), (8, 512)]
SIZES = ["bert-base", "minilm"]


def bf16_error(ours, ids, mask) -> dict[str, float]:
    """How far bf16 lands from the fp32 reference: max abs and relative (Frobenius) error on real tokens."""
    with torch.inference_mode():
        ref = ours(ids, mask).last_hidden_state.float()
        low = copy.deepcopy(ours).to(torch.bfloat16)(ids, mask).last_hidden_state.float()
    keep = mask.bool()
    diff = (low - ref)[keep]
    return {"max_abs": diff.abs().max().item(), "rel": (diff.norm() / ref[keep].norm()).item()}


def run(budget_s: float = 150.0, device: str = "cpu", json_path: Optional[str] = None,
        sizes: Optional[Sequence[str]] = None, shapes: Optional[Sequence[tuple[int, int]]] = None,
        max_rounds: int = 9) -> dict[str, Any]:
    sizes, shapes = sizes or SIZES, shapes or SHAPES
    info = common.header()
    common.print_header(f"encoder inference, full batches ({device})", info)
    peak = common.matmul_peak(torch.float32, device=device)
    bf16_native = common.native_bf16(device)
    # Emulated bf16 is ~1 GFLOP/s here: a small matrix is enough to show it.
    peak_bf16 = common.matmul_peak(torch.bfloat16, n=2048 if bf16_native else 256, device=device)
    print(f"matmul peak (same run): fp32 {peak:.0f} GFLOP/s, bf16 {peak_bf16:.1f} GFLOP/s"
          + ("" if bf16_native else " (no AMX/AVX512-BF16 on this CPU: bf16 is emulated, so only its error "
                                   "is measured, at 1×64 on MiniLM)"))
    per_shape = budget_s / (len(sizes) * (len(shapes) + 1))
    rows, results = [], []
    for size in sizes:
        ours, theirs = common.load_pair(size, device=device)
        config = ours.config
        for b, t in shapes:
            ids, mask = common.random_batch(b, t, config.vocab_size, device=device)
            contenders = {"minibert": lambda: ours(ids, mask), "gemms only": common.gemm_floor(config, b * t, device)}
            if theirs is not None:
                contenders["transformers"] = lambda: theirs(input_ids=ids, attention_mask=mask)
            with torch.inference_mode():
                timing = common.time_adaptive(contenders, per_shape, device=device, hi=max_rounds)
            timing["gemms only"] = common.floor_timing(timing["gemms only"], config)  # one layer -> all
            flops = common.encoder_flops(config, [t] * b)
            r = common.ratio(timing["minibert"], timing.get("transformers"))
            floor = common.ratio(timing["gemms only"], timing.get("transformers"))
            row = {"model": size, "shape": f"{b}x{t}", "flops": flops, "ratio": r, "floor_ratio": floor,
                   **{name: tm.to_dict() for name, tm in timing.items()}}
            results.append(row)
            theirs_t = timing.get("transformers")
            rows.append([size, f"{b}×{t}", common.fmt_ms(timing["minibert"].median), timing["minibert"].spread,
                         common.fmt_ms(theirs_t.median) if theirs_t else "-", theirs_t.spread if theirs_t else "-",
                         common.fmt_ratio(r), common.fmt_ratio(floor),
                         f"{flops / timing['minibert'].median / 1e9:.0f} ({100 * flops / timing['minibert'].median / 1e9 / peak:.0f}%)",
                         f"{flops / theirs_t.median / 1e9 / peak * 100:.0f}%" if theirs_t else "-"])

        # bf16: speed against minibert's own fp32 at 8×128 where the hardware has bf16; its error always.
        b, t = (8, 128) if bf16_native else (1, 64)
        if not bf16_native and size != "minilm":
            del ours, theirs
            continue
        ids, mask = common.random_batch(b, t, config.vocab_size, device=device)
        err = bf16_error(ours, ids, mask)
        row = {"model": size, "shape": f"{b}x{t}", "dtype": "bfloat16", "error": err, "native": bf16_native}
        if bf16_native:
            low = common.load_pair(size, device=device)[0].to(torch.bfloat16)
            with torch.inference_mode():
                timing = common.time_adaptive({"fp32": lambda: ours(ids, mask), "bf16": lambda: low(ids, mask)},
                                              per_shape, device=device)
            flops = common.encoder_flops(config, [t] * b)
            row.update({"speedup_vs_fp32": timing["fp32"].median / timing["bf16"].median,
                        **{name: tm.to_dict() for name, tm in timing.items()}})
            rows.append([f"{size} bf16", f"{b}×{t}", common.fmt_ms(timing["bf16"].median), timing["bf16"].spread,
                         f"fp32 {common.fmt_ms(timing['fp32'].median)}", timing["fp32"].spread,
                         f"{timing['bf16'].median / timing['fp32'].median:.2f} vs fp32", "-",
                         f"{flops / timing['bf16'].median / 1e9:.0f} ({100 * flops / timing['bf16'].median / 1e9 / peak_bf16:.0f}% bf16)",
                         f"err max {err['max_abs']:.1e}, rel {err['rel']:.1e}"])
        else:
            rows.append([f"{size} bf16", f"{b}×{t}", "not timed (emulated)", "-", "-", "-", "-", "-", "-",
                         f"err max {err['max_abs']:.1e}, rel {err['rel']:.1e}"])
        results.append(row)
        del ours, theirs

    common.print_table(["model", "b×t", "minibert ms", "spread", "transformers ms", "spread",
                        "ratio", "floor", "minibert GFLOP/s (% peak)", "transformers % peak"], rows)
    print("# floor = the projection and FFN matmuls alone (common.gemm_floor, one layer × layers) / transformers: "
          "the lowest ratio any implementation issuing the same matmuls can reach on this host.")
    data = {"header": info, "peak_gflops": {"fp32": peak, "bf16": peak_bf16}, "results": results}
    common.write_json(f"encoder_{device}", data, json_path)
    return data


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Besides the shared options: ``--size`` and ``--shape BxT`` (repeatable) pick rows, ``--max-rounds``
    allows more rounds, to settle one row on a noisy host, e.g.
    ``--size bert-base --shape 8x128 --max-rounds 15 --budget 1000``."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--size", dest="sizes", action="append", choices=SIZES, help="model size (default: all)")
    options.add_argument("--shape", dest="shapes", action="append", help="BxT, e.g. 8x128 (default: all)",
                         type=lambda text: tuple(int(x) for x in text.split("x")))
    options.add_argument("--max-rounds", type=int, default=9, help="most timed rounds per row")
    return common.run_from_command_line(run, __doc__, argv, default_budget=150.0, options=options)

if __name__ == "__main__":
    main()
