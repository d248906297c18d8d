# fastlb: `make run` and `make test` do all set-up on a fresh Debian 12 machine
# with Python 3.11: a virtual environment in .venv, the Cython extension built
# in place, then the balancer or the tests.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.deps-stamp
SOURCES := $(wildcard fastlb/*.pyx fastlb/*.pxd fastlb/_cy/*.pyx fastlb/_cy/*.pxi fastlb/_cy/*.h \
                     fastlb/proxy/*.pyx fastlb/proxy/*.pxd fastlb/proxy/_cy/*.pyx)

.PHONY: run test bench debug build lint clean sysdeps browser

# Debian packages the build needs: a C compiler, Python headers and venv.
# Installed only when missing (CI and fresh machines run as root).
APT_PKGS := gcc python3-dev python3-venv
sysdeps:
	@if ! command -v cc >/dev/null || ! $(PYTHON) -c "import ensurepip, venv, sysconfig, os, sys; \
		sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"; then \
		echo "installing $(APT_PKGS)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PKGS); \
	fi

# Headless Chromium and its WebDriver for the status page test
# (tests/test_admin.py).  Installed only when chromedriver is missing.
BROWSER_PKGS := chromium chromium-driver
browser:
	@if ! command -v chromedriver >/dev/null; then \
		echo "installing $(BROWSER_PKGS)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BROWSER_PKGS); \
	fi

$(STAMP): pyproject.toml
	$(MAKE) --no-print-directory sysdeps
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel "Cython>=3.0.10,<4"
	$(PIP) install --quiet --no-build-isolation -e ".[test,bench,redis]"
	touch $@

fastlb/_core.stamp: $(STAMP) $(SOURCES) setup.py
	$(PY) setup.py --quiet build_ext --inplace
	touch $@

build: fastlb/_core.stamp

# `make run`: the demo backends (examples/demo_backends.py, s1 on 9001 and s2
# on 9002) in the background, fastlb in the foreground on the example config;
# when fastlb exits (Ctrl-C) the trap stops the backends by PID.  The cookie
# signing key is a DEMO value unless FASTLB_SECRET is already set.
DEMO_SECRET := demo-secret-NOT-FOR-PRODUCTION
run: build
	@$(PY) examples/demo_backends.py 9001 9002 & demo=$$!; \
	trap 'kill $$demo 2>/dev/null; wait $$demo 2>/dev/null' EXIT INT TERM; \
	if [ -z "$$FASTLB_SECRET" ]; then \
		echo "make run: FASTLB_SECRET not set; using the demo value '$(DEMO_SECRET)'" >&2; \
	fi; \
	FASTLB_SECRET="$${FASTLB_SECRET:-$(DEMO_SECRET)}" $(PY) -m fastlb run -c examples/fastlb.toml

test: build browser
	$(PY) -m pytest tests -q

bench: build
	$(PY) -m pytest bench -q --benchmark-only --benchmark-columns=min,median,mean,ops,rounds \
		--benchmark-sort=name --benchmark-json=bench/results/micro-$$(git rev-parse --short HEAD 2>/dev/null || echo nogit).json

# Debug build: bounds checks, line tracing, FLB_CHECK assertions, annotated HTML.
debug: $(STAMP)
	FASTLB_DEBUG=1 $(PY) setup.py --quiet build_ext --inplace --force
	rm -f fastlb/_core.stamp

lint: build
	$(PY) -m pytest tests/test_lint.py -q

clean:
	rm -rf build $(VENV) fastlb/*.so fastlb/proxy/*.so fastlb/_core.c fastlb/proxy/_shell.c \
		$(filter-out fastlb/status.html,$(wildcard fastlb/*.html)) fastlb/proxy/*.html fastlb/_core.stamp *.egg-info
