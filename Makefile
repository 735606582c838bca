# botlab: `make demo` runs the main job on the virtual lab, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LAB    ?= lab

.PHONY: install host-packages test test-unit test-lab lint demo demo-stop bench clean

install: $(STAMP) host-packages

# The virtual lab's hosts run Debian's OpenSSH server (and sudo, as MAAS images have it) in
# network namespaces; installed when root, else lab hosts are off and their tests skip.
host-packages:
	@if [ -x /usr/sbin/sshd ] && command -v sudo >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing openssh-server and sudo for the lab's hosts"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq openssh-server sudo >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq openssh-server sudo >/dev/null; }; \
	else echo "note: lab hosts need openssh-server and sudo (apt-get install openssh-server sudo, as root)"; fi
	@# kubectl, as operators run it against the lab's Kubernetes API (Debian's when the machine has none)
	@if ! command -v kubectl >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null 2>&1 || true; fi

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q -ra

test-unit: install
	$(BIN)/python -m pytest -q -ra tests/unit

test-lab: install
	$(BIN)/python -m pytest -q -ra -m lab

lint: install
	$(BIN)/ruff check botlab tests
	$(BIN)/mypy botlab

demo: install
	BIN=$(BIN) LAB=$(LAB) bash scripts/demo.sh

bench: install
	@# ansible-core and pyinfra (bench/fanout.py compares botlab with them) go to a venv of their own,
	@# so their dependencies never disturb botlab's pinned ones in $(VENV).
	test -x .venv-bench/bin/python || { $(PYTHON) -m venv .venv-bench && echo '*' > .venv-bench/.gitignore; }
	cmp -s bench/requirements.txt .venv-bench/.installed || { .venv-bench/bin/python -m pip install -q \
	  -r bench/requirements.txt && cp bench/requirements.txt .venv-bench/.installed; }
	BENCH_VENV=.venv-bench $(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-bench build *.egg-info .mypy_cache .ruff_cache .pytest_cache bench/results
