# The two commands a newcomer needs: `make demo` and `make test`.
GO          ?= go
FUZZTIME    ?= 30s
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all demo test lint fuzz bench soak

all: lint test

demo:
	$(GO) run ./examples/demo

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needs to run on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Compares proxyauth with x/oauth2 and azcore (Go benchmarks, benchstat,
# scenarios) and writes BENCHMARKS.md: about 5½ minutes; LONG=1 adds a
# rollover with 35 s tokens (about 4 more).
bench:
	GO=$(GO) ./scripts/bench.sh

# Runs every Fuzz target of every package for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
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
