# clipmatch: `make demo` runs the product end to end, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
PORT ?= 8000

.PHONY: setup demo serve test test-fast lint model model-eval clean chromium

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# migrate also creates the reconciler and webhook dispatcher schedules (and says so
# on a fresh database); `manage.py setup_schedules` does only that.
setup: $(VENV)/.installed chromium
	mkdir -p var
	$(MANAGE) migrate --noinput

# Seed and score the demo catalog through a real worker, then serve the site with a
# worker beside it until Ctrl-C, printing a fresh moderator login with the addresses.
demo: setup
	$(MANAGE) demo
	$(MANAGE) serve --port $(PORT) --moderator moderator

# `manage.py serve` starts runserver and qcluster, and on Ctrl-C stops both, once each.
serve: setup
	$(MANAGE) serve --port $(PORT)

# The browser tests drive Debian's Chromium; Playwright downloads no browser.
chromium:
	@test -x /usr/bin/chromium || apt-get install -y -q chromium >/dev/null

test: $(VENV)/.installed chromium
	mkdir -p var
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# Rebuild the bundled model from scratch (see training/README.md), then check it.
model: $(VENV)/.installed
	$(PY) -m training.train_mini --output clipmatch/bundled/clipmatch-mini

model-eval: $(VENV)/.installed
	$(PY) -m training.evaluate_mini --model clipmatch/bundled/clipmatch-mini

clean:
	rm -rf var/*.sqlite3* var/media var/test-media var/static

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check --select E,F,W,I,B config clipmatch listings training conftest.py
	$(VENV)/bin/ruff format --check config clipmatch listings training conftest.py
	$(VENV)/bin/lint-imports --no-cache
