# The two commands a newcomer needs: `make run` and `make test`. Both install what they need.

# The newest Python from 3.13 down to 3.11 that runs here (pyenv's shims name versions that do not run).
PYTHON ?= $(shell for v in 3.13 3.12 3.11; do python$$v -c '' 2>/dev/null && { echo python$$v; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STRIPE_EMULATOR_PORT ?= 12111
# The emulator's own test key: make run gives it to the app when no real key is set.
EMULATOR_SECRET_KEY := sk_test_localEmulatorKey000000000000
EMULATOR_PUBLISHABLE_KEY := pk_test_localEmulatorKey000000000000

export DJANGO_SETTINGS_MODULE ?= config.settings.local

.PHONY: run test check bytecode docs lock lint migrate services browser pgbouncer screenshots clean help bench-emulator bench-mirror bench-webhooks bench-dashboard bench-scale soak fuzz audit

help:
	@echo "make run    - web, worker and beat on embedded defaults (SQLite, no broker server)"
	@echo "make test   - lint + the whole suite against the local PostgreSQL and Redis"
	@echo "make check  - lint + the tests that need no server, worker or emulator (under a minute)"
	@echo "make lint   - ruff (lint, format check) and import contracts"
	@echo "make docs   - the docs site on http://127.0.0.1:8001 (MkDocs)"
	@echo "make lock   - compile requirements*.in into the pinned, hashed requirements*.txt"
	@echo "make bench-emulator - requests/s of the Stripe emulator through the SDK (JSON)"
	@echo "make bench-mirror   - the mirror against Stripe's live rate limits, two workers (JSON)"
	@echo "make bench-webhooks - acknowledging and processing webhooks vs dj-stripe's stock view (JSON)"
	@echo "make bench-dashboard - the admin dashboard's time and queries with 100,000 orders (JSON)"
	@echo "make bench-scale    - cost as the data grows: 1M stored events, 1M orders, 100k products reconciled (JSON)"
	@echo "make soak DURATION=30m - a long mixed load with faults and worker kills, then checked against Stripe (JSON)"
	@echo "make fuzz   - the API fuzzed from its OpenAPI schema, long run (FUZZ_EXAMPLES=200), JSON summary"
	@echo "make audit  - known vulnerabilities in the pinned requirements (pip-audit)"

$(BIN)/python:
	@[ -n "$(PYTHON)" ] || { echo "Python 3.11, 3.12 or 3.13 is needed (python3.11 ... python3.13 on the PATH):" \
		"on Debian/Ubuntu 'sudo apt install python3 python3-venv', on macOS 'brew install python@3.13'." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Stamps: reinstall only when a requirements file changes. Every package is pinned with its hashes, so an install
# takes exactly the files that were locked, or stops. uv installs them (seconds, where pip takes most of a minute),
# compiled to bytecode, as pip does: where PYTHONDONTWRITEBYTECODE is set, every process would compile them again.
# pip installs uv itself, from its own locked file.
$(BIN)/uv: requirements-installer.txt | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements-installer.txt
	touch $@

INSTALL := $(BIN)/uv pip install --quiet --require-hashes --compile-bytecode --python $(BIN)/python
$(VENV)/.runtime: requirements.txt | $(BIN)/uv
	$(INSTALL) -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/uv
	$(INSTALL) -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

# Edit requirements.in, requirements-dev.in or requirements-installer.in, then `make lock`: each file is compiled
# again with every package pinned and hashed, keeping the versions already locked unless UPGRADE=--upgrade (or
# UPGRADE="--upgrade-package django") says otherwise. PIP_CONFIG_FILE=/dev/null: only PyPI, never a local mirror.
PIP_COMPILE := PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	--no-header --no-emit-index-url --no-emit-find-links $(UPGRADE)
lock: $(VENV)/.dev
	$(PIP_COMPILE) -o requirements.txt requirements.in
	$(PIP_COMPILE) -o requirements-dev.txt requirements-dev.in
	$(PIP_COMPILE) -o requirements-installer.txt requirements-installer.in

# Without STRIPE_API_BASE or STRIPE_SECRET_KEY, the Stripe emulator runs beside the app
# (its state kept in var/), the app is pointed at it, and it delivers webhooks to
# /stripe/webhook/ signed with STRIPE_WEBHOOK_SECRET (generated once into var/).
run: $(VENV)/.runtime
	mkdir -p var
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py dev_admin
	@if [ -z "$$STRIPE_API_BASE" ] && [ -z "$$STRIPE_SECRET_KEY" ]; then \
		secret="$${STRIPE_WEBHOOK_SECRET:-$$(cat var/stripe-webhook-secret 2>/dev/null)}"; \
		if [ -z "$$secret" ]; then \
			secret="whsec_$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(24))')"; \
			(umask 077; echo "$$secret" > var/stripe-webhook-secret); \
		fi; \
		export STRIPE_API_BASE="http://127.0.0.1:$(STRIPE_EMULATOR_PORT)" STRIPE_SECRET_KEY="$(EMULATOR_SECRET_KEY)" \
			STRIPE_PUBLISHABLE_KEY="$(EMULATOR_PUBLISHABLE_KEY)" STRIPE_WEBHOOK_SECRET="$$secret"; \
		{ cat Procfile; echo "stripe: python -m tools.stripe_emulator --port $(STRIPE_EMULATOR_PORT)" \
			"--webhook-url http://127.0.0.1:$(PORT)/stripe/webhook/ --webhook-secret $$secret" \
			"--state-file var/stripe-emulator.json"; } > var/Procfile.run; \
		echo "Stripe emulator on $$STRIPE_API_BASE (checkout pages open in a browser)"; \
	else \
		case "$$STRIPE_SECRET_KEY" in sk_live_*|rk_live_*) mode=live;; *) mode=test;; esac; \
		echo "Stripe: $${STRIPE_API_BASE:-https://api.stripe.com} with a $$mode-mode key" \
			"(webhooks: stripe listen --forward-to localhost:$(PORT)/stripe/webhook/)"; \
		cp Procfile var/Procfile.run; \
	fi; \
	rm -rf var/metrics; \
	PATH="$(CURDIR)/$(BIN):$$PATH" GUNICORN_CMD_ARGS="--reload $$GUNICORN_CMD_ARGS" \
		$(BIN)/honcho start -f var/Procfile.run -d . -p $(PORT)

migrate: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --no-input

# PostgreSQL and Redis run on every development and CI machine; start them if they stopped.
services:
	@command -v pg_isready >/dev/null || { echo "make test needs PostgreSQL: on Debian/Ubuntu" \
		"'sudo apt install postgresql', on macOS 'brew install postgresql@16 && brew services start postgresql@16'" \
		"(docs/getting-started.md)." >&2; exit 1; }
	@command -v redis-cli >/dev/null || { echo "make test needs Redis: on Debian/Ubuntu 'sudo apt install redis-server'," \
		"on macOS 'brew install redis && brew services start redis' (docs/getting-started.md)." >&2; exit 1; }
	@pg_isready -q || { [ -d /etc/postgresql ] && pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; } || true
	@redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || { [ -d /var/lib/redis ] && redis-server --daemonize yes --bind 127.0.0.1 -::1 \
		--port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log; } || true
	@for i in $$(seq 1 30); do pg_isready -q && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && exit 0; sleep 1; done; \
		pg_isready -q || echo "PostgreSQL is installed but not answering on its socket: start it (pg_ctlcluster," \
			"systemctl start postgresql, or brew services start postgresql@16)." >&2; \
		redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || echo "Redis is installed but not answering on 127.0.0.1:6379:" \
			"start it (redis-server --daemonize yes, or brew services start redis)." >&2; \
		exit 1

# The admin's browser tests drive Debian's Chromium through chromedriver; installed here when missing. Where it
# cannot be (no root or sudo, no package mirror) they are skipped, and pytest says why.
BROWSER_PACKAGES := chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		echo "Installing Chromium for the browser tests ($(BROWSER_PACKAGES))"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null 2>&1 \
		|| { $(SUDO) apt-get update -qq >/dev/null 2>&1 && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null 2>&1; } \
		|| echo "Chromium could not be installed: the browser tests will be skipped." >&2; }

# One journey runs every process through a real PgBouncer in transaction mode (tests/journeys/test_pgbouncer.py):
# Debian's package, installed here when missing.
pgbouncer:
	@command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || { echo "Installing PgBouncer for the pooler's journey"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null 2>&1 \
		|| { $(SUDO) apt-get update -qq >/dev/null 2>&1 && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null 2>&1; } \
		|| echo "PgBouncer could not be installed: its journey will fail and say how to install it." >&2; }

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Tests run in TEST_WORKERS processes (pytest-xdist), each with its own test database, Redis databases, emulator,
# Celery workers and ports; most of a journey's time is spent waiting on other processes, so more workers than
# cores pays. TEST_WORKERS=0 runs them in this one process (with ARGS="-x --pdb", say).
TEST_WORKERS ?= 4
test: $(VENV)/.dev services browser pgbouncer lint bytecode
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal $(ARGS)

# The suite starts a few hundred Python processes (workers, servers, production starts): compiled once here, the
# project's modules are not compiled again by each of them where PYTHONDONTWRITEBYTECODE is set.
bytecode: $(VENV)/.dev
	@$(BIN)/python -m compileall -q -j 0 apps config tools tests manage.py

# Before a commit: lint, import contracts and the tests that need no server, worker or emulator (PostgreSQL and
# Redis only). The journeys, the browser, the fuzz and the soak run in `make test`.
check: $(VENV)/.dev services lint bytecode
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not integration" $(ARGS)

# The docs site (sources in docs/, mkdocs.yml) served on http://127.0.0.1:$(DOCS_PORT), offline, rebuilt on save.
DOCS_PORT ?= 8001
docs: $(VENV)/.dev
	$(BIN)/mkdocs serve -a 127.0.0.1:$(DOCS_PORT)

bench-emulator: $(VENV)/.dev
	@$(BIN)/python -m tools.bench.emulator

bench-mirror: $(VENV)/.dev services
	@$(BIN)/python tools/bench/mirror.py

bench-webhooks: $(VENV)/.dev services
	@$(BIN)/python tools/bench/webhooks.py

# The README's pictures of the admin, taken by the browser tests on their own data.
screenshots: $(VENV)/.dev services browser
	DJANGO_SETTINGS_MODULE=config.settings.test SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest -q tests/browser

bench-dashboard: $(VENV)/.dev services
	@$(BIN)/python tools/bench/dashboard.py

bench-scale: $(VENV)/.dev services
	@$(BIN)/python tools/bench/scale.py

# Shoppers, staff, duplicated and shuffled webhooks, Stripe 429s and 500s, a worker killed every few minutes; then
# the database is checked against the emulator and the mail server. `make test` runs two minutes of it.
DURATION ?= 30m
soak: $(VENV)/.dev services
	@$(BIN)/python -m tools.soak --duration $(DURATION)

# The same fuzz test `make test` runs with a small budget, here with a long one; the summary is JSON.
FUZZ_EXAMPLES ?= 200
FUZZ_SEED ?= 20261123
fuzz: $(VENV)/.dev services
	@mkdir -p var && rm -f var/fuzz-summary.jsonl
	@DJANGO_SETTINGS_MODULE=config.settings.test FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SEED=$(FUZZ_SEED) \
		FUZZ_SUMMARY=var/fuzz-summary.jsonl $(BIN)/pytest -q -p no:warnings tests/test_api_fuzz.py >var/fuzz.log 2>&1; \
		status=$$?; $(BIN)/python -m tests.fuzzing var/fuzz-summary.jsonl var/fuzz.log || [ $$status -ne 0 ] || status=1; \
		[ $$status -eq 0 ] || { echo "failures: see var/fuzz.log" >&2; exit $$status; }

# Every pin is exact, so the files are audited as they are, without resolving anything. --strict: a package
# the vulnerability service cannot answer for fails the audit instead of passing unaudited.
# AUDIT_SERVICE=osv asks osv.dev instead of PyPI's JSON API.
AUDIT_SERVICE ?= pypi
audit: $(VENV)/.dev
	$(BIN)/pip-audit --strict --no-deps --disable-pip --progress-spinner off --vulnerability-service $(AUDIT_SERVICE) \
		-r requirements.txt -r requirements-dev.txt -r requirements-installer.txt

clean:
	rm -rf $(VENV) var
