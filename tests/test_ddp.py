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

COMMON = textwrap.dedent("""
    import torch
    from minibert import BertConfig, BertForPreTraining

    def tiny_model():
        torch.manual_seed(0)
        return BertForPreTraining(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                             num_attention_heads=2, intermediate_size=64, max_position_embeddings=32,
                                             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))

    def global_batches(steps, batch_size=8, t=16, masked_per_row=3):
        # Every row has the same number of masked positions, so the mean loss over the global batch equals
        # the average of the two halves' mean losses, which is what DDP's gradient averaging computes.
        g = torch.Generator().manual_seed(1)
        batches = []
        for _ in range(steps):
            input_ids = torch.randint(5, 64, (batch_size, t), generator=g)
            labels = torch.full((batch_size, t), -100)
            for row in range(batch_size):
                positions = torch.randperm(t - 2, generator=g)[:masked_per_row] + 1
                labels[row, positions] = input_ids[row, positions]
                input_ids[row, positions] = 4
            batches.append({"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
                            "token_type_ids": torch.zeros_like(input_ids), "labels": labels,
                            "next_sentence_label": torch.randint(0, 2, (batch_size,), generator=g)})
        return batches
""")

WORKER = textwrap.dedent("""
    import json, sys
    import torch
    from common import tiny_model, global_batches
    from minibert.trainer import BatchList, TrainConfig, Trainer, cleanup_distributed, init_distributed

    torch.set_num_threads(1)
    out_dir, steps = sys.argv[1], int(sys.argv[2])
    context = init_distributed("cpu")
    assert context.world_size == 2 and torch.distributed.get_backend() == "gloo"
    half = 8 // context.world_size
    mine = [{k: v[context.rank * half:(context.rank + 1) * half] for k, v in batch.items()}
            for batch in global_batches(steps)]
    model = tiny_model()
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
    (tmp_path / "common.py").write_text(COMMON, encoding="utf-8")
    (tmp_path / "worker.py").write_text(WORKER, encoding="utf-8")
    out_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
         f"--master_port={free_port()}", str(tmp_path / "worker.py"), str(out_dir), str(STEPS)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    sys.path.insert(0, str(tmp_path))
    try:
        from common import global_batches, tiny_model
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("common", None)
    from minibert.trainer import BatchList, TrainConfig, Trainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = tiny_model()
        config = TrainConfig(out_dir=str(tmp_path / "single"), total_steps=STEPS, warmup_steps=1,
                             learning_rate=1e-3, progress=False)
        single_losses = Trainer(single, config, BatchList(global_batches(STEPS))).train()
    finally:
        torch.set_num_threads(threads)

    rank0 = torch.load(out_dir / "params-rank0.pt", weights_only=True)
    rank1 = torch.load(out_dir / "params-rank1.pt", weights_only=True)
    initial = tiny_model().state_dict()
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
