# genisys: `make run` starts it, `make test` passes the test suite.
# Both set up everything they need (a virtualenv in .venv) on first use.

PYTHON ?= python3
# Where `make run` puts the bundled connector (computes.py points at 7051).
CONNECTOR_PORT  ?= 7051
CONNECTOR_STATE ?= var/connector
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test venv clean

venv: $(STAMP)

$(STAMP): setup.py requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23"
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## run: genisys (embedded SQLite store in ./var, computes from ./computes.py) and the
## bundled process connector on :7051 (services from ./local-services.yml).
## Ctrl-C stops both; the connector stops every process it started.
run: $(STAMP)
	mkdir -p var
	@trap 'kill $$connector 2>/dev/null; wait $$connector' EXIT INT TERM; \
	$(PY) genisys.py connector --backend process --port $(CONNECTOR_PORT) \
	    --services local-services.yml --state-dir $(CONNECTOR_STATE) & connector=$$!; \
	$(PY) genisys.py serve

## test: the whole test suite
test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) var .pytest_cache
