# The README's commands. Each target installs into .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench ui desk clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed: make PYTHON=python3.11 ...")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m demo

lint: $(STAMP)
	$(BIN)/ruff check .

# Three workers on CI's two cores: most tests wait on emulated vendors, Dagster's
# processes and real servers, not the CPU (with two, each worker was busy well under
# half the time); a file's tests stay on one worker, so its module-scoped sandbox
# starts once. Files run in collection order (tests/conftest.py puts the slow
# end-to-end ones first), not xdist's largest-file-first, which left the one-test demo
# file as the suite's tail.
TEST_WORKERS ?= 3

test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=10

# The Dagster UI and daemon on the local instance, with the sandbox behind them;
# Ctrl-C stops all of it. Loopback only: the webserver has no login, and anyone who
# reaches it can launch any job (deploy/README.md puts it behind a proxy that has one).
DAGSTER_HOME ?= $(CURDIR)/.hub/dagster
UI_PORT ?= 3000

ui: $(STAMP)
	@mkdir -p $(DAGSTER_HOME) && test -f $(DAGSTER_HOME)/dagster.yaml || cp dagster.yaml $(DAGSTER_HOME)/
	@$(BIN)/hub sandbox serve & sandbox=$$!; \
	  trap 'kill $$sandbox 2>/dev/null; wait $$sandbox 2>/dev/null' EXIT INT TERM; \
	  DAGSTER_HOME=$(DAGSTER_HOME) HUB_MODE=sandbox $(BIN)/dagster dev -m pipelines.definitions -h 127.0.0.1 -p $(UI_PORT)

# The privacy desk (http://127.0.0.1:8470/) with a demo user whose password it prints,
# over the sandbox, with Dagster beside it (its sensor runs the requests verified on the
# desk; its UI on UI_PORT; demo/desk.py starts and stops it). Sandbox mode only; Ctrl-C
# stops all three.
desk: $(STAMP)
	@mkdir -p $(DAGSTER_HOME) && test -f $(DAGSTER_HOME)/dagster.yaml || cp dagster.yaml $(DAGSTER_HOME)/
	@$(BIN)/hub sandbox serve & sandbox=$$!; \
	  trap 'kill $$sandbox 2>/dev/null; wait $$sandbox 2>/dev/null' EXIT INT TERM; \
	  DAGSTER_HOME=$(DAGSTER_HOME) HUB_MODE=sandbox \
	    HUB_DESK_DAGSTER_UI_URL=http://127.0.0.1:$(UI_PORT) $(BIN)/python -m demo.desk

bench: $(STAMP)
	$(BIN)/python bench/index.py

# Subject requests through the Dagster job against the sandbox with 100 ms per vendor
# call (long at the issue's 200 requests; FANOUT_ARGS="--requests 12" for a quick pass).
.PHONY: bench-fanout
bench-fanout: $(STAMP)
	$(BIN)/python bench/fanout.py $(FANOUT_ARGS)

clean:
	rm -rf .hub .pytest_cache .ruff_cache
