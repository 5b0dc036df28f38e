# Every target sets itself up from nothing: a fresh clone needs only python3.11 and make.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY := .venv/bin/python
PROFILE ?= default
# uv installs the pinned list in parallel: 52 s instead of pip's 138 s here (bench/RESULTS.md)
UV := uv==0.13.9

.PHONY: book test bench profile lab clean

.venv/ok: requirements.txt pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q $(UV) 2>&1 | { grep -v 'is ignored' || true; }
	.venv/bin/uv pip install -q --python $(PY) --compile-bytecode -r requirements.txt \
	  || { echo "uv could not install requirements.txt (a pip-only index?): installing with pip"; \
	       $(PY) -m pip install -q -r requirements.txt 2>&1 | { grep -v 'is ignored' || true; }; }
	$(PY) -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | { grep -v 'is ignored' || true; }
	$(PY) -c "import helpers, torch, timm, papermill, jupyter_book"
	touch $@

book: .venv/ok  ## run every chapter (embedded default profile) and build _build/html
	time $(PY) -m helpers book --profile $(PROFILE)

test: .venv/ok  ## the whole test suite (smoke profile for the notebooks)
	$(PY) -m pytest -q

bench: .venv/ok  ## benchmarks: ratios against the straightforward way and the peers -> bench/results.json
	$(PY) -m pip install -q torchlens==2.36.1 2>&1 | { grep -v 'is ignored' || true; }
	$(PY) bench/run.py

profile: .venv/ok  ## where the CPU time of a cold `make book` goes, per stage (py-spy, every process)
	$(PY) -m pip install -q py-spy==0.4.0 2>&1 | { grep -v 'is ignored' || true; }
	$(PY) bench/profile_book.py record _build/book-profile.txt --profile $(PROFILE)

lab: .venv/ok  ## open the chapters in JupyterLab
	$(PY) -m jupyter lab notebooks/

clean:
	rm -rf _build book/chapters .pytest_cache
