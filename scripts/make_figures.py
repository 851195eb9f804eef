"""Regenerate the figures of the docs (docs/images/*.png) by running the notebooks that draw them.

    python scripts/make_figures.py                 # every notebook
    python scripts/make_figures.py 01 07           # only notebooks whose names start with these

Each notebook's jupytext source runs as a plain script, in examples/notebooks (where it expects to
run), with MINIBERT_FIGURES pointing at docs/images and matplotlib's non-interactive backend. The
notebooks assert what they teach, so a figure is only written by a run whose checks passed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "examples" / "notebooks"
IMAGES = ROOT / "docs" / "images"


def main(prefixes: list[str]) -> int:
    IMAGES.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MINIBERT_FIGURES=str(IMAGES), MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    failed = []
    for source in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
        if prefixes and not any(source.name.startswith(p) for p in prefixes):
            continue
        start = time.perf_counter()
        result = subprocess.run([sys.executable, source.name], cwd=NOTEBOOKS, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        print(f"{source.stem}: {'ok' if result.returncode == 0 else 'FAILED'} ({time.perf_counter() - start:.0f} s)")
        if result.returncode:
            failed.append(source.stem)
            print(result.stderr[-2000:], file=sys.stderr)
    for image in sorted(IMAGES.glob("*.png")):
        print(f"  {image.relative_to(ROOT)}  {image.stat().st_size // 1024} KiB")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
