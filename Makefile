# clipmatch: `make demo` runs the product end to end, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
PORT ?= 8000

.PHONY: setup demo serve prod test test-fast lint model model-eval clean photo-eval chromium bench

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

# The worker-side metrics (scoring latency, tasks, model load) reach /metrics through
# prometheus-client's multiprocess mode: the demo's and the server's processes share
# this folder, emptied when each target starts. Set through env, which make runs
# directly and which execs the command: a line starting with an assignment runs under
# sh, and dash, given Ctrl-C while it waits, dies of it after serve has stopped
# quietly (make: *** Interrupt).
DEV_METRICS := $(CURDIR)/var/prometheus
DEV_ENV := env PROMETHEUS_MULTIPROC_DIR=$(DEV_METRICS)

# Seed and score the demo catalog through a real worker, then serve the site with a
# worker beside it until Ctrl-C, printing a fresh moderator login with the addresses.
demo: setup
	rm -rf $(DEV_METRICS) && mkdir -p $(DEV_METRICS)
	$(DEV_ENV) $(MANAGE) demo
	$(DEV_ENV) $(MANAGE) serve --port $(PORT) --moderator moderator

# `manage.py serve` starts runserver and qcluster, and on Ctrl-C stops both, once each.
serve: setup
	rm -rf $(DEV_METRICS) && mkdir -p $(DEV_METRICS)
	$(DEV_ENV) $(MANAGE) serve --port $(PORT)

# A production-like stack on this machine: the production settings against the
# PostgreSQL and Redis of DATABASE_URL and REDIS_URL (both required), gunicorn
# (config/gunicorn.py, GUNICORN_* variables), one qcluster of Q_WORKERS worker
# processes, each loading the model as it starts, and the webhooks' own cluster; Ctrl-C stops all of it. A secret
# key is made once in var/prod/ unless DJANGO_SECRET_KEY is set; both kinds of
# process write their metrics to var/prod/prometheus (emptied at each start).
# The stop handler clears itself first: kill 0 signals this shell too, and dash
# re-enters a handler that is still set (a segfault at Ctrl-C).
PROD_DIR := var/prod
prod: $(VENV)/.installed
	@case "$$DATABASE_URL" in postgres*) ;; *) echo "make prod: set DATABASE_URL to a PostgreSQL database (postgres://...)" >&2; exit 2;; esac
	@test -n "$$REDIS_URL" || { echo "make prod: set REDIS_URL (redis://host:6379/0)" >&2; exit 2; }
	mkdir -p $(PROD_DIR)
	test -s $(PROD_DIR)/secret-key || $(PY) -c "import secrets; print(secrets.token_urlsafe(50))" > $(PROD_DIR)/secret-key
	rm -rf $(PROD_DIR)/prometheus && mkdir -p $(PROD_DIR)/prometheus
	export DJANGO_SETTINGS_MODULE=config.settings.production \
	  DJANGO_SECRET_KEY="$${DJANGO_SECRET_KEY:-$$(cat $(PROD_DIR)/secret-key)}" \
	  PROMETHEUS_MULTIPROC_DIR="$(CURDIR)/$(PROD_DIR)/prometheus"; \
	$(MANAGE) check --deploy --fail-level WARNING && \
	$(MANAGE) migrate --noinput && \
	$(MANAGE) collectstatic --noinput -v0 && \
	echo "gunicorn on $${GUNICORN_BIND:-127.0.0.1:8000}, $${Q_WORKERS:-2} workers; Ctrl-C stops both" && \
	trap 'trap - INT TERM EXIT; kill 0' INT TERM EXIT; \
	$(MANAGE) qcluster & \
	$(MANAGE) qcluster_webhooks & \
	$(VENV)/bin/gunicorn -c config/gunicorn.py & \
	wait

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

# A benchmark, not a test: the bare model (fp32 and the configured precision), the
# seed's per-pair loop and the pipeline through a real qcluster, interleaved, on a
# random ViT-B/32 (a few minutes on a quiet 2-core machine). BENCH_ARGS adds options,
# e.g. BENCH_ARGS="--json" or "--precision bf16".
bench: $(VENV)/.installed
	$(MANAGE) clip_benchmark --random vit-b32 $(BENCH_ARGS)

photo-eval: $(VENV)/.installed
	$(PY) -m training.photo_reuse_eval --model clipmatch/bundled/clipmatch-mini

clean:
	rm -rf var/*.sqlite3* var/media var/test-media var/static var/prometheus

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check --select E,F,W,I,B config clipmatch listings training conftest.py
	$(VENV)/bin/ruff format --check config clipmatch listings training conftest.py
	$(VENV)/bin/lint-imports --no-cache
