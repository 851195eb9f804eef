"""Several machines: `minibert pretrain DATA` launched as two torchrun nodes (c10d rendezvous on
127.0.0.1, one process each) ends where one process ends that accumulates the same two micro-batches
per step: the same losses and the same weights, within float tolerance (all-reduce sums in another
order). Tiny model, a few steps."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minibert.data.prepare import prepare
from minibert.train.metrics_log import read_metrics

REPO = Path(__file__).resolve().parents[1]
STEPS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from minibert.data.pretraining import pydoc_documents
    from minibert.data.vocab import save_vocab, train_wordpiece

    root = tmp_path_factory.mktemp("multinode")
    documents = pydoc_documents()[:8]
    (root / "corpus.txt").write_text("".join("\n".join(d) + "\n\n" for d in documents), encoding="utf-8")
    save_vocab(train_wordpiece([s for d in documents for s in d], 300), root / "vocab")
    prepare([root / "corpus.txt"], root / "vocab", root / "data", max_seq_length=32)
    return root / "data"


def pretrain_args(data: Path, out_dir: Path, *extra: str) -> list[str]:
    return [str(data), "--out-dir", str(out_dir), "--hidden-size", "32", "--num-layers", "1", "--num-heads", "2",
            "--intermediate-size", "64", "--max-seq-length", "32", "--batch-size", "4", "--eval-examples", "8",
            "--heldout-every", "4", "--steps", str(STEPS), "--warmup", "1", "--dropout", "0", "--seed", "7",
            "--threads", "1", "--data-workers", "0", "--no-progress", "--device", "cpu", *extra]


def train_losses(out_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(out_dir / "metrics.jsonl") if r["kind"] == "train"]


def test_two_nodes_equal_one_process_on_the_same_global_batch(data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = []
    for node in range(2):
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                    "--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint, "--rdzv_id", "minibert-test",
                    "--rdzv_conf", f"is_host={node == 0}", "--max_restarts", "0", "-m", "minibert.train.pretrain"]
        nodes.append(subprocess.Popen(launcher + pretrain_args(data, tmp_path / "two-nodes"), env=env, cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    single = subprocess.run([sys.executable, "-m", "minibert.train.pretrain",
                             *pretrain_args(data, tmp_path / "one-process", "--grad-accum", "2")],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    for node, output in zip(nodes, outputs):
        assert node.returncode == 0, output[-3000:]
    assert single.returncode == 0, single.stderr[-3000:]
    assert "2 process(es)" in outputs[0] + outputs[1]

    assert train_losses(tmp_path / "two-nodes") == pytest.approx(train_losses(tmp_path / "one-process"), abs=1e-5)
    from safetensors.torch import load_file

    two = load_file(tmp_path / "two-nodes" / "model.safetensors")
    one = load_file(tmp_path / "one-process" / "model.safetensors")
    assert two.keys() == one.keys()
    for name in one:
        assert torch.allclose(two[name], one[name], rtol=0, atol=1e-5), \
            f"{name}: max difference {(two[name] - one[name]).abs().max().item():.2e}"
    state = torch.load(tmp_path / "two-nodes" / "checkpoint.pt", weights_only=True)
    assert state["world_size"] == 2
    assert [d["batches_consumed"] for d in state["data"]] == [STEPS, STEPS]   # one micro-batch per step per rank
