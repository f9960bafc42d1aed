# Int-Ball stack: one entry point for developers, CI (.ci/run) and docker/.
# Works on a fresh Debian 12 with python3, gcc, cmake and make; apt packages that are
# missing are installed when run as root (CI), otherwise listed for you to install.
#
#   make install     venv + apt packages + pinned Python deps + ROS interfaces (ros_ws)
#                    + the web console bundle (npm ci + esbuild in teleop_ui/web)
#   make demo        install, then `intball up --ui --demo $(DEMO_ARGS)`: the graph, the console (URL and
#                    log-in tokens printed) and the example tour; the stack stays up until Ctrl-C
#   make test        install, then every test (all markers, slow included; two phases, see `test:`)
#   make test-fast   install, then tests not marked slow
#   make bench       install, then every bench/*.py
#   make lint        ruff check + ruff format --check
#   make typecheck   mypy on the ROS-free core
#   make lock        re-resolve requirements/lock.txt from requirements/{bootstrap,base,dev}.txt
#   make clean       remove build/ and the stamps (next install re-checks everything)
#   make distclean   clean, and remove the venv
#
# Every step leaves a stamp in the venv named after a hash of its inputs, so a second
# `make install` with nothing changed does no work.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := install
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
VENV ?= .venv
VENV_ABS := $(abspath $(VENV))
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check --require-virtualenv
BUILD_DIR ?= build
DEMO_ARGS ?=
PYTEST_ARGS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# Debian packages the project needs (add to this list, e.g. chromium for browser tests).
# ca-certificates: pip over https (Debian's pip uses the system CA store);
# python3-venv/python3-dev/g++: venv, Python.h and C++ for the rosidl build;
# libegl1/libegl-mesa0/libgl1-mesa-dri: PyBullet's EGL renderer on Mesa (no GPU needed);
# libgl1/libusb-1.0-0: shared libraries open3d's wheel links against (found with ldd);
# chromium: headless browser for the console's Playwright tests (never downloaded by Playwright).
APT_PACKAGES ?= ca-certificates python3-venv python3-dev g++ libegl1 libegl-mesa0 libgl1-mesa-dri \
  libgl1 libusb-1.0-0 chromium
# node + npm build the console bundle; installed from Debian only when `node` is missing.
NODE_APT_PACKAGES := nodejs npm

# ROS 2 interface packages under ros_ws/src, built in this order.
ROS_PACKAGES := tf2_msgs intball_interfaces

# Run-time environment of everything started from here (see intball_ros/env.py).
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export AMENT_PREFIX_PATH := $(VENV_ABS)$(if $(AMENT_PREFIX_PATH),:$(AMENT_PREFIX_PATH))
# A guard inherited from another venv's bootstrapped process would stop ours from
# setting its library path.
unexport _ROS_WHEELS_BOOTSTRAP_COMPLETE

hash = $(shell cat $(1) 2>/dev/null | sha256sum | cut -c1-16)
tree_hash = $(shell f=$$(find $(1) -type f -not -name '*.pyc' -not -path '*/__pycache__/*' | LC_ALL=C sort); \
  { echo "$$f"; cat $$f; } | sha256sum | cut -c1-16)

DEPS_HASH := $(call hash,requirements/bootstrap.txt requirements/lock.txt)
DEPS_STAMP := $(VENV)/.stamp-deps-$(DEPS_HASH)
EDITABLE_STAMP := $(VENV)/.stamp-editable-$(call hash,pyproject.toml)-$(DEPS_HASH)
ros_stamp = $(VENV)/.stamp-ros-$(1)-$(call tree_hash,ros_ws/src/$(1) ros_ws/fix_wheel_cmake.py)-$(DEPS_HASH)
ROS_STAMPS := $(foreach p,$(ROS_PACKAGES),$(call ros_stamp,$(p)))

# Web console: teleop_ui/web (package.json + lock) -> teleop_ui/intball_teleop/static (git-ignored).
WEB_DIR := teleop_ui/web
WEB_OUT := teleop_ui/intball_teleop/static
WEB_STAMP := $(WEB_OUT)/.stamp-$(call tree_hash,$(WEB_DIR)/src $(WEB_DIR)/index.html $(WEB_DIR)/build.mjs \
  $(WEB_DIR)/package.json $(WEB_DIR)/package-lock.json)

.PHONY: install apt venv pydeps deps ros_ws web demo test test-fast bench lint typecheck lock clean distclean

install: deps ros_ws web

# --- Debian packages --------------------------------------------------------------------
apt:
	@missing=""; \
	if ! command -v dpkg-query >/dev/null; then \
	  echo "apt: no dpkg-query (not Debian?); make sure these are installed: $(APT_PACKAGES)"; exit 0; \
	fi; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "apt: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "apt: not root, not installing. Please run:  sudo apt-get install$$missing"; \
	fi

# --- Python venv and pinned dependencies ------------------------------------------------
venv: $(PY)
$(PY): | apt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and \
	  f"need Python 3.11 (the ROS wheels are cp311), {sys.executable} is {sys.version.split()[0]}; set PYTHON=")'
	$(PYTHON) -m venv $(VENV)

# pydeps: third-party packages only (needs no project source; docker layer caching).
pydeps: $(DEPS_STAMP)
deps: $(EDITABLE_STAMP)
$(DEPS_STAMP): | $(PY)
	$(PIP) install --quiet -r requirements/bootstrap.txt
	$(PIP) install --quiet -r requirements/lock.txt
	rm -f $(VENV)/.stamp-deps-* && touch $@

# Editable install of the four import packages + the `intball` console script.
$(EDITABLE_STAMP): $(DEPS_STAMP)
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.stamp-editable-* && touch $@

# --- ROS 2 interface packages (CMake/rosidl, installed into the venv) --------------------
ros_ws: $(ROS_STAMPS)

define ROS_RULE
$(call ros_stamp,$(1)): $(DEPS_STAMP) | $(PREV_ROS_STAMP)
	$(PY) ros_ws/fix_wheel_cmake.py --prefix $(VENV_ABS)
	rm -rf $(BUILD_DIR)/$(1)
	cmake -S ros_ws/src/$(1) -B $(BUILD_DIR)/$(1) -DCMAKE_INSTALL_PREFIX=$(VENV_ABS) \
	  -DCMAKE_PREFIX_PATH=$(VENV_ABS) -DPython3_EXECUTABLE=$(VENV_ABS)/bin/python \
	  -DBUILD_TESTING=OFF --log-level=WARNING > /dev/null
	cmake --build $(BUILD_DIR)/$(1) -j $(JOBS) > $(BUILD_DIR)/$(1).build.log 2>&1 \
	  || { tail -n 40 $(BUILD_DIR)/$(1).build.log; exit 1; }
	cmake --install $(BUILD_DIR)/$(1) > /dev/null
	rm -f $(VENV)/.stamp-ros-$(1)-* && touch $$@
	@echo "ros_ws: built and installed $(1)"
endef
PREV_ROS_STAMP :=
$(foreach p,$(ROS_PACKAGES),$(eval $(call ROS_RULE,$(p)))$(eval PREV_ROS_STAMP := $(call ros_stamp,$(p))))

# --- Web console (npm ci + esbuild; rebuilt when its sources change) --------------------
web: $(WEB_STAMP)
$(WEB_STAMP):
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "web: installing $(NODE_APT_PACKAGES)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $(NODE_APT_PACKAGES); \
	  else \
	    echo "web: node and npm are needed to build the console; please run:  sudo apt-get install $(NODE_APT_PACKAGES)"; \
	    exit 1; \
	  fi; \
	fi
	cd $(WEB_DIR) && npm ci --no-audit --no-fund --loglevel=error && node build.mjs
	rm -f $(WEB_OUT)/.stamp-* && touch $@

# --- Run -----------------------------------------------------------------------------
demo: install
	$(VENV)/bin/intball up --ui --demo $(DEMO_ARGS)

# Two phases (the machines have 2 cores): the tests that start ROS graphs or rclpy nodes or
# drive Chromium (markers `ros`, `browser`: wall-clock flights and timeouts) run one at a time;
# all others in TEST_WORKERS pytest-xdist workers, a module per worker at a time. Both phases
# always run; the exit status is the worst of the two (5, "no tests selected", counts as passed:
# PYTEST_ARGS may select tests of one phase only).
TEST_WORKERS ?= 2
define pytest_two_phases
	@status=0; \
	$(PY) -m pytest tests -m "not ros and not browser$(1)" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS) \
	  || { rc=$$?; [ $$rc -eq 5 ] || status=$$rc; }; \
	$(PY) -m pytest tests -m "(ros or browser)$(1)" $(PYTEST_ARGS) \
	  || { rc=$$?; [ $$rc -eq 5 ] || status=$$rc; }; \
	exit $$status
endef

test: install
	$(call pytest_two_phases,)

test-fast: install
	$(call pytest_two_phases, and not slow)

bench: install
	@shopt -s nullglob; files=(bench/*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "bench: no bench/*.py yet"; exit 0; fi; \
	for f in "$${files[@]}"; do echo "== $$f"; $(PY) "$$f"; done

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: deps
	$(VENV)/bin/mypy intball_nav

lock: $(PY)
	$(PIP) install --quiet -r requirements/bootstrap.txt
	$(PY) requirements/lock.py

clean:
	rm -rf $(BUILD_DIR) $(VENV)/.stamp-*

distclean: clean
	rm -rf $(VENV)
