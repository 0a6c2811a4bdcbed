# vtoken: `make install` then `make test`. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# The CPU wheel of torch that lies on the development machines; override for a CUDA build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: help install test demo bench gpu-wheels eval-data clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## virtual environment with every dependency, LPIPS weights and the shipped model

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	# every other dependency, holding torch at the installed build
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/torch-constraint.txt
	$(PIP) install -q -c $(VENV)/torch-constraint.txt -e ".[bench,dev,ray]"
	# lpips only for its v0.1 linear heads: its torchvision dependency fails with the CPU torch
	$(PIP) install -q --no-deps "lpips==0.1.4"
	$(PY) -m vtoken.metrics.build_lpips_weights
	$(PY) -c "import vtoken; vtoken.load_model(); print('vtoken', vtoken.__version__, 'ready')"
	touch $(STAMP)

test: $(STAMP) ## run the test suite on the CPU (GPU tests are skipped without CUDA)
	$(PY) -m pytest -q

demo: $(STAMP) ## encode and decode a generated clip, print its info
	mkdir -p out
	$(PY) -m vtoken.demo out

bench: $(STAMP) ## the codec comparison on the eval clips in data/eval/video (make eval-data first)
	$(VENV)/bin/vtoken bench --codec all --suite benchmarks/suites/eval.json --out benchmarks/results/eval

gpu-wheels: ## wheels/ for the GPU machine: the cp312 wheels its image lacks (see benchmarks/gpu_session.sh)
	mkdir -p wheels && rm -f wheels/*.whl
	$(PIP) download -q --no-deps --only-binary=:all: --python-version 3.12 \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d wheels "av==$$($(PY) -c 'import av; print(av.__version__)')" constriction safetensors \
		"setuptools>=68" pytest pluggy iniconfig packaging pygments

eval-data: ## data/eval/video (git-ignored): copy the eval clips from EVAL_VIDEOS=DIR, for `make bench` and the GPU machine
	@test -n "$(EVAL_VIDEOS)" || { echo "usage: make eval-data EVAL_VIDEOS=DIR (a folder holding the eval clips)"; exit 2; }
	mkdir -p data/eval
	rm -rf data/eval/video && cp -r "$(EVAL_VIDEOS)" data/eval/video

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache out
