"""``torch.compile`` for inference, with the two Inductor settings that mattered for minibert on a CPU.

    model = minibert.fast.compile(set_precision(model, "int8"))      # compiles on the first call

Compiling fuses what eager PyTorch runs as separate passes over memory (each one a parallel region):
in int8 mode the per-token quantization, the rescale after each int8 matmul, the residual sum and
LayerNorm become one loop per step instead of about nine operations. What this adds to a plain
``torch.compile(model)``:

* ``realize_cpu_opcount_threshold=8``: Inductor recomputes a cheap elementwise result rather than
  storing it when two loops read it. After the FFN's first matmul both the row maximum (for the
  per-token int8 scale) and the quantization read GELU's output, so by default ``erf`` ran twice over
  the (t, intermediate_size) activations; with the lower threshold GELU's output is stored once and read twice
  (MiniLM int8, 1×128, one thread, A/B in one run: 9.8 vs 11.3 ms).
* ``cpp_wrapper=True``: the generated graph calls its ~70 kernels and matmuls from C++ rather than
  from Python, which matters when each is short (same A/B: 8.5 vs 9.1 ms). The first compile of a
  shape takes longer (MiniLM: ~14 s instead of ~4 s with Inductor's cache warm).
* Nothing else needs to change: input checks (``inputs.check_inputs``) and the path decision
  (``fast.decide``) read tensor values, so they are marked ``torch.compiler.disable`` and run eagerly
  before the graph, still raising the same errors; in bf16 attention is written in a form Inductor
  compiles well (``fast/sdpa.py``, ``_deferred``).

``dynamic`` is passed to ``torch.compile`` as given: ``False`` compiles one graph per input shape
(fastest for fixed shapes; each new shape costs a compile, 4-40 s for MiniLM on 2 cores), ``None``
(PyTorch's default) switches to one shape-generic graph at the second shape it sees. The unpadded
path (``unpad=True``, or ``"auto"`` on a padded batch) groups sequences by length in Python, so every
new mix of lengths is a new graph (17-38 s each here, and after PyTorch's recompile limit the call
falls back to eager): for batches of varied lengths compile with ``unpad=False``, or pad to a few
fixed shapes.
Figures: ``docs/results/benchmarks.md`` (rows "compiled").
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from minibert.errors import InputTypeError

# Inductor options this module adds; the docstring above says why each is there.
INDUCTOR_OPTIONS = {"realize_cpu_opcount_threshold": 8, "cpp_wrapper": True}


def compiling() -> bool:
    """Whether Dynamo is tracing the current call (fast paths that Inductor handles better written
    another way ask this); ``torch.compiler.is_compiling`` is newer than the torch 2.1 floor."""
    return getattr(torch.compiler, "is_compiling", lambda: False)()


def compile(model: nn.Module, *, dynamic: Optional[bool] = None, **kwargs: Any) -> nn.Module:
    """``torch.compile(model, dynamic=dynamic, **kwargs)`` with ``INDUCTOR_OPTIONS`` added to Inductor's
    ``options`` (yours win); the model itself is left as it is: call the returned module. Set the
    precision first (``set_precision``): the graph is traced for the modules it finds."""
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if kwargs.get("backend", "inductor") == "inductor":  # other backends take no Inductor options
        kwargs["options"] = {**INDUCTOR_OPTIONS, **(kwargs.get("options") or {})}
    return torch.compile(model, dynamic=dynamic, **kwargs)
