# The two commands of the README:
#   make demo   urunner's whole story on a local test ground (no cluster needed)
#   make test   every test: lint, unit, end to end on the real ground, fuzz smoke
# The first run of either builds the test ground's programs (hack/tools.sh:
# etcd, kube-apiserver, kube-controller-manager, and for the tests helm,
# promtool, cosign, the PrometheusRule CRD and Debian's docker-registry);
# later runs reuse them from .cache.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO      ?= go
FUZZTIME ?= 10s

.PHONY: build tools demo test lint unit fuzz-smoke testenv-up testenv-down clean

# build is also the Dockerfile's build stage: the image holds this binary.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/urunner .

tools:
	hack/tools.sh

bin/testground: $(shell find e2e hack/testground -name '*.go') go.mod go.sum
	$(GO) build -o bin/testground ./hack/testground

demo: build bin/testground
	hack/tools.sh etcd kube
	bin/testground demo -urunner bin/urunner

test: tools lint unit fuzz-smoke

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 30m ./...

# Each fuzz target for a few seconds, on top of its committed corpus
# (testdata/fuzz), which the unit run already replays.
fuzz-smoke:
	$(GO) test -run '^$$' -fuzz '^FuzzParseImage$$' -fuzztime $(FUZZTIME) ./registry
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./state
	$(GO) test -run '^$$' -fuzz '^FuzzCheckPayloads$$' -fuzztime $(FUZZTIME) ./signature
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./webhook

# A test ground for the shell: `make testenv-up && . .cache/testenv/env`.
# testenv-down ends only the process testenv-up started (its recorded PID);
# that process stops the processes it started.
testenv-up: tools bin/testground
	@mkdir -p .cache/testenv
	@if [ -f .cache/testenv/pid ] && kill -0 $$(cat .cache/testenv/pid) 2>/dev/null; then echo "already up: . .cache/testenv/env"; exit 0; fi
	@nohup bin/testground up -dir .cache/testenv >.cache/testenv/testground.log 2>&1 & echo $$! >.cache/testenv/pid
	@for i in $$(seq 1 180); do [ -f .cache/testenv/env ] && break; kill -0 $$(cat .cache/testenv/pid) 2>/dev/null || { cat .cache/testenv/testground.log; exit 1; }; sleep 1; done
	@cat .cache/testenv/testground.log
	@echo "ready: . .cache/testenv/env"

testenv-down:
	@if [ -f .cache/testenv/pid ]; then pid=$$(cat .cache/testenv/pid); kill $$pid 2>/dev/null || true; \
	  for i in $$(seq 1 30); do kill -0 $$pid 2>/dev/null || break; sleep 1; done; rm -f .cache/testenv/pid; echo "stopped pid $$pid"; \
	else echo "not running"; fi

clean:
	rm -rf bin

# Figures of urunner at scale on a fresh test ground, beside their targets
# (BENCHMARKS.md). Flags scale it: go run ./bench -help.
.PHONY: bench bench-push
bench: build
	$(GO) run ./bench -urunner bin/urunner

# Push → PATCH through the webhook receiver and a real distribution registry.
bench-push: build
	hack/tools.sh registry
	$(GO) run ./bench -push -urunner bin/urunner
