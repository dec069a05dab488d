# c360 — the two commands: `make demo` (the main job) and `make test` (all tests).
# Everything a fresh machine needs is installed by these targets.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help demo test test-unit lint fmt venv kafka-up kafka-down kafka-logs kafka-reset \
        kafka-status schemas bench bench-quick ready-bench clean

help:
	@echo "make demo         set up, start Kafka and a worker, stream a sample population, print profiles"
	@echo "make test         set up and run every test (unit, simulation, integration on a real broker) and ruff"
	@echo "make kafka-up     start the local single-node Kafka (idempotent); prints 127.0.0.1:PORT"
	@echo "make kafka-down   stop it;  make kafka-logs: its log;  make kafka-reset: wipe its data"
	@echo "make bench-quick  end-to-end benchmark in under a minute;  make bench: the full one"

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "c360 needs Python 3.11+"' \
	  || { echo "Python 3.11+ is required (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

kafka-up:
	@ops/kafka/kafka.sh up
kafka-down:
	@ops/kafka/kafka.sh down
kafka-logs:
	@ops/kafka/kafka.sh logs
kafka-reset:
	@ops/kafka/kafka.sh reset
kafka-status:
	@ops/kafka/kafka.sh status

test: $(STAMP)
	@ops/test.sh

test-unit: $(STAMP)
	@ops/install-prometheus.sh
	$(BIN)/pytest -q tests/unit tests/simulation

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schemas: $(STAMP)
	$(BIN)/c360 schemas --write

demo: $(STAMP)
	@ops/demo.sh

bench: $(STAMP)
	@ops/bench.sh full

bench-quick: $(STAMP)
	@ops/bench.sh quick

ready-bench: $(STAMP)
	@ops/with-kafka.sh $(BIN)/python bench/worker_ready.py

clean:
	rm -rf $(VENV) .c360 .pytest_cache .ruff_cache .hypothesis
