#!/usr/bin/env bash
# tools.sh builds the programs the test ground runs (etcd, kube-apiserver,
# kube-controller-manager, helm, promtool for the chart's alert rules, cosign
# to sign images for the signature tests) from the Go module proxy at pinned
# versions, into .cache/bin; fetches the PrometheusRule CRD the chart tests
# install, into .cache/crds; and unpacks the CNCF distribution registry
# (docker-registry) from Debian's package. A program is rebuilt only when its
# pin changes, so only the first run pays for the build.
#
# Usage: hack/tools.sh [etcd|kube|helm|promtool|crds|cosign|registry ...]   (no argument: all of them)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.cache/bin"
mkdir -p "$bin"

KUBE_VERSION=v1.37.2
HELM_VERSION=v3.22.0
# Prometheus publishes its Go module as v0.X.Y for release 3.X.Y:
# v0.316.0 is Prometheus 3.16.0.
PROMETHEUS_MODULE_VERSION=v0.316.0
PROMETHEUS_VERSION=3.16.0
# The newest prometheus-operator module the proxy serves; monitoring.coreos.com/v1
# PrometheusRule has not changed shape since.
PROMETHEUS_OPERATOR_VERSION=v0.85.0
# cosign v3 is the current release: it signs in the sigstore bundle format
# (an OCI 1.1 referrer) by default and in the older .sig tag format on
# request, so one binary makes both kinds of signature the tests verify.
COSIGN_VERSION=v3.1.3

# stamp prints what a build depends on, so that a changed pin rebuilds.
stamp() { cat "$@" | sha256sum | cut -c1-16; }

fresh() { # fresh NAME STAMP: the binary exists and was built from STAMP
	[[ -x "$bin/$1" && -f "$bin/.$1.stamp" && "$(cat "$bin/.$1.stamp")" == "$2" ]]
}

log() { printf 'tools: %s\n' "$*" >&2; }

build_etcd() {
	local s; s=$(stamp "$root/hack/tools/etcd/go.mod" "$root/hack/tools/etcd/go.sum")
	fresh etcd "$s" && return
	log "building etcd (go.etcd.io/etcd/server/v3, see hack/tools/etcd/go.mod)"
	(cd "$root/hack/tools/etcd" && CGO_ENABLED=0 go build -trimpath -o "$bin/etcd" .)
	echo "$s" >"$bin/.etcd.stamp"
}

build_kube() {
	local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
	local ld="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	# The stamp covers the pins and the flags, not this script: adding
	# another tool here must not rebuild the API server.
	local s; s=$(echo "$ld" | stamp "$root/hack/tools/kube/go.mod" "$root/hack/tools/kube/go.sum" /dev/stdin)
	if fresh kube-apiserver "$s" && fresh kube-controller-manager "$s"; then return; fi
	for cmd in kube-apiserver kube-controller-manager; do
		log "building $cmd $KUBE_VERSION (takes minutes the first time)"
		(cd "$root/hack/tools/kube" && CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$bin/$cmd" "k8s.io/kubernetes/cmd/$cmd")
		echo "$s" >"$bin/.$cmd.stamp"
	done
}

build_helm() {
	local s; s=$(echo "$HELM_VERSION" | stamp /dev/stdin)
	fresh helm "$s" && return
	log "building helm $HELM_VERSION"
	(cd "$root" && CGO_ENABLED=0 GOBIN="$bin" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
	echo "$s" >"$bin/.helm.stamp"
}

# promtool checks and unit-tests the chart's PrometheusRule (e2e/alerts_test.go).
# Its go.mod has no replace directive, so go install at the pinned module
# version builds exactly that release's dependency graph.
build_promtool() {
	local pkg=github.com/prometheus/common/version
	local ld="-s -w -X $pkg.Version=$PROMETHEUS_VERSION -X $pkg.Branch=HEAD -X $pkg.Revision=$PROMETHEUS_MODULE_VERSION"
	local s; s=$(echo "$PROMETHEUS_MODULE_VERSION $ld" | stamp /dev/stdin)
	fresh promtool "$s" && return
	log "building promtool $PROMETHEUS_VERSION (github.com/prometheus/prometheus@$PROMETHEUS_MODULE_VERSION; takes minutes the first time)"
	(cd "$root" && CGO_ENABLED=0 GOBIN="$bin" go install -trimpath -ldflags "$ld" "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION")
	echo "$s" >"$bin/.promtool.stamp"
}

# crds copies the PrometheusRule CRD out of the prometheus-operator module, so
# that the chart tests install it and the API server validates the rendered
# PrometheusRule against its real schema. Downloaded outside urunner's module,
# so urunner's go.mod and go.sum stay untouched.
build_crds() {
	local dir="$root/.cache/crds" f=monitoring.coreos.com_prometheusrules.yaml
	local s; s=$(echo "$PROMETHEUS_OPERATOR_VERSION $f" | stamp /dev/stdin)
	[[ -f "$dir/$f" && -f "$dir/.$f.stamp" && "$(cat "$dir/.$f.stamp")" == "$s" ]] && return
	log "fetching the PrometheusRule CRD of prometheus-operator $PROMETHEUS_OPERATOR_VERSION"
	local mod
	mod=$(cd / && GOFLAGS=-mod=mod go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -n "$mod" ]] || { echo "tools: cannot download prometheus-operator $PROMETHEUS_OPERATOR_VERSION" >&2; exit 1; }
	mkdir -p "$dir"
	install -m 0644 "$mod/example/prometheus-operator-crd/$f" "$dir/$f"
	echo "$s" >"$dir/.$f.stamp"
}

build_cosign() {
	local s; s=$(echo "$COSIGN_VERSION" | stamp /dev/stdin)
	fresh cosign "$s" && return
	log "building cosign $COSIGN_VERSION"
	(cd "$root" && CGO_ENABLED=0 GOBIN="$bin" go install -trimpath -ldflags "-s -w" "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN_VERSION")
	echo "$s" >"$bin/.cosign.stamp"
}

# build_registry unpacks the CNCF distribution registry 2.8 (Debian's
# docker-registry package) into $bin/docker-registry: the registry whose
# real notifications the webhook receiver's end-to-end test and benchmark
# receive. apt-get download and dpkg -x need no root and install nothing;
# the package's own configuration and service files are not used.
REGISTRY_SERIES=2.8
build_registry() {
	local s; s=$(echo "docker-registry $REGISTRY_SERIES" | stamp /dev/stdin)
	fresh docker-registry "$s" && return
	log "unpacking docker-registry (distribution $REGISTRY_SERIES) from Debian's package"
	local tmp; tmp=$(mktemp -d)
	# Without package lists (a fresh machine) apt knows no candidate yet.
	if ! (cd "$tmp" && apt-get download -q docker-registry >/dev/null 2>&1); then
		log "apt-get download failed; updating the package lists once"
		apt-get update -q >/dev/null
		(cd "$tmp" && apt-get download -q docker-registry >/dev/null)
	fi
	dpkg -x "$tmp"/docker-registry_*.deb "$tmp/x"
	local v; v=$("$tmp/x/usr/bin/docker-registry" --version)
	if [[ "$v" != *" $REGISTRY_SERIES."* ]]; then
		echo "tools: docker-registry is \"$v\", want distribution $REGISTRY_SERIES" >&2
		rm -rf "$tmp"
		exit 1
	fi
	install -m 0755 "$tmp/x/usr/bin/docker-registry" "$bin/docker-registry"
	rm -rf "$tmp"
	echo "$s" >"$bin/.docker-registry.stamp"
}

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(etcd kube helm promtool crds cosign registry)
for t in "${targets[@]}"; do
	case "$t" in
	etcd | kube | helm | promtool | crds | cosign | registry) "build_$t" ;;
	*) echo "tools: unknown tool $t (want etcd, kube, helm, promtool, crds, cosign or registry)" >&2; exit 2 ;;
	esac
done
