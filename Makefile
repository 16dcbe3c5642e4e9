# genisys: `make run` starts it, `make test` passes the test suite.
# Both set up everything they need (a virtualenv in .venv) on first use.

PYTHON ?= python3
# Where `make run` puts the bundled connector (computes.py points at 7051).
CONNECTOR_PORT  ?= 7051
CONNECTOR_STATE ?= var/connector
# The manifests `make run` keeps applied (sidecar mode): edit them while it runs.
MANIFESTS ?= manifests/local
# Where `make docs` serves the documentation site.
DOCS_PORT ?= 8000
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench docs mutate venv clean

venv: $(STAMP)

# Everything `make test` needs: genisys (editable) with the docker and aws connectors'
# SDKs and the test tools (the extras of pyproject.toml).
$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23"
	$(PY) -m pip install --quiet -e ".[docker,aws,dev]"
	touch $(STAMP)

## run: genisys (embedded SQLite store in ./var, computes from ./computes.py, the
## manifests of ./manifests/local kept applied) and the bundled process connector
## on :7051 (services from ./local-services.yml).
## Ctrl-C stops both; the connector stops every process it started.
run: $(STAMP)
	mkdir -p var
	@trap 'kill $$connector 2>/dev/null; wait $$connector' EXIT INT TERM; \
	$(PY) genisys.py connector --backend process --port $(CONNECTOR_PORT) \
	    --services local-services.yml --state-dir $(CONNECTOR_STATE) & connector=$$!; \
	$(PY) genisys.py serve --manifests $(MANIFESTS)

## test: the whole test suite (or a part: make test PYTEST_ARGS="tests/cli -x"), on
## TEST_WORKERS processes (pytest-xdist; TEST_WORKERS=0 runs it in one); lists the
## slowest tests at the end. See docs/development.md, "The test suite".
# The suite is bound by the CPU, mostly Python start-up: it starts some thousand Python
# processes (genisys servers, connectors, commands, the workers). Without bytecode files
# each one compiles genisys (and each worker its test modules) again, some 0.15 s of CPU
# a process, so PYTHONDONTWRITEBYTECODE is dropped here (the __pycache__ folders are
# ignored by git and docker). worksteal: an idle worker takes tests queued on another,
# so the last minute does not run on one worker while the others have finished.
TEST_WORKERS ?= 3
test: $(STAMP)
	bash scripts/ensure-docker.sh
	bash scripts/ensure-etcd.sh
	bash scripts/ensure-chromium.sh
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal \
	    --durations=15 $(PYTEST_ARGS)

## bench: the benchmarks of bench/ (never part of `make test`): prints a table and writes
## bench/results/latest.json; e.g. make bench BENCH_ARGS="--sizes 100,1000" (see --help)
# Bytecode files as for the tests: a controller that compiles genisys at each start
# (0.1 s and more) would count that in its start-up, which an installed genisys does not.
bench: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m bench $(BENCH_ARGS)

## docs: the documentation site (docs/, mkdocs.yml) on http://127.0.0.1:$(DOCS_PORT),
## rebuilt whenever a page changes; e.g. make docs DOCS_PORT=8001
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

## mutate: mutation testing (mutmut, never part of `make test`) of the code where a silent
## bug costs most, one mutant at a time; prints the mutants no test killed. One module:
## make mutate MUTATE=auth (store, intents, auth, if-match, process, decide). See docs/mutation-testing.md.
MUTATE ?= store intents auth if-match process decide
# What each module name mutates (mutmut's mutant names: module.x_function or
# module.xǁClassǁmethod, then __mutmut_N; `?` stands for ǁ).
WRITES := put delete update transaction
MUTANTS_store    := genisys.store.base.x_apply_op__mutmut_* genisys.store.base.x__apply_one__mutmut_* \
                    genisys.store.base.x_check_* genisys.store.memory.x?_MemoryView?* \
                    $(foreach f,_apply _restore $(WRITES),genisys.store.memory.x?MemoryStore?$(f)__mutmut_*) \
                    genisys.store.sqlite.x?_SqliteView?* genisys.store.sqlite.x?_WriterView?* \
                    $(foreach f,_writer_main _commit _deliver _submit $(WRITES),genisys.store.sqlite.x?SqliteStore?$(f)__mutmut_*) \
                    genisys.store.etcd.x__encode__mutmut_* genisys.store.etcd.x?_SnapshotView?* \
                    $(foreach f,$(WRITES) _write _write_blind _snapshot_reads _snapshot _compares _request \
                        _committed,genisys.store.etcd.x?EtcdStore?$(f)__mutmut_*)
MUTANTS_intents  := genisys.intents.*
MUTANTS_auth     := genisys.auth.*
MUTANTS_if-match := genisys.api.base.x?APIHandler?if_match__mutmut_*
MUTANTS_decide   := genisys.reconciler.decide.*
MUTANTS_process  := genisys.connector.process.x?ProcessBackend?scale__mutmut_* \
                    genisys.connector.process.x?ProcessBackend?_scale_up__mutmut_*
MUTMUT := $(VENV)/bin/mutmut
# Mutants tested at once (one forked pytest each); 1 on a shared machine.
MUTATE_JOBS ?= 1
# mutants/ is removed first: mutmut would keep stale copies of the modules it does not mutate.

mutate: $(STAMP)
	test -x $(MUTMUT) || $(PY) -m pip install --quiet "mutmut>=3.8,<4"
	rm -rf mutants
	$(MUTMUT) run --max-children $(MUTATE_JOBS) $(foreach m,$(MUTATE),$(foreach n,$(MUTANTS_$(m)),'$(n)'))
	@$(MUTMUT) results | grep -v ': not checked$$' || echo "no mutant survived"

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache
