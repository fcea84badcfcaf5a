# Two commands for a newcomer: `make run` and `make test`. Both install what is needed first.
SHELL := /bin/bash
TSC := ./node_modules/.bin/tsc

.PHONY: install build run test check format bench migrate key clean

install: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# A clean build of dist/ with SWC (scripts/build.mjs: no type check, 0.4 s); `make check` checks the types.
build: install
	node scripts/build.mjs

run: build
	node dist/src/main.js

test: build
	node dist/test/run.js

# Types (tsc), mistakes (eslint + typescript-eslint) and layout (prettier); CI runs it before the tests.
check: install
	$(TSC) -p tsconfig.json --noEmit
	./node_modules/.bin/eslint --max-warnings 0 .
	./node_modules/.bin/prettier --check --log-level warn .

format: install
	./node_modules/.bin/prettier --write --log-level warn .
	./node_modules/.bin/eslint --fix .

bench: build
	node dist/bench/run.js $(BENCH_ARGS)

migrate: build
	node dist/src/cli/migrate.js

# A new API key (admin by default; KEY_ARGS="create --name ci --scopes ingest", or "list", "revoke 3").
# Builds only when there is no build yet: `make build` here would delete dist/ under a running `make run`.
key: install
	@test -f dist/src/cli/key.js || $(MAKE) --no-print-directory build >&2
	@node dist/src/cli/key.js $(KEY_ARGS)

clean:
	rm -rf dist node_modules/.installed
