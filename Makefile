# multusd — developer entry points. `make test` works on a fresh Debian/Ubuntu machine as root:
# it installs the system packages the tests drive (real CNI plugins, iproute2, containerd …),
# creates .venv, installs multusd with its test extra, runs the linters and the whole suite.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
APT_PACKAGES := containernetworking-plugins iproute2 iptables util-linux coreutils openssl \
                busybox-static containerd runc umoci python3-venv

.PHONY: test lint unit deps venv clean demo

test: deps venv lint
	$(BIN)/pytest

# The README's first command: a throwaway K3s-like node in namespaces, one pod with two networks
# through the real shim and daemon, then a verified cleanup (root; the host's network is untouched).
# Extra options: make demo DEMO_ARGS='--keep' (or --workdir DIR).
demo: deps venv
	$(BIN)/multusd demo $(DEMO_ARGS)

# Only the fast, root-free part of the suite.
unit: venv
	$(BIN)/pytest tests/unit

lint: venv
	$(BIN)/ruff check multusd tests $(wildcard bench)
	$(BIN)/ruff format --check multusd tests $(wildcard bench)
	$(BIN)/mypy

# System packages: skipped when all are present, so repeated runs stay offline and fast.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v kubectl >/dev/null 2>&1 || missing="$$missing kubernetes-client"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
