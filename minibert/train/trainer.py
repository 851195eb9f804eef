"""One training loop for every model whose output has ``.loss``: pretraining and fine-tuning both
run through ``Trainer``, on one process or many (DDP).

What a step does, in order:

    for each of grad_accum_steps micro-batches:     forward (optionally under bf16 autocast),
                                                    backward of loss / grad_accum_steps
                                                    (DDP averages gradients across ranks on the last)
    loss averaged over ranks; not finite -> TrainingError naming the step, before any update
    clip the gradient norm, AdamW update, learning-rate schedule step

Around the steps: an evaluation callable every ``eval_every`` steps and at the end, a checkpoint every
``save_every`` steps and at the end, one JSON record per step and per evaluation in ``metrics.jsonl``,
and the loss curve at the end. What the parts are made of lives next door: the optimiser and schedule
in ``minibert.train.optim``, checkpoints and random states in ``minibert.train.resume``, ranks and
devices in ``minibert.train.distributed``, the metrics file in ``minibert.train.metrics_log``, the
picture in ``minibert.train.plots``.

The train data is any iterator of batches (dicts of tensors the model takes as keyword arguments); if
it has ``state_dict``/``load_state_dict`` (like ``PretrainingStream`` and ``EpochBatches``) its
position is checkpointed too, which is what makes a resumed run exact. Only rank 0 writes files;
every rank computes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn

from minibert.checks import check_int, check_number
from minibert.errors import ConfigError, InputTypeError, TrainingError
from minibert.progress import progress_bar
from minibert.train.distributed import DistContext, gather, raise_if_any
from minibert.train.metrics_log import MetricsLog
from minibert.train.optim import DEFAULT_ADAM_EPS, linear_schedule, make_optimizer
from minibert.train.plots import plot_metrics, remove_stale_temporaries
from minibert.train.resume import (check_same_architecture, load_checkpoint, rng_state, save_checkpoint, set_rng_state,
                                   set_seed)

# An evaluation: (the model, in eval mode under no_grad, and its device) -> metrics to log.
Evaluation = Callable[[nn.Module, torch.device], dict[str, Any]]


@dataclass
class TrainConfig:
    """How to train; the batch size belongs to whoever builds the batches (the data iterator)."""
    out_dir: str = "runs/pretrain"
    total_steps: int = 1000              # optimiser updates
    grad_accum_steps: int = 1            # micro-batches per update
    learning_rate: float = 5e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = DEFAULT_ADAM_EPS   # BERT's value, for pretraining and fine-tuning (see optim.py)
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
        for name in ("total_steps", "grad_accum_steps"):
            check_int(f"TrainConfig.{name}", getattr(self, name), minimum=1, error=ConfigError)
        for name in ("warmup_steps", "eval_every", "save_every"):
            check_int(f"TrainConfig.{name}", getattr(self, name), minimum=0, error=ConfigError)
        if self.warmup_steps > self.total_steps:
            raise ConfigError(f"TrainConfig.warmup_steps ({self.warmup_steps}) exceeds total_steps ({self.total_steps})")
        for name in ("learning_rate", "adam_eps"):
            check_number(f"TrainConfig.{name}", getattr(self, name), minimum=0, exclusive_minimum=True, error=ConfigError)
        for name in ("weight_decay", "max_grad_norm"):
            check_number(f"TrainConfig.{name}", getattr(self, name), minimum=0, error=ConfigError)
        if len(self.adam_betas) != 2 or not all(0.0 <= b < 1.0 for b in self.adam_betas):
            raise ConfigError(f"TrainConfig.adam_betas must be two numbers in [0, 1), got {self.adam_betas!r}")

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.out_dir) / self.checkpoint_name


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


def _to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


# ------------------------------------------------------------------------------------- trainer

class Trainer:
    """Trains any model that takes a batch's tensors as keyword arguments and returns ``.loss``.

    Typical use::

        context = init_distributed()
        trainer = Trainer(model, TrainConfig(out_dir="run", total_steps=1000), batches, evaluate, context)
        trainer.resume()          # no-op when out_dir holds no checkpoint
        trainer.train()

    ``evaluate(model, device) -> dict`` is called with the model in eval mode, under ``no_grad`` (and
    bf16 autocast when training uses it); its metrics are logged. ``forward_kwargs`` go to every
    training forward (pretraining passes ``sparse_mlm=True``: MLM logits only where there are labels).
    """

    def __init__(self, model: nn.Module, config: TrainConfig, train_data: Iterator[dict[str, Tensor]],
                 evaluate: Optional[Evaluation] = None, context: Optional[DistContext] = None,
                 forward_kwargs: Optional[dict[str, Any]] = None):
        if not isinstance(config, TrainConfig):
            raise InputTypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        if evaluate is not None and not callable(evaluate):
            raise InputTypeError(f"evaluate must be a callable (model, device) -> metrics, got {type(evaluate).__name__}")
        self.config = config
        self.context = context or DistContext()
        self.out_dir = Path(config.out_dir)
        self.checkpoint_path = config.checkpoint_path

        # Fail before any work if rank 0 cannot write its checkpoints.
        problem = check_output_dir(self.out_dir, _checkpoint_bytes(model)) if self.context.is_main else None
        raise_if_any(self.context, problem)
        if self.context.is_main:
            for name in (config.checkpoint_name, config.metrics_file, config.plot_file):
                remove_stale_temporaries(self.out_dir / name)  # a crash while saving leaves .NAME.*.tmp
        self.metrics = MetricsLog(self.out_dir / config.metrics_file, enabled=self.context.is_main)
        self.metrics_path = self.metrics.path

        self.model = model.to(self.context.device)
        self.train_model: nn.Module = self.model
        if self.context.distributed:
            ids = [self.context.device.index] if self.context.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = make_optimizer(self.model, config.learning_rate, config.weight_decay, config.adam_betas,
                                        config.adam_eps, config.fused_adamw)
        self.scheduler = linear_schedule(self.optimizer, config.warmup_steps, config.total_steps)
        self.train_data = train_data
        self.evaluation = evaluate
        self.forward_kwargs = dict(forward_kwargs or {})
        self.step = 0
        self.last_checkpoint_step: Optional[int] = None
        self.losses: list[float] = []  # training losses of the steps run by this process
        self.data_seconds = 0.0        # time this step spent waiting for batches (logged as data_s)
        set_seed(config.seed + self.context.rank)  # dropout streams differ across ranks

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON record to the metrics file (rank 0 only)."""
        self.metrics.append(record)

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Gather every rank's random and data state; rank 0 writes them with the model atomically."""
        data_state = self.train_data.state_dict() if hasattr(self.train_data, "state_dict") else None
        rng_states = gather(self.context, rng_state())
        data_states = gather(self.context, data_state)
        if self.context.is_main:
            save_checkpoint(self.checkpoint_path, {
                "step": self.step,
                "world_size": self.context.world_size,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rng_states,
                "data": data_states,
                "train_config": dataclasses.asdict(self.config),
            })
        self.last_checkpoint_step = self.step

    def resume(self, path: Optional[str | os.PathLike] = None) -> bool:
        """Restore everything from ``path`` (default: the run's checkpoint). Returns False when there is
        no checkpoint (the run then starts from step 0), True when the run continues from it."""
        path = Path(path) if path is not None else self.checkpoint_path
        if not path.exists():
            return False
        state = load_checkpoint(path, self.context.device)
        if state["world_size"] != self.context.world_size:
            raise TrainingError(f"checkpoint {str(path)!r} was written by {state['world_size']} process(es); "
                                f"resume it with the same number (this run has {self.context.world_size})")
        check_same_architecture(state["model"], self.model, path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.last_checkpoint_step = self.step
        data_state = state["data"][self.context.rank]
        if data_state is not None and hasattr(self.train_data, "load_state_dict"):
            self.train_data.load_state_dict(data_state)
        set_rng_state(state["rng"][self.context.rank])
        self.metrics.cut_after(self.step)
        return True

    # -- one update ------------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.context.device.type, dtype=torch.bfloat16, enabled=self.config.bf16)

    def accumulate_gradients(self) -> tuple[Tensor, Tensor]:
        """Forward and backward over ``grad_accum_steps`` micro-batches, each loss divided by their
        number: the gradient is that of the mean loss over the micro-batches, as if they were one batch.
        Returns (the micro-batches' summed loss, the tokens they held), float64 scalars."""
        self.train_model.train()
        accum = self.config.grad_accum_steps
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.context.device)
        tokens = torch.zeros((), dtype=torch.float64, device=self.context.device)
        for micro in range(accum):
            fetch_started = time.perf_counter()
            batch = next(self.train_data)
            self.data_seconds += time.perf_counter() - fetch_started  # the model waiting on data
            batch = _to_device(batch, self.context.device)
            last = micro == accum - 1
            # Without DDP's gradient all-reduce on all but the last micro-batch: one exchange per update.
            sync = contextlib.nullcontext() if last or not self.context.distributed else self.train_model.no_sync()
            with sync:
                with self._autocast():
                    output = self.train_model(**batch, **self.forward_kwargs)
                (output.loss / accum).backward()
            loss_sum += output.loss.detach().double()
            tokens += batch["attention_mask"].sum() if "attention_mask" in batch else batch["input_ids"].numel()
        return loss_sum, tokens

    def train_step(self) -> tuple[float, float, int]:
        """One optimiser update over ``grad_accum_steps`` micro-batches.
        Returns (loss averaged over micro-batches and ranks, gradient norm, tokens processed by all ranks)."""
        loss_sum, tokens = self.accumulate_gradients()
        stats = torch.stack([loss_sum / self.config.grad_accum_steps, tokens])  # (2,)
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
    def evaluate(self) -> dict[str, Any]:
        """The evaluation callable's metrics, with dropout off (the model's mode is restored after)."""
        if self.evaluation is None:
            raise TrainingError("evaluate() needs an evaluation callable: none was given to the Trainer")
        was_training = self.model.training
        self.model.eval()
        try:
            with self._autocast():
                return self.evaluation(self.model, self.context.device)
        finally:
            self.model.train(was_training)

    # -- the loop --------------------------------------------------------------------------------
    def train(self) -> list[float]:
        """Run until ``total_steps``; returns the losses of the steps run here. Writes metrics every
        step, evaluates every ``eval_every`` and at the end, saves every ``save_every`` and at the end,
        and draws the loss curve."""
        config = self.config
        show = config.progress if config.progress is not None else sys.stderr.isatty()
        bar = progress_bar(total=config.total_steps, initial=self.step, disable=not (show and self.context.is_main),
                           desc="training", unit="step", dynamic_ncols=True)
        started = time.perf_counter()
        window_tokens, window_start = 0, time.perf_counter()
        try:
            while self.step < config.total_steps:
                self.data_seconds, step_started = 0.0, time.perf_counter()
                loss, grad_norm, tokens = self.train_step()
                self.losses.append(loss)
                now = time.perf_counter()
                window_tokens += tokens
                tokens_per_s = window_tokens / max(now - window_start, 1e-9)
                if now - window_start > 10:  # a sliding-ish window for the rate
                    window_tokens, window_start = 0, now
                self.log({"kind": "train", "step": self.step, "loss": loss, "lr": self.scheduler.get_last_lr()[0],
                          "grad_norm": grad_norm, "tokens": tokens, "tokens_per_s": tokens_per_s,
                          "data_s": self.data_seconds, "compute_s": now - step_started - self.data_seconds,
                          "elapsed_s": now - started})
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_per_s:,.0f}",
                                data=f"{self.data_seconds / max(now - step_started, 1e-9):.0%}", refresh=False)
                last = self.step == config.total_steps
                if self.evaluation is not None and ((config.eval_every and self.step % config.eval_every == 0) or last):
                    metrics = self.evaluate()
                    self.log({"kind": "eval", "step": self.step, **metrics})
                    if self.context.is_main and show:
                        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
                        bar.write(f"step {self.step}: {shown}")
                if (config.save_every and self.step % config.save_every == 0) or last:
                    self.save_checkpoint()
        finally:
            bar.close()
        if self.context.is_main:
            plot_metrics(self.metrics_path, self.out_dir / config.plot_file)
        return self.losses
