# airlock: train on-prem, serve in the cloud.
#
#   make release-model   set up and run the release pipeline on embedded defaults
#   make test            every check and test (what CI runs)
#   make man             the man pages, in $(TARGET_DIR)/man/ (man -l .../airlock.1)
#
# Build outputs go to $(CARGO_TARGET_DIR) when set (CI points it outside the clone so
# compiled dependencies are reused between runs), else to ./target.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
AIRLOCK := $(TARGET_DIR)/debug/airlock
PIPELINE ?= pipelines/fraud-detector.toml
# What `make release-model` pulls and serves: the DEMO pipeline's local registry and trust.
MODEL ?= $(shell sed -n 's/^name = "\(.*\)"/\1/p' $(PIPELINE) | head -1)
REGISTRY ?= file://$(CURDIR)/registry
TRUST ?= demo/trust.toml
SERVED ?= served/$(MODEL)
# The sample request: a CSV of rows, or (for an image model) one PNG scan.
SAMPLE ?= $(firstword $(wildcard $(basename $(PIPELINE)).sample.csv $(basename $(PIPELINE)).sample.png))
SAMPLE_TYPE ?= $(if $(filter %.png,$(SAMPLE)),application/x-image,text/csv)
# The benchmark's thread count (burn's CPU backends and PyTorch alike).
BENCH_THREADS ?= 2
TORCH_VENV ?= $(HOME)/.cache/airlock/torch-venv

.PHONY: help build build-cuda check-cuda release-model federate burst split-inference man lint fmt test test-deps schemas moto bench bench-torch fuzz fuzz-smoke fuzz-build clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

build: ## build the airlock CLI (CPU backends)
	$(CARGO) build --locked

build-cuda: ## build with the CUDA backend (needs no GPU or CUDA toolkit to compile)
	$(CARGO) build --locked --features cuda

check-cuda: ## type-check the CUDA backend code (faster than build-cuda)
	$(CARGO) check --locked --features cuda --all-targets

release-model: build ## the release (`airlock run`), then the cloud side on loopback: pull, serve, one prediction
	$(AIRLOCK) run $(PIPELINE)
	@# The cloud team's side, here on loopback: pull the release from the (DEMO: local file)
	@# registry, verified; serve it; score the sample transactions; stop the server.
	$(AIRLOCK) pull $(REGISTRY)/models/$(MODEL) --trust $(TRUST) --out $(SERVED)
	@log=$$(mktemp); trap 'kill $$pid 2>/dev/null || true; rm -f $$log' EXIT; \
	$(AIRLOCK) serve --model-dir $(SERVED) --trust $(TRUST) --bind 127.0.0.1 --port 0 2>$$log & pid=$$!; \
	for _ in $$(seq 100); do grep -q '^listening on' $$log && break; \
	  kill -0 $$pid 2>/dev/null || { cat $$log >&2; exit 1; }; sleep 0.1; done; \
	url=$$(sed -n 's/^listening on //p' $$log); \
	echo "POST $$url/invocations < $(SAMPLE)"; \
	curl -sS --fail-with-body -H 'Content-Type: $(SAMPLE_TYPE)' --data-binary @$(SAMPLE) $$url/invocations; echo; \
	kill -TERM $$pid; wait $$pid

# `make split-inference`: the release of `make release-model` (run again if needed: it
# resumes), served by an on-prem pool of two and a cloud stand-in, with `airlock route` in
# front, all on loopback; a mixed stream, where each class went, the pool stopped (sensitive
# requests get 503, never the cloud), the latency routing adds; then the routing audit verified.
SPLIT_DIR ?= split-inference-demo

split-inference: build ## split inference: an on-prem serve pool of two, a cloud stand-in, the router; a mixed stream, where each class went, the latency routing adds
	$(AIRLOCK) run $(PIPELINE)
	$(AIRLOCK) pull $(REGISTRY)/models/$(MODEL) --trust $(TRUST) --out $(SERVED)
	$(AIRLOCK) route demo --bundle $(SERVED) --trust $(TRUST) --key demo/keys/publisher.key --out $(SPLIT_DIR)
	$(AIRLOCK) audit verify $(SPLIT_DIR)/route-audit.jsonl --trust $(TRUST)

# `make federate`: the federated demo (three banks, an aggregator, Flower on loopback),
# then its global model released like any other: packaged (leak checks against the
# releasing bank's data), approved by an officer, verified, served, one prediction.
FED_DIR ?= federation-demo

federate: build ## federated learning on Flower: 3 sites on loopback, the global model vs each local one, then package, approve, serve
	@flower="$$(tests/setup-flower.sh)"; \
	$(AIRLOCK) federate --out $(FED_DIR) --flower-bin "$$flower" > $(FED_DIR).json
	@rel=$(FED_DIR)/release; mkdir -p $$rel; chmod go-w $$rel; \
	$(AIRLOCK) keygen --out $$rel/builder >/dev/null; $(AIRLOCK) keygen --out $$rel/officer >/dev/null; \
	printf '# DEMO: the federated release'"'"'s trust policy (keys on this machine).\napprovals_required = 1\n\n[[keys]]\nname = "demo-builder"\nrole = "builder"\npublic_key = "builder.pub"\n\n[[keys]]\nname = "demo-officer"\nrole = "officer"\npublic_key = "officer.pub"\n' > $$rel/trust.toml; \
	chmod go-w $$rel/trust.toml $$rel/*.pub; \
	$(AIRLOCK) package --run $(FED_DIR)/global-run --key $$rel/builder.key --out $$rel/bundle; \
	$(AIRLOCK) approve $$rel/bundle --trust $$rel/trust.toml --key $$rel/officer.key --name "Demo Officer" --reason "federated demo: leak checks passed"; \
	$(AIRLOCK) verify $$rel/bundle --trust $$rel/trust.toml --require-approvals; \
	log=$$(mktemp); trap 'kill $$pid 2>/dev/null || true; rm -f $$log' EXIT; \
	$(AIRLOCK) serve --model-dir $$rel/bundle --trust $$rel/trust.toml --bind 127.0.0.1 --port 0 2>$$log & pid=$$!; \
	for _ in $$(seq 100); do grep -q '^listening on' $$log && break; \
	  kill -0 $$pid 2>/dev/null || { cat $$log >&2; exit 1; }; sleep 0.1; done; \
	url=$$(sed -n 's/^listening on //p' $$log); \
	echo "POST $$url/invocations < pipelines/fraud-detector.sample.csv"; \
	curl -sS --fail-with-body -H 'Content-Type: text/csv' --data-binary @pipelines/fraud-detector.sample.csv $$url/invocations; echo; \
	kill -TERM $$pid; wait $$pid

# `make burst`: the cloud-burst demo on embedded defaults. moto stands in for S3 and
# SageMaker's API on 127.0.0.1, and --local plays SageMaker's side of the training contract
# on this machine. Demo data; an export of de-identified training rows under its policy,
# signed by a builder and approved by a DEMO officer; the burst (upload, a 4-job sweep with
# two 2-host jobs, sync-back, cleanup); then the kept run packaged against the full data,
# approved, published to a local registry, served, one prediction.
BURST_DIR ?= burst-demo
BURST_PIPELINE ?= pipelines/fraud-detector-burst.toml

burst: build ## cloud burst: export, approve, a 4-job sweep on local-mode SageMaker (moto), sync-back, cleanup; then package, publish, serve
	@rm -rf $(BURST_DIR) && mkdir -p $(BURST_DIR) && chmod go-w $(BURST_DIR)
	$(AIRLOCK) demo-data --out data/transactions.csv --rows 20000
	@d=$(BURST_DIR); \
	for k in builder officer publisher; do $(AIRLOCK) keygen --out $$d/$$k >/dev/null; done; \
	printf '# DEMO: the burst'"'"'s trust policy (keys on this machine).\napprovals_required = 1\n\n[[keys]]\nname = "demo-builder"\nrole = "builder"\npublic_key = "builder.pub"\n\n[[keys]]\nname = "demo-officer"\nrole = "officer"\npublic_key = "officer.pub"\n\n[[keys]]\nname = "demo-publisher"\nrole = "publisher"\npublic_key = "publisher.pub"\n' > $$d/trust.toml; \
	printf '# DEMO: releases go to the local registry; exports only to eu-west-1.\n[registry]\nregions = ["local"]\n\n[export]\nregions = ["eu-west-1"]\n' > $$d/residency.toml; \
	chmod go-w $$d/trust.toml $$d/residency.toml $$d/*.pub
	$(AIRLOCK) export $(BURST_PIPELINE) --policy $(basename $(BURST_PIPELINE)).export.toml \
	  --out $(BURST_DIR)/export --trust $(BURST_DIR)/trust.toml --key $(BURST_DIR)/builder.key
	$(AIRLOCK) export approve $(BURST_DIR)/export --trust $(BURST_DIR)/trust.toml \
	  --key $(BURST_DIR)/officer.key --name "Demo Officer" --reason "DEMO: k-anonymous, scanned, identifiers dropped"
	@py="$$(tests/setup-python.sh)"; log=$(BURST_DIR)/moto.log; \
	coproc MOTO { exec "$$py" tests/moto_server.py --port 0 2>$$log; }; \
	read -r _ port <&"$${MOTO[0]}" || { echo "moto did not start; its log:" >&2; cat $$log >&2; exit 1; }; \
	trap 'kill $$MOTO_PID 2>/dev/null || true' EXIT; \
	export AWS_ENDPOINT_URL=http://127.0.0.1:$$port AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID=testing \
	  AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true; \
	curl -sS --fail -X PUT "$$AWS_ENDPOINT_URL/airlock-burst" -H 'Content-Type: application/xml' \
	  --data "<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>" >/dev/null; \
	echo "moto (S3, SageMaker) on $$AWS_ENDPOINT_URL"; \
	$(AIRLOCK) burst $(BURST_PIPELINE) --export $(BURST_DIR)/export --local --out $(BURST_DIR)/run \
	  --trust $(BURST_DIR)/trust.toml --residency $(BURST_DIR)/residency.toml \
	  --key $(BURST_DIR)/publisher.key --audit-log $(BURST_DIR)/audit.log \
	  --work $(BURST_DIR)/work > $(BURST_DIR)/burst.json
	@d=$(BURST_DIR); \
	$(AIRLOCK) package --run $$d/run --key $$d/builder.key --out $$d/bundle; \
	$(AIRLOCK) approve $$d/bundle --trust $$d/trust.toml --key $$d/officer.key --name "Demo Officer" --reason "DEMO: burst run, leak checks passed"; \
	$(AIRLOCK) publish $$d/bundle --to file://$(CURDIR)/$$d/registry --trust $$d/trust.toml \
	  --residency $$d/residency.toml --audit-log $$d/audit.log --key $$d/publisher.key; \
	$(AIRLOCK) audit verify $$d/audit.log --trust $$d/trust.toml; \
	log=$$(mktemp); trap 'kill $$pid 2>/dev/null || true; rm -f $$log' EXIT; \
	$(AIRLOCK) serve --model-dir $$d/bundle --trust $$d/trust.toml --bind 127.0.0.1 --port 0 2>$$log & pid=$$!; \
	for _ in $$(seq 100); do grep -q '^listening on' $$log && break; \
	  kill -0 $$pid 2>/dev/null || { cat $$log >&2; exit 1; }; sleep 0.1; done; \
	url=$$(sed -n 's/^listening on //p' $$log); \
	echo "POST $$url/invocations < pipelines/fraud-detector.sample.csv"; \
	curl -sS --fail-with-body -H 'Content-Type: text/csv' --data-binary @pipelines/fraud-detector.sample.csv $$url/invocations; echo; \
	kill -TERM $$pid; wait $$pid

# Where `make man` writes the man pages (`man -l $(MAN_DIR)/airlock.1` reads one).
MAN_DIR ?= $(TARGET_DIR)/man

man: build ## write the man pages: <target dir>/man/airlock.1, airlock-run.1, ... (MAN_DIR=...)
	$(AIRLOCK) man --out-dir $(MAN_DIR)

fmt: ## format the code
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml

lint: ## rustfmt, clippy (with and without CUDA), rustdoc, burn-free crates; warnings are errors
	$(CARGO) fmt --all --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked --workspace --all-targets --features cuda -- -D warnings
	@# Functions of at most 100 lines (clippy.toml), in the code that ships (tests may be longer).
	$(CARGO) clippy --locked --workspace --lib --bins -- -D warnings -D clippy::too_many_lines
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --workspace --no-deps
	@# The trust, packaging, review, publishing and serving crates must not build burn.
	CARGO="$(CARGO)" tests/lint-burn-free.sh
	@# Every relative link in the docs resolves inside the repository.
	tests/check-doc-links.sh

test-deps: ## install what the tests run against: a Python venv with moto (~/.cache/airlock), Debian's chromium, Flower, docker-registry and skopeo
	tests/setup-python.sh >/dev/null
	tests/setup-browser.sh >/dev/null
	tests/setup-flower.sh >/dev/null
	tests/setup-oci.sh >/dev/null

test: lint test-deps ## lint, then every test, the CUDA build's device test, then fuzz-smoke
	AIRLOCK_TEST_PYTHON="$$(tests/setup-python.sh)" env $$(tests/setup-oci.sh 2>/dev/null) $(CARGO) test --locked --workspace
	@# The CUDA build must compile without a GPU or toolkit, and refuse a missing device clearly.
	$(CARGO) test --locked --features cuda --test it cuda_device
	@$(MAKE) --no-print-directory fuzz-smoke

schemas: ## regenerate schemas/json from the Rust types
	AIRLOCK_UPDATE_SCHEMAS=1 $(CARGO) test --locked -p airlock-schemas --test schemas

# `make moto`: the project's patched moto (tests/moto_server.py: S3 and SageMaker, with the
# UpdateEndpoint that moto lacks) on 127.0.0.1, for running the S3, SageMaker and deploy
# stages locally. It makes MOTO_BUCKET in MOTO_REGION, prints the environment to export in
# another shell, and serves until Ctrl-C (or until its standard input closes).
MOTO_PORT ?= 5000
MOTO_REGION ?= eu-west-1
MOTO_BUCKET ?= airlock-releases
MOTO_LOG ?= $(TARGET_DIR)/moto.log

moto: ## the patched moto (S3, SageMaker) on 127.0.0.1:MOTO_PORT (5000), with a bucket; prints the env to export
	@mkdir -p $(dir $(MOTO_LOG))
	@py="$$(tests/setup-python.sh)"; \
	"$$py" tests/moto_server.py --port $(MOTO_PORT) 2>$(MOTO_LOG) | { \
	  if ! read -r _ port; then echo "moto did not start; its log:" >&2; cat $(MOTO_LOG) >&2; exit 1; fi; \
	  url=http://127.0.0.1:$$port; \
	  curl -sS --fail -X PUT "$$url/$(MOTO_BUCKET)" -H 'Content-Type: application/xml' \
	    --data "<CreateBucketConfiguration><LocationConstraint>$(MOTO_REGION)</LocationConstraint></CreateBucketConfiguration>" >/dev/null; \
	  echo "# moto on $$url (bucket s3://$(MOTO_BUCKET) in $(MOTO_REGION); log $(MOTO_LOG)); in another shell:"; \
	  echo "export AWS_ENDPOINT_URL=$$url AWS_REGION=$(MOTO_REGION) AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true"; \
	  echo "# Ctrl-C stops it (and forgets everything it held)"; \
	  cat >/dev/null; \
	}

# Size of the synthetic model for the sign/verify and leak-scan benchmarks.
BENCH_MIB ?= 1024

bench: ## training rows/s (MLP) and images/s (CNN), DP-SGD vs Opacus, a federated round vs plain FedAvg, sign/verify, leak-scan, 1 GiB model package time + training RSS, S3 upload vs boto3, serve vs Flask+PyTorch, pull, burst export rows/s and 2 vs 1 host, router latency and throughput vs direct and nginx, OCI push/pull vs skopeo copy, audit Merkle proofs at 10^6 entries
	@if [ -x $(TORCH_VENV)/bin/python ] && $(TORCH_VENV)/bin/python -c 'import torch' 2>/dev/null; then \
	  export AIRLOCK_BENCH_TORCH=$(TORCH_VENV)/bin/python; fi; \
	RAYON_NUM_THREADS=$(BENCH_THREADS) $(CARGO) bench --locked --bench train_throughput
	@if [ -x $(TORCH_VENV)/bin/python ] && $(TORCH_VENV)/bin/python -c 'import torch, PIL' 2>/dev/null; then \
	  export AIRLOCK_BENCH_TORCH=$(TORCH_VENV)/bin/python; fi; \
	RAYON_NUM_THREADS=$(BENCH_THREADS) $(CARGO) bench --locked --bench train_cnn
	$(CARGO) bench --locked -p airlock-trust --bench sign_verify -- $(BENCH_MIB)
	$(CARGO) bench --locked -p airlock-leak --bench leak_scan -- $(BENCH_MIB)
	@if [ -x $(TORCH_VENV)/bin/python ]; then export AIRLOCK_BENCH_TORCH=$(TORCH_VENV)/bin/python; fi; \
	AIRLOCK_BENCH_PYTHON="$$(tests/setup-python.sh)" $(CARGO) bench --locked --bench publish -- $(BENCH_MIB)
	$(CARGO) bench --locked --bench large_model
	@# Issue 16: DP-SGD against Opacus (when the torch venv has it), and the cost of the
	@# packager's replay and RMIA reference models.
	@if [ -x $(TORCH_VENV)/bin/python ] && $(TORCH_VENV)/bin/python -c 'import opacus' 2>/dev/null; then \
	  export AIRLOCK_BENCH_TORCH=$(TORCH_VENV)/bin/python; fi; \
	RAYON_NUM_THREADS=$(BENCH_THREADS) $(CARGO) bench --locked --bench train_dp
	@# Issue 17: a federated round's wall time and split on a loopback Flower federation,
	@# and airlock's overhead over plain FedAvg on the same federation.
	$(CARGO) bench --locked --bench federation
	@# Issue 18: export throughput (k-anonymity and scans included) on 1M rows, and local-mode
	@# training on 2 hosts against 1.
	$(CARGO) bench --locked --bench burst
	@# Issue 19: the latency the router adds (p50, p99) and its throughput, next to a direct
	@# connection and to nginx's plain forwarding to the same upstream.
	AIRLOCK_BENCH_NGINX="$$(tests/setup-nginx.sh)" $(CARGO) bench --locked --bench route
	@# Issue 20: push and pull of a 1 GiB release through docker-registry on loopback, next
	@# to skopeo copy of the same release on the same registry.
	env $$(tests/setup-oci.sh) $(CARGO) bench --locked --bench oci -- $(BENCH_MIB)
	@# Issue 20: the audit log's Merkle tree at 10^3, 10^5 and 10^6 entries: build time,
	@# inclusion and consistency proof sizes and verify times, checkpoint sign and open.
	$(CARGO) bench --locked --bench merkle

# Fuzzing: cargo-fuzz (libFuzzer) targets in fuzz/, one per parser of untrusted input.
# The fuzz crate links only airlock-schemas and airlock-safetensors (no burn, no AWS SDKs),
# in its own workspace with its own Cargo.lock. cargo-fuzz is installed, pinned, under
# ~/.cache/airlock; builds go to $(FUZZ_TARGET_DIR) (outside the clone when
# CARGO_TARGET_DIR is, as in CI), and so does the corpus each run grows from the seeds
# committed in fuzz/seeds/<target>/. Crashing inputs land in fuzz/artifacts/<target>/.
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_HOME ?= $(HOME)/.cache/airlock/cargo-fuzz-$(CARGO_FUZZ_VERSION)
FUZZ_TARGET_DIR ?= $(TARGET_DIR)/fuzz
FUZZ_TARGETS ?= $(sort $(basename $(notdir $(wildcard fuzz/fuzz_targets/*.rs))))
FUZZ_SMOKE_SECONDS ?= 30
FUZZ_SECONDS ?= 300
# The code under test forbids `unsafe`; ASan would halve the executions for little gain.
# `make fuzz FUZZ_SANITIZER=address` turns it on.
FUZZ_SANITIZER ?= none
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
CARGO_FUZZ = RUSTC_BOOTSTRAP=1 $(FUZZ_HOME)/bin/cargo-fuzz fuzz
FUZZ_BUILD_FLAGS = --sanitizer $(FUZZ_SANITIZER) --target-dir $(FUZZ_TARGET_DIR)

$(FUZZ_HOME)/bin/cargo-fuzz:
	env -u CARGO_TARGET_DIR $(CARGO) install --locked cargo-fuzz --version $(CARGO_FUZZ_VERSION) --root $(FUZZ_HOME)

fuzz-build: $(FUZZ_HOME)/bin/cargo-fuzz ## build every fuzz target (installs cargo-fuzz if missing)
	@# cargo-fuzz has no --locked: refuse a stale fuzz/Cargo.lock here instead.
	$(CARGO) fetch --locked --manifest-path fuzz/Cargo.toml
	$(CARGO_FUZZ) build $(FUZZ_BUILD_FLAGS)

# Each target for $(1) seconds from its seeds, growing the corpus in $(2)/<target>; its
# output goes to a log, whose tail (the failing input and how to reproduce it) is shown
# when it fails.
define fuzz-run
	@mkdir -p $(2) $(FUZZ_TARGET_DIR)/logs
	@for t in $(FUZZ_TARGETS); do \
	  corpus=$(2)/$$t; log=$(FUZZ_TARGET_DIR)/logs/$$t.log; mkdir -p $$corpus; \
	  printf 'fuzz: %-18s %ss ... ' $$t $(1); start=$$(date +%s); \
	  if ! $(CARGO_FUZZ) run $(FUZZ_BUILD_FLAGS) $$t $$corpus fuzz/seeds/$$t -- \
	      -max_total_time=$(1) -timeout=10 -print_final_stats=1 >$$log 2>&1; then \
	    echo FAILED; tail -n 60 $$log >&2; echo "fuzz: $$t failed (log: $$log)" >&2; exit 1; fi; \
	  runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log); \
	  rate=$$(sed -n 's/^stat::average_exec_per_sec: *//p' $$log); \
	  printf '%9s runs in %ss (%s/s), corpus %s files\n' "$$runs" \
	    $$(( $$(date +%s) - start )) "$$rate" $$(ls $$corpus | wc -l); \
	done
endef

# The smoke run starts from the seeds alone every time, so its cost stays the same
# however many runs came before; `make fuzz` keeps and grows its corpus.
fuzz-smoke: fuzz-build ## every fuzz target for FUZZ_SMOKE_SECONDS (30) each; part of `make test`
	rm -rf $(FUZZ_TARGET_DIR)/smoke-corpus
	$(call fuzz-run,$(FUZZ_SMOKE_SECONDS),$(FUZZ_TARGET_DIR)/smoke-corpus)

fuzz: fuzz-build ## every fuzz target (or FUZZ_TARGETS=...) for FUZZ_SECONDS (300) each
	$(call fuzz-run,$(FUZZ_SECONDS),$(FUZZ_TARGET_DIR)/corpus)

bench-torch: ## install PyTorch (CPU use) into $(TORCH_VENV), then run the benchmark
	@[ -x $(TORCH_VENV)/bin/python ] || python3 -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -c 'import torch' 2>/dev/null || $(TORCH_VENV)/bin/pip install -q torch
	@# The CNN baseline decodes the scans' PNGs with Pillow (benches/torch_cnn.py).
	$(TORCH_VENV)/bin/python -c 'import PIL' 2>/dev/null || $(TORCH_VENV)/bin/pip install -q pillow==12.0.0
	@# The DP-SGD baseline (benches/opacus_dp.py).
	$(TORCH_VENV)/bin/python -c 'import opacus' 2>/dev/null || $(TORCH_VENV)/bin/pip install -q opacus==1.6.0
	@# The serving baseline: Flask + PyTorch under gunicorn (benches/torch_serve.py).
	$(TORCH_VENV)/bin/python -c 'import flask, gunicorn, safetensors' 2>/dev/null || \
	  $(TORCH_VENV)/bin/pip install -q flask==3.1.3 gunicorn==23.0.0 safetensors==0.8.0
	@$(MAKE) --no-print-directory bench

clean: ## remove build outputs, demo data and runs
	$(CARGO) clean
	rm -rf data runs releases demo registry served .airlock federation-demo burst-demo
