"""The teaching notebooks in examples/notebooks: in sync with their jupytext sources, and executed.

Each notebook asserts what it teaches, so running it is the test. Execution uses nbclient with a
kernel spec written here that names this interpreter explicitly, so the kernel is always the test
environment's Python, whatever kernels the machine has installed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "examples" / "notebooks"
SOURCES = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
KERNEL_NAME = "minibert-test-python"

# Pictures each notebook must leave in $MINIBERT_FIGURES.
FIGURES = {
    "01_attention": ["01_attention_weights.png", "01_softmax_saturation.png"],
    "02_multihead_encoder": ["02_gradient_norms.png"],
    "03_pretrained_checkpoint": ["03_attention_head.png", "03_attention_layer.png"],
    "04_pretraining": ["04_loss_curve.png", "04_beyond_frequency.png"],
    "05_finetuning": ["05_finetuning.png"],
    "06_sentence_embeddings": ["06_similarity_matrix.png"],
    "07_positions_and_context": ["07_position_similarity.png", "07_fill_mask.png"],
    "08_attention_cost": ["08_attention_cost.png"],
}


def _cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def test_every_notebook_has_its_source():
    assert len(SOURCES) == 8, [p.name for p in SOURCES]
    notebooks = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert notebooks == [p.stem for p in SOURCES]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_in_sync_with_source(source: Path):
    """The committed .ipynb has the cells jupytext makes from the .py, and no outputs."""
    expected = jupytext.read(source)
    committed = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    nbformat.validate(committed)  # a valid nbformat 4 document: opens in Jupyter and Colab
    assert _cells(committed) == _cells(expected), (
        f"{source.with_suffix('.ipynb').name} is out of date: run "
        f"`.venv/bin/jupytext --to ipynb examples/notebooks/{source.name}`")
    for cell in committed.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "commit notebooks with outputs stripped"
    assert committed.metadata.kernelspec.name == "python3"  # what Jupyter and Colab will start


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A kernel spec for this interpreter, found first through JUPYTER_PATH."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "minibert tests", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # The kernel inherits the environment: one thread per notebook (tiny models; xdist runs several
    # notebooks side by side), and the figure folder of this test.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MINIBERT_FIGURES", str(tmp_path / "figures"))
    return tmp_path / "figures"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_executes(source: Path, kernel_env: Path):
    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name=KERNEL_NAME, timeout=600,
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, if any assertion fails

    # The kernel that ran was started from the spec above, i.e. this interpreter.
    kernel = client.km.kernel_spec if client.km is not None else None
    assert kernel is None or kernel.argv[0] == sys.executable

    errors = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type == "error"]
    assert not errors
    for name in FIGURES.get(source.stem, []):
        figure = kernel_env / name
        assert figure.is_file() and figure.stat().st_size > 1000, f"{source.stem} did not save {name}"
