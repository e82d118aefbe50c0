# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
FONTS  := .cache/xmr/fonts/coverage.json
# the dictionaries, their translation table, the word lists' vectors and the text features of the dictionaries'
# words (lists.json: written last)
DICTS  := .cache/xmr/dictionaries/lists.json
# Debian packages the browser tests need (never a browser downloaded by Playwright)
BROWSER_PKGS := chromium fonts-noto-cjk fonts-noto-color-emoji
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup browser run test lint fonts bench clean

setup: $(STAMP) $(FONTS) $(DICTS)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(FONTS): $(STAMP) assets/fonts.tsv
	$(VENV)/bin/xmr fonts fetch

fonts: $(STAMP)
	$(VENV)/bin/xmr fonts fetch

$(DICTS): $(STAMP) assets/dictionaries.tsv
	$(VENV)/bin/xmr dictionaries fetch --neighbours

browser:
	@dpkg -s $(BROWSER_PKGS) >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(BROWSER_PKGS); }

run: setup
	$(VENV)/bin/streamlit run serve.py

test: setup browser
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# every benchmark, one after another, each printing its table (several write docs/benchmarks.md); hours
bench: setup
	@set -e; for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf $(VENV) .cache .pytest_cache
