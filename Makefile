# Two commands do all the set-up on a fresh machine:
#   make run   installs into .venv and trains pick_cube in sim with the default config
#   make test  installs the dev extras (and Ray, for the fleet tests) and runs the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One torch thread per process unless the user says otherwise (2-core boxes run 10x slower with 2).
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: run test install install-dev sysdeps lint proto clean

# Headless MuJoCo rendering (MUJOCO_GL=egl) for the camera tests: Mesa's EGL, software-rendered.
# tmux: the terminal-keyboard teleop test types into a real terminal.
# xvfb, x11-apps (xwd): the record-demos camera window test opens it on a real X display and reads
# it back with a screenshot.
SYSDEPS := libegl1 libegl-mesa0 libgl1-mesa-dri libusb-1.0-0 tmux xvfb x11-apps
sysdeps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  dpkg -s $(SYSDEPS) >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSDEPS) >/dev/null); \
	else echo "sysdeps: not root or no apt-get; camera tests need $(SYSDEPS)"; fi

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: it resolves to the CPU wheel on disk here, so nothing pulls a CUDA build.
# GPU users: install the CUDA build of torch into .venv before `make run`; pip keeps it.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[dev,fleet]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/robot-rl train $(ARGS)

test: install-dev sysdeps
	$(BIN)/ruff check robot_rl drivers sim launch tests benchmarks
	MUJOCO_GL=egl $(BIN)/python -m pytest -q -ra --durations=15 $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check robot_rl drivers sim launch tests benchmarks
	$(BIN)/ruff format --check robot_rl drivers sim launch tests benchmarks

# The actor <-> learner wire protocol: regenerate protocol_pb2.py after editing protocol.proto.
proto: install-dev
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. robot_rl/runtime/net/protocol.proto

clean:
	rm -rf $(VENV) runs .pytest_cache
