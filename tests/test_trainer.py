"""The training loop: optimiser groups, schedule, determinism, exact resume (in-process and after SIGKILL),
atomic checkpoints, NaN guard, output-folder checks, and the pretraining command end to end."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import VOCAB, BatchList, make_batches, tiny_model
from minibert import BertForPreTraining
from minibert.errors import CheckpointError, ConfigError, InputError, TrainingError
from minibert.train.metrics_log import read_metrics
from minibert.train.optim import linear_schedule, make_optimizer, param_groups
from minibert.train.pretrain import pretraining_evaluation
from minibert.train.trainer import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, especially on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def config(tmp_path, **overrides) -> TrainConfig:
    values = dict(out_dir=str(tmp_path), total_steps=8, warmup_steps=2, learning_rate=1e-3, progress=False)
    values.update(overrides)
    return TrainConfig(**values)


def test_param_groups_skip_decay_for_biases_and_layernorm():
    model = tiny_model()
    decay, no_decay = param_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("bias") or ".norm" in names[id(p)] or "_norm" in names[id(p)]
               for p in no_decay["params"])
    assert all(p.dim() == 2 for p in decay["params"])
    unique = {id(p) for p in model.parameters()}
    assert len(decay["params"]) + len(no_decay["params"]) == len(unique)  # tied decoder counted once


def test_schedule_warms_up_then_decays_to_zero():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = linear_schedule(optimizer, warmup_steps=4, total_steps=12)
    lrs = []
    for _ in range(12):
        lrs.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    assert lrs[:5] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:])) and schedule.get_last_lr()[0] == 0.0


def test_fused_adamw_on_cpu_and_fallback(tmp_path):
    model = tiny_model()
    assert make_optimizer(model, 1e-3, 0.01).defaults["fused"] is True  # CPU has the fused kernel
    assert not make_optimizer(model, 1e-3, 0.01, fused=False).defaults.get("fused")


def test_train_config_validation(tmp_path):
    with pytest.raises(ConfigError, match="total_steps"):
        config(tmp_path, total_steps=0)
    with pytest.raises(ConfigError, match="warmup_steps"):
        config(tmp_path, warmup_steps=20)
    with pytest.raises(ConfigError, match="learning_rate"):
        config(tmp_path, learning_rate=float("nan"))


def test_same_seed_same_losses(tmp_path):
    def mean_loss(model, batches):  # eval mode, the same batches: no dropout or batch-to-batch noise
        model.eval()
        with torch.no_grad():
            return sum(model(**batch).loss.item() for batch in batches) / len(batches)

    runs, batches = [], make_batches(8)
    for name in ("a", "b"):
        model = tiny_model()
        before = mean_loss(model, batches)
        trainer = Trainer(model, config(tmp_path / name), BatchList(batches))
        runs.append(trainer.train())
    assert runs[0] == runs[1] and all(math.isfinite(x) for x in runs[0])
    # Each step's loss is on another batch with dropout, too noisy to compare first with last in 8 steps.
    assert mean_loss(model, batches) < before
    records = read_metrics(tmp_path / "a" / "metrics.jsonl")
    assert [r["loss"] for r in records if r["kind"] == "train"] == runs[0]
    assert (tmp_path / "a" / "loss_curve.png").stat().st_size > 1000


def test_resume_in_process_gives_the_same_losses(tmp_path):
    batches = make_batches(10)
    whole = Trainer(tiny_model(), config(tmp_path / "whole", total_steps=10), BatchList(batches)).train()
    first = Trainer(tiny_model(), config(tmp_path / "parts", total_steps=10, save_every=4), BatchList(batches))
    first.config.total_steps = 6  # stop early (the schedule still knows 10)
    first.train()
    assert first.last_checkpoint_step == 6
    second = Trainer(tiny_model(seed=99), config(tmp_path / "parts", total_steps=10, save_every=4), BatchList(batches))
    assert second.resume() and second.step == 6
    second.train()
    records = read_metrics(tmp_path / "parts" / "metrics.jsonl")
    assert [r["loss"] for r in records if r["kind"] == "train"] == whole


def test_grad_accumulation_matches_a_bigger_batch(tmp_path):
    big = make_batches(3, batch_size=8)
    halves = [{k: v[i * 4:(i + 1) * 4] for k, v in b.items()} for b in big for i in range(2)]
    a = tiny_model(dropout=0.0)
    b = tiny_model(dropout=0.0)
    Trainer(a, config(tmp_path / "a", total_steps=3, warmup_steps=1), BatchList(big)).train()
    Trainer(b, config(tmp_path / "b", total_steps=3, warmup_steps=1, grad_accum_steps=2), BatchList(halves)).train()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6), name


def test_accumulated_gradient_is_the_gradient_of_the_whole_batch(tmp_path):
    """The gradient itself, before clipping and AdamW (which would hide a wrong factor): two
    micro-batches of 4 must give the gradient of one batch of 8, not twice it."""
    big = make_batches(1, batch_size=8)[0]
    halves = [{k: v[i * 4:(i + 1) * 4] for k, v in big.items()} for i in range(2)]
    reference = tiny_model(dropout=0.0)
    reference(**big).loss.backward()
    trainer = Trainer(tiny_model(dropout=0.0), config(tmp_path, grad_accum_steps=2), BatchList(halves))
    loss_sum, tokens = trainer.accumulate_gradients()
    assert tokens.item() == 8 * 16
    assert loss_sum.item() / 2 == pytest.approx(reference(**big).loss.item(), rel=1e-6)
    for (name, expected), param in zip(reference.named_parameters(), trainer.model.parameters()):
        assert torch.allclose(param.grad, expected.grad, rtol=1e-4, atol=1e-7), name


def test_bf16_autocast_runs(tmp_path):
    losses = Trainer(tiny_model(), config(tmp_path, total_steps=2, warmup_steps=1, bf16=True),
                     BatchList(make_batches(2))).train()
    assert all(math.isfinite(x) for x in losses)


def test_evaluate_reports_mlm_and_nsp(tmp_path):
    batches = make_batches(2)
    trainer = Trainer(tiny_model(), config(tmp_path), BatchList(batches), pretraining_evaluation(batches))
    metrics = trainer.evaluate()
    assert metrics["masked_tokens"] == 2 * 4 * 3 and metrics["examples"] == 8
    assert 0 <= metrics["mlm_accuracy"] <= 1 and 0 <= metrics["nsp_accuracy"] <= 1
    assert abs(metrics["mlm_loss"] - math.log(VOCAB)) < 1.0  # an untrained model is near uniform


def test_unwritable_output_folder_is_reported_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(TrainingError, match="a-file"):
        Trainer(tiny_model(), config(blocker / "run"), BatchList(make_batches(1)))
    if os.geteuid() != 0:  # root writes anywhere: the permission case only means something for other users
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(TrainingError, match="locked"):
            Trainer(tiny_model(), config(locked), BatchList(make_batches(1)))


def test_full_disk_is_reported_before_training(tmp_path, monkeypatch):
    import shutil

    from minibert.train import trainer as trainer_module

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(trainer_module.shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(TrainingError, match=f"{tmp_path.name}.*MiB free"):
        Trainer(tiny_model(), config(tmp_path / "run"), BatchList(make_batches(1)))


class LossBecomesNaN(nn.Module):
    """Wraps a model; from its ``nan_from``-th call on the loss is NaN."""

    def __init__(self, model: nn.Module, nan_from: int):
        super().__init__()
        self.inner = model
        self.calls = 0
        self.nan_from = nan_from

    def forward(self, **batch):
        self.calls += 1
        output = self.inner(**batch)
        if self.calls >= self.nan_from:
            output.loss = output.loss * float("nan")
        return output


def test_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_checkpoint(tmp_path):
    model = LossBecomesNaN(tiny_model(), nan_from=5)
    trainer = Trainer(model, config(tmp_path, save_every=2), BatchList(make_batches(8)))
    with pytest.raises(TrainingError, match=r"nan at step 5.*step 4"):
        trainer.train()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad step was not applied


# ------------------------------------------------------------- the command, stopped and resumed

DRIVER = textwrap.dedent("""
    # Runs minibert.train.pretrain with a pause after every step (so that a test can kill it mid-run), and
    # optionally kills itself with SIGKILL halfway through writing its N-th checkpoint.
    import io, os, signal, sys, time
    import torch
    import minibert.train.trainer as trainer

    pause, die_on_save = float(sys.argv[1]), int(sys.argv[2])
    real_step, real_save, saves = trainer.Trainer.train_step, torch.save, [0]

    def slow_step(self):
        result = real_step(self)
        time.sleep(pause)
        return result

    def dying_save(obj, f, *args, **kwargs):
        saves[0] += 1
        if saves[0] == die_on_save:
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)

    trainer.Trainer.train_step = slow_step
    torch.save = dying_save
    from minibert.train.pretrain import main
    sys.exit(main(sys.argv[3:]))
""")
STEPS, SAVE_EVERY = 16, 4


@pytest.fixture(scope="module")
def run_setup(tmp_path_factory):
    """A small corpus file, a trained vocabulary, the driver script, and one unbroken run."""
    from minibert.data.pretraining import pydoc_documents
    from minibert.data.vocab import save_vocab, train_wordpiece

    root = tmp_path_factory.mktemp("pretrain")
    documents = pydoc_documents()[:6]
    corpus = root / "corpus.txt"
    corpus.write_text("".join("\n".join(d) + "\n\n" for d in documents), encoding="utf-8")
    save_vocab(train_wordpiece([s for d in documents for s in d], 500), root / "vocab")
    driver = root / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")

    def command(out_dir: Path, pause: float = 0.0, die_on_save: int = 0, resume: bool = False) -> list[str]:
        return [sys.executable, str(driver), str(pause), str(die_on_save), str(corpus), "--out-dir", str(out_dir),
                "--vocab", str(root / "vocab"), "--hidden-size", "32", "--num-layers", "2", "--num-heads", "2",
                "--intermediate-size", "64", "--max-seq-length", "32", "--batch-size", "4", "--eval-examples", "8",
                "--heldout-every", "5", "--steps", str(STEPS), "--warmup", "2", "--save-every", str(SAVE_EVERY),
                "--seed", "3", "--threads", "1", "--no-progress"] + (["--resume"] if resume else [])

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    unbroken = root / "unbroken"
    subprocess.run(command(unbroken), check=True, env=env, cwd=REPO, capture_output=True, timeout=300)
    return command, env, losses_of(unbroken)


def losses_of(out_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(out_dir / "metrics.jsonl") if r["kind"] == "train"}


def checkpoint_files(out_dir: Path) -> list[str]:
    return sorted(p.name for p in out_dir.iterdir() if "checkpoint" in p.name)


def test_killed_run_resumes_with_the_same_losses(run_setup, tmp_path):
    command, env, unbroken = run_setup
    assert sorted(unbroken) == list(range(1, STEPS + 1))
    out_dir = tmp_path / "run"
    process = subprocess.Popen(command(out_dir, pause=0.2), env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            if (out_dir / "checkpoint.pt").exists() and max(losses_of(out_dir), default=0) >= SAVE_EVERY + 2:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    state = torch.load(out_dir / "checkpoint.pt", weights_only=True)
    assert 0 < state["step"] < STEPS and state["step"] % SAVE_EVERY == 0
    assert max(losses_of(out_dir)) > state["step"]  # steps after the checkpoint were lost and will be redone

    subprocess.run(command(out_dir, resume=True), check=True, env=env, cwd=REPO, capture_output=True, timeout=300)
    assert losses_of(out_dir) == unbroken  # exactly, step by step
    assert checkpoint_files(out_dir) == ["checkpoint.pt"]  # no temporary or partial checkpoint left


def test_kill_during_checkpoint_write_keeps_the_previous_checkpoint(run_setup, tmp_path):
    command, env, unbroken = run_setup
    out_dir = tmp_path / "run"
    died = subprocess.run(command(out_dir, die_on_save=2), env=env, cwd=REPO, capture_output=True, timeout=300)
    assert died.returncode == -signal.SIGKILL
    leftovers = [name for name in checkpoint_files(out_dir) if name != "checkpoint.pt"]
    assert leftovers and all(name.startswith(".checkpoint.pt.") and name.endswith(".tmp") for name in leftovers)
    state = torch.load(out_dir / "checkpoint.pt", weights_only=True)  # the previous one, whole
    assert state["step"] == SAVE_EVERY

    subprocess.run(command(out_dir, resume=True), check=True, env=env, cwd=REPO, capture_output=True, timeout=300)
    assert losses_of(out_dir) == unbroken
    assert checkpoint_files(out_dir) == ["checkpoint.pt"]
    results = json.loads((out_dir / "results.json").read_text())
    assert results["steps"] == STEPS and results["start"] is not None
    from minibert.tokenizer import BertTokenizer

    reloaded = BertForPreTraining.from_pretrained(out_dir)
    assert reloaded.config.vocab_size == BertTokenizer.from_pretrained(out_dir).vocab_size


# ------------------------------------------------------------- damaged or mismatched run state

def _trained_run(tmp_path, steps: int = 2) -> Trainer:
    trainer = Trainer(tiny_model(), config(tmp_path, total_steps=steps, warmup_steps=1), BatchList(make_batches(2)))
    trainer.train()
    return trainer


def test_checkpoint_with_flipped_bytes_is_refused_naming_the_file(tmp_path):
    trainer = _trained_run(tmp_path)
    path = tmp_path / "checkpoint.pt"
    raw = bytearray(path.read_bytes())
    weight = max(trainer.model.state_dict().values(), key=lambda t: t.numel()).numpy().tobytes()
    start = raw.find(weight[:64])
    assert start > 0  # the tensor's bytes are stored as they are: flip 16 of them
    raw[start + 100:start + 116] = bytes(b ^ 0xFF for b in raw[start + 100:start + 116])
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=f"{path.name}.*damaged"):
        Trainer(tiny_model(), config(tmp_path, total_steps=4, warmup_steps=1), BatchList(make_batches(2))).resume()
    path.write_bytes(bytes(raw[:len(raw) // 2]))  # cut short: unreadable, still named
    with pytest.raises(CheckpointError, match=path.name):
        Trainer(tiny_model(), config(tmp_path, total_steps=4, warmup_steps=1), BatchList(make_batches(2))).resume()


def test_resuming_with_another_architecture_is_one_clear_error(tmp_path):
    _trained_run(tmp_path)
    wider = Trainer(tiny_model(hidden_size=48), config(tmp_path, total_steps=4, warmup_steps=1),
                    BatchList(make_batches(2)))
    with pytest.raises(CheckpointError, match=r"checkpoint.pt.*different model architecture.*\(64, 32\) there, "
                                              r"\(64, 48\) here"):
        wider.resume()


def test_cut_last_metrics_line_is_dropped_on_resume_and_a_damaged_one_named(tmp_path):
    _trained_run(tmp_path)
    metrics = tmp_path / "metrics.jsonl"
    whole = metrics.read_text()
    metrics.write_text(whole + '{"kind": "train", "step": 3, "lo')  # kill -9 in the middle of a write
    trainer = Trainer(tiny_model(), config(tmp_path, total_steps=4, warmup_steps=1), BatchList(make_batches(2)))
    with pytest.warns(UserWarning, match=r"metrics.jsonl:\d+ was cut off"):
        assert trainer.resume()
    assert metrics.read_text() == whole
    trainer.train()
    assert [r["step"] for r in read_metrics(metrics) if r["kind"] == "train"] == [1, 2, 3, 4]

    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(lines[:1] + ["{not json"] + lines[1:]) + "\n")
    with pytest.raises(CheckpointError, match=r"metrics.jsonl:2 is not a JSON record"):
        Trainer(tiny_model(), config(tmp_path, total_steps=4, warmup_steps=1), BatchList(make_batches(2))).resume()


def test_device_names_are_checked_before_any_work():
    from minibert.train.distributed import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    for bad in ("bogus", "cuda:x", "meta"):
        with pytest.raises(ConfigError, match=f"--device.*'{bad}'"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device='cuda'.*use --device cpu"):
            resolve_device("cuda")


def test_pretrain_refuses_what_cannot_run_before_any_work(tmp_path):
    from minibert.train.pretrain import main

    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"--max-seq-length.*max_position_embeddings=1000000000.*would need"):
        main(["pydoc", "--out-dir", str(out), "--max-seq-length", "1000000000"])
    with pytest.raises(ConfigError, match=r"--max-seq-length 100000 with --batch-size 32 .*activations.*would need"):
        main(["pydoc", "--out-dir", str(out), "--max-seq-length", "100000"])
    with pytest.raises(ConfigError, match="--device"):
        main(["pydoc", "--out-dir", str(out), "--device", "bogus"])
    one_document = tmp_path / "one.txt"
    one_document.write_text("".join(f"Line {i} of the only document.\n" for i in range(40)), encoding="utf-8")
    with pytest.raises(InputError, match=r"one.txt holds 1 document\(s\)"):
        main([str(one_document), "--out-dir", str(out)])
    assert not out.exists() or not any(out.iterdir())  # nothing was written


def test_pretrain_init_from_continues_a_pretrained_encoder_and_adds_the_heads(tmp_path):
    """--init-from: the run starts from the checkpoint's encoder (its architecture and vocabulary, not
    the options'), the masked-LM and NSP heads it lacks start fresh and are saved with it."""
    from minibert import BertConfig, BertModel
    from minibert.data.pretraining import pydoc_documents
    from minibert.data.vocab import save_vocab, train_wordpiece
    from minibert.train.pretrain import main

    start = tmp_path / "encoder"
    documents = list(pydoc_documents())[:30]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join("\n".join(d) + "\n\n" for d in documents), encoding="utf-8")
    tokens = train_wordpiece((s for d in documents for s in d), 300)
    save_vocab(tokens, start)
    torch.manual_seed(5)
    encoder = BertModel(BertConfig(vocab_size=len(tokens), hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=48, max_position_embeddings=48))
    encoder.save_pretrained(start)
    out = tmp_path / "run"
    common = [str(corpus), "--out-dir", str(out), "--batch-size", "4", "--eval-examples", "4", "--threads", "1",
              "--no-progress", "--max-seq-length", "32"]
    with pytest.raises(ConfigError, match="--init-from.*drop --vocab"):
        main(common + ["--init-from", str(start), "--vocab", str(start)])
    with pytest.raises(ConfigError, match="--max-seq-length 64 is longer than .* positions for \\(48\\)"):
        main(common[:-1] + ["64", "--init-from", str(start)])
    main(common + ["--init-from", str(start), "--steps", "1", "--lr", "1e-7", "--warmup", "1",
                   "--hidden-size", "64", "--num-layers", "3"])  # overridden by the checkpoint's
    trained = BertForPreTraining.from_pretrained(out)
    assert trained.load_report.missing == []  # the new heads were saved
    assert (trained.config.hidden_size, trained.config.num_hidden_layers) == (24, 2)
    assert (out / "vocab.txt").read_text(encoding="utf-8") == (start / "vocab.txt").read_text(encoding="utf-8")
    # One step at lr 1e-7 moves no weight by more than ~1e-7: the encoder is the checkpoint's
    # (a fresh initialisation from the seed would differ by ~0.02).
    for name, value in encoder.state_dict().items():
        torch.testing.assert_close(trained.bert.state_dict()[name], value, atol=1e-5, rtol=0)
