"""MkDocs hooks: pages generated from the code and the results folder, so they cannot go stale.

* ``results.md`` is generated at build time and links every page found under ``docs/results/``
  (written by the runs that produce them), titled by each page's first heading. Other pages link to
  ``results.md``, which always exists, instead of to result pages that may not exist yet.
* In any page, the line ``<!-- minibert:hf-names -->`` is replaced by the name table built from
  ``minibert.checkpoints.HF_NAMES``, the table the loader itself uses.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

HF_NAMES_MARKER = "<!-- minibert:hf-names -->"


def hf_names_table() -> str:
    """Markdown table: minibert parameter -> Hugging Face tensor name(s), ``{}`` = layer number."""
    from minibert.checkpoints import HF_NAMES, TIED

    rows = ["| minibert parameter | Hugging Face tensor(s) |", "|---|---|"]
    for own, hf in HF_NAMES:
        names = hf if isinstance(hf, tuple) else (hf,)
        cell = " + ".join(f"`{n}`" for n in names)
        if len(names) > 1:
            cell += " (concatenated along dim 0)"
        if own in TIED:
            cell += " (tied to the word embeddings; not stored)"
        rows.append(f"| `{own}` | {cell} |")
    return "\n".join(rows)


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"#\s+(.+)", line)
        if match:
            return match.group(1).strip()
    return path.stem.replace("_", " ")


def results_index(docs_dir: Path) -> str:
    pages = sorted((docs_dir / "results").glob("*.md"))
    lines = ["# Results", "",
             "Measured results, each page written from the run it reports (commands, machine, numbers).", ""]
    if not pages:
        lines.append("No result pages yet.")
    for page in pages:
        lines.append(f"- [{_title(page)}](results/{page.name})")
    return "\n".join(lines) + "\n"


def on_files(files, config):
    docs_dir = Path(config["docs_dir"])
    files.append(File.generated(config, "results.md", content=results_index(docs_dir)))
    return files


def on_page_markdown(markdown, page, config, files):
    if HF_NAMES_MARKER in markdown:
        markdown = markdown.replace(HF_NAMES_MARKER, hf_names_table())
    return markdown
