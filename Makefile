# zonegate: make test runs everything CI runs; make bench measures the gate against bare Caddy.

GO ?= go
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test deps check unit e2e bench build fuzz

## test: install what the tests need, then vet, format check and every test with -race
test: deps check
	ZONEGATE_E2E_RACE=1 $(GO) test -race -count=1 -timeout 45m ./...

## deps: install what the tests drive (Debian), when missing: Chromium for the browser tests,
## redis-server for the Redis store (the tests start and stop it themselves)
deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing for the tests"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v chromium >/dev/null 2>&1 || { echo "chromium is missing and could not be installed"; exit 1; }
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server is missing and could not be installed"; exit 1; }

## check: go vet and gofmt
check:
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## unit: the fast tests (no binary, no browser)
unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

## e2e: the whole-system tests only
e2e: deps
	$(GO) test -race -count=1 -v ./e2e/

## build: the zonegate binary (Caddy plus zonegate)
build:
	$(GO) build -o zonegate ./cmd/zonegate

## fuzz: run every fuzz target for FUZZTIME each (default 20s)
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

## bench: Go benchmarks of the hot path, then gate vs bare Caddy under load (bench/)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./zones/ ./policy/ ./gateway/ ./websession/
	$(GO) run ./bench
