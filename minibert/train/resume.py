"""Exact resume: the random states a run depends on, and training checkpoints that are written
atomically and verified when they are read back.

* A checkpoint holds everything a run depends on (the ``Trainer`` fills it: model, optimiser,
  scheduler, every rank's random states and data position, the step). Restoring all of it makes a
  resumed run produce exactly the losses of a run that never stopped.
* It is written to a temporary file, flushed to disk, then renamed over the old one: the rename is
  atomic, so a crash (even ``kill -9``) leaves either the old or the new checkpoint, never half of one.
* It carries a SHA-256 of its own content (every tensor's bytes, dtype and shape, every number and
  string), checked on load: a checkpoint damaged on disk or in a copy is refused, naming the file,
  instead of resuming with silently corrupted weights.
* It is read with ``torch.load(weights_only=True)``, which cannot execute code; that is why random
  states are stored as tensors, lists and numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from minibert.checkpoints.hf import _atomic_write
from minibert.errors import CheckpointError

CHECKPOINT_FORMAT = "minibert-training-checkpoint/2"


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


# -------------------------------------------------------------------------------- checksums

def _feed(digest: "hashlib._Hash", value: Any) -> None:
    """Hash ``value`` with its structure: a tensor as dtype, shape and bytes; containers item by item."""
    if isinstance(value, Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor {value.dtype} {tuple(value.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)};".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__} {len(value)};".encode())
        for item in value:
            _feed(digest, item)
    else:  # numbers, strings, None, bools: their repr is exact
        digest.update(f"{type(value).__name__} {value!r};".encode())


def state_checksum(state: dict[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint's content, independent of the device its tensors are on."""
    digest = hashlib.sha256()
    _feed(digest, state)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- save and load

def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` with its format and checksum to ``path``, atomically and durably."""
    content = {"format": CHECKPOINT_FORMAT, **state}
    content["checksum"] = state_checksum(content)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            torch.save(content, handle)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the rename makes it the checkpoint

    _atomic_write(path, write)
    with contextlib.suppress(OSError):  # make the rename itself durable where supported
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """The verified content of a checkpoint written by ``save_checkpoint`` (the checksum removed).
    CheckpointError naming ``path`` when it cannot be read, is not ours, or was damaged."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises several types for damaged files
        raise CheckpointError(f"cannot read the training checkpoint {str(path)!r} (damaged or not a "
                              f"checkpoint): {exc}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{str(path)!r} is not a minibert training checkpoint of format "
                              f"{CHECKPOINT_FORMAT!r} (found {found!r}); start the run in a new output folder")
    stored = state.pop("checksum", None)
    if stored != state_checksum(state):
        raise CheckpointError(f"the training checkpoint {str(path)!r} is damaged: its content does not match "
                              "its checksum; restore a good copy or start the run in a new output folder")
    return state


def check_same_architecture(saved: dict[str, Tensor], model: nn.Module, path: Path) -> None:
    """CheckpointError naming ``path`` and the first differences when ``saved`` (a state dict) does
    not have the names and shapes of ``model``'s: the run was started with another architecture."""
    expected = model.state_dict()
    missing = [name for name in expected if name not in saved]
    unexpected = [name for name in saved if name not in expected]
    resized = [f"{name} is {tuple(saved[name].shape)} there, {tuple(value.shape)} here"
               for name, value in expected.items() if name in saved and saved[name].shape != value.shape]
    differences = []
    for what, names in (("resized", resized), ("missing there", missing), ("not in this model", unexpected)):
        if names:
            more = f" and {len(names) - 1} more" if len(names) > 1 else ""
            differences.append(f"{what}: {names[0]}{more}")
    if differences:
        raise CheckpointError(f"the training checkpoint {str(path)!r} holds a different model architecture "
                              f"({'; '.join(differences)}); resume with the options the run started with, "
                              "or use a new output folder")
