"""The ``minibert`` command line, run as a user runs it: in a subprocess, reading stdout, stderr and
the exit code. transformers builds the reference checkpoints and answers; the CLI never imports it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import minibert
from minibert import cli

REPO = Path(__file__).resolve().parents[1]
TF_FIXTURE = REPO / "tests" / "fixtures" / "tf" / "tiny_bert"


def run(*args: str, console_script: bool = False) -> subprocess.CompletedProcess:
    if console_script:
        executable = Path(sys.executable).parent / "minibert"
        command = [str(executable) if executable.exists() else shutil.which("minibert"), *args]
    else:
        command = [sys.executable, "-m", "minibert.cli", *args]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("minibert")
    if code == 1:
        assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


@pytest.fixture(scope="module")
def tiny_mlm_checkpoint(tmp_path_factory, minilm_dir):
    """A randomly initialised transformers BertForMaskedLM with MiniLM's vocabulary."""
    from transformers import BertConfig as HFConfig
    from transformers import BertForMaskedLM as HFMaskedLM

    folder = tmp_path_factory.mktemp("tiny_mlm")
    torch.manual_seed(0)
    model = HFMaskedLM(HFConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64))
    model.save_pretrained(str(folder))
    shutil.copyfile(minilm_dir / "vocab.txt", folder / "vocab.txt")
    shutil.copyfile(minilm_dir / "tokenizer_config.json", folder / "tokenizer_config.json")
    return folder


def test_console_script_help_lists_every_command():
    result = run("--help", console_script=True)
    assert result.returncode == 0, result.stderr
    for command in cli.COMMANDS:
        assert command in result.stdout


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"minibert {minibert.__version__}"


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_subcommand_has_help(command, capsys):
    # In-process (same parser, same dispatch) to keep the suite fast: one subprocess per command
    # would only re-measure the torch import.
    assert cli.main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: minibert {command}")


def test_usage_errors_exit_2(capsys):
    assert_one_line_error(run("fill-mask", "--top-k", "many", "a [MASK]"), 2, "--top-k")
    assert cli.main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_info_summarises_the_default_checkpoint():
    result = run("info", minibert.DEFAULT_CHECKPOINT)
    assert result.returncode == 0, result.stderr
    assert "architecture:    BertModel" in result.stdout
    assert "layers:          6" in result.stdout
    assert "parameters:      22,713,216" in result.stdout
    assert "pooling=mean, normalize=True, max_seq_length=256" in result.stdout
    assert "0 missing, 0 unexpected" in result.stdout


def test_missing_checkpoint_is_one_line_and_debug_shows_the_traceback():
    assert_one_line_error(run("info", "/no/such/checkpoint"), 1, "no local checkpoint")
    # --debug lets the exception through, so Python prints its traceback (before or after the command).
    for argv in (["--debug", "info", "/no/such/checkpoint"], ["info", "/no/such/checkpoint", "--debug"]):
        with pytest.raises(minibert.CheckpointNotFoundError):
            cli.main(argv)


def test_fill_mask_refuses_a_checkpoint_without_mlm_head():
    # The default checkpoint, all-MiniLM-L6-v2, is a sentence encoder: it has no masked-LM head.
    result = run("fill-mask", "The capital of France is [MASK].", "--checkpoint", "sentence-transformers/all-MiniLM-L6-v2")
    assert_one_line_error(result, 1, "no trained masked-LM head")
    assert result.stdout == ""


def test_fill_mask_matches_transformers(tiny_mlm_checkpoint, capsys):
    from transformers import AutoTokenizer
    from transformers import BertForMaskedLM as HFMaskedLM

    text = "The capital of France is [MASK]."
    result = run("fill-mask", text, "--checkpoint", str(tiny_mlm_checkpoint), "--top-k", "3")
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert len(rows) == 3

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_mlm_checkpoint))
    model = HFMaskedLM.from_pretrained(str(tiny_mlm_checkpoint)).eval()
    batch = tokenizer(text, return_tensors="pt")
    position = int((batch["input_ids"][0] == tokenizer.mask_token_id).nonzero())
    with torch.no_grad():
        probabilities = model(**batch).logits[0, position].softmax(-1)
    top = probabilities.topk(3)
    assert [row[1] for row in rows] == tokenizer.convert_ids_to_tokens(top.indices.tolist())
    for row, probability in zip(rows, top.values.tolist()):
        assert float(row[0]) == pytest.approx(probability, abs=1e-4)
        assert row[2].startswith("the capital of france is ")

    capsys.readouterr()
    assert cli.main(["fill-mask", "no mask here", "--checkpoint", str(tiny_mlm_checkpoint)]) == 1
    assert "must contain [MASK]" in capsys.readouterr().err


def test_embed_json_equals_the_sentence_encoder():
    from minibert.sentence import SentenceEncoder

    texts = ["A short text.", "Another, somewhat longer, text about embeddings."]
    result = run("embed", *texts, "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["text"] for row in rows] == texts
    expected = SentenceEncoder.from_pretrained(minibert.DEFAULT_CHECKPOINT).encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(torch.tensor([row["embedding"] for row in rows]), expected, atol=1e-6, rtol=0)


def test_convert_google_tf_folder(tmp_path, capsys):
    from transformers import BertForPreTraining as HFPreTraining

    destination = tmp_path / "converted"
    result = run("convert", str(TF_FIXTURE), str(destination))
    assert result.returncode == 0, result.stderr
    assert "as BertForPreTraining" in result.stdout
    assert {"config.json", "model.safetensors", "vocab.txt"} <= {p.name for p in destination.iterdir()}
    assert json.loads((destination / "config.json").read_text())["architectures"] == ["BertForPreTraining"]

    # transformers reads the result, and computes what minibert computes from the TF original.
    hf, info = HFPreTraining.from_pretrained(str(destination), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    ours = minibert.BertForPreTraining.from_pretrained(TF_FIXTURE)
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    with torch.no_grad():
        expected = ours(ids).prediction_logits
        got = hf.eval()(ids).prediction_logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)

    assert cli.main(["info", str(destination)]) == 0
    assert "architecture:    BertForPreTraining" in capsys.readouterr().out


def test_convert_a_pytorch_bin_file(tmp_path, tiny_mlm_checkpoint):
    from transformers import BertForMaskedLM as HFMaskedLM

    # The pre-safetensors layout: config.json + a pickled state dict in pytorch_model.bin.
    source = tmp_path / "bin"
    source.mkdir()
    torch.save(HFMaskedLM.from_pretrained(str(tiny_mlm_checkpoint)).state_dict(), source / "pytorch_model.bin")
    for name in ("config.json", "vocab.txt"):
        shutil.copyfile(tiny_mlm_checkpoint / name, source / name)
    destination = tmp_path / "out"
    result = run("convert", str(source / "pytorch_model.bin"), str(destination))
    assert result.returncode == 0, result.stderr
    assert "as BertForMaskedLM: 0 missing, 0 unexpected" in result.stdout
    assert (destination / "vocab.txt").is_file()
    converted = minibert.BertForMaskedLM.from_pretrained(destination)
    original = minibert.BertForMaskedLM.from_pretrained(source)
    for (name, a), (_, b) in zip(converted.state_dict().items(), original.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)


@pytest.mark.parametrize("device, fragment", [
    ("bogus", "--device must name a device such as cpu"),
    ("cuda", "--device='cuda', but CUDA is not available here"),
    ("cuda:7", "--device='cuda:7', but"),
    ("mps", "--device='mps', but Apple's MPS backend is not available"),
    ("meta", "minibert runs on cpu, cuda or mps"),
])
def test_bad_device_is_one_line_before_any_loading(device, fragment, capsys, monkeypatch):
    if device.startswith("cuda") and torch.cuda.is_available():
        if device == "cuda" or torch.cuda.device_count() > 7:
            pytest.skip("this machine has the GPU the test asks for")
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    # The checkpoint would not load: the device check must come first and be the one reported.
    assert cli.main(["embed", "some text", "--checkpoint", "/no/such/checkpoint", "--device", device]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("minibert: error: ") and fragment in err


def test_unexpected_errors_are_one_line_too_and_debug_shows_the_traceback(capsys, monkeypatch):
    def broken(args):
        raise RuntimeError("shape mismatch\nsomewhere deep")

    monkeypatch.setitem(cli.COMMANDS, "info", (*cli.COMMANDS["info"][:2], broken))
    assert cli.main(["info", "x"]) == 1
    err = capsys.readouterr().err
    assert err == ("minibert: error: RuntimeError: shape mismatch somewhere deep (an unexpected error; rerun "
                   "with --debug for the traceback)\n")
    with pytest.raises(RuntimeError, match="shape mismatch"):
        cli.main(["info", "x", "--debug"])


@pytest.mark.parametrize("config_text, fragment", [
    ('{"architectures": "BertModel"}', "architectures must be a list of class names"),
    ("[" * 100_000, "nests JSON arrays/objects too deeply"),
])
def test_hostile_config_json_is_one_line(tmp_path, capsys, config_text, fragment):
    (tmp_path / "config.json").write_text(config_text)
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert cli.main(["info", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err


@pytest.mark.parametrize("text", ["[" * 100_000, '{"vocab_size": ' + "9" * 5000 + "}"])  # too deep; too many digits
def test_google_config_nested_too_deeply_is_a_checkpoint_error(tmp_path, text):
    from minibert.checkpoints.tf import read_google_config

    (tmp_path / "bert_config.json").write_text(text)
    with pytest.raises(minibert.CheckpointError, match="bert_config.json: cannot read it as JSON"):
        read_google_config(tmp_path)
