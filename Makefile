# Routegate developer tasks. `make help` lists them.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: install
install: ## build the native core and install the package with its test tools (editable)
	$(PIP) install -q -e '.[test]'

.PHONY: serve
serve: ## install and start the gateway on 127.0.0.1:8080 with embedded defaults
	$(PIP) install -q .
	routegate serve

.PHONY: lint
lint: ## rustfmt, clippy, ruff, mypy --strict, stubtest
	cargo fmt --all -- --check
	cargo clippy --all-targets --all-features -- -D warnings
	ruff check python tests benches
	ruff format --check python tests benches
	mypy python/gateway
	$(PYTHON) -m mypy.stubtest gateway._router_core

.PHONY: test-rust
test-rust: ## cargo tests of the native core
	cargo test -q

.PHONY: test-python
test-python: ## pytest: properties, integration (real processes), SDK end to end
	$(PYTHON) -m pytest -q

.PHONY: test
test: install lint test-rust test-python ## install everything, then run every check and test

.PHONY: bench
bench: ## load harness: added latency, max throughput, memory (writes benches/results)
	$(PYTHON) benches/load.py
