# vaelab: every set-up step on a fresh machine is a target here.
#   make test   create .venv if missing, install vaelab with its dev extras, run ruff and pytest
#   make demo   create/update .venv, then run the main job
# Torch is pinned (CPU build here) so that no step ever pulls a CUDA build; override with
#   make test TORCH_SPEC="torch==2.5.1"   (or any spec your platform needs)

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.vaelab-installed
DEMO_DIR ?= runs/demo

.PHONY: test demo venv lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip

# Reinstall when the package metadata or the torch spec changes.
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	printf '%s\n' "$(TORCH_SPEC)" > $(VENV)/torch-constraint.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/torch-constraint.txt -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

test: lint
	$(BIN)/python -m pytest -q

# The main job: beta-TCVAE on procedural dSprites (no download), about 10 minutes on 2 CPU cores.
# Metrics drawn from 10,000-15,000 points (the FactorVAE and BetaVAE scores encode nearly all
# 737,280 images, about 6 minutes more on a CPU: `vaelab evaluate runs/demo` runs them).
DEMO_METRICS ?= mig,dci_fast,sap,modularity,irs,unsupervised,elbo,recon_error,ssim

demo: $(STAMP)
	$(BIN)/vaelab train --preset demo --out $(DEMO_DIR) --overwrite
	$(BIN)/vaelab evaluate $(DEMO_DIR) --metrics $(DEMO_METRICS) --set elbo.num_images=2000 \
		--set recon_error.num_images=2000 --set ssim.num_images=2000
	$(BIN)/vaelab report $(DEMO_DIR)

bench: $(STAMP)
	$(BIN)/python bench/batching.py
	$(BIN)/python bench/procedural.py
	$(BIN)/python bench/metrics.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
