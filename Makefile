# spectune: `make search SPACE=galspecnet` and `make test` set everything up on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SPECTUNE := $(VENV)/bin/spectune
# A CPU build installs from local wheels in seconds; on a GPU machine set TORCH_SPEC to a CUDA build.
TORCH_SPEC ?= torch==2.13.0
DATA ?= data/ztf-synthetic
SPACE ?= galspecnet
SEED ?= 0
NAME ?=
MLFLOW_HOST ?= 127.0.0.1
MLFLOW_PORT ?= 5000
TRACKING_URI ?= $(or $(MLFLOW_TRACKING_URI),sqlite:///$(CURDIR)/mlflow.db)
# Budgets. On a GPU: the space's full epoch budget. On CPU (2 cores, about 15 minutes): shorter
# spectra, fewer training spectra, fewer trials and epochs; all printed before the search starts.
GPU_TRIALS ?= 64
CPU_TRIALS ?= 18
CPU_EPOCHS ?= 20
CPU_POINTS ?= 1024
CPU_TRAIN_PER_CLASS ?= 280
TRIALS ?=
EPOCHS ?=
GPUS_PER_TRIAL ?=
# e.g. BENCH_ARGS="--parts efficiency --merge" to run the benchmark in turns
BENCH_ARGS ?=

NAME_ARG = $(if $(NAME),--name $(NAME))
.PHONY: install data search test mlflow-ui export train bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "setting up $(VENV) (torch: $(TORCH_SPEC))"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	@touch $@

data: $(DATA)/test.pt

$(DATA)/test.pt: | $(VENV)/.installed
	$(SPECTUNE) data --out $(DATA) --seed 0 --force

search: $(VENV)/.installed $(DATA)/test.pt
	@if $(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
	  echo "GPU found: full budget ($(or $(TRIALS),$(GPU_TRIALS)) trials, the space's epochs)"; \
	  set -x; $(SPECTUNE) search --space $(SPACE) --data $(DATA) --seed $(SEED) $(NAME_ARG) \
	    --trials $(or $(TRIALS),$(GPU_TRIALS)) $(if $(EPOCHS),--max-epochs $(EPOCHS)) \
	    $(if $(GPUS_PER_TRIAL),--gpus-per-trial $(GPUS_PER_TRIAL)) --tracking-uri $(TRACKING_URI); \
	else \
	  echo "No GPU: CPU budget of $(or $(TRIALS),$(CPU_TRIALS)) trials x $(or $(EPOCHS),$(CPU_EPOCHS)) epochs on" \
	       "spectra block-averaged to $(CPU_POINTS) points and $(CPU_TRAIN_PER_CLASS) training spectra per class"; \
	  set -x; $(SPECTUNE) search --space $(SPACE) --data $(DATA) --seed $(SEED) $(NAME_ARG) \
	    --trials $(or $(TRIALS),$(CPU_TRIALS)) --max-epochs $(or $(EPOCHS),$(CPU_EPOCHS)) \
	    --points $(CPU_POINTS) --train-per-class $(CPU_TRAIN_PER_CLASS) --tracking-uri $(TRACKING_URI); \
	fi

test: $(VENV)/.installed
	@$(PY) -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$status

mlflow-ui: $(VENV)/.installed
	$(SPECTUNE) ui --tracking-uri $(TRACKING_URI) --host $(MLFLOW_HOST) --port $(MLFLOW_PORT)

export: $(VENV)/.installed
	$(SPECTUNE) export --space $(SPACE) $(NAME_ARG) --out best.json

# Retrains best.json and evaluates the test split once, on the data scaling the search used
# (recorded in best.json); POINTS=4096 TRAIN_PER_CLASS=560 retrains on the full set instead.
POINTS ?=
TRAIN_PER_CLASS ?=
train: $(VENV)/.installed $(DATA)/test.pt
	$(SPECTUNE) train --config best.json --data $(DATA) --test --json-out runs/best-test.json \
	  $(if $(POINTS),--points $(POINTS)) $(if $(TRAIN_PER_CLASS),--train-per-class $(TRAIN_PER_CLASS))

bench: $(VENV)/.installed $(DATA)/test.pt
	$(PY) -m search.bench.benchmark --data $(DATA) $(BENCH_ARGS)

clean:
	rm -rf ray_results runs results/*/ mlflow.db
