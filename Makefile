# tapecrypt.ekm -- one entry point for set-up, tests, the demo and benchmarks.
# `make demo` and `make test` install everything they need on a fresh Debian machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEB_PACKAGES := openjdk-17-jdk-headless openssh-server openssh-client rsync shellcheck iproute2 python3-cryptography

.PHONY: all help deps system-deps venv test unit demo demo-stop bench clean lint sanity

all: help

help:
	@echo "make demo   - provision a primary and a redundant EKM (stand-in) under demo/ and show the guide's procedures"
	@echo "make demo-stop - stop the two stand-in EKM servers that make demo leaves running"
	@echo "make test   - every test stage (unit, JDK interop, sanity, integration, lint, Molecule) on every supported"
	@echo "              ansible-core (2.17-2.21; builds .build/venv/ansible-core-2.X); ends 'N passed, N failed'"
	@echo "make bench  - performance figures (module vs keytool, inventory of 10000 keys, sync at scale)"
	@echo "make unit   - only the fast pytest unit tests"

# Debian packages: a JDK (keytool, javac) for interop tests and the stand-in EKM, sshd for the lab hosts.
system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (run as root, or install them)"; exit 1; fi; \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

venv: $(STAMP)

deps: system-deps venv

test: deps
	$(VPY) tests/run_all.py $(if $(STAGES),--stages $(STAGES),)

unit: venv
	$(VPY) -m pytest -q tests/unit

demo: deps
	$(VPY) tests/demo/run_demo.py

# Each demo server's own control script; a missing demo/ stops nothing.
demo-stop:
	@for ctl in demo/*/bin/ekmctl; do if [ -x "$$ctl" ]; then echo "$$ctl stop"; "$$ctl" stop || exit 1; fi; done

bench: deps
	$(VPY) tests/bench/bench.py

clean: demo-stop
	rm -rf .build tests/output demo
