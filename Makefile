# Two commands do all set-up on a fresh clone:  make demo  and  make test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS ?= constraints-dev.txt
DEMO_MODELS ?= engines/demo
DEMO_IMAGE ?= data/marina.png
DEMO_OUT ?= out/demo
PYTEST_ARGS ?=

.PHONY: demo test venv clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# One stamp per set of extras, remade when the package metadata changes.
$(VENV)/.installed-%: setup.cfg pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[$(subst +,$(comma),$*)]"
	touch $@

comma := ,

venv: $(VENV)/.installed-export+dev

# The main job on the shipped default. Without checkpoints the model set is
# exported from seeded random weights (labelled so in its manifest and in every
# output); give SAM_CHECKPOINT=... (and SAM_MODEL_TYPE=vit_l|vit_h) for real ones.
PSLG := $(VENV)/bin/pslg
DEMO_BOX ?= 1238,756,1347,806

$(DEMO_MODELS)/manifest.json: | $(VENV)/.installed-export
	$(PSLG) export sam --out $(DEMO_MODELS) \
		$(if $(SAM_CHECKPOINT),--checkpoint $(SAM_CHECKPOINT) --model-type $(or $(SAM_MODEL_TYPE),vit_b),--random-weights --model-type vit_b --seed 0)

demo: $(VENV)/.installed-export $(DEMO_MODELS)/manifest.json
	$(PSLG) segment $(DEMO_IMAGE) --models $(DEMO_MODELS) --box $(DEMO_BOX) --out $(DEMO_OUT)
	@echo "overlay written to $(DEMO_OUT)/overlay.png"

test: $(VENV)/.installed-export+dev
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) out tests/artifacts
