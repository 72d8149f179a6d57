# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
# Needs: python3 (>= 3.11), a JDK 17+ and Maven (the broker jars come from Maven Central).

PYTHON ?= python3
VENV   := .venv
ENGINE := $(VENV)/bin/engine
STAMP  := $(VENV)/.installed

# `make test` runs its own broker on other ports and data, so a demo broker on 9092
# can keep running beside it.
TEST_ENV := ENGINE_DATA_DIR=$(CURDIR)/.engine/test ENGINE_BROKER_PORT=19092 \
	ENGINE_BROKER_CONTROLLER_PORT=19093 ENGINE_KAFKA_BOOTSTRAP=127.0.0.1:19092

# Debian packages the tests drive for real: Hamlib's rigctld (PTT over TCP), espeak-ng
# (Mandarin voice for PoC call-outs), and Prometheus with promtool (rules, scrapes).
# Chromium (with a CJK font) runs the console's browser test, driven by Playwright.
APT_PACKAGES := libhamlib-utils espeak-ng prometheus chromium fonts-wqy-zenhei
APT_BINARIES := rigctld espeak-ng promtool prometheus chromium
# kubeconform validates deploy/k8s offline against the schemas of kubernetes-validate.
KUBECONFORM := github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0
# compose-spec: compose-go's loader (what `docker compose config` runs) checks
# deploy/compose.yaml offline; its command installs as `cmd`, renamed compose-spec.
COMPOSE_SPEC := github.com/compose-spec/compose-go/v2/cmd@v2.16.2
GOBIN_DIR := $(shell go env GOPATH 2>/dev/null)/bin

# The rules engine's hot modules compiled by mypyc, in place (tools/compile_rules.py).
NATIVE_SRC   := engine/rules/decide.py engine/rules/nearby.py engine/rules/availability.py
NATIVE_STAMP := engine/rules/.native-built

# Leaflet for the web console, vendored from the npm registry at build time (the console
# fetches nothing at run time).
CONSOLE_VENDOR := engine/api/console/vendor/leaflet.js

.PHONY: all venv native console sysdeps demodeps demo test chaos bench lint broker-start broker-stop topics schemas clean

all: test

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(STAMP)

$(NATIVE_STAMP): $(STAMP) $(NATIVE_SRC) tools/compile_rules.py
	$(VENV)/bin/python tools/compile_rules.py
	@touch $@

native: $(NATIVE_STAMP)

$(CONSOLE_VENDOR): tools/vendor_console.sh
	tools/vendor_console.sh

console: $(CONSOLE_VENDOR)

sysdeps:
	@missing=""; for b in $(APT_BINARIES); do command -v $$b >/dev/null || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (Debian: $(APT_PACKAGES))"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi
	@command -v kubeconform >/dev/null || test -x $(GOBIN_DIR)/kubeconform || \
		{ echo "installing kubeconform ($(KUBECONFORM))"; go install $(KUBECONFORM); }
	@command -v compose-spec >/dev/null || test -x $(GOBIN_DIR)/compose-spec || \
		{ echo "installing compose-spec ($(COMPOSE_SPEC))"; tmp=$$(mktemp -d) && \
		GOBIN=$$tmp go install $(COMPOSE_SPEC) && mkdir -p $(GOBIN_DIR) && \
		mv $$tmp/cmd $(GOBIN_DIR)/compose-spec; rm -rf $$tmp; }

broker-start: venv
	$(ENGINE) broker start

broker-stop: venv
	$(ENGINE) broker stop

topics: broker-start
	$(ENGINE) topics ensure

# The main job on the embedded default: local Kafka, the Tangxia sample data, simulated
# handsets. `engine demo` starts the broker if none answers, then the handset simulator,
# the radio gateway, the worker and the API with its console; plays the default scenario
# (scenarios/tangxia-afternoon.yaml) and prints the summary; keeps running until Ctrl-C,
# which stops everything it started (the broker too, if it started it).
# `make demo DEMO_ONCE=1` stops after the summary.
demo: venv native console demodeps
	$(ENGINE) demo$(if $(DEMO_ONCE), --once)

# The demo's one system package: espeak-ng speaks the PoC group calls (without it every
# voice call fails, and the demo's decisions are not those of a real run).
demodeps:
	@command -v espeak-ng >/dev/null || { echo "installing espeak-ng (Debian)"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null; }

test: venv native console sysdeps
	@set -e; export $(TEST_ENV); \
	$(ENGINE) broker start; \
	trap '$(ENGINE) broker stop' EXIT; \
	$(ENGINE) topics ensure; \
	$(VENV)/bin/python -m pytest

# Gateway chaos (issue 14): 10 SIGKILLs between "modem accepted" and "offset committed",
# 10 unplugs and 3 module reboots during fan-outs, garbled bytes and bad records, against
# a real `engine gateway`, its own broker on free ports and a pty. Prints the table
# (README) and writes bench/results/chaos.json. `make test` runs a short version.
chaos: venv native
	$(VENV)/bin/python bench/chaos.py

# The worker beside a bare aiokafka relay (raise -> decision at 100, 500, 1,000/s for
# 60 s; backlog drain), eight towns over one and two workers, worker memory; each on a
# broker of its own, results in bench/results/*.json (about 20 minutes).
bench: venv native
	$(VENV)/bin/python bench/worker.py
	$(VENV)/bin/python bench/scaleout.py
	$(VENV)/bin/python bench/memory.py

lint: venv
	$(VENV)/bin/ruff check engine tests bench tools
	$(VENV)/bin/ruff format --check engine tests bench tools
	$(VENV)/bin/mypy

schemas: venv
	$(ENGINE) schemas export

clean:
	-$(ENGINE) broker stop
	-@export $(TEST_ENV); $(ENGINE) broker stop
	rm -rf .engine build engine/rules/*.so $(NATIVE_STAMP) engine/api/console/vendor
