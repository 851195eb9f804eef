"""The run's ``metrics.jsonl``: one JSON record per line (``{"kind": "train", "step": 3, "loss": ...}``),
appended as the run goes, read back by the plot and by resume.

A run killed with ``kill -9`` while appending leaves a cut last line; reading drops it (the step it
described is redone after resume). A damaged line anywhere else is a CheckpointError naming the file
and the line, since what follows it can no longer be trusted.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Optional

from minibert.checkpoints.hf import _atomic_write
from minibert.errors import CheckpointError


def _parse(path: Path) -> tuple[list[dict[str, Any]], Optional[int]]:
    """The records of ``path`` and the number of a cut last line (None when the file ends cleanly)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            if number == len(lines):
                return records, number
            raise CheckpointError(f"{path}:{number} is not a JSON record ({line[:60]!r}); the metrics file is "
                                  "damaged: repair or remove that line, or start the run in a new output folder")
        records.append(record)
    return records, None


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a metrics JSON-lines file, in order; a cut last line (a run killed while
    writing it) is left out."""
    return _parse(Path(path))[0]


class MetricsLog:
    """Appends records to ``path`` (only when ``enabled``: rank 0 of a DDP run). The first record of a
    fresh run empties an old file; ``cut_after`` prepares a resumed run's file instead."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        self._started = False

    def append(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a" if self._started else "w", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        self._started = True

    def cut_after(self, last_step: int) -> None:
        """Drop the records of steps after ``last_step`` (written after the checkpoint a run resumes
        from) and a cut last line, saying so; later records are appended."""
        self._started = True
        if not self.enabled or not self.path.exists():
            return
        records, cut_line = _parse(self.path)
        if cut_line is not None:
            warnings.warn(f"{self.path}:{cut_line} was cut off (the run was stopped while writing it); "
                          "dropped it, the step is redone", stacklevel=2)
        kept = [r for r in records if r.get("step", 0) <= last_step]
        _atomic_write(self.path, lambda tmp: Path(tmp).write_text(
            "".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8"))
