# Developer commands; see README.md.
PYTHON ?= python3

.PHONY: setup test demo bench

setup:
	$(PYTHON) tests/harness/setup_env.py

test: setup
	$(PYTHON) -m pytest tests
	$(PYTHON) tests/harness/oldest_comfyui.py

demo: setup
	$(PYTHON) bench/demo.py

bench: setup
	$(PYTHON) bench/run_benchmark.py
