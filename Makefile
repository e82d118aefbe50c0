# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
FONTS  := .cache/xmr/fonts/coverage.json

.PHONY: setup run test fonts bench clean

setup: $(STAMP) $(FONTS)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(FONTS): $(STAMP) assets/fonts.tsv
	$(VENV)/bin/xmr fonts fetch

fonts: $(STAMP)
	$(VENV)/bin/xmr fonts fetch

run: setup
	$(VENV)/bin/streamlit run app.py

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/render_throughput.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
