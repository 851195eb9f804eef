"""`import minibert` must stand on its own: transformers is a test oracle, never a dependency."""

import subprocess
import sys


def test_import_minibert_never_imports_transformers():
    code = ("import sys, minibert, minibert.cli, minibert.tokenizer, minibert.checkpoints.tf\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'tokenizers', "
            "'tensorflow', 'sentence_transformers', 'huggingface_hub'))\n"
            "print(bad)\nassert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "[]"


def test_no_module_in_the_package_mentions_an_import_of_transformers():
    import pathlib
    import re

    import minibert

    root = pathlib.Path(minibert.__file__).parent
    pattern = re.compile(r"^\s*(import|from)\s+(transformers|tensorflow|sentence_transformers)\b", re.M)
    offenders = [p.name for p in root.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
