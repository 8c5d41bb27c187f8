# Developer commands; see README.md.
PYTHON ?= python3
RESULTS := tests/artifacts/results

.PHONY: setup test demo bench

setup:
	$(PYTHON) tests/harness/setup_env.py

# The whole suite on the current ComfyUI, then the ComfyUI tests on the oldest supported release; both always run,
# and the closing summary gives the counts per release (and fails when either run failed).
test: setup
	@rm -rf $(RESULTS); status=0; \
	CACHEKIT_RESULTS_FILE=$(RESULTS)/1-current.json $(PYTHON) -m pytest tests || status=1; \
	CACHEKIT_RESULTS_DIR=$(RESULTS) $(PYTHON) tests/harness/oldest_comfyui.py || status=1; \
	CACHEKIT_RESULTS_DIR=$(RESULTS) $(PYTHON) tests/harness/oldest_comfyui.py --summary || status=1; \
	exit $$status

demo: setup
	$(PYTHON) bench/demo.py

bench: setup
	$(PYTHON) bench/run_benchmark.py
