# The two commands of the README's quickstart:
#   make demo   set everything up in .venv and run the end-to-end demo
#   make test   set everything up (PostgreSQL, Chromium, the S3 test server) and run every test
# CI calls `make test` (.ci/run).

VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
# Ray binds every interface whatever it is told, so tests run in a loopback-only network namespace.
NETNS   = unshare -n bash -c 'ip link set lo up && exec "$$@"' _
PYTEST_ARGS ?=

.PHONY: setup system-deps demo test test-fast lint typecheck bench clean constraints

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@echo "==> creating $(VENV) and installing groundwork with all extras"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned to the CPU build 2.13.0 (pip takes it from local disk here).
	$(PY) -m pip install -q torch==2.13.0
	# Exact versions from constraints.txt; pyproject.toml holds the compatible ranges users get.
	$(PY) -m pip install -q -c constraints.txt -e ".[all,dev]"
	# tritonclient (the Open Inference Protocol tests' client) pins ml-dtypes<=0.5.4 and greenlet<3.4, which its
	# HTTP client does not need: installed without dependencies (the ones it uses are in the dev extra).
	$(PY) -m pip install -q --no-deps -c constraints.txt tritonclient
	# groundwork export --target web vendors onnxruntime-web: npm ci (lock-pinned, verified) into a cache.
	$(PY) -m groundwork.engines.export.npm || echo "warning: npm packages for web exports not installed (is npm installed?)"
	rm -f $(VENV)/.installed-*
	touch $@

# What the tests start for real: PostgreSQL and Chromium from Debian (moto comes from PyPI).
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then \
		echo "==> installing postgresql and chromium (Debian packages)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql chromium >/dev/null; \
	fi
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	@if [ -x $(PY) ]; then $(PY) -m groundwork.engines.export.npm || echo "warning: npm packages for web exports not installed"; fi

demo: setup
	$(VENV)/bin/groundwork demo

test: setup system-deps lint
	@if $(NETNS) true 2>/dev/null; then \
		$(NETNS) $(VENV)/bin/pytest -n 2 --dist loadgroup $(PYTEST_ARGS); \
	else \
		echo "warning: cannot create a network namespace (unshare -n); Ray tests will skip"; \
		GROUNDWORK_NO_NETNS=1 $(VENV)/bin/pytest -n 2 --dist loadgroup $(PYTEST_ARGS); \
	fi

test-fast: setup
	$(VENV)/bin/pytest -n 2 -m "not slow and not ray and not browser" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check --no-cache src tests benchmarks examples
	$(VENV)/bin/mypy

bench: setup system-deps
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(PY) benchmarks/tracking.py
	$(PY) benchmarks/pipelines.py
	$(PY) benchmarks/serving.py --duration 8 --warmup 3
	$(PY) benchmarks/optimize_cpu.py
	$(PY) benchmarks/ui.py
	$(PY) benchmarks/export.py
	$(PY) benchmarks/volumes.py

# Re-pin constraints.txt to what the venv has now (after changing a range in pyproject.toml).
constraints: setup
	{ echo "# Exact versions that 'make setup' and CI install (pip install -c constraints.txt)."; \
	  echo "# pyproject.toml keeps compatible ranges for users; regenerate with: make constraints"; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^groundwork'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf .groundwork .pytest_cache .mypy_cache .ruff_cache
