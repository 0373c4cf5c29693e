# Entry points named in the README. `make test` installs what the suite needs (as root, only
# the Debian packages that are missing), generates the fixture release, and runs everything.

SHELL := /bin/bash
CARGO ?= cargo
IMAGE_FACTORY_LISTEN ?= 127.0.0.1:8080
# What links, iPXE scripts and installer references name: where clients reach `make run`.
EXTERNAL_URL ?= http://$(IMAGE_FACTORY_LISTEN)/
STATE_DIR ?= var
# Seconds each fuzz target runs: `make fuzz` hunts, `make test` takes a short pass.
FUZZ_SECONDS ?= 300
FUZZ_TEST_SECONDS ?= 10
REGISTRY_ADDR ?= 127.0.0.1:5000

# Debian packages: the tools that build the fixture release (squashfs-tools, cpio, kmod,
# zstd, xz-utils) and the independent checkers the tests use (skopeo, docker-registry, QEMU
# with OVMF (and qemu-system-arm for the U-Boot board, below), dosfstools and mtools for ESPs, binutils' objdump and pefile for PE files,
# gdisk/fdisk for partition tables, xfsprogs and GRUB's tools for BOOT partitions and
# core.img, osslsigncode and sbsigntool for Authenticode, efitools for EFI signature lists,
# GNU time and curl for `make bench`, jq for the README's examples, headless chromium and its WebDriver for the web UI).
APT_PACKAGES := squashfs-tools cpio kmod zstd xz-utils skopeo docker-registry ovmf \
  dosfstools mtools binutils python3-pefile gdisk fdisk xfsprogs grub-common grub-pc-bin \
  time curl jq xorriso openssl osslsigncode sbsigntool efitools chromium chromium-driver

.PHONY: all deps build fixtures run registry registry-server run-registry run-cluster test lint \
  fuzz fuzz-short bench clean

all: build

deps:
	@missing=""; \
	for package in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$package" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" -ne 0 ]; then echo "need root to install:$$missing" >&2; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# qemu-system-x86 must come with the qemu-utils of its own version: a newer qemu-utils
	@# from backports blocks the install, so both are pinned to the candidate of the former.
	@if ! command -v qemu-system-x86_64 >/dev/null; then \
	  if [ "$$(id -u)" -ne 0 ]; then echo "need root to install qemu-system-x86" >&2; exit 1; fi; \
	  version=$$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $$2}'); \
	  echo "installing qemu-system-x86 $$version"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades \
	    "qemu-system-x86=$$version" "qemu-utils=$$version"; \
	fi
	@# qemu-system-aarch64 (the overlay boot test's `virt` board), of the same version.
	@if ! command -v qemu-system-aarch64 >/dev/null; then \
	  if [ "$$(id -u)" -ne 0 ]; then echo "need root to install qemu-system-arm" >&2; exit 1; fi; \
	  version=$$(dpkg-query -W -f='$${Version}' qemu-system-x86); \
	  echo "installing qemu-system-arm $$version"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades \
	    "qemu-system-arm=$$version"; \
	fi

build:
	$(CARGO) build --release --locked

# The Talos-shaped release the tests and `make run` read (skipped when up to date).
fixtures: deps
	$(CARGO) xtask fixtures

run: fixtures build
	./target/release/image-factory -external-url $(EXTERNAL_URL) --config fixtures/factory.yaml \
	  --listen $(IMAGE_FACTORY_LISTEN) --state-dir $(STATE_DIR)

# Debian's CNCF registry on $(REGISTRY_ADDR) (started unless something answers there).
registry-server: deps
	@mkdir -p $(STATE_DIR)/registry
	@printf 'version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: %s}\nhttp: {addr: %s}\n' \
	  "$(abspath $(STATE_DIR))/registry/data" "$(REGISTRY_ADDR)" > $(STATE_DIR)/registry/config.yml
	@if ! curl -fsS http://$(REGISTRY_ADDR)/v2/ >/dev/null 2>&1; then \
	  nohup docker-registry serve $(STATE_DIR)/registry/config.yml > $(STATE_DIR)/registry/log 2>&1 & \
	  for i in $$(seq 50); do curl -fsS http://$(REGISTRY_ADDR)/v2/ >/dev/null 2>&1 && break; sleep 0.1; done; \
	fi

# The local registry holding the fixture release (copied by `image-factory mirror`).
registry: fixtures build registry-server
	./target/release/image-factory mirror --config fixtures/factory.yaml --to-registry $(REGISTRY_ADDR)
	@echo "registry on http://$(REGISTRY_ADDR) holds the fixture release"

run-registry: registry build
	./target/release/image-factory -external-url $(EXTERNAL_URL) \
	  --config fixtures/factory-registry.yaml --listen $(IMAGE_FACTORY_LISTEN) --state-dir $(STATE_DIR)

# Two replicas sharing the local registry for schematics, the asset cache and installers,
# configured with upstream's single-dash flags; the first one creates the shared signing key.
CLUSTER_A ?= 127.0.0.1:8080
CLUSTER_B ?= 127.0.0.1:8081
CLUSTER_FLAGS = -external-url http://$(CLUSTER_A)/ \
  -schematic-service-repository $(REGISTRY_ADDR)/image-factory/schematics \
  -cache-repository $(REGISTRY_ADDR)/image-factory/cache \
  -installer-internal-repository $(REGISTRY_ADDR)/siderolabs \
  -cache-signing-key-path $(abspath $(STATE_DIR))/cluster/cache-signing-key.pem \
  --config fixtures/factory.yaml
run-cluster: fixtures build registry-server
	@mkdir -p $(STATE_DIR)/cluster
	@./target/release/image-factory $(CLUSTER_FLAGS) --listen $(CLUSTER_A) \
	  --state-dir $(STATE_DIR)/cluster/a & replica_a=$$!; \
	trap 'kill $$replica_a 2>/dev/null' EXIT INT TERM; \
	for i in $$(seq 100); do curl -fsS http://$(CLUSTER_A)/healthz >/dev/null 2>&1 && break; sleep 0.1; done; \
	echo "replicas on http://$(CLUSTER_A) and http://$(CLUSTER_B), registry http://$(REGISTRY_ADDR)"; \
	./target/release/image-factory $(CLUSTER_FLAGS) --listen $(CLUSTER_B) \
	  --state-dir $(STATE_DIR)/cluster/b

lint:
	$(CARGO) xtask lint

# The lint runs beside the fixture generation (much of which waits on downloads and
# single-threaded packers). cargo-nextest, where installed, runs the tests of every binary
# side by side rather than one binary after another.
test: deps
	@$(MAKE) --no-print-directory -j2 fixtures lint
	@if command -v cargo-nextest >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --all-targets --locked --no-fail-fast; \
	else \
	  $(CARGO) test --workspace --all-targets --locked; \
	fi
	@$(MAKE) --no-print-directory fuzz-short

# Coverage-guided fuzzing with cargo-afl (installed from crates.io when missing; it builds
# its own AFL++ with the C compiler): every target of fuzz/ for FUZZ_SECONDS, crashes copied
# to fuzz/regressions/ and a failure. The short pass is part of `make test`.
fuzz:
	$(CARGO) xtask fuzz --seconds $(FUZZ_SECONDS)

fuzz-short:
	$(CARGO) xtask fuzz --seconds $(FUZZ_TEST_SECONDS)

bench: fixtures
	$(CARGO) bench --locked
	$(CARGO) xtask bench-compare

clean:
	$(CARGO) clean
