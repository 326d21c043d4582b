# The two commands a newcomer needs: `make demo` and `make test`.
#
# The library is the module at the root. Three nested modules hold what a
# library user must not inherit: examples/ (runnable programs and the demo),
# bench/ (comparisons with x/oauth2 and azcore) and interop/ (tests against
# third-party servers). Every target below covers all of them.
SHELL       := bash
.SHELLFLAGS := -eu -o pipefail -c

GO          ?= go
FUZZTIME    ?= 30s
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
MODULES     := . examples bench interop

.PHONY: all demo test lint fuzz bench soak

all: lint test

# The first build compiles openai-go, which takes a while on a small
# machine: say so first, and show the packages as they are compiled.
demo:
	@echo "make demo: building the demo (the first build compiles openai-go: about 2 minutes on a small machine)"
	@cd examples && $(GO) build -v -o ../bin/demo ./demo 2>&1 | sed -u 's/^/  compiled /'
	@echo "make demo: running it (10 to 14 s)"
	@./bin/demo

# The interop tests run npm packages (oidc-provider, the OpenAI Node SDK),
# installed from the committed lockfile.
NODE_DEPS := interop/node_modules/.package-lock.json
$(NODE_DEPS): interop/package.json interop/package-lock.json
	@command -v npm >/dev/null || { echo "make: the interop tests need Node.js (20.19 or newer) and npm: apt-get install nodejs npm" >&2; exit 1; }
	cd interop && npm ci --no-audit --no-fund

# The command's interop tests drive curl as well as the OpenAI Node SDK.
test: $(NODE_DEPS)
	@command -v curl >/dev/null || { echo "make: the interop tests need curl: apt-get install -y curl" >&2; exit 1; }
	@for m in $(MODULES); do \
	  echo "== module $$m"; \
	  (cd $$m && $(GO) vet ./... && $(GO) test -race -count=1 ./...); \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needs to run on:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do \
	  echo "== module $$m"; \
	  (cd $$m && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...); \
	done

# Compares proxyauth with x/oauth2 and azcore (Go benchmarks, benchstat,
# scenarios), measures what `proxyauth serve` adds to a request, and writes
# BENCHMARKS.md: about 7½ minutes; LONG=1 adds a rollover with 35 s tokens
# (about 4 more).
bench:
	GO=$(GO) ./scripts/bench.sh

# Runs every Fuzz target of the library for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for fn in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$fn ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# The soak test at full size: 10,000 requests from 64 goroutines under -race
# (make test runs it with 1,000). SOAK sets the number of requests.
SOAK ?= 10000
soak:
	$(GO) test -race -count=1 -timeout 20m -run '^TestSoak$$' -v ./hardening -soak.requests=$(SOAK)
