# The two commands of the README: `make test` and `make demo`.
# Each creates .venv, installs the package with the simulator and test extras, and (as root)
# the Debian packages it needs.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: test demo lint typecheck pytest system-deps venv clean

$(BIN)/.installed: setup.cfg pyproject.toml
	@test -n "$(PYTHON)" || { echo "avsclient needs Python >= 3.11 on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[simulator,test,wakeword,media]'
	@touch $@

venv: $(BIN)/.installed

system-deps:
	@bash scripts/install-system-deps.sh

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy --strict avsclient

pytest: venv
	$(BIN)/python -m pytest

test: system-deps venv lint typecheck pytest

# One voice turn against the embedded AVS simulator, with the bundled utterance: the events and
# directives as they pass, the latency figures, and the reply played (or written to reply.wav
# when there is no audio output device).
demo: system-deps venv
	$(BIN)/avsclient talk --simulator --once --input avsclient/assets/utterance.wav

clean:
	rm -rf $(VENV) build *.egg-info
