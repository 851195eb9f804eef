"""The README's main job and the brief's example run on the real checkpoint and print real output."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_quickstart_prints_a_similarity_matrix_and_a_sensible_nearest_sentence(capsys):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import quickstart
    finally:
        sys.path.remove(str(EXAMPLES))
    assert quickstart.main([]) == 0
    out = capsys.readouterr().out
    assert "cosine similarity" in out and "['i', 'love', 'deep', 'learning', '.']" in out
    rows = [line for line in out.splitlines() if line.strip().startswith("s") and line.count(".") >= 8]
    assert len(rows) == len(quickstart.SENTENCES)
    assert all("1.00" in row for row in rows)  # every sentence is most similar to itself
    # A trained encoder puts the BERT/deep-learning sentences nearest to a question about ML models.
    nearest = out.split("nearest: ")[1].strip()
    assert nearest.strip("'") in quickstart.SENTENCES[:4], nearest


def test_quickstart_reports_a_missing_checkpoint_in_one_line(capsys):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import quickstart
    finally:
        sys.path.remove(str(EXAMPLES))
    assert quickstart.main(["--checkpoint", "no/such-model"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no local checkpoint named 'no/such-model'") and err.count("\n") == 1


def test_the_briefs_example_runs_on_minibert(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["brief_classification.py"])
    runpy.run_path(str(EXAMPLES / "brief_classification.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "newly initialised: ['classifier.weight', 'classifier.bias']" in out
    assert "predictions: [" in out
