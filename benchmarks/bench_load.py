"""Start-up costs and memory: ``import minibert``, ``from_pretrained`` of MiniLM, and peak memory.

* import: fresh interpreters, ``import torch`` against ``import torch, minibert`` (and transformers'
  ``BertModel`` for comparison), interleaved; what minibert adds is the difference of medians;
* ``from_pretrained``: both libraries load the same local MiniLM folder in this process, interleaved;
* peak memory: a fresh interpreter loads the model and encodes 8×128 under ``inference_mode``; we
  report its peak resident set (VmHWM) and what that adds to a bare ``import torch``.

Run: ``python -m benchmarks.bench_load [--rounds 7] [--json out.json]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Any, Optional

from . import common

IMPORTS = {
    "torch": "import torch",
    "torch + minibert": "import torch, minibert",
    "torch + transformers.BertModel": "import torch, transformers; transformers.BertModel",
}
MEMORY = """
import sys, torch
torch.set_num_threads({threads})

def peak_kib():  # VmHWM: this process's peak resident set (ru_maxrss would carry the parent's over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

base = peak_kib()
lib = sys.argv[1]
if lib == "minibert":
    import minibert
    model = minibert.BertModel.from_pretrained({folder!r})
    run = lambda ids, mask: model(ids, mask)
else:
    import transformers
    model = transformers.BertModel.from_pretrained({folder!r}, attn_implementation="sdpa").eval()
    run = lambda ids, mask: model(input_ids=ids, attention_mask=mask)
ids = torch.randint(1000, 30000, (8, 128)); mask = torch.ones(8, 128, dtype=torch.long)
with torch.inference_mode():
    run(ids, mask)
print(base, peak_kib())
"""


def _python(code: str, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, out.stdout


def run(rounds: int = 7, json_path: Optional[str] = None) -> dict[str, Any]:
    import torch

    info = common.header()
    common.print_header("start-up and memory (MiniLM)", info)
    tf = common.transformers_or_none()
    imports = {k: v for k, v in IMPORTS.items() if tf is not None or "transformers" not in k}

    # import times, fresh interpreters, interleaved
    import_times = common.summarize(common.time_rounds(
        {name: (lambda code=code: _python(code)) for name, code in imports.items()}, rounds=rounds))
    base = import_times["torch"].median

    # from_pretrained, same process, interleaved
    import minibert

    folder = common.checkpoint_folder("minilm")
    loaders = {"minibert": lambda: minibert.BertModel.from_pretrained(folder)}
    if tf is not None:
        tf.logging.set_verbosity_error()
        tf.utils.logging.disable_progress_bar()
        loaders["transformers"] = lambda: tf.BertModel.from_pretrained(folder, attn_implementation="sdpa")
    load_times = common.summarize(common.time_rounds(loaders, rounds=rounds, warmup=1))

    # peak memory, fresh interpreters
    memory = {}
    for lib in loaders:
        _, out = _python(MEMORY.format(threads=torch.get_num_threads(), folder=str(folder)), lib)
        before, peak = (int(x) for x in out.split())
        memory[lib] = {"import_torch_kib": before, "peak_kib": peak, "added_kib": peak - before}

    rows = [[f"import {name}", common.fmt_ms(tm.median), tm.spread,
             f"+{(tm.median - base) * 1e3:.0f} ms over import torch" if name != "torch" else "-"]
            for name, tm in import_times.items()]
    ref = load_times.get("transformers")
    rows += [[f"from_pretrained: {name}", common.fmt_ms(tm.median), tm.spread,
              f"ratio {common.fmt_ratio(common.ratio(tm, ref))}" if name == "minibert" and ref else "-"]
             for name, tm in load_times.items()]
    rows += [[f"peak RSS, load + 8×128: {lib}", f"{m['peak_kib'] / 1024:.0f} MiB", "-",
              f"+{m['added_kib'] / 1024:.0f} MiB over import torch"] for lib, m in memory.items()]
    common.print_table(["what", "median", "spread", "note"], rows)
    data = {"header": info,
            "import_s": {k: v.to_dict() for k, v in import_times.items()},
            "minibert_import_overhead_s": import_times["torch + minibert"].median - base,
            "from_pretrained_s": {k: v.to_dict() for k, v in load_times.items()},
            "from_pretrained_ratio": common.ratio(load_times["minibert"], ref),
            "memory": memory}
    common.write_json("load", data, json_path)
    return data


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    return run(args.rounds, args.json)


if __name__ == "__main__":
    main()
