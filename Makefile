# Small on purpose: every target first makes sure the tools and dependencies are installed,
# so `make run` and `make test` work on a fresh machine.
UV_VERSION := 0.13.8
UV := .tools/bin/uv
PYTHON := .venv/bin/python
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: install run migrate test check schema bench clean

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

test: install
	$(PYTHON) -m pytest $(PYTEST_ARGS)

check: install
	.venv/bin/ruff format --check server tests $(wildcard bench)
	.venv/bin/ruff check server tests $(wildcard bench)
	.venv/bin/mypy

bench: install
	$(PYTHON) -m bench

clean:
	rm -rf .venv .tools node_modules
