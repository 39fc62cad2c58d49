# Two entry points (README Quickstart): `make run` (main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/theory

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

.PHONY: install install-test run test
install: $(PY)
	$(PY) -m pip install -q -e .

install-test: $(PY)
	$(PY) -m pip install -q -e ".[test,clip,clip-test,data,analysis,pretrained]"

run: install
	$(PY) -m experiments.sweep --config=configs/theory.py --workdir=$(WORKDIR)

test: install-test
	$(PY) -m pytest -q -n 2 tests
