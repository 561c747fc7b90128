# Two commands on a fresh machine: `make demo` and `make test`. Each makes its own .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint format workflow browser lock clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "darkroom needs Python 3.11+"' \
		|| { echo "darkroom needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Everything from the one lock (requirements.lock: every extra, exact versions, each
# file's hash checked), then the project itself; rebuilt when either file changes.
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes --no-deps --requirement requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

demo: $(VENV)/.installed
	$(BIN)/darkroom demo

# Two runs, each spread over every core: the integration tests' local clouds (one per
# process) share moto's in-process state with the unit tests' mocks, so they never share
# a process. Both always run; either failing fails the target.
test: $(VENV)/.installed browser
	@rc=0; \
	$(BIN)/python -m pytest -q -n auto tests/unit tests/infra || rc=1; \
	$(BIN)/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder tests/integration || rc=1; \
	exit $$rc

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy darkroom tasks worker workflows cdk benchmarks

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Write the lock again from pyproject.toml: after changing a requirement there (a test
# fails while the lock does not satisfy it), or to take newer releases.
lock: $(VENV)/.installed
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --generate-hashes \
		--python-version 3.11 --custom-compile-command "make lock" --output-file requirements.lock

# Regenerate the committed ASL from workflows/raw_pipeline.py.
workflow: $(VENV)/.installed
	$(BIN)/python -m workflows.raw_pipeline

# Headless Chromium for the gallery test, installed where this machine lets us (root or
# passwordless sudo, apt); elsewhere the test skips and says why. Never fails the build.
# A fresh machine may have empty package lists: then update them and try once more.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		|| { command -v apt-get >/dev/null \
		     && { [ "$$(id -u)" = 0 ] && SUDO= || SUDO="sudo -n"; \
		          apt_install() { $$SUDO apt-get install -y -qq --no-install-recommends \
		                          chromium chromium-driver >/dev/null 2>&1; }; \
		          apt_install \
		          || { $$SUDO apt-get update -qq >/dev/null 2>&1 && apt_install; }; } \
		     || echo "make browser: could not install Chromium; the gallery browser test will skip"; }

clean:
	rm -rf $(VENV) .darkroom darkroom-demo .pytest_cache .mypy_cache .ruff_cache
