# llm-exporter — every target sets itself up on a fresh Debian machine with Python 3.11.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# command -> Debian package, for everything the tests run for real
DEBIAN_TOOLS := prometheus:prometheus promtool:prometheus \
  prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager \
  docker-compose:docker-compose chromium:chromium

.PHONY: demo test lint venv system-deps bench soak clean

demo: $(STAMP) ## simulator + exporter + synthetic traffic for all eight providers
	$(BIN)/llm-exporter demo $(if $(LISTEN),--listen $(LISTEN))

test: $(STAMP) system-deps ## every test, lint included
	$(BIN)/ruff check exporter tests bench
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check exporter tests bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "python venv module missing: installing python3-venv" >&2; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

system-deps: ## Debian's Prometheus, Alertmanager, docker-compose (parser only) and Chromium
	@pkgs=""; for pair in $(DEBIAN_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null || pkgs="$$pkgs $${pair#*:}"; done; \
	pkgs=$$(echo $$pkgs | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$${pkgs// /}" ]; then \
	  echo "installing Debian packages:$$pkgs" >&2; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    $$pkgs >/dev/null; \
	fi

BENCH_TOOLS := prometheus-pushgateway:prometheus-pushgateway \
  prometheus-blackbox-exporter:prometheus-blackbox-exporter curl:curl
BENCHES := bench_scrape bench_ingest bench_client bench_probe bench_footprint bench_alert

bench: $(STAMP) system-deps ## every benchmark against its peer, then docs/performance.md
	@$(MAKE) --no-print-directory system-deps DEBIAN_TOOLS="$(BENCH_TOOLS)"
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	rm -rf bench/results
	@set -e; for b in $(BENCHES); do \
	  echo "== $$b" >&2; timeout 600 $(BIN)/python bench/$$b.py; done
	@test ! -f $(SOAK_RESULT) || cp $(SOAK_RESULT) bench/results/
	$(BIN)/python bench/report.py

SOAK_RESULT := docs/soak-result.json

soak: $(STAMP) ## bounded loopback soak; MINUTES=2 for a short one
	BENCH_RESULTS=$(CURDIR)/bench/soak-results $(BIN)/python bench/soak.py \
	  --minutes $(or $(MINUTES),10)
	cp bench/soak-results/soak.json $(SOAK_RESULT)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
