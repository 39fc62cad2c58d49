# README Quickstart: `make run` (main job) and `make test-all` (every test; CI's command).
# `make test` is the quick tier: every test but those marked slow (docs/testing.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/theory

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

.PHONY: install install-test run test test-all
CONSTRAINTS := requirements/constraints.txt

install: $(PY)
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e .

install-test: $(PY)
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[test,clip,clip-test,data,analysis,realdata,pretrained]"
	$(PY) -m pip install -q --no-deps -c $(CONSTRAINTS) imagecorruptions
	@if [ -d /usr/share/datasets/fashion-mnist ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null \
	    || echo "install-test: apt-get install dataset-fashion-mnist failed; its tests will skip"; \
	else echo "install-test: not root, skipping 'apt-get install -y dataset-fashion-mnist'" \
	  "(Fashion-MNIST tests will skip)"; fi

run: install
	$(PY) -m experiments.sweep --config=configs/theory.py --workdir=$(WORKDIR)

test: install-test
	$(PY) -m pytest -q -n 2 -m "not slow" tests

test-all: install-test
	$(PY) -m pytest -q -n 2 tests
