# Everything installs from a bare Python 3.11: `make test` and `make demo` create .venv first.
# The test and demo environment is pinned by constraints.txt (exact versions of every package);
# pyproject.toml keeps the package's own ranges open. `make lock` refreshes the pins.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONSTRAINTS := constraints.txt
# Property tests: `make test` runs them derandomized (the same examples every run); `make
# test-random` explores with a fresh seed, printed so that `make test-random SEED=...` replays it.
ifndef SEED
SEED := $(shell $(PYTHON) -c 'import secrets; print(secrets.randbelow(2**32))')
endif

.PHONY: install postgresql test test-random demo lint typecheck bench docs lock clean

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

# The PostgreSQL outbox tests start a throw-away server from Debian's `postgresql` binaries
# (initdb, pg_ctl): installed here when missing and possible (root with apt-get); elsewhere
# those tests skip, saying why.
postgresql:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's postgresql (server binaries for the outbox tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "note: no PostgreSQL server binaries (Debian: apt-get install postgresql): the PostgreSQL tests will skip"; fi

test: install postgresql
	$(BIN)/python -m pytest -q

test-random: install
	@echo "hypothesis seed $(SEED): replay with  make test-random SEED=$(SEED)"
	$(BIN)/python -m pytest -q -m property --hypothesis-profile=random --hypothesis-seed=$(SEED)
	@echo "hypothesis seed $(SEED): replay with  make test-random SEED=$(SEED)"

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

typecheck: install
	$(BIN)/mypy

demo: install
	$(BIN)/python -m facturflow.demo

# The documentation site (docs/, Sphinx + MyST): -W makes a broken link, anchor or reference fail.
docs: install
	$(BIN)/python -m sphinx -W --keep-going -E -q -b html docs docs/_build/html
	@echo "docs/_build/html/index.html"

bench: install
	$(BIN)/python -m benchmarks.run

# Resolve the open ranges of pyproject.toml afresh in a throw-away venv and pin the result.
lock:
	set -e; lock=$$(mktemp -d); trap 'rm -rf "$$lock" $(CONSTRAINTS).new' EXIT; \
	$(PYTHON) -m venv "$$lock"; \
	"$$lock/bin/python" -m pip install --quiet --upgrade pip; \
	"$$lock/bin/python" -m pip install --quiet -e '.[test]'; \
	{ echo '# Exact versions of the test and demo environment: `make install` installs with pip -c.'; \
	  echo "# Made by \`make lock\` (Python $$("$$lock/bin/python" -c 'import platform; print(platform.python_version())')); do not edit by hand."; \
	  "$$lock/bin/python" -m pip freeze --all --exclude-editable | grep -v -E '^(setuptools|wheel)=='; \
	} > $(CONSTRAINTS).new; \
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

clean:
	rm -rf $(VENV) docs/_build .pytest_cache .mypy_cache .ruff_cache .hypothesis
