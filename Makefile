# The two commands of the README: `make test` and `make demo`.
# Each creates .venv and installs the package with what it needs (and, as root, the Debian
# packages it needs): the demo only the `simulator` extra and PortAudio, the tests the test
# tools and the real peers they talk to.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin

# pip's own deprecation warnings must not fail an install run under PYTHONWARNINGS=error.
PIP := PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: test demo lint typecheck pytest test-minimum system-deps demo-system-deps venv demo-venv clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "avsclient needs Python >= 3.11 on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(BIN)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(PIP) -e '.[simulator,pytest,test,wakeword]'
	@touch $@ $(BIN)/.demo-installed

$(BIN)/.demo-installed: setup.cfg pyproject.toml | $(BIN)/python
	$(PIP) -e '.[simulator]'
	@touch $@

venv: $(BIN)/.installed

demo-venv: $(BIN)/.demo-installed

system-deps:
	@bash scripts/install-system-deps.sh

demo-system-deps:
	@bash scripts/install-system-deps.sh demo

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy --strict avsclient

pytest: venv
	$(BIN)/python -m pytest

# The declared lower bounds, tested: the oldest allowed versions (constraints/minimum.txt) in
# their own venv, running the tests of the parts that depend on them (h2, httpx, multipart,
# miniaudio, numpy, pytest-asyncio).
MIN_VENV := .venv-minimum
MIN_TESTS := tests/http2 tests/multipart tests/simulator tests/auth tests/audio/test_mp3.py \
	tests/client/test_connect.py tests/client/test_voice_turn.py

test-minimum:
	@test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	PYTHONWARNINGS=ignore $(MIN_VENV)/bin/python -m pip install --quiet \
		--disable-pip-version-check -c constraints/minimum.txt -e '.[pytest,test]'
	$(MIN_VENV)/bin/python -m pytest -q -m "not system" $(MIN_TESTS)

test: system-deps venv lint typecheck pytest test-minimum

# One voice turn against the embedded AVS simulator, with the bundled utterance: the events and
# directives as they pass, the latency figures, and the reply played through the sound server
# (started when installed but not running) or written to reply.wav, saying why.
demo: demo-system-deps demo-venv
	@bash scripts/demo.sh

clean:
	rm -rf $(VENV) $(MIN_VENV) build dist *.egg-info
