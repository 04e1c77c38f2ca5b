# fedledger: the README's commands. Each target installs what it needs first.
SHELL := /bin/bash
export SOLCX_BINARY_PATH := $(CURDIR)/.solcx
export APE_DATA_FOLDER := $(CURDIR)/.ape-data
export PATH := $(CURDIR)/.bin:$(CURDIR)/.venv/bin:$(PATH)

NETWORK ?= ethereum:local:foundry

.PHONY: setup compile abi lint slither test test-contracts gas demo dashboard-screenshot clean robustness privacy bench throughput

setup:
	@tools/setup.sh

compile: setup
	ape compile

abi: compile
	python tools/export_abi.py

lint: setup
	ruff check clients scripts tests tools bench
	ruff format --check clients scripts tests tools bench
	mypy

slither: setup
	python tools/slither_check.py

test-contracts: compile
	ape test tests/contracts --network $(NETWORK)

test: setup lint compile
	python tools/export_abi.py --check
	python tools/slither_check.py
	# Contract tests in their own session: after the client suite, ape's per-test chain
	# snapshots stopped being restored partway through test_task.py (state leaked between tests).
	ape test tests/contracts --network $(NETWORK)
	ape test tests/clients tests/e2e --network $(NETWORK)

gas: compile
	FEDLEDGER_GAS_REPORT=1 ape test tests/contracts/test_gas.py --network $(NETWORK) -q
	python tools/gas_report.py

demo: compile
	fedledger demo $(ARGS)

dashboard-screenshot: compile
	tools/dashboard_screenshot.sh

clean:
	rm -rf .build .ape-data .run

robustness: setup
	python bench/robustness.py

privacy: setup
	python bench/privacy.py $(ARGS)

bench: compile
	tools/setup_bench.sh
	python bench/run_all.py $(ARGS)

throughput: compile
	python bench/throughput.py
