"""What every benchmark shares: the header, the matmul peak, interleaved timing, tables and JSON.

Timing rules, because this is a small shared host:
* every contender runs in the same process on the same inputs, interleaved round by round (the
  order rotates each round), so that drifting load from other processes hits all of them alike;
* a warm-up round first (allocator, oneDNN primitive caches, lazy imports), then ``rounds`` timed
  rounds; we report the median and the min-max spread, never the mean;
* the matmul peak is measured in the same run, on the same threads, so "% of peak" compares like
  with like.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

RESULTS = Path(__file__).parent / "results"


# ------------------------------------------------------------------------------------------ header
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("amx", "avx512_bf16", "avx512f", "avx2", "avx512_bf16")))
    except OSError:
        pass
    return []


def header() -> dict[str, Any]:
    """Everything a reader needs to judge a number: versions, threads, OpenMP policy, load."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset: spin-wait)"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": _cpu_flags(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cuda": torch.cuda.is_available(),
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        info["transformers"] = None
    return info


def print_header(title: str, info: dict[str, Any]) -> None:
    print(f"\n=== {title} ===")
    print(f"torch {info['torch']}, transformers {info['transformers']}, python {info['python']}; "
          f"{info['threads']} threads, OMP_WAIT_POLICY={info['OMP_WAIT_POLICY']}, "
          f"OMP_NUM_THREADS={info['OMP_NUM_THREADS']}")
    print(f"cpu: {info['cpu']} ({info['cpu_count']} logical), flags {' '.join(info['cpu_flags']) or '-'}; "
          f"load average {info['load_average']}")


def native_bf16(device: str = "cpu") -> bool:
    """Whether bf16 matmuls run in hardware (AMX / AVX512-BF16 / CUDA); without it they are emulated,
    hundreds of times slower than fp32, and timing bf16 models would only measure the emulation."""
    if device.startswith("cuda"):
        return True
    return any(f.startswith(("amx_bf16", "avx512_bf16")) for f in _cpu_flags())


def transformers_or_none():
    """transformers is the oracle, optional: without it the benchmarks time minibert alone."""
    try:
        import transformers

        return transformers
    except ImportError:
        print("note: transformers is not installed; timing minibert alone")
        return None


# -------------------------------------------------------------------------------------------- peak
def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048, device: str = "cpu",
                rounds: int = 5) -> float:
    """GFLOP/s of an (n, n) @ (n, n) matmul: the practical ceiling every model here is measured against.

    On a CPU, the faster of PyTorch's two libraries: MKL (``a @ b``) and oneDNN (the linear the fast
    path uses, ``minibert/fast/onednn.py``); on AMD CPUs MKL's float32 path is several times slower."""
    from minibert.fast import onednn

    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    contenders = {"matmul": lambda: a @ b}
    if device == "cpu" and onednn.LINEAR is not None:
        contenders["oneDNN"] = lambda: onednn.LINEAR(a, b, None, "none", [], "")
    times = time_rounds(contenders, rounds=rounds, device=device)
    return max(2 * n ** 3 / statistics.median(t) / 1e9 for t in times.values())


def gemm_floor(config, tokens: int, device: str = "cpu") -> Callable[[], Any]:
    """A contender that runs one layer's projection and FFN matmuls for ``tokens`` tokens.

    Same shapes as a real forward ((n, c)·(c, 3c), (n, c)·(c, c), (n, c)·(c, f), (n, f)·(f, c)), no
    bias, no attention, no element-wise work, outputs written into buffers allocated once. Its time
    times ``num_hidden_layers`` (``floor_timing``) is a lower bound for any encoder that issues these
    matmuls through this BLAS; over transformers' time, it is the lowest ratio this host allows. One
    layer rather than all of them keeps the benchmark's budget: all layers have the same shapes.
    """
    c, f = config.hidden_size, config.intermediate_size
    x = torch.randn(tokens, c, device=device)
    qkv, out, up, down = (torch.randn(3 * c, c, device=device) * 0.02, torch.randn(c, c, device=device) * 0.02,
                          torch.randn(f, c, device=device) * 0.02, torch.randn(c, f, device=device) * 0.02)
    scratch = torch.empty(tokens * max(3 * c, f), device=device)
    projected, inner = scratch[: tokens * 3 * c].view(tokens, 3 * c), scratch[: tokens * f].view(tokens, f)
    narrow = torch.empty(tokens, c, device=device)

    def run() -> None:
        torch.mm(x, qkv.t(), out=projected)
        torch.mm(x, out.t(), out=narrow)
        torch.mm(x, up.t(), out=inner)
        torch.mm(inner, down.t(), out=narrow)

    return run


def floor_timing(one_layer: "Timing", config) -> "Timing":
    """``gemm_floor``'s samples scaled from one layer to the whole encoder."""
    return Timing([t * config.num_hidden_layers for t in one_layer.samples])


# ------------------------------------------------------------------------------------------ timing
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_rounds(contenders: dict[str, Callable[[], Any]], rounds: int = 5, warmup: int = 1,
                device: str = "cpu") -> dict[str, list[float]]:
    """Seconds per call of each contender, ``rounds`` samples each, interleaved with a rotating order."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
        _sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            _sync(device)
            start = time.perf_counter()
            contenders[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


@dataclass
class Timing:
    """Median and spread of one contender's samples, in seconds."""

    samples: list[float]
    median: float = field(init=False)
    low: float = field(init=False)
    high: float = field(init=False)

    def __post_init__(self) -> None:
        self.median = statistics.median(self.samples)
        self.low, self.high = min(self.samples), max(self.samples)

    @property
    def spread(self) -> str:
        """Min-max around the median, in percent: how much the host's load moved this number."""
        return f"-{100 * (1 - self.low / self.median):.0f}/+{100 * (self.high / self.median - 1):.0f}%"

    def to_dict(self) -> dict[str, Any]:
        return {"median_s": self.median, "min_s": self.low, "max_s": self.high, "samples_s": self.samples}


def summarize(times: dict[str, list[float]]) -> dict[str, Timing]:
    return {name: Timing(samples) for name, samples in times.items()}


# ------------------------------------------------------------------------------------------- FLOPs
def encoder_flops(config, lengths: list[int], attention: bool = True) -> float:
    """Matmul FLOPs of one encoder forward over sequences of the given (real) lengths.

    Per token and layer: the q/k/v/out projections (4 c²) and the FFN (2 c f) are multiply-adds (x2);
    attention adds QKᵀ and PV, 2 · s · c multiply-adds per token for a sequence of s keys.
    The pooler and embeddings are negligible and left out; ``attention=False`` counts the projections
    and FFN only (what ``gemm_floor`` runs).
    """
    c, f, n_layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0.0
    for s in lengths:
        total += n_layers * s * (2 * (4 * c * c + 2 * c * f) + (2 * 2 * s * c if attention else 0))
    return total


# ------------------------------------------------------------------------------------------ output
def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}" if seconds < 10 else f"{seconds:.1f}s"


def print_table(columns: list[str], rows: list[list[Any]]) -> None:
    """A Markdown table, so the printed output can be pasted into docs/results as it is."""
    cells = [[str(c) for c in columns]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    line = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        print(line(r))


def write_json(name: str, data: dict[str, Any], path: Optional[str] = None) -> Path:
    out = Path(path) if path else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, default=str))
    print(f"wrote {out}")
    return out


def ratio(ours: Timing, theirs: Optional[Timing]) -> Optional[float]:
    """minibert / transformers: below 1 means minibert is faster."""
    return None if theirs is None else ours.median / theirs.median


def fmt_ratio(r: Optional[float]) -> str:
    return "-" if r is None else f"{r:.2f}"


# ------------------------------------------------------------------------------------------ models
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
_FOLDERS: dict[str, Path] = {}


def checkpoint_folder(size: str) -> Path:
    """A local checkpoint both libraries load: MiniLM as shipped, bert-base as random weights
    saved by minibert (no downloads; speed does not depend on the values)."""
    import tempfile

    import minibert

    if size == "minilm":
        return minibert.resolve(MINILM)
    if size not in _FOLDERS:
        torch.manual_seed(0)
        folder = Path(tempfile.mkdtemp(prefix=f"minibert-bench-{size}-"))
        minibert.BertModel(minibert.BertConfig()).save_pretrained(folder)  # BertConfig() is bert-base
        _FOLDERS[size] = folder
    return _FOLDERS[size]


def load_pair(size: str, cls_name: str = "BertModel", device: str = "cpu"):
    """(minibert model, transformers model with SDPA attention or None), same weights, eval mode."""
    import minibert

    folder = checkpoint_folder(size)
    ours = getattr(minibert, cls_name).from_pretrained(folder).to(device).eval()
    tf = transformers_or_none()
    theirs = None
    if tf is not None:
        tf.logging.set_verbosity_error()
        theirs = getattr(tf, cls_name).from_pretrained(folder, attn_implementation="sdpa").to(device).eval()
    return ours, theirs


def random_batch(b: int, t: int, vocab: int, lengths: Optional[list[int]] = None, device: str = "cpu",
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (b, t) of ordinary words and a right-padded mask (b, t), 1 = real token."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, vocab, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.long)
    if lengths is not None:
        mask = (torch.arange(t) < torch.tensor(lengths)[:, None]).long()
        ids = ids * mask  # 0 is [PAD]
    return ids.to(device), mask.to(device)


def adaptive_rounds(seconds_per_round: float, budget_s: float, lo: int = 3, hi: int = 9) -> int:
    """As many rounds as fit the budget, within [lo, hi]: a loaded host still gets a median."""
    return int(max(lo, min(hi, budget_s // max(seconds_per_round, 1e-6))))


def time_adaptive(contenders: dict[str, Callable[[], Any]], budget_s: float, device: str = "cpu",
                  lo: int = 3, hi: int = 9) -> dict[str, Timing]:
    """One warm-up round (timed, to size the rest), then as many interleaved rounds as the budget allows."""
    start = time.perf_counter()
    for fn in contenders.values():
        fn()
    _sync(device)
    rounds = adaptive_rounds(time.perf_counter() - start, budget_s, lo, hi)
    return summarize(time_rounds(contenders, rounds=rounds, warmup=0, device=device))


def run_from_command_line(run: Callable[..., dict[str, Any]], doc: str, argv: Optional[list[str]],
                          default_budget: float, options: Optional[Any] = None) -> dict[str, Any]:
    """The command line every timing script shares: ``--budget SECONDS --device cpu|cuda --json PATH``.

    ``options``, an ``argparse.ArgumentParser(add_help=False)``, adds a script's own options (listed by
    ``--help`` with the shared ones); their values reach ``run`` as keyword arguments.
    """
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0], parents=[options] if options else [])
    parser.add_argument("--budget", type=float, default=default_budget, help="seconds of timed rounds, roughly")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json")
    args = vars(parser.parse_args(argv))
    return run(args.pop("budget"), args.pop("device"), args.pop("json"), **args)
