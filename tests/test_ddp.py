"""Data-parallel training: two processes (torchrun, gloo on 127.0.0.1) each on half of a global batch end
with the same parameters as one process on the whole batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
STEPS = 3

# Every row of helpers.make_batches has the same number of masked positions, so the mean loss over
# the global batch equals the average of the two halves' mean losses: what DDP's gradient averaging computes.
WORKER = textwrap.dedent("""
    import json, sys
    import torch
    from helpers import BatchList, make_batches, tiny_model
    from minibert.train.distributed import cleanup_distributed, init_distributed
    from minibert.train.trainer import TrainConfig, Trainer

    torch.set_num_threads(1)
    out_dir, steps = sys.argv[1], int(sys.argv[2])
    context = init_distributed("cpu")
    assert context.world_size == 2 and torch.distributed.get_backend() == "gloo"
    half = 8 // context.world_size
    mine = [{k: v[context.rank * half:(context.rank + 1) * half] for k, v in batch.items()}
            for batch in make_batches(steps, batch_size=8, seed=1)]
    model = tiny_model(dropout=0.0)
    config = TrainConfig(out_dir=out_dir, total_steps=steps, warmup_steps=1, learning_rate=1e-3, progress=False)
    trainer = Trainer(model, config, BatchList(mine), context=context)
    losses = trainer.train()
    torch.save(model.state_dict(), f"{out_dir}/params-rank{context.rank}.pt")
    if context.is_main:
        with open(f"{out_dir}/losses.json", "w") as f:
            json.dump(losses, f)
    cleanup_distributed()
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_equals_one_process_with_the_same_global_batch(tmp_path):
    (tmp_path / "worker.py").write_text(WORKER, encoding="utf-8")
    out_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), str(tmp_path)])}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
         f"--master_port={free_port()}", str(tmp_path / "worker.py"), str(out_dir), str(STEPS)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    from helpers import BatchList, make_batches, tiny_model

    from minibert.train.trainer import TrainConfig, Trainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = tiny_model(dropout=0.0)
        config = TrainConfig(out_dir=str(tmp_path / "single"), total_steps=STEPS, warmup_steps=1,
                             learning_rate=1e-3, progress=False)
        single_losses = Trainer(single, config, BatchList(make_batches(STEPS, batch_size=8, seed=1))).train()
    finally:
        torch.set_num_threads(threads)

    rank0 = torch.load(out_dir / "params-rank0.pt", weights_only=True)
    rank1 = torch.load(out_dir / "params-rank1.pt", weights_only=True)
    initial = tiny_model(dropout=0.0).state_dict()
    for name, value in single.state_dict().items():
        assert torch.equal(rank0[name], rank1[name]), f"ranks disagree on {name}"
        assert torch.allclose(rank0[name], value, rtol=0, atol=1e-6), \
            f"{name}: max difference {(rank0[name] - value).abs().max().item():.2e}"
    assert not torch.equal(single.state_dict()["bert.layers.0.ffn.up.weight"], initial["bert.layers.0.ffn.up.weight"])
    ddp_losses = json.loads((out_dir / "losses.json").read_text())
    assert ddp_losses == pytest.approx(single_losses, abs=1e-5)
    # Only rank 0 wrote the run's files.
    assert (out_dir / "checkpoint.pt").exists() and (out_dir / "metrics.jsonl").exists()
    state = torch.load(out_dir / "checkpoint.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["data"] == [{"position": STEPS}] * 2
