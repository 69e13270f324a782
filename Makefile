# Convenience targets; the README's two commands are the contract.
PY ?= .venv/bin/python

.PHONY: venv run test lint bench
venv:
	python3 -m venv .venv && .venv/bin/pip install -q -e '.[hardware,dev]'
run:
	$(PY) -m app --tree drl_gan_vs
test:
	$(PY) -m pytest -q
lint:
	$(PY) -m ruff check app behaviours models tests
bench:
	$(PY) -m app bench sim
