"""The engines people pick for fast BERT inference on a CPU, side by side on MiniLM, with accuracy.

Contenders, all on the same batches of pydoc text, interleaved:

* transformers fp32 (SDPA): the reference every ratio divides by, and the accuracy reference;
* transformers bf16 (``model.to(torch.bfloat16)``);
* minibert fp32 / bf16 / int8 (``minibert.fast.precision.set_precision``), and which path it took;
  ``minibert int8 compiled``: int8 through ``minibert.fast.compile`` (torch.compile, one graph per
  shape; the compile happens in the untimed first call, whose time is printed);
* ONNX Runtime fp32: transformers' model exported to ONNX, then ORT's BERT graph optimizer
  (``onnxruntime.transformers.optimizer``: fused attention, embedding + LayerNorm, skip-LayerNorm,
  bias-GELU), what sentence-transformers' ``backend="onnx"`` runs; ORT int8: that graph through
  ORT's ``quantize_dynamic`` (int8 weights, one activation scale per tensor);
  ``ORT fp32 (minibert export)``: ``minibert export-onnx``'s graph through the same optimizer;
* CTranslate2 fp32 and int8 (its converter for BERT, ``TransformersConverter``).

Each row carries its accuracy: the smallest cosine, over the batch, between its mean-pooled
embedding (MiniLM's sentence vector) and the fp32 reference's, and the largest |Δ| of any
last-hidden-state value at a real token. Shapes: 1×128, 8×128, 32×128 (full windows of text, no
padding) and a padded batch of 32 pydoc paragraphs at their own lengths (up to 256 tokens).

ORT runs without spinning threads (``session.intra_op.allow_spinning=0``) and with as many threads
as PyTorch, the equivalent of ``OMP_WAIT_POLICY=PASSIVE``; CTranslate2 gets the same thread count.
``--threads 1,2`` runs every engine at both counts in the same interleaved rounds and gives each shape
a verdict per count and one with each engine at its fastest count (on a 2-core host with passive
OpenMP threads, one thread is the fastest setting at batch 1 for most engines).

Run: ``OMP_WAIT_POLICY=PASSIVE python -m benchmarks.bench_engines [--budget 300] [--shape 8x128] [--threads 1,2]``
(needs the ``bench`` extra: ``pip install -e '.[bench]'``; missing engines are skipped with a note).
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from . import common

FULL_SHAPES = [(1, 128), (8, 128), (32, 128)]
PADDED = "32 × pydoc"
PADDED_BATCH, PADDED_MAX = 32, 256
REFERENCE = "transformers fp32"
ACCURATE = 0.995  # the cosine a mode must keep to count as a replacement for fp32


# ------------------------------------------------------------------------------------------ inputs
def pydoc_batches(tokenizer, shapes: Sequence[Any]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Token ids and masks of pydoc text: full windows (b, t) cut from long topics, and the padded batch."""
    from pydoc_data.topics import topics

    texts = [topics[name] for name in sorted(topics)]
    windows = [ids for ids in tokenizer(texts, truncation=True, max_length=128)["input_ids"] if len(ids) == 128]
    batches = {}
    for shape in shapes:
        if shape == PADDED:
            enc = tokenizer(texts[::7][:PADDED_BATCH], padding=True, truncation=True, max_length=PADDED_MAX,
                            return_tensors="pt")
            batches[shape] = (enc["input_ids"], enc["attention_mask"])
        else:
            b, t = shape
            ids = torch.tensor(windows[:b])[:, :t]
            batches[f"{b}×{t}"] = (ids, torch.ones_like(ids))
    return batches


def mean_pooled(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MiniLM's sentence vector: the mean of the real tokens' last hidden states. (b, t, c) -> (b, c)."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (b, t, 1)
    return (hidden * weights).sum(1) / weights.sum(1)


def accuracy(hidden: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Smallest cosine of pooled embeddings and largest |Δ| at real tokens, against the reference."""
    hidden = hidden.float()[:, : reference.shape[1]]
    cosine = torch.nn.functional.cosine_similarity(mean_pooled(hidden, mask), mean_pooled(reference, mask))
    return {"cosine_min": cosine.min().item(), "max_abs": (hidden - reference)[mask.bool()].abs().max().item()}


# ------------------------------------------------------------------------------------------ engines
Runner = Callable[[torch.Tensor, torch.Tensor], Any]       # (ids, mask) -> whatever the engine returns
Contender = tuple[Runner, Callable[[Any], torch.Tensor], str]  # run, its output as (b, t, c) float32, path


def torch_contenders(folder: Path, shape_mask: torch.Tensor, threads: Sequence[int]) -> dict[str, Contender]:
    """transformers fp32/bf16 and minibert fp32/bf16/int8 (eager and compiled), with the path each
    minibert mode takes, at each thread count (each runner sets PyTorch's before it runs)."""
    import minibert
    from minibert.fast import compile as compile_model
    from minibert.fast.precision import precision_of, set_precision

    out: dict[str, Contender] = {}
    tf = common.transformers_or_none()
    for n in threads:
        torch.set_num_threads(n)
        if tf is not None:
            tf.logging.set_verbosity_error()
            for mode, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
                model = tf.BertModel.from_pretrained(folder, attn_implementation="sdpa").to(dtype).eval()
                out[label(f"transformers {mode}", n, threads)] = (
                    on_threads(n, lambda ids, mask, model=model: model(input_ids=ids, attention_mask=mask)),
                    lambda o: o.last_hidden_state.float(), f"sdpa, {mode}")
        for mode in ("fp32", "bf16", "int8"):
            model = set_precision(minibert.BertModel.from_pretrained(folder), mode)
            with torch.inference_mode():
                path = _minibert_path(model, shape_mask)
            # unpad="auto", as SentenceEncoder runs it: mean pooling never reads padded positions.
            out[label(f"minibert {mode}", n, threads)] = (
                on_threads(n, lambda ids, mask, model=model: model(ids, mask, unpad="auto")),
                lambda o: o.last_hidden_state.float(), f"{path}, {precision_of(model)}")
            if mode == "int8":
                # Inductor writes the thread count into the code it generates, so each count has its own
                # model (graphs are per model) and compiles on its first call, made at that count.
                compiled = compile_model(set_precision(minibert.BertModel.from_pretrained(folder), mode), dynamic=False)
                out[label("minibert int8 compiled", n, threads)] = (
                    on_threads(n, lambda ids, mask, model=compiled: model(ids, mask, unpad="auto")),
                    lambda o: o.last_hidden_state.float(), f"{path}, int8, torch.compile (Inductor)")
    return out


def label(name: str, threads: int, counts: Sequence[int]) -> str:
    """A contender's name, with its thread count where the run compares several."""
    return name if len(counts) == 1 else f"{name} ·{threads}T"


def on_threads(n: int, run: Runner) -> Runner:
    """``run`` with PyTorch's intra-op thread count set to ``n`` first (a cheap call)."""
    def pinned(ids: torch.Tensor, mask: torch.Tensor):
        torch.set_num_threads(n)
        return run(ids, mask)
    return pinned


def _minibert_path(model, mask: torch.Tensor) -> str:
    from minibert.fast import explain

    return explain(model, mask, unpad="auto").path


def _export_transformers(folder: Path, path: Path) -> None:
    """transformers' BertModel (eager attention: the pattern ORT's optimizer fuses) to ONNX."""
    import transformers

    model = transformers.BertModel.from_pretrained(folder, attn_implementation="eager").eval()

    class Outputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    from minibert.export import INPUT_NAMES

    ids, mask = common.random_batch(2, 16, model.config.vocab_size, lengths=[16, 9])
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Outputs().eval(), (ids, mask, torch.zeros_like(ids)), str(path),
                          input_names=list(INPUT_NAMES), output_names=["last_hidden_state"],
                          dynamic_axes={name: axes for name in (*INPUT_NAMES, "last_hidden_state")},
                          opset_version=17, dynamo=False)


def ort_contenders(folder: Path, workdir: Path, threads: Sequence[int]) -> dict[str, Contender]:
    """ONNX Runtime: optimized fp32, its dynamic int8, and minibert's own export optimized."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    import minibert
    from minibert.export import export_onnx

    model = minibert.BertModel.from_pretrained(folder)
    heads, hidden = model.config.num_attention_heads, model.config.hidden_size
    graphs = {}
    _export_transformers(folder, workdir / "transformers.onnx")
    export_onnx(model, workdir / "minibert.onnx")
    for name in ("transformers", "minibert"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimized = optimizer.optimize_model(str(workdir / f"{name}.onnx"), model_type="bert",
                                                 num_heads=heads, hidden_size=hidden)
        fused = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
        optimized.save_model_to_file(str(workdir / f"{name}_opt.onnx"))
        graphs[name] = "fused " + ", ".join(f"{op}×{n}" for op, n in fused.items())
    quantize_dynamic(str(workdir / "transformers_opt.onnx"), str(workdir / "transformers_int8.onnx"),
                     weight_type=QuantType.QInt8, extra_options={"DefaultTensorType": 1})  # 1 = float

    def session(file: str, n: int) -> Runner:
        options = ort.SessionOptions()
        options.intra_op_num_threads = n
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(str(workdir / file), options, providers=["CPUExecutionProvider"])
        wanted = [i.name for i in sess.get_inputs()]

        def run(ids: torch.Tensor, mask: torch.Tensor):
            feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(),
                     "token_type_ids": np.zeros_like(ids.numpy())}
            return sess.run(None, {name: feeds[name] for name in wanted})[0]
        return run

    as_tensor = lambda o: torch.from_numpy(np.asarray(o)).float()  # noqa: E731
    out: dict[str, Contender] = {}
    for n in threads:
        out[label("ORT fp32", n, threads)] = (session("transformers_opt.onnx", n), as_tensor, graphs["transformers"])
        out[label("ORT int8", n, threads)] = (session("transformers_int8.onnx", n), as_tensor,
                                              "dynamic int8 (per-tensor activations), " + graphs["transformers"])
        out[label("ORT fp32 (minibert export)", n, threads)] = (session("minibert_opt.onnx", n), as_tensor,
                                                                graphs["minibert"])
    return out


def ct2_contenders(folder: Path, workdir: Path, threads: Sequence[int]) -> dict[str, Contender]:
    """CTranslate2's BERT encoder, converted from the checkpoint, in fp32 and int8."""
    import ctranslate2
    from ctranslate2.converters import TransformersConverter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        TransformersConverter(str(folder)).convert(str(workdir / "ct2"), force=True)
    out: dict[str, Contender] = {}
    for n, (mode, compute_type) in ((n, m) for n in threads for m in (("fp32", "float32"), ("int8", "int8"))):
        encoder = ctranslate2.Encoder(str(workdir / "ct2"), device="cpu", compute_type=compute_type,
                                      intra_threads=n)

        def run(ids: torch.Tensor, mask: torch.Tensor, encoder=encoder):
            tokens = [row[: int(n)] for row, n in zip(ids.tolist(), mask.sum(1).tolist())]  # real tokens
            return encoder.forward_batch(tokens).last_hidden_state
        out[label(f"CT2 {mode}", n, threads)] = (run, lambda o: torch.from_numpy(np.array(o)).float(),
                                                 f"compute_type {encoder.compute_type}")
    return out


def _verdict(medians: dict[str, float]) -> tuple[str, str, float]:
    """(fastest minibert contender, fastest other, their time ratio) among accurate contenders."""
    best_mine = min((n for n in medians if n.startswith("minibert")), key=medians.get)
    best_other = min((n for n in medians if not n.startswith("minibert")), key=medians.get)
    return best_mine, best_other, medians[best_mine] / medians[best_other]


# ---------------------------------------------------------------------------------------------- run
def run(budget_s: float = 300.0, device: str = "cpu", json_path: Optional[str] = None,
        shapes: Optional[Sequence[Any]] = None, max_rounds: int = 9,
        threads: Optional[Sequence[int]] = None) -> dict[str, Any]:
    """``threads``: the thread counts every engine runs at (default: PyTorch's, one per core). With
    several, each engine appears once per count and each shape gets a verdict per count and one over
    all of them (each engine at its fastest count)."""
    from minibert.fast.precision import cpu_features, resolve_precision
    from minibert.tokenizer import BertTokenizer

    shapes = list(shapes or [*FULL_SHAPES, PADDED])
    threads = sorted(set(threads or [torch.get_num_threads()]))
    if threads[0] < 1:
        raise ValueError(f"threads must be positive, got {threads}")
    info = common.header()
    common.print_header("inference engines, MiniLM (cpu)", info)
    features = cpu_features()
    info["cpu_features"] = features
    info["threads_compared"] = threads
    reference_name = label(REFERENCE, threads[-1], threads)
    print("cpu features: " + ", ".join(f"{name} {'yes' if on else 'no'}" for name, on in features.items())
          + f"; precision='auto' resolves to {resolve_precision('auto')}")
    folder = common.checkpoint_folder("minilm")
    batches = pydoc_batches(BertTokenizer.from_pretrained(folder), shapes)

    contenders = torch_contenders(folder, next(iter(batches.values()))[1], threads)
    with tempfile.TemporaryDirectory(prefix="minibert-engines-") as workdir:  # sessions load before it goes
        for module, build in (("onnxruntime", ort_contenders), ("ctranslate2", ct2_contenders)):
            if importlib.util.find_spec(module) is None:
                print(f"note: {module} is not installed (pip install -e '.[bench]'); its rows are skipped")
                continue
            contenders.update(build(folder, Path(workdir), threads))
    for name, (_, _, path) in contenders.items():
        print(f"  {name:28s} {path}")

    rows, results = [], []
    per_shape = budget_s / len(batches)
    for shape, (ids, mask) in batches.items():
        with torch.inference_mode():
            reference = contenders[reference_name][1](contenders[reference_name][0](ids, mask))
            errors, first_call = {}, {}
            for name, (fn, convert, _) in contenders.items():  # untimed: compiles, loads, warms caches
                start = time.perf_counter()
                output = fn(ids, mask)
                first_call[name] = time.perf_counter() - start
                errors[name] = accuracy(convert(output), reference, mask)
            compiled = [f"{name} {first_call[name]:.1f} s" for name in contenders if "compiled" in name]
            if compiled:
                print(f"{shape}: first call (compiling) " + ", ".join(compiled))
            timing = common.time_adaptive({name: (lambda fn=fn: fn(ids, mask)) for name, (fn, _, _) in contenders.items()},
                                          per_shape, hi=max_rounds)
        ref = timing[reference_name]
        for name, tm in timing.items():
            err = errors[name]
            rows.append([shape, name, common.fmt_ms(tm.median), tm.spread, common.fmt_ratio(common.ratio(tm, ref)),
                         f"{err['cosine_min']:.5f}", f"{err['max_abs']:.1e}"])
        accurate = {n: t.median for n, t in timing.items() if errors[n]["cosine_min"] >= ACCURATE}
        groups = {f"{n} thread{'s' * (n > 1)}": [name for name in timing if name.endswith(f" ·{n}T")]
                  for n in threads} if len(threads) > 1 else {}
        verdicts = {}
        for group, names in [*groups.items(), ("", list(timing))]:
            best_mine, best_other, verdict = _verdict({n: accurate[n] for n in names if n in accurate})
            verdicts[group or "all"] = {"best_minibert": best_mine, "best_other": best_other, "ratio": verdict}
            within = f" at {group}" if group else (" (each at its fastest thread count)" if groups else "")
            rows.append([shape, f"best minibert{within} ({best_mine}) / best other ({best_other})", "-", "-",
                         f"**{verdict:.2f}**", "-", "-"])
        overall = verdicts["all"]
        results.append({"shape": shape, "tokens": int(mask.sum()), "best_minibert": overall["best_minibert"],
                        "best_other": overall["best_other"], "best_ratio": overall["ratio"], "verdicts": verdicts,
                        "contenders": {n: {**tm.to_dict(), **errors[n], "ratio": common.ratio(tm, ref),
                                           "path": contenders[n][2], "first_call_s": first_call[n]}
                                       for n, tm in timing.items()}})
    common.print_table(["shape", "contender", "ms", "spread", f"ratio vs {reference_name}", "cos min", "max |Δ|"], rows)
    print(f"# best = fastest with cos ≥ {ACCURATE}; spreads are min-max over interleaved rounds on a shared host")
    data = {"header": info, "threads": threads, "results": results}
    common.write_json("engines_cpu", data, json_path)
    return data


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Besides the shared options: ``--shape BxT`` or ``--shape padded`` (repeatable) picks rows."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--shape", dest="shapes", action="append", help="BxT (e.g. 8x128) or 'padded'",
                         type=lambda text: PADDED if text == "padded" else tuple(int(x) for x in text.split("x")))
    options.add_argument("--max-rounds", type=int, default=9, help="most timed rounds per shape")
    options.add_argument("--threads", type=lambda text: [int(x) for x in text.split(",")],
                         help="thread count(s) for every engine, e.g. 2 or 1,2 (default: PyTorch's, one per core)")
    return common.run_from_command_line(run, __doc__, argv, default_budget=300.0, options=options)


if __name__ == "__main__":
    main()
