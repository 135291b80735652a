# AgentHub — `make run` starts the hub on embedded defaults, `make test` installs what the tests
# need and runs them all. Everything installed goes into ignored folders under .deps/.

CARGO ?= cargo
TARGET := x86_64-unknown-linux-gnu
STATIC_BIN := target/$(TARGET)/release/agenthub

.PHONY: run test test-deps chromium container-tools promtool bench bench-deps soak lint release image-slim install uninstall clean

run:
	$(CARGO) run --release --

# The static binary first (the container test builds the slim image from it).
test: test-deps release
	$(CARGO) test --locked

PYTHON ?= python3

# Third-party parts the tests run against, pinned: MCP servers from npm (tests/npm), the
# official Python SDK (tests/python/requirements.txt), the MCP conformance suite and the
# Node 22 it needs (tests/conformance), the official TypeScript SDK's client (tests/ts-sdk), and
# the browser the dashboard test drives: Debian's chromium and playwright-core (tests/browser),
# and the MCP Inspector's CLI (tests/inspector).
test-deps: .deps/npm/node_modules/.installed .deps/venv/.installed .deps/conformance/node_modules/.installed \
	.deps/ts-sdk/node_modules/.installed .deps/browser/node_modules/.installed .deps/inspector/node_modules/.installed \
	chromium container-tools .deps/container/bookworm.tar promtool

chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

# The container tests: podman and runc build and run the slim image (from `make release`'s
# binary, no registry needed), docker-compose validates the compose files; python3-yaml reads
# Continue's YAML in the client tests.
container-tools:
	command -v podman >/dev/null && command -v runc >/dev/null && command -v docker-compose >/dev/null \
		&& command -v catatonit >/dev/null && command -v mmdebstrap >/dev/null && test -x /usr/lib/cni/dnsname \
		&& /usr/bin/python3 -c 'import yaml' 2>/dev/null \
		|| (apt-get update && apt-get install -y --no-install-recommends podman runc catatonit docker-compose \
			python3-yaml mmdebstrap golang-github-containernetworking-plugin-dnsname)

# A minimal Debian bookworm root made with Debian's own mmdebstrap: the base of the compose
# test's stand-ins for node:22-bookworm-slim and ollama/ollama (no registry here).
.deps/container/bookworm.tar: | container-tools
	mkdir -p .deps/container
	rm -rf $@.part
	mmdebstrap --format=tar --variant=minbase --include=ca-certificates,python3 bookworm $@.part
	mv $@.part $@

# Prometheus's promtool checks /metrics (tests/it/metrics.rs).
promtool:
	command -v promtool >/dev/null || (apt-get update && apt-get install -y --no-install-recommends prometheus)

.deps/browser/node_modules/.installed: tests/browser/package.json tests/browser/package-lock.json
	mkdir -p .deps/browser
	cp tests/browser/package.json tests/browser/package-lock.json .deps/browser/
	cd .deps/browser && npm ci --no-audit --no-fund --ignore-scripts --cache ../npm-cache
	touch $@

# The MCP Inspector's CLI (tests/inspector): skills and MCP Apps as that client sees them.
.deps/inspector/node_modules/.installed: tests/inspector/package.json tests/inspector/package-lock.json
	mkdir -p .deps/inspector
	cp tests/inspector/package.json tests/inspector/package-lock.json .deps/inspector/
	cd .deps/inspector && npm ci --no-audit --no-fund --ignore-scripts --cache ../npm-cache
	touch $@

.deps/venv/.installed: tests/python/requirements.txt
	$(PYTHON) -m venv .deps/venv
	.deps/venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

.deps/conformance/node_modules/.installed: tests/conformance/package.json tests/conformance/package-lock.json
	mkdir -p .deps/conformance
	cp tests/conformance/package.json tests/conformance/package-lock.json .deps/conformance/
	cd .deps/conformance && npm ci --no-audit --no-fund --ignore-scripts --cache ../npm-cache
	touch $@

.deps/ts-sdk/node_modules/.installed: tests/ts-sdk/package.json tests/ts-sdk/package-lock.json
	mkdir -p .deps/ts-sdk
	cp tests/ts-sdk/package.json tests/ts-sdk/package-lock.json .deps/ts-sdk/
	cd .deps/ts-sdk && npm ci --no-audit --no-fund --ignore-scripts --cache ../npm-cache
	touch $@

.deps/npm/node_modules/.installed: tests/npm/package.json tests/npm/package-lock.json
	mkdir -p .deps/npm
	cp tests/npm/package.json tests/npm/package-lock.json .deps/npm/
	cd .deps/npm && npm ci --no-audit --no-fund --ignore-scripts --cache ../npm-cache
	# Warm the cache with full metadata too, so the installer and npx tests run offline.
	mkdir -p .deps/npm-warm
	cd .deps/npm-warm && npm install --no-audit --no-fund --ignore-scripts --no-save --cache ../npm-cache \
		@modelcontextprotocol/server-memory@2026.8.31
	# A second pin of the same package: two installs must keep their own versions.
	mkdir -p .deps/npm-warm-2026.7.4
	cd .deps/npm-warm-2026.7.4 && npm install --no-audit --no-fund --ignore-scripts --no-save --cache ../npm-cache \
		@modelcontextprotocol/server-memory@2026.7.4
	touch $@

bench: release test-deps bench-deps
	AGENTHUB_STATIC_BIN=$(STATIC_BIN) $(CARGO) bench --locked --bench hub

# Steady load through REST and /mcp/{server} for SOAK_SECONDS, then SIGTERM under load.
SOAK_SECONDS ?= 120
soak:
	SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO) bench --locked --bench soak

# The peers the benchmark measures the hub against, pinned (tests/bench).
bench-deps: .deps/bench/npm/node_modules/.installed .deps/bench/venv/.installed .deps/bench/npm-warm/.installed

# The embedded defaults' packages with full metadata in the npm cache, at the versions the bench
# pins (benches/first_minute.rs), so the hub's installs and npx run offline there.
.deps/bench/npm-warm/.installed: tests/npm/package.json
	mkdir -p .deps/bench/npm-warm
	cd .deps/bench/npm-warm && npm install --no-audit --no-fund --ignore-scripts --no-save --cache ../../npm-cache \
		@modelcontextprotocol/server-everything@2026.8.31 @modelcontextprotocol/server-memory@2026.8.31 \
		@modelcontextprotocol/server-filesystem@2026.8.31 @modelcontextprotocol/server-sequential-thinking@2026.8.31 \
		@wonderwhy-er/desktop-commander@0.2.52
	touch $@

.deps/bench/npm/node_modules/.installed: tests/bench/package.json tests/bench/package-lock.json
	mkdir -p .deps/bench/npm
	cp tests/bench/package.json tests/bench/package-lock.json .deps/bench/npm/
	cd .deps/bench/npm && npm ci --no-audit --no-fund --ignore-scripts --cache ../../npm-cache
	touch $@

.deps/bench/venv/.installed: tests/bench/requirements.txt
	$(PYTHON) -m venv .deps/bench/venv
	.deps/bench/venv/bin/pip install --quiet --disable-pip-version-check -r tests/bench/requirements.txt
	touch $@

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

# The static binary of the container images is built for size, the hub's own code too
# (`SIZE_FIRST`: 5.5 MB against 6.3 MB at opt-level 3, for 4-10% more hub CPU per call, measured
# side by side); the native build (`make run`, `make install`, the bench) stays at opt-level 3.
SIZE_FIRST := --config 'profile.release.package.agenthub.opt-level="s"'
release:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --locked --release $(SIZE_FIRST) --bin agenthub --target $(TARGET)
	strip $(STATIC_BIN)
	@ls -l $(STATIC_BIN)

# `make install`: the binary on your PATH, as `$(PREFIX)/bin/agenthub`. The default prefix is
# your own ~/.local: no sudo, ~/.local/bin is on PATH in most Linux distributions' shells, and a
# user service and client entries (`agenthub service install`, `connect --write`) name the
# binary by its absolute path anyway. `sudo make install PREFIX=/usr/local` for every user;
# DESTDIR for packaging. It builds a native release binary first; `BIN=path` installs one built
# already (the static one of `make release`, say) without building.
PREFIX ?= $(HOME)/.local
BIN ?=
install: $(if $(BIN),,native)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(or $(BIN),target/release/agenthub) $(DESTDIR)$(PREFIX)/bin/agenthub
	@echo "installed $(DESTDIR)$(PREFIX)/bin/agenthub"

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/agenthub

.PHONY: native
native:
	$(CARGO) build --locked --release --bin agenthub

# The FROM-scratch image from the static binary, offline: podman (or docker) build.
CONTAINER ?= podman
image-slim: release
	$(CONTAINER) build $(if $(filter podman,$(CONTAINER)),--format docker) -f Dockerfile --target slim --build-arg BINARY=prebuilt -t agenthub:slim .

clean:
	$(CARGO) clean
	rm -rf .deps
