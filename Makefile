# Everything a fresh machine needs: `make demo` (set up + run the main job) and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
WDSR   := $(BIN)/wdsr

.PHONY: install demo test test-quick mutate lint deadcode bench bundled-onnx report-screenshot clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# A normal (non-editable) install, so tests and the demo exercise what users get from pip.
install: $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check ".[dev,onnx,openvino,video,heif]"

demo: install
	bash scripts/demo.sh $(WDSR)

# Two test files at a time (pytest-xdist): one test alone keeps ~1 of 2 cores busy (it waits on
# `wdsr` subprocesses); --dist loadfile keeps a file's module fixtures (tiny runs) in one worker.
TEST_JOBS ?= 2
PYTEST := cd tests && ../$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_JOBS) --dist loadfile

# Lint and unused code first (seconds): CI runs `make test`, so they are checked there too.
test: install lint deadcode
	$(PYTEST) ..

# The inner loop: everything but the tests marked slow (training runs, several ranks, kills).
test-quick: install
	$(PYTEST) -m "not slow" ..

# Mutation testing of the modules where a silent bug loses data or gives wrong numbers
# (docs/mutation.md): mutmut 2 in a copy of the tree per module, two modules at a time.
# MODULES="fileio metrics" runs some of them; the table is printed at the end.
MUTATE_JOBS ?= 2
mutate: install
	$(BIN)/python scripts/mutate.py --jobs $(MUTATE_JOBS) $(MODULES)

lint: install
	$(BIN)/ruff check wdsr_cli tests scripts

# Unused code (vulture at 60%); what only frameworks or tests read is named in the allow list.
deadcode: install
	$(BIN)/vulture wdsr_cli scripts/vulture_allow.py --min-confidence 60

bench: install
	$(BIN)/python scripts/bench.py

# Render a report of the bundled x2 model in headless Chromium and check the picture
# (needs Debian's chromium; `make test` never does this). README=scripts/report.png updates
# the image shown in docs/evaluate.md "Report".
report-screenshot: install
	$(BIN)/python scripts/report_screenshot.py --wdsr $(WDSR) $(if $(README),--readme $(README))

# Re-make the ONNX forms of the bundled weights after the .ckpt files change.
bundled-onnx: install
	bash scripts/bundle_onnx.sh $(WDSR)

clean:
	rm -rf $(VENV) build *.egg-info demo runs report-check .mutmut-work
