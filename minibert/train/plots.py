"""The loss curve of a run, drawn from its ``metrics.jsonl`` (matplotlib is an optional extra).

The picture is rendered in memory and only then written, through a temporary file renamed over the
old picture: a run killed while drawing leaves no file at all, and a run killed while writing leaves
a ``.loss_curve.png.*.tmp`` that the next drawing (or the next run in that folder) removes.
"""

from __future__ import annotations

import glob
import io
import os
import warnings
from pathlib import Path
from typing import Optional

from minibert.checkpoints.hf import _atomic_write
from minibert.train.metrics_log import read_metrics

EVAL_CURVES = ("loss", "mlm_loss")  # the held-out curve: a fine-tuning's loss, else pretraining's MLM loss


def remove_stale_temporaries(path: Path) -> None:
    """Remove what an interrupted atomic write of ``path`` left behind (never the file itself)."""
    for leftover in glob.glob(str(path.parent / f".{glob.escape(path.name)}.*.tmp")):
        os.unlink(leftover)


def plot_metrics(metrics_path: str | os.PathLike, png_path: str | os.PathLike) -> Optional[Path]:
    """Training loss per step, and the held-out loss at each evaluation, as a PNG. Uses matplotlib's
    object API with the Agg canvas: no display and no global pyplot state. None without matplotlib or
    without training records."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pictures are an extra: the metrics file holds the same numbers
        warnings.warn("matplotlib is not installed (pip install 'minibert[extras]'): no loss-curve plot")
        return None

    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    key = next((k for k in EVAL_CURVES if any(k in r for r in evals)), None)
    if not train:
        return None
    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(*zip(*train), linewidth=0.8, alpha=0.8, label="training loss")
    if key is not None:
        axes.plot([r["step"] for r in evals if key in r], [r[key] for r in evals if key in r], "o-",
                  label=f"held-out {key.replace('_', ' ')}")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    picture = io.BytesIO()
    figure.savefig(picture, format="png", dpi=110)
    png_path = Path(png_path)
    remove_stale_temporaries(png_path)
    _atomic_write(png_path, lambda tmp: Path(tmp).write_bytes(picture.getvalue()))
    return png_path
