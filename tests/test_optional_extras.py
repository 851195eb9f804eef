"""tqdm and matplotlib are extras: without them, progress bars and the loss plot are skipped, the work runs."""

from __future__ import annotations

import json
import sys

import pytest

from minibert.progress import progress_bar
from minibert.train.plots import plot_metrics


def test_without_tqdm_the_bar_is_silent_and_iteration_unchanged(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    bar = progress_bar([1, 2, 3], desc="x", unit="batch")
    assert list(bar) == [1, 2, 3] and len(bar) == 3
    bar.update(1), bar.set_postfix(loss="1.0"), bar.close()
    assert capsys.readouterr().err == ""
    total_only = progress_bar(total=10, disable=False)
    total_only.update(3)


def test_with_tqdm_it_is_tqdm():
    from tqdm.auto import tqdm

    assert isinstance(progress_bar([1], disable=True), tqdm)


def test_without_matplotlib_no_plot_but_a_warning(tmp_path, monkeypatch):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps({"kind": "train", "step": 1, "loss": 2.0}) + "\n")
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.warns(UserWarning, match="matplotlib is not installed"):
        assert plot_metrics(metrics, tmp_path / "loss.png") is None
    assert not (tmp_path / "loss.png").exists()


def test_a_plot_interrupted_while_drawing_leaves_no_file(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"kind": "train", "step": s, "loss": 3.0 / s}) + "\n" for s in range(1, 9)))
    stale = tmp_path / ".loss.png.abc123.tmp"  # what a kill -9 during an earlier write left behind
    stale.write_bytes(b"half a picture")
    real_savefig = Figure.savefig

    def interrupted(self, target, **kwargs):
        real_savefig(self, target, **kwargs)
        raise KeyboardInterrupt  # stopped after rendering, before anything is written

    monkeypatch.setattr(Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        plot_metrics(metrics, tmp_path / "loss.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".loss.png.abc123.tmp", "metrics.jsonl"]
    monkeypatch.setattr(Figure, "savefig", real_savefig)
    assert plot_metrics(metrics, tmp_path / "loss.png") == tmp_path / "loss.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png", "metrics.jsonl"]  # the stale one removed
