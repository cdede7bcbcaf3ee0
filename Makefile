PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo pretrain test test-slow scaling bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[torch,dev,hf]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/flanctl plan examples/quickstart.yaml
	$(BIN)/flanctl apply examples/quickstart.yaml
	$(BIN)/python examples/base/probe.py

pretrain: $(STAMP)
	$(BIN)/flanctl apply examples/pretrain.yaml
	$(BIN)/python examples/base/record.py runs/pretrain

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 tests

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests

scaling: $(STAMP)
	$(BIN)/python examples/scaling/run.py

clean:
	rm -rf $(VENV) runs .flanctl
