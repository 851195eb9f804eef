"""The in-place block's matmuls through oneDNN on a CPU, with the bias, activation and residual fused.

PyTorch multiplies float32 matrices on a CPU with MKL's sgemm (``torch.addmm``). On AMD CPUs MKL
takes a slow code path: on this project's AMD EPYC (AVX-512) host, a (128, 384)·(384, 1536) product
runs at ~25 GFLOP/s through ``addmm`` and ~150 GFLOP/s through oneDNN, the library PyTorch already
ships for its bf16 and fused kernels (measured single-threaded; ``benchmarks/bench_engines.py``
shows what it does to a whole forward). oneDNN also applies the epilogue in the same pass:

    up    = act(x W₁ᵀ + b₁)          one call, the activation fused ("gelu", "relu")
    x    += context Woᵀ + bo         one call, the residual added by the kernel ("add")

``block`` is the block of ``fast/in_place.py`` written with these calls; ``usable`` says where it
runs (a CPU tensor of float32 or bfloat16, PyTorch built with oneDNN). Its results equal the
reference block's to float rounding (``tests/test_fast_paths.py``).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from minibert.fast.compiled import compiling

# The activations oneDNN applies inside the matmul, by exact type: (post-op name, its algorithm).
_FUSED = {nn.ReLU: lambda act: ("relu", ""), nn.GELU: lambda act: ("gelu", act.approximate)}


def _linear_pointwise():
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        return ops._linear_pointwise if ops is not None and torch.backends.mkldnn.is_available() else None
    except (AttributeError, RuntimeError):
        return None


LINEAR = _linear_pointwise()


def usable(hidden: Tensor) -> bool:
    """Whether ``block`` can run on ``hidden``: CPU, float32 or bfloat16, oneDNN's linear present, and
    not inside ``torch.compile`` (Inductor picks its own kernels, oneDNN's among them)."""
    return (LINEAR is not None and hidden.device.type == "cpu" and hidden.dtype in (torch.float32, torch.bfloat16)
            and not compiling())


def linear(x: Tensor, layer: nn.Linear, act: Optional[nn.Module] = None) -> Tensor:
    """act(x Wᵀ + b) for x (n, k): the activation fused where oneDNN has it, applied after otherwise."""
    fused = _FUSED.get(type(act))
    if act is None or fused is not None:
        name, algorithm = fused(act) if fused else ("none", "")
        return LINEAR(x, layer.weight, layer.bias, name, [], algorithm)
    return act(LINEAR(x, layer.weight, layer.bias, "none", [], ""))


def linear_add(x: Tensor, layer: nn.Linear, residual: Tensor) -> Tensor:
    """residual + x Wᵀ + b for x (n, k), residual (n, m): the sum done by the matmul's epilogue."""
    return LINEAR.binary(x, residual, layer.weight, layer.bias, "add")


def block(block: nn.Module, hidden: Tensor, bias: Optional[Tensor], kernel: Callable) -> Tensor:
    """One ``EncoderBlock`` in inference, each matmul one oneDNN call: (b, t, c) or (n, c) -> same shape."""
    attn, ffn = block.attn, block.ffn
    shape, c = hidden.shape, hidden.shape[-1]
    rows = hidden.reshape(-1, c)                                                   # (n, c)
    qkv = linear(rows, attn.qkv)                                                   # (n, 3c)
    context = kernel(qkv.view(*shape[:-1], 3 * c), bias, attn.num_heads, 0.0)      # (b, t, c) or (n, c)
    rows = block.attn_norm(linear_add(context.reshape(-1, c), attn.out, rows))     # post-LN after the residual
    inner = linear(rows, ffn.up, ffn.act)                                          # (n, f), activated
    return block.ffn_norm(linear_add(inner, ffn.down, rows)).view(shape)           # (b, t, c) or (n, c)
