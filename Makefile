# Every target sets itself up from a fresh clone: virtualenv, install, database.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: test lint demo bench db browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

db: $(STAMP)
	$(PY) -m demo_project.devdb

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The dashboard's browser test drives Debian's Chromium through Playwright: Playwright's own
# browser download does not work everywhere, the distribution's package does.
browser:
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The matrix (noxfile.py): Django 5.2, 6.1 and 6.0 on their Pythons, each under psycopg 3 and
# (5.2, 6.1) psycopg2; then the built wheel installed beside Django 6.1 outside the checkout.
test: lint db browser
	$(PY) -m nox

# gunicorn (gthread) on :8000 and uvicorn on :8001, as production would run them; Ctrl-C stops both.
demo: db
	$(PY) manage.py migrate --no-input
	$(PY) manage.py migrate --no-input --database tenant_small
	$(PY) manage.py migrate --no-input --database tenant_large
	$(PY) manage.py ensure_demo_user
	$(PY) -m demo_project.serve

# The benchmark's own extras (SQLAlchemy, gunicorn, matplotlib, ...) and wrk; make test needs neither.
BENCH_STAMP := $(VENV)/.bench-installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	rm -f $(VENV)/.bench-installed-*
	touch $@

# Writes docs/benchmarks.md and docs/*.png; BENCH_QUICK=1 for a smoke run of a few minutes.
bench: $(BENCH_STAMP) db
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PY) -m demo_project.bench

# Stop the embedded server before deleting its data, or it would keep running without it.
clean:
	-test -x $(PY) && test -f .local/pgdata/postmaster.pid && \
		$(PY) -c "from demo_project.devdb import stop_embedded; stop_embedded()"
	rm -rf $(VENV) .nox .local
