# The course's commands. `make lab` sets everything up and opens JupyterLab;
# `make test` runs every test. Both create the virtual environment on first use.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
ROOT_FLAG = $(if $(filter 0,$(shell id -u)),--allow-root,)
PORT   ?= 8888
# pytest options shared by `make test` and CI: two workers; tests/conftest.py groups the tests (a file
# each, the browser test split in two) and queues the long ones first.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: help setup lab test notebooks assign bench clean

help:
	@echo "make lab        set up (first time) and open JupyterLab on notebooks/"
	@echo "make test       run all tests: library vs PyTorch, every notebook once (browser, nbval or its sheet's suite), tools"
	@echo "make notebooks  point links at pyproject's repository, regenerate exercises/ and every .ipynb"
	@echo "make assign     write exercises/ from solutions/"
	@echo "make bench      measure notebooks, widgets, grader, conv2d and the digits CNN into docs/benchmarks.md"

setup: $(STAMP)

$(STAMP): requirements/lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

lab: setup
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --port=$(PORT) --ServerApp.root_dir=. \
		--LabApp.default_url=/lab/tree/notebooks/00_how_to_use.ipynb

test: setup
	@if [ -n "$$CI" ]; then bash tools/install-browser.sh; fi
	$(PY) -m pytest $(PYTEST_ARGS) --nbval-lax --nbval-cell-timeout=120 tests notebooks solutions exercises

notebooks: setup
	$(VENV)/bin/course links
	$(VENV)/bin/course assign
	$(VENV)/bin/course sync

assign: setup
	$(VENV)/bin/course assign

BENCH_SCRIPTS = tools/bench.py tools/bench_grader.py tools/bench_conv.py tools/bench_cnn.py tools/bench_equivalence.py tools/bench_serve.py tools/bench_capstone.py

bench: setup
	@status=0; for script in $(BENCH_SCRIPTS); do $(PY) $$script || status=1; done; exit $$status

clean:
	rm -rf $(VENV)
