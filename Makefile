# lab4: `make` runs the main job on the embedded default data; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.lab4-installed
PROFILE ?= quick
RUN    ?= runs/$(PROFILE)
PLAN   ?= ablations
JOBS   ?= 2
SWEEP  ?=
# DATA=DIR: train and ablations on that dataset (the real data, say: --data DIR) instead of the
# profile's or plan's; left unset, they make and use the synthetic data as before.
DATA   ?=
DATA_ARG = $(if $(DATA), --data "$(DATA)",)
FIGURES ?= figures
# tcmalloc, when installed (Debian: libtcmalloc-minimal4; `make setup` installs it where it can),
# for every training command: glibc's allocator returns large activation buffers to the OS
# after each step and pays for fresh pages on the next, which slows CPU training measurably.
# tcmalloc does the same more slowly; with TCMALLOC_RELEASE_RATE=0 it keeps freed memory for the
# next step. In `lab4 bench` runs at the lab sizes the naive fp32 step then spent 0 % of its CPU
# time in the kernel (page faults; 3 runs) against 3-16 % without (5 runs), and ours in bf16 0 %
# (2 runs) against 2-6 % (4 runs); the speed differences were within the machine's run-to-run noise.
TCMALLOC = $$(ls /usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4 /usr/lib/libtcmalloc_minimal.so.4 2>/dev/null | head -n 1)
RUN_PY = LD_PRELOAD="$(TCMALLOC)" TCMALLOC_RELEASE_RATE=0 $(PY)

.PHONY: all setup test data train predict score clean-runs ablations report lab bench

# The default: set-up, the default studio data, the report's ablations (profile quick-chain, CPU), the report.
all: setup data ablations report

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
	  if [ -z "$(TCMALLOC)" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    timeout 120 apt-get install -y -q libtcmalloc-minimal4 >/dev/null 2>&1 \
	      || echo "setup: tcmalloc not installed (optional: apt-get install libtcmalloc-minimal4)"; \
	  fi; \
	  echo "$$want" > $(STAMP); \
	  echo "setup: installed $(TORCH) and lab4 into $(VENV)"; \
	fi

# Two workers, a core each; a test file stays on one worker, so its module fixtures are built once.
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

data: setup
	$(PY) -m lab4 data

# A second `make train` continues an interrupted run, or keeps a finished one (lab4/runs/__init__.py: EXISTING_MODES).
# With DATA=DIR it trains on DIR and makes no synthetic data.
train: $(if $(DATA),setup,data)
	$(RUN_PY) -m lab4 train --profile $(PROFILE) --run-dir $(RUN) --existing resume$(DATA_ARG)

predict: setup
	$(RUN_PY) -m lab4 predict $(RUN)

# The ablation plan lab4/plans/$(PLAN).yaml (the training notebook once per run, papermill)
# into runs/<plan name>/; finished runs are skipped. PLAN=ablations-lab JOBS=4: the template's
# settings, one GPU per job. A plan naming its own data (smoke: data/tiny) needs that data.
# DATA=DIR runs every run on DIR (the real data: PLAN=ablations-lab JOBS=4 DATA=DIR).
ablations: $(if $(DATA),setup,data)
	$(RUN_PY) -m lab4 sweep $(PLAN) --jobs $(JOBS)$(DATA_ARG)

# The analysis notebook, headless, on $(SWEEP) (default: the latest sweep): every figure as
# PDF + PNG in $(FIGURES)/ and $(FIGURES)/report.pdf; the executed notebook in the sweep folder.
# Then the report draft: report/results.typ rewritten, report/report.typ (yours) created if missing,
# both compiled to report/report.pdf (the typst package). DRAFT=1: only that last step (seconds).
report: setup
	$(RUN_PY) -m lab4 report $(SWEEP) --figures $(FIGURES)$(if $(DRAFT), --draft-only,)

# JupyterLab on the analysis notebook (the frame scrubber needs a live kernel), served from the
# project folder so that the notebook's links to the runs' GIFs resolve and the runs show in its browser.
# As root (a container, say) Jupyter refuses to start unless told --allow-root.
lab: setup
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(if $(filter 0,$(shell id -u)),--allow-root,) notebooks/analysis.ipynb

# The speed benchmark: the naive template-style loop and the project's step, side by side.
bench: setup
	$(RUN_PY) -m lab4 bench --out bench.json
