# The commands of the README:
#   make demo   urunner's whole story on a local test ground (no cluster needed)
#   make check  the fast inner loop: lint and the tests that need no test ground
#               (measured warm on 2 busy cores, 6 December 2026: 41 s and 34 s)
#   make test   every test: lint, unit, end to end on the real ground, fuzz smoke
#   make image  the release image, pushed to IMAGE (see below)
# The first run of demo or test builds the test ground's programs in parallel
# (hack/tools.sh: etcd, kube-apiserver, kube-controller-manager, and for the
# tests helm, promtool, cosign, the PrometheusRule CRD and Debian's
# docker-registry; a cold demo took 12 minutes on 2 busy cores, with progress
# every 30 s); later runs reuse them from .cache.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO      ?= go
FUZZTIME ?= 10s
# The static binary of the image, for any GOOS/GOARCH.
GOBUILD  = CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"

# make image: where to push (registry/repository:tag, or ocidir://DIR:tag),
# for which platforms, and the OCI labels. REVISION and SOURCE_DATE_EPOCH
# (the image's creation time) come from the commit, so rebuilding a commit
# gives the same digests. IMAGE_INSECURE=1: the registry speaks plain HTTP.
IMAGE             ?=
IMAGE_INSECURE    ?=
IMAGE_PLATFORMS   ?= linux/amd64 linux/arm64
IMAGE_SOURCE      ?= https://github.com/urunner/urunner
IMAGE_LICENSES    ?= NOASSERTION
REVISION          ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: build plugin plugin-dist image tools demo check test lint unit fuzz-smoke testenv-up testenv-down clean

# build is also the Dockerfile's build stage: the image holds this binary.
build:
	$(GOBUILD) -o bin/urunner .

# plugin builds the kubectl plugin: with bin/ on PATH, kubectl runs it as
# `kubectl urunner` (see the README's "kubectl urunner").
plugin:
	$(GOBUILD) -o bin/kubectl-urunner ./cmd/kubectl-urunner

# plugin-dist builds the plugin's krew archives, one per PLUGIN_PLATFORMS,
# and the krew manifest for them (hack/krew/urunner.yaml filled in) into
# PLUGIN_DIST. VERSION must be a semantic version (v1.2.3); PLUGIN_URL is
# where the archives are published.
PLUGIN_DIST      ?= dist
PLUGIN_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
PLUGIN_URL       ?= $(IMAGE_SOURCE)/releases/download/$(VERSION)
plugin-dist:
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) hack/krew/dist.sh '$(PLUGIN_DIST)' '$(VERSION)' '$(PLUGIN_URL)' $(PLUGIN_PLATFORMS)

# image builds the binary for each platform and pushes the release image
# (hack/image: no Docker daemon, no base image). The tests push it to a
# local registry and check it (e2e/image_test.go).
image:
	@test -n "$(IMAGE)" || { echo "make image: set IMAGE, e.g. IMAGE=ghcr.io/you/urunner:v1.2.3 (IMAGE_INSECURE=1 for a plain-HTTP registry)" >&2; exit 2; }
	@for p in $(IMAGE_PLATFORMS); do \
		os=$${p%%/*}; arch=$${p#*/}; echo "building bin/$$os-$$arch/urunner"; \
		GOOS=$$os GOARCH=$$arch $(GOBUILD) -o bin/$$os-$$arch/urunner . || exit 1; \
	done
	$(GO) run ./hack/image -image '$(IMAGE)' $(if $(filter 1 true yes,$(IMAGE_INSECURE)),-insecure) \
		$(foreach p,$(IMAGE_PLATFORMS),-binary $(p)=bin/$(subst /,-,$(p))/urunner) \
		-version '$(VERSION)' -revision '$(REVISION)' -source '$(IMAGE_SOURCE)' \
		-licenses '$(IMAGE_LICENSES)' -epoch '$(SOURCE_DATE_EPOCH)'

tools:
	hack/tools.sh

# Built like bin/urunner (no cgo, -trimpath) so that the packages both
# import, client-go first, are compiled once and shared in the Go cache.
bin/testground: $(shell find e2e hack/testground -name '*.go') go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/testground ./hack/testground

# The test ground's programs build in the background while urunner and
# bin/testground build: on a fresh machine each one's module downloads and
# links overlap the others' compiles. A failed build still waits for
# tools.sh, whose binaries are kept for the next run.
demo:
	@hack/tools.sh etcd kube & tools=$$!; \
	$(MAKE) --no-print-directory build bin/testground; built=$$?; \
	wait $$tools && [ $$built -eq 0 ]
	bin/testground demo -urunner bin/urunner

# check is the fast inner loop: lint, then the tests of the packages that
# need no test ground, under the race detector. Left to make test: kube,
# run, e2e, cmd/kubectl-urunner and bench (a control plane), signature
# (the cosign CLI), webhook's TestRealDistribution* (Debian's registry).
# registry's in-process OCI registry is no process and stays in.
CHECK_PKGS ?= ./exit ./logging ./memlimit ./state ./policy ./notify ./registry ./kube/apiclient ./webhook ./hack/funclen ./hack/image
check: lint
	$(GO) test -race -count=1 -skip '^TestRealDistribution' $(CHECK_PKGS)

# plugin is built first so that a broken plugin build fails fast; unit
# tests it (cmd/kubectl-urunner) against the test ground, krew included.
test: tools lint plugin unit fuzz-smoke

# funclen: no product function over 60 lines (hack/funclen; FUNCLEN_FLAGS
# passes it -max or -skip).
FUNCLEN_FLAGS ?=
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run ./hack/funclen $(FUNCLEN_FLAGS)

# Packages as many at a time as there are cores: the end-to-end packages
# each run a control plane of their own, and more of them at once starve
# the controllers their rollouts wait on (-p 4 on 2 cores was no faster:
# 524 s against 539 s).
unit:
	$(GO) test -race -count=1 -timeout 45m ./...

# Each fuzz target for a few seconds, on top of its committed corpus
# (testdata/fuzz), which the unit run already replays.
# All side by side, one worker each: the same time per target, one
# target's wall time (fewer executions each on 2 cores).
FUZZ_TARGETS := registry.FuzzParseImage state.FuzzDecode state.FuzzDecodeProvenance signature.FuzzCheckPayloads webhook.FuzzParse kube.FuzzDigestOf
fuzz-smoke:
	@$(MAKE) --no-print-directory -j$(words $(FUZZ_TARGETS)) $(addprefix fuzz-,$(FUZZ_TARGETS))

fuzz-%:
	$(GO) test -run '^$$' -fuzz '^$(patsubst .%,%,$(suffix $*))$$' -fuzztime $(FUZZTIME) -parallel 1 ./$(basename $*)

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
	rm -rf bin dist

# Figures of urunner at scale on a fresh, quiet test ground (no controller
# manager), each run repeated, beside their targets (BENCHMARKS.md): 5,000
# Deployments and a private registry's HEAD count (about 6 minutes on 2
# cores). Flags scale it: go run ./bench -help.
.PHONY: bench bench-100k bench-floor bench-push
bench: build
	hack/tools.sh etcd kube registry
	$(GO) run ./bench -urunner bin/urunner

# 100,000 workloads: the 5,000 watched alone and among the others in each
# list scope, then all of them watched (about 40 minutes on 2 cores).
bench-100k: build
	hack/tools.sh etcd kube
	$(GO) run ./bench -urunner bin/urunner -workloads 100000

# The binary's size and RSS floor with each cloud SDK left out (throwaway
# builds of the committed tree in a temporary directory).
bench-floor:
	$(GO) run ./bench -floor

# Push → PATCH through the webhook receiver and a real distribution registry.
bench-push: build
	hack/tools.sh registry
	$(GO) run ./bench -push -urunner bin/urunner
