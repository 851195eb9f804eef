"""The README's measured figures are copies of docs/results/: every decimal number in its "Measured"
table must be found there, at the precision the README prints it (19.7 matches a measured 19.73).
A README edited without re-measuring, or results re-measured without updating the README, fail here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Decimals (0.208), and whole numbers that are factors or range ends (23–25×, 4–9×).
DECIMAL = re.compile(r"(?<![\w.])(\d+\.\d+|\d+(?=×|–\d))(?![\w.]*\d)")


def measured_table(readme: str) -> list[str]:
    """The rows of the table under the README's "## Measured" heading."""
    section = readme.split("## Measured", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")][1:]


def results_numbers() -> list[str]:
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs" / "results").glob("*.md")))
    return DECIMAL.findall(text)


def found(number: str, measured: list[str]) -> bool:
    decimals = len(number.split(".")[1]) if "." in number else 0
    return any(m == number or (len(m.partition(".")[2]) > decimals and f"{float(m):.{decimals}f}" == number)
               for m in measured)


def test_readme_measured_figures_come_from_docs_results():
    rows = measured_table((ROOT / "README.md").read_text(encoding="utf-8"))
    assert rows, "README.md has no '## Measured' table"
    measured = results_numbers()
    missing = [(number, row.split("|")[1].strip()) for row in rows for number in DECIMAL.findall(row)
               if not found(number, measured)]
    assert not missing, f"README figures not found in docs/results/*.md: {missing}"


def test_the_check_catches_a_changed_figure():
    measured = ["19.73", "23.74", "0.208"]
    assert found("19.7", measured) and found("0.208", measured)
    assert not found("23.0", measured) and not found("0.22", measured) and not found("25", measured)
