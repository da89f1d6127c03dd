# The two commands a newcomer needs: `make run` and `make test`. Everything installs into .venv/ on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
UV := $(VENV)/bin/uv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synced
PROTO_SRC := protos/orderengine/v1/order_service.proto
BUF := node_modules/.bin/buf
WEB := client/web
WEB_DEPS := $(WEB)/node_modules/.installed

.PHONY: run test fuzz lint typecheck buflint protos check-protos unit bench install clean web web-deps

install: $(STAMP)

$(STAMP): pyproject.toml uv.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(VENV)/bin/pip install --quiet --disable-pip-version-check 'uv==0.13.9'
	$(UV) sync --frozen --inexact --quiet
	@touch $(STAMP)

run: install
	$(VENV)/bin/orderengine dev

test: install lint typecheck buflint check-protos web-deps
	$(PY) -m pytest -q -p no:cacheprovider

# Minutes of hostile input on every interface: FUZZ_FACTOR (default 10) times the bounded, seeded budgets that
# `make test` runs, with fresh inputs each run; prints what it tried per interface and hypothesis's statistics.
fuzz: install
	FUZZ=long $(PY) -m pytest -q -p no:cacheprovider tests/hostile --hypothesis-show-statistics

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

# buf comes from the npm registry; without npm both checks are skipped, loudly. `buf breaking` holds the .proto
# to the previous commit's (the contract only grows); a clone without that commit (shallow) skips it, loudly.
buflint:
	@if [ ! -x $(BUF) ]; then \
		if ! command -v npm >/dev/null 2>&1; then \
			echo "SKIPPED buf lint and buf breaking: npm is not installed, so @bufbuild/buf cannot be fetched"; exit 0; \
		fi; \
		npm install --no-save --no-audit --no-fund --silent @bufbuild/buf@1 >/dev/null || exit 1; \
	fi; \
	$(BUF) lint && echo "buf lint: ok" || exit 1; \
	if git rev-parse --verify --quiet 'HEAD~1^{commit}' >/dev/null 2>&1; then \
		$(BUF) breaking --against '.git#ref=HEAD~1' && echo "buf breaking against HEAD~1: ok" || exit 1; \
	else echo "SKIPPED buf breaking: this clone has no previous commit to compare with (shallow or first commit)"; fi

# The TypeScript example's packages, which the gRPC-Web tests' clients also come from: from the npm registry as
# package-lock.json pins them, once per checkout (again when the lock changes). Without npm those tests fail.
web-deps: $(WEB_DEPS)

$(WEB_DEPS): $(WEB)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm is not installed: the gRPC-Web tests will fail (SKIP_WEB_TESTS=1 skips them)"; fi

# Generates the typed code from the .proto and bundles the example into client/web/dist/.
web: web-deps
	cd $(WEB) && npm run build

protos: install
	PATH=$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -Iprotos --python_out=protos --grpc_python_out=protos \
		--mypy_out=protos --mypy_grpc_out=protos $(PROTO_SRC)

# Regenerates into a scratch folder and compares with what is committed.
check-protos: install
	@tmp=$$(mktemp -d) && export PATH=$(VENV)/bin:$$PATH && \
	PATH=$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -Iprotos --python_out=$$tmp --grpc_python_out=$$tmp \
		--mypy_out=$$tmp --mypy_grpc_out=$$tmp $(PROTO_SRC) && \
	for f in $$(cd $$tmp && find . -type f); do \
		cmp -s $$tmp/$$f protos/$$f || { echo "stale generated code: protos/$$f (run 'make protos')"; rm -rf $$tmp; exit 1; }; \
	done; rm -rf $$tmp; echo "generated code is fresh"

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .data node_modules .mypy_cache .ruff_cache $(WEB)/node_modules $(WEB)/dist $(WEB)/src/gen
