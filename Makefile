# Two set-up commands: `make demo` and `make test`. Both create .venv on first use.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPEC ?= specs/listops_homogeneous.yaml
# The demo is sized to finish in minutes on 2 CPU cores; drop these for the full-size run.
DEMO_SET ?= --set task.n_train=20000 --set train.steps=300 --set train.eval_every=100 --set search.seeds=[0]

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[cpu,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m nasgraph demo $(SPEC) $(DEMO_SET)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests

clean:  # the environment only: runs/ holds your results
	rm -rf $(VENV)
