# genisys: `make run` starts it, `make test` passes the test suite.
# Both set up everything they need (a virtualenv in .venv) on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench venv clean

venv: $(STAMP)

$(STAMP): setup.py requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23"
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## run: genisys on the embedded SQLite store (./var/genisys.db) with ./computes.py
run: $(STAMP)
	mkdir -p var
	$(PY) genisys.py

## test: the whole test suite
test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) var .pytest_cache
