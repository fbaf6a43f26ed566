# The two commands of the README: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Benchmark peers (bench/bench_peers.py) live in a venv of their own, never in the product's.
PEERS_VENV := .peers-venv
PEERS_BIN := $(PEERS_VENV)/bin

.PHONY: demo test lint typecheck lock lock-check pytest fuzz bench bench-peers reliability infra-check clean

# requirements.txt (what Azure Functions installs) is generated from pyproject.toml's dependencies:
# every transitive dependency pinned. pip-compile (pip-tools, pinned in the dev extras) resolves
# against pip's own configured index; it keeps the pins already in the file it writes while they
# still fit, so the check below regenerates the same file unless pyproject.toml changed.
# pip-compile runs on pip's resolver, whose version shapes what it writes: pip is pinned too.
PIP := pip==26.3
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --strip-extras \
	--no-emit-index-url --no-emit-find-links --no-upgrade

$(BIN)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet '$(PIP)'
	$(BIN)/python -m pip install --quiet -c requirements.txt -e '.[dev]'
	@touch $@

$(PEERS_BIN)/.installed: bench/peers-requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_BIN)/python -m pip install --quiet --upgrade pip
	$(PEERS_BIN)/python -m pip install --quiet -r bench/peers-requirements.txt
	@touch $@

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "needs Node.js 20 and npm (for Azurite)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## demo: the remediator end to end against the local Azure stand-in
demo: $(BIN)/.installed node_modules/.installed
	$(BIN)/localazure demo

## test: lint, type-check, check the lock and run the test suite (CI runs exactly this)
test: lint typecheck lock-check pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

# pip-tools alone, at the version the dev extras pin, so that `make lock` runs even where the
# stale lock keeps the rest of the venv from installing.
$(BIN)/pip-compile:
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet '$(PIP)' "$$(sed -n 's/^ *"\(pip-tools==[^"]*\)".*/\1/p' pyproject.toml)"

## lock: regenerate requirements.txt from pyproject.toml's dependencies (after changing them)
lock: $(BIN)/pip-compile
	@$(BIN)/python -m pip install --quiet '$(PIP)'
	$(PIP_COMPILE) --output-file=requirements.txt pyproject.toml

## lock-check: fail if requirements.txt is not what `make lock` would write
lock-check: $(BIN)/pip-compile
	@$(BIN)/python -m pip install --quiet '$(PIP)'
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp requirements.txt "$$tmp/requirements.txt" && \
	$(PIP_COMPILE) --output-file="$$tmp/requirements.txt" pyproject.toml && \
	if diff -u requirements.txt "$$tmp/requirements.txt"; then echo "requirements.txt is current"; \
	else echo "requirements.txt is stale: run \`make lock\` and commit it"; exit 1; fi

pytest: $(BIN)/.installed node_modules/.installed
	$(BIN)/pytest

## fuzz: the property-based tests with at least 10,000 examples per property
fuzz: $(BIN)/.installed node_modules/.installed
	HYPOTHESIS_PROFILE=long $(BIN)/pytest tests/test_hostile_input.py tests/test_scope_safety.py

# bench_engine.py writes bench/results.json afresh; bench_tenant.py merges its "tenant" key in after it.
## bench: the benchmarks (figures printed; nothing asserted about time)
bench: bench-peers $(BIN)/.installed node_modules/.installed
	$(BIN)/python bench/bench_engine.py
	$(BIN)/python bench/bench_tenant.py
	$(BIN)/python bench/bench_load.py
	$(BIN)/python bench/bench_audit.py

## bench-peers: the benchmark peers (Cloud Custodian's c7n-azure, pinned in bench/peers-requirements.txt)
## into .peers-venv, never the product's .venv; `.venv/bin/python bench/bench_peers.py` measures them
bench-peers: $(PEERS_BIN)/.installed

## reliability: the fault matrix (429s, 5xx before and after the work, lost answers, failed LROs, 412s,
## storage failing mid-write, several hosts, a killed host); prints a table and fails if any promise
## breaks or a fault row met no fault
reliability: $(BIN)/.installed node_modules/.installed
	$(BIN)/python bench/reliability.py

## infra-check: checkov over infra/ (offline; installs checkov into .venv/checkov on first use)
infra-check:
	infra/check.sh

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
