"""One pretraining step of BertForPreTraining (hidden 384, MiniLM's shape), 8×128: forward, MLM +
NSP loss, backward, AdamW. Every contender has its own copy of the same initial weights and
optimizer and takes steps on the same batch (15% of positions labelled), interleaved.

Contenders: transformers (dense MLM head, default AdamW) as the reference; minibert dense (same
work); minibert with ``sparse_mlm=True`` (the head on labelled positions only); and that with
``torch.optim.AdamW(fused=True)``.

Run: ``python -m benchmarks.bench_pretrain [--budget 90] [--device cpu|cuda] [--json out.json]``
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import common

B, T, MASKED = 8, 128, 0.15


def fused_adamw_ok(device: str) -> bool:
    try:
        torch.optim.AdamW([torch.zeros(1, device=device, requires_grad=True)], fused=True)
        return True
    except (RuntimeError, TypeError):
        return False


def run(budget_s: float = 90.0, device: str = "cpu", json_path: Optional[str] = None) -> dict[str, Any]:
    info = common.header()
    common.print_header(f"pretraining step, BertForPreTraining hidden 384, {B}×{T} ({device})", info)
    peak = common.matmul_peak(torch.float32, device=device)
    print(f"matmul peak (2048², same run): fp32 {peak:.0f} GFLOP/s")
    ours_dense, theirs = common.load_pair("minilm", "BertForPreTraining", device=device)
    config = ours_dense.config
    ids, mask = common.random_batch(B, T, config.vocab_size, device=device)
    g = torch.Generator().manual_seed(1)
    labels = torch.where(torch.rand(B, T, generator=g) < MASKED, ids.cpu(), -100).to(device)
    nsp = torch.randint(0, 2, (B,), generator=g).to(device)
    fused = fused_adamw_ok(device)

    def stepper(model, sparse: Optional[bool], fused_adamw: bool = False):
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=fused_adamw or None)
        extra = {} if sparse is None else {"sparse_mlm": sparse}

        def step():
            opt.zero_grad(set_to_none=True)
            out = model(input_ids=ids, attention_mask=mask, labels=labels, next_sentence_label=nsp, **extra)
            out.loss.backward()
            opt.step()
            return out.loss
        return step

    def fresh():
        return common.load_pair("minilm", "BertForPreTraining", device=device)[0]

    contenders = {"minibert dense": stepper(ours_dense, False),
                  "minibert sparse MLM": stepper(fresh(), True)}
    if fused:
        contenders["minibert sparse MLM + fused AdamW"] = stepper(fresh(), True, fused_adamw=True)
    else:
        print("note: fused AdamW is not supported on this platform; skipped")
    if theirs is not None:
        contenders["transformers"] = stepper(theirs, None)
    timing = common.time_adaptive(contenders, budget_s, device=device)

    # The optimizer alone: default vs fused, on the same gradients.
    model = fresh().train()
    model(input_ids=ids, attention_mask=mask, labels=labels, next_sentence_label=nsp, sparse_mlm=True).loss.backward()
    opts = {"AdamW default": torch.optim.AdamW(model.parameters(), lr=1e-5)}
    if fused:
        opts["AdamW fused"] = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    opt_timing = common.time_adaptive({k: o.step for k, o in opts.items()}, 10, device=device, lo=5)

    # Forward + backward ≈ 3× forward matmuls; the dense MLM decoder adds b·t·c·v multiply-adds forward.
    flops = 3 * common.encoder_flops(config, [T] * B)
    ref = timing.get("transformers")
    rows = [[name, common.fmt_ms(tm.median), tm.spread, common.fmt_ratio(common.ratio(tm, ref)),
             f"{flops / tm.median / 1e9:.0f} ({100 * flops / tm.median / 1e9 / peak:.0f}%)"]
            for name, tm in timing.items()]
    rows += [[f"optimizer only: {name}", common.fmt_ms(tm.median), tm.spread, "-", "-"]
             for name, tm in opt_timing.items()]
    common.print_table(["contender", "ms per step", "spread", "ratio vs transformers",
                        "encoder GFLOP/s (% peak)"], rows)
    data = {"header": info, "peak_gflops": {"fp32": peak}, "encoder_flops_per_step": flops,
            "steps": {name: tm.to_dict() for name, tm in timing.items()},
            "optimizer": {name: tm.to_dict() for name, tm in opt_timing.items()},
            "ratios": {name: common.ratio(tm, ref) for name, tm in timing.items()}}
    common.write_json(f"pretrain_{device}", data, json_path)
    return data


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    return common.run_from_command_line(run, __doc__, argv, default_budget=90.0)


if __name__ == "__main__":
    main()
