# Millstream development tasks. `make test` and `make demo` work on a fresh clone: each one
# creates and fills .venv when it is missing or out of date.

SHELL := bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Written after a successful install; inside .venv, so deleting .venv forces a fresh install.
STAMP := $(VENV)/.millstream-installed
# The list of files under the three package folders, rewritten only when it changes. The editable
# install is in strict mode, which does not see files added or removed since it was made: a change
# to this list (or to pyproject.toml) reinstalls.
MODULE_LIST := .make/module-files.txt
PACKAGE_DIRS := core connectors pipelines
PYTEST_ARGS ?=

# Strict mode links the sources from build/__editable__.*; if that tree is gone, reinstall.
ifeq ($(wildcard build/__editable__.millstream-*),)
STAMP_FORCE := FORCE
endif

.PHONY: help test demo bench kafka lint fmt clean distclean venv system-deps FORCE

help:
	@echo "make demo    run the quickstart pipeline on the embedded store"
	@echo "make test    run the whole test suite (sets up .venv and, as root, system packages)"
	@echo "make bench   run the benchmarks"
	@echo "make kafka   run Apache Kafka 4 on 127.0.0.1:9092 until Ctrl-C (KAFKA_ARGS='--nodes 3')"
	@echo "make lint    ruff check, ruff format --check, mypy"
	@echo "make fmt     sort imports and format with ruff"
	@echo "make clean   remove caches and build output (distclean: also .venv and .cache)"

$(VENV)/pyvenv.cfg:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip

$(MODULE_LIST): FORCE
	@mkdir -p $(@D)
	@find $(PACKAGE_DIRS) -name __pycache__ -prune -o \
		\( -name '*.pyc' -o -name '.*.sw?' -o -name '*~' \) -prune -o -print \
		| LC_ALL=C sort > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

$(STAMP): $(VENV)/pyvenv.cfg pyproject.toml $(MODULE_LIST) $(STAMP_FORCE)
	@echo "installing millstream[dev] into $(VENV) (editable, strict; log: .make/pip-install.log)"
	@mkdir -p .make
	@$(PY) -m pip install --disable-pip-version-check \
		-e '.[dev]' --config-settings editable_mode=strict > .make/pip-install.log 2>&1 \
		|| { tail -n 40 .make/pip-install.log; exit 1; }
	@touch $@

venv: $(STAMP)

system-deps:
	@scripts/install-system-deps.sh

test: $(STAMP) system-deps
	$(PY) -m pytest -n auto --dist loadgroup -q $(PYTEST_ARGS)

# The quickstart pipeline, on a fresh embedded store in examples/.millstream each time.
demo: $(STAMP)
	rm -rf examples/.millstream
	$(VENV)/bin/millstream run examples/quickstart.yaml --stats-interval 1

bench: $(STAMP)
	$(PY) -m benchmarks

# Apache Kafka itself (fetched from Maven Central on first use), for trying kafka:// stores.
kafka: $(STAMP)
	$(PY) tests/kafka_server.py $(KAFKA_ARGS)

lint: $(STAMP)
	@status=0; \
	$(VENV)/bin/ruff check . || status=1; \
	$(VENV)/bin/ruff format --check . || status=1; \
	$(VENV)/bin/mypy core connectors pipelines || status=1; \
	exit $$status

fmt: $(STAMP)
	$(VENV)/bin/ruff check --select I --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf build *.egg-info .make .pytest_cache .mypy_cache .ruff_cache .hypothesis
	rm -f $(STAMP)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .cache

FORCE:
