# dockyard — top-level tasks. Every target that needs the environment runs `setup` first.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo demo-runtime test lint bench clean

setup:
	@scripts/setup.sh

demo: setup
	@examples/engine-demo.sh

demo-runtime: setup
	@examples/runtime-demo.sh

lint: setup
	$(VENV)/bin/ruff check dockyard tests $(wildcard bench)

test: setup lint
	@# pytest exits 5 when it collects no tests: not a failure of the suite.
	$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

bench: setup
	$(PY) bench/runtime_run.py
	$(PY) bench/shim_rss.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
