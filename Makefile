# Entry points named in the README. `make test` installs what the suite needs (as root, only
# the Debian packages that are missing) and runs all of it.

SHELL := /bin/bash
CARGO ?= cargo
IMAGE_FACTORY_LISTEN ?= 127.0.0.1:8080
STATE_DIR ?= var

# Debian packages the test suite uses as independent checkers of our output.
APT_PACKAGES :=

.PHONY: all deps build run test lint bench clean

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

build:
	$(CARGO) build --release --locked

run: build
	./target/release/image-factory serve --listen $(IMAGE_FACTORY_LISTEN) --state-dir $(STATE_DIR)

lint:
	$(CARGO) xtask lint

test: deps lint
	$(CARGO) test --workspace --all-targets --locked

bench:
	$(CARGO) bench --locked

clean:
	$(CARGO) clean
