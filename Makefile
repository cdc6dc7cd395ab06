# lab4: `make` runs the main job on the embedded default data; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.lab4-installed
PROFILE ?= quick
RUN    ?= runs/$(PROFILE)

.PHONY: all setup test data train predict score clean-runs

all: setup data train predict

# Idempotent: reinstalls only when the torch spec or pyproject.toml changed.
setup:
	@want="$(TORCH) $$(cksum pyproject.toml | cut -d' ' -f1)"; \
	if [ -x $(PY) ] && [ "$$(cat $(STAMP) 2>/dev/null)" = "$$want" ]; then \
	  echo "setup: $(VENV) is up to date"; \
	else \
	  set -e; \
	  [ -x $(PY) ] || $(PYTHON) -m venv $(VENV); \
	  $(PY) -m pip install -q --upgrade pip; \
	  $(PY) -m pip install -q "$(TORCH)"; \
	  $(PY) -m pip install -q -e ".[notebooks,dev]"; \
	  echo "$$want" > $(STAMP); \
	  echo "setup: installed $(TORCH) and lab4 into $(VENV)"; \
	fi

test: setup
	$(PY) -m pytest -q

data: setup
	$(PY) -m lab4 data

train: setup
	$(PY) -m lab4 train --profile $(PROFILE) --run-dir $(RUN) $(if $(wildcard $(RUN)/checkpoints/last.pt),--resume,)

predict: setup
	$(PY) -m lab4 predict $(RUN)
