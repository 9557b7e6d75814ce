# make demo: environment + synthetic data + train and test DenseNet121 (CPU, minutes)
# make test: environment + linter + tests (what CI runs)
VENV ?= .venv
PY := $(VENV)/bin/python
# torch/torchvision pair known to work with mmpretrain 1.2.0; override for your CUDA
TORCH ?= torch==2.14.1 torchvision==0.29.1
TASKS ?= chest endo colon
# test processes (pytest-xdist; one test file each at a time)
WORKERS ?= auto

.PHONY: env demo test lint clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools<81' wheel
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: env
	rm -rf $(TASKS:%=work_dirs/demo_%)  # a fresh demo each time
	$(PY) tools/make_demo.py --out-dir data/demo
	for t in $(TASKS); do \
	  PYTHON=$(PY) bash train.sh configs/demo/densenet121_$${t}_demo.py --work-dir work_dirs/demo_$$t && \
	  PYTHON=$(PY) bash test.sh work_dirs/demo_$$t || exit 1; \
	done
	@echo; $(PY) tools/report.py --summary $(TASKS:%=work_dirs/demo_%)

lint: env
	$(PY) -m ruff check medfm tools configs tests benchmarks

test: lint
	$(PY) -m pytest -q -n $(WORKERS) --dist loadfile --doctest-modules medfm benchmarks tests

clean:
	rm -rf $(TASKS:%=work_dirs/demo_%) data/demo  # the demo only: not your runs
