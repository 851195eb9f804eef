"""Inference precision as one switch: ``set_precision(model, "auto" | "fp32" | "bf16" | "int8")``.

What each mode does to a model, and what it costs in accuracy (MiniLM, pydoc text, 32×128: the
smallest cosine of mean-pooled embeddings against fp32; the benchmark in ``benchmarks/bench_engines.py``
re-measures it at every shape, and ``docs/benchmarks.md`` lists the figures):

* ``fp32``: every parameter float32; the reference numbers.
* ``bf16``: every floating parameter and buffer bfloat16 (``model.to(torch.bfloat16)``), so the
  activations are bf16 too. 8 bits of mantissa: cosine ≈ 0.9998, max |Δ| of a pooled value ≈ 4e-3.
  Fast only where the hardware multiplies bf16 itself (AVX512-BF16 or AMX on a CPU, any recent GPU);
  elsewhere PyTorch emulates it, far slower than fp32.
* ``int8``: each plain ``nn.Linear`` becomes an ``Int8Linear``: weights stored as int8 with one scale
  per output channel (per row of W), activations quantized per token (per row of x) at run time, the
  product in int32 (``torch._int_mm``), then rescaled to float32. Per-token scales are what keep
  BERT's outlier features (a few channels hundreds of times larger than the rest) from flattening
  every other value of the token to zero, which is what one scale per tensor (PyTorch's
  ``quantize_dynamic``) does: cosine ≈ 0.997 here against ≈ 0.90 with per-tensor scales. Everything
  else (embeddings, LayerNorm, GELU) stays float32, and so does attention, except where the CPU
  multiplies bf16 natively: there the fused Q/K/V projection hands its output on in bf16, so QKᵀ and
  the weights·V products run in bf16 (1×128, one thread: 275 vs 430 µs per layer for float32's fused
  kernel; MiniLM's pooled cosine on pydoc text 0.99822, 0.99790 with float32 attention).
* ``auto``: bf16 where the device computes it natively, fp32 elsewhere. int8 is never picked by
  auto: run eagerly it is slower than native bf16 at the default thread count (compiled, through
  ``minibert.fast.compile``, it is the fastest mode at 8×128 and on padded batches here, but auto
  does not compile), and its accuracy depends on the checkpoint's outliers (MiniLM on random token
  ids: cosine 0.992), which auto cannot check.

Modes are applied in place (``precision_of`` reads the mode back); switching from int8 back to a float
mode raises (the float weights are gone): load the checkpoint again instead.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
import torch
from torch import Tensor, nn

from minibert.attention import MultiHeadAttention
from minibert.errors import InputError, InputTypeError

PRECISIONS = ("auto", "fp32", "bf16", "int8")
FLOAT_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# CPU flags that decide which modes run natively (from /proc/cpuinfo).
FEATURES = ("amx_bf16", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2")


@lru_cache(maxsize=1)
def cpu_features() -> dict[str, bool]:
    """Which of ``FEATURES`` this CPU has. Read from /proc/cpuinfo (Linux); elsewhere from what
    PyTorch reports (its best vector ISA), which cannot tell bf16 support apart: all False but AVX."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return {name: name in flags for name in FEATURES}
    except OSError:
        pass
    capability = torch.backends.cpu.get_cpu_capability()  # e.g. "AVX2", "AVX512", "DEFAULT"
    return {name: (name == "avx2" and capability in ("AVX2", "AVX512")) or
                  (name == "avx512f" and capability == "AVX512") for name in FEATURES}


def bf16_native(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware (AMX or AVX512-BF16; a GPU that supports it)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        features = cpu_features()
        return features["amx_bf16"] or features["avx512_bf16"]
    return False


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """The concrete mode ("fp32", "bf16" or "int8") that ``precision`` means on ``device``."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if bf16_native(device) else "fp32"


# ------------------------------------------------------------------------------------------- int8
def quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 quantization with one scale per row: x (m, k) ≈ q (m, k) int8 · scale (m, 1)."""
    # abs().amax(), not vector_norm(ord=inf): the same value, but PyTorch's inf-norm reduction over rows
    # took ~25x longer on a CPU here (155 vs 7 µs for a 128x384 tensor), as long as the int8 matmul itself.
    largest = x.float().abs().amax(dim=1, keepdim=True).clamp_(min=1e-12)                      # (m, 1)
    q = torch.mul(x, 127.0 / largest).round_().to(torch.int8)  # |x| ≤ largest: already within ±127
    return q, largest / 127.0


class Int8Linear(nn.Module):
    """y = x Wᵀ + b with W in int8 (one scale per output channel) and x quantized per token.

        y[i, j] ≈ (Σ_k qx[i, k] · qw[j, k]) · sx[i] · sw[j] + b[j]

    The sum is exact in int32; the two scales restore the magnitudes. Inputs of any leading shape
    (..., k); output (..., n) in ``out_dtype`` (float32 unless the next operation wants bf16).
    """

    def __init__(self, linear: nn.Linear, out_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.out_dtype = out_dtype
        weight, weight_scale = quantize_rows(linear.weight.detach().float())           # (n, k), (n, 1)
        self.register_buffer("weight_t", weight.t())                                     # (k, n), as _int_mm takes it
        self.register_buffer("weight_scale", weight_scale.reshape(-1))                  # (n,)
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self.register_buffer("bias", bias)

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, self.in_features)                                          # (m, k)
        q, scale = quantize_rows(rows)
        padding = 17 - q.shape[0] if q.is_cuda and q.shape[0] <= 16 else 0  # CUDA's kernel wants m > 16
        if padding > 0:
            q = torch.cat([q, q.new_zeros(padding, q.shape[1])])
        products = torch._int_mm(q, self.weight_t)[: rows.shape[0]]                     # (m, n) int32
        # Converted first: int32 · float32 in one op takes PyTorch's slow mixed-dtype path (~20x here).
        y = products.float().mul_(scale)                                                 # (m, n) float32
        y = y.mul_(self.weight_scale) if self.bias is None else torch.addcmul(self.bias, y, self.weight_scale, out=y)
        return y.to(self.out_dtype).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        out = "" if self.out_dtype == torch.float32 else f", output {str(self.out_dtype).replace('torch.', '')}"
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights per channel{out}"


def _quantizable(linear: nn.Module, tied: set[int]) -> bool:
    """A plain ``nn.Linear`` (subclasses and wrappers are left alone), not tied to an embedding matrix,
    with both sizes a multiple of 8 (the tiny classifiers keep float weights; int8 would not save time there)."""
    return (type(linear) is nn.Linear and id(linear.weight) not in tied
            and linear.in_features % 8 == 0 and linear.out_features % 8 == 0)


def quantize_linears(model: nn.Module, attention_dtype: torch.dtype = torch.float32) -> int:
    """Replace every quantizable ``nn.Linear`` inside ``model`` by an ``Int8Linear``; returns how many.
    The attention's fused Q/K/V projection hands its output on in ``attention_dtype``."""
    tied = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _quantizable(child, tied):
                qkv = isinstance(parent, MultiHeadAttention) and name == "qkv"
                setattr(parent, name, Int8Linear(child, attention_dtype if qkv else torch.float32))
                count += 1
    return count


# ----------------------------------------------------------------------------------------- switch
def precision_of(model: nn.Module) -> str:
    """The mode ``model`` runs in, read from its modules: "int8" if any ``Int8Linear`` is inside, else
    the dtype of its floating parameters ("fp32", "bf16", or the dtype's name, e.g. "float16")."""
    if any(isinstance(m, Int8Linear) for m in model.modules()):
        return "int8"
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    return {torch.float32: "fp32", torch.bfloat16: "bf16"}.get(dtype, str(dtype).replace("torch.", ""))


def set_precision(model: nn.Module, precision: str = "auto") -> nn.Module:
    """Put ``model`` (a BertModel, any head, a SentenceEncoder) in ``precision``; in place, returns it.

    "auto" resolves on the model's device (``resolve_precision``); ``precision_of(model)`` tells the
    mode afterwards. Call it after moving the model to its device and after loading weights.
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    mode = resolve_precision(precision, device)
    current = precision_of(model)
    if current == "int8" and mode != "int8":
        raise InputError(f"precision={precision!r}: this model was quantized to int8 and its float weights "
                         f"are gone; load the checkpoint again for {mode}")
    if mode == "int8":
        if current != "int8":
            model.float()  # int8 keeps everything outside the matmuls in float32 (attention aside, above)
            quantize_linears(model, torch.bfloat16 if bf16_native(device) else torch.float32)
    else:
        model.to(FLOAT_DTYPES[mode])
    return model
