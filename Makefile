# The two commands a newcomer needs: `make run` and `make test`. Both install what they need.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

export DJANGO_SETTINGS_MODULE ?= config.settings.local

.PHONY: run test lint migrate services clean help

help:
	@echo "make run    - web, worker and beat on embedded defaults (SQLite, no broker server)"
	@echo "make test   - lint + the whole suite against the local PostgreSQL and Redis"
	@echo "make lint   - ruff (lint, format check) and import contracts"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Stamps: reinstall only when a requirements file changes.
$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	mkdir -p var
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py dev_admin
	PATH="$(CURDIR)/$(BIN):$$PATH" GUNICORN_CMD_ARGS="--reload $$GUNICORN_CMD_ARGS" \
		$(BIN)/honcho start -f Procfile -p $(PORT)

migrate: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --no-input

# PostgreSQL and Redis run on every development and CI machine; start them if they stopped.
services:
	@pg_isready -q || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
		--save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
	@for i in $$(seq 1 30); do pg_isready -q && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && exit 0; sleep 1; done; \
		echo "PostgreSQL or Redis did not come up" >&2; exit 1

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: $(VENV)/.dev services lint
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/pytest $(ARGS)

clean:
	rm -rf $(VENV) var
