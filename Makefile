PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test typecheck tools bench-tools bench clean

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

# Debian packages a target needs, installed when missing and possible (root with apt-get);
# $(1) the packages, $(2) what happens without them.
define install_tools
	@missing="$$(for t in $(1); do command -v $$t >/dev/null 2>&1 || printf '%s ' $$t; done)"; \
	missing="$${missing% }"; if [ -z "$$missing" ]; then exit 0; fi; \
	install="DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing"; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	   { sh -c "$$install" >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && sh -c "$$install" >/dev/null 2>&1; }; }; then \
	  echo "tools: installed $$missing"; \
	else \
	  echo "tools: $$missing not installed (needs root and apt-get); $(2)"; \
	fi
endef

# rclone and s3cmd (Debian's packages) drive the S3 API in tests/s3front; their tests skip without them.
S3_CLIENTS := rclone s3cmd
# wrk is the benchmark's C load generator (the S3 and worker figures, the cross-checks).
BENCH_TOOLS := wrk

tools:
	$(call install_tools,$(S3_CLIENTS),their S3 client tests will skip)

bench-tools:
	$(call install_tools,$(BENCH_TOOLS),the figures measured with it are skipped)

test: typecheck tools
	$(BIN)/python -m pytest -q tests

bench: $(STAMP) bench-tools
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build src/*.egg-info
