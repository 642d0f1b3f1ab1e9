# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv system demo test clean

$(STAMP): pyproject.toml setup.py src/ketch/proxy/_http1_scan.pyx
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

system:
	./scripts/install-system-packages

demo: system $(STAMP)
	./scripts/demo

# The proxy tests run twice: with the compiled HTTP/1.1 scanners, and without them (llhttp for
# every message, as in a build without a C compiler).
test: system $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)
	KETCH_HTTP1_SCAN=off $(PY) -m pytest -q -p no:cacheprovider tests/proxy $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info src/ketch/proxy/_http1_scan.c src/ketch/proxy/_http1_scan.*.so
