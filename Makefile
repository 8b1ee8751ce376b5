PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test typecheck tools s3-clients js-clients bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml $(BIN)/python
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kmsgate serve --host 127.0.0.1 --port 8080 --data-dir ./data

typecheck: $(STAMP)
	$(BIN)/mypy

# rclone and s3cmd (Debian's packages) drive the S3 API in tests/s3front; their tests skip without them.
S3_CLIENTS := rclone s3cmd
# node and npm (Debian's nodejs and npm) run the AWS SDK for JavaScript v3 (@aws-sdk/client-kms,
# installed under .venv/js) in tests/kms/test_js_sdk.py, which skips without them.
JS_DIR := $(VENV)/js
JS_PACKAGES := @aws-sdk/client-kms@3

tools: s3-clients js-clients

s3-clients:
	@missing="$$(for t in $(S3_CLIENTS); do command -v $$t >/dev/null 2>&1 || printf '%s ' $$t; done)"; \
	missing="$${missing% }"; if [ -z "$$missing" ]; then exit 0; fi; \
	install="DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing"; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	   { sh -c "$$install" >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && sh -c "$$install" >/dev/null 2>&1; }; }; then \
	  echo "tools: installed $$missing"; \
	else \
	  echo "tools: $$missing not installed (needs root and apt-get); their S3 client tests will skip"; \
	fi

js-clients:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  install="DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm"; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	     { sh -c "$$install" >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && sh -c "$$install" >/dev/null 2>&1; }; }; then \
	    echo "tools: installed nodejs npm"; \
	  else \
	    echo "tools: node and npm not installed (needs root and apt-get); the JS SDK test will skip"; exit 0; \
	  fi; \
	fi; \
	if [ -d $(JS_DIR)/node_modules/@aws-sdk/client-kms ]; then exit 0; fi; \
	mkdir -p $(JS_DIR) && cd $(JS_DIR) && \
	{ npm install --no-audit --no-fund --silent $(JS_PACKAGES) >/dev/null 2>&1 && echo "tools: installed $(JS_PACKAGES) in $(JS_DIR)" || \
	  echo "tools: npm could not install $(JS_PACKAGES); the JS SDK test will skip"; }

test: typecheck tools
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build src/*.egg-info
