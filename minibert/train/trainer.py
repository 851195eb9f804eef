"""A small, complete training loop for BERT pretraining, on one process or many (DDP).

What a step does, in order:

    for each of grad_accum_steps micro-batches:     forward (optionally under bf16 autocast),
                                                    backward of loss / grad_accum_steps
                                                    (DDP averages gradients across ranks on the last)
    loss averaged over ranks; not finite -> TrainingError naming the step, before any update
    clip the gradient norm, AdamW update, learning-rate schedule step

Why the parts are there:

* AdamW with two parameter groups: weight decay pulls weights towards zero, which makes no sense for
  biases and LayerNorm gains/offsets, so those get none (BERT's recipe).
* Linear warm-up then linear decay to 0 (``LambdaLR``): Adam's early updates are noisy; a small
  learning rate at first keeps a post-LN Transformer from diverging.
* Fused AdamW (one kernel for the whole update) when the platform has it, the default otherwise.
* Checkpoints hold everything a run depends on: model, optimiser, scheduler, the random states of
  torch, numpy and Python on every rank, the step, and every rank's data position. Restoring all of
  it makes a resumed run produce exactly the losses of a run that never stopped. A checkpoint is
  written to a temporary file, flushed to disk, then renamed over the old one: the rename is
  atomic, so a crash (even ``kill -9``) leaves either the old or the new checkpoint, never half of one.
  Checkpoints are read with ``torch.load(weights_only=True)``, which cannot execute code; that is why
  random states are stored as tensors, lists and numbers.
* Distributed data parallel: ``init_distributed`` reads torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
  and picks gloo on CPU, NCCL on GPU. Every rank reads its own data shard; only rank 0 writes files.
  Decisions that stop a run (NaN loss, unwritable folder) are taken on values all ranks share, so no
  rank is left waiting for the others.

The train data is any iterator of batches (dicts of tensors for ``BertForPreTraining``); if it has
``state_dict``/``load_state_dict`` (like ``PretrainingStream``) its position is checkpointed too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import warnings
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from minibert.checkpoints.hf import _atomic_write
from minibert.errors import CheckpointError, ConfigError, InputTypeError, TrainingError
from minibert.progress import progress_bar

CHECKPOINT_FORMAT = "minibert-pretraining-checkpoint/1"


@dataclass
class TrainConfig:
    out_dir: str = "runs/pretrain"
    total_steps: int = 1000              # optimiser updates
    batch_size: int = 32                 # examples per micro-batch per rank (used by whoever builds the data)
    grad_accum_steps: int = 1            # micro-batches per update
    learning_rate: float = 5e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-6
    max_grad_norm: float = 1.0           # 0 disables clipping
    bf16: bool = False                   # bf16 autocast for forward passes
    fused_adamw: bool = True             # use torch's fused AdamW where the platform supports it
    eval_every: int = 0                  # steps between evaluations (0: only at the end)
    save_every: int = 0                  # steps between checkpoints (0: only at the end)
    seed: int = 0
    checkpoint_name: str = "checkpoint.pt"
    metrics_file: str = "metrics.jsonl"  # in out_dir; one JSON record per line
    plot_file: str = "loss_curve.png"    # in out_dir; written at the end
    progress: Optional[bool] = None      # tqdm bar on rank 0; None = only when stderr is a terminal

    def __post_init__(self) -> None:
        self.adam_betas = tuple(self.adam_betas)
        positive = ("total_steps", "batch_size", "grad_accum_steps")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "eval_every", "save_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"TrainConfig.{name} must be a non-negative integer, got {value!r}")
        if self.warmup_steps > self.total_steps:
            raise ConfigError(f"TrainConfig.warmup_steps ({self.warmup_steps}) exceeds total_steps ({self.total_steps})")
        for name in ("learning_rate", "adam_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
                raise ConfigError(f"TrainConfig.{name} must be a positive number, got {value!r}")
        for name in ("weight_decay", "max_grad_norm"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value >= 0 or not math.isfinite(value):
                raise ConfigError(f"TrainConfig.{name} must be a non-negative number, got {value!r}")
        if len(self.adam_betas) != 2 or not all(0.0 <= b < 1.0 for b in self.adam_betas):
            raise ConfigError(f"TrainConfig.adam_betas must be two numbers in [0, 1), got {self.adam_betas!r}")

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.out_dir) / self.checkpoint_name


# ---------------------------------------------------------------------------------- distributed

@dataclass
class DistContext:
    """Where this process stands: its rank among ``world_size`` processes and its device."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: Optional[str] = None) -> DistContext:
    """Join the process group torchrun describes in the environment (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), or stay single-process when there is none.

    The device is ``device`` if given, else ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; the
    backend follows it: NCCL for CUDA, gloo for CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(device)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return DistContext(rank, world_size, local_rank, chosen)


def cleanup_distributed() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def _gather(context: DistContext, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank (a list of one without DDP)."""
    if not context.distributed:
        return [value]
    values: list[Any] = [None] * context.world_size
    dist.all_gather_object(values, value)
    return values


def _raise_if_any(context: DistContext, problem: Optional[str]) -> None:
    """Raise TrainingError on every rank if any rank found a problem (so none is left waiting)."""
    problems = [p for p in _gather(context, problem) if p]
    if problems:
        raise TrainingError(problems[0])


# ----------------------------------------------------------------------------- random states

def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators together."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The random states of Python, numpy and torch, as tensors, lists and numbers."""
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by ``rng_state`` (for exact resume)."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# ----------------------------------------------------------------------- optimiser and schedule

def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: matrices and embeddings decay; biases and LayerNorm parameters do not.
    A tied parameter (the MLM decoder is the word-embedding matrix) appears once."""
    no_decay_ids = set()
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay, seen = [], [], set()
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        if id(param) in no_decay_ids or name.endswith("bias"):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over ``param_groups``; fused when asked for and supported, else torch's default kernel."""
    groups = param_groups(model, config.weight_decay)
    kwargs = dict(lr=config.learning_rate, betas=config.adam_betas, eps=config.adam_eps)
    if config.fused_adamw:
        try:
            return torch.optim.AdamW(groups, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass  # this device/dtype has no fused kernel
    return torch.optim.AdamW(groups, **kwargs)


def linear_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning-rate factor rising linearly 0 -> 1 over ``warmup_steps``, then falling linearly to 0
    at ``total_steps``."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps  # never exactly 0: the first update already moves
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ------------------------------------------------------------------------------- output folder

def _checkpoint_bytes(model: nn.Module) -> int:
    """About what a checkpoint takes: the weights plus AdamW's two moments, plus some slack."""
    n = sum(p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values())
    return 3 * n + (1 << 20)


def check_output_dir(out_dir: str | os.PathLike, need_bytes: int) -> Optional[str]:
    """None if ``out_dir`` can be created, written and has ``need_bytes`` free; else why not."""
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the output folder {str(folder)!r}: {exc.strerror or exc}"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-") as probe:
            probe.write(b"minibert")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return f"the output folder {str(folder)!r} is not writable: {exc.strerror or exc}"
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        return (f"the output folder {str(folder)!r} has {free / 2**20:.1f} MiB free; checkpoints need about "
                f"{need_bytes / 2**20:.1f} MiB (a temporary copy is written before the old one is replaced)")
    return None


# ------------------------------------------------------------------------------------- trainer

def _to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class Trainer:
    """Trains a ``BertForPreTraining`` (or any model taking these batches and returning ``.loss``).

    Typical use::

        context = init_distributed()
        trainer = Trainer(model, TrainConfig(out_dir="run", total_steps=1000), stream, eval_batches, context)
        trainer.resume()          # no-op when out_dir holds no checkpoint
        trainer.train()

    Only rank 0 writes (checkpoints, metrics, the plot); every rank computes.
    """

    def __init__(self, model: nn.Module, config: TrainConfig, train_data: Iterator[dict[str, Tensor]],
                 eval_batches: Optional[Sequence[dict[str, Tensor]]] = None,
                 context: Optional[DistContext] = None):
        if not isinstance(config, TrainConfig):
            raise InputTypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.config = config
        self.context = context or DistContext()
        self.out_dir = Path(config.out_dir)
        self.metrics_path = self.out_dir / config.metrics_file
        self.checkpoint_path = config.checkpoint_path

        # Fail before any work if rank 0 cannot write its checkpoints.
        problem = check_output_dir(self.out_dir, _checkpoint_bytes(model)) if self.context.is_main else None
        _raise_if_any(self.context, problem)
        if self.context.is_main:
            self._remove_stale_temporaries()

        self.model = model.to(self.context.device)
        self.train_model: nn.Module = self.model
        if self.context.distributed:
            ids = [self.context.device.index] if self.context.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = make_optimizer(self.model, config)
        self.scheduler = linear_schedule(self.optimizer, config.warmup_steps, config.total_steps)
        self.train_data = train_data
        self.eval_batches = list(eval_batches) if eval_batches is not None else None
        self.step = 0
        self.last_checkpoint_step: Optional[int] = None
        self.losses: list[float] = []  # training losses of the steps run by this process
        set_seed(config.seed + self.context.rank)  # dropout streams differ across ranks
        self._log_started = False  # the first record of a fresh run empties an old log

    # -- files ---------------------------------------------------------------------------------
    def _remove_stale_temporaries(self) -> None:
        """A crash while saving can leave ``.checkpoint.pt.*.tmp`` behind; it was never the checkpoint."""
        for path in glob.glob(str(self.out_dir / f".{self.config.checkpoint_name}.*.tmp")):
            os.unlink(path)

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON record to the metrics file (rank 0 only)."""
        if self.context.is_main:
            mode = "a" if self._log_started else "w"
            self._log_started = True
            with open(self.metrics_path, mode, encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    def _truncate_metrics(self, last_step: int) -> None:
        """Drop records of steps after ``last_step`` (written after the checkpoint a run resumes from)."""
        self._log_started = True
        if not self.context.is_main or not self.metrics_path.exists():
            return
        kept = [line for line in self.metrics_path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= last_step]
        _atomic_write(self.metrics_path, lambda tmp: Path(tmp).write_text(
            "".join(line + "\n" for line in kept), encoding="utf-8"))

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Gather every rank's random and data state; rank 0 writes them with the model atomically."""
        data_state = self.train_data.state_dict() if hasattr(self.train_data, "state_dict") else None
        rng_states = _gather(self.context, rng_state())
        data_states = _gather(self.context, data_state)
        if self.context.is_main:
            state = {
                "format": CHECKPOINT_FORMAT,
                "step": self.step,
                "world_size": self.context.world_size,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rng_states,
                "data": data_states,
                "train_config": dataclasses.asdict(self.config),
            }

            def write(tmp: str) -> None:
                with open(tmp, "wb") as handle:
                    torch.save(state, handle)
                    handle.flush()
                    os.fsync(handle.fileno())  # on disk before the rename makes it the checkpoint

            _atomic_write(self.checkpoint_path, write)
            with contextlib.suppress(OSError):  # make the rename itself durable where supported
                fd = os.open(self.out_dir, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        self.last_checkpoint_step = self.step

    def resume(self, path: Optional[str | os.PathLike] = None) -> bool:
        """Restore everything from ``path`` (default: the run's checkpoint). Returns False when there is
        no checkpoint (the run then starts from step 0), True when the run continues from it."""
        path = Path(path) if path is not None else self.checkpoint_path
        if not path.exists():
            return False
        try:
            state = torch.load(path, map_location=self.context.device, weights_only=True)
        except Exception as exc:  # torch raises several types for corrupt files
            raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {exc}") from exc
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{str(path)!r} is not a minibert pretraining checkpoint")
        if state["world_size"] != self.context.world_size:
            raise TrainingError(f"checkpoint {str(path)!r} was written by {state['world_size']} process(es); "
                                f"resume it with the same number (this run has {self.context.world_size})")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.last_checkpoint_step = self.step
        data_state = state["data"][self.context.rank]
        if data_state is not None and hasattr(self.train_data, "load_state_dict"):
            self.train_data.load_state_dict(data_state)
        set_rng_state(state["rng"][self.context.rank])
        self._truncate_metrics(self.step)
        return True

    # -- one update ------------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.context.device.type, dtype=torch.bfloat16, enabled=self.config.bf16)

    def train_step(self) -> tuple[float, float, int]:
        """One optimiser update over ``grad_accum_steps`` micro-batches.
        Returns (loss averaged over micro-batches and ranks, gradient norm, tokens processed by all ranks)."""
        self.train_model.train()
        accum = self.config.grad_accum_steps
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.context.device)
        tokens = torch.zeros((), dtype=torch.float64, device=self.context.device)
        for micro in range(accum):
            batch = _to_device(next(self.train_data), self.context.device)
            last = micro == accum - 1
            # Without DDP's gradient all-reduce on all but the last micro-batch: one exchange per update.
            sync = contextlib.nullcontext() if last or not self.context.distributed else self.train_model.no_sync()
            with sync:
                with self._autocast():
                    output = self.train_model(**batch, sparse_mlm=True)
                (output.loss / accum).backward()
            loss_sum += output.loss.detach().double()
            tokens += batch["attention_mask"].sum()
        stats = torch.stack([loss_sum / accum, tokens])  # (2,)
        if self.context.distributed:
            dist.all_reduce(stats)
        loss = stats[0].item() / self.context.world_size
        if not math.isfinite(loss):
            where = (f"the last good checkpoint, {str(self.checkpoint_path)!r}, is from step {self.last_checkpoint_step}"
                     if self.last_checkpoint_step is not None else "no checkpoint was written yet")
            raise TrainingError(f"the training loss is {loss} at step {self.step + 1}: training stopped "
                                f"before the update; {where}. Try a lower learning rate or bf16 off.")
        if self.config.max_grad_norm > 0:
            grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm).item()
        else:
            grad_norm = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in self.model.parameters()
                                      if p.grad is not None))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss, grad_norm, int(stats[1].item())

    # -- evaluation ------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, batches: Optional[Iterable[dict[str, Tensor]]] = None) -> dict[str, float]:
        """Masked-LM loss and accuracy over all labelled positions, NSP loss and accuracy over all
        examples, of ``batches`` (default: the eval batches given at construction). Every rank
        computes the same numbers from the same batches; dropout is off."""
        batches = self.eval_batches if batches is None else batches
        if batches is None:
            raise TrainingError("evaluate() needs batches: none were given here or to the Trainer")
        was_training = self.model.training
        self.model.eval()
        mlm_loss = mlm_correct = mlm_count = nsp_loss = nsp_correct = nsp_count = 0.0
        for batch in batches:
            batch = _to_device(batch, self.context.device)
            with self._autocast():
                output = self.model(**batch, sparse_mlm=True)
            targets = batch["labels"][batch["labels"] != -100]             # (n,)
            logits = output.prediction_logits.float()                      # (n, v)
            mlm_loss += F.cross_entropy(logits, targets, reduction="sum").item()
            mlm_correct += (logits.argmax(-1) == targets).sum().item()
            mlm_count += targets.numel()
            nsp_logits = output.seq_relationship_logits.float()            # (b, 2)
            nsp_targets = batch["next_sentence_label"]                     # (b,)
            nsp_loss += F.cross_entropy(nsp_logits, nsp_targets, reduction="sum").item()
            nsp_correct += (nsp_logits.argmax(-1) == nsp_targets).sum().item()
            nsp_count += nsp_targets.numel()
        self.model.train(was_training)
        return {"mlm_loss": mlm_loss / max(mlm_count, 1), "mlm_accuracy": mlm_correct / max(mlm_count, 1),
                "nsp_loss": nsp_loss / max(nsp_count, 1), "nsp_accuracy": nsp_correct / max(nsp_count, 1),
                "masked_tokens": int(mlm_count), "examples": int(nsp_count)}

    # -- the loop --------------------------------------------------------------------------------
    def train(self) -> list[float]:
        """Run until ``total_steps``; returns the losses of the steps run here. Writes metrics every
        step, evaluates every ``eval_every`` and at the end, saves every ``save_every`` and at the end,
        and draws the loss curve."""
        config = self.config
        show = config.progress if config.progress is not None else sys.stderr.isatty()
        bar = progress_bar(total=config.total_steps, initial=self.step, disable=not (show and self.context.is_main),
                   desc="pretraining", unit="step", dynamic_ncols=True)
        started = time.perf_counter()
        window_tokens, window_start = 0, time.perf_counter()
        try:
            while self.step < config.total_steps:
                loss, grad_norm, tokens = self.train_step()
                self.losses.append(loss)
                now = time.perf_counter()
                window_tokens += tokens
                tokens_per_s = window_tokens / max(now - window_start, 1e-9)
                if now - window_start > 10:  # a sliding-ish window for the rate
                    window_tokens, window_start = 0, now
                self.log({"kind": "train", "step": self.step, "loss": loss, "lr": self.scheduler.get_last_lr()[0],
                           "grad_norm": grad_norm, "tokens": tokens, "tokens_per_s": tokens_per_s,
                           "elapsed_s": now - started})
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
                last = self.step == config.total_steps
                if self.eval_batches is not None and ((config.eval_every and self.step % config.eval_every == 0) or last):
                    metrics = self.evaluate()
                    self.log({"kind": "eval", "step": self.step, **metrics})
                    if self.context.is_main and show:
                        bar.write(f"step {self.step}: eval mlm_loss {metrics['mlm_loss']:.3f} "
                                  f"mlm_acc {metrics['mlm_accuracy']:.3f} nsp_acc {metrics['nsp_accuracy']:.3f}")
                if (config.save_every and self.step % config.save_every == 0) or last:
                    self.save_checkpoint()
        finally:
            bar.close()
        if self.context.is_main:
            plot_metrics(self.metrics_path, self.out_dir / config.plot_file)
        return self.losses


# ----------------------------------------------------------------------------------------- plot

def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a metrics JSON-lines file, in order."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def plot_metrics(metrics_path: str | os.PathLike, png_path: str | os.PathLike) -> Optional[Path]:
    """Training loss per step (and held-out MLM loss, if evaluated) from a metrics file, as a PNG.
    Uses matplotlib's object API with the Agg canvas: no display and no global pyplot state."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pictures are an extra: the metrics file holds the same numbers
        warnings.warn("matplotlib is not installed (pip install 'minibert[extras]'): no loss-curve plot")
        return None

    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if r.get("kind") == "train"]
    evals = [(r["step"], r["mlm_loss"]) for r in records if r.get("kind") == "eval"]
    if not train:
        return None
    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(*zip(*train), linewidth=0.8, alpha=0.8, label="training loss (MLM + NSP)")
    if evals:
        axes.plot(*zip(*evals), "o-", label="held-out MLM loss")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    png_path = Path(png_path)
    _atomic_write(png_path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    return png_path


class BatchList:
    """A fixed list of batches served in a cycle, with a position that checkpoints: for tests and for
    data that fits in memory."""

    def __init__(self, batches: Sequence[dict[str, Tensor]]):
        if not batches:
            raise TrainingError("BatchList needs at least one batch")
        self.batches = list(batches)
        self.position = 0

    def __iter__(self) -> "BatchList":
        return self

    def __next__(self) -> dict[str, Tensor]:
        batch = self.batches[self.position % len(self.batches)]
        self.position += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.position = int(state["position"])
