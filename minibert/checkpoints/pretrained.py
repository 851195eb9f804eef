"""``from_pretrained`` and ``save_pretrained``: the loading half of every minibert model class.

The model classes inherit this mixin; it never imports them (``load`` is handed the class to build),
so checkpoints/ sits below ``model.py`` in the layering (docs/architecture.md).
"""

from __future__ import annotations

import os
from typing import Any, Optional

from minibert.checkpoints.hf import LoadReport, load, save


class PretrainedMixin:
    """Local checkpoint loading and saving with Hugging Face's file layout and names."""

    load_report: Optional[LoadReport] = None  # filled in by from_pretrained

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any):
        """Load a local checkpoint (folder, file, HF cache name or packaged name); see ``checkpoints.load``.

        Keyword arguments that are config fields (``num_labels=3``) override the checkpoint's config.
        The model comes back in ``eval()`` mode with ``model.load_report`` filled in.
        """
        return load(cls, name_or_path, **kwargs)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` + ``model.safetensors`` with HF names, which transformers loads unchanged."""
        save(self, directory)
