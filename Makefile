# Small on purpose: every target first makes sure the tools and dependencies are installed,
# so `make run` and `make test` work on a fresh machine.
UV_VERSION := 0.13.8
UV := .tools/bin/uv
PYTHON := .venv/bin/python
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: install run migrate test check schema bench clean browser types

install: .venv/.synced node_modules/.installed

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --quiet
	touch $@

# `npm install`, not `npm ci`: the lock holds only this platform's dbmate binary package, and
# `npm ci` insists on every platform's. Versions are exact in package.json and the lock.
node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

run: install
	$(PYTHON) -m server serve

migrate: install
	$(PYTHON) -m server migrate

schema: install
	$(PYTHON) -m server dump-schema

test: install browser
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# Headless Chromium for the page's end-to-end test (tests/e2e): Debian's package, never a browser
# download. CI runs as root; where apt cannot install it, make goes on and that test fails saying why.
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends chromium) || \
		echo "make browser: could not install chromium; the end-to-end test will fail" >&2

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
	rm -rf .venv .tools node_modules
