"""The documentation site: it builds with ``mkdocs build --strict`` and no warnings, and every code
reference in its pages points at code that exists.

Checked references, in every Markdown page under docs/ (including pages other runs write to
docs/results/):

* dotted names ``minibert.x.y`` — the longest importable module prefix is imported, the rest is
  looked up attribute by attribute;
* ``Class.attribute`` in backticks where ``Class`` is exported by ``minibert`` or one of its modules
  — a class attribute or method, or an attribute the class assigns (``self.attribute = ...``);
* repository paths such as ``minibert/model.py``, ``examples/notebooks/...``, ``tests/...py`` — the file
  exists and git does not ignore it (so CI's fresh clone has it too); ``tests/x.py::test_name`` also
  names a test function in that file.
"""

from __future__ import annotations

import importlib
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.relative_to(DOCS).parts)

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")

DOTTED = re.compile(r"(?<![\w./-])minibert(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(r"(?<![\w./-])((?:minibert|examples|tests|benchmarks|docs)/[\w./-]*\w\.(?:py|md|json|ipynb|txt))"
                  r"(?:::(\w+))?")
CLASS_ATTR = re.compile(r"`([A-Z]\w+)\.([a-z_]\w*)(?:\([^`]*\))?`")


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)  # AttributeError names the missing piece
        return obj
    raise ImportError(dotted)


def _ignored_by_git(path: str) -> bool:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return False
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0


def _exported_classes() -> dict[str, type]:
    import minibert

    classes: dict[str, type] = {}
    modules = [minibert] + [importlib.import_module(f"minibert.{p.stem}")
                            for p in (ROOT / "minibert").glob("*.py") if p.stem != "__init__"]
    for module in modules:
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__.startswith("minibert"):
                classes.setdefault(name, obj)
    return classes


def _has_attribute(cls: type, attr: str) -> bool:
    if hasattr(cls, attr) or attr in getattr(cls, "__dataclass_fields__", {}):
        return True
    return any(re.search(rf"self\.{attr}\s*(?::[^=]*)?=", inspect.getsource(klass))
               for klass in cls.__mro__ if klass.__module__.startswith("minibert"))


def test_docs_pages_exist():
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    for page in ("index.md", "attention.md", "embeddings.md", "encoder.md", "heads.md", "tokenizer.md",
                 "checkpoints.md", "training.md", "benchmarks.md", "notebooks.md"):
        assert page in names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_code_references_resolve(page: Path):
    text = page.read_text(encoding="utf-8")
    problems = []
    for dotted in sorted(set(DOTTED.findall(text))):
        try:
            _resolve(dotted)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{dotted}: {type(exc).__name__}: {exc}")
    for path, test_name in sorted(set(PATH.findall(text))):
        file = ROOT / path
        if not file.is_file():
            problems.append(f"{path}: no such file")
        elif _ignored_by_git(path):
            problems.append(f"{path}: ignored by git, so a fresh clone (CI) does not have it")
        elif test_name and not re.search(rf"^\s*(?:async\s+)?def {test_name}\(", file.read_text(encoding="utf-8"),
                                         re.MULTILINE):
            problems.append(f"{path}::{test_name}: no such test")
    classes = _exported_classes()
    for cls_name, attr in sorted(set(CLASS_ATTR.findall(text))):
        cls = classes.get(cls_name)
        if cls is not None and not _has_attribute(cls, attr):
            problems.append(f"{cls_name}.{attr}: {cls.__module__}.{cls_name} has no attribute {attr!r}")
    assert not problems, f"{page.relative_to(ROOT)} refers to code that does not exist:\n" + "\n".join(problems)


def test_reference_checker_catches_mistakes():
    """The checks above fail on names and paths that do not exist (so a pass means something)."""
    with pytest.raises(AttributeError):
        _resolve("minibert.model.NoSuchBlock")
    with pytest.raises(ImportError):
        _resolve("minibertx.model")
    assert DOTTED.findall("see `minibert.model.BertModel`.") == ["minibert.model.BertModel"]
    assert PATH.findall("in `tests/test_docs.py::test_docs_build`") == [("tests/test_docs.py", "test_docs_build")]
    if shutil.which("git") is not None and (ROOT / ".git").exists():
        assert _ignored_by_git("site/index.html") and not _ignored_by_git("minibert/model.py")
    classes = _exported_classes()
    assert _has_attribute(classes["MultiHeadAttention"], "qkv")          # assigned in __init__
    assert _has_attribute(classes["BertModel"], "from_pretrained")       # inherited method
    assert not _has_attribute(classes["BertModel"], "no_such_thing")


def test_docs_build(tmp_path: Path):
    """``mkdocs build --strict`` succeeds and logs no warning (INFO lines, e.g. pages not in nav, are fine)."""
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert not warnings, "\n".join(warnings)

    # The name table is generated from the table the loader uses, so it lists every HF name.
    from minibert.checkpoints import HF_NAMES

    html = (site / "checkpoints" / "index.html").read_text(encoding="utf-8")
    for own, hf in HF_NAMES:
        for name in (hf if isinstance(hf, tuple) else (hf,)):
            assert name in html, name
        assert own in html, own
    # The results index links every results page present at build time.
    index = (site / "results" / "index.html").read_text(encoding="utf-8")
    for page in sorted((DOCS / "results").glob("*.md")):
        assert f'href="{page.stem}/"' in index, page.name
    # API pages are rendered from the docstrings.
    api = (site / "api" / "model" / "index.html").read_text(encoding="utf-8")
    assert "minibert.model.BertModel" in api and "from_pretrained" in api
    shutil.rmtree(site, ignore_errors=True)
