# Two commands set up a fresh machine from nothing (see README.md):
#   make demo   train + denoise the bundled 2D phantom headless, write TIFF + PNG, print PSNR
#   make test   the whole test suite (GUI tests under a virtual X server)
#   make perf   the wall-clock tests only;  make gpu-check  every CUDA check and figure
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

.PHONY: venv demo test perf gpu-check lint system-deps clean

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

# wall-clock tests (perf marker): excluded from `make test`, they need a quiet machine
perf: $(STAMP) system-deps
	@if command -v xvfb-run >/dev/null 2>&1; then \
		$(XVFB_RUN) $(PY) -m pytest -m perf --perf $(PYTEST_ARGS); \
	else \
		$(PY) -m pytest -m perf --perf $(PYTEST_ARGS); \
	fi

# every CUDA test and figure in one command (under 5 minutes; fails at once without CUDA).
# GPU_PYTHON: an interpreter whose torch is a CUDA build (the venv pins the CPU wheel)
GPU_PYTHON  ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON))
gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py $(GPU_CHECK_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check --select E4,E7,E9,F src tests

clean:
	rm -rf $(VENV) build dist demo_output .pytest_cache .ruff_cache gpu_check.txt
