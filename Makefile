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

setup: $(VENV)/.installed chromium
	mkdir -p var
	$(MANAGE) migrate --noinput -v0
	$(MANAGE) setup_schedules

# Seed and score the demo catalog through a real worker, then serve the admin with a
# worker beside it until Ctrl-C.
demo: setup
	$(MANAGE) create_moderator
	$(MANAGE) demo
	$(MAKE) --no-print-directory serve

serve: setup
	@echo "Review queue: http://127.0.0.1:$(PORT)/review/  Admin: http://127.0.0.1:$(PORT)/admin/  (Ctrl-C stops the server and the worker)"
	trap 'kill 0' INT TERM EXIT; \
	$(MANAGE) qcluster & \
	$(MANAGE) runserver 127.0.0.1:$(PORT)

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
