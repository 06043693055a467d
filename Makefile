# The two commands of the README: `make demo` and `make test`.
# Everything they need (Python tools, Debian packages) is installed on the way.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTEST := $(BIN)/python -m pytest

.PHONY: help venv demo test lint docs sanity unit property fuzz integration policy molecule ee compat bench clean

help:
	@echo "make demo   roll a post-auth script out to an emulated fleet of five servers, canary first"
	@echo "make test   run every check CI runs (lint, sanity, unit, property, integration, policy tests, Molecule)"
	@echo "make docs   build the docsite (plugin and role pages, the guides) into .build/docs/build/html"
	@echo "make ee     build the execution environment image (ansible-builder, Podman) and deploy with it (ansible-navigator)"
	@echo "make fuzz   the property tests with 10,000 generated inventories"
	@echo "make bench  run the benchmarks in bench/ (reports in bench/results/)"
	@echo "make clean  remove the virtual environment and everything generated"

$(VENV)/.installed: requirements-dev.txt
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || tests/bin/system-packages python3-venv
	$(PYTHON) -m venv $(VENV)
	@# python-ldap builds from source: a compiler, the LDAP/SASL headers and Python's own headers
	tests/bin/system-packages gcc libldap2-dev libsasl2-dev
	@$(PYTHON) -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
	  || tests/bin/system-packages python3-dev
	$(BIN)/pip install --quiet --disable-pip-version-check --requirement requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

demo: venv
	demo/run

test: lint docs sanity unit property compat integration policy molecule ee

lint: venv
	ruff check .
	yamllint --strict .
	ansible-lint
	antsibull-changelog lint
	@# the roles' variable tables are what meta/argument_specs.yml says (tests/bin/role_docs.py writes them)
	$(BIN)/python tests/bin/role_docs.py --check
	@# the documentation as antsibull-docs reads it (markup, references to modules, roles and options)
	cd .collections/ansible_collections/ovpnas/fleet && ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.collections \
	  antsibull-docs lint-collection-docs --plugin-docs .

# the docsite as antsibull-docs and Sphinx build it; a warning fails, except the named ones that
# only mean there is no network (tests/bin/docs)
docs: venv
	tests/bin/docs

sanity: venv
	tests/bin/sanity

# the collection's unit tests and the emulator's own (tests/emulator is a package, installed in .venv)
unit: venv
	$(PYTEST) tests/unit tests/emulator/tests

# generated inventories through the real validation and template (1,000 here, 10,000 in fuzz)
property: venv
	$(PYTEST) tests/property

fuzz: venv
	FUZZ_EXAMPLES=10000 $(PYTEST) -s tests/property

# Every ansible-core release meta/runtime.yml admits (">=2.17.0"): the pinned one (requirements-dev.txt)
# runs everything; the older ones run ansible-test sanity and the unit tests, each in .venv-core/VERSION.
# Their sanity runs the tests whose verdict depends on the release (documentation schemas, imports,
# runtime metadata...): code style (pylint, pep8) is judged once, by the pinned release. Their unit
# tests run side by side, one process each.
CORE_VERSIONS := 2.17.14 2.18.19

compat: venv
	@for version in $(CORE_VERSIONS); do \
	  bin=$$(tests/bin/core-venv $$version); \
	  echo "ansible-core $$version: sanity"; PATH=$$bin:$$PATH tests/bin/sanity --skip-test pylint --skip-test pep8; \
	done
	@mkdir -p .build; pids=(); \
	for version in $(CORE_VERSIONS); do \
	  bin=$$(tests/bin/core-venv $$version); \
	  PATH=$$bin:$$PATH $$bin/python -m pytest -q -p no:cacheprovider tests/unit > .build/compat-unit-$$version.log 2>&1 & \
	  pids+=($$!); \
	done; \
	status=0; set -- $(CORE_VERSIONS); \
	for pid in "$${pids[@]}"; do \
	  wait "$$pid" && rc=0 || rc=$$?; \
	  echo "ansible-core $$1: unit tests (exit $$rc)"; tail -n 25 ".build/compat-unit-$$1.log"; \
	  [[ $$rc -eq 0 ]] || status=1; shift; \
	done; \
	exit $$status

integration: venv
	$(PYTEST) tests/integration

# rendered scripts driven through the emulator's authcli against real slapd and FreeRADIUS
# (the tests install the Debian packages, start private instances on loopback and stop them)
policy: venv
	$(PYTEST) tests/policy

# the Molecule scenarios of molecule/ on Podman containers (tests/bin/images builds the Debian
# bookworm and trixie images once; tests/bin/molecule runs one scenario by hand)
molecule: venv
	$(PYTEST) tests/molecule

# the collection in an execution environment: tests/bin/ee builds localhost/ovpnas-fleet-ee:VERSION with
# ansible-builder 3 on the debootstrap base (no registry, no Galaxy) and rolls the script out to two
# emulated servers with ansible-navigator, twice (`make integration` checks only the build context)
ee: venv
	OVPNAS_EE=1 $(PYTEST) tests/integration/test_ee.py

bench: venv
	$(BIN)/pip install --quiet --disable-pip-version-check --requirement bench/requirements.txt
	$(BIN)/python bench/fleet.py
	$(BIN)/python bench/script.py
	$(BIN)/python bench/ssh.py

clean:
	rm -rf $(VENV) .venv-core .build .demo tests/output .pytest_cache .ruff_cache
	@# the images stay in Podman's storage: podman rmi --ignore localhost/ovpnas-fleet-host:{bookworm,trixie} localhost/ovpnas-fleet-ee:0.1.0
