# seqsent: `make train` trains the default LSTM on IMDB, `make self-train` a student on soft labels,
# `make test` runs the tests.
# Both create .venv first (CPU PyTorch 2.13.0, then seqsent with its dev extra).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
# Data, as in every entry point: data.path=..., else $SEQSENT_IMDB_DIR, else the Hub's stanfordnlp/imdb.

.PHONY: venv train self-train test test-slow lint format clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev,sweeps,cluster,export,wordvectors,explain]"
	touch $@

train: venv
	$(BIN)/python -m seqsent.train $(ARGS)

# teacher -> soft labels for the unlabeled reviews -> student (time and results: docs/results.md)
SELF_TRAIN_OUT ?= outputs/self_train_$(shell date +%Y-%m-%d_%H-%M-%S)
self-train: venv
	$(BIN)/python scripts/self_train.py --out $(SELF_TRAIN_OUT) $(ARGS)

# one pytest worker per core (pytest-xdist), each test file on one worker so its module fixtures are built
# once (test times: docs/speed.md)
test: venv
	$(BIN)/python -m pytest -m "not slow" -n auto --dist loadfile $(ARGS)

test-slow: venv
	$(BIN)/python -m pytest -m slow $(ARGS)

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .ruff_cache
