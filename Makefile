# Two commands set up a fresh machine from nothing (see README.md):
#   make demo   train + denoise the bundled 2D phantom headless, write TIFF + PNG, print PSNR
#   make test   the whole test suite (GUI tests under a virtual X server)
# Both create .venv when it is missing, with torch pinned by constraints.txt to the local
# CPU wheel; a stamp file makes reruns quick (it is refreshed when pyproject.toml or
# constraints.txt change).

PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
# the CPU build of torch lies in /opt/wheels on these machines
FIND_LINKS  := $(if $(wildcard /opt/wheels/*.whl),--find-links /opt/wheels,)
XVFB_RUN    := xvfb-run -a -s "-screen 0 1600x1000x24"
PYTEST_ARGS ?= -ra
DEMO_ARGS   ?=

.PHONY: venv demo test lint system-deps clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check $(FIND_LINKS) \
		-c constraints.txt -e ".[dev]"
	@touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/napari-selfdenoise demo $(DEMO_ARGS)

system-deps:
	@bash scripts/install-system-deps.sh

test: $(STAMP) system-deps
	@if command -v xvfb-run >/dev/null 2>&1; then \
		$(XVFB_RUN) $(PY) -m pytest $(PYTEST_ARGS); \
	else \
		echo "xvfb-run not found: GUI tests will skip"; \
		$(PY) -m pytest $(PYTEST_ARGS); \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check --select E4,E7,E9,F src tests

clean:
	rm -rf $(VENV) build dist demo_output .pytest_cache .ruff_cache
